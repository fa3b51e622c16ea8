/**
 * The hardware adapter interface ({@link HwAdapter}) and the reference hardware model behind it, in process
 * ({@link ReferenceHwAdapter}), with the deliberately broken IOMMUs ({@link HW_BUGS}): defects injected into a fresh
 * reference {@link Machine}, for showing that the hardware runner catches an emulator's bug and shrinks the trace that
 * shows it. The in-process adapter and the `hw-reference-stdio` program (`--bug NAME`) apply them the same way, so a
 * defect is caught identically in process and over stdio.
 *
 * Kept apart from `hw.ts` (the runner side) so that the adapter registry can name these without importing the runner.
 *
 * Not for: broken drivers (`src/hw-reference/driver.ts` `DriverBug`, judged by refinement), or uAPI bugs
 * (`conformance/adapters/reference.ts`).
 *
 * @module
 */
import type { Outcome } from '../../src/reference/commands.ts';
import { Machine } from '../../src/hw-reference/machine.ts';
import { applyHwStep, type HwTrace } from '../../src/hw-reference/trace.ts';
import type { AdapterError } from '../adapter.ts';
import type { HwCapabilities } from '../hw-protocol.ts';

/** A defect: what it breaks, the clause a run catches it under, and how it is injected. */
export interface HwBug {
  readonly description: string;
  /** The HW clause whose check catches it. */
  readonly clause: string;
  readonly inject: (m: Machine) => void;
}

/** The broken IOMMUs, by name. */
export const HW_BUGS: Readonly<Record<string, HwBug>> = {
  'ignore-psi': {
    description: 'an IOTLB that ignores page-selective invalidations (IOTLB and PASID-based IOTLB)',
    clause: 'HW-022',
    inject: (m) => {
      const inv = m.iommu.invalidate.bind(m.iommu);
      m.iommu.invalidate = (d) =>
        (d.type === 'iotlb' && d.g === 'page') || (d.type === 'piotlb' && d.g === 3) ? { ok: true } : inv(d);
    },
  },
  'no-write-check': {
    description: 'an IOMMU that performs writes a read-only translation denies (never reports SGN.6)',
    clause: 'HW-010',
    inject: (m) => {
      const dma = m.dma.bind(m);
      m.dma = (req) => {
        const r = dma(req);
        return !r.ok && r.fault.code === 'SGN.6' ? { ok: true, hpa: req.addr } : r;
      };
    },
  },
};

/** What an implementation answered for one hardware trace. */
export interface HwTraceReply {
  /** One outcome per step it ran, in order. */
  readonly replies: readonly Outcome[];
  /** Set when it could not answer (crash, timeout, garbage, wrong reply count): `replies` holds what came before. */
  readonly error?: AdapterError;
  /** What an out-of-process implementation wrote to stderr while running the trace. */
  readonly stderr?: string;
}

/** An IOMMU implementation under test, driven by whole hardware traces (each from reset). */
export interface HwAdapter {
  readonly name: string;
  /** Starts the implementation and returns what it declares (the handshake). */
  open(): Promise<HwCapabilities>;
  /** Runs one trace from reset (devices as the trace lists them) and returns one outcome per step. */
  runHwTrace(trace: HwTrace): Promise<HwTraceReply>;
  /** Stops the implementation. Safe to call twice. */
  close(): Promise<void>;
}

/** Runs a hardware trace on a fresh reference machine, with the defect `bug` (a name of {@link HW_BUGS}) injected. */
export function executeHwTrace(trace: HwTrace, bug?: string): Outcome[] {
  const m = new Machine(trace.devices);
  if (bug !== undefined) HW_BUGS[bug]!.inject(m);
  return trace.steps.map((s) => applyHwStep(m, s));
}

/**
 * The reference hardware model as an in-process adapter; `bug` injects a defect of {@link HW_BUGS} (or, for tests,
 * any function of a fresh machine) into each trace's machine.
 */
export class ReferenceHwAdapter implements HwAdapter {
  constructor(
    readonly name = 'hw-reference',
    private readonly bug?: string | ((m: Machine) => void),
  ) {
    if (typeof bug === 'string' && HW_BUGS[bug] === undefined) throw new Error(`unknown hardware bug "${bug}"`);
  }
  open(): Promise<HwCapabilities> {
    return Promise.resolve({ name: this.name, arch: 'vt-d' });
  }
  runHwTrace(trace: HwTrace): Promise<HwTraceReply> {
    if (typeof this.bug !== 'function') return Promise.resolve({ replies: executeHwTrace(trace, this.bug) });
    const m = new Machine(trace.devices);
    this.bug(m);
    return Promise.resolve({ replies: trace.steps.map((s) => applyHwStep(m, s)) });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Hardware adapters: how an IOMMU implementation (the reference hardware model, an emulator such as QEMU's
 * `intel_iommu.c` behind a harness) is driven with hardware traces (`src/hw-reference/trace.ts`) and judged against
 * the reference machine, step by step, with the same comparison as uAPI traces (`diffOutcome`). {@link runHwConformance}
 * draws traces with `generators/hw.ts`, and fast-check shrinks a failing one.
 *
 * In process, an adapter is an object implementing {@link HwAdapter}. Out of process, the form is the one of
 * `conformance/INTERPRETING.md` ("Hardware traces"): one JSON request per trace on stdin, one reply line per step.
 *
 * Not for: uAPI adapters (`conformance/adapter.ts`).
 *
 * @module
 */
import fc from 'fast-check';
import type { Outcome } from '../../src/reference/commands.ts';
import { Machine } from '../../src/hw-reference/machine.ts';
import { applyHwStep, type HwStep, type HwTrace } from '../../src/hw-reference/trace.ts';
import { hwTraceArbitrary } from '../../generators/hw.ts';
import { diffOutcome } from '../runner.ts';

/** What a hardware implementation declares: its architecture and the devices it can model. */
export interface HwCapabilities {
  readonly name: string;
  readonly arch: 'vt-d';
  readonly description?: string;
}

/** An IOMMU implementation under test, driven by whole hardware traces (each from reset). */
export interface HwAdapter {
  readonly name: string;
  open(): Promise<HwCapabilities>;
  /** Runs one trace from reset (devices as the trace lists them) and returns one outcome per step. */
  runHwTrace(trace: HwTrace): Promise<{ readonly replies: readonly Outcome[]; readonly error?: string }>;
  close(): Promise<void>;
}

/** The reference hardware model as an adapter; `setup` lets tests inject a defect into each fresh machine. */
export class ReferenceHwAdapter implements HwAdapter {
  constructor(
    readonly name = 'hw-reference',
    private readonly setup?: (m: Machine) => void,
  ) {}
  open(): Promise<HwCapabilities> {
    return Promise.resolve({ name: this.name, arch: 'vt-d' });
  }
  runHwTrace(trace: HwTrace): Promise<{ replies: Outcome[] }> {
    const m = new Machine(trace.devices);
    this.setup?.(m);
    return Promise.resolve({ replies: trace.steps.map((s) => applyHwStep(m, s)) });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The HW clauses a step exercises (for failure reports). */
export function hwClausesOf(s: HwStep): string[] {
  switch (s.op) {
    case 'HW_DMA':
      return ['HW-025', 'HW-026', 'HW-001', 'HW-006', 'HW-016'];
    case 'HW_INVALIDATE':
      return {
        context: ['HW-018'],
        pasid: ['HW-019'],
        iotlb: ['HW-020', 'HW-022'],
        piotlb: ['HW-021', 'HW-022'],
        devtlb: ['HW-024'],
        pdevtlb: ['HW-024'],
      }[s.desc.type];
    case 'DEVICE_PAGE_REQUEST':
      return ['HW-028', 'HW-029'];
    case 'HW_PRQ_READ':
      return ['HW-028'];
    case 'HW_PAGE_RESPONSE':
      return ['HW-030'];
    case 'HW_ENQCMD':
    case 'HW_SET_PASID_XLATE':
      return ['HW-031'];
    case 'HW_MEM_WRITE':
    case 'HW_SET_ROOT':
      return ['HW-001', 'HW-002'];
  }
}

/** A hardware trace's verdict: the first step whose outcome differs from the reference machine's. */
export interface HwVerdict {
  readonly steps: number;
  readonly failure?: { readonly step: number; readonly clauses: readonly string[]; readonly message: string };
}

/** Checks an implementation's replies against the reference machine. */
export function checkHwReplies(trace: HwTrace, replies: readonly Outcome[], error?: string): HwVerdict {
  const m = new Machine(trace.devices);
  for (let i = 0; i < trace.steps.length; i++) {
    const s = trace.steps[i]!;
    const want = applyHwStep(m, s);
    const got = replies[i];
    if (got === undefined)
      return { steps: i, failure: { step: i, clauses: hwClausesOf(s), message: error ?? `no reply for step ${i}` } };
    const d = diffOutcome(want, got);
    if (d !== undefined)
      return { steps: i + 1, failure: { step: i, clauses: hwClausesOf(s), message: `${s.op}: ${d}` } };
  }
  return { steps: trace.steps.length };
}

/** The result of a hardware conformance run. */
export interface HwRunResult {
  readonly traces: number;
  readonly steps: number;
  /** The first failing trace, shrunk by fast-check, with its verdict. */
  readonly failure?: { readonly trace: HwTrace; readonly verdict: HwVerdict };
}

/** Runs `runs` generated hardware traces (seed `seed`) on `adapter`; the first failure is shrunk. */
export async function runHwConformance(
  adapter: HwAdapter,
  opts: { seed: number; runs: number; maxActions?: number },
): Promise<HwRunResult> {
  await adapter.open();
  let traces = 0;
  let steps = 0;
  let last: { trace: HwTrace; verdict: HwVerdict } | undefined;
  try {
    const prop = fc.asyncProperty(hwTraceArbitrary(opts.maxActions ?? 40), async (trace) => {
      traces++;
      const r = await adapter.runHwTrace(trace);
      const v = checkHwReplies(trace, r.replies, r.error);
      steps += v.steps;
      if (v.failure !== undefined)
        last = { trace: { ...trace, steps: trace.steps.slice(0, v.failure.step + 1) }, verdict: v };
      return v.failure === undefined;
    });
    const out = await fc.check(prop, { seed: opts.seed, numRuns: opts.runs });
    return { traces, steps, ...(out.failed && last !== undefined ? { failure: last } : {}) };
  } finally {
    await adapter.close();
  }
}

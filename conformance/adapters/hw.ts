/**
 * Hardware adapters: how an IOMMU implementation (the reference hardware model, an emulator such as QEMU's
 * `intel_iommu.c` behind a harness) is driven with hardware traces (`src/hw-reference/trace.ts`) and judged against
 * the reference machine, step by step, with the same comparison as uAPI traces (`diffOutcome`). {@link runHwConformance}
 * draws traces with `generators/hw.ts`, runs every one (a failure does not stop the run) and lets fast-check shrink
 * the first failing one.
 *
 * In process, an adapter is an object implementing {@link HwAdapter} (`./hw-reference.ts`). Out of process, it is a
 * program speaking the hardware protocol (`conformance/hw-protocol.ts`, `conformance/INTERPRETING.md` §7), wrapped
 * by `HwStdioAdapter` (`./hw-stdio.ts`). `ioasid-conformance hw run` (`conformance/hw-cli.ts`) is the command line.
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
import type { AdapterError } from '../adapter.ts';
import { diffOutcome } from '../runner.ts';
import type { HwAdapter, HwTraceReply } from './hw-reference.ts';

export type { HwCapabilities } from '../hw-protocol.ts';
export { HW_BUGS, ReferenceHwAdapter, executeHwTrace } from './hw-reference.ts';
export type { HwAdapter, HwBug, HwTraceReply } from './hw-reference.ts';

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

/** The model's outcome without its `reason` output: prose for the reader, never compared (INTERPRETING.md §7). */
function informativeOmitted(o: Outcome): Outcome {
  if (o.out === undefined || !('reason' in o.out)) return o;
  const { reason, ...out } = o.out;
  void reason;
  return Object.keys(out).length === 0 ? { ...o, out: undefined } : { ...o, out };
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
    const d = diffOutcome(informativeOmitted(want), got);
    if (d !== undefined)
      return { steps: i + 1, failure: { step: i, clauses: hwClausesOf(s), message: `${s.op}: ${d}` } };
  }
  return { steps: trace.steps.length };
}

/** How a hardware trace failed: a step's outcome differs (`divergence`), or the adapter did not answer. */
export type HwFailureKind = 'divergence' | AdapterError['kind'];

/** One failing hardware trace of a run. */
export interface HwFailure {
  /** The trace's index in the run (fast-check's run of the seed). */
  readonly index: number;
  readonly kind: HwFailureKind;
  /** The trace up to its failing step. */
  readonly trace: HwTrace;
  readonly verdict: HwVerdict;
  /** What an out-of-process implementation wrote to stderr while running it. */
  readonly stderr?: string;
}

/** The result of a hardware conformance run. */
export interface HwRunResult {
  readonly traces: number;
  readonly passed: number;
  /** Steps whose outcome was compared. */
  readonly steps: number;
  /** Every failing trace, in run order (the run goes on after a failure). */
  readonly failures: readonly HwFailure[];
  /**
   * The first failure, shrunk when it is a divergence — by fast-check, then by deleting steps — (a crash or timeout
   * is kept as it was).
   */
  readonly failure?: HwFailure;
}

/** Judges one trace on `adapter`: the verdict and the kind of failure, if any. */
async function judge(adapter: HwAdapter, trace: HwTrace): Promise<{ verdict: HwVerdict; reply: HwTraceReply }> {
  const reply = await adapter.runHwTrace(trace);
  const err = reply.error;
  let verdict = checkHwReplies(trace, reply.replies, err?.message);
  if (err !== undefined && verdict.failure === undefined)
    // Every step answered, then an error (a reply too many, a late crash): still a failure of the trace.
    verdict = {
      steps: verdict.steps,
      failure: { step: Math.max(0, trace.steps.length - 1), clauses: [], message: err.message },
    };
  return { verdict, reply };
}

/**
 * Shrinks a failing trace further by deleting single steps (last first), keeping a deletion when the trace still
 * fails at the same operation with a divergence; at most `budget` runs. Catches what fast-check's shrinking of the
 * generator's actions cannot: structure writes of devices the failure does not involve.
 */
async function deleteSteps(adapter: HwAdapter, f: HwFailure, budget: number): Promise<HwFailure> {
  const op = (v: HwVerdict) => v.failure?.message.split(':')[0];
  let best = f;
  let runs = 0;
  for (let changed = true; changed && runs < budget;) {
    changed = false;
    for (let i = best.trace.steps.length - 2; i >= 0 && runs < budget; i--) {
      const trace = { ...best.trace, steps: best.trace.steps.filter((_, j) => j !== i) };
      runs++;
      const { verdict, reply } = await judge(adapter, trace);
      if (verdict.failure === undefined || reply.error !== undefined || op(verdict) !== op(best.verdict)) continue;
      best = { ...best, trace: { ...trace, steps: trace.steps.slice(0, verdict.failure.step + 1) }, verdict };
      changed = true;
    }
  }
  return best;
}

/**
 * Runs `runs` generated hardware traces (seed `seed`; trace n is fast-check's run n) on `adapter`. Every trace runs:
 * a failing one is recorded and the run goes on (an out-of-process adapter that crashed is restarted for the next
 * trace). The first failure is then shrunk by replaying its run and letting fast-check shrink it, keeping only
 * shrinks that fail the same way (same kind, same failing operation).
 */
export async function runHwConformance(
  adapter: HwAdapter,
  opts: {
    seed: number;
    runs: number;
    maxActions?: number;
    /** Most runs spent deleting steps of the shrunk failure (default 500). */
    shrinkBudget?: number;
    onTrace?: (done: number, failed: number) => void;
  },
): Promise<HwRunResult> {
  await adapter.open();
  const arb = hwTraceArbitrary(opts.maxActions ?? 40);
  const failures: HwFailure[] = [];
  let traces = 0;
  let steps = 0;
  try {
    await fc.check(
      fc.asyncProperty(arb, async (trace) => {
        const index = traces++;
        const { verdict, reply } = await judge(adapter, trace);
        steps += verdict.steps;
        if (verdict.failure !== undefined)
          failures.push({
            index,
            kind: reply.error?.kind ?? 'divergence',
            trace: { ...trace, steps: trace.steps.slice(0, verdict.failure.step + 1) },
            verdict,
            ...(reply.stderr === undefined ? {} : { stderr: reply.stderr }),
          });
        opts.onTrace?.(traces, failures.length);
        return true;
      }),
      { seed: opts.seed, numRuns: opts.runs },
    );
    const first = failures[0];
    let failure = first;
    if (first?.kind === 'divergence') {
      const op = (v: HwVerdict) => v.failure?.message.split(':')[0];
      const prop = fc.asyncProperty(arb, async (trace) => {
        const { verdict, reply } = await judge(adapter, trace);
        if (verdict.failure === undefined || reply.error !== undefined || op(verdict) !== op(first.verdict))
          return true;
        failure = {
          index: first.index,
          kind: 'divergence',
          trace: { ...trace, steps: trace.steps.slice(0, verdict.failure.step + 1) },
          verdict,
        };
        return false;
      });
      await fc.check(prop, { seed: opts.seed, numRuns: opts.runs, path: String(first.index) });
      failure = await deleteSteps(adapter, failure!, opts.shrinkBudget ?? 500);
    }
    return {
      traces,
      passed: traces - failures.length,
      steps,
      failures,
      ...(failure === undefined ? {} : { failure }),
    };
  } finally {
    await adapter.close();
  }
}

/**
 * Benchmark 1 of `npm run bench`: the reference model's step cost at a given number of live mappings, next to a bare
 * sorted-btree interval step on the same data — the best this machine does for the same work, measured in the same
 * process, so their ratio survives a noisy machine.
 *
 * The model step is `Model.step` as the runner uses it: clause recording on, the incremental invariant checks on
 * (src/reference/invariants.ts). One cycle is three steps on an IOAS holding `n` one-page mappings: UNMAP one
 * mapping, MAP it again (fixed IOVA), and a MAP overlapping another mapping, which is rejected (EEXIST). The bare
 * step does the same on a `sorted-btree` of `{ iova, last }` keyed by iova: delete, overlap check + insert, overlap
 * check that finds the overlap.
 *
 * The mappings are loaded in bulk (the state a trace of `n` MAPs leaves, without the `n` steps): building 1e6
 * mappings step by step would take most of the benchmark's time budget.
 *
 * Not for: comparing with other machines without the ratio; CI does not time anything.
 *
 * @module
 */
import { bufferBase } from '../src/reference/args.ts';
import { IOAS_MAP, type Command } from '../src/reference/commands.ts';
import { bigintTree } from '../src/reference/core/btree.ts';
import { addArea, makeArea } from '../src/reference/core/placement.ts';
import { Model } from '../src/reference/model.ts';
import { defaultPlatform } from '../src/reference/platform.ts';

/** The IOVA of mapping `i` (one page each, one page apart). */
const iovaOf = (i: number): bigint => BigInt(i + 1) * 0x2000n;
const PAGE = 0x1000n;

/** A deterministic sequence of mapping indices (a 32-bit LCG), the same for the model and the bare tree. */
function* indices(n: number, seed = 12345): Generator<number> {
  let x = seed >>> 0;
  for (;;) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    yield x % n;
  }
}

/** What one size measures. */
export interface ModelBenchResult {
  readonly mappings: number;
  /** Nanoseconds per model step, one figure per repetition. */
  readonly modelNs: number[];
  /** Nanoseconds per bare btree step, one figure per repetition. */
  readonly bareNs: number[];
  /** Milliseconds to load the mappings into the model. */
  readonly loadMs: number;
  /** Resident set after loading the model (before the bare tree is built, after a GC when exposed), MiB. */
  readonly rssMiB: number;
  /** Peak resident set of the process, MiB. */
  readonly maxRssMiB: number;
  /** Whether the invariant checker was on. */
  readonly invariants: boolean;
}

/** A model of the iommufd profile holding `n` one-page mappings in IOAS 1. */
export function loadedModel(n: number): Model {
  const m = new Model({
    profile: 'iommufd',
    features: new Set(['auto-iova', 'copy', 'huge-pages']),
    platform: defaultPlatform(),
  });
  m.step({ op: 'IOMMU_IOAS_ALLOC' });
  const snap = m.snapshot();
  const st = snap.state;
  const ioas = st.get(1, 'ioas')!;
  for (let i = 0; i < n; i++)
    addArea(ioas.space, st.platform, makeArea(iovaOf(i), PAGE, bufferBase(0), 0, 0n, 3, st.nextPages++));
  m.restore(snap);
  return m;
}

const map = (iova: bigint): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: 1,
  flags: IOAS_MAP.FIXED_IOVA | IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE,
  user_va: { buf: 0, off: 0n },
  length: PAGE,
  iova,
});
const unmap = (iova: bigint): Command => ({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova, length: PAGE });

/** Runs `cycles` model cycles and returns nanoseconds per step. Throws if a step does not do what it should. */
export function modelCycles(m: Model, n: number, cycles: number, it: Generator<number>): number {
  const t0 = process.hrtime.bigint();
  for (let c = 0; c < cycles; c++) {
    const k = it.next().value as number;
    const other = (k + 1) % n;
    const a = m.step(unmap(iovaOf(k)));
    const b = m.step(map(iovaOf(k)));
    const r = m.step(map(iovaOf(other)));
    if (!a.outcome.ok || !b.outcome.ok || r.outcome.ok || a.violations.length + b.violations.length > 0)
      throw new Error(`model cycle went wrong at mapping ${k}`);
  }
  return Number(process.hrtime.bigint() - t0) / (cycles * 3);
}

interface Iv {
  readonly iova: bigint;
  readonly last: bigint;
}

/** The bare interval structure: a sorted-btree of `{ iova, last }`, loaded like the model. */
export function loadedTree(n: number) {
  const t = bigintTree<Iv>();
  for (let i = 0; i < n; i++) t.set(iovaOf(i), { iova: iovaOf(i), last: iovaOf(i) + PAGE - 1n });
  return t;
}

/** Runs `cycles` bare cycles (delete; overlap check + insert; overlap check that rejects) and returns ns per step. */
export function bareCycles(t: ReturnType<typeof loadedTree>, n: number, cycles: number, it: Generator<number>): number {
  const overlaps = (iova: bigint, last: bigint): boolean => {
    const p = t.getPairOrNextLower(last);
    return p !== undefined && p[1].last >= iova;
  };
  const t0 = process.hrtime.bigint();
  for (let c = 0; c < cycles; c++) {
    const k = it.next().value as number;
    const other = (k + 1) % n;
    const iova = iovaOf(k);
    const hit = t.get(iova);
    if (hit === undefined || !t.delete(iova)) throw new Error('bare unmap went wrong');
    if (overlaps(iova, iova + PAGE - 1n)) throw new Error('bare map went wrong');
    t.set(iova, { iova, last: iova + PAGE - 1n });
    const o = iovaOf(other);
    if (!overlaps(o, o + PAGE - 1n)) throw new Error('bare rejected map went wrong');
  }
  return Number(process.hrtime.bigint() - t0) / (cycles * 3);
}

/** Measures one size: `reps` repetitions of each kind, after a warm-up. */
export function benchModelAt(
  n: number,
  reps: number,
  modelCycleCount: number,
  bareCycleCount: number,
): ModelBenchResult {
  const l0 = performance.now();
  const m = loadedModel(n);
  const loadMs = performance.now() - l0;
  global.gc?.();
  const rssMiB = process.memoryUsage().rss / 2 ** 20;
  const t = loadedTree(n);
  const it = indices(n);
  const bit = indices(n);
  // Warm-up: V8 optimises the model's step only after some tens of thousands of steps (measured: the first 60k steps
  // run 4-5x slower than the rest); both sides get the same number of warm-up steps.
  const warm = Math.max(20_000, Math.ceil(modelCycleCount / 2));
  modelCycles(m, n, warm, it);
  bareCycles(t, n, Math.max(warm, Math.ceil(bareCycleCount / 4)), bit);
  // Repetitions alternate between the two, so a burst of load on a shared machine hits both alike.
  const modelNs: number[] = [];
  const bareNs: number[] = [];
  for (let r = 0; r < reps; r++) {
    modelNs.push(modelCycles(m, n, modelCycleCount, it));
    bareNs.push(bareCycles(t, n, bareCycleCount, bit));
  }
  return {
    mappings: n,
    modelNs,
    bareNs,
    loadMs,
    rssMiB,
    maxRssMiB: process.resourceUsage().maxRSS / 1024,
    invariants: m.invariants !== undefined,
  };
}

/**
 * The conformance runner: runs randomized traces against an implementation (through an {@link Adapter}) in lockstep
 * with the reference model, and reports the first divergence of each trace as a small, replayable trace file.
 *
 * A run is a pure function of (adapter, seed, options): trace `i` is fast-check's first run of the seed
 * {@link traceSeed}`(seed, i)` (`fc.check(…, { seed: traceSeed(seed, i), numRuns: 1 })`), so any subset of indices
 * can run anywhere, in any order and at the same cost whatever `i` is — in another
 * worker thread (`--jobs`), another machine (`--shard i/n`) — and the results merge into the same `results.json`
 * byte for byte. `results.json` holds no timestamps or durations; timings go to stdout only.
 *
 * Lockstep comparison: step `k` diverges when ok/errno differ, or when an output the model reports differs from the
 * implementation's (u64s compared as numbers); a violation the model records while adopting an
 * implementation-chosen value (a new ID, an automatic IOVA) is a failure too. The failure names the clauses the
 * model evaluated at that step.
 *
 * Shrinking: for every clause, the lowest-numbered trace failing on it is shrunk by fast-check (its templates,
 * then realised again, then its concrete steps by deletion), keeping only candidates that fail the same way (same
 * kind, a shared clause), and saved as `<report-dir>/failures/<adapter>-<seed>-<n>.json`. Every failing trace is
 * also saved as generated, `<adapter>-<seed>-<n>.full.json`.
 *
 * @module
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import fc from 'fast-check';
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import type { Adapter, Capabilities, TraceReply } from './adapter.ts';
import { createAdapter, isConfigurable, isPortable, type AdapterOptions } from './adapters/registry.ts';
import { AdapterOpenError } from './adapters/stdio.ts';
import { guardAdapter } from './adapters/watchdog.ts';
import { UsageError } from './errors.ts';
import { CapabilitiesCodec, checkCapabilities, toWireJson } from './protocol.ts';
import { refinerFactory, type Refiner } from './refine.ts';
import { bundledEntry } from './worker-bundle.ts';
import type { Command, Outcome, OutValue, Profile } from '../src/reference/commands.ts';
import { Model, isModelLimit } from '../src/reference/model.ts';
import { decodeTrace, encodeTrace, type Trace } from '../src/reference/trace.ts';
import { loadSpec, type Spec } from '../src/spec/spec.ts';
import { loadVocabularies } from '../src/spec/vocabulary.ts';
import { DEFAULT_SPEC_DIR } from '../src/spec/spec.ts';
import { clauseMatches, coverageReport, weightsFor } from '../generators/coverage.ts';
import { TraceGenerator, lengthBucket, type Realised } from '../generators/trace.ts';
import type { Template } from '../generators/template.ts';

// ================================================================================================= results format

/** The `format` tag of a results file. */
export const RESULTS_FORMAT = 'ioasid-conformance-results';
/** The results format version; `merge` refuses other versions. */
export const RESULTS_VERSION = 1;

/** How a trace failed. */
export const FailureKind = t.keyof(
  {
    divergence: null,
    violation: null,
    crash: null,
    timeout: null,
    protocol: null,
    version: null,
    'model-limit': null,
    'model-error': null,
    'generator-error': null,
  },
  'FailureKind',
);
export type FailureKind = t.TypeOf<typeof FailureKind>;

export const FirstFailure = t.type(
  { trace: t.string, file: t.string, step: t.number, replay: t.string },
  'FirstFailure',
);
export const ClauseStats = t.intersection(
  [t.type({ steps: t.number, traces: t.number, failures: t.number }), t.partial({ firstFailure: FirstFailure })],
  'ClauseStats',
);
export type ClauseStats = t.TypeOf<typeof ClauseStats>;
export const FailureRecord = t.intersection(
  [
    t.type({
      trace: t.string,
      kind: FailureKind,
      step: t.number,
      clauses: t.array(t.string),
      message: t.string,
      file: t.string,
      replay: t.string,
    }),
    t.partial({ violated: t.array(t.string), stderr: t.string }),
  ],
  'FailureRecord',
);
export type FailureRecord = t.TypeOf<typeof FailureRecord>;
export const RunSettings = t.type(
  {
    seed: t.number,
    runs: t.number,
    maxSteps: t.number,
    adversarial: t.number,
    /** The `--clause` patterns (empty: all clauses). */
    clauses: t.array(t.string),
    /** The features traces were generated for (a subset of the declared ones). */
    features: t.array(t.string),
    corpus: t.boolean,
  },
  'RunSettings',
);
export type RunSettings = t.TypeOf<typeof RunSettings>;
const Counts = t.type({ total: t.number, passed: t.number, failed: t.number }, 'Counts');
export const AdapterResults = t.intersection(
  [
    t.type({
      capabilities: CapabilitiesCodec,
      settings: RunSettings,
      traces: Counts,
      corpus: t.intersection([Counts, t.type({ skipped: t.array(t.type({ file: t.string, reason: t.string })) })]),
      steps: t.number,
      lengths: t.record(t.string, t.number),
      clauses: t.record(t.string, ClauseStats),
      unreached: t.array(t.string),
      failures: t.array(FailureRecord),
    }),
    t.partial({
      /** Present while only some shards are in: the shard count and the shards (1-based) merged so far. */
      partial: t.type({ shardCount: t.number, shards: t.array(t.number) }),
    }),
  ],
  'AdapterResults',
);
export type AdapterResults = t.TypeOf<typeof AdapterResults>;
/** An adapter that could not be opened (it crashed, hung or refused the handshake). */
export const AdapterFailed = t.intersection(
  [t.type({ error: t.type({ kind: t.string, message: t.string }) }), t.partial({ stderr: t.string })],
  'AdapterFailed',
);
export type AdapterFailed = t.TypeOf<typeof AdapterFailed>;
export const Results = t.type(
  {
    format: t.literal(RESULTS_FORMAT),
    version: t.literal(RESULTS_VERSION),
    adapters: t.record(t.string, t.union([AdapterResults, AdapterFailed])),
  },
  'Results',
);
export type Results = t.TypeOf<typeof Results>;

// ================================================================================================= files

let tmpCounter = 0;

/** Writes a file atomically: a temporary file in the same directory, then a rename. Creates the directory. */
export function writeFileAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${tmpCounter++}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** Reads and decodes a trace file; bad input raises a {@link UsageError} naming the file, the step and the path. */
export function readTraceFile(path: string): Trace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read trace ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`bad trace ${path}: not JSON (${(e as Error).message})`);
  }
  const r = decodeTrace(json);
  if (!r.ok) {
    const e = r.errors[0]!;
    const steps = (json as { steps?: unknown[] }).steps;
    const op =
      e.step !== undefined && Array.isArray(steps) ? (steps[e.step] as { op?: unknown } | undefined)?.op : undefined;
    const schema = typeof op === 'string' && /^[A-Z_]+$/.test(op) ? `#/definitions/${op}` : '';
    const where =
      e.step !== undefined ? `step ${e.step}${typeof op === 'string' ? ` (${op})` : ''}` : e.path || '(document)';
    const more =
      r.errors.length > 1 ? ` (and ${r.errors.length - 1} more problem${r.errors.length > 2 ? 's' : ''})` : '';
    throw new UsageError(
      `bad trace ${path}: ${where}: ${e.message}${more}; see conformance/schema/trace.schema.json${schema}`,
    );
  }
  return r.trace;
}

/** Makes a name safe as a file-name component. */
export function fileSafe(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._+-]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(0, 80) || 'adapter'
  );
}

/** Quotes a word for a POSIX shell when it needs it. */
export function shellQuote(w: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The command that replays a trace file on an adapter. */
export function replayCommand(file: string, adapter: string): string {
  return `npx ioasid-conformance replay ${shellQuote(file)} --adapter ${shellQuote(adapter)}`;
}

// ================================================================================================= comparison

const NUMERIC = /^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/;

/** A value as a bigint when it stands for an integer (a bigint, a safe integer, a u64 string), else undefined. */
function asBig(v: OutValue | undefined): bigint | undefined {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
  if (typeof v === 'string' && NUMERIC.test(v)) return BigInt(v);
  return undefined;
}

/** A value as the report prints it. */
function show(v: OutValue | undefined): string {
  return v === undefined ? 'nothing' : toWireJson(v);
}

/**
 * Whether `impl` conforms to `model` by the rules of {@link diffValue} (which it mirrors, without building paths
 * or messages): the per-step comparison's fast path. A test checks that the two always agree.
 */
export function sameValue(model: OutValue, impl: OutValue | undefined): boolean {
  if (typeof model === 'bigint' || (typeof model === 'number' && typeof impl !== 'number')) {
    const a = asBig(model);
    return a !== undefined && a === asBig(impl);
  }
  if (Array.isArray(model)) {
    if (!Array.isArray(impl) || impl.length !== model.length) return false;
    for (let i = 0; i < model.length; i++) if (!sameValue(model[i]!, impl[i])) return false;
    return true;
  }
  if (typeof model === 'object' && model !== null) {
    if (typeof impl !== 'object' || impl === null || Array.isArray(impl) || typeof impl === 'bigint') return false;
    for (const k in model) if (!sameValue(model[k]!, impl[k])) return false;
    return true;
  }
  if (typeof model === 'string' && typeof impl === 'string' && NUMERIC.test(model) && NUMERIC.test(impl))
    return BigInt(model) === BigInt(impl);
  return model === impl;
}

/** Where `impl` differs from `model` (a path and both values), or undefined when it does not. Extra implementation outputs are ignored. */
export function diffValue(model: OutValue, impl: OutValue | undefined, path: string): string | undefined {
  if (typeof model === 'bigint' || (typeof model === 'number' && typeof impl !== 'number')) {
    const a = asBig(model);
    const b = asBig(impl);
    return a !== undefined && a === b ? undefined : `${path}: expected ${show(model)}, got ${show(impl)}`;
  }
  if (Array.isArray(model)) {
    if (!Array.isArray(impl)) return `${path}: expected a list, got ${show(impl)}`;
    if (impl.length !== model.length) return `${path}: expected ${model.length} entries, got ${impl.length}`;
    for (let i = 0; i < model.length; i++) {
      const d = diffValue(model[i]!, impl[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (typeof model === 'object' && model !== null) {
    if (typeof impl !== 'object' || impl === null || Array.isArray(impl) || typeof impl === 'bigint')
      return `${path}: expected an object, got ${show(impl)}`;
    for (const k of Object.keys(model).sort()) {
      const d = diffValue(model[k]!, impl[k], path === '' ? k : `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (typeof model === 'string' && typeof impl === 'string' && NUMERIC.test(model) && NUMERIC.test(impl))
    return BigInt(model) === BigInt(impl) ? undefined : `${path}: expected ${model}, got ${impl}`;
  return model === impl ? undefined : `${path}: expected ${show(model)}, got ${show(impl)}`;
}

function outcomeName(o: Outcome): string {
  return o.ok ? 'ok' : o.errno;
}

/** How the implementation's outcome differs from the model's, or undefined when it conforms. */
export function diffOutcome(model: Outcome, impl: Outcome): string | undefined {
  if (model.ok !== impl.ok || (!model.ok && !impl.ok && model.errno !== impl.errno))
    return `expected ${outcomeName(model)}, got ${outcomeName(impl)}`;
  if (model.out === undefined || sameValue(model.out, impl.out ?? {})) return undefined;
  const d = diffValue(model.out, impl.out ?? {}, '');
  return d === undefined ? undefined : `${outcomeName(model)} as expected, but output ${d}`;
}

/** Why a trace failed. */
export interface Failure {
  readonly kind: FailureKind;
  /** The step of the trace. */
  readonly step: number;
  /** The clauses the model evaluated at that step. */
  readonly clauses: readonly string[];
  /** For a violation: the clauses broken. */
  readonly violated?: readonly string[];
  /** For a divergence where the model expected an error: the clause whose check gives that error. */
  readonly decidedBy?: string;
  readonly message: string;
  readonly expected?: Outcome;
  readonly observed?: Outcome;
  readonly stderr?: string;
}

/** One step of a checked trace (kept for `replay`). */
export interface CheckedStep {
  readonly cmd: Command;
  readonly observed: Outcome;
  readonly expected: Outcome;
  readonly clauses: readonly string[];
}

/** The verdict on one trace. */
export interface Verdict {
  /** Steps compared (up to and including a failing one). */
  readonly steps: number;
  /** Clause → number of steps that evaluated it. */
  readonly hits: Readonly<Record<string, number>>;
  readonly failure?: Failure;
  readonly detail?: readonly CheckedStep[];
}

function unique(xs: readonly string[]): string[] {
  return [...new Set(xs)];
}

/** The clauses the model evaluates for `steps[k]` after `steps[0..k)` (used to name the clauses of an adapter error). */
function clausesAt(caps: Capabilities, steps: readonly Command[], replies: TraceReply['replies'], k: number): string[] {
  try {
    const m = new Model({ profile: caps.profile, features: new Set(caps.features), platform: caps.platform });
    for (let i = 0; i < k; i++) m.step(steps[i]!, replies[i]?.outcome);
    return k < steps.length ? unique(m.step(steps[k]!).clauses) : [];
  } catch {
    return [];
  }
}

/** Checks an implementation's replies against the reference model, step by step. */
export function checkReplies(
  caps: Capabilities,
  steps: readonly Command[],
  reply: TraceReply,
  keepDetail = false,
  refine?: RefinerFactory,
): Verdict {
  const model = new Model({ profile: caps.profile, features: new Set(caps.features), platform: caps.platform });
  // `run --refine`: the reference (or a broken) driver realises each step on the hardware model (chapter REF).
  const refiner = refine?.(caps);
  const hits: Record<string, number> = {};
  const detail: CheckedStep[] = [];
  const done = (n: number, failure?: Failure): Verdict => ({
    steps: n,
    hits,
    ...(failure === undefined ? {} : { failure: reply.stderr ? { ...failure, stderr: reply.stderr } : failure }),
    ...(keepDetail ? { detail } : {}),
  });
  for (let i = 0; i < steps.length; i++) {
    const r = reply.replies[i];
    if (r === undefined) {
      const e = reply.error ?? {
        kind: 'protocol' as const,
        message: `the adapter returned ${reply.replies.length} replies for ${steps.length} steps`,
      };
      const at = e.step ?? i;
      let clauses: string[] = [];
      if (at === i && i < steps.length) {
        // What the model would evaluate at the interrupted step; a step the model does not cover is its limit.
        try {
          clauses = unique(model.step(steps[i]!).clauses);
        } catch (x) {
          if (isModelLimit(x))
            return done(i, {
              kind: 'model-limit',
              step: i,
              clauses: [],
              message: `the reference model does not cover this step: ${(x as Error).message} (the adapter said: ${e.message})`,
            });
        }
      } else clauses = clausesAt(caps, steps, reply.replies, at);
      return done(i, { kind: e.kind, step: at, clauses, message: e.message });
    }
    let res;
    try {
      res = model.step(steps[i]!, r.outcome);
    } catch (e) {
      const limit = isModelLimit(e);
      return done(i + 1, {
        kind: limit ? 'model-limit' : 'model-error',
        step: i,
        clauses: [],
        message: limit
          ? `the reference model does not cover this step: ${(e as Error).message}`
          : `the reference model failed: ${(e as Error).message}`,
      });
    }
    const clauses = unique(res.clauses);
    for (const c of clauses) hits[c] = (hits[c] ?? 0) + 1;
    if (keepDetail) detail.push({ cmd: steps[i]!, observed: r.outcome, expected: res.outcome, clauses });
    const diff = diffOutcome(res.outcome, r.outcome);
    if (diff !== undefined)
      return done(i + 1, {
        kind: 'divergence',
        step: i,
        clauses,
        ...(res.decidedBy === undefined ? {} : { decidedBy: res.decidedBy }),
        message: diff,
        expected: res.outcome,
        observed: r.outcome,
      });
    if (res.violations.length > 0) {
      const violated = unique(res.violations.map((v) => v.clause));
      return done(i + 1, {
        kind: 'violation',
        step: i,
        clauses,
        violated,
        message: res.violations.map((v) => `${v.clause}: ${v.message}`).join('; '),
        observed: r.outcome,
      });
    }
    if (refiner !== undefined) {
      const rr = refiner.afterStep(steps[i]!, res.outcome, model.view);
      for (const c of rr.clauses) hits[c] = (hits[c] ?? 0) + 1;
      if (rr.violation !== undefined)
        return done(i + 1, {
          kind: 'violation',
          step: i,
          clauses: unique([...clauses, ...rr.clauses]),
          violated: [rr.violation.clause],
          message: `${rr.violation.clause} (refinement): ${rr.violation.message}`,
        });
    }
  }
  if (reply.error !== undefined)
    return done(steps.length, {
      kind: reply.error.kind,
      step: reply.error.step ?? steps.length,
      clauses: [],
      message: reply.error.message,
    });
  return done(steps.length);
}

/** Runs steps on an adapter and checks them. An adapter that throws is reported as a crash. */
export async function runAndCheck(
  adapter: Adapter,
  caps: Capabilities,
  steps: readonly Command[],
  keepDetail = false,
  refine?: RefinerFactory,
): Promise<Verdict> {
  let reply: TraceReply;
  try {
    reply = await adapter.runTrace(steps);
  } catch (e) {
    reply = {
      replies: [],
      error: { kind: 'crash', message: `adapter "${adapter.name}" threw: ${(e as Error).message}` },
    };
  }
  return checkReplies(caps, steps, reply, keepDetail, refine);
}

/** Makes the refinement check of one trace (`run --refine`, conformance/refine.ts). */
export type RefinerFactory = (caps: Capabilities) => Refiner;

/** Whether two failures are the same failure for shrinking: same kind and a shared clause (or both without clauses). */
export function sameFailure(a: Failure, b: Failure): boolean {
  if (a.kind !== b.kind) return false;
  const ca = [...a.clauses, ...(a.violated ?? [])];
  const cb = new Set([...b.clauses, ...(b.violated ?? [])]);
  return (ca.length === 0 && cb.size === 0) || ca.some((c) => cb.has(c));
}

// ================================================================================================= one trace

/** What a run needs to generate and check trace `i`. */
export interface TraceContext {
  readonly adapter: Adapter;
  readonly adapterName: string;
  readonly caps: Capabilities;
  readonly gen: TraceGenerator;
  readonly seed: number;
  readonly reportDir: string;
  readonly shrinkBudget: number;
  /** `run --refine`: the refinement check run after every step. */
  readonly refine?: RefinerFactory;
}

/** The record of one trace of a run. */
export interface TraceRecord {
  /** `corpus/<file>` or `random/<n>`. */
  readonly key: string;
  /** Realised length (steps in the trace). */
  readonly length: number;
  readonly steps: number;
  readonly hits: Readonly<Record<string, number>>;
  readonly failure?: Failure;
  /** The trace file of a failure (the corpus file, or the saved failure). */
  readonly file?: string;
}

/** The result of shrinking a failing trace. */
export interface ShrinkResult {
  readonly key: string;
  readonly file: string;
  readonly failure: Failure;
  readonly length: number;
  readonly runs: number;
}

/** Sort order of trace keys: corpus files by name, then random traces by number. */
export function compareKeys(a: string, b: string): number {
  const pa = a.startsWith('corpus/') ? 0 : 1;
  const pb = b.startsWith('corpus/') ? 0 : 1;
  if (pa !== pb) return pa - pb;
  if (pa === 0) return a < b ? -1 : a > b ? 1 : 0;
  return Number(a.slice(7)) - Number(b.slice(7));
}

/**
 * The files of failing random trace `index`: `<adapter>-<seed>-<n>.json` holds the shrunk trace (for the traces
 * that are shrunk: the first failure of each clause), `<adapter>-<seed>-<n>.full.json` the trace as generated (for
 * every failing trace).
 */
export function failureFile(reportDir: string, adapterName: string, seed: number, index: number, full = false): string {
  return join(reportDir, 'failures', `${fileSafe(adapterName)}-${seed}-${index}${full ? '.full' : ''}.json`);
}

function realisedFailure(r: Realised): Failure | undefined {
  return r.error === undefined
    ? undefined
    : {
        kind: r.error.source === 'model' ? 'model-error' : 'generator-error',
        step: r.error.step,
        clauses: [],
        message: r.error.message,
      };
}

async function checkRealised(ctx: TraceContext, r: Realised): Promise<Verdict> {
  const f = realisedFailure(r);
  if (f !== undefined) return { steps: r.trace.steps.length, hits: {}, failure: f };
  return runAndCheck(ctx.adapter, ctx.caps, r.trace.steps, false, ctx.refine);
}

/**
 * The fast-check seed of trace `index` of a run with `seed`: a 32-bit mix of the two. Trace `index` is the first
 * run of this seed. (Not fast-check's run `index` of `seed` itself: reaching run `index` through fast-check's
 * `path` walks the random stream past every earlier run, which made a run of n traces cost O(n²).)
 */
export function traceSeed(seed: number, index: number): number {
  let h = Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** Runs random trace `index` (see {@link traceSeed}) once, without shrinking; saves it when it fails. */
export async function runIndex(ctx: TraceContext, index: number): Promise<TraceRecord> {
  let realised: Realised | undefined;
  let verdict: Verdict | undefined;
  const prop = fc.asyncProperty(ctx.gen.arbitrary(), async (templates: Template[]) => {
    realised = ctx.gen.realise(templates);
    verdict = await checkRealised(ctx, realised);
    return verdict.failure === undefined;
  });
  await fc.check(prop, { seed: traceSeed(ctx.seed, index), numRuns: 1, endOnFailure: true });
  const key = `random/${index}`;
  const v = verdict!;
  if (v.failure === undefined) return { key, length: realised!.trace.steps.length, steps: v.steps, hits: v.hits };
  const file = failureFile(ctx.reportDir, ctx.adapterName, ctx.seed, index, true);
  writeFileAtomic(
    file,
    encodeTrace(withMeta(realised!.trace, ctx, index, `trace ${index} of seed ${ctx.seed} as generated`, v.failure)),
  );
  return { key, length: realised!.trace.steps.length, steps: v.steps, hits: v.hits, failure: v.failure, file };
}

function withMeta(
  trace: Trace,
  ctx: TraceContext,
  index: number,
  origin: string,
  failure: Failure,
  path?: string,
): Trace {
  return {
    ...trace,
    // `<seed>:<trace>`, then the fast-check shrink path within that trace's run (`traceSeed`) when shrunk.
    seed: path === undefined ? `${ctx.seed}:${index}` : `${ctx.seed}:${index}:${path}`,
    origin: `ioasid-conformance run --adapter ${ctx.adapterName}: ${origin}; fails at step ${failure.step} (${failure.kind})`,
    clauses: unique([...(failure.violated ?? []), ...failure.clauses]),
  };
}

/**
 * Shrinks failing random trace `index` and saves the shrunk trace (overwriting the unshrunk one), in two passes
 * (composed shrinkers, as TestRIG does): fast-check shrinks the templates (fewer, simpler picks, re-realised each
 * time), then the realised trace is shrunk by deleting concrete steps — which keeps the exact addresses that
 * matter when the templates around them go.
 */
export async function shrinkIndex(ctx: TraceContext, index: number, original: Failure): Promise<ShrinkResult> {
  const total = original.kind === 'timeout' ? Math.min(ctx.shrinkBudget, 20) : ctx.shrinkBudget;
  let budget = Math.min(total, Math.max(1, Math.floor(total / 2)));
  let runs = 0;
  let best: { r: Realised; v: Verdict } | undefined;
  const prop = fc.asyncProperty(ctx.gen.arbitrary(), async (templates: Template[]) => {
    if (budget-- <= 0) return true;
    runs++;
    const r = ctx.gen.realise(templates);
    const v = await checkRealised(ctx, r);
    if (v.failure !== undefined && sameFailure(v.failure, original)) {
      best = { r, v };
      return false;
    }
    return true;
  });
  const details = await fc.check(prop, { seed: traceSeed(ctx.seed, index), numRuns: 1 });
  const file = failureFile(ctx.reportDir, ctx.adapterName, ctx.seed, index);
  if (best === undefined) {
    // Not reproduced: a flaky implementation. Only the trace as generated is saved.
    return {
      key: `random/${index}`,
      file: failureFile(ctx.reportDir, ctx.adapterName, ctx.seed, index, true),
      failure: { ...original, message: `${original.message} (did not reproduce when run again)` },
      length: -1,
      runs,
    };
  }
  let { steps } = best.r.trace;
  let failure = best.v.failure!;
  if (failure.kind !== 'model-error' && failure.kind !== 'generator-error') {
    const d = await shrinkTraceSteps(ctx.adapter, ctx.caps, steps, failure, Math.max(0, total - runs), ctx.refine);
    runs += d.runs;
    steps = d.steps;
    failure = d.failure;
  }
  const origin = `trace ${index} of seed ${ctx.seed}, shrunk (${details.numShrinks} template shrinks, then step deletion; ${runs} runs)`;
  writeFileAtomic(
    file,
    encodeTrace(
      withMeta({ ...best.r.trace, steps }, ctx, index, origin, failure, details.counterexamplePath ?? undefined),
    ),
  );
  return { key: `random/${index}`, file, failure, length: steps.length, runs };
}

// ================================================================================================= corpus

/** A corpus trace and whether it applies to the implementation. */
export interface CorpusEntry {
  readonly file: string;
  readonly trace?: Trace;
  readonly skip?: string;
}

/**
 * Loads the regression corpus (`*.json`, sorted by name) and decides which traces apply to `caps`: those of its
 * profile whose features it declares. The platform may differ: the model always follows the adapter's.
 */
export function loadCorpus(dir: string, caps: Capabilities): CorpusEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.json'))
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => {
    const file = join(dir, n);
    const trace = readTraceFile(file);
    if (trace.profile !== caps.profile) return { file, skip: `profile ${trace.profile}` };
    const missing = trace.features.filter((f) => !caps.features.includes(f));
    if (missing.length > 0) return { file, skip: `needs feature(s) ${missing.join(', ')}` };
    // A trace made on another platform still runs: the model checks it against the adapter's platform.
    return { file, trace };
  });
}

/** Runs one corpus trace. */
export async function runCorpusTrace(
  adapter: Adapter,
  caps: Capabilities,
  e: CorpusEntry,
  refine?: RefinerFactory,
): Promise<TraceRecord> {
  const v = await runAndCheck(adapter, caps, e.trace!.steps, false, refine);
  const key = `corpus/${basename(e.file)}`;
  return {
    key,
    length: e.trace!.steps.length,
    steps: v.steps,
    hits: v.hits,
    ...(v.failure === undefined ? {} : { failure: v.failure, file: e.file }),
  };
}

// ================================================================================================= aggregation

/** Which failing traces to shrink: for every clause (and every clause-less failure kind), the first trace failing on it. */
export function shrinkSelection(records: readonly TraceRecord[]): string[] {
  const first = new Map<string, string>();
  for (const r of [...records].sort((a, b) => compareKeys(a.key, b.key))) {
    if (r.failure === undefined || !r.key.startsWith('random/')) continue;
    const keys = [...r.failure.clauses, ...(r.failure.violated ?? [])];
    for (const k of keys.length > 0 ? keys : [`(${r.failure.kind})`]) if (!first.has(k)) first.set(k, r.key);
  }
  return [...new Set(first.values())].sort(compareKeys);
}

function sortedRecord<V>(o: Record<string, V>, cmp?: (a: string, b: string) => number): Record<string, V> {
  return Object.fromEntries(
    Object.keys(o)
      .sort(cmp)
      .map((k) => [k, o[k]!]),
  );
}

/** Everything aggregation needs besides the records. */
export interface AggregateInput {
  readonly caps: Capabilities;
  readonly settings: RunSettings;
  readonly adapterName: string;
  readonly records: readonly TraceRecord[];
  readonly shrinks: readonly ShrinkResult[];
  readonly skipped: readonly { file: string; reason: string }[];
  readonly shard: { index: number; count: number };
  readonly spec: Spec | undefined;
}

/** The clauses an aggregate reports: all, or those matching the `--clause` patterns. */
function reported(id: string, patterns: readonly string[]): boolean {
  return clauseMatches(id, patterns);
}

/** The unreached applicable clauses, given per-clause counts. */
function unreachedOf(
  spec: Spec | undefined,
  caps: Capabilities,
  clauses: Record<string, ClauseStats>,
  patterns: readonly string[],
): string[] {
  if (spec === undefined) return [];
  const hits: Record<string, number> = {};
  for (const [k, v] of Object.entries(clauses)) hits[k] = v.steps;
  return coverageReport(spec, caps.profile, caps.features, hits)
    .unreached.map((u) => u.id)
    .filter((id) => reported(id, patterns));
}

/**
 * The clauses a failure counts against in the per-clause statistics: the clauses a violation broke; for a divergence
 * where the model expected an error, the clause whose check gives it (the implementation skipped or reordered that
 * check); otherwise every clause the model evaluated at the failing step (which of them the implementation got wrong
 * cannot be told from one outcome).
 */
export function blamedClauses(f: Pick<Failure, 'clauses' | 'violated' | 'decidedBy'>): readonly string[] {
  if (f.violated !== undefined && f.violated.length > 0) return unique([...f.violated]);
  if (f.decidedBy !== undefined) return [f.decidedBy];
  return f.clauses;
}

/** Aggregates trace records into the results of one adapter. */
export function aggregate(a: AggregateInput): AdapterResults {
  const records = [...a.records].sort((x, y) => compareKeys(x.key, y.key));
  const shrunk = new Map(a.shrinks.map((s) => [s.key, s]));
  const clauses: Record<string, ClauseStats> = {};
  const lengths: Record<string, number> = {};
  const failures: FailureRecord[] = [];
  let steps = 0;
  const counts = { total: 0, passed: 0, failed: 0 };
  const corpus = { total: 0, passed: 0, failed: 0 };
  const patterns = a.settings.clauses;
  const stat = (id: string) => (clauses[id] ??= { steps: 0, traces: 0, failures: 0 });
  for (const r of records) {
    const isCorpus = r.key.startsWith('corpus/');
    counts.total++;
    if (isCorpus) corpus.total++;
    if (r.failure === undefined) {
      counts.passed++;
      if (isCorpus) corpus.passed++;
    } else {
      counts.failed++;
      if (isCorpus) corpus.failed++;
    }
    steps += r.steps;
    if (!isCorpus) lengths[lengthBucket(r.length)] = (lengths[lengthBucket(r.length)] ?? 0) + 1;
    for (const [id, n] of Object.entries(r.hits)) {
      if (!reported(id, patterns)) continue;
      const s = stat(id);
      s.steps += n;
      s.traces++;
    }
    if (r.failure !== undefined) {
      const f = r.failure;
      const file = relativePath(r.file ?? '');
      const replay = replayCommand(file, a.adapterName);
      failures.push({
        trace: r.key,
        kind: f.kind,
        step: f.step,
        clauses: [...f.clauses],
        message: f.message,
        file,
        replay,
        ...(f.violated === undefined ? {} : { violated: [...f.violated] }),
        ...(f.stderr === undefined ? {} : { stderr: f.stderr.slice(-4096) }),
      });
      // The first failure of a clause points at the shrunk trace (when shrinking reproduced it).
      const sh = shrunk.get(r.key);
      const small =
        sh !== undefined && sh.length >= 0
          ? { file: relativePath(sh.file), step: sh.failure.step }
          : { file, step: f.step };
      for (const id of blamedClauses(f)) {
        if (!reported(id, patterns)) continue;
        const s = stat(id);
        s.failures++;
        if (s.firstFailure === undefined)
          s.firstFailure = {
            trace: r.key,
            file: small.file,
            step: small.step,
            replay: replayCommand(small.file, a.adapterName),
          };
      }
    }
  }
  const sortedClauses = sortedRecord(clauses);
  const complete = a.shard.count === 1;
  return {
    capabilities: JSON.parse(toWireJson(a.caps)) as AdapterResults['capabilities'],
    settings: a.settings,
    traces: counts,
    corpus: { ...corpus, skipped: [...a.skipped].sort((x, y) => (x.file < y.file ? -1 : 1)) },
    steps,
    lengths: sortedRecord(lengths, (x, y) => parseInt(x, 10) - parseInt(y, 10)),
    clauses: sortedClauses,
    unreached: complete ? unreachedOf(a.spec, a.caps, sortedClauses, patterns) : [],
    failures,
    ...(complete ? {} : { partial: { shardCount: a.shard.count, shards: [a.shard.index] } }),
  };
}

/** A path as results show it: relative to the working directory when inside it. */
function relativePath(p: string): string {
  if (p === '') return p;
  const rel = relative(process.cwd(), p);
  return rel.startsWith('..') ? p : rel;
}

/** Merges two results of the same adapter and settings (shards). Throws an Error saying why they cannot merge. */
export function mergeAdapterResults(x: AdapterResults, y: AdapterResults, spec: Spec | undefined): AdapterResults {
  if (toWireJson(x.capabilities) !== toWireJson(y.capabilities)) {
    const [a, b] = [x.capabilities, y.capabilities];
    const what =
      a.profile !== b.profile
        ? `profile ${a.profile} vs ${b.profile}`
        : toWireJson(a.features) !== toWireJson(b.features)
          ? `features ${a.features.join(',')} vs ${b.features.join(',')}`
          : 'platform or description';
    throw new Error(
      `two results of adapter "${a.name}" declare different capabilities (${what}): they are not shards of one run; give the implementations distinct names`,
    );
  }
  if (toWireJson(x.settings) !== toWireJson(y.settings))
    throw new Error('the results come from runs with different settings (seed, runs, max steps, features…)');
  const xs = x.partial?.shards ?? null;
  const ys = y.partial?.shards ?? null;
  if (xs === null || ys === null) throw new Error('one of the results is already complete: merge shards only');
  if (x.partial!.shardCount !== y.partial!.shardCount) throw new Error('the results come from different shard counts');
  if (xs.some((s) => ys.includes(s))) throw new Error(`shard ${xs.find((s) => ys.includes(s))} is in both results`);
  const clauses: Record<string, ClauseStats> = {};
  for (const src of [x.clauses, y.clauses])
    for (const [id, s] of Object.entries(src)) {
      const c = (clauses[id] ??= { steps: 0, traces: 0, failures: 0 });
      c.steps += s.steps;
      c.traces += s.traces;
      c.failures += s.failures;
      if (
        s.firstFailure !== undefined &&
        (c.firstFailure === undefined || compareKeys(s.firstFailure.trace, c.firstFailure.trace) < 0)
      )
        c.firstFailure = s.firstFailure;
    }
  const lengths: Record<string, number> = { ...x.lengths };
  for (const [k, n] of Object.entries(y.lengths)) lengths[k] = (lengths[k] ?? 0) + n;
  const add = (a: { total: number; passed: number; failed: number }, b: typeof a) => ({
    total: a.total + b.total,
    passed: a.passed + b.passed,
    failed: a.failed + b.failed,
  });
  const shards = [...xs, ...ys].sort((a, b) => a - b);
  const complete = shards.length === x.partial!.shardCount;
  const sortedClauses = sortedRecord(clauses);
  const caps = CapabilitiesCodec.decode(x.capabilities);
  return {
    capabilities: x.capabilities,
    settings: x.settings,
    traces: add(x.traces, y.traces),
    corpus: {
      ...add(x.corpus, y.corpus),
      skipped: [...x.corpus.skipped, ...y.corpus.skipped].sort((a, b) => (a.file < b.file ? -1 : 1)),
    },
    steps: x.steps + y.steps,
    lengths: sortedRecord(lengths, (a, b) => parseInt(a, 10) - parseInt(b, 10)),
    clauses: sortedClauses,
    unreached: complete && !isLeft(caps) ? unreachedOf(spec, caps.right, sortedClauses, x.settings.clauses) : [],
    failures: [...x.failures, ...y.failures].sort((a, b) => compareKeys(a.trace, b.trace)),
    ...(complete ? {} : { partial: { shardCount: x.partial!.shardCount, shards } }),
  };
}

/** Merges whole results files (adapters present in several are merged as shards). */
export function mergeResults(all: readonly Results[], spec: Spec | undefined): Results {
  const adapters: Record<string, AdapterResults | AdapterFailed> = {};
  for (const r of all)
    for (const [name, a] of Object.entries(r.adapters)) {
      const prev = adapters[name];
      if (prev === undefined) adapters[name] = a;
      else if ('error' in prev || 'error' in a)
        throw new Error(`adapter "${name}": cannot merge a run whose adapter failed to open`);
      else adapters[name] = mergeAdapterResults(prev, a, spec);
    }
  return { format: RESULTS_FORMAT, version: RESULTS_VERSION, adapters: sortedRecord(adapters) };
}

/** Parses a results file; bad input raises a {@link UsageError}. */
export function readResultsFile(path: string): Results {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read results ${path}: ${(e as Error).message}`);
  }
  const v = (json as { version?: unknown } | null)?.version;
  if (v !== RESULTS_VERSION)
    throw new UsageError(`results ${path}: version ${JSON.stringify(v)} (this tool reads version ${RESULTS_VERSION})`);
  const r = Results.decode(json);
  if (isLeft(r))
    throw new UsageError(`results ${path}: not a results file (see conformance/schema/results.schema.json)`);
  return json as Results;
}

/** The text of a results file (stable: sorted keys where order is not meaningful, two-space indent). */
export function resultsText(r: Results): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

// ================================================================================================= JUnit

const XML_ENTITIES: Record<string, string> = { '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' };

function xmlEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const code = ch.charCodeAt(0);
    // XML 1.0 forbids most control characters, even escaped.
    if (code < 0x20 && ch !== '\t' && ch !== '\n' && ch !== '\r') continue;
    out += XML_ENTITIES[ch] ?? ch;
  }
  return out;
}

/** A JUnit XML report: per adapter, one test case per trace (corpus and random) and one per clause reached. */
export function junitXml(r: Results): string {
  const suites: string[] = [];
  let tests = 0;
  let fails = 0;
  for (const [name, a] of Object.entries(r.adapters)) {
    if ('error' in a) {
      tests++;
      fails++;
      suites.push(
        `  <testsuite name="${xmlEscape(name)}" tests="1" failures="1">\n    <testcase classname="${xmlEscape(name)}" name="open"><failure message="${xmlEscape(a.error.message)}">${xmlEscape(a.stderr ?? '')}</failure></testcase>\n  </testsuite>`,
      );
      continue;
    }
    const byTrace = new Map(a.failures.map((f) => [f.trace, f]));
    const cases: string[] = [];
    let n = 0;
    let nf = 0;
    const failing = (f: FailureRecord) =>
      `<failure type="${f.kind}" message="${xmlEscape(`step ${f.step}: ${f.message}`)}">${xmlEscape(`clauses: ${f.clauses.join(', ')}\nreplay: ${f.replay}${f.stderr ? `\nstderr:\n${f.stderr}` : ''}`)}</failure>`;
    for (const f of a.failures) {
      n++;
      nf++;
      cases.push(
        `    <testcase classname="${xmlEscape(name)}.traces" name="${xmlEscape(f.trace)}">${failing(f)}</testcase>`,
      );
    }
    const passedTraces = a.traces.total - a.failures.length;
    if (passedTraces > 0) {
      n++;
      cases.push(`    <testcase classname="${xmlEscape(name)}.traces" name="${passedTraces} passing traces"/>`);
    }
    for (const [id, s] of Object.entries(a.clauses)) {
      n++;
      const first = s.firstFailure === undefined ? undefined : byTrace.get(s.firstFailure.trace);
      if (s.failures > 0) nf++;
      const body = s.failures > 0 && first !== undefined ? failing({ ...first, replay: s.firstFailure!.replay }) : '';
      cases.push(
        `    <testcase classname="${xmlEscape(name)}.clauses.${id.split('-')[0]}" name="${id} (${s.steps} steps, ${s.traces} traces)"${body ? `>${body}</testcase>` : '/>'}`,
      );
    }
    tests += n;
    fails += nf;
    suites.push(
      `  <testsuite name="${xmlEscape(name)}" tests="${n}" failures="${nf}">\n${cases.join('\n')}\n  </testsuite>`,
    );
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="ioasid-conformance" tests="${tests}" failures="${fails}">\n${suites.join('\n')}\n</testsuites>\n`;
}

// ================================================================================================= the run

/** Options of a run (the CLI's flags, parsed). */
export interface RunOptions {
  readonly adapter: string;
  readonly adapterOptions: AdapterOptions;
  /** Requested profile / features (checked against a fixed adapter's declaration; they configure the reference family). */
  readonly profile?: Profile;
  readonly features?: readonly string[];
  readonly seed: number;
  readonly runs: number;
  readonly maxSteps: number;
  readonly adversarial: number;
  readonly clauses: readonly string[];
  readonly jobs: number;
  /** 1-based shard index and shard count. */
  readonly shard: { readonly index: number; readonly count: number };
  readonly reportDir: string;
  /** The regression corpus directory; undefined to skip it. */
  readonly corpusDir: string | undefined;
  readonly shrinkBudget: number;
  /** `--refine`: the driver (`reference`, `broken-<bug>`) whose refinement is checked after every step. */
  readonly refine?: string;
  /** Progress events (the CLI draws a bar or prints lines). */
  readonly onProgress?: (p: {
    phase: 'corpus' | 'random' | 'shrink';
    done: number;
    total: number;
    failed: number;
  }) => void;
}

/** What a run returns to the CLI. */
export interface RunOutcome {
  readonly results: Results;
  readonly passed: number;
  readonly failed: number;
  readonly steps: number;
  readonly lengths: readonly number[];
  readonly shrinks: readonly ShrinkResult[];
  readonly timings: { readonly corpusMs: number; readonly randomMs: number; readonly shrinkMs: number };
  /** Set when the adapter could not be opened. */
  readonly openError?: string;
}

/** The random trace indices of shard `index` of `count` (1-based): every `count`-th index. */
export function shardIndices(runs: number, shard: { index: number; count: number }): number[] {
  const out: number[] = [];
  for (let i = shard.index - 1; i < runs; i += shard.count) out.push(i);
  return out;
}

function knownFeatures(): string[] {
  return loadVocabularies(DEFAULT_SPEC_DIR).features.map((f) => f.name);
}

/** Opens the adapter, checks its declaration and the request against each other. */
async function openChecked(
  opts: RunOptions,
): Promise<{ adapter: Adapter; caps: Capabilities } | { error: AdapterFailed }> {
  // An in-process adapter runs under the watchdog, so that one that hangs is a timeout and the run goes on.
  const adapter = guardAdapter(createAdapter(opts.adapter, opts.adapterOptions), opts.adapterOptions.timeoutMs);
  let caps: Capabilities;
  try {
    caps = await adapter.open();
  } catch (e) {
    await adapter.close().catch(() => undefined);
    const err = e as AdapterOpenError;
    return {
      error: {
        error: { kind: err.kind ?? 'crash', message: err.message },
        ...(err.stderr ? { stderr: err.stderr.slice(-4096) } : {}),
      },
    };
  }
  const problems = checkCapabilities(caps, knownFeatures());
  if (problems.length > 0) {
    await adapter.close();
    return {
      error: {
        error: {
          kind: 'protocol',
          message: `adapter "${opts.adapter}" declared invalid capabilities: ${problems.join('; ')}`,
        },
      },
    };
  }
  if (!isConfigurable(opts.adapter)) {
    if (opts.profile !== undefined && opts.profile !== caps.profile) {
      await adapter.close();
      throw new UsageError(`adapter "${opts.adapter}" speaks the ${caps.profile} profile, not ${opts.profile}`);
    }
    const missing = (opts.features ?? []).filter((f) => !caps.features.includes(f));
    if (missing.length > 0) {
      await adapter.close();
      throw new UsageError(
        `adapter "${opts.adapter}" does not declare feature(s) ${missing.join(', ')} (it declares: ${caps.features.join(', ') || 'none'})`,
      );
    }
  }
  return { adapter, caps };
}

/** The generator of a run. */
function generatorFor(opts: RunOptions, caps: Capabilities, spec: Spec | undefined): TraceGenerator {
  const features = isConfigurable(opts.adapter) ? caps.features : (opts.features ?? caps.features);
  const base = {
    profile: caps.profile,
    features: [...features],
    platform: caps.platform,
    maxSteps: opts.maxSteps,
    adversarial: opts.adversarial,
  };
  if (opts.clauses.length === 0 || spec === undefined) return new TraceGenerator(base);
  const focus = spec.clauses.filter((c) => clauseMatches(c.id, opts.clauses));
  const probe = new TraceGenerator(base);
  return new TraceGenerator({ ...base, weights: weightsFor(probe.defs, focus, 5) });
}

function loadSpecQuietly(): Spec | undefined {
  try {
    return loadSpec().spec;
  } catch {
    return undefined;
  }
}

/** Runs the conformance suite against one adapter and writes `<reportDir>/results.json`. */
export async function runConformance(opts: RunOptions): Promise<RunOutcome> {
  const spec = loadSpecQuietly();
  const opened = await openChecked(opts);
  const resultsFile = join(opts.reportDir, 'results.json');
  if ('error' in opened) {
    const results: Results = {
      format: RESULTS_FORMAT,
      version: RESULTS_VERSION,
      adapters: { [opts.adapter]: opened.error },
    };
    writeFileAtomic(resultsFile, resultsText(results));
    return {
      results,
      passed: 0,
      failed: 0,
      steps: 0,
      lengths: [],
      shrinks: [],
      timings: { corpusMs: 0, randomMs: 0, shrinkMs: 0 },
      openError: opened.error.error.message,
    };
  }
  const { adapter, caps } = opened;
  const gen = generatorFor(opts, caps, spec);
  const ctx: TraceContext = {
    adapter,
    adapterName: opts.adapter,
    caps,
    gen,
    seed: opts.seed,
    reportDir: opts.reportDir,
    shrinkBudget: opts.shrinkBudget,
    ...(opts.refine === undefined ? {} : { refine: refinerFactory(opts.refine) }),
  };
  const records: TraceRecord[] = [];
  const skipped: { file: string; reason: string }[] = [];
  let failedSoFar = 0;
  try {
    // 1. The regression corpus, first (in shard 1 only, so merged shards count it once).
    const t0 = performance.now();
    if (opts.corpusDir !== undefined && opts.shard.index === 1) {
      const entries = loadCorpus(opts.corpusDir, caps);
      const runnable = entries.filter((e) => e.trace !== undefined);
      for (const e of entries) if (e.skip !== undefined) skipped.push({ file: relativePath(e.file), reason: e.skip });
      for (const e of runnable) {
        const r = await runCorpusTrace(adapter, caps, e, ctx.refine);
        records.push({ ...r, ...(r.file === undefined ? {} : { file: r.file }) });
        if (r.failure) failedSoFar++;
        opts.onProgress?.({ phase: 'corpus', done: records.length, total: runnable.length, failed: failedSoFar });
      }
    }
    // 2. Random traces of this shard.
    const t1 = performance.now();
    const indices = shardIndices(opts.runs, opts.shard);
    const progress = (done: number, failed: number) =>
      opts.onProgress?.({ phase: 'random', done, total: indices.length, failed });
    let pool: WorkerPool | undefined;
    let randomRecords: TraceRecord[];
    if (opts.jobs > 1 && indices.length > 1) {
      if (!isPortable(opts.adapter))
        throw new UsageError(`adapter "${opts.adapter}" exists only in this process; run it with --jobs 1`);
      pool = new WorkerPool(Math.min(opts.jobs, indices.length), opts, await workerEntry());
      randomRecords = await pool.checkAll(indices, (done, failed) => progress(done, failedSoFar + failed));
    } else {
      randomRecords = [];
      let failed = 0;
      for (const i of indices) {
        const r = await runIndex(ctx, i);
        randomRecords.push(r);
        if (r.failure) failed++;
        progress(randomRecords.length, failedSoFar + failed);
      }
    }
    records.push(...randomRecords);
    // 3. Shrink the first failure of every clause.
    const t2 = performance.now();
    const toShrink = shrinkSelection(records);
    const byKey = new Map(records.map((r) => [r.key, r]));
    let shrinks: ShrinkResult[] = [];
    if (toShrink.length > 0) {
      const jobs = toShrink.map((k) => ({ index: Number(k.slice('random/'.length)), failure: byKey.get(k)!.failure! }));
      if (pool !== undefined)
        shrinks = await pool.shrinkAll(jobs, (done) =>
          opts.onProgress?.({ phase: 'shrink', done, total: jobs.length, failed: 0 }),
        );
      else
        for (const j of jobs) {
          shrinks.push(await shrinkIndex(ctx, j.index, j.failure));
          opts.onProgress?.({ phase: 'shrink', done: shrinks.length, total: jobs.length, failed: 0 });
        }
    }
    await pool?.close();
    const t3 = performance.now();
    const settings: RunSettings = {
      seed: opts.seed,
      runs: opts.runs,
      maxSteps: opts.maxSteps,
      adversarial: opts.adversarial,
      clauses: [...opts.clauses],
      features: [...gen.config.features].sort(),
      corpus: opts.corpusDir !== undefined,
    };
    const entry = aggregate({
      caps,
      settings,
      adapterName: opts.adapter,
      records,
      shrinks,
      skipped,
      shard: opts.shard,
      spec,
    });
    const results: Results = { format: RESULTS_FORMAT, version: RESULTS_VERSION, adapters: { [caps.name]: entry } };
    writeFileAtomic(resultsFile, resultsText(results));
    return {
      results,
      passed: entry.traces.passed,
      failed: entry.traces.failed,
      steps: entry.steps,
      lengths: randomRecords.map((r) => r.length),
      shrinks,
      timings: { corpusMs: t1 - t0, randomMs: t2 - t1, shrinkMs: t3 - t2 },
    };
  } finally {
    await adapter.close();
  }
}

// ================================================================================================= worker threads

interface WorkerInit {
  readonly ioasidConformanceWorker: true;
  readonly opts: Omit<RunOptions, 'onProgress'>;
}
type ToWorker =
  { type: 'check'; index: number } | { type: 'shrink'; index: number; failure: Failure } | { type: 'close' };
type FromWorker =
  | { type: 'ready' }
  | { type: 'record'; record: TraceRecord }
  | { type: 'shrunk'; result: ShrinkResult }
  | { type: 'fatal'; message: string };

/**
 * The entry of a worker thread: this module bundled into JavaScript (conformance/worker-bundle.ts), whose bottom
 * lines start {@link workerMain}; or, when no bundle can be made, an ES module (a data: URL) that registers tsx in
 * the worker and imports this module's source. (A worker does not inherit the TypeScript loader of its parent.)
 */
async function workerEntry(): Promise<URL> {
  const bundle = await bundledEntry('conformance/runner.ts');
  if (bundle !== undefined) return bundle;
  const code = `import { register } from ${JSON.stringify(tsxApiUrl())};\nregister();\nawait import(${JSON.stringify(import.meta.url)});\n`;
  return new URL(`data:text/javascript,${encodeURIComponent(code)}`);
}

/** The file URL of tsx's ESM API (`tsx/esm/api`), found through its package.json (import.meta.resolve is not always there). */
function tsxApiUrl(): string {
  const require = createRequire(import.meta.url);
  const pkgPath = require.resolve('tsx/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as {
    exports?: Record<string, { import?: { default?: string } } | string>;
  };
  const entry = pkg.exports?.['./esm/api'];
  const rel = typeof entry === 'object' ? entry.import?.default : undefined;
  if (rel === undefined) throw new Error('cannot find tsx/esm/api to start worker threads');
  return pathToFileURL(join(dirname(pkgPath), rel)).href;
}

/** A pool of worker threads, each with its own adapter instance, fed one trace at a time. */
class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly ready: Promise<void>[] = [];
  private readonly handlers = new Map<Worker, (m: FromWorker) => void>();
  private fatal: string | undefined;

  constructor(n: number, opts: RunOptions, entry: URL) {
    const { onProgress: _ignored, ...plain } = opts;
    const data: WorkerInit = { ioasidConformanceWorker: true, opts: plain };
    for (let i = 0; i < n; i++) {
      const w = new Worker(entry, { workerData: data });
      this.workers.push(w);
      this.ready.push(
        new Promise((resolve, reject) => {
          this.handlers.set(w, (m) =>
            m.type === 'ready' ? resolve() : m.type === 'fatal' ? reject(new Error(m.message)) : undefined,
          );
        }),
      );
      w.on('message', (m: FromWorker) => {
        if (m.type === 'fatal') this.fatal = m.message;
        this.handlers.get(w)?.(m);
      });
      w.on('error', (e) => {
        this.fatal = e.message;
        this.handlers.get(w)?.({ type: 'fatal', message: e.message });
      });
    }
  }

  /** Feeds `items` to the workers one at a time; returns the answers in item order. */
  private async feed<I, O>(
    items: readonly I[],
    send: (w: Worker, item: I) => void,
    take: (m: FromWorker) => O | undefined,
    onDone: (done: number) => void,
  ): Promise<O[]> {
    await Promise.all(this.ready);
    const out: O[] = new Array<O>(items.length);
    let next = 0;
    let done = 0;
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            let current = -1;
            const pump = () => {
              if (next >= items.length) return resolve();
              current = next++;
              send(w, items[current]!);
            };
            this.handlers.set(w, (m) => {
              if (m.type === 'fatal') return reject(new Error(`worker failed: ${m.message}`));
              const o = take(m);
              if (o === undefined) return;
              out[current] = o;
              onDone(++done);
              pump();
            });
            pump();
          }),
      ),
    );
    if (this.fatal !== undefined) throw new Error(`worker failed: ${this.fatal}`);
    return out;
  }

  checkAll(indices: readonly number[], onDone: (done: number, failed: number) => void): Promise<TraceRecord[]> {
    let failed = 0;
    return this.feed(
      indices,
      (w, index) => w.postMessage({ type: 'check', index } satisfies ToWorker),
      (m) => {
        if (m.type !== 'record') return undefined;
        if (m.record.failure) failed++;
        return m.record;
      },
      (done) => onDone(done, failed),
    );
  }

  shrinkAll(
    jobs: readonly { index: number; failure: Failure }[],
    onDone: (done: number) => void,
  ): Promise<ShrinkResult[]> {
    return this.feed(
      jobs,
      (w, j) => w.postMessage({ type: 'shrink', index: j.index, failure: j.failure } satisfies ToWorker),
      (m) => (m.type === 'shrunk' ? m.result : undefined),
      onDone,
    );
  }

  async close(): Promise<void> {
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            w.once('exit', () => resolve());
            w.postMessage({ type: 'close' } satisfies ToWorker);
          }),
      ),
    );
  }
}

/** The body of a worker thread: opens its own adapter and serves check / shrink requests. */
async function workerMain(init: WorkerInit): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker) => port.postMessage(m);
  const opts = init.opts as RunOptions;
  let opened: Awaited<ReturnType<typeof openChecked>>;
  try {
    opened = await openChecked(opts);
  } catch (e) {
    return post({ type: 'fatal', message: (e as Error).message });
  }
  if ('error' in opened) return post({ type: 'fatal', message: opened.error.error.message });
  const { adapter, caps } = opened;
  const ctx: TraceContext = {
    adapter,
    adapterName: opts.adapter,
    caps,
    gen: generatorFor(opts, caps, opts.clauses.length > 0 ? loadSpecQuietly() : undefined),
    seed: opts.seed,
    reportDir: opts.reportDir,
    shrinkBudget: opts.shrinkBudget,
    ...(opts.refine === undefined ? {} : { refine: refinerFactory(opts.refine) }),
  };
  port.on('message', (m: ToWorker) => {
    void (async () => {
      try {
        if (m.type === 'check') post({ type: 'record', record: await runIndex(ctx, m.index) });
        else if (m.type === 'shrink') post({ type: 'shrunk', result: await shrinkIndex(ctx, m.index, m.failure) });
        else {
          await adapter.close();
          port.close();
        }
      } catch (e) {
        post({ type: 'fatal', message: (e as Error).stack ?? (e as Error).message });
      }
    })();
  });
  post({ type: 'ready' });
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.ioasidConformanceWorker === true) {
  void workerMain(workerData as WorkerInit);
}

// ================================================================================================= shrinking a trace file

/** `steps` without `[start, start + count)`, references renumbered; undefined when a kept step refers to a removed one. */
export function removeSteps(steps: readonly Command[], start: number, count: number): Command[] | undefined {
  const out: Command[] = [];
  for (let i = 0; i < steps.length; i++) {
    if (i >= start && i < start + count) continue;
    const s = steps[i]!;
    let copy: Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(s)) {
      if (typeof v !== 'object' || v === null || typeof (v as { ref?: unknown }).ref !== 'number') continue;
      const ref = (v as { ref: number }).ref;
      if (ref >= start && ref < start + count) return undefined;
      if (ref >= start + count) {
        copy ??= { ...s };
        copy[k] = { ...(v as object), ref: ref - count };
      }
    }
    out.push((copy ?? s) as Command);
  }
  return out;
}

/**
 * Shrinks a failing trace by deleting steps (largest chunks first, references renumbered), keeping a candidate only
 * when it fails the same way. For traces that did not come from a generator (hand-written, recorded, or edited).
 */
export async function shrinkTraceSteps(
  adapter: Adapter,
  caps: Capabilities,
  steps: readonly Command[],
  original: Failure,
  budget: number,
  refine?: RefinerFactory,
): Promise<{ steps: Command[]; failure: Failure; runs: number }> {
  let cur = steps.slice(0, Math.min(steps.length, original.step + 1));
  let failure = original;
  let runs = 0;
  const tryCandidate = async (c: Command[]): Promise<boolean> => {
    if (runs >= budget) return false;
    runs++;
    const v = await runAndCheck(adapter, caps, c, false, refine);
    if (v.failure !== undefined && sameFailure(v.failure, original)) {
      cur = c.slice(0, v.failure.step + 1);
      failure = v.failure;
      return true;
    }
    return false;
  };
  // The prefix up to the failing step must still fail (it does unless the implementation is flaky).
  if (!(await tryCandidate(cur))) return { steps: [...steps], failure: original, runs };
  // Removes [from, to) when that leaves the failing (last) step and orphans no reference.
  const tryRemove = async (from: number, to: number): Promise<boolean> => {
    const start = Math.max(0, from);
    const count = Math.min(to, cur.length - 1) - start;
    if (count <= 0) return false;
    const c = removeSteps(cur, start, count);
    return c !== undefined && (await tryCandidate(c));
  };
  for (;;) {
    const before = cur.length;
    // 1. Chunks, largest first, at a stride of their size from the end (the first chunk may be partial).
    for (let chunk = Math.max(1, Math.floor(cur.length / 2)); chunk >= 1 && runs < budget;) {
      let progress = false;
      for (let start = cur.length - 1 - chunk; start > -chunk && runs < budget; start -= chunk)
        if (await tryRemove(start, start + chunk)) progress = true;
      if (!progress) chunk = Math.floor(chunk / 2);
    }
    // 2. Once short: every pair of steps, adjacent or not (a setup step and the step that uses it, such as a bind
    //    and the attach of the same device, go only together, and a strided chunk rarely holds both).
    if (cur.length <= PAIR_SHRINK_MAX)
      pairs: for (let i = cur.length - 2; i >= 1 && runs < budget; i--)
        for (let j = i - 1; j >= 0 && runs < budget; j--) {
          const c = removeSteps(cur, i, 1);
          const d = c === undefined ? undefined : removeSteps(c, j, 1);
          if (d !== undefined && (await tryCandidate(d))) break pairs;
        }
    // 3. Once short: an object reference pointed at an object an earlier step made (an attach to the IOAS itself
    //    rather than to a HWPT built on it), which leaves the steps that built the later object to delete.
    let repointed = false;
    if (cur.length === before && cur.length <= PAIR_SHRINK_MAX)
      repoint: for (let i = cur.length - 1; i >= 1 && runs < budget; i--)
        for (const [k, v] of Object.entries(cur[i]!)) {
          const ref = (v as { ref?: unknown; field?: unknown } | null)?.ref;
          if (typeof ref !== 'number' || (v as { field?: unknown }).field !== undefined) continue;
          for (let to = 0; to < ref && runs < budget; to++) {
            const c = [...cur];
            c[i] = { ...cur[i]!, [k]: { ref: to } };
            if (await tryCandidate(c)) {
              repointed = true;
              break repoint;
            }
          }
        }
    if ((cur.length === before && !repointed) || runs >= budget) break;
  }
  return { steps: cur, failure, runs };
}

/** The longest trace whose pairs of steps {@link shrinkTraceSteps} tries to remove together. */
const PAIR_SHRINK_MAX = 16;

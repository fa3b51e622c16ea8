/**
 * `npm run mutants`: the detection benchmark of the bug catalogue. For every catalogued bug and several seeds it
 * runs what the default `ioasid-conformance run --adapter buggy-<bug>` runs — the regression corpus, then the random
 * traces 0…99 of the seed with the default generator settings — stopping at the first failing trace, and shrinks that
 * failure the way the run does. It prints per bug: caught or not (and by what: the corpus, or random trace n), the
 * median time to the first failure, the median length of the shrunk trace; then the totals, ending with
 * `caught N of M`.
 *
 * "Caught" means caught by the default run (corpus included) with every seed. The column `random` says whether the
 * random traces alone catch it too: a bug only the corpus catches is a generator gap.
 *
 * usage: tsx conformance/bugs/mutants.ts [--seeds N] [--bug NAME[,NAME…]] [--json FILE] [--quiet]
 *
 * Not for: CI gating on time (timings depend on the machine); the tests in test/bugs/ assert detection.
 *
 * @module
 */
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Capabilities } from '../adapter.ts';
import { createAdapter } from '../adapters/registry.ts';
import {
  loadCorpus,
  readTraceFile,
  runAndCheck,
  runCorpusTrace,
  runIndex,
  shrinkIndex,
  shrinkTraceSteps,
  writeFileAtomic,
  type Failure,
  type TraceContext,
} from '../runner.ts';
import { DEFAULT_ADVERSARIAL, DEFAULT_MAX_STEPS, TraceGenerator } from '../../generators/trace.ts';
import type { Command } from '../../src/reference/commands.ts';
import { TRACE_FORMAT, TRACE_VERSION, encodeTrace } from '../../src/reference/trace.ts';
import { CATALOGUE, type Bug } from './catalogue.ts';

/** The corpus the default run uses. */
const CORPUS_DIR = 'conformance/corpus';
/** Random traces of the default run. */
export const DEFAULT_RUNS = 100;
/** The default run's shrink budget. */
const SHRINK_BUDGET = 1000;

/** The result of one (bug, seed). */
export interface SeedResult {
  readonly seed: number;
  /** Caught by the default run (corpus, then random traces). */
  readonly caught: boolean;
  /** What caught it first: `corpus/<file>` or `random/<n>`. */
  readonly by?: string;
  /** Milliseconds from the start of the run to the first failing trace. */
  readonly msToFailure?: number;
  /** The first random trace that fails, if any (the random traces alone). */
  readonly randomIndex?: number;
  /** Steps of the shrunk counterexample (of the random failure when there is one, else of the corpus one). */
  readonly shrunkSteps?: number;
  /** The shrunk trace file (replayable with `ioasid-conformance replay FILE --adapter buggy-<bug>`). */
  readonly file?: string;
  /**
   * Whether the shrunk counterexample conforms on the reference (configured like the buggy adapter): a failure that
   * the reference shares is not the bug's, and does not count as caught.
   */
  readonly referenceConforms?: boolean;
  /** Milliseconds spent shrinking. */
  readonly msShrink?: number;
  /** The failure kind and clauses of the first failure. */
  readonly failure?: { kind: string; clauses: readonly string[]; decisive: string };
}

/** The result of one bug over all seeds. */
export interface BugResult {
  readonly bug: string;
  readonly profile: string;
  readonly chapter: string;
  readonly clauses: readonly string[];
  readonly seeds: readonly SeedResult[];
  /** Caught with every seed. */
  readonly caught: boolean;
  /** Caught by the random traces alone with every seed. */
  readonly caughtByRandom: boolean;
  readonly medianMsToFailure?: number;
  readonly medianShrunkSteps?: number;
}

/** The median of some numbers (the lower middle for an even count), or undefined for none. */
export function median(xs: readonly number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

/** Runs the default run's detection for one bug and one seed. */
export async function mutantSeed(name: string, seed: number, reportDir: string): Promise<SeedResult> {
  const adapterName = `buggy-${name}`;
  const adapter = createAdapter(adapterName);
  const caps: Capabilities = await adapter.open();
  try {
    const t0 = performance.now();
    const gen = new TraceGenerator({
      profile: caps.profile,
      features: [...caps.features],
      platform: caps.platform,
      maxSteps: DEFAULT_MAX_STEPS,
      adversarial: DEFAULT_ADVERSARIAL,
    });
    const ctx: TraceContext = { adapter, adapterName, caps, gen, seed, reportDir, shrinkBudget: SHRINK_BUDGET };
    let first: { by: string; ms: number; failure: Failure; steps?: readonly Command[] } | undefined;
    for (const e of loadCorpus(CORPUS_DIR, caps)) {
      if (e.trace === undefined) continue;
      const r = await runCorpusTrace(adapter, caps, e);
      if (r.failure !== undefined) {
        first = { by: r.key, ms: performance.now() - t0, failure: r.failure, steps: e.trace.steps };
        break;
      }
    }
    let random: { index: number; ms: number; failure: Failure } | undefined;
    for (let i = 0; i < DEFAULT_RUNS; i++) {
      const r = await runIndex(ctx, i);
      if (r.failure !== undefined) {
        random = { index: i, ms: performance.now() - t0, failure: r.failure };
        break;
      }
    }
    first ??=
      random === undefined ? undefined : { by: `random/${random.index}`, ms: random.ms, failure: random.failure };
    if (first === undefined) return { seed, caught: false };
    const s0 = performance.now();
    let shrunkSteps: number;
    let file: string | undefined;
    if (random !== undefined) {
      const sh = await shrinkIndex(ctx, random.index, random.failure);
      shrunkSteps = sh.length;
      file = sh.length >= 0 ? sh.file : undefined;
    } else {
      const sh = await shrinkTraceSteps(adapter, caps, first.steps!, first.failure, SHRINK_BUDGET);
      shrunkSteps = sh.steps.length;
      file = join(reportDir, 'failures', `${adapterName}-corpus.json`);
      writeFileAtomic(file, shrunkTraceText(caps, sh.steps));
    }
    const referenceConforms = file === undefined ? false : await conformsOnReference(file);
    return {
      seed,
      caught: referenceConforms,
      referenceConforms,
      by: first.by,
      msToFailure: first.ms,
      ...(random === undefined ? {} : { randomIndex: random.index }),
      shrunkSteps,
      ...(file === undefined ? {} : { file }),
      msShrink: performance.now() - s0,
      failure: {
        kind: first.failure.kind,
        clauses: [...(first.failure.violated ?? []), ...first.failure.clauses],
        // The clause that decided: the one broken (a violation), or the last one the model evaluated.
        decisive: first.failure.violated?.[0] ?? first.failure.clauses[first.failure.clauses.length - 1] ?? '-',
      },
    };
  } finally {
    await adapter.close();
  }
}

/** Whether a trace file conforms on the reference adapter configured for the trace (as `replay` configures it). */
export async function conformsOnReference(file: string): Promise<boolean> {
  const trace = readTraceFile(file);
  const adapter = createAdapter('reference', {
    profile: trace.profile,
    features: trace.features,
    platform: trace.platform,
  });
  const caps = await adapter.open();
  try {
    return (await runAndCheck(adapter, caps, trace.steps)).failure === undefined;
  } finally {
    await adapter.close();
  }
}

/** The text of a shrunk corpus counterexample (a trace file). */
function shrunkTraceText(caps: Capabilities, steps: readonly Command[]): string {
  return encodeTrace({
    format: TRACE_FORMAT,
    version: TRACE_VERSION,
    profile: caps.profile,
    features: [...caps.features],
    platform: caps.platform,
    steps: [...steps],
    origin: 'shrunk by npm run mutants from a corpus trace',
  });
}

/** Options of {@link runMutants}. */
export interface MutantsOptions {
  readonly seeds: readonly number[];
  readonly bugs?: readonly string[];
  readonly reportDir: string;
  /** Called after each bug. */
  readonly onBug?: (r: BugResult) => void;
}

let warm = false;

/**
 * Runs a few traces on the reference once per process, so that the first bug measured does not pay for loading and
 * compiling the model (times to failure are then comparable between bugs and between jobs).
 */
async function warmUp(reportDir: string): Promise<void> {
  if (warm) return;
  warm = true;
  const adapter = createAdapter('reference');
  const caps = await adapter.open();
  const gen = new TraceGenerator({ profile: caps.profile, features: [...caps.features], platform: caps.platform });
  const ctx: TraceContext = { adapter, adapterName: 'reference', caps, gen, seed: 1, reportDir, shrinkBudget: 0 };
  for (let i = 0; i < 10; i++) await runIndex(ctx, i);
  await adapter.close();
}

/** Runs the detection benchmark over the catalogue (or the named bugs). */
export async function runMutants(opts: MutantsOptions): Promise<BugResult[]> {
  await warmUp(opts.reportDir);
  const names = opts.bugs ?? Object.keys(CATALOGUE);
  const out: BugResult[] = [];
  for (const name of names) {
    const b: Bug | undefined = CATALOGUE[name];
    if (b === undefined) throw new Error(`unknown bug "${name}" (known: ${Object.keys(CATALOGUE).join(', ')})`);
    const seeds: SeedResult[] = [];
    for (const seed of opts.seeds) seeds.push(await mutantSeed(name, seed, opts.reportDir));
    const caught = seeds.every((s) => s.caught);
    const r: BugResult = {
      bug: name,
      profile: b.profile,
      chapter: b.chapter,
      clauses: b.clauses,
      seeds,
      caught,
      caughtByRandom: seeds.every((s) => s.randomIndex !== undefined),
      ...(caught ? { medianMsToFailure: median(seeds.map((s) => s.msToFailure!)) } : {}),
      ...(caught ? { medianShrunkSteps: median(seeds.map((s) => s.shrunkSteps!)) } : {}),
    };
    out.push(r);
    opts.onBug?.(r);
  }
  return out;
}

/**
 * {@link runMutants} over `jobs` child processes (one bug at a time each, from a shared queue); results come back
 * in catalogue order whatever the order they finish in. `jobs` 1 runs in this process.
 */
export async function runMutantsParallel(opts: MutantsOptions & { readonly jobs: number }): Promise<BugResult[]> {
  const names = [...(opts.bugs ?? Object.keys(CATALOGUE))];
  for (const n of names)
    if (CATALOGUE[n] === undefined) throw new Error(`unknown bug "${n}" (known: ${Object.keys(CATALOGUE).join(', ')})`);
  if (opts.jobs <= 1 || names.length <= 1) return runMutants({ ...opts, bugs: names });
  const results = new Map<string, BugResult>();
  let next = 0;
  const self = fileURLToPath(import.meta.url);
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const child = fork(self, ['--worker'], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      const pump = () => {
        if (next >= names.length) {
          child.send({ type: 'bye' });
          return;
        }
        child.send({ type: 'bug', bug: names[next++], seeds: opts.seeds, reportDir: opts.reportDir });
      };
      child.on('message', (m: { type: 'result'; result: BugResult } | { type: 'error'; message: string }) => {
        if (m.type === 'error') return reject(new Error(m.message));
        results.set(m.result.bug, m.result);
        opts.onBug?.(m.result);
        pump();
      });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`a mutants worker exited with ${code}`))));
      pump();
    });
  await Promise.all(Array.from({ length: Math.min(opts.jobs, names.length) }, one));
  return names.map((n) => results.get(n)!);
}

/** The body of a `--worker` child: runs the bugs the parent sends, one at a time. */
function workerMain(): void {
  process.on('message', (m: { type: 'bug'; bug: string; seeds: number[]; reportDir: string } | { type: 'bye' }) => {
    if (m.type === 'bye') {
      process.disconnect();
      return;
    }
    runMutants({ seeds: m.seeds, bugs: [m.bug], reportDir: m.reportDir }).then(
      ([result]) => process.send!({ type: 'result', result }),
      (e: unknown) => process.send!({ type: 'error', message: (e as Error).message }),
    );
  });
}

/** Targets of issue 7. */
export const TARGETS = { msToFailure: 1000, shrunkSteps: 7 } as const;

/** One table line of a bug. */
export function formatBugLine(r: BugResult): string {
  const n = r.seeds.filter((s) => s.caught).length;
  const firstCaught = r.seeds.find((s) => s.caught);
  const by = firstCaught?.by ?? '-';
  const on = firstCaught?.failure?.decisive ?? '-';
  const t = r.medianMsToFailure === undefined ? '-' : `${r.medianMsToFailure.toFixed(0)} ms`;
  const len = r.medianShrunkSteps === undefined ? '-' : String(r.medianShrunkSteps);
  const flags = [
    r.caught ? '' : 'NOT CAUGHT',
    r.seeds.some((s) => s.referenceConforms === false) ? 'counterexample fails on the reference too' : '',
    r.caught && !r.caughtByRandom ? 'corpus only' : '',
    r.medianMsToFailure !== undefined && r.medianMsToFailure > TARGETS.msToFailure ? 'slow' : '',
    r.medianShrunkSteps !== undefined && r.medianShrunkSteps > TARGETS.shrunkSteps ? 'long' : '',
  ].filter((x) => x !== '');
  return `${r.bug.padEnd(30)} ${r.profile.padEnd(10)} ${(r.caught ? 'caught' : 'missed').padEnd(7)} ${`${n}/${r.seeds.length}`.padEnd(5)} ${(r.caughtByRandom ? 'yes' : 'no').padEnd(6)} ${t.padStart(8)} ${len.padStart(6)}  ${on.padEnd(9)} ${by.padEnd(34)} ${flags.join(', ')}`;
}

/** The header of the table. */
export const TABLE_HEADER = `${'bug'.padEnd(30)} ${'profile'.padEnd(10)} ${'result'.padEnd(7)} ${'seeds'.padEnd(5)} ${'random'.padEnd(6)} ${'t first'.padStart(8)} ${'shrunk'.padStart(6)}  ${'on'.padEnd(9)} ${'first caught by'.padEnd(34)} notes`;

/** The totals lines, ending with `caught N of M`. */
export function formatTotals(rs: readonly BugResult[]): string[] {
  const caught = rs.filter((r) => r.caught);
  const times = caught.map((r) => r.medianMsToFailure!);
  const lens = caught.map((r) => r.medianShrunkSteps!);
  return [
    `caught by the random traces alone: ${rs.filter((r) => r.caughtByRandom).length} of ${rs.length}`,
    `within targets (median time to failure <= ${TARGETS.msToFailure} ms, shrunk trace <= ${TARGETS.shrunkSteps} steps): ${
      caught.filter((r) => r.medianMsToFailure! <= TARGETS.msToFailure && r.medianShrunkSteps! <= TARGETS.shrunkSteps)
        .length
    } of ${rs.length}`,
    `median over caught bugs: time to failure ${median(times)?.toFixed(0) ?? '-'} ms, shrunk trace ${median(lens) ?? '-'} steps`,
    `missed: ${
      rs
        .filter((r) => !r.caught)
        .map((r) => r.bug)
        .join(', ') || 'none'
    }`,
    `caught ${caught.length} of ${rs.length}`,
  ];
}

async function main(argv: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      seeds: { type: 'string' },
      bug: { type: 'string' },
      json: { type: 'string' },
      'report-dir': { type: 'string' },
      jobs: { type: 'string' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      'usage: npm run mutants -- [--seeds N] [--bug NAME[,NAME…]] [--jobs N] [--json FILE] [--report-dir DIR] [--quiet]',
    );
    return 0;
  }
  const n = values.seeds === undefined ? 3 : Number(values.seeds);
  if (!Number.isInteger(n) || n < 1 || n > 100)
    throw new Error(`--seeds must be an integer from 1 to 100, got "${values.seeds}"`);
  const bugs = values.bug
    ?.split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '');
  const reportDir = values['report-dir'] ?? 'reports/out/mutants';
  rmSync(join(reportDir, 'failures'), { recursive: true, force: true });
  const jobs = values.jobs === undefined ? Math.min(2, availableParallelism()) : Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64)
    throw new Error(`--jobs must be an integer from 1 to 64, got "${values.jobs}"`);
  const t0 = performance.now();
  console.log(
    `catalogue: ${Object.keys(CATALOGUE).length} bugs; seeds 1..${n}; default run (corpus, then ${DEFAULT_RUNS} random traces)`,
  );
  let done = 0;
  const total = bugs?.length ?? Object.keys(CATALOGUE).length;
  const rs = await runMutantsParallel({
    seeds: Array.from({ length: n }, (_, i) => i + 1),
    ...(bugs === undefined ? {} : { bugs }),
    reportDir,
    jobs,
    onBug: (r) => {
      if (!values.quiet)
        process.stderr.write(`mutants: ${++done}/${total} ${r.bug}: ${r.caught ? 'caught' : 'missed'}\n`);
    },
  });
  console.log(TABLE_HEADER);
  for (const r of rs) console.log(formatBugLine(r));
  console.log('');
  console.log(`time: ${((performance.now() - t0) / 1000).toFixed(1)} s with ${jobs} job(s)`);
  const json = values.json ?? join(reportDir, 'mutants.json');
  writeFileAtomic(json, `${JSON.stringify(rs, null, 2)}\n`);
  console.log(`json: ${json}`);
  for (const l of formatTotals(rs)) console.log(l);
  return rs.every((r) => r.caught) ? 0 : 1;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  if (process.argv[2] === '--worker') workerMain();
  else
    main(process.argv.slice(2)).then(
      (code) => process.exit(code),
      (e: unknown) => {
        console.error(`mutants: ${(e as Error).message}`);
        process.exit(2);
      },
    );
}

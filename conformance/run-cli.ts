/**
 * The `run`, `replay`, `shrink`, `corpus` and `merge` commands of `ioasid-conformance`.
 *
 * Exit codes: 0 — every trace passed; 1 — a trace failed, or the adapter could not be started; 2 — bad input (a
 * flag, a trace file, an adapter name): one message, never a stack trace.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { PROFILES, type Command, type Profile } from '../src/reference/commands.ts';
import { encodeTrace, type Trace } from '../src/reference/trace.ts';
import { loadSpec } from '../src/spec/spec.ts';
import { DEFAULT_SPEC_DIR } from '../src/spec/spec.ts';
import { loadVocabularies } from '../src/spec/vocabulary.ts';
import { parseClausePatterns } from '../generators/coverage.ts';
import { DEFAULT_ADVERSARIAL, DEFAULT_MAX_STEPS, templatesFor } from '../generators/trace.ts';
import { adapterNames, createAdapter, isConfigurable, type AdapterOptions } from './adapters/registry.ts';
import { AdapterOpenError } from './adapters/stdio.ts';
import { guardAdapter } from './adapters/watchdog.ts';
import { UsageError } from './errors.ts';
import { toWireJson } from './protocol.ts';
import { writeRunReports } from './report-cli.ts';
import { DRIVER_NAMES, refinerFactory } from './refine.ts';
import { formatJson } from './schema/export.ts';
import {
  junitXml,
  mergeResults,
  readResultsFile,
  readTraceFile,
  replayCommand,
  resultsText,
  runAndCheck,
  runConformance,
  shrinkTraceSteps,
  writeFileAtomic,
  type AdapterResults,
  type Failure,
  type RunOptions,
} from './runner.ts';

/** Default location of the regression corpus. */
export const DEFAULT_CORPUS_DIR = 'conformance/corpus';
/** Default report directory (`results.json`, `failures/`). */
export const DEFAULT_REPORT_DIR = 'reports/out';

export const RUN_HELP = `usage: ioasid-conformance run [options]

Runs randomized traces against an implementation in lockstep with the reference model. The regression corpus runs
first. Writes <report-dir>/results.json and a trace file per failing trace; prints how to replay each failure.

options:
  --adapter NAME        implementation under test (default: reference); see "Adapters" below
  --profile P           rfc | iommufd | vfio-type1: configures the reference adapters; must match a fixed adapter
  --features A,B        features to generate for (default: all the adapter declares; "none" for none)
  --seed N              the seed (default 1): same seed, same traces, same results.json
  --runs N              random traces (default 100)
  --max-steps N         most templates per trace (default ${DEFAULT_MAX_STEPS})
  --adversarial F       share of adversarial steps, 0..1 (default ${DEFAULT_ADVERSARIAL})
  --clause LIST         focus: IDs (MAP-012), chapters (MAP) or prefixes (MAP-01*); generation favours their
                        commands and the per-clause report lists only them
  --jobs N              worker threads (default 1); results are identical to --jobs 1
  --shard I/N           run every N-th trace starting at I (1-based); merge shards with "merge"
  --report-dir DIR      where results.json and failures/ go (default ${DEFAULT_REPORT_DIR})
  --junit FILE          also write a JUnit XML report
  --timeout MS          time limit of one trace (default 30000): an out-of-process adapter is killed, an in-process
                        one interrupted (a synchronous loop) or abandoned (a promise that never settles); the trace
                        fails as a timeout and the run goes on
  --corpus-dir DIR      the regression corpus (default ${DEFAULT_CORPUS_DIR}); --no-corpus to skip it
  --shrink-budget N     most runs spent shrinking one failure (default 1000)
  --refine              also check refinement (chapter REF): after every step a driver realises the uAPI state on
                        the VT-d hardware model and DMA probes must have the outcome the state implies
  --driver NAME         the driver --refine checks: reference (default) or broken-<bug> (${DRIVER_NAMES.slice(1).join(', ')})
  --quiet               no progress output

exit codes: 0 all traces passed; 1 a trace failed or the adapter could not start; 2 bad input`;

const REPLAY_HELP = `usage: ioasid-conformance replay TRACE [--adapter NAME] [--timeout MS] [--refine [--driver NAME]] [--quiet]

Runs one trace file on an adapter (default: reference) in lockstep with the reference model and prints each step.
Exit code 0 when the trace conforms, 1 when it diverges, 2 on bad input.`;

const SHRINK_HELP = `usage: ioasid-conformance shrink TRACE [--adapter NAME] [--out FILE] [--budget N] [--timeout MS]

Shrinks a failing trace file by deleting steps (references renumbered), keeping only deletions after which the
trace fails the same way. Writes FILE (default: TRACE with .shrunk.json). Exit code 1 when the trace fails (the
shrunk trace is written), 0 when it passes (nothing to shrink), 2 on bad input.`;

const CORPUS_HELP = `usage: ioasid-conformance corpus add TRACE [--name NAME] [--corpus-dir DIR]
       ioasid-conformance corpus list [--corpus-dir DIR]

The regression corpus: traces that run before the random ones on every "run" (conformance/corpus/README.md).`;

const MERGE_HELP = `usage: ioasid-conformance merge RESULTS.json... --out FILE

Merges the results of shards (--shard I/N) of one run, or of runs against different adapters, into one file.`;

type Spec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

function parse(
  argv: readonly string[],
  options: Spec,
  help: string,
  positionals = false,
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean' } },
      allowPositionals: positionals,
      strict: true,
    });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    const command = /^usage: ioasid-conformance (\w+)/.exec(help)?.[1] ?? '';
    throw new UsageError(`${(e as Error).message} (see "ioasid-conformance ${command} --help")`);
  }
}

/** `--refine` / `--driver`: the driver whose refinement is checked, or undefined without `--refine`. */
function refineFlags(refine: string | boolean | undefined, driver: string | boolean | undefined): string | undefined {
  if (driver !== undefined && refine !== true) throw new UsageError('--driver needs --refine');
  if (refine !== true) return undefined;
  const name = typeof driver === 'string' ? driver : 'reference';
  if (!DRIVER_NAMES.includes(name))
    throw new UsageError(`--driver must be one of ${DRIVER_NAMES.join(', ')}, got "${name}"`);
  return name;
}

function intFlag(name: string, v: string | undefined, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return def;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${v}"`);
  return Number(v);
}

function profileFlag(v: string | undefined): Profile | undefined {
  if (v === undefined) return undefined;
  if (!PROFILES.includes(v as Profile))
    throw new UsageError(`--profile must be one of ${PROFILES.join(', ')}, got "${v}"`);
  return v as Profile;
}

function featuresFlag(v: string | undefined): string[] | undefined {
  if (v === undefined) return undefined;
  if (v === 'none' || v === '') return [];
  const known = loadVocabularies(DEFAULT_SPEC_DIR).features.map((f) => f.name);
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const bad = list.filter((f) => !known.includes(f));
  if (bad.length > 0) throw new UsageError(`unknown feature(s) ${bad.join(', ')}; known features: ${known.join(', ')}`);
  return [...new Set(list)].sort();
}

function adapterHelp(): string {
  return `Adapters:\n${adapterNames()
    .map((a) => `  ${a.name.padEnd(28)} ${a.describe}`)
    .join('\n')}`;
}

/** Draws progress: a bar on a terminal, a few plain lines otherwise (CI), nothing with --quiet. */
function progressPrinter(quiet: boolean): RunOptions['onProgress'] {
  if (quiet) return undefined;
  const tty = process.stderr.isTTY === true;
  let lastQuarter = 0;
  let lastPhase = '';
  return ({ phase, done, total, failed }) => {
    if (tty) {
      const width = 30;
      const fill = Math.round((done / Math.max(1, total)) * width);
      process.stderr.write(
        `\r${phase.padEnd(7)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total}${failed > 0 ? `, ${failed} failed` : ''}  `,
      );
      if (done === total) process.stderr.write('\n');
      return;
    }
    // CI: one quiet line per quarter of each phase.
    const quarter = Math.floor((done / Math.max(1, total)) * 4);
    if (phase !== lastPhase) lastQuarter = 0;
    lastPhase = phase;
    if (quarter > lastQuarter || (done === total && lastQuarter < 4)) {
      lastQuarter = done === total ? 4 : quarter;
      console.log(`${phase}: ${done}/${total}${failed > 0 ? `, ${failed} failed` : ''}`);
    }
  };
}

function describeFailure(f: Failure): string {
  const clauses = [...(f.violated ?? []), ...f.clauses.filter((c) => !(f.violated ?? []).includes(c))];
  return `step ${f.step} (${f.kind}): ${f.message}${clauses.length > 0 ? `\n    clauses: ${clauses.join(', ')}` : ''}`;
}

function stats(xs: readonly number[]): string {
  if (xs.length === 0) return 'none';
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `min ${s[0]}, median ${s[Math.floor(s.length / 2)]}, mean ${mean.toFixed(1)}, max ${s[s.length - 1]}`;
}

let epipeHandled = false;

/** Ends quietly when stdout is closed early (`run … | head`) instead of dying with a stack trace. */
function exitQuietlyOnEpipe(): void {
  if (epipeHandled) return;
  epipeHandled = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
    throw e;
  });
}

/** How many unreached clauses no template can produce (a generator is missing) versus not drawn this run. */
function unreachedNote(entry: AdapterResults): string {
  if (entry.unreached.length === 0) return '';
  const ops = new Set<string>(templatesFor(entry.capabilities.profile, entry.settings.features).map((d) => d.op));
  const { spec } = loadSpec();
  const noGen = entry.unreached.filter((id) => !(spec.byId.get(id)?.commands ?? []).some((c) => ops.has(c)));
  const drawable = entry.unreached.filter((id) => !noGen.includes(id));
  return ` (${noGen.length} need commands no generator draws yet; ${drawable.length} drawable but not reached${drawable.length > 0 ? `: ${drawable.slice(0, 12).join(', ')}${drawable.length > 12 ? ', …' : ''}` : ''})`;
}

/** `ioasid-conformance run`. */
export async function runCommand(argv: readonly string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      adapter: { type: 'string' },
      profile: { type: 'string' },
      features: { type: 'string' },
      seed: { type: 'string' },
      runs: { type: 'string' },
      'max-steps': { type: 'string' },
      adversarial: { type: 'string' },
      clause: { type: 'string' },
      jobs: { type: 'string' },
      shard: { type: 'string' },
      'report-dir': { type: 'string' },
      junit: { type: 'string' },
      timeout: { type: 'string' },
      'corpus-dir': { type: 'string' },
      'no-corpus': { type: 'boolean' },
      'shrink-budget': { type: 'string' },
      refine: { type: 'boolean' },
      driver: { type: 'string' },
      quiet: { type: 'boolean' },
    },
    RUN_HELP,
  );
  if (v.help) return (console.log(`${RUN_HELP}\n\n${adapterHelp()}`), 0);
  exitQuietlyOnEpipe();
  const adapter = (v.adapter as string | undefined) ?? 'reference';
  const profile = profileFlag(v.profile as string | undefined);
  const features = featuresFlag(v.features as string | undefined);
  const seed = intFlag('seed', v.seed as string | undefined, 1, 0, 0x7fff_ffff);
  const runs = intFlag('runs', v.runs as string | undefined, 100, 0);
  const maxSteps = intFlag('max-steps', v['max-steps'] as string | undefined, DEFAULT_MAX_STEPS, 1, 100_000);
  const jobs = intFlag('jobs', v.jobs as string | undefined, 1, 1, 256);
  const timeoutMs = intFlag('timeout', v.timeout as string | undefined, 30_000, 1);
  const shrinkBudget = intFlag('shrink-budget', v['shrink-budget'] as string | undefined, 1000, 0);
  const advRaw = v.adversarial as string | undefined;
  const adversarial = advRaw === undefined ? DEFAULT_ADVERSARIAL : Number(advRaw);
  if (advRaw !== undefined && !(/^\d*\.?\d+$/.test(advRaw) && adversarial >= 0 && adversarial <= 1))
    throw new UsageError(`--adversarial must be a number from 0 to 1, got "${advRaw}"`);
  let clauses: string[];
  try {
    clauses = parseClausePatterns(v.clause as string | undefined);
  } catch (e) {
    throw new UsageError(`--clause: ${(e as Error).message}`);
  }
  let shard = { index: 1, count: 1 };
  if (v.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(v.shard as string);
    if (m === null || Number(m[1]) < 1 || Number(m[1]) > Number(m[2]))
      throw new UsageError(`--shard must be I/N with 1 <= I <= N, got "${String(v.shard)}"`);
    shard = { index: Number(m[1]), count: Number(m[2]) };
  }
  if (v['no-corpus'] && v['corpus-dir'] !== undefined)
    throw new UsageError('--no-corpus and --corpus-dir exclude each other');
  const corpusDir = v['no-corpus'] ? undefined : ((v['corpus-dir'] as string | undefined) ?? DEFAULT_CORPUS_DIR);
  if (corpusDir !== undefined && v['corpus-dir'] !== undefined && !existsSync(corpusDir))
    throw new UsageError(`--corpus-dir ${corpusDir}: no such directory`);
  const reportDir = (v['report-dir'] as string | undefined) ?? DEFAULT_REPORT_DIR;
  const refine = refineFlags(v.refine, v.driver);
  const adapterOptions: AdapterOptions = {
    ...(profile === undefined ? {} : { profile }),
    ...(features === undefined || !isConfigurable(adapter) ? {} : { features }),
    timeoutMs,
  };
  // Unknown adapter names fail here, before anything starts.
  createAdapter(adapter, adapterOptions);
  const opts: RunOptions = {
    adapter,
    adapterOptions,
    ...(profile === undefined ? {} : { profile }),
    ...(features === undefined ? {} : { features }),
    seed,
    runs,
    maxSteps,
    adversarial,
    clauses,
    jobs,
    shard,
    reportDir,
    corpusDir,
    shrinkBudget,
    ...(refine === undefined ? {} : { refine }),
    ...(v.quiet ? {} : { onProgress: progressPrinter(false) }),
  };
  const t0 = performance.now();
  const out = await runConformance(opts);
  const elapsed = (performance.now() - t0) / 1000;
  const resultsFile = join(reportDir, 'results.json');
  if (out.openError !== undefined) {
    console.log(`adapter "${adapter}" could not be started: ${out.openError}`);
    const entry = Object.values(out.results.adapters)[0];
    if (entry !== undefined && 'error' in entry && entry.stderr) console.log(`its stderr:\n${entry.stderr}`);
    console.log(`results: ${resultsFile}`);
    for (const line of writeRunReports(reportDir, out.results)) console.log(line);
    console.log('0 passed, 1 failed');
    return 1;
  }
  const [name, entry] = Object.entries(out.results.adapters)[0]!;
  if ('error' in entry) return 1;
  const shrunk = new Map(out.shrinks.map((s) => [s.key, s]));
  for (const f of entry.failures) {
    const s = shrunk.get(f.trace);
    if (s === undefined) continue;
    const file = relative(process.cwd(), s.file);
    console.log(`\nFAIL ${f.trace}: ${describeFailure(s.failure)}`);
    console.log(
      s.length >= 0
        ? `    trace: ${file} (shrunk to ${s.length} steps in ${s.runs} runs; as generated: ${f.file})`
        : `    trace: ${f.file} (did not fail again when rerun: not shrunk)`,
    );
    if (f.stderr) console.log(`    adapter stderr (last lines): ${f.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    console.log(
      `    replay: ${s.length >= 0 ? replayCommand(file, adapter) : f.replay}${refine === undefined ? '' : ` --refine --driver ${refine}`}`,
    );
  }
  const corpusFails = entry.failures.filter((f) => f.trace.startsWith('corpus/'));
  for (const f of corpusFails)
    console.log(`\nFAIL ${f.trace}: step ${f.step} (${f.kind}): ${f.message}\n    replay: ${f.replay}`);
  const others = entry.failures.length - out.shrinks.length - corpusFails.length;
  if (others > 0)
    console.log(`\n${others} more failing trace(s) fail on the same clauses; all are listed in ${resultsFile}`);
  const reached = Object.keys(entry.clauses).filter((c) => entry.clauses[c]!.steps > 0).length;
  console.log(
    `\nadapter ${name} (${entry.capabilities.profile}; features: ${entry.settings.features.join(', ') || 'none'})`,
  );
  if (entry.corpus.total > 0 || entry.corpus.skipped.length > 0)
    console.log(
      `corpus: ${entry.corpus.passed} passed, ${entry.corpus.failed} failed, ${entry.corpus.skipped.length} skipped`,
    );
  console.log(
    `clauses: ${reached} reached${entry.partial === undefined ? `, ${entry.unreached.length} applicable not reached${unreachedNote(entry)}` : ''}`,
  );
  console.log(
    `trace lengths: ${stats(out.lengths)}; histogram ${Object.entries(entry.lengths)
      .map(([k, n]) => `${k}:${n}`)
      .join(' ')}`,
  );
  const checkS = (out.timings.corpusMs + out.timings.randomMs) / 1000;
  console.log(
    `time: ${elapsed.toFixed(2)} s; ${entry.steps} steps checked in ${checkS.toFixed(2)} s (${Math.round(entry.steps / Math.max(checkS, 1e-6))} steps/s)` +
      (out.shrinks.length > 0 ? `; shrinking ${(out.timings.shrinkMs / 1000).toFixed(2)} s` : ''),
  );
  console.log(`results: ${resultsFile}`);
  for (const line of writeRunReports(reportDir, out.results)) console.log(line);
  if (v.junit !== undefined) {
    writeFileAtomic(v.junit as string, junitXml(out.results));
    console.log(`junit: ${String(v.junit)}`);
  }
  console.log(`${out.passed} passed, ${out.failed} failed`);
  return out.failed > 0 ? 1 : 0;
}

/** Opens an adapter for a trace: the reference family takes the trace's profile, features and platform. */
async function openFor(adapterName: string, trace: Trace, timeoutMs: number) {
  const opts: AdapterOptions = isConfigurable(adapterName)
    ? { profile: trace.profile, features: trace.features, platform: trace.platform, timeoutMs }
    : { timeoutMs };
  const adapter = guardAdapter(createAdapter(adapterName, opts), timeoutMs);
  try {
    const caps = await adapter.open();
    if (caps.profile !== trace.profile) {
      await adapter.close();
      throw new UsageError(
        `adapter "${adapterName}" speaks the ${caps.profile} profile; the trace is for ${trace.profile}`,
      );
    }
    const warnings: string[] = [];
    const missing = trace.features.filter((f) => !caps.features.includes(f));
    if (missing.length > 0)
      warnings.push(`the trace assumes feature(s) the adapter does not declare: ${missing.join(', ')}`);
    if (toWireJson(caps.platform) !== toWireJson(trace.platform))
      warnings.push(
        `the trace was made for platform "${trace.platform.name}"; the adapter runs "${caps.platform.name}", which the model follows`,
      );
    return { adapter, caps, warnings };
  } catch (e) {
    if (e instanceof AdapterOpenError) throw new AdapterStartError(e.message, e.stderr);
    throw e;
  }
}

class AdapterStartError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
  ) {
    super(message);
  }
}

/** A command on one line: `OP field=value …`, references as `@step`, u64s in hex, user memory as `buf0+0x…`. */
export function formatCommand(cmd: Command): string {
  const fmt = (v: unknown): string => {
    if (typeof v === 'bigint') return `0x${v.toString(16)}`;
    if (typeof v === 'object' && v !== null && 'ref' in v) {
      const r = v as { ref: number; field?: string };
      return `@${r.ref}${r.field === undefined ? '' : `.${r.field}`}`;
    }
    if (typeof v === 'object' && v !== null && 'buf' in v) {
      const u = v as { buf: number; off: bigint };
      return `buf${u.buf}+${fmt(u.off)}`;
    }
    if (typeof v === 'object' && v !== null && 'bad' in v) return `<${(v as { bad: string }).bad}>`;
    if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'string') return String(v);
    return toWireJson(v);
  };
  const args = Object.entries(cmd)
    .filter(([k]) => k !== 'op')
    .map(([k, v]) => `${k}=${fmt(v)}`);
  return [cmd.op, ...args].join(' ');
}

function outcomeText(o: { ok: boolean; errno?: string; out?: object }): string {
  return `${o.ok ? 'ok' : o.errno}${o.out !== undefined && Object.keys(o.out).length > 0 ? ` ${toWireJson(o.out)}` : ''}`;
}

/** `ioasid-conformance replay`. */
export async function replayTraceCommand(argv: readonly string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    {
      adapter: { type: 'string' },
      timeout: { type: 'string' },
      refine: { type: 'boolean' },
      driver: { type: 'string' },
      quiet: { type: 'boolean' },
    },
    REPLAY_HELP,
    true,
  );
  if (v.help) return (console.log(REPLAY_HELP), 0);
  exitQuietlyOnEpipe();
  if (positionals.length !== 1) throw new UsageError(`replay takes one trace file\n\n${REPLAY_HELP}`);
  const file = positionals[0]!;
  const trace = readTraceFile(file);
  const adapterName = (v.adapter as string | undefined) ?? 'reference';
  const timeoutMs = intFlag('timeout', v.timeout as string | undefined, 30_000, 1);
  let opened;
  try {
    opened = await openFor(adapterName, trace, timeoutMs);
  } catch (e) {
    if (e instanceof AdapterStartError) {
      console.log(
        `adapter "${adapterName}" could not be started: ${e.message}${e.stderr ? `\nits stderr:\n${e.stderr}` : ''}`,
      );
      return 1;
    }
    throw e;
  }
  const { adapter, caps, warnings } = opened;
  try {
    for (const w of warnings) console.log(`warning: ${w}`);
    const refine = refineFlags(v.refine, v.driver);
    const verdict = await runAndCheck(
      adapter,
      caps,
      trace.steps,
      true,
      refine === undefined ? undefined : refinerFactory(refine),
    );
    if (!v.quiet)
      for (const [i, s] of (verdict.detail ?? []).entries()) {
        const same = outcomeText(s.expected) === outcomeText(s.observed);
        console.log(`#${i} ${formatCommand(s.cmd)}`);
        console.log(
          `    ${same ? 'ok  ' : 'DIFF'} implementation: ${outcomeText(s.observed)}${same ? '' : `\n         model:          ${outcomeText(s.expected)}`}`,
        );
        if (s.clauses.length > 0) console.log(`         clauses: ${s.clauses.join(', ')}`);
      }
    if (verdict.failure === undefined) {
      console.log(`${file}: conforms (${verdict.steps} steps on ${adapterName})`);
      console.log('1 passed, 0 failed');
      return 0;
    }
    console.log(`${file}: FAILS at ${describeFailure(verdict.failure)}`);
    if (verdict.failure.stderr) console.log(`adapter stderr:\n${verdict.failure.stderr}`);
    console.log('0 passed, 1 failed');
    return 1;
  } finally {
    await adapter.close();
  }
}

/** `ioasid-conformance shrink`. */
export async function shrinkCommand(argv: readonly string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    { adapter: { type: 'string' }, out: { type: 'string' }, budget: { type: 'string' }, timeout: { type: 'string' } },
    SHRINK_HELP,
    true,
  );
  if (v.help) return (console.log(SHRINK_HELP), 0);
  if (positionals.length !== 1) throw new UsageError(`shrink takes one trace file\n\n${SHRINK_HELP}`);
  const file = positionals[0]!;
  const trace = readTraceFile(file);
  const adapterName = (v.adapter as string | undefined) ?? 'reference';
  const budget = intFlag('budget', v.budget as string | undefined, 2000, 1);
  const timeoutMs = intFlag('timeout', v.timeout as string | undefined, 30_000, 1);
  const out = (v.out as string | undefined) ?? file.replace(/(\.json)?$/, '.shrunk.json');
  let opened;
  try {
    opened = await openFor(adapterName, trace, timeoutMs);
  } catch (e) {
    if (e instanceof AdapterStartError)
      return (console.log(`adapter "${adapterName}" could not be started: ${e.message}`), 1);
    throw e;
  }
  const { adapter, caps } = opened;
  try {
    const first = await runAndCheck(adapter, caps, trace.steps);
    if (first.failure === undefined) {
      console.log(`${file}: conforms on ${adapterName}; nothing to shrink`);
      return 0;
    }
    const r = await shrinkTraceSteps(adapter, caps, trace.steps, first.failure, budget);
    const shrunk: Trace = {
      ...trace,
      steps: r.steps,
      origin: `shrunk from ${basename(file)} on ${adapterName} (${trace.steps.length} -> ${r.steps.length} steps, ${r.runs} runs)`,
      clauses: [...new Set([...(r.failure.violated ?? []), ...r.failure.clauses])],
    };
    writeFileAtomic(out, encodeTrace(shrunk));
    console.log(
      `${file}: ${trace.steps.length} -> ${r.steps.length} steps (${r.runs} runs); fails at ${describeFailure(r.failure)}`,
    );
    console.log(`wrote ${out}\nreplay: ${replayCommand(out, adapterName)}`);
    return 1;
  } finally {
    await adapter.close();
  }
}

/** A short content hash of a trace's steps (corpus de-duplication). */
function stepsHash(t: Trace): string {
  return createHash('sha256').update(toWireJson(t.steps)).update(t.profile).digest('hex').slice(0, 10);
}

/** `ioasid-conformance corpus`. */
export async function corpusCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'list') {
    const { values: v } = parse(rest, { 'corpus-dir': { type: 'string' } }, CORPUS_HELP);
    if (v.help) return (console.log(CORPUS_HELP), 0);
    const dir = (v['corpus-dir'] as string | undefined) ?? DEFAULT_CORPUS_DIR;
    const names = existsSync(dir)
      ? readdirSync(dir)
          .filter((n) => n.endsWith('.json'))
          .sort()
      : [];
    for (const n of names) {
      const t = readTraceFile(join(dir, n));
      console.log(
        `${n.padEnd(40)} ${t.profile.padEnd(10)} ${String(t.steps.length).padStart(4)} steps  ${(t.clauses ?? []).join(',')}`,
      );
    }
    console.log(`${names.length} corpus trace(s) in ${dir}`);
    return 0;
  }
  if (sub !== 'add')
    throw new UsageError(
      sub === undefined || sub === '--help' ? CORPUS_HELP : `unknown corpus command "${sub}"\n\n${CORPUS_HELP}`,
    );
  const { values: v, positionals } = parse(
    rest,
    { name: { type: 'string' }, 'corpus-dir': { type: 'string' } },
    CORPUS_HELP,
    true,
  );
  if (v.help) return (console.log(CORPUS_HELP), 0);
  if (positionals.length !== 1) throw new UsageError(`corpus add takes one trace file\n\n${CORPUS_HELP}`);
  const file = positionals[0]!;
  const trace = readTraceFile(file);
  const dir = (v['corpus-dir'] as string | undefined) ?? DEFAULT_CORPUS_DIR;
  const hash = stepsHash(trace);
  const name = (v.name as string | undefined) ?? `${trace.profile}-${(trace.clauses ?? [])[0] ?? 'trace'}-${hash}`;
  if (!/^[A-Za-z0-9._+-]+$/.test(name))
    throw new UsageError(`--name may use letters, digits and . _ + - only, got "${name}"`);
  const existing = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.json')) : [];
  for (const n of existing) {
    const t = readTraceFile(join(dir, n));
    if (stepsHash(t) === hash) {
      console.log(`${file}: already in the corpus as ${join(dir, n)}`);
      return 0;
    }
  }
  const target = join(dir, name.endsWith('.json') ? name : `${name}.json`);
  if (existsSync(target)) throw new UsageError(`${target} exists; choose another --name`);
  const entry: Trace = { ...trace, origin: trace.origin ?? `added from ${basename(file)}` };
  writeFileAtomic(target, await formatJson(encodeTrace(entry), target));
  console.log(`added ${target} (${trace.steps.length} steps, ${trace.profile})`);
  return 0;
}

/** `ioasid-conformance merge`. */
export function mergeCommand(argv: readonly string[]): number {
  const { values: v, positionals } = parse(argv, { out: { type: 'string' } }, MERGE_HELP, true);
  if (v.help) return (console.log(MERGE_HELP), 0);
  if (positionals.length === 0) throw new UsageError(`merge takes results files\n\n${MERGE_HELP}`);
  if (v.out === undefined) throw new UsageError(`merge needs --out FILE\n\n${MERGE_HELP}`);
  const all = positionals.map((p) => readResultsFile(p));
  let merged;
  try {
    merged = mergeResults(all, loadSpec().spec);
  } catch (e) {
    throw new UsageError(`cannot merge: ${(e as Error).message}`);
  }
  writeFileAtomic(v.out as string, resultsText(merged));
  let passed = 0;
  let failed = 0;
  for (const a of Object.values(merged.adapters)) {
    if ('error' in a) failed++;
    else {
      passed += a.traces.passed;
      failed += a.traces.failed;
      if (a.partial !== undefined)
        console.log(`note: shards ${a.partial.shards.join(',')} of ${a.partial.shardCount} so far`);
    }
  }
  console.log(`wrote ${String(v.out)}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

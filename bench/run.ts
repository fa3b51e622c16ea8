/**
 * `npm run bench`: how fast and how big the suite runs, each figure next to the limit this machine reaches for the
 * same work in the same run (so the ratios survive a noisy machine), with its target. Prints a table and writes
 * `reports/bench/latest.json` (git-ignored). BENCHMARKS.md says how to read it.
 *
 * 1. model step throughput at 1e3, 1e5, 1e6 live mappings vs a bare sorted-btree interval step (bench/model.ts);
 * 2. end-to-end conformance steps/s in process, and the `--jobs 2` speed-up;
 * 3. the stdio adapter vs in process, next to a bare JSON-lines echo child (the transport's limit);
 * 4. refinement (`--refine`, the hardware model on): traces/s and steps/s;
 * 5. time to find and shrink each catalogued bug: the last `npm run mutants` (reports/out/mutants/mutants.json),
 *    plus a one-seed run of the bugs it did not cover;
 * 6. peak RSS of a process holding 1e6 mappings (the 1e6 child of figure 1).
 *
 * usage: tsx bench/run.ts [--quick] [--skip LIST] [--json FILE]   (LIST: model,e2e,stdio,refine,mutants)
 *
 * Not for: CI (benchmarks are not tests; nothing here fails a build), or comparing absolute numbers across machines.
 *
 * @module
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { toWireJson } from '../conformance/protocol.ts';
import { checkReplies, traceSeed, writeFileAtomic, runConformance, type RunOptions } from '../conformance/runner.ts';
import { median, runMutantsParallel, TARGETS, type BugResult } from '../conformance/bugs/mutants.ts';
import { executeTrace, REFERENCE_FEATURES, referenceCapabilities } from '../conformance/adapters/reference.ts';
import { CATALOGUE } from '../conformance/bugs/catalogue.ts';
import { DEFAULT_ADVERSARIAL, DEFAULT_MAX_STEPS, TraceGenerator } from '../generators/trace.ts';
import { defaultPlatform } from '../src/reference/platform.ts';
import type { Command } from '../src/reference/commands.ts';
import type { Template } from '../generators/template.ts';
import fc from 'fast-check';
import { benchModelAt, type ModelBenchResult } from './model.ts';
import { formatSummary, summarise } from './profile.ts';

const SELF = fileURLToPath(import.meta.url);

/** One printed figure: what, the value, what it is compared with, the ratio and the target. */
export interface Figure {
  readonly id: string;
  readonly what: string;
  readonly value: number;
  readonly unit: string;
  readonly limit?: { readonly what: string; readonly value: number };
  readonly ratio?: number;
  readonly target?: string;
  readonly met?: boolean;
  readonly note?: string;
}

const fmt = (v: number, digits = 0) =>
  v >= 1e6 ? `${(v / 1e6).toFixed(2)}M` : v >= 1e4 ? `${(v / 1e3).toFixed(1)}k` : v.toFixed(digits);

/** Runs this file as a child for one model size (fresh heap, its own peak RSS). */
function modelChild(n: number, reps: number, modelCycles: number, bareCycles: number): Promise<ModelBenchResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [
        '--expose-gc',
        '--import',
        'tsx',
        SELF,
        '--child-model',
        String(n),
        String(reps),
        String(modelCycles),
        String(bareCycles),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`model benchmark child (${n} mappings) exited with ${code}`));
      resolve(JSON.parse(out.trim().split('\n').pop()!) as ModelBenchResult);
    });
  });
}

/** Where `npm run mutants` writes its results (its default). */
const MUTANTS_JSON = 'reports/out/mutants/mutants.json';

/** The results of the last `npm run mutants`, with their date; none when there are none. */
function lastMutants(file: string): { results: BugResult[]; when: string } {
  try {
    return { results: JSON.parse(readFileSync(file, 'utf8')) as BugResult[], when: statSync(file).mtime.toISOString() };
  } catch {
    return { results: [], when: 'never' };
  }
}

/** Options of a conformance run for the benchmarks. */
function runOpts(dir: string, extra: Partial<RunOptions>): RunOptions {
  return {
    adapter: 'reference',
    adapterOptions: {},
    seed: 1,
    runs: 200,
    maxSteps: DEFAULT_MAX_STEPS,
    adversarial: DEFAULT_ADVERSARIAL,
    clauses: [],
    jobs: 1,
    shard: { index: 1, count: 1 },
    reportDir: dir,
    corpusDir: undefined,
    shrinkBudget: 0,
    ...extra,
  };
}

/** Steps per second of the random phase of a run (median over `reps`); `ms` are the random phases' durations. */
async function runRate(
  dir: string,
  extra: Partial<RunOptions>,
  reps: number,
): Promise<{ stepsPerS: number; steps: number; traces: number; ms: number[] }> {
  const rates: number[] = [];
  const ms: number[] = [];
  let steps = 0;
  let traces = 0;
  for (let r = 0; r < reps; r++) {
    const out = await runConformance(runOpts(join(dir, `run-${r}`), extra));
    if (out.openError !== undefined) throw new Error(`run could not start: ${out.openError}`);
    steps = out.steps;
    traces = out.passed + out.failed;
    // The random phase: generation + adapter + model + comparison (worker threads' start-up included with --jobs).
    ms.push(out.timings.randomMs);
    rates.push(out.steps / (out.timings.randomMs / 1000));
  }
  return { stepsPerS: median(rates)!, steps, traces, ms };
}

/** The traces of a run (seed 1, indices 0…n-1), generated the way the runner does. */
function tracesOf(n: number): Command[][] {
  const features = REFERENCE_FEATURES.iommufd;
  const gen = new TraceGenerator({ profile: 'iommufd', features: [...features], platform: defaultPlatform() });
  const out: Command[][] = [];
  for (let i = 0; i < n; i++)
    fc.assert(
      fc.property(gen.arbitrary(), (t) => {
        out.push(gen.realise(t).trace.steps);
        return true;
      }),
      { seed: traceSeed(1, i), numRuns: 1 },
    );
  return out;
}

/** Per-phase throughput of the end-to-end work on the same traces (figure 2's breakdown). */
interface PhaseRates {
  readonly steps: number;
  /** Steps per second of each phase alone, medians over the repetitions. */
  readonly generate: number;
  readonly realise: number;
  readonly adapter: number;
  readonly check: number;
}

/**
 * Times the four phases of a conformance run one after the other on the same `n` traces (seed 1): fast-check
 * drawing the templates, realising them into commands (the generator's model), the in-process reference adapter,
 * and the checker (model with invariants + comparison). Where figure 2's time goes, without the runner's glue.
 */
function phaseRates(n: number, reps: number): PhaseRates {
  const caps = referenceCapabilities();
  const gen = new TraceGenerator({ profile: caps.profile, features: [...caps.features], platform: caps.platform });
  const rate = { generate: [] as number[], realise: [] as number[], adapter: [] as number[], check: [] as number[] };
  let steps = 0;
  for (let r = 0; r < reps + 1; r++) {
    const t0 = performance.now();
    const templates: Template[][] = [];
    for (let i = 0; i < n; i++)
      fc.assert(
        fc.property(gen.arbitrary(), (t) => {
          templates.push(t);
          return true;
        }),
        { seed: traceSeed(1, i), numRuns: 1 },
      );
    const t1 = performance.now();
    const traces = templates.map((t) => gen.realise(t).trace.steps);
    const t2 = performance.now();
    const replies = traces.map((t) => executeTrace(caps, t));
    const t3 = performance.now();
    traces.forEach((t, i) => {
      if (checkReplies(caps, t, replies[i]!).failure !== undefined)
        throw new Error(`trace ${i} fails on the reference`);
    });
    const t4 = performance.now();
    steps = traces.reduce((a, t) => a + t.length, 0);
    if (r === 0) continue; // warm-up
    rate.generate.push(steps / ((t1 - t0) / 1000));
    rate.realise.push(steps / ((t2 - t1) / 1000));
    rate.adapter.push(steps / ((t3 - t2) / 1000));
    rate.check.push(steps / ((t4 - t3) / 1000));
  }
  return {
    steps,
    generate: median(rate.generate)!,
    realise: median(rate.realise)!,
    adapter: median(rate.adapter)!,
    check: median(rate.check)!,
  };
}

/** The JSON-lines echo child: parses each request and answers one `ok` per step, as an implementation would. */
const ECHO = `
const rl = require('node:readline').createInterface({ input: process.stdin });
rl.on('line', (l) => {
  const m = JSON.parse(l);
  const replies = m.steps.map(() => ({ outcome: { ok: true, out: { id: 1 } } }));
  process.stdout.write(JSON.stringify({ type: 'result', id: m.id, replies }) + '\\n');
});`;

/** Steps per second through a bare JSON-lines echo child, one request per trace, waiting for each answer. */
async function echoRate(traces: readonly Command[][], reps: number): Promise<number> {
  const child = spawn(process.execPath, ['-e', ECHO], { stdio: ['pipe', 'pipe', 'inherit'] });
  const rl = createInterface({ input: child.stdout });
  const waiting: ((l: string) => void)[] = [];
  rl.on('line', (l) => waiting.shift()?.(l));
  const ask = (line: string) =>
    new Promise<string>((resolve) => {
      waiting.push(resolve);
      child.stdin.write(`${line}\n`);
    });
  const lines = traces.map((steps, id) => toWireJson({ type: 'run', id, steps }));
  const total = traces.reduce((a, t) => a + t.length, 0);
  const rates: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    const t0 = performance.now();
    for (const l of lines) JSON.parse(await ask(l));
    if (r > 0) rates.push(total / ((performance.now() - t0) / 1000));
  }
  child.stdin.end();
  return median(rates)!;
}

/** `--profile`: a CPU profile of a 300-trace end-to-end run (main thread), summarised. */
async function profileRun(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-profile-'));
  try {
    const args = ['--cpu-prof', `--cpu-prof-dir=${dir}`, '--import', 'tsx', 'conformance/cli.ts', 'run'];
    args.push('--runs', '300', '--no-corpus', '--quiet', '--report-dir', join(dir, 'out'));
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the profiled run exited with ${code}`))));
    });
    // The busiest profile is the main thread's (the others are tsx's loader thread).
    const profiles = readdirSync(dir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .map((f) => summarise(JSON.parse(readFileSync(join(dir, f), 'utf8')) as Parameters<typeof summarise>[0]));
    const busiest = profiles.sort(
      (a, b) =>
        b.totalMs -
        (b.functions.find((x) => x.name.startsWith('(idle)'))?.ms ?? 0) -
        (a.totalMs - (a.functions.find((x) => x.name.startsWith('(idle)'))?.ms ?? 0)),
    )[0];
    if (busiest === undefined) throw new Error('no profile was written');
    console.log(formatSummary(busiest, 30));
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function line(f: Figure): string {
  const v = `${fmt(f.value, f.unit === 'x' ? 2 : 0)} ${f.unit}`;
  const lim = f.limit === undefined ? '' : `${fmt(f.limit.value)} (${f.limit.what})`;
  const ratio = f.ratio === undefined ? '' : f.ratio.toFixed(2);
  const met = f.met === undefined ? '' : f.met ? 'met' : 'NOT MET';
  return `${f.id.padEnd(5)} ${f.what.padEnd(46)} ${v.padStart(14)}  ${lim.padEnd(36)} ${ratio.padStart(6)}  ${(f.target ?? '').padEnd(22)} ${met}${f.note ? `  ${f.note}` : ''}`;
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv[0] === '--child-model') {
    const [n, reps, mc, bc] = argv.slice(1).map(Number) as [number, number, number, number];
    console.log(JSON.stringify(benchModelAt(n, reps, mc, bc)));
    return 0;
  }
  const { values } = parseArgs({
    args: [...argv],
    options: {
      quick: { type: 'boolean' },
      skip: { type: 'string' },
      json: { type: 'string' },
      profile: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.profile === true) return profileRun();
  const skip = new Set((values.skip ?? '').split(',').filter((s) => s !== ''));
  const quick = values.quick === true;
  const reps = quick ? 3 : 5;
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-bench-'));
  const figures: Figure[] = [];
  const raw: Record<string, unknown> = {};
  const machine = {
    cpus: `${availableParallelism()} × ${cpus()[0]?.model ?? 'unknown'}`,
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    loadavgAtStart: loadavg().map((x) => Number(x.toFixed(2))),
  };
  console.log(
    `machine: ${machine.cpus}, ${machine.memGiB} GiB, node ${machine.node}; load average at start ${machine.loadavgAtStart.join(' ')}`,
  );
  const progress = (s: string) => process.stderr.write(`bench: ${s}\n`);
  try {
    // 1 + 6. Model step vs bare btree step, and the RSS of the 1e6 child.
    if (!skip.has('model')) {
      const sizes = [1e3, 1e5, 1e6];
      const res: ModelBenchResult[] = [];
      for (const n of sizes) {
        progress(`model at ${n} mappings`);
        res.push(await modelChild(n, reps, quick ? 5000 : 10_000, quick ? 50_000 : 100_000));
      }
      raw.model = res;
      for (const r of res) {
        const m = median(r.modelNs)!;
        const b = median(r.bareNs)!;
        figures.push({
          id: '1',
          what: `model step, ${fmt(r.mappings)} mappings (invariants ${r.invariants ? 'on' : 'OFF'})`,
          value: 1e9 / m,
          unit: 'steps/s',
          limit: { what: 'bare btree step', value: 1e9 / b },
          ratio: b / m,
          target: 'ratio >= 0.25',
          met: b / m >= 0.25,
          note: `${(m / 1000).toFixed(1)} µs vs ${(b / 1000).toFixed(2)} µs per step`,
        });
      }
      const c3 = median(res[0]!.modelNs)!;
      const c6 = median(res[2]!.modelNs)!;
      figures.push({
        id: '1',
        what: 'model step cost at 1e6 / cost at 1e3',
        value: c6 / c3,
        unit: 'x',
        target: '<= 3',
        met: c6 / c3 <= 3,
      });
      const big = res[2]!;
      figures.push({
        id: '6',
        what: 'peak RSS, process holding 1e6 mappings',
        value: big.maxRssMiB,
        unit: 'MiB',
        note: `RSS after loading ${big.rssMiB.toFixed(0)} MiB (model only), ${((big.rssMiB * 2 ** 20) / 1e6).toFixed(0)} bytes per mapping; load ${(big.loadMs / 1000).toFixed(1)} s`,
      });
    }
    // 2. End to end, in process, and with --jobs 2.
    let inProc: Awaited<ReturnType<typeof runRate>> | undefined;
    if (!skip.has('e2e')) {
      progress('end to end, in process');
      inProc = await runRate(join(dir, 'e2e'), { runs: quick ? 100 : 200 }, quick ? 2 : 3);
      progress('end to end, --jobs 2');
      const jobs2 = await runRate(join(dir, 'e2e-j2'), { runs: quick ? 100 : 200, jobs: 2 }, quick ? 2 : 3);
      raw.e2e = { inProcess: inProc, jobs2 };
      figures.push({
        id: '2',
        what: `end to end in process (${inProc.traces} traces, ${inProc.steps} steps)`,
        value: inProc.stepsPerS,
        unit: 'steps/s',
        target: '>= 200k steps/s',
        met: inProc.stepsPerS >= 200_000,
      });
      progress('end to end, phase by phase');
      const ph = phaseRates(quick ? 100 : 200, quick ? 2 : 3);
      raw.e2ePhases = ph;
      const perStep = (r: number) => 1e6 / r;
      const total = perStep(ph.generate) + perStep(ph.realise) + perStep(ph.adapter) + perStep(ph.check);
      for (const [name, r, what] of [
        ['generate', ph.generate, 'fast-check draws the templates'],
        ['realise', ph.realise, 'templates realised into commands (generator model)'],
        ['adapter', ph.adapter, 'the reference adapter runs the trace'],
        ['check', ph.check, 'checker: model with invariants + comparison'],
      ] as const)
        figures.push({
          id: '2',
          what: `  phase: ${name} (${what})`,
          value: r,
          unit: 'steps/s',
          note: `${perStep(r).toFixed(1)} µs/step, ${((100 * perStep(r)) / total).toFixed(0)}% of ${total.toFixed(1)} µs`,
        });
      figures.push({
        id: '2',
        what: 'end to end, --jobs 2',
        value: jobs2.stepsPerS,
        unit: 'steps/s',
        limit: { what: '--jobs 1', value: inProc.stepsPerS },
        ratio: jobs2.stepsPerS / inProc.stepsPerS,
        target: 'speed-up (2 cores)',
        note: 'worker start-up included',
      });
    }
    // 3. stdio vs in process, next to a bare echo child.
    if (!skip.has('stdio')) {
      progress('stdio adapter');
      const runs = quick ? 50 : 100;
      const stdio = await runRate(join(dir, 'stdio'), { adapter: 'reference-stdio', runs }, quick ? 1 : 2);
      const base = await runRate(join(dir, 'stdio-base'), { runs }, quick ? 1 : 2);
      progress('JSON-lines echo child');
      const echo = await echoRate(tracesOf(runs), quick ? 2 : 3);
      raw.stdio = { stdio, inProcess: base, echoStepsPerS: echo };
      figures.push({
        id: '3',
        what: `stdio adapter (${stdio.traces} traces)`,
        value: stdio.stepsPerS,
        unit: 'steps/s',
        limit: { what: 'in process, same traces', value: base.stepsPerS },
        ratio: stdio.stepsPerS / base.stepsPerS,
        target: 'ratio >= 0.3',
        met: stdio.stepsPerS / base.stepsPerS >= 0.3,
      });
      figures.push({
        id: '3',
        what: 'bare JSON-lines echo child (transport limit)',
        value: echo,
        unit: 'steps/s',
        limit: { what: 'stdio adapter', value: stdio.stepsPerS },
        ratio: stdio.stepsPerS / echo,
        target: 'stdio / echo',
      });
    }
    // 4. Refinement.
    if (!skip.has('refine')) {
      progress('refinement');
      const runs = quick ? 30 : 60;
      try {
        const refine = await runRate(join(dir, 'refine'), { runs, refine: 'reference' }, 1);
        const plain = inProc ?? (await runRate(join(dir, 'refine-base'), { runs }, 1));
        raw.refine = refine;
        figures.push({
          id: '4',
          what: `refinement on (--refine, ${refine.traces} traces)`,
          value: refine.stepsPerS,
          unit: 'steps/s',
          limit: { what: 'refinement off', value: plain.stepsPerS },
          ratio: refine.stepsPerS / plain.stepsPerS,
          note: `${(refine.traces / (median(refine.ms)! / 1000)).toFixed(1)} traces/s`,
        });
      } catch (e) {
        raw.refine = { unavailable: (e as Error).message };
        figures.push({
          id: '4',
          what: 'refinement',
          value: 0,
          unit: '-',
          note: `not available: ${(e as Error).message}`,
        });
      }
    }
    // 5. Time to find and shrink each catalogued bug: the figures of the last `npm run mutants` (3 seeds) when it
    // covered the whole catalogue, else a fresh run of the missing bugs with one seed (shrinking is what costs).
    if (!skip.has('mutants')) {
      const last = lastMutants(MUTANTS_JSON);
      const missing = Object.keys(CATALOGUE).filter((n) => !last.results.some((r) => r.bug === n));
      progress(
        missing.length === 0
          ? `bug catalogue: reusing ${MUTANTS_JSON} (${last.when})`
          : `bug catalogue: ${missing.length} bug(s) not in ${MUTANTS_JSON}, one seed each`,
      );
      const fresh =
        missing.length === 0
          ? []
          : await runMutantsParallel({
              seeds: [1],
              bugs: missing,
              reportDir: join(dir, 'mutants'),
              jobs: Math.min(2, availableParallelism()),
            });
      const rs: BugResult[] = Object.keys(CATALOGUE).map(
        (n) => fresh.find((r) => r.bug === n) ?? last.results.find((r) => r.bug === n)!,
      );
      raw.mutantsSource = {
        reused: rs.length - fresh.length,
        fresh: fresh.length,
        from: MUTANTS_JSON,
        when: last.when,
      };
      raw.mutants = rs;
      const caught = rs.filter((r) => r.caught);
      const find = caught.map((r) => r.medianMsToFailure!);
      const shrink = caught.map((r) => median(r.seeds.map((x) => x.msShrink ?? 0))!);
      const lens = caught.map((r) => r.medianShrunkSteps!);
      figures.push({
        id: '5',
        what: `catalogued bugs caught (every seed)`,
        value: caught.length,
        unit: `of ${rs.length}`,
        target: 'all',
        met: caught.length === rs.length,
        note: [
          fresh.length > 0 ? `${fresh.length} measured now (1 seed)` : '',
          `${rs.length - fresh.length} from npm run mutants of ${last.when}`,
          caught.length < rs.length
            ? `missed: ${rs
                .filter((r) => !r.caught)
                .map((r) => r.bug)
                .join(', ')}`
            : '',
        ]
          .filter((x) => x !== '')
          .join('; '),
      });
      figures.push({
        id: '5',
        what: 'time to first failure, median over bugs (max)',
        value: median(find) ?? 0,
        unit: 'ms',
        target: `<= ${TARGETS.msToFailure} ms each`,
        met: find.every((x) => x <= TARGETS.msToFailure),
        note: `max ${Math.max(0, ...find).toFixed(0)} ms`,
      });
      figures.push({
        id: '5',
        what: 'time to shrink, median over bugs (max)',
        value: median(shrink) ?? 0,
        unit: 'ms',
        note: `max ${Math.max(0, ...shrink).toFixed(0)} ms; shrunk traces: median ${median(lens) ?? '-'} steps, max ${Math.max(0, ...lens)}`,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - t0) / 1000;
  const header = `${'fig'.padEnd(5)} ${'what'.padEnd(46)} ${'value'.padStart(14)}  ${'compared with'.padEnd(36)} ${'ratio'.padStart(6)}  ${'target'.padEnd(22)} met`;
  console.log(header);
  for (const f of figures) console.log(line(f));
  const loadEnd = loadavg().map((x) => Number(x.toFixed(2)));
  console.log(
    `load average at end ${loadEnd.join(' ')}; the machine is shared: absolute figures are noisy, ratios less so`,
  );
  console.log(`time: ${seconds.toFixed(1)} s`);
  const json = values.json ?? 'reports/bench/latest.json';
  writeFileAtomic(
    json,
    `${JSON.stringify({ machine: { ...machine, loadavgAtEnd: loadEnd }, seconds, figures, raw }, null, 2)}\n`,
  );
  console.log(`json: ${json}`);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`bench: ${(e as Error).message}`);
      process.exit(2);
    },
  );

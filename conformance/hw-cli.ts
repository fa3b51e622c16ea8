/**
 * The `hw` command of `ioasid-conformance`: checks an IOMMU implementation (an emulator behind a harness, or the
 * hardware model itself) against the VT-d hardware model with hardware traces (chapter HW).
 *
 * - `hw run [--adapter NAME] [--seed N] [--runs N]` — generated hardware traces, every one judged step by step
 *   against the reference machine; failing traces are written to `<report-dir>/hw-failures/`, the first one shrunk.
 * - `hw replay FILE [--adapter NAME]` — one hardware trace file, every step shown.
 *
 * Exit codes as for `run`: 0 every trace passed; 1 a trace failed or the adapter could not start; 2 bad input.
 *
 * Not for: uAPI traces (`run`, `replay`) or refinement (`run --refine`).
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { decodeHwTrace, type HwTrace } from '../src/hw-reference/trace.ts';
import { checkHwReplies, executeHwTrace, hwClausesOf, runHwConformance, type HwFailure } from './adapters/hw.ts';
import { createHwAdapter, hwAdapterNames } from './adapters/registry.ts';
import { AdapterOpenError } from './adapters/stdio.ts';
import { UsageError } from './errors.ts';
import { toWireJson } from './protocol.ts';
import { writeFileAtomic } from './runner.ts';

/** Where `hw run` writes failing traces by default (under the report directory). */
export const DEFAULT_HW_REPORT_DIR = 'reports/out';

const HW_HELP = `usage: ioasid-conformance hw run [options]
       ioasid-conformance hw replay TRACE [--adapter NAME] [--timeout MS] [--quiet]

Checks an IOMMU implementation against the VT-d scalable-mode hardware model (chapter HW) with hardware traces:
table and entry writes, invalidations, DMA, page requests and responses, ENQCMD (conformance/INTERPRETING.md §7).

hw run options:
  --adapter NAME        implementation under test (default: hw-reference); see "Hardware adapters" below
  --seed N              the seed (default 1): same seed, same traces, same verdicts
  --runs N              generated traces (default 100)
  --max-actions N       most generator actions per trace (default 40)
  --timeout MS          per-trace timeout of out-of-process adapters (default 30000)
  --report-dir DIR      failing traces go to DIR/hw-failures/ (default ${DEFAULT_HW_REPORT_DIR})
  --quiet               no progress output

exit codes: 0 all traces passed; 1 a trace failed or the adapter could not start; 2 bad input`;

function hwAdapterHelp(): string {
  return `Hardware adapters:\n${hwAdapterNames()
    .map((a) => `  ${a.name.padEnd(34)} ${a.describe}`)
    .join('\n')}`;
}

function parse(
  argv: readonly string[],
  options: Record<string, { type: 'string' | 'boolean' }>,
  positionals: boolean,
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
    throw new UsageError(`${(e as Error).message} (see "ioasid-conformance hw --help")`);
  }
}

function intFlag(name: string, v: string | boolean | undefined, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  if (typeof v !== 'string' || !/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${String(v)}"`);
  return Number(v);
}

/** Reads and decodes a hardware trace file; bad input raises a {@link UsageError} naming the file and the path. */
export function readHwTraceFile(path: string): HwTrace {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path}: not JSON: ${(e as Error).message}`);
  }
  const r = decodeHwTrace(json);
  if (!r.ok) throw new UsageError(`${path}: ${r.message}`);
  return r.trace;
}

/** The one-line description of a failing trace. */
function describe(f: HwFailure): string {
  const v = f.verdict.failure!;
  const clauses = v.clauses.length > 0 ? ` [${v.clauses.join(', ')}]` : '';
  return `trace ${f.index} (${f.kind}) step ${v.step} of ${f.trace.steps.length}: ${v.message}${clauses}`;
}

/** `ioasid-conformance hw …`. */
export async function hwCommand(argv: readonly string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'run':
      return hwRun(rest);
    case 'replay':
      return hwReplay(rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(`${HW_HELP}\n\n${hwAdapterHelp()}`);
      return sub === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown hw command "${sub}" (expected run or replay)`);
  }
}

async function hwRun(argv: readonly string[]): Promise<number> {
  const { values: v } = parse(
    argv,
    {
      adapter: { type: 'string' },
      seed: { type: 'string' },
      runs: { type: 'string' },
      'max-actions': { type: 'string' },
      timeout: { type: 'string' },
      'report-dir': { type: 'string' },
      quiet: { type: 'boolean' },
    },
    false,
  );
  if (v.help) return (console.log(`${HW_HELP}\n\n${hwAdapterHelp()}`), 0);
  const name = (v.adapter as string | undefined) ?? 'hw-reference';
  const seed = intFlag('seed', v.seed, 1, 0, 0x7fff_ffff);
  const runs = intFlag('runs', v.runs, 100, 0, 10_000_000);
  const maxActions = intFlag('max-actions', v['max-actions'], 40, 1, 10_000);
  const timeoutMs = intFlag('timeout', v.timeout, 30_000, 1, 86_400_000);
  const reportDir = (v['report-dir'] as string | undefined) ?? DEFAULT_HW_REPORT_DIR;
  const adapter = createHwAdapter(name, { timeoutMs });
  const quiet = v.quiet === true;
  const t0 = performance.now();
  let result;
  try {
    result = await runHwConformance(adapter, {
      seed,
      runs,
      maxActions,
      ...(quiet
        ? {}
        : {
            onTrace: (done: number, failed: number) => {
              if (done === runs || done % Math.max(1, Math.floor(runs / 4)) === 0)
                console.log(`hw: ${done}/${runs}${failed > 0 ? `, ${failed} failed` : ''}`);
            },
          }),
    });
  } catch (e) {
    if (!(e instanceof AdapterOpenError)) throw e;
    console.log(`adapter "${name}" could not be started: ${e.message}${e.stderr ? `\nits stderr:\n${e.stderr}` : ''}`);
    console.log('0 passed, 1 failed');
    return 1;
  }
  const seconds = (performance.now() - t0) / 1000;
  const dir = join(reportDir, 'hw-failures');
  for (const f of result.failures) {
    const file = join(dir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${seed}-${f.index}.full.json`);
    writeFileAtomic(file, `${toWireJson({ ...f.trace, origin: `hw run --seed ${seed}, trace ${f.index}` })}\n`);
    console.log(`FAIL ${describe(f)}\n    trace: ${file}`);
    if (f.stderr) console.log(`    adapter stderr:\n${f.stderr}`);
  }
  if (result.failure !== undefined && result.failure.kind === 'divergence') {
    const f = result.failure;
    const file = join(dir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${seed}-${f.index}.json`);
    writeFileAtomic(file, `${toWireJson({ ...f.trace, origin: `hw run --seed ${seed}, trace ${f.index}, shrunk` })}\n`);
    console.log(`shrunk: ${describe(f)}`);
    console.log(`    replay: npx ioasid-conformance hw replay ${file} --adapter ${name}`);
  }
  if (!quiet)
    console.log(
      `${result.traces} traces, ${result.steps} steps in ${seconds.toFixed(2)} s (${(result.traces / seconds).toFixed(0)} traces/s, ${(result.steps / seconds).toFixed(0)} steps/s) on ${name}`,
    );
  console.log(`${result.passed} passed, ${result.failures.length} failed`);
  return result.failures.length === 0 ? 0 : 1;
}

function outcomeText(o: { ok: boolean; errno?: string; out?: object }): string {
  return `${o.ok ? 'ok' : o.errno}${o.out !== undefined && Object.keys(o.out).length > 0 ? ` ${toWireJson(o.out)}` : ''}`;
}

async function hwReplay(argv: readonly string[]): Promise<number> {
  const { values: v, positionals } = parse(
    argv,
    { adapter: { type: 'string' }, timeout: { type: 'string' }, quiet: { type: 'boolean' } },
    true,
  );
  if (v.help) return (console.log(`${HW_HELP}\n\n${hwAdapterHelp()}`), 0);
  if (positionals.length !== 1) throw new UsageError('hw replay takes one hardware trace file');
  const file = positionals[0]!;
  const trace = readHwTraceFile(file);
  const name = (v.adapter as string | undefined) ?? 'hw-reference';
  const timeoutMs = intFlag('timeout', v.timeout, 30_000, 1, 86_400_000);
  const adapter = createHwAdapter(name, { timeoutMs });
  try {
    try {
      await adapter.open();
    } catch (e) {
      if (!(e instanceof AdapterOpenError)) throw e;
      console.log(`adapter "${name}" could not be started: ${e.message}`);
      return 1;
    }
    const reply = await adapter.runHwTrace(trace);
    const verdict = checkHwReplies(trace, reply.replies, reply.error?.message);
    const last = verdict.failure?.step ?? trace.steps.length - 1;
    if (v.quiet !== true) {
      const want = executeHwTrace(trace);
      for (let i = 0; i <= last && i < trace.steps.length; i++) {
        const s = trace.steps[i]!;
        const got = reply.replies[i];
        const same = got !== undefined && outcomeText(got) === outcomeText(want[i]!);
        console.log(`#${i} ${toWireJson(s)}`);
        console.log(
          `    ${same ? 'ok  ' : 'DIFF'} implementation: ${got === undefined ? '(no reply)' : outcomeText(got)}${same ? '' : `\n         model:          ${outcomeText(want[i]!)}\n         clauses: ${hwClausesOf(s).join(', ')}`}`,
        );
      }
    }
    if (verdict.failure === undefined && reply.error === undefined) {
      console.log(`${file}: conforms (${verdict.steps} steps on ${name})`);
      console.log('1 passed, 0 failed');
      return 0;
    }
    const f = verdict.failure;
    console.log(
      `${file}: FAILS at step ${f?.step ?? trace.steps.length}: ${f?.message ?? reply.error?.message ?? ''}${f !== undefined && f.clauses.length > 0 ? `\n    clauses: ${f.clauses.join(', ')}` : ''}`,
    );
    if (reply.stderr) console.log(`adapter stderr:\n${reply.stderr}`);
    console.log('0 passed, 1 failed');
    return 1;
  } finally {
    await adapter.close();
  }
}

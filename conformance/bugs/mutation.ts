/**
 * The mutation score of the two executable models (issue 7 §3), kept per source file so that it survives
 * interruption and edits.
 *
 * Stryker (stryker.config.mjs) mutates src/reference and src/hw-reference and runs, per mutant, the tests that cover
 * it. A whole run takes hours on two cores and Stryker writes its report only at the very end, so this script runs
 * Stryker on batches of about {@link CHUNK_LINES} source lines and keeps one result per source file
 * (`reports/mutation/files/<path>.json`) with a hash of that file's source. A file whose result matches its source
 * is not run again: an interrupted run resumes with the files still missing, and after an edit only the edited
 * files run. (A new test may kill more mutants of an unchanged file: `--file` runs a file again on demand.)
 *
 * ```sh
 * npm run mutation                          # run the files without a fresh result, then print the score
 * npm run mutation -- --score               # the score of the results kept (stale ones marked)
 * npm run mutation -- --file src/reference/map.ts,src/reference/ioas.ts   # run these files again
 * npm run mutation -- --list                # every mutated file: fresh, stale or not run
 * npm run mutation -- --survivors           # surviving and uncovered mutants as a Markdown list on stdout (triage)
 * npm run mutation -- --survivors --file src/reference/abi.ts              # ... of these files only
 * ```
 *
 * The score is Stryker's: (killed + timed out) ÷ (killed + timed out + survived + not covered), over every mutant
 * of every file run; `static` mutants (module-level initialisers), which Stryker is told to skip
 * (`ignoreStatic`), are excluded. The target is 85% (issue 7); survivors are triaged in docs/MUTATION.md.
 *
 * Not for: CI (hours of CPU), or judging an implementation: this measures how well the project's own tests pin the
 * models down.
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../runner.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Where the per-file results live. */
export const RESULT_DIR = join(ROOT, 'reports/mutation/files');
/** Source lines per Stryker run (about 0.6 mutants a line: ~700 mutants, 20–40 minutes on a quiet 2-core machine). */
export const CHUNK_LINES = 1200;
/** The directories Stryker mutates (stryker.config.mjs `mutate`). */
const MUTATED = ['src/reference', 'src/hw-reference'];

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out.sort();
}

/** A batch of source files run by one Stryker invocation. */
export interface Batch {
  readonly files: readonly string[];
}

/** A file's result, kept between runs: valid while the file's source hash is unchanged. */
interface FileResult {
  readonly file: string;
  readonly hash: string;
  readonly when: string;
  readonly mutants: StrykerMutant[];
}

interface StrykerMutant {
  readonly id: string;
  readonly mutatorName: string;
  readonly replacement?: string;
  readonly status: string;
  readonly static?: boolean;
  readonly location: { start: { line: number; column: number } };
}
interface StrykerReport {
  readonly files: Record<string, { mutants: StrykerMutant[] }>;
}

/** Every mutated source file, in path order. */
export function mutatedFiles(): string[] {
  return MUTATED.flatMap(tsFiles);
}

function sourceHash(file: string): string {
  return createHash('sha256')
    .update(readFileSync(join(ROOT, file)))
    .digest('hex')
    .slice(0, 16);
}

const resultFile = (file: string) => join(RESULT_DIR, `${file.replace(/[/\\]/g, '__')}.json`);

function readResult(file: string): FileResult | undefined {
  const f = resultFile(file);
  if (!existsSync(f)) return undefined;
  try {
    return JSON.parse(readFileSync(f, 'utf8')) as FileResult;
  } catch {
    return undefined;
  }
}

/** Whether a file's kept result matches its current source. */
function isFresh(file: string): boolean {
  return readResult(file)?.hash === sourceHash(file);
}

/** The files to run, cut into batches of about {@link CHUNK_LINES} lines (path order: deterministic). */
export function batches(files: readonly string[]): Batch[] {
  const out: Batch[] = [];
  let cur: string[] = [];
  let lines = 0;
  for (const f of files) {
    const n = readFileSync(join(ROOT, f), 'utf8').split('\n').length;
    if (cur.length > 0 && lines + n > CHUNK_LINES) {
      out.push({ files: cur });
      cur = [];
      lines = 0;
    }
    cur.push(f);
    lines += n;
  }
  if (cur.length > 0) out.push({ files: cur });
  return out;
}

/** Runs Stryker on one batch and keeps one result per file. Returns false when Stryker failed. */
function runBatch(b: Batch, concurrency: number): boolean {
  mkdirSync(RESULT_DIR, { recursive: true });
  const out = join(RESULT_DIR, '.stryker-batch.json');
  const t0 = performance.now();
  console.log(`mutation: ${b.files.length} file(s): ${b.files.join(' ')}`);
  const hashes = new Map(b.files.map((f) => [f, sourceHash(f)]));
  // The project's configuration, narrowed to this batch (Stryker takes no dotted reporter options on its CLI).
  const config = join(RESULT_DIR, '.stryker-batch.config.mjs');
  writeFileAtomic(
    config,
    `import base from ${JSON.stringify(pathToFileURL(join(ROOT, 'stryker.config.mjs')).href)};\n` +
      `export default { ...base, mutate: ${JSON.stringify(b.files)}, concurrency: ${concurrency}, incremental: false, ` +
      `reporters: ['json', 'progress-append-only'], jsonReporter: { fileName: ${JSON.stringify(relative(ROOT, out))} } };\n`,
  );
  rmSync(out, { force: true });
  const r = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/@stryker-mutator/core/bin/stryker.js'), 'run', relative(ROOT, config)],
    { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (r.status !== 0 || !existsSync(out)) {
    console.error(`mutation: stryker exited with ${r.status ?? r.signal}; nothing of this batch is kept`);
    return false;
  }
  const report = JSON.parse(readFileSync(out, 'utf8')) as StrykerReport;
  const when = new Date().toISOString();
  for (const f of b.files) {
    const mutants = report.files[f]?.mutants ?? [];
    // The hash taken before the run: a file edited during the run is run again next time.
    writeFileAtomic(resultFile(f), JSON.stringify({ file: f, hash: hashes.get(f)!, when, mutants }));
  }
  console.log(`mutation: batch done in ${Math.round((performance.now() - t0) / 1000)} s`);
  return true;
}

/** Counts of one file or of everything. */
export interface Tally {
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  other: number;
}

const emptyTally = (): Tally => ({ killed: 0, timeout: 0, survived: 0, noCoverage: 0, other: 0 });

/** Stryker's mutation score of a tally, in percent (undefined without mutants that count). */
export function score(t: Tally): number | undefined {
  const detected = t.killed + t.timeout;
  const valid = detected + t.survived + t.noCoverage;
  return valid === 0 ? undefined : (100 * detected) / valid;
}

function tallyOf(mutants: readonly StrykerMutant[], into: Tally): void {
  for (const m of mutants) {
    if (m.static === true && m.status === 'Ignored') continue;
    if (m.status === 'Killed') into.killed++;
    else if (m.status === 'Timeout') into.timeout++;
    else if (m.status === 'Survived') into.survived++;
    else if (m.status === 'NoCoverage') into.noCoverage++;
    else into.other++;
  }
}

function printScore(files: readonly string[]): void {
  const total = emptyTally();
  let missing = 0;
  let stale = 0;
  for (const f of files) {
    const r = readResult(f);
    if (r === undefined) {
      missing++;
      console.log(`  ${f.padEnd(36)}  not run`);
      continue;
    }
    const fresh = r.hash === sourceHash(f);
    if (!fresh) stale++;
    const t = emptyTally();
    tallyOf(r.mutants, t);
    for (const k of Object.keys(total) as (keyof Tally)[]) total[k] += t[k];
    const s = score(t);
    console.log(
      `  ${f.padEnd(36)} ${s === undefined ? '     -' : `${s.toFixed(1).padStart(5)}%`}  killed ${t.killed} timeout ${t.timeout} survived ${t.survived} no-cov ${t.noCoverage}${fresh ? '' : '  STALE (the source changed since)'}`,
    );
  }
  const s = score(total);
  console.log(
    `mutation score: ${s === undefined ? '-' : `${s.toFixed(1)}%`} over ${total.killed + total.timeout + total.survived + total.noCoverage} mutants (killed ${total.killed}, timeout ${total.timeout}, survived ${total.survived}, no coverage ${total.noCoverage}); ${files.length - missing} of ${files.length} files run${stale > 0 ? `, ${stale} stale` : ''}; target 85%`,
  );
}

function survivors(files: readonly string[]): string {
  const lines: string[] = [];
  for (const f of files) {
    const r = readResult(f);
    if (r === undefined) continue;
    for (const m of r.mutants)
      if (m.status === 'Survived' || m.status === 'NoCoverage')
        lines.push(
          `- ${f}:${m.location.start.line}:${m.location.start.column} ${m.mutatorName} → \`${(m.replacement ?? '').replace(/\s+/g, ' ').slice(0, 80)}\` (${m.status})`,
        );
  }
  return lines.join('\n') + '\n';
}

/** The command line (see the module comment). */
export function main(argv: string[]): number {
  const { values } = parseArgs({
    args: argv,
    options: {
      score: { type: 'boolean' },
      list: { type: 'boolean' },
      file: { type: 'string' },
      survivors: { type: 'boolean' },
      concurrency: { type: 'string', default: '2' },
    },
  });
  const all = mutatedFiles();
  if (values.list === true) {
    for (const f of all)
      console.log(`${isFresh(f) ? 'fresh' : readResult(f) === undefined ? 'not run' : 'stale'}  ${f}`);
    return 0;
  }
  if (values.survivors === true) {
    const only = values.file === undefined ? all : values.file.split(',');
    const unknown = only.filter((f) => !all.includes(f));
    if (unknown.length > 0) {
      console.error(`mutation: not a mutated file: ${unknown.join(', ')} (see --list)`);
      return 2;
    }
    process.stdout.write(survivors(only));
    return 0;
  }
  if (values.score !== true) {
    const concurrency = Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      console.error(`mutation: --concurrency must be a positive integer, got ${values.concurrency}`);
      return 2;
    }
    const wanted = values.file === undefined ? all.filter((f) => !isFresh(f)) : values.file.split(',');
    const unknown = wanted.filter((f) => !all.includes(f));
    if (unknown.length > 0) {
      console.error(`mutation: not a mutated file: ${unknown.join(', ')} (see --list)`);
      return 2;
    }
    for (const b of batches(wanted)) if (!runBatch(b, concurrency)) return 1;
  }
  printScore(all);
  return 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href)
  process.exitCode = main(process.argv.slice(2));

/**
 * Writing a report directory: `results.json` (the merged results), `report.json`, `junit.xml`, `summary.md` and
 * `report.html`, each written atomically — to a temporary file in the same directory, flushed to disk (fsync), then
 * renamed over the target — so a run or a report interrupted at any point leaves every file either as it was or
 * complete, never half-written. A temporary file of an interrupted write may stay behind (`.<name>.<pid>.<n>.tmp`);
 * the next write of the same report removes it.
 *
 * Not a general-purpose file library: it writes text files the report commands own.
 *
 * @module
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { resultsText, type Results } from '../conformance/runner.ts';
import type { Spec } from '../src/spec/spec.ts';
import { readCoverageSummary, type CoverageSection } from './coverage.ts';
import { reportHtml } from './html.ts';
import { junitXml } from './junit.ts';
import { markdownSummary } from './markdown.ts';
import { buildReport, reportText, type Report } from './model.ts';
import { diffReports } from './diff.ts';

/** The files of a report directory, in the order they are written (results first, the page last). */
export const REPORT_FILES = ['results.json', 'report.json', 'junit.xml', 'summary.md', 'report.html'] as const;

let counter = 0;

/**
 * Writes `text` to `path` atomically and durably: temporary file in the same directory, write, fsync, rename, then
 * fsync of the directory (where the platform allows it). Creates the directory.
 */
export function writeFileDurable(path: string, text: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${counter++}.tmp`);
  const fd = openSync(tmp, 'wx', 0o644);
  try {
    const buf = Buffer.from(text, 'utf8');
    for (let off = 0; off < buf.length;) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // Directories cannot be opened for fsync everywhere (Windows); the rename is still atomic.
  }
}

/** Removes temporary files that interrupted writes of the report files left in `dir`. */
export function removeStaleTemporaries(dir: string): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const files = new Set<string>(REPORT_FILES);
  for (const n of names) {
    const m = /^\.(.+)\.(\d+)\.\d+\.tmp$/.exec(n);
    if (m === null || !files.has(m[1]!)) continue;
    // Another process writing the same directory right now keeps its own temporaries.
    if (Number(m[2]) !== process.pid && processAlive(Number(m[2]))) continue;
    rmSync(join(dir, n), { force: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** What {@link writeReportDir} needs. */
export interface ReportDirOptions {
  readonly spec: Spec;
  /** A c8 coverage summary to show beside the clause coverage. */
  readonly coveragePath?: string;
  /** The repository root (to read model sources when attributing coverage to chapters). */
  readonly repoRoot?: string;
  /** A baseline report to diff against, and its name as shown. */
  readonly baseline?: { readonly report: Report; readonly name: string };
  /** Leave `results.json` alone (the runner has just written it). */
  readonly skipResults?: boolean;
}

/** The files written and the report built. */
export interface WrittenReport {
  readonly report: Report;
  /** The paths of the files written (`dir` joined with the names), in {@link REPORT_FILES} order. */
  readonly files: readonly string[];
}

/** Builds the report of `results` and writes the report directory `dir` (every file atomically). */
export function writeReportDir(dir: string, results: Results, opts: ReportDirOptions): WrittenReport {
  const chapters = opts.spec.vocabularies.chapters.map((c) => c.name);
  const coverage: CoverageSection | undefined =
    opts.coveragePath === undefined
      ? undefined
      : readCoverageSummary(opts.coveragePath, chapters, opts.repoRoot ?? join(opts.spec.dir, '..'));
  let report = buildReport(results, { spec: opts.spec, ...(coverage === undefined ? {} : { coverage }) });
  if (opts.baseline !== undefined)
    report = { ...report, diff: diffReports(opts.baseline.report, report, opts.baseline.name) };
  const texts: Record<(typeof REPORT_FILES)[number], string> = {
    'results.json': resultsText(results),
    'report.json': reportText(report),
    'junit.xml': junitXml(report),
    'summary.md': markdownSummary(report),
    'report.html': reportHtml(report),
  };
  removeStaleTemporaries(dir);
  const files: string[] = [];
  for (const f of REPORT_FILES) {
    if (f === 'results.json' && opts.skipResults === true) continue;
    const p = join(dir, f);
    writeFileDurable(p, texts[f]);
    files.push(p);
  }
  return { report, files };
}

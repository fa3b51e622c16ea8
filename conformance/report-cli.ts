/**
 * The `report` command of `ioasid-conformance`, and the reports `run` writes at the end of a run.
 *
 * `report RESULTS.json... [--out DIR] [--diff OLD.json] [--coverage FILE | --no-coverage]` merges result files
 * (several adapters, several shards, as `merge` does) and writes `DIR/results.json` (merged), `report.json`,
 * `junit.xml`, `summary.md` and `report.html` (see `reports/`). Exit codes: 0 — written, every trace passed; 1 —
 * written, some trace failed or an adapter could not start; 2 — bad input.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from './errors.ts';
import { mergeResults, readResultsFile, type Results } from './runner.ts';
import { loadSpec, type Spec } from '../src/spec/spec.ts';
import { DEFAULT_COVERAGE_SUMMARY } from '../reports/coverage.ts';
import { loadBaseline } from '../reports/diff.ts';
import type { Report } from '../reports/model.ts';
import { writeReportDir } from '../reports/write.ts';

/** Where `report` writes when no `--out` is given. */
export const DEFAULT_REPORT_OUT = 'reports/out';

export const REPORT_HELP = `usage: ioasid-conformance report RESULTS.json... [--out DIR] [--diff OLD.json] [--coverage FILE | --no-coverage]

Builds the reports of one or more results files (the results of several adapters and shards merge as with
"merge"): DIR/results.json (merged), report.json, junit.xml, summary.md and report.html. Every file is written
atomically. "run --report-dir DIR" writes the same reports at the end of a run.

options:
  --out DIR        the report directory (default ${DEFAULT_REPORT_OUT})
  --diff OLD.json  a report.json or results.json of an earlier run: the reports show what newly fails, newly
                   passes, is newly reached or no longer reached
  --coverage FILE  c8's JSON summary, shown per chapter beside the clause coverage (default
                   ${DEFAULT_COVERAGE_SUMMARY} when it exists; npm test writes it)
  --no-coverage    leave code coverage out

exit codes: 0 written and every trace passed; 1 written, with failing traces or an adapter that could not start;
2 bad input`;

function shown(p: string): string {
  const rel = relative(process.cwd(), p);
  return rel.startsWith('..') ? p : rel;
}

/** One line per adapter and the report's totals, as `report` and `run` print them. */
export function reportLines(report: Report): string[] {
  const out: string[] = [];
  for (const a of report.adapters) {
    const c = a.counts;
    out.push(
      a.opened
        ? `  ${a.name}: clauses ${c.pass} pass, ${c.fail} fail, ${c.unreached} unreached, ${c['n/a']} n/a; traces ${a.traces?.passed ?? 0} passed, ${a.traces?.failed ?? 0} failed${a.partial ? ` (shards ${a.partial.shards.join(',')} of ${a.partial.shardCount})` : ''}`
        : `  ${a.name}: could not be started (${a.error?.message ?? ''})`,
    );
  }
  const t = report.totals;
  out.push(
    `clauses: ${t.clauses} in the spec, ${t.reached} reached, ${t.failing} failing, ${t.neverReached} never reached (${report.neverReached.filter((n) => n.kind === 'generator-gap').length} generator gaps, ${report.neverReached.filter((n) => n.kind === 'spec-question').length} spec questions, ${report.neverReached.filter((n) => n.kind === 'not-applicable').length} not applicable, ${report.neverReached.filter((n) => n.kind === 'withdrawn').length} withdrawn)`,
  );
  if (report.diff !== undefined) {
    const d = report.diff;
    out.push(
      `diff against ${d.baseline}: ${d.newlyFailing.length} newly failing, ${d.newlyPassing.length} newly passing, ${d.newlyReached.length} newly reached, ${d.noLongerReached.length} no longer reached`,
    );
    for (const c of d.newlyFailing.slice(0, 10))
      out.push(`  newly failing: ${c.id} on ${c.adapter}${c.firstFailure ? `; replay: ${c.firstFailure.replay}` : ''}`);
  }
  return out;
}

/** Trace totals of merged results: failed counts an adapter that could not start as one failure. */
function traceTotals(results: Results): { passed: number; failed: number } {
  let passed = 0;
  let failed = 0;
  for (const a of Object.values(results.adapters)) {
    if ('error' in a) failed++;
    else {
      passed += a.traces.passed;
      failed += a.traces.failed;
    }
  }
  return { passed, failed };
}

function loadSpecOrThrow(): Spec {
  return loadSpec().spec;
}

/**
 * Writes the reports of a finished run into its report directory (the runner has written `results.json`) and
 * returns the lines `run` prints. No code coverage: a run's report shows the run.
 */
export function writeRunReports(reportDir: string, results: Results): string[] {
  const { files } = writeReportDir(reportDir, results, { spec: loadSpecOrThrow(), skipResults: true });
  return [`reports: ${files.map(shown).join(', ')}`];
}

/** `ioasid-conformance report`. */
export function reportCommand(argv: readonly string[]): number {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options: {
        out: { type: 'string' },
        diff: { type: 'string' },
        coverage: { type: 'string' },
        'no-coverage': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (see "ioasid-conformance report --help")`);
  }
  if (values.help) return (console.log(REPORT_HELP), 0);
  if (positionals.length === 0) throw new UsageError(`report takes one or more results files\n\n${REPORT_HELP}`);
  if (values['no-coverage'] && values.coverage !== undefined)
    throw new UsageError('--coverage and --no-coverage exclude each other');
  const t0 = performance.now();
  const spec = loadSpecOrThrow();
  const all = positionals.map((p) => readResultsFile(p));
  let merged: Results;
  try {
    merged = mergeResults(all, spec);
  } catch (e) {
    throw new UsageError(`cannot merge: ${(e as Error).message}`);
  }
  let coveragePath = values.coverage as string | undefined;
  if (coveragePath !== undefined && !existsSync(coveragePath))
    throw new UsageError(`--coverage ${coveragePath}: no such file`);
  if (coveragePath === undefined && !values['no-coverage'] && existsSync(DEFAULT_COVERAGE_SUMMARY))
    coveragePath = DEFAULT_COVERAGE_SUMMARY;
  const diffPath = values.diff as string | undefined;
  const baseline = diffPath === undefined ? undefined : { report: loadBaseline(diffPath, spec), name: diffPath };
  const dir = (values.out as string | undefined) ?? DEFAULT_REPORT_OUT;
  const { report, files } = writeReportDir(dir, merged, {
    spec,
    ...(coveragePath === undefined ? {} : { coveragePath }),
    ...(baseline === undefined ? {} : { baseline }),
  });
  console.log(
    `report of ${positionals.length} results file(s), ${report.adapters.length} adapter(s)${coveragePath === undefined ? '' : `, code coverage from ${coveragePath}`}:`,
  );
  for (const l of reportLines(report)) console.log(l);
  console.log(`wrote ${files.map(shown).join(', ')}`);
  console.log(`open: ${shown(join(dir, 'report.html'))}`);
  console.log(`time: ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const { passed, failed } = traceTotals(merged);
  console.log(`${passed} passed, ${failed} failed`);
  return failed > 0 ? 1 : 0;
}

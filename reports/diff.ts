/**
 * The difference between two runs: which adapter × clause cells newly fail, newly pass, are newly reached or are
 * no longer reached. The baseline is a `report.json` or a `results.json` (several merge like `report`'s inputs).
 *
 * Adapters are matched by name. A cell's change is read from the two reports' statuses only; this module does not
 * decide what passes.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { isLeft } from 'fp-ts/lib/Either.js';
import { UsageError } from '../conformance/errors.ts';
import { readResultsFile } from '../conformance/runner.ts';
import type { Spec } from '../src/spec/spec.ts';
import { REPORT_FORMAT, REPORT_VERSION, Report, buildReport, type CellChange, type ReportDiff } from './model.ts';

/** Compares report `now` with `was` (the baseline, named `baseline` in the output). */
export function diffReports(was: Report, now: Report, baseline: string): ReportDiff {
  const oldNames = new Set(was.adapters.map((a) => a.name));
  const newNames = new Set(now.adapters.map((a) => a.name));
  const oldRows = new Map(was.clauses.map((c) => [c.id, c]));
  const diff: ReportDiff = {
    baseline,
    adaptersAdded: [...newNames].filter((n) => !oldNames.has(n)),
    adaptersRemoved: [...oldNames].filter((n) => !newNames.has(n)),
    newlyFailing: [],
    newlyPassing: [],
    newlyReached: [],
    noLongerReached: [],
  };
  const reached = (s: string) => s === 'pass' || s === 'fail';
  for (const row of now.clauses) {
    const old = oldRows.get(row.id);
    for (const [adapter, cell] of Object.entries(row.cells)) {
      if (!oldNames.has(adapter)) continue;
      const prev = old?.cells[adapter]?.status ?? 'n/a';
      const cur = cell.status;
      if (prev === cur) continue;
      const change: CellChange = {
        adapter,
        id: row.id,
        was: prev,
        now: cur,
        ...(cell.firstFailure === undefined ? {} : { firstFailure: cell.firstFailure }),
      };
      if (cur === 'fail') diff.newlyFailing.push(change);
      else if (prev === 'fail' && cur === 'pass') diff.newlyPassing.push(change);
      else if (cur === 'pass') diff.newlyReached.push(change);
      else if (reached(prev)) diff.noLongerReached.push(change);
    }
  }
  return diff;
}

/**
 * Loads a baseline for `--diff`: a report.json as it is, or a results.json built into a report against `spec`.
 * Bad input raises a {@link UsageError} naming the file.
 */
export function loadBaseline(path: string, spec: Spec): Report {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read baseline ${path}: ${(e as Error).message}`);
  }
  const format = (json as { format?: unknown } | null)?.format;
  if (format === REPORT_FORMAT) {
    const v = (json as { version?: unknown }).version;
    if (v !== REPORT_VERSION)
      throw new UsageError(`baseline ${path}: report version ${JSON.stringify(v)} (this tool reads ${REPORT_VERSION})`);
    const r = Report.decode(json);
    if (isLeft(r)) throw new UsageError(`baseline ${path}: not a report (see conformance/schema/report.schema.json)`);
    return r.right;
  }
  return buildReport(readResultsFile(path), { spec });
}

/**
 * The report as JUnit XML (`junit.xml`): one test suite per adapter, one test case per clause of the spec, so any
 * CI shows clause by clause what passed. A failing clause carries its first failing trace and the command that
 * replays it; an unreached or not-applicable clause is `<skipped>` with the reason; an adapter that could not be
 * started makes every case an `<error>`.
 *
 * Unlike the runner's `--junit` (one case per trace), this is per clause. No timings: the file is a pure function of
 * the results.
 *
 * @module
 */
import { escapeXml as x } from './escape.ts';
import type { AdapterSummary, Cell, ClauseRow, Report } from './model.ts';

function caseBody(row: ClauseRow, cell: Cell, a: AdapterSummary, never: ReadonlyMap<string, string>): string {
  switch (cell.status) {
    case 'pass':
      return '';
    case 'fail': {
      const f = cell.firstFailure;
      const message =
        f === undefined
          ? `${cell.failures} failing trace(s)`
          : `${f.kind} at step ${f.step} of ${f.trace}: ${f.message} (${cell.failures} failing trace(s))`;
      const body =
        f === undefined
          ? `${cell.failures} of ${cell.traces} traces failed at a step evaluating ${row.id}`
          : `first failing trace: ${f.trace}\ntrace file: ${f.file} (fails at step ${f.step})\nreplay: ${f.replay}\n${cell.failures} of ${cell.traces} traces failed at a step evaluating ${row.id}`;
      return `<failure type="${x(f?.kind ?? 'failure')}" message="${x(message)}">${x(body)}</failure>`;
    }
    case 'unreached':
      return `<skipped message="${x(`applicable to ${a.name} but not reached: ${never.get(row.id) ?? 'no trace evaluated it'}`)}"/>`;
    case 'n/a':
      return `<skipped message="${x(row.withdrawn ? 'withdrawn from the spec' : `not applicable to ${a.name} (${a.profile ?? '?'}${a.focus !== undefined && a.focus.length > 0 ? `, focus ${a.focus.join(',')}` : ''})`)}"/>`;
    case 'error':
      return `<error type="${x(a.error?.kind ?? 'error')}" message="${x(`adapter ${a.name} could not be started: ${a.error?.message ?? ''}`)}">${x(a.stderr ?? '')}</error>`;
  }
}

/** The JUnit XML text of a report. */
export function junitXml(r: Report): string {
  const never = new Map(r.neverReached.map((n) => [n.id, n.detail]));
  const suites: string[] = [];
  let tests = 0;
  let failures = 0;
  let errors = 0;
  let skipped = 0;
  for (const a of r.adapters) {
    const cases: string[] = [];
    for (const row of r.clauses) {
      const cell = row.cells[a.name]!;
      const body = caseBody(row, cell, a, never);
      const attrs = `classname="${x(`${a.name}.${row.chapter}`)}" name="${x(`${row.id} ${row.title}`)}"`;
      const props =
        cell.status === 'pass' || cell.status === 'fail'
          ? `<system-out>${x(`${cell.steps} steps in ${cell.traces} traces evaluated ${row.id}`)}</system-out>`
          : '';
      cases.push(`    <testcase ${attrs}${body + props === '' ? '/>' : `>${body}${props}</testcase>`}`);
    }
    const c = a.counts;
    tests += r.clauses.length;
    failures += c.fail;
    errors += c.error;
    skipped += c.unreached + c['n/a'];
    suites.push(
      `  <testsuite name="${x(a.name)}" tests="${r.clauses.length}" failures="${c.fail}" errors="${c.error}" skipped="${c.unreached + c['n/a']}">\n${cases.join('\n')}\n  </testsuite>`,
    );
  }
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="ioasid-conformance clauses" tests="${tests}" failures="${failures}" errors="${errors}" skipped="${skipped}">\n${suites.join('\n')}\n</testsuites>\n`;
}

/**
 * The report model: what every report format (report.json, JUnit XML, summary.md, report.html) shows, built from
 * one or more `results.json` files (several adapters, several shards, merged with the runner's `mergeResults`) and
 * the specification.
 *
 * For every clause of the spec — all of them, withdrawn ones included — and every adapter, a {@link Cell}: pass
 * (the model evaluated the clause and no trace failed on it), fail (a trace failed at a step where the model
 * evaluated it; the first failing trace and its replay command come with it), unreached (it applies to the
 * adapter's profile and features but no trace reached it), n/a (it does not apply, or the run was focused
 * elsewhere with `--clause`) or error (the adapter could not be started). Clauses that no adapter reached are
 * listed first with the reason when it can be told: not applicable to any profile that ran, a generator gap (no
 * generator draws its commands, or one does but no trace reached it), an open spec question, withdrawn.
 *
 * The model is a pure function of its inputs: the same result files give the same report, byte for byte. It holds
 * no timestamps. It is not a place for new verdicts: pass and fail are the runner's, read from the results.
 *
 * @module
 */
import * as t from 'io-ts';
import { clauseApplies, type Clause, type Spec } from '../src/spec/spec.ts';
import { clauseMatches } from '../generators/coverage.ts';
import { templatesFor } from '../generators/trace.ts';
import { PROFILES } from '../src/reference/commands.ts';
import type { AdapterFailed, AdapterResults, FailureRecord, Results } from '../conformance/runner.ts';
import { ChapterCoverage, CoverageSection } from './coverage.ts';

/** The `format` tag of a report.json. */
export const REPORT_FORMAT = 'ioasid-conformance-report';
/** The report.json format version. */
export const REPORT_VERSION = 1;

/** The verdict of one adapter on one clause. */
export const CellStatus = t.keyof({ pass: null, fail: null, unreached: null, 'n/a': null, error: null }, 'CellStatus');
export type CellStatus = t.TypeOf<typeof CellStatus>;

/** The first failing trace of a clause on an adapter: where it is and how to reproduce it. */
export const CellFailure = t.type(
  {
    /** `corpus/<file>` or `random/<n>`. */
    trace: t.string,
    /** The (shrunk, when shrinking reproduced it) trace file. */
    file: t.string,
    /** The failing step of that file. */
    step: t.number,
    /** The command that replays it on the adapter. */
    replay: t.string,
    /** The failure kind (divergence, violation, crash…). */
    kind: t.string,
    /** What differed, as the runner said it. */
    message: t.string,
  },
  'CellFailure',
);
export type CellFailure = t.TypeOf<typeof CellFailure>;

/** One adapter × clause cell. */
export const Cell = t.intersection(
  [
    t.type({ status: CellStatus, steps: t.number, traces: t.number, failures: t.number }),
    t.partial({ firstFailure: CellFailure }),
  ],
  'Cell',
);
export type Cell = t.TypeOf<typeof Cell>;

/** A clause with its cells, in spec order. */
export const ClauseRow = t.type(
  {
    id: t.string,
    chapter: t.string,
    title: t.string,
    level: t.string,
    profiles: t.array(t.string),
    features: t.array(t.string),
    commands: t.array(t.string),
    withdrawn: t.boolean,
    /** Steps and traces that evaluated the clause, summed over the adapters. */
    steps: t.number,
    traces: t.number,
    /** Adapter name → cell (every adapter of the report has one). */
    cells: t.record(t.string, Cell),
  },
  'ClauseRow',
);
export type ClauseRow = t.TypeOf<typeof ClauseRow>;

/** Why no adapter reached a clause. */
export const NeverReachedKind = t.keyof(
  { 'not-applicable': null, 'generator-gap': null, 'spec-question': null, withdrawn: null },
  'NeverReachedKind',
);
export type NeverReachedKind = t.TypeOf<typeof NeverReachedKind>;

/** A clause no adapter reached, and why. */
export const NeverReached = t.type(
  {
    id: t.string,
    chapter: t.string,
    title: t.string,
    kind: NeverReachedKind,
    /** For a generator gap: whether some generator of an adapter it applies to draws one of its commands. */
    drawable: t.boolean,
    /** One sentence: why, and what to do. */
    detail: t.string,
    /** Open register entries naming the clause. */
    register: t.array(t.string),
  },
  'NeverReached',
);
export type NeverReached = t.TypeOf<typeof NeverReached>;

/** Cell counts by status. */
export const StatusCounts = t.type(
  { pass: t.number, fail: t.number, unreached: t.number, 'n/a': t.number, error: t.number },
  'StatusCounts',
);
export type StatusCounts = t.TypeOf<typeof StatusCounts>;

const TraceCounts = t.type({ total: t.number, passed: t.number, failed: t.number }, 'TraceCounts');

/** One adapter (implementation) of the report. */
export const AdapterSummary = t.intersection(
  [
    t.type({
      name: t.string,
      /** False when the adapter could not be started (every cell is `error`). */
      opened: t.boolean,
      counts: StatusCounts,
    }),
    t.partial({
      profile: t.string,
      features: t.array(t.string),
      description: t.string,
      platform: t.string,
      seed: t.number,
      runs: t.number,
      focus: t.array(t.string),
      traces: TraceCounts,
      corpus: t.type({ total: t.number, passed: t.number, failed: t.number, skipped: t.number }),
      steps: t.number,
      /** Present while only some shards are merged. */
      partial: t.type({ shardCount: t.number, shards: t.array(t.number) }),
      error: t.type({ kind: t.string, message: t.string }),
      stderr: t.string,
    }),
  ],
  'AdapterSummary',
);
export type AdapterSummary = t.TypeOf<typeof AdapterSummary>;

/** One chapter: its clauses' cells counted per adapter, and (when a c8 summary was given) the models' code coverage. */
export const ChapterSummary = t.intersection(
  [
    t.type({
      chapter: t.string,
      title: t.string,
      /** Active (not withdrawn) clauses. */
      clauses: t.number,
      withdrawn: t.number,
      /** Active clauses some adapter reached. */
      reached: t.number,
      /** Clauses no adapter reached. */
      neverReached: t.number,
      cells: t.record(t.string, StatusCounts),
    }),
    /** Model (`uapi`, `hw`) → coverage of the chapter's modules (when a c8 summary was given). */
    t.partial({ coverage: t.record(t.string, ChapterCoverage) }),
  ],
  'ChapterSummary',
);
export type ChapterSummary = t.TypeOf<typeof ChapterSummary>;

/** A change of one cell between two runs. */
export const CellChange = t.intersection(
  [
    t.type({ adapter: t.string, id: t.string, was: CellStatus, now: CellStatus }),
    t.partial({ firstFailure: CellFailure }),
  ],
  'CellChange',
);
export type CellChange = t.TypeOf<typeof CellChange>;

/** The difference between a baseline run and this one. */
export const ReportDiff = t.type(
  {
    /** The baseline, as named on the command line. */
    baseline: t.string,
    adaptersAdded: t.array(t.string),
    adaptersRemoved: t.array(t.string),
    /** Cells that fail now and did not before. */
    newlyFailing: t.array(CellChange),
    /** Cells that failed before and pass now. */
    newlyPassing: t.array(CellChange),
    /** Cells reached now that were unreached (or not applicable) before. */
    newlyReached: t.array(CellChange),
    /** Cells reached before (passing or failing) that no trace reaches now. */
    noLongerReached: t.array(CellChange),
  },
  'ReportDiff',
);
export type ReportDiff = t.TypeOf<typeof ReportDiff>;

/** The whole report (report.json). */
export const Report = t.intersection(
  [
    t.type({
      format: t.literal(REPORT_FORMAT),
      version: t.literal(REPORT_VERSION),
      totals: t.type({
        clauses: t.number,
        active: t.number,
        withdrawn: t.number,
        /** Active clauses that apply to at least one adapter. */
        applicable: t.number,
        /** Active clauses some adapter reached. */
        reached: t.number,
        neverReached: t.number,
        /** Clauses some adapter fails. */
        failing: t.number,
        traces: TraceCounts,
      }),
      adapters: t.array(AdapterSummary),
      /** Clauses no adapter reached, first: each is a generator gap or a spec question. */
      neverReached: t.array(NeverReached),
      chapters: t.array(ChapterSummary),
      clauses: t.array(ClauseRow),
      /** Clause IDs that runs counted but the spec does not define (a model naming a clause that does not exist). */
      unknownClauses: t.array(t.type({ id: t.string, adapters: t.array(t.string) })),
    }),
    t.partial({ coverage: CoverageSection, diff: ReportDiff }),
  ],
  'Report',
);
/** A report (report.json). */
export type Report = t.TypeOf<typeof Report>;

/** Zero counts. */
export function emptyCounts(): StatusCounts {
  return { pass: 0, fail: 0, unreached: 0, 'n/a': 0, error: 0 };
}

function isFailed(a: AdapterResults | AdapterFailed): a is AdapterFailed {
  return 'error' in a;
}

/** The cell of clause `c` on adapter results `a`. */
function cellOf(c: Clause, a: AdapterResults | AdapterFailed, byTrace: ReadonlyMap<string, FailureRecord>): Cell {
  if (isFailed(a)) return { status: 'error', steps: 0, traces: 0, failures: 0 };
  const s = a.clauses[c.id];
  const steps = s?.steps ?? 0;
  const traces = s?.traces ?? 0;
  const failures = s?.failures ?? 0;
  if (failures > 0) {
    const ff = s!.firstFailure;
    const rec = ff === undefined ? undefined : byTrace.get(ff.trace);
    return {
      status: 'fail',
      steps,
      traces,
      failures,
      ...(ff === undefined
        ? {}
        : {
            firstFailure: {
              trace: ff.trace,
              file: ff.file,
              step: ff.step,
              replay: ff.replay,
              kind: rec?.kind ?? 'divergence',
              message: rec?.message ?? '',
            },
          }),
    };
  }
  if (steps > 0) return { status: 'pass', steps, traces, failures };
  const applies =
    clauseApplies(c, a.capabilities.profile, new Set(a.capabilities.features)) &&
    clauseMatches(c.id, a.settings.clauses);
  return { status: applies ? 'unreached' : 'n/a', steps, traces, failures };
}

function adapterSummary(name: string, a: AdapterResults | AdapterFailed, counts: StatusCounts): AdapterSummary {
  if (isFailed(a))
    return { name, opened: false, counts, error: a.error, ...(a.stderr === undefined ? {} : { stderr: a.stderr }) };
  const caps = a.capabilities;
  return {
    name,
    opened: true,
    counts,
    profile: caps.profile,
    features: [...caps.features],
    ...(caps.description === undefined ? {} : { description: caps.description }),
    platform: caps.platform.name,
    seed: a.settings.seed,
    runs: a.settings.runs,
    focus: [...a.settings.clauses],
    traces: a.traces,
    corpus: {
      total: a.corpus.total,
      passed: a.corpus.passed,
      failed: a.corpus.failed,
      skipped: a.corpus.skipped.length,
    },
    steps: a.steps,
    ...(a.partial === undefined ? {} : { partial: a.partial }),
  };
}

/** The ops the generators draw for an adapter (its profile and the features traces were generated for). */
function drawnOps(a: AdapterResults): Set<string> {
  const profile = a.capabilities.profile;
  if (!(PROFILES as readonly string[]).includes(profile)) return new Set();
  return new Set(templatesFor(profile, a.settings.features).map((d) => d.op));
}

function neverReachedOf(
  c: Clause,
  spec: Spec,
  ran: readonly [string, AdapterResults][],
  ops: ReadonlyMap<string, Set<string>>,
): NeverReached {
  const register = spec.register
    .filter((r) => r.clauses.includes(c.id) && r.status.startsWith('open'))
    .map((r) => r.id);
  const questions = spec.register
    .filter((r) => r.kind === 'spec-question' && r.clauses.includes(c.id) && r.status.startsWith('open'))
    .map((r) => r.id);
  const base = { id: c.id, chapter: c.chapter, title: c.title, register };
  if (c.withdrawn) return { ...base, kind: 'withdrawn', drawable: false, detail: 'withdrawn from the spec' };
  const applicable = ran.filter(
    ([, a]) =>
      clauseApplies(c, a.capabilities.profile, new Set(a.capabilities.features)) &&
      clauseMatches(c.id, a.settings.clauses),
  );
  if (applicable.length === 0) {
    const needs = `${c.profiles.join(', ')}${c.features.length > 0 ? ` with ${c.features.join(', ')}` : ''}`;
    const focused = ran.filter(
      ([, a]) =>
        clauseApplies(c, a.capabilities.profile, new Set(a.capabilities.features)) &&
        !clauseMatches(c.id, a.settings.clauses),
    );
    const detail =
      focused.length > 0
        ? `outside the --clause focus of ${focused.map(([n]) => n).join(', ')}`
        : ran.length === 0
          ? 'no adapter ran'
          : `applies to ${needs}; no adapter of the run declares that`;
    return { ...base, kind: 'not-applicable', drawable: false, detail };
  }
  const names = applicable.map(([n]) => n).join(', ');
  const drawable = applicable.some(([n]) => c.commands.some((op) => ops.get(n)!.has(op)));
  if (questions.length > 0)
    return {
      ...base,
      kind: 'spec-question',
      drawable,
      detail: `applies to ${names} but the open spec question ${questions.join(', ')} leaves its behaviour undecided`,
    };
  if (c.commands.length === 0)
    return {
      ...base,
      kind: 'generator-gap',
      drawable: false,
      detail: `applies to ${names}; it names no command, so no generated step can reach it: it needs a test of its own`,
    };
  if (!drawable)
    return {
      ...base,
      kind: 'generator-gap',
      drawable: false,
      detail: `applies to ${names}, but no generator draws ${c.commands.join(' / ')} for that profile and features`,
    };
  const runs = applicable.reduce((n, [, a]) => n + a.traces.total, 0);
  return {
    ...base,
    kind: 'generator-gap',
    drawable: true,
    detail: `applies to ${names}; the generators draw its commands but none of ${runs} traces reached it (try run --clause ${c.id} --runs 1000)`,
  };
}

/** What {@link buildReport} needs besides the results. */
export interface BuildOptions {
  readonly spec: Spec;
  /** Code coverage per chapter (see `reports/coverage.ts`). */
  readonly coverage?: CoverageSection;
}

/** Builds the report model from merged results (see `mergeResults` in conformance/runner.ts). */
export function buildReport(results: Results, opts: BuildOptions): Report {
  const { spec } = opts;
  const entries = Object.entries(results.adapters).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  const ran = entries.filter((e): e is [string, AdapterResults] => !isFailed(e[1]));
  const ops = new Map(ran.map(([n, a]) => [n, drawnOps(a)]));
  const byTrace = new Map(
    entries.map(([n, a]) => [n, new Map(isFailed(a) ? [] : a.failures.map((f) => [f.trace, f]))]),
  );
  const counts = new Map(entries.map(([n]) => [n, emptyCounts()]));
  const chapterOrder = spec.vocabularies.chapters.map((c) => c.name);
  const chapters = new Map<string, ChapterSummary>(
    spec.vocabularies.chapters.map((c) => [
      c.name,
      {
        chapter: c.name,
        title: c.rest,
        clauses: 0,
        withdrawn: 0,
        reached: 0,
        neverReached: 0,
        cells: Object.fromEntries(entries.map(([n]) => [n, emptyCounts()])),
      },
    ]),
  );
  const rows: ClauseRow[] = [];
  const never: NeverReached[] = [];
  const totals = { applicable: 0, reached: 0, failing: 0 };
  for (const c of spec.clauses) {
    const cells: Record<string, Cell> = {};
    let steps = 0;
    let traces = 0;
    for (const [n, a] of entries) {
      const cell = cellOf(c, a, byTrace.get(n)!);
      cells[n] = cell;
      steps += cell.steps;
      traces += cell.traces;
      counts.get(n)![cell.status]++;
    }
    rows.push({
      id: c.id,
      chapter: c.chapter,
      title: c.title,
      level: c.level,
      profiles: [...c.profiles],
      features: [...c.features],
      commands: [...c.commands],
      withdrawn: c.withdrawn,
      steps,
      traces,
      cells,
    });
    const ch = chapters.get(c.chapter);
    const statuses = Object.values(cells).map((x) => x.status);
    const reached = statuses.some((s) => s === 'pass' || s === 'fail');
    if (!c.withdrawn && statuses.some((s) => s !== 'n/a')) totals.applicable++;
    if (reached && !c.withdrawn) totals.reached++;
    if (statuses.includes('fail')) totals.failing++;
    if (!reached) never.push(neverReachedOf(c, spec, ran, ops));
    if (ch !== undefined) {
      if (c.withdrawn) ch.withdrawn++;
      else ch.clauses++;
      if (reached && !c.withdrawn) ch.reached++;
      if (!reached) ch.neverReached++;
      for (const [n, cell] of Object.entries(cells)) ch.cells[n]![cell.status]++;
    }
  }
  // Never-reached clauses: applicable-but-unreached (generator gaps and spec questions) before the rest.
  const rank: Record<NeverReachedKind, number> = {
    'generator-gap': 0,
    'spec-question': 1,
    'not-applicable': 2,
    withdrawn: 3,
  };
  const specIndex = new Map(spec.clauses.map((c, i) => [c.id, i]));
  never.sort((x, y) => rank[x.kind] - rank[y.kind] || specIndex.get(x.id)! - specIndex.get(y.id)!);
  const unknown = new Map<string, string[]>();
  for (const [n, a] of ran)
    for (const id of Object.keys(a.clauses)) if (!spec.byId.has(id)) unknown.set(id, [...(unknown.get(id) ?? []), n]);
  const traceTotals = { total: 0, passed: 0, failed: 0 };
  for (const [, a] of ran) {
    traceTotals.total += a.traces.total;
    traceTotals.passed += a.traces.passed;
    traceTotals.failed += a.traces.failed;
  }
  const chapterList = chapterOrder.map((n) => chapters.get(n)!);
  if (opts.coverage !== undefined)
    for (const ch of chapterList) {
      const cov: Record<string, ChapterCoverage> = {};
      for (const m of opts.coverage.models) {
        const x = m.chapters[ch.chapter];
        if (x !== undefined) cov[m.model] = x;
      }
      if (Object.keys(cov).length > 0) ch.coverage = cov;
    }
  const withdrawn = spec.clauses.filter((c) => c.withdrawn).length;
  return {
    format: REPORT_FORMAT,
    version: REPORT_VERSION,
    totals: {
      clauses: spec.clauses.length,
      active: spec.clauses.length - withdrawn,
      withdrawn,
      applicable: totals.applicable,
      reached: totals.reached,
      neverReached: never.length,
      failing: totals.failing,
      traces: traceTotals,
    },
    adapters: entries.map(([n, a]) => adapterSummary(n, a, counts.get(n)!)),
    neverReached: never,
    chapters: chapterList,
    clauses: rows,
    unknownClauses: [...unknown.entries()]
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([id, adapters]) => ({ id, adapters })),
    ...(opts.coverage === undefined ? {} : { coverage: opts.coverage }),
  };
}

/** The text of a report.json (two-space indent, trailing newline). */
export function reportText(r: Report): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

/**
 * Code coverage of the models, per spec chapter, from c8's JSON summary (`coverage/coverage-summary.json`, written
 * by `npm test` through the `json-summary` reporter of `.c8rc.json`), shown beside the clause coverage.
 *
 * A module of `src/reference/` (the uAPI model) or `src/hw-reference/` (the hardware model) belongs to the chapter
 * its module comment names or cites (see {@link chapterOfModule}), else to `shared` (state, core data structures,
 * dispatch). Files elsewhere are ignored.
 *
 * This is line/branch coverage of the model code by the whole test run; it is not the clause coverage of a
 * conformance run, and it says nothing about an implementation under test.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import * as t from 'io-ts';
import { UsageError } from '../conformance/errors.ts';

/** Covered and total items of one metric. */
export const Metric = t.type({ covered: t.number, total: t.number }, 'Metric');
export type Metric = t.TypeOf<typeof Metric>;

/** Coverage of a group of files. */
export const ChapterCoverage = t.type(
  { files: t.array(t.string), lines: Metric, statements: Metric, functions: Metric, branches: Metric },
  'ChapterCoverage',
);
export type ChapterCoverage = t.TypeOf<typeof ChapterCoverage>;

/** Coverage of one model: its total and its chapters (`shared` for modules of no chapter). */
export const ModelCoverage = t.type(
  {
    /** `uapi` (src/reference) or `hw` (src/hw-reference). */
    model: t.string,
    root: t.string,
    total: ChapterCoverage,
    chapters: t.record(t.string, ChapterCoverage),
  },
  'ModelCoverage',
);
export type ModelCoverage = t.TypeOf<typeof ModelCoverage>;

/** The coverage section of a report. */
export const CoverageSection = t.type({ source: t.string, models: t.array(ModelCoverage) }, 'CoverageSection');
export type CoverageSection = t.TypeOf<typeof CoverageSection>;

/** The models whose code is attributed to chapters. */
export const MODELS: readonly { model: string; root: string }[] = [
  { model: 'uapi', root: 'src/reference/' },
  { model: 'hw', root: 'src/hw-reference/' },
];

/** The default location of c8's summary. */
export const DEFAULT_COVERAGE_SUMMARY = 'coverage/coverage-summary.json';

const METRICS = ['lines', 'statements', 'functions', 'branches'] as const;

function empty(): ChapterCoverage {
  return {
    files: [],
    lines: { covered: 0, total: 0 },
    statements: { covered: 0, total: 0 },
    functions: { covered: 0, total: 0 },
    branches: { covered: 0, total: 0 },
  };
}

/**
 * The chapter a model module belongs to, from its module comment and file name: the chapter it names (`Chapter MAP`,
 * `(chapter REF)`), else the chapter file it cites (`spec/chapters/FD.md`), else the one chapter of all the clause IDs
 * it cites (`HW-015, HW-018` → HW; not for modules under `core/`), else its file name (`pasid.ts` → PASID), else
 * `shared`.
 */
export function chapterOfModule(file: string, source: string | undefined, chapters: readonly string[]): string {
  const doc = source === undefined ? '' : (/\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '');
  const known = (xs: Iterable<RegExpMatchArray>) => [...xs].map((m) => m[1]!).filter((c) => chapters.includes(c));
  const named = known(doc.matchAll(/\b[Cc]hapter ([A-Z]{2,6})\b/g));
  if (named.length > 0) return named[0]!;
  const cited = known(doc.matchAll(/spec\/chapters\/([A-Z]{2,6})\.md/g));
  if (cited.length > 0) return cited[0]!;
  // Clause IDs decide only when they all name one chapter, and not for the shared core (`core/`), whose comments
  // cite clauses as examples.
  const ids = new Set(known(doc.matchAll(/\b([A-Z]{2,6})-\d{3}\b/g)));
  if (ids.size === 1 && !/(^|\/)core\//.test(file)) return [...ids][0]!;
  const name = basename(file)
    .replace(/\.[cm]?[jt]s$/, '')
    .toUpperCase();
  return chapters.includes(name) ? name : 'shared';
}

type RawMetric = { total?: unknown; covered?: unknown };

function readMetric(entry: Record<string, unknown>, key: string, where: string): Metric {
  const m = entry[key] as RawMetric | undefined;
  if (typeof m?.total !== 'number' || typeof m.covered !== 'number')
    throw new UsageError(`${where}: "${key}" has no numeric total/covered (is this c8's json-summary?)`);
  return { covered: m.covered, total: m.total };
}

/**
 * Reads a c8 / istanbul `coverage-summary.json` and groups the models' files by chapter. `repoRoot` is where the
 * sources are read from (to find each module's chapter). Bad input raises a {@link UsageError}.
 */
export function readCoverageSummary(path: string, chapters: readonly string[], repoRoot: string): CoverageSection {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read coverage summary ${path}: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new UsageError(`coverage summary ${path}: not a JSON object of files`);
  const models: ModelCoverage[] = MODELS.map((m) => ({ ...m, total: empty(), chapters: {} }));
  for (const [key, raw] of Object.entries(json as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (key === 'total') continue;
    const norm = key.replace(/\\/g, '/');
    for (const m of models) {
      const at = norm.lastIndexOf(`/${m.root}`);
      const rel = at >= 0 ? norm.slice(at + 1) : norm.startsWith(m.root) ? norm : undefined;
      if (rel === undefined) continue;
      if (typeof raw !== 'object' || raw === null)
        throw new UsageError(`coverage summary ${path}: ${key}: not an object`);
      const where = `coverage summary ${path}: ${key}`;
      const local = join(repoRoot, rel);
      const source = existsSync(local)
        ? readFileSync(local, 'utf8')
        : existsSync(key)
          ? readFileSync(key, 'utf8')
          : undefined;
      const chapter = chapterOfModule(rel, source, chapters);
      const g = (m.chapters[chapter] ??= empty());
      g.files.push(rel);
      m.total.files.push(rel);
      for (const k of METRICS) {
        const v = readMetric(raw as Record<string, unknown>, k, where);
        g[k].covered += v.covered;
        g[k].total += v.total;
        m.total[k].covered += v.covered;
        m.total[k].total += v.total;
      }
      break;
    }
  }
  const order = (k: string) => (k === 'shared' ? chapters.length : chapters.indexOf(k));
  return {
    source: path,
    models: models
      .filter((m) => m.total.files.length > 0)
      .map((m) => ({
        ...m,
        chapters: Object.fromEntries(Object.entries(m.chapters).sort(([a], [b]) => order(a) - order(b))),
      })),
  };
}

/** A percentage with one decimal, or `–` when there is nothing to cover. */
export function percent(m: Metric): string {
  return m.total === 0 ? '–' : `${((100 * m.covered) / m.total).toFixed(1)}%`;
}

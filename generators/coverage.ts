/**
 * Coverage-aware weighting: given the clause hit counts of a run (what the reference model evaluated), which
 * applicable clauses were not reached, whether any template can produce their commands at all, and weight
 * multipliers that favour the templates of the unreached ones. The same matching serves `--clause` focus.
 *
 * @module
 */
import { clauseApplies, type Clause, type Spec } from '../src/spec/spec.ts';
import type { TemplateDef } from './template.ts';

/** A clause no trace reached. */
export interface Unreached {
  readonly id: string;
  readonly level: string;
  readonly commands: readonly string[];
  /** Whether some template of the run produces one of the clause's commands (false: a generator is missing). */
  readonly hasTemplate: boolean;
}

/** The coverage of one run against the clauses that apply to the implementation. */
export interface CoverageReport {
  /** Active clauses applying to the profile and features. */
  readonly applicable: readonly string[];
  /** Applicable clauses with at least one hit. */
  readonly reached: readonly string[];
  readonly unreached: readonly Unreached[];
  /** Hit clause IDs that are not clauses of the spec (a model naming a clause that does not exist). */
  readonly unknown: readonly string[];
}

/** Builds the coverage report of a run. `hits` maps clause IDs to the number of steps that evaluated them. */
export function coverageReport(
  spec: Spec,
  profile: string,
  features: readonly string[],
  hits: ReadonlyMap<string, number> | Readonly<Record<string, number>>,
  defs: readonly TemplateDef[] = [],
): CoverageReport {
  const table: ReadonlyMap<string, number> =
    hits instanceof Map ? hits : new Map(Object.entries(hits as Readonly<Record<string, number>>));
  const count = (id: string) => table.get(id) ?? 0;
  const have = new Set(features);
  const ops = new Set<string>(defs.map((d) => d.op));
  const applicable = spec.clauses.filter((c) => clauseApplies(c, profile, have));
  const reached = applicable.filter((c) => count(c.id) > 0).map((c) => c.id);
  const unreached = applicable
    .filter((c) => count(c.id) === 0)
    .map((c) => ({ id: c.id, level: c.level, commands: c.commands, hasTemplate: c.commands.some((o) => ops.has(o)) }));
  const keys = [...table.keys()];
  const unknown = keys.filter((k) => !spec.byId.has(k)).sort();
  return { applicable: applicable.map((c) => c.id), reached, unreached, unknown };
}

/** Weight multipliers (by template kind) that favour the templates producing the commands of `clauses`. */
export function weightsFor(
  defs: readonly TemplateDef[],
  clauses: readonly Pick<Clause, 'commands'>[],
  boost = 4,
): Record<string, number> {
  const ops = new Set(clauses.flatMap((c) => c.commands));
  const w: Record<string, number> = {};
  for (const d of defs) if (ops.has(d.op)) w[d.kind] = boost;
  return w;
}

/** Weight multipliers favouring the templates of the unreached clauses of a report. */
export function coverageWeights(
  defs: readonly TemplateDef[],
  report: CoverageReport,
  boost = 4,
): Record<string, number> {
  return weightsFor(defs, report.unreached, boost);
}

/**
 * Whether clause `id` matches a `--clause` pattern list: comma-separated IDs (`MAP-012`), chapter prefixes (`MAP`)
 * or prefixes ending in `*` (`MAP-01*`).
 */
export function clauseMatches(id: string, patterns: readonly string[]): boolean {
  if (patterns.length === 0) return true;
  return patterns.some((p) =>
    p.endsWith('*') ? id.startsWith(p.slice(0, -1)) : /^[A-Z]+$/.test(p) ? id.startsWith(`${p}-`) : id === p,
  );
}

/** Parses a `--clause` value into patterns; throws with a message on a malformed one. */
export function parseClausePatterns(value: string | undefined): string[] {
  if (value === undefined || value.trim() === '') return [];
  const pats = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const p of pats)
    if (!/^([A-Z]{2,6}(-\d{1,3}\*?)?|[A-Z]{2,6}-\*|[A-Z]{2,6}\*)$/.test(p))
      throw new Error(`bad clause pattern "${p}": expected an ID (MAP-012), a chapter (MAP) or a prefix (MAP-01*)`);
  return pats;
}

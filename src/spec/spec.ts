/**
 * The specification as data: clauses and register entries, loaded from `spec/` and checked.
 *
 * `loadSpec` never throws on a malformed clause: it returns every clause it could build together with a list of
 * diagnostics (file, line, message). `spec check` fails when that list is not empty. Everything else in the product
 * (models, generators, reports) reads clauses through this module.
 *
 * @module
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLAUSE_FIELDS, LEVELS, REGISTER_FIELDS, parseSections, splitList, type Level, type RawSection } from './parse.ts';
import { loadVocabularies, type Vocabularies } from './vocabulary.ts';

/** The repository's own `spec/` directory. */
export const DEFAULT_SPEC_DIR = fileURLToPath(new URL('../../spec', import.meta.url));

/** Where a clause's rule comes from. */
export type Source =
  | { readonly kind: 'seed'; readonly file: string; readonly quote: string }
  | { readonly kind: 'linux'; readonly path: string; readonly fn: string | undefined }
  | { readonly kind: 'rfc' | 'vt-d' | 'pcie'; readonly section: string }
  | { readonly kind: 'design'; readonly why: string };

/** One `profile [variant]: result (detail)` entry of an Outcome field. */
export interface OutcomeEntry {
  readonly profile: string;
  readonly variant: string | undefined;
  /** `ok` or an errno name. */
  readonly result: string;
  readonly detail: string | undefined;
}

/** A clause of the specification. */
export interface Clause {
  /** Stable ID, `CHAPTER-NNN`. */
  readonly id: string;
  /** Chapter prefix (`MAP`). */
  readonly chapter: string;
  readonly title: string;
  readonly level: Level;
  /** Profiles the clause applies to (already expanded from `all`). */
  readonly profiles: readonly string[];
  /** Features an implementation must declare for the clause to apply. */
  readonly features: readonly string[];
  readonly statement: string;
  readonly outcome: readonly OutcomeEntry[];
  readonly rationale: string;
  readonly sources: readonly Source[];
  readonly commands: readonly string[];
  readonly related: readonly string[];
  readonly withdrawn: boolean;
  /** Repository-relative file and 1-based line of the heading. */
  readonly file: string;
  readonly line: number;
}

/** An entry of the register of spec questions and suspected implementation defects. */
export interface RegisterEntry {
  readonly id: string;
  readonly title: string;
  readonly kind: 'spec-question' | 'suspected-defect';
  readonly clauses: readonly string[];
  readonly profiles: readonly string[];
  readonly status: string;
  readonly body: string;
  readonly sources: readonly Source[];
  readonly file: string;
  readonly line: number;
}

/** A problem found in the spec, with its position. */
export interface Diagnostic {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** The loaded specification. */
export interface Spec {
  readonly dir: string;
  readonly vocabularies: Vocabularies;
  /** Clauses in chapter order, then ID order. */
  readonly clauses: readonly Clause[];
  readonly byId: ReadonlyMap<string, Clause>;
  readonly register: readonly RegisterEntry[];
}

/** Normalises text for quote matching: drops `>` quote markers and folds all white space. */
export function normaliseForQuote(text: string): string {
  return text.replace(/>/g, ' ').replace(/\s+/g, ' ').trim();
}

/** Parses one `Source:` value. Returns an error message instead when it has no known form. */
export function parseSource(value: string): Source | string {
  let m = /^seed\s+(\S+?):\s*"(.+)"\s*$/.exec(value);
  if (m) return { kind: 'seed', file: m[1]!, quote: m[2]! };
  m = /^linux\s+(\S+?)(?::([A-Za-z_][A-Za-z0-9_]*))?(\s.*)?$/.exec(value);
  if (m) return { kind: 'linux', path: m[1]!, fn: m[2] };
  m = /^(rfc|vt-d|pcie)\s+(§\s*\S.*)$/.exec(value);
  if (m) return { kind: m[1] as 'rfc' | 'vt-d' | 'pcie', section: m[2]! };
  m = /^design:\s*(\S.*)$/.exec(value);
  if (m) return { kind: 'design', why: m[1]! };
  return `source "${value}" has no known form (seed FILE: "quote" | linux path:function | rfc §N | vt-d §N | pcie §N | design: why)`;
}

/** Parses an Outcome field into entries; returns error messages for entries it cannot read. */
export function parseOutcome(value: string): { entries: OutcomeEntry[]; errors: string[] } {
  const entries: OutcomeEntry[] = [];
  const errors: string[] = [];
  for (const part of value.split(';').map((s) => s.trim()).filter((s) => s !== '')) {
    const m = /^([a-z0-9-]+)(?:\s+([A-Za-z0-9-]+))?:\s*([A-Za-z0-9]+)\s*(?:\((.*)\))?\s*(.*)$/.exec(part);
    if (!m) {
      errors.push(`outcome entry "${part}" is not "profile [variant]: result (detail)"`);
      continue;
    }
    const trailing = m[5]!.trim();
    entries.push({
      profile: m[1]!,
      variant: m[2],
      result: m[3]!,
      detail: [m[4], trailing].filter((s) => s !== undefined && s !== '').join(' ') || undefined,
    });
  }
  return { entries, errors };
}

const CLAUSE_ID = /^([A-Z]+)-(\d{3})$/;
const REGISTER_ID = /^Q-([A-Z]+)-(\d{3})$/;

/** Loads and checks the spec in `dir`. Diagnostics are sorted by file and line. */
export function loadSpec(dir: string = DEFAULT_SPEC_DIR): { spec: Spec; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const rel = (f: string) => relative(join(dir, '..'), f) || f;
  const vocabularies = loadVocabularies(dir);
  const names = (v: readonly { name: string }[]) => new Set(v.map((e) => e.name));
  const chapterNames = vocabularies.chapters.map((c) => c.name);
  const profileSet = names(vocabularies.profiles);
  const featureSet = names(vocabularies.features);
  const errnoSet = names(vocabularies.errnos);
  const commandMap = new Map(vocabularies.commands.map((c) => [c.name, c]));
  const seedsDir = join(dir, 'seeds');
  const seedText = new Map<string, string>();
  if (existsSync(seedsDir))
    for (const f of readdirSync(seedsDir).filter((f) => f.endsWith('.md')))
      seedText.set(f, normaliseForQuote(readFileSync(join(seedsDir, f), 'utf8')));

  const problem = (file: string, line: number, message: string) => diagnostics.push({ file, line, message });

  const checkSources = (values: readonly { value: string; line: number }[], file: string): Source[] => {
    const out: Source[] = [];
    for (const { value, line } of values) {
      const s = parseSource(value);
      if (typeof s === 'string') {
        problem(file, line, s);
        continue;
      }
      if (s.kind === 'seed') {
        const text = seedText.get(s.file);
        if (text === undefined) problem(file, line, `seed file "${s.file}" does not exist in spec/seeds/`);
        else if (!text.includes(normaliseForQuote(s.quote)))
          problem(file, line, `the quote "${s.quote}" does not occur in seed ${s.file}`);
      }
      out.push(s);
    }
    return out;
  };

  /** Collects a section's fields by key, reporting unknown and repeated ones. */
  const fieldsOf = (sec: RawSection, allowed: readonly string[], repeatable: readonly string[]) => {
    const byKey = new Map<string, { value: string; line: number }[]>();
    for (const f of sec.fields) {
      if (!allowed.includes(f.key)) {
        problem(sec.file, f.line, `${sec.id}: unknown field "${f.key}" (allowed: ${allowed.join(', ')})`);
        continue;
      }
      const list = byKey.get(f.key) ?? [];
      if (list.length > 0 && !repeatable.includes(f.key))
        problem(sec.file, f.line, `${sec.id}: field "${f.key}" given twice`);
      list.push({ value: f.value, line: f.line });
      byKey.set(f.key, list);
    }
    for (const s of sec.stray) problem(sec.file, s.line, `${sec.id}: text outside a "- Key: value" field: "${s.text.slice(0, 60)}"`);
    return byKey;
  };

  const clauses: Clause[] = [];
  const relatedToCheck: { clause: Clause; line: number }[] = [];
  for (const chapter of chapterNames) {
    const path = join(dir, 'chapters', `${chapter}.md`);
    if (!existsSync(path)) {
      problem(rel(path), 0, `chapter ${chapter} has no file chapters/${chapter}.md`);
      continue;
    }
    const parsed = parseSections(readFileSync(path, 'utf8'), rel(path));
    if (!parsed.title?.startsWith(`${chapter} `)) problem(parsed.file, 1, `the file must start with "# ${chapter} — Title"`);
    let expected = 1;
    for (const sec of parsed.sections) {
      const idm = CLAUSE_ID.exec(sec.id);
      if (!idm) {
        problem(sec.file, sec.line, `"${sec.id}" is not a clause ID (CHAPTER-NNN)`);
        continue;
      }
      if (idm[1] !== chapter) problem(sec.file, sec.line, `${sec.id} belongs to chapter ${idm[1]}, not ${chapter}`);
      const num = Number(idm[2]);
      if (num !== expected)
        problem(sec.file, sec.line, `${sec.id}: expected ${chapter}-${String(expected).padStart(3, '0')} (IDs are consecutive; a withdrawn clause stays, marked Status: withdrawn)`);
      expected = num + 1;
      const f = fieldsOf(sec, CLAUSE_FIELDS, ['Source']);
      const one = (k: string) => f.get(k)?.[0];
      for (const req of ['Level', 'Profiles', 'Features', 'Statement', 'Rationale', 'Source', 'Commands'])
        if (!f.has(req)) problem(sec.file, sec.line, `${sec.id}: missing field "${req}"`);
      const levelField = one('Level');
      const level = (LEVELS as readonly string[]).includes(levelField?.value ?? '') ? (levelField!.value as Level) : 'MUST';
      if (levelField && !(LEVELS as readonly string[]).includes(levelField.value))
        problem(sec.file, levelField.line, `${sec.id}: level "${levelField.value}" is not one of ${LEVELS.join(', ')}`);
      const statement = one('Statement');
      if (statement && levelField && !new RegExp(`\\b${level}\\b`).test(statement.value))
        problem(sec.file, statement.line, `${sec.id}: the statement does not use its level keyword "${level}"`);
      const profField = one('Profiles');
      let profiles = profField ? splitList(profField.value) : [];
      if (profiles.length === 1 && profiles[0] === 'all') profiles = [...profileSet];
      if (profField && profiles.length === 0) problem(sec.file, profField.line, `${sec.id}: no profile`);
      for (const p of profiles) if (!profileSet.has(p)) problem(sec.file, profField!.line, `${sec.id}: unknown profile "${p}"`);
      const featField = one('Features');
      const features = featField ? splitList(featField.value) : [];
      for (const x of features) if (!featureSet.has(x)) problem(sec.file, featField!.line, `${sec.id}: unknown feature "${x}"`);
      const cmdField = one('Commands');
      const commands = cmdField ? splitList(cmdField.value) : [];
      for (const c of commands) {
        const entry = commandMap.get(c);
        if (!entry) problem(sec.file, cmdField!.line, `${sec.id}: unknown command "${c}"`);
        else if (!entry.profiles.includes('all') && !entry.profiles.some((p) => profiles.includes(p)))
          problem(sec.file, cmdField!.line, `${sec.id}: command ${c} belongs to ${entry.profiles.join(',')}, not to the clause's profiles`);
      }
      const outField = one('Outcome');
      const outcome: OutcomeEntry[] = [];
      if (outField) {
        const { entries, errors } = parseOutcome(outField.value);
        for (const e of errors) problem(sec.file, outField.line, `${sec.id}: ${e}`);
        for (const e of entries) {
          if (!profiles.includes(e.profile)) problem(sec.file, outField.line, `${sec.id}: outcome names profile "${e.profile}", which the clause does not list`);
          if (!errnoSet.has(e.result)) problem(sec.file, outField.line, `${sec.id}: outcome "${e.result}" is not in errnos.txt`);
          outcome.push(e);
        }
      }
      const statusField = one('Status');
      const withdrawn = statusField !== undefined && /^withdrawn\b/.test(statusField.value);
      if (statusField && !withdrawn && statusField.value !== 'active')
        problem(sec.file, statusField.line, `${sec.id}: status must be "active" or "withdrawn — reason"`);
      const clause: Clause = {
        id: sec.id,
        chapter,
        title: sec.title,
        level,
        profiles,
        features,
        statement: statement?.value ?? '',
        outcome,
        rationale: one('Rationale')?.value ?? '',
        sources: checkSources(f.get('Source') ?? [], sec.file),
        commands,
        related: one('Related') ? splitList(one('Related')!.value) : [],
        withdrawn,
        file: sec.file,
        line: sec.line,
      };
      if (clauses.some((c) => c.id === clause.id)) problem(sec.file, sec.line, `${sec.id} is defined twice`);
      clauses.push(clause);
      if (one('Related')) relatedToCheck.push({ clause, line: one('Related')!.line });
    }
    const active = parsed.sections.length;
    if (active < 5) problem(parsed.file, 1, `chapter ${chapter} has ${active} clauses; every chapter needs at least 5`);
  }
  const byId = new Map(clauses.map((c) => [c.id, c]));
  for (const { clause, line } of relatedToCheck)
    for (const r of clause.related) if (!byId.has(r)) problem(clause.file, line, `${clause.id}: related clause ${r} does not exist`);

  // Every seed is cited by at least three clauses.
  for (const seed of seedText.keys()) {
    const n = clauses.filter((c) => c.sources.some((s) => s.kind === 'seed' && s.file === seed)).length;
    if (n < 3) problem(`spec/seeds/${seed}`, 0, `seed ${seed} is cited by ${n} clause(s); each seed needs at least 3`);
  }

  const register: RegisterEntry[] = [];
  const regDir = join(dir, 'register');
  const regFiles = existsSync(regDir) ? readdirSync(regDir).filter((f) => f.endsWith('.md') && f !== 'README.md').sort() : [];
  for (const name of regFiles) {
    const path = join(regDir, name);
    const chapter = basename(name, '.md');
    if (!chapterNames.includes(chapter)) problem(rel(path), 0, `register file for unknown chapter ${chapter}`);
    for (const sec of parseSections(readFileSync(path, 'utf8'), rel(path)).sections) {
      const idm = REGISTER_ID.exec(sec.id);
      if (!idm || idm[1] !== chapter) problem(sec.file, sec.line, `"${sec.id}" is not a register ID of this file (Q-${chapter}-NNN)`);
      const f = fieldsOf(sec, REGISTER_FIELDS, ['Source']);
      for (const req of ['Kind', 'Clauses', 'Profiles', 'Status', 'Body'])
        if (!f.has(req)) problem(sec.file, sec.line, `${sec.id}: missing field "${req}"`);
      const kind = f.get('Kind')?.[0];
      if (kind && kind.value !== 'spec-question' && kind.value !== 'suspected-defect')
        problem(sec.file, kind.line, `${sec.id}: kind must be spec-question or suspected-defect`);
      const cl = f.get('Clauses')?.[0];
      const clauseIds = cl ? splitList(cl.value) : [];
      if (cl && clauseIds.length === 0) problem(sec.file, cl.line, `${sec.id}: names no clause`);
      for (const c of clauseIds) if (!byId.has(c)) problem(sec.file, cl!.line, `${sec.id}: clause ${c} does not exist`);
      const pf = f.get('Profiles')?.[0];
      const profiles = pf ? splitList(pf.value) : [];
      for (const p of profiles) if (!profileSet.has(p)) problem(sec.file, pf!.line, `${sec.id}: unknown profile "${p}"`);
      const status = f.get('Status')?.[0];
      if (status && !/^(open|answered|fixed)\b/.test(status.value))
        problem(sec.file, status.line, `${sec.id}: status must be open, answered — …, or fixed — …`);
      if (register.some((r) => r.id === sec.id)) problem(sec.file, sec.line, `${sec.id} is defined twice`);
      register.push({
        id: sec.id,
        title: sec.title,
        kind: kind?.value === 'suspected-defect' ? 'suspected-defect' : 'spec-question',
        clauses: clauseIds,
        profiles,
        status: status?.value ?? '',
        body: f.get('Body')?.[0]?.value ?? '',
        sources: checkSources(f.get('Source') ?? [], sec.file),
        file: sec.file,
        line: sec.line,
      });
    }
  }

  diagnostics.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  return { spec: { dir, vocabularies, clauses, byId, register }, diagnostics };
}

/** Whether a clause applies to an implementation of `profile` that declares `features`. */
export function clauseApplies(clause: Clause, profile: string, features: ReadonlySet<string>): boolean {
  return !clause.withdrawn && clause.profiles.includes(profile) && clause.features.every((f) => features.has(f));
}

/** The index line of a clause, as `spec list --json` prints it. */
export function indexEntry(c: Clause) {
  return {
    id: c.id,
    chapter: c.chapter,
    level: c.level,
    title: c.title,
    profiles: c.profiles,
    features: c.features,
    commands: c.commands,
    status: c.withdrawn ? 'withdrawn' : 'active',
    file: c.file,
    line: c.line,
  };
}

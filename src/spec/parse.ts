/**
 * Parser of the clause files (`spec/chapters/*.md`) and the register (`spec/register/*.md`).
 *
 * The Markdown is the single source of truth: a clause is a `### ID Title` heading followed by `- Key: value`
 * bullet fields (see `spec/README.md`). The parser is deliberately permissive — it records what it sees, with
 * line numbers — and leaves every judgement to the checker (`check.ts`), so a broken file yields a list of
 * precise diagnostics instead of an exception.
 *
 * @module
 */

/** The requirement levels of RFC 2119 used by clauses. */
export const LEVELS = ['MUST', 'MUST NOT', 'SHOULD', 'SHOULD NOT', 'MAY'] as const;
/** A requirement level. */
export type Level = (typeof LEVELS)[number];

/** The fields a clause may carry, in their canonical order. */
export const CLAUSE_FIELDS = [
  'Level',
  'Profiles',
  'Features',
  'Statement',
  'Outcome',
  'Rationale',
  'Source',
  'Commands',
  'Related',
  'Status',
] as const;
/** The fields a register entry may carry. */
export const REGISTER_FIELDS = ['Kind', 'Clauses', 'Profiles', 'Status', 'Body', 'Source'] as const;

/** One `- Key: value` field as written, with its line. */
export interface RawField {
  readonly key: string;
  readonly value: string;
  readonly line: number;
}

/** One `### ID Title` section as written: the heading and its fields. */
export interface RawSection {
  readonly id: string;
  readonly title: string;
  readonly file: string;
  readonly line: number;
  readonly fields: readonly RawField[];
  /** Lines of the section that are neither blank nor a field (reported by the checker). */
  readonly stray: readonly { readonly text: string; readonly line: number }[];
}

/** A parsed Markdown file: its `# Title` and its `###` sections. */
export interface RawFile {
  readonly file: string;
  readonly title: string | undefined;
  readonly sections: readonly RawSection[];
}

const HEADING = /^###\s+(\S+)\s+(.+?)\s*$/;
const FIELD = /^- ([A-Z][A-Za-z ]*?):\s*(.*)$/;

/**
 * Splits a clause or register file into sections. `file` is only used to label positions.
 * Text before the first `###` heading (the chapter title and introduction, `##` sub-headings) is prose.
 */
export function parseSections(text: string, file: string): RawFile {
  const lines = text.split('\n');
  const sections: RawSection[] = [];
  let title: string | undefined;
  let current: { id: string; title: string; line: number; fields: RawField[]; stray: RawSection['stray'][number][] } | undefined;
  let inFence = false;
  const flush = () => {
    if (current) sections.push({ ...current, file });
    current = undefined;
  };
  lines.forEach((raw, i) => {
    const line = raw.replace(/\s+$/, '');
    const n = i + 1;
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) return;
    if (title === undefined && /^# /.test(line)) {
      title = line.slice(2).trim();
      return;
    }
    const h = HEADING.exec(line);
    if (h) {
      flush();
      current = { id: h[1]!, title: h[2]!, line: n, fields: [], stray: [] };
      return;
    }
    if (/^#{1,2} /.test(line)) {
      flush();
      return;
    }
    if (!current || line.trim() === '') return;
    const f = FIELD.exec(line);
    if (f) current.fields.push({ key: f[1]!, value: f[2]!.trim(), line: n });
    else current.stray.push({ text: line, line: n });
  });
  flush();
  return { file, title, sections };
}

/** Splits a comma-separated list field; `none` (or `—`) is the empty list. */
export function splitList(value: string): string[] {
  const v = value.trim();
  if (v === '' || v === 'none' || v === '—' || v === '-') return [];
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

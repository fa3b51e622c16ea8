/**
 * The closed vocabularies of the specification (`spec/*.txt`): chapters, profiles, features, outcomes, commands.
 *
 * Each file holds one entry per line (`name  description…`); `#` starts a comment. These files are the only
 * place a vocabulary is defined: the checker, the models and the generators read them from here.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** One entry of a vocabulary file: its name, the rest of its line, and where it stands. */
export interface VocabularyEntry {
  /** The name (first word of the line). */
  readonly name: string;
  /** The rest of the line (a description, or for commands the profile column and a description). */
  readonly rest: string;
  /** 1-based line number in the file. */
  readonly line: number;
}

/** Parses the text of a vocabulary file. Blank lines and `#` comments are skipped. */
export function parseVocabulary(text: string): VocabularyEntry[] {
  const entries: VocabularyEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const m = /^(\S+)\s*(.*)$/.exec(line);
    if (m) entries.push({ name: m[1]!, rest: m[2]!.trim(), line: i + 1 });
  });
  return entries;
}

/** A command of `commands.txt`: its name and the profiles it belongs to (`all` for harness and hardware steps). */
export interface CommandEntry {
  readonly name: string;
  readonly profiles: readonly string[];
  readonly description: string;
}

/** All the closed vocabularies of one spec directory. */
export interface Vocabularies {
  readonly chapters: readonly VocabularyEntry[];
  readonly profiles: readonly VocabularyEntry[];
  readonly features: readonly VocabularyEntry[];
  readonly errnos: readonly VocabularyEntry[];
  readonly commands: readonly CommandEntry[];
}

/** Reads the vocabularies of the spec directory `specDir`. Throws if a file is missing. */
export function loadVocabularies(specDir: string): Vocabularies {
  const read = (name: string) => parseVocabulary(readFileSync(join(specDir, name), 'utf8'));
  return {
    chapters: read('chapters.txt'),
    profiles: read('profiles.txt'),
    features: read('features.txt'),
    errnos: read('errnos.txt'),
    commands: read('commands.txt').map((e) => {
      const m = /^(\S+)\s*(.*)$/.exec(e.rest);
      return { name: e.name, profiles: (m?.[1] ?? '').split(','), description: (m?.[2] ?? '').trim() };
    }),
  };
}

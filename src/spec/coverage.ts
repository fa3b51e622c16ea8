/**
 * Which clauses the tests name. A test names a clause by putting its ID in the title of a `describe` or `it`
 * (`describe('MAP-012 an unmap must not bisect a mapping', …)`); this module reads the test sources for those
 * titles. It is the static half of clause coverage; the dynamic half (which clauses a run really evaluated) comes
 * from the models' clause instrumentation.
 *
 * @module
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { Clause, Spec } from './spec.ts';

/** The result of scanning the tests. */
export interface TestCoverage {
  /** Clause ID → the test files that name it. */
  readonly tested: ReadonlyMap<string, readonly string[]>;
  /** Active clauses no test names. */
  readonly untested: readonly Clause[];
  /** IDs named by tests that are not clauses of the spec (a typo or a withdrawn-and-forgotten ID). */
  readonly unknown: readonly { id: string; file: string }[];
}

const TITLE = /\b(?:describe|it|context|specify)(?:\.only)?\(\s*(['"`])((?:\\.|(?!\1).)*)\1/g;
const ID = /\b([A-Z]{2,6}-\d{3})\b/g;

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

/** Scans `testDir` (default: the repository's `test/`) for clause IDs in test titles. */
export function testCoverage(spec: Spec, testDir = join(spec.dir, '..', 'test')): TestCoverage {
  const tested = new Map<string, string[]>();
  const unknown: { id: string; file: string }[] = [];
  for (const file of walk(testDir)) {
    const text = readFileSync(file, 'utf8');
    const rel = relative(join(spec.dir, '..'), file);
    for (const m of text.matchAll(TITLE)) {
      for (const idm of m[2]!.matchAll(ID)) {
        const id = idm[1]!;
        if (!spec.byId.has(id)) {
          if (!id.startsWith('Q-')) unknown.push({ id, file: rel });
          continue;
        }
        const files = tested.get(id) ?? [];
        if (!files.includes(rel)) files.push(rel);
        tested.set(id, files);
      }
    }
  }
  return { tested, untested: spec.clauses.filter((c) => !c.withdrawn && !tested.has(c.id)), unknown };
}

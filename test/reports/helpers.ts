// Shared fixtures of the report tests: the CLI with captured output, one real two-adapter run (the reference and
// buggy-unmap-bisect) made once per mocha process, a minimal XML well-formedness check and a draft-07 subset
// validator. Not a test file (no titles here).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../conformance/cli.ts';
import type { Report } from '../../reports/model.ts';

/** Runs the CLI, capturing what it prints. */
export async function cli(...argv: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(' '));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(' '));
  try {
    return { code: await main(argv), out, err };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** The broken adapter of the fixture run and the name its results carry. */
export const BROKEN = 'buggy-unmap-bisect';
export const BROKEN_NAME = 'reference+unmap-bisect';

/** A real run of two adapters and the report built from it. */
export interface TwoAdapterRun {
  readonly dir: string;
  /** `run --report-dir` output directories of the reference and of the broken adapter. */
  readonly r1: string;
  readonly r2: string;
  /** `report r1/results.json r2/results.json --out rep`. */
  readonly rep: string;
  readonly report: Report;
  readonly reportOut: string[];
}

let fixture: Promise<TwoAdapterRun> | undefined;

/** The two-adapter run, made once (30 traces each plus the corpus, seed 7). */
export function twoAdapterRun(): Promise<TwoAdapterRun> {
  fixture ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-reports-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    const r1 = join(dir, 'r1');
    const r2 = join(dir, 'r2');
    const rep = join(dir, 'rep');
    const common = ['--runs', '30', '--seed', '7', '--max-steps', '80', '--quiet'];
    const a = await cli('run', '--adapter', 'reference', '--report-dir', r1, ...common);
    // Exit 1 (the reference failing against itself) is a model defect the tests below report; 2 is a broken fixture.
    if (a.code > 1) throw new Error(`reference run: exit ${a.code}: ${a.err.join('\n')}`);
    const b = await cli('run', '--adapter', BROKEN, '--report-dir', r2, ...common);
    if (b.code !== 1) throw new Error(`broken run did not fail: ${b.out.join('\n')} ${b.err.join('\n')}`);
    const c = await cli('report', join(r1, 'results.json'), join(r2, 'results.json'), '--out', rep, '--no-coverage');
    if (c.code !== 1) throw new Error(`report: exit ${c.code}: ${c.out.join('\n')} ${c.err.join('\n')}`);
    const report = JSON.parse(readFileSync(join(rep, 'report.json'), 'utf8')) as Report;
    return { dir, r1, r2, rep, report, reportOut: c.out };
  })();
  return fixture;
}

/**
 * A minimal XML 1.0 well-formedness check (enough for JUnit files): one root element, properly nested and closed
 * tags, quoted attributes without `<` or a raw `&`, known or numeric entities only, no raw `<` or `&` in text, no
 * control characters. Returns the first problem, or undefined.
 */
export function xmlProblem(text: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/.test(text)) return 'control character';
  let s = text.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  const entityOk = (t: string) => !/&(?!(lt|gt|amp|quot|apos|#\d+|#x[0-9a-fA-F]+);)/.test(t);
  while (s.length > 0) {
    const lt = s.indexOf('<');
    const textPart = lt < 0 ? s : s.slice(0, lt);
    if (!entityOk(textPart)) return `bad entity in text near "${textPart.slice(0, 40)}"`;
    if (stack.length === 0 && textPart.trim() !== '') return 'text outside the root element';
    if (lt < 0) break;
    s = s.slice(lt);
    if (s.startsWith('<!--')) {
      const end = s.indexOf('-->');
      if (end < 0) return 'unterminated comment';
      s = s.slice(end + 3);
      continue;
    }
    const m = /^<(\/?)([A-Za-z_][\w.-]*)((?:\s+[A-Za-z_][\w.-]*\s*=\s*(?:"[^"<]*"|'[^'<]*'))*)\s*(\/?)>/.exec(s);
    if (m === null) return `malformed tag near "${s.slice(0, 60)}"`;
    const [all, close, name, attrs, selfClose] = m;
    if (!entityOk(attrs!)) return `bad entity in attributes of <${name}>`;
    const names = [...attrs!.matchAll(/\s+([A-Za-z_][\w.-]*)\s*=\s*(?:"[^"<]*"|'[^'<]*')/g)].map((x) => x[1]);
    if (new Set(names).size !== names.length) return `duplicate attribute in <${name}>`;
    if (close) {
      if (stack.pop() !== name) return `</${name}> closes the wrong element`;
    } else {
      if (stack.length === 0) roots++;
      if (!selfClose) stack.push(name!);
    }
    s = s.slice(all.length);
  }
  if (stack.length > 0) return `<${stack.at(-1)}> is not closed`;
  return roots === 1 ? undefined : `${roots} root elements`;
}

export { validate, type Schema } from '../schema-validate.ts';

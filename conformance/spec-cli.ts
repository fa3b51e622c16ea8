/**
 * `ioasid-conformance spec …`: check the specification, print its index, and report which clauses the tests name.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { DEFAULT_SPEC_DIR, indexEntry, loadSpec } from '../src/spec/spec.ts';
import { testCoverage } from '../src/spec/coverage.ts';
import { UsageError } from './errors.ts';

const HELP = `usage:
  ioasid-conformance spec check [--spec-dir DIR]
  ioasid-conformance spec list [--json] [--chapter CH] [--spec-dir DIR]
  ioasid-conformance spec coverage [--json] [--require-levels MUST,MUST NOT] [--spec-dir DIR]`;

function parse(argv: readonly string[], extra: Record<string, { type: 'string' | 'boolean' }>) {
  try {
    return parseArgs({
      args: [...argv],
      options: { 'spec-dir': { type: 'string' }, help: { type: 'boolean' }, ...extra },
      allowPositionals: false,
    }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${HELP}`);
  }
}

/** Runs a `spec` subcommand; returns the exit code. */
export function specCommand(argv: readonly string[]): number {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'check': {
      const v = parse(rest, {});
      if (v.help) return (console.log(HELP), 0);
      const { spec, diagnostics } = loadSpec((v['spec-dir'] as string | undefined) ?? DEFAULT_SPEC_DIR);
      for (const d of diagnostics) console.error(`${d.file}:${d.line}: ${d.message}`);
      const chapters = new Set(spec.clauses.map((c) => c.chapter)).size;
      if (diagnostics.length > 0) {
        console.error(`spec check: ${diagnostics.length} error(s) in ${spec.clauses.length} clauses`);
        return 1;
      }
      console.log(
        `spec check: ok — ${spec.clauses.length} clauses in ${chapters} chapters, ${spec.register.length} register entries`,
      );
      return 0;
    }
    case 'list': {
      const v = parse(rest, { json: { type: 'boolean' }, chapter: { type: 'string' } });
      if (v.help) return (console.log(HELP), 0);
      const { spec, diagnostics } = loadSpec((v['spec-dir'] as string | undefined) ?? DEFAULT_SPEC_DIR);
      if (diagnostics.length > 0)
        console.error(`warning: the spec has ${diagnostics.length} error(s); run "spec check"`);
      const clauses = spec.clauses.filter((c) => v.chapter === undefined || c.chapter === v.chapter);
      if (v.json) console.log(JSON.stringify(clauses.map(indexEntry), null, 2));
      else
        for (const c of clauses)
          console.log(`${c.id.padEnd(10)} ${c.level.padEnd(10)} ${c.profiles.join(',').padEnd(24)} ${c.title}`);
      return 0;
    }
    case 'coverage': {
      const v = parse(rest, { json: { type: 'boolean' }, 'require-levels': { type: 'string' } });
      if (v.help) return (console.log(HELP), 0);
      const { spec } = loadSpec((v['spec-dir'] as string | undefined) ?? DEFAULT_SPEC_DIR);
      const cov = testCoverage(spec);
      const required =
        v['require-levels'] === undefined
          ? undefined
          : new Set(
              String(v['require-levels'])
                .split(',')
                .map((s) => s.trim()),
            );
      const missing = cov.untested.filter((c) => required === undefined || required.has(c.level));
      if (v.json)
        console.log(
          JSON.stringify(
            { tested: cov.tested.size, untested: cov.untested.map((c) => c.id), unknownIds: cov.unknown },
            null,
            2,
          ),
        );
      else {
        for (const c of cov.untested) console.log(`untested: ${c.id} ${c.level} ${c.title}`);
        for (const u of cov.unknown) console.log(`unknown clause named by a test: ${u.id} (${u.file})`);
        console.log(
          `spec coverage: ${cov.tested.size} of ${spec.clauses.filter((c) => !c.withdrawn).length} clauses named by a test`,
        );
      }
      return missing.length > 0 || cov.unknown.length > 0 ? 1 : 0;
    }
    case undefined:
      throw new UsageError(HELP);
    default:
      throw new UsageError(`unknown spec command "${sub}"\n\n${HELP}`);
  }
}

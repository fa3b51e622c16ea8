/**
 * The bug catalogue: deliberately broken implementations, each the reference with one plausible developer's slip
 * (see `kit.ts` for the mechanism), each tied to the clauses it violates, with a rationale saying where such a bug
 * lives in a real kernel or VMM. `npm run mutants` runs the default conformance run against every entry and reports
 * which ones the suite catches, how fast, and how small the counterexample shrinks.
 *
 * Every entry is also an adapter: `--adapter buggy-<name>` (in process) and `buggy-stdio-<name>` (over stdio).
 *
 * Not for: judging implementations (these are known-bad on purpose); the reference itself is `reference`.
 *
 * @module
 */
import type { Command } from '../../src/reference/commands.ts';
import { DEV_BUGS } from './dev.ts';
import { FD_BUGS } from './fd.ts';
import { IOAS_BUGS } from './ioas.ts';
import { UNMAP_OPS, bug, type Bug } from './kit.ts';
import { MAP_BUGS } from './map.ts';
import { ORDER_BUGS } from './order.ts';
import { PASID_BUGS } from './pasid.ts';
import { REF_BUGS } from './ref.ts';
import { RFC_BUGS } from './rfc.ts';
import { TYPE1_BUGS } from './type1.ts';

export type { Bug } from './kit.ts';

/** The catalogue, by name: every plausible bug, each violating named clauses. */
export const CATALOGUE: Readonly<Record<string, Bug>> = {
  ...FD_BUGS,
  ...IOAS_BUGS,
  ...MAP_BUGS,
  ...DEV_BUGS,
  ...TYPE1_BUGS,
  ...RFC_BUGS,
  ...REF_BUGS,
  ...PASID_BUGS,
  ...ORDER_BUGS,
};

/**
 * Defects of the harness rather than of the uAPI (not in the catalogue: they break no clause): the runner's own
 * tests use them to check crash handling.
 */
export const HARNESS_BUGS: Readonly<Record<string, Bug>> = {
  'crash-third-unmap': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: [],
    description: 'crashes on the third unmap of a trace',
    rationale: 'Not a uAPI bug: an implementation that dies mid-trace, to test how the runner reports crashes.',
    ops: UNMAP_OPS,
    step: (s) => (s.nth === 3 ? { crash: 'injected crash on the third unmap' } : s.run().outcome),
  }),
};

/** Whether a command is one a bug touches (its `ops`, or every command when it names none). */
export function touches(b: Bug, cmd: Command): boolean {
  return b.ops === undefined || b.ops.includes(cmd.op);
}

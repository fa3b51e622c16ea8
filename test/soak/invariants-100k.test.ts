// Soak: 100,000 random steps per profile with every invariant of src/reference/invariants.ts holding after each
// step (issue 3, "done when"): ten walks of 10,000 steps per profile, drawn from the project's generators with fixed
// seeds; the full O(n) checker confirms the state at the end of each walk. Runs in the default `npm test` (mocha's
// spec glob covers test/**), here rather than in test/reference because it takes tens of seconds per profile.
import { strict as assert } from 'node:assert';
import { PROFILES } from '../../src/reference/commands.ts';
import { checkAllInvariants, INVARIANT_CLAUSES } from '../../src/reference/invariants.ts';
import { RandomWalk } from '../reference/fixtures.ts';

const STEPS = 100_000;
/** Steps per walk. One walk of 100,000 steps costs more than linear time in the driver (the generators read the live
 * objects every step, and rfc IOASIDs pile up), so the soak is ten 10,000-step walks, each from a fresh fd. */
const WALK = 10_000;
const ALL = Object.values(INVARIANT_CLAUSES).flat();

describe('invariants: 100,000-step soak', function () {
  this.timeout(1_200_000);
  for (const profile of PROFILES) {
    it(`${ALL.join(' ')} hold over ${STEPS} random steps (${profile})`, () => {
      const t0 = performance.now();
      let total = 0;
      let dropped = 0;
      const reached = new Set<string>();
      for (let walk = 0; total < STEPS; walk++) {
        const w = new RandomWalk(profile);
        const want = Math.min(WALK, STEPS - total);
        for (let chunk = 0; w.steps < want; chunk++) {
          const n = Math.ceil((want - w.steps) * 1.15);
          w.run(w.templates(n, 0x5eed + walk * 1000 + chunk), (cmd, r) => {
            if (r.violations.length > 0)
              assert.fail(
                `walk ${walk}, ${cmd.op} at step ${w.steps}: ${r.violations.map((v) => `${v.clause} ${v.message}`).join('; ')}`,
              );
          });
        }
        assert.deepEqual(checkAllInvariants(w.model.snapshot().state), [], `the full checker after walk ${walk}`);
        for (const [k, n] of Object.entries(w.model.invariants!.evaluated)) if (n > 0) reached.add(k);
        total += w.steps;
        dropped += w.dropped;
      }
      const ms = performance.now() - t0;
      for (const k of ['no-overlap', 'reserved', 'map-shape', 'unmap-whole', 'attachments', 'accounting'])
        assert.ok(reached.has(k), `the walks reached invariant ${k}`);
      console.log(
        `      ${profile}: ${total} steps in ${(ms / 1000).toFixed(1)} s (${Math.round(total / (ms / 1000))} steps/s, generation included), ${dropped} templates dropped`,
      );
    });
  }
});

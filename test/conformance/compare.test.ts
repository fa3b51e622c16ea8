/**
 * The runner's per-step comparison: its fast path (`sameValue`) must judge exactly as the path-building comparison
 * (`diffValue`) does, or a divergence could pass unseen (or a conforming output fail).
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { diffValue, sameValue } from '../../conformance/runner.ts';
import type { OutValue } from '../../src/reference/commands.ts';

/** Output values the way models and adapters produce them: IDs, u64s in their three encodings, lists, records. */
const scalar: fc.Arbitrary<OutValue> = fc.oneof(
  fc.integer({ min: -2, max: 5 }),
  fc.bigInt({ min: 0n, max: 5n }),
  fc.constantFrom('0x0', '0x3', '3', '0x10000000000000000', 'ENOENT', '', 'x'),
  fc.boolean(),
);
const value: fc.Arbitrary<OutValue> = fc.letrec<{ v: OutValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('v'), { maxLength: 3 }),
    fc.dictionary(fc.constantFrom('id', 'iova', 'length', 'out'), tie('v'), { maxKeys: 3 }),
  ),
})).v;

describe('MAP-021 output comparison: the fast path agrees with the reported difference', () => {
  it('sameValue(model, impl) holds exactly when diffValue finds no difference', () => {
    fc.assert(
      fc.property(value, fc.option(value, { nil: undefined }), (model, impl) => {
        assert.equal(sameValue(model, impl), diffValue(model, impl, '') === undefined);
      }),
      { seed: 1, numRuns: 20_000 },
    );
  });

  it('MAP-021 an automatic IOVA in any encoding equals its number, and a different one does not', () => {
    for (const enc of [0x1000n, 4096, '0x1000', '4096'] as OutValue[])
      assert.ok(sameValue({ iova: 0x1000n }, { iova: enc }));
    assert.ok(!sameValue({ iova: 0x1000n }, { iova: '0x2000' }));
    assert.ok(!sameValue({ iova: 0x1000n }, {}));
    assert.ok(sameValue({ iova: 0x1000n }, { iova: 0x1000n, extra: 1 }));
  });
});

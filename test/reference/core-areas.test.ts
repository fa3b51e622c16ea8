// The interval structures under every address space (src/reference/core/areas.ts), at their edges: the checks of
// MAP-002 (an overlap of one byte is an overlap), MAP-026 (an unmap range meets the areas it touches) and DEV-014 /
// MAP-021 (the usable ranges are exactly the holes between reservations) rest on them.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { AreaMap, RangeSet, type OwnedRange } from '../../src/reference/core/areas.ts';
import { makeArea } from '../../src/reference/core/placement.ts';
import { U64_MAX } from '../../src/reference/u64.ts';

const area = (iova: bigint, last: bigint) => makeArea(iova, last - iova + 1n, 0n, 0, 0n, 3, 0);
/** Areas [0x1000, 0x1fff] and [0x3000, 0x3fff]. */
function two(): AreaMap {
  const m = new AreaMap();
  m.insert(area(0x1000n, 0x1fffn));
  m.insert(area(0x3000n, 0x3fffn));
  return m;
}

describe('MAP-002 MAP-026 areas are found by a range that touches them by one byte', () => {
  it('MAP-002 containing: the first and the last byte of an area are inside it, the bytes around are not', () => {
    const m = two();
    assert.equal(m.containing(0x1000n)?.iova, 0x1000n);
    assert.equal(m.containing(0x1fffn)?.iova, 0x1000n);
    assert.equal(m.containing(0xfffn), undefined);
    assert.equal(m.containing(0x2000n), undefined);
  });

  it('MAP-002 firstIntersecting: a range ending on an area’s first byte, or starting on its last, meets it', () => {
    const m = two();
    assert.equal(m.firstIntersecting(0x2000n, 0x3000n)?.iova, 0x3000n);
    assert.equal(m.firstIntersecting(0x2000n, 0x2fffn), undefined);
    assert.equal(m.firstIntersecting(0x1fffn, 0x1fffn)?.iova, 0x1000n);
    assert.equal(m.firstIntersecting(0x4000n, U64_MAX), undefined);
  });

  it('MAP-026 intersecting: every area a range touches, the one starting on its last byte included', () => {
    const m = two();
    assert.deepEqual(
      [...m.intersecting(0x1fffn, 0x3000n)].map((a) => a.iova),
      [0x1000n, 0x3000n],
    );
    assert.deepEqual(
      [...m.intersecting(0x0n, 0x2fffn)].map((a) => a.iova),
      [0x1000n],
    );
  });
});

describe('DEV-014 MAP-021 usable ranges are the holes between reservations', () => {
  const r = (start: bigint, last: bigint): OwnedRange => ({ start, last, owner: 'x' });

  it('DEV-014 reservations given in any order, nested or overlapping, leave the same holes', () => {
    const set = new RangeSet([r(0x5000n, 0x5fffn), r(0x1000n, 0x3fffn), r(0x2000n, 0x2fffn), r(0x3000n, 0x4fffn)]);
    assert.deepEqual(set.holes(), [
      { start: 0n, last: 0xfffn },
      { start: 0x6000n, last: U64_MAX },
    ]);
  });

  it('DEV-014 adjacent reservations leave no empty hole between them; one ending at U64_MAX leaves none after it', () => {
    assert.deepEqual(new RangeSet([r(0n, 0xfffn), r(0x1000n, 0x1fffn)]).holes(), [{ start: 0x2000n, last: U64_MAX }]);
    assert.deepEqual(new RangeSet([r(0x1000n, U64_MAX)]).holes(), [{ start: 0n, last: 0xfffn }]);
    assert.deepEqual(new RangeSet([]).holes(), [{ start: 0n, last: U64_MAX }]);
  });

  it('MAP-021 the holes are exactly the addresses no reservation covers (random reservations)', () => {
    const small = fc.bigInt({ min: 0n, max: 63n });
    fc.assert(
      fc.property(fc.array(fc.tuple(small, small), { maxLength: 6 }), (pairs) => {
        const ranges = pairs.map(([a, b]) => (a <= b ? r(a, b) : r(b, a)));
        const holes = new RangeSet(ranges).holes();
        for (let x = 0n; x < 70n; x++) {
          const reserved = ranges.some((q) => q.start <= x && x <= q.last);
          const inHole = holes.some((h) => h.start <= x && x <= h.last);
          assert.equal(inHole, !reserved, `address ${x}`);
        }
        // Holes are ascending, disjoint and not adjacent (adjacent holes would be one hole).
        for (let i = 1; i < holes.length; i++) assert.ok(holes[i]!.start > holes[i - 1]!.last + 1n);
      }),
      { seed: 1, numRuns: 2000 },
    );
  });
});

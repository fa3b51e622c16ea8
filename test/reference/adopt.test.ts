// Lockstep adoption: when an implementation's reply carries a value the clauses leave to it (an automatic IOVA) or
// that the model would have chosen differently (an object ID), the model checks it and continues from the
// implementation's choice, so one early difference does not make every later step diverge. And the ID allocator
// under it (src/reference/core/ids.ts) against a brute-force lowest-free-ID reference.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { IOAS_MAP, type Command } from '../../src/reference/commands.ts';
import { IdAllocator } from '../../src/reference/core/ids.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';

const model = () =>
  new Model({ profile: 'iommufd', features: new Set(['auto-iova', 'copy']), platform: defaultPlatform() });
const autoMap = (length: bigint): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: 1,
  flags: IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE,
  user_va: { buf: 0, off: 0n },
  length,
  iova: 0n,
});

describe('FD-001 FD-004 the ID allocator hands out the lowest free ID from 1', () => {
  it('FD-004 alloc, free, take and clone agree with a brute-force lowest-free reference (small limit)', () => {
    // Allocation weighted up so the space (7 IDs) is often exhausted.
    const op = fc.oneof(
      { weight: 4, arbitrary: fc.constant({ k: 'alloc' as const }) },
      { weight: 2, arbitrary: fc.record({ k: fc.constant('free' as const), i: fc.nat(20) }) },
      { weight: 1, arbitrary: fc.record({ k: fc.constant('take' as const), id: fc.integer({ min: -1, max: 9 }) }) },
      { weight: 1, arbitrary: fc.constant({ k: 'clone' as const }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const limit = 7;
        let ids = new IdAllocator(limit);
        const live = new Set<number>();
        const lowest = () => {
          for (let i = 1; i <= limit; i++) if (!live.has(i)) return i;
          return 0;
        };
        for (const o of ops) {
          assert.equal(ids.peek(), lowest(), 'peek');
          if (o.k === 'alloc') {
            const want = lowest();
            assert.equal(ids.alloc(), want, 'alloc');
            if (want !== 0) live.add(want);
          } else if (o.k === 'free') {
            const all = [...live].sort((a, b) => a - b);
            if (all.length === 0) continue;
            const id = all[o.i % all.length]!;
            live.delete(id);
            ids.free(id);
          } else if (o.k === 'take') {
            const free = o.id >= 1 && o.id <= limit && !live.has(o.id);
            assert.equal(
              ids.take(o.id, (x) => live.has(x)),
              free,
              `take ${o.id}`,
            );
            if (free) live.add(o.id);
          } else ids = ids.clone();
        }
      }),
      { seed: 1, numRuns: 3000 },
    );
  });
});

describe('MAP-020 MAP-021 FD-004 the model adopts what the implementation chose, after checking it', () => {
  it('MAP-021 a different but valid automatic IOVA is adopted: the next step sees the mapping there', () => {
    const m = model();
    m.step({ op: 'IOMMU_IOAS_ALLOC' });
    const expected = m.step(autoMap(0x1000n)).outcome;
    assert.ok(expected.ok);
    const m2 = model();
    m2.step({ op: 'IOMMU_IOAS_ALLOC' });
    const chosen = 0x40_0000n;
    assert.notEqual(expected.out?.iova, chosen);
    const r = m2.step(autoMap(0x1000n), { ok: true, out: { iova: chosen } });
    assert.deepEqual(r.violations, []);
    assert.equal(r.outcome.ok && r.outcome.out?.iova, chosen);
    // The mapping is where the implementation put it: an exact unmap there removes 0x1000 bytes.
    const u = m2.step({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: chosen, length: 0x1000n }).outcome;
    assert.deepEqual(u, { ok: true, out: { length: 0x1000n } });
  });

  it('MAP-020 MAP-021 an automatic IOVA on page 0 or over an existing mapping is a violation, and not adopted', () => {
    for (const bad of [0n, 'existing'] as const) {
      const m = model();
      m.step({ op: 'IOMMU_IOAS_ALLOC' });
      const first = m.step(autoMap(0x1000n)).outcome;
      const iova = bad === 'existing' ? (first.ok ? (first.out?.iova as bigint) : 0n) : bad;
      const r = m.step(autoMap(0x1000n), { ok: true, out: { iova } });
      assert.ok(r.violations.length > 0, `an automatic IOVA 0x${iova.toString(16)} passed`);
      assert.ok(r.violations.some((v) => v.clause === 'MAP-020' || v.clause === 'MAP-021'));
    }
  });

  it('FD-004 an ID other than the lowest free one is a violation, yet adopted so later references resolve', () => {
    const m = model();
    const r = m.step({ op: 'IOMMU_IOAS_ALLOC' }, { ok: true, out: { id: 5 } });
    assert.deepEqual(
      r.violations.map((v) => v.clause),
      ['FD-004'],
    );
    assert.deepEqual(r.outcome, { ok: true, out: { id: 5 } });
    // ID 5 is the IOAS now, and 1 is still the lowest free ID.
    assert.ok(m.step({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 5, num_iovas: 4 }).outcome.ok);
    assert.deepEqual(m.step({ op: 'IOMMU_IOAS_ALLOC' }).outcome, { ok: true, out: { id: 1 } });
  });
});

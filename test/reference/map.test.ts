// Chapter MAP: deterministic examples in every profile (fixture variants), plus a differential property against a
// naive model of the same rules.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { BASE, Fixture, P, VARIANTS, result, unmapped } from './fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;

for (const v of VARIANTS) {
  describe(`MAP in ${v.name}`, () => {
    it('MAP-001 each MAP is its own mapping: an exact unmap of one of two adjacent mappings removes only it', () => {
      const f = new Fixture(v);
      assert.equal(result(f.map(BASE, 2n * P)), 'ok');
      assert.equal(result(f.map(BASE + 2n * P, 2n * P)), 'ok');
      assert.equal(unmapped(f.unmap(BASE, 2n * P)), 2n * P);
      assert.equal(f.reaches(BASE), false);
      assert.equal(f.reaches(BASE + 2n * P), true);
    });

    it('MAP-002 a MAP overlapping an existing mapping by one page is rejected with EEXIST', () => {
      const f = new Fixture(v);
      f.map(BASE, 4n * P);
      for (const [iova, size] of [
        [BASE + 3n * P, 2n * P],
        [BASE - P, 2n * P],
        [BASE + P, P],
        [BASE - P, 6n * P],
      ] as const)
        assert.equal(result(f.map(iova, size)), 'EEXIST', `[${iova}, +${size})`);
    });

    it('MAP-003 a MAP with neither read nor write is rejected with EINVAL', () => {
      assert.equal(result(new Fixture(v).map(BASE, P, { read: false, write: false })), 'EINVAL');
    });

    it('MAP-004 a MAP of length 0 is rejected with EINVAL', () => {
      assert.equal(result(new Fixture(v).map(BASE, 0n)), 'EINVAL');
    });

    it('MAP-026 an UNMAP starting inside a mapping never removes part of it', () => {
      const f = new Fixture(v);
      f.map(BASE, 4n * P);
      const o = f.unmap(BASE + P, P);
      const expected = v.profile === 'iommufd' ? 'ENOENT' : v.type1 === 1 ? 'ok' : 'EINVAL';
      assert.equal(result(o), expected);
      if (o.ok) assert.equal(unmapped(o), 0n);
      assert.equal(f.reaches(BASE + 3n * P), true);
    });

    it('MAP-027 an UNMAP ending inside a mapping never removes only part of it', () => {
      const f = new Fixture(v);
      f.map(BASE, 4n * P);
      const o = f.unmap(BASE, 2n * P);
      if (v.type1 === 1) {
        // v1 removes the whole mapping and counts it (MAP-027's v1 outcome).
        assert.equal(unmapped(o), 4n * P);
        assert.equal(f.reaches(BASE + 3n * P), false);
      } else {
        assert.equal(result(o), v.profile === 'iommufd' ? 'ENOENT' : 'EINVAL');
        assert.equal(f.reaches(BASE + 3n * P), true);
      }
    });

    it('MAP-028 MAP-029 one UNMAP removes several whole mappings across holes and reports their bytes', () => {
      const f = new Fixture(v);
      f.map(BASE, P);
      f.map(BASE + 4n * P, 2n * P);
      f.map(BASE + 10n * P, P);
      assert.equal(unmapped(f.unmap(BASE, 16n * P)), 4n * P);
      assert.equal(f.reaches(BASE + 4n * P), false);
    });

    it('MAP-030 an UNMAP of a range with nothing mapped changes nothing', () => {
      const f = new Fixture(v);
      f.map(BASE, P);
      const o = f.unmap(BASE + 8n * P, P);
      if (v.profile === 'iommufd') assert.equal(result(o), 'ENOENT');
      else assert.equal(unmapped(o), 0n);
      assert.equal(f.reaches(BASE), true);
    });

    it('MAP-031 unmap-all removes everything and succeeds with 0 on an empty space', () => {
      const f = new Fixture(v);
      assert.equal(unmapped(f.unmapAll()), 0n);
      f.map(BASE, P);
      f.map(BASE + 2n * P, P);
      assert.equal(unmapped(f.unmapAll()), 2n * P);
      assert.equal(f.reaches(BASE), false);
    });

    it('MAP-033 an UNMAP of length 0 is rejected with EINVAL', () => {
      assert.equal(result(new Fixture(v).unmap(BASE, 0n)), 'EINVAL');
    });
  });
}

describe('MAP-040 iommufd UNMAP is not atomic', () => {
  it('removes the whole areas below the bisected one and still fails with ENOENT', () => {
    const f = new Fixture(VARIANTS[1]!);
    f.map(BASE, P);
    f.map(BASE + 2n * P, 4n * P);
    assert.equal(result(f.unmap(BASE, 4n * P)), 'ENOENT');
    assert.equal(f.reaches(BASE), false);
    assert.equal(f.reaches(BASE + 2n * P), true);
  });
});

describe('MAP-036 iommufd UNMAP looks the IOAS up first', () => {
  it('an unknown ioas_id gives ENOENT even with length 0', () => {
    const f = new Fixture(VARIANTS[1]!);
    assert.equal(result(f.step({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 99, iova: 0n, length: 0n })), 'ENOENT');
  });
});

describe('MAP-042 type1 UNMAP of a range ending at U64_MAX', () => {
  it('succeeds with size 0 because iova + size wraps', () => {
    const f = new Fixture(VARIANTS[2]!);
    const o = f.unmap(U64_MAX - 4n * P + 1n, 4n * P);
    assert.equal(unmapped(o), 0n);
  });
});

describe('MAP-020 MAP-021 MAP-023 iommufd automatic IOVA', () => {
  it('is never 0, avoids areas and reserved ranges, and is aligned', () => {
    const f = new Fixture(VARIANTS[1]!);
    f.map(P, 4n * P);
    for (let i = 0; i < 20; i++) {
      const o = f.step({
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: 6,
        user_va: { buf: 0, off: BigInt(i) * 2n * P },
        length: 2n * P,
        iova: 0n,
      });
      assert.equal(result(o), 'ok');
      const iova = o.ok ? (o.out?.iova as bigint) : 0n;
      assert.ok(iova >= P && iova % (2n * P) === 0n, `iova 0x${iova.toString(16)}`);
      assert.ok(iova + 2n * P <= 0xfee0_0000n || iova > 0xfeef_ffffn, 'outside the MSI window');
    }
  });
});

describe('MAP-043 MAP-044 MAP-047 iommufd COPY', () => {
  it('copies a sub-range spanning two contiguous areas, refuses a hole, and refuses adding write access', () => {
    const f = new Fixture(VARIANTS[1]!);
    f.map(BASE, 2n * P);
    f.map(BASE + 2n * P, 2n * P, { write: false });
    const copy = (src: bigint, len: bigint, flags: number) =>
      f.step({
        op: 'IOMMU_IOAS_COPY',
        dst_ioas_id: { ref: 0 },
        src_ioas_id: { ref: 0 },
        flags,
        length: len,
        dst_iova: 0x4000_0000n,
        src_iova: src,
      });
    assert.equal(result(copy(BASE + P, 4n * P, 1 | 4)), 'ENOENT');
    assert.equal(result(copy(BASE + P, 2n * P, 1 | 2 | 4)), 'EPERM');
    assert.equal(result(copy(BASE + P, 2n * P, 1 | 4)), 'ok');
    assert.equal(unmapped(f.unmap(0x4000_0000n, P)), P);
  });
});

describe('MAP-001 MAP-002 MAP-026 MAP-027 MAP-028 differential: the model against a naive list of mappings', () => {
  it('agrees on every outcome over random MAP/UNMAP sequences of 100+ steps (rfc)', () => {
    const op = fc.record({
      map: fc.boolean(),
      page: fc.integer({ min: 0, max: 63 }),
      pages: fc.integer({ min: 1, max: 8 }),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 100, maxLength: 160 }), (ops) => {
        const f = new Fixture(VARIANTS[0]!);
        const naive: [bigint, bigint][] = [];
        for (const o of ops) {
          const iova = BASE + BigInt(o.page) * P;
          const last = iova + BigInt(o.pages) * P - 1n;
          if (o.map) {
            const clash = naive.some(([a, b]) => a <= last && iova <= b);
            assert.equal(result(f.map(iova, BigInt(o.pages) * P)), clash ? 'EEXIST' : 'ok');
            if (!clash) naive.push([iova, last]);
          } else {
            const bisect = naive.some(([a, b]) => (a < iova && iova <= b) || (a <= last && last < b));
            const inside = naive.filter(([a, b]) => iova <= a && b <= last);
            const r = f.unmap(iova, BigInt(o.pages) * P);
            if (bisect) assert.equal(result(r), 'EINVAL');
            else {
              assert.equal(
                unmapped(r),
                inside.reduce((s, [a, b]) => s + b - a + 1n, 0n),
              );
              for (const m of inside) naive.splice(naive.indexOf(m), 1);
            }
          }
        }
      }),
      { seed: 42, numRuns: 60 },
    );
  });
});

// Chapter MAP, clause by clause: deterministic examples in every profile each clause applies to (spec Profiles
// field), asserting outcome, errno, outputs and the state the model's view shows. map.test.ts holds the earlier
// MAP examples (MAP-001..004, MAP-020/021/023, MAP-026..031, MAP-033, MAP-036, MAP-040, MAP-042..044, MAP-047).
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { BASE, clauseCases, expectResult, Fixture, P, result, unmapped, type Variant } from './fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;
const MSI = 0xfee0_0000n;
const TOP = U64_MAX - P + 1n;

const fx = (v: Variant, features: string[]) => new Fixture(v, features);

/** iommufd IOMMU_IOAS_MAP on IOAS 1 with explicit fields. */
function ioasMap(fields: Partial<Extract<Command, { op: 'IOMMU_IOAS_MAP' }>> = {}): Command {
  return {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: 1,
    flags: 7,
    user_va: { buf: 0, off: BASE },
    length: P,
    iova: BASE,
    ...fields,
  };
}

describe('MAP-005 rfc and type1 mappings are aligned to the smallest page size', () =>
  clauseCases('MAP-005', {
    rfc: (v, ft) => misaligned(fx(v, ft)),
    'vfio-type1': (v, ft) => misaligned(fx(v, ft)),
  }));
function misaligned(f: Fixture): void {
  for (const [iova, size, off] of [
    [BASE + 0x800n, P, BASE],
    [BASE, P + 0x800n, BASE],
    [BASE, P, BASE + 0x800n],
  ] as const)
    expectResult(f.run(f.mapCmd(iova, size, { off })), 'EINVAL', `iova ${iova} size ${size} off ${off}`);
  assert.equal(f.areas, 0, 'nothing mapped');
}

describe('MAP-006 iommufd: length and fixed IOVA are multiples of the IOAS alignment', () =>
  clauseCases('MAP-006', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      assert.equal(f.model.view.alignment(1), P, 'the attached domain raises the alignment to 4 KiB');
      expectResult(f.run(ioasMap({ length: P + 0x800n })), 'EINVAL', 'length');
      expectResult(f.run(ioasMap({ iova: BASE + 0x800n, user_va: { buf: 0, off: 0x800n } })), 'EINVAL', 'iova');
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-007 iommufd: the user address keeps the IOAS alignment within its page', () =>
  clauseCases('MAP-007', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      const r = f.run(ioasMap({ user_va: { buf: 0, off: BASE + 0x800n } }));
      expectResult(r, 'EINVAL');
      assert.ok(r.clauses.includes('MAP-007'));
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-008 rfc and type1: a mapping lies inside one permitted range', () =>
  clauseCases('MAP-008', {
    rfc: (v, ft) => outsidePermitted(fx(v, ft)),
    'vfio-type1': (v, ft) => outsidePermitted(fx(v, ft)),
  }));
function outsidePermitted(f: Fixture): void {
  expectResult(f.run(f.mapCmd(MSI - P, 2n * P)), 'EINVAL', 'straddling the MSI window');
  expectResult(f.run(f.mapCmd(1n << 48n, P)), 'EINVAL', 'beyond the aperture');
  expectResult(f.run(f.mapCmd((1n << 48n) - P, 2n * P)), 'EINVAL', 'straddling the aperture end');
  assert.equal(f.areas, 0);
  expectResult(f.run(f.mapCmd(MSI - P, P)), 'ok', 'right below the window');
  assert.ok(f.model.view.usableRanges(f.as).some((r) => r.start <= MSI - P && MSI - 1n <= r.last));
}

describe('MAP-009 iommufd: a fixed mapping must not touch a reserved range', () =>
  clauseCases('MAP-009', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      const r = f.run(ioasMap({ iova: MSI - P, length: 2n * P }));
      expectResult(r, 'EINVAL');
      assert.ok(r.clauses.includes('MAP-009'));
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-011 The end of the IOVA range and of the user range must not wrap', () =>
  clauseCases('MAP-011', {
    rfc: (v, ft) => wraps(fx(v, ft), 'EOVERFLOW'),
    iommufd: (v, ft) => wraps(fx(v, ft), 'EOVERFLOW'),
    'vfio-type1': (v, ft) => wraps(fx(v, ft), 'EINVAL'),
  }));
function wraps(f: Fixture, errno: string): void {
  expectResult(f.run(f.mapCmd(TOP, 2n * P, { off: 0n })), errno, 'IOVA range wraps');
  const top: Command =
    f.v.profile === 'iommufd'
      ? ioasMap({ user_va: { bad: 'top' }, length: 2n * P })
      : f.v.profile === 'rfc'
        ? { op: 'IOASID_MAP_DMA', ioasid: 1, flags: 3, vaddr: { bad: 'top' }, iova: BASE, size: 2n * P }
        : { op: 'VFIO_IOMMU_MAP_DMA', flags: 3, vaddr: { bad: 'top' }, iova: BASE, size: 2n * P };
  expectResult(f.run(top), errno, 'user range wraps');
  assert.equal(f.areas, 0);
}

describe('MAP-012 iommufd: an iova or length of U64_MAX is an overflow', () =>
  clauseCases('MAP-012', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap({ length: U64_MAX })), 'EOVERFLOW', 'length');
      expectResult(f.run(ioasMap({ flags: 6, iova: U64_MAX })), 'EOVERFLOW', 'ignored iova');
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-014 iommufd MAP: unknown flags and reserved bytes are checked first', () =>
  clauseCases('MAP-014', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap({ flags: 7 | 8, ioas_id: 999, length: U64_MAX })), 'EOPNOTSUPP', 'unknown flag');
      expectResult(f.run(ioasMap({ __reserved: 1, ioas_id: 999, length: 0n })), 'EOPNOTSUPP', '__reserved');
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-015 iommufd MAP: overflow and permission are checked before the IOAS lookup', () =>
  clauseCases('MAP-015', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap({ ioas_id: 999, length: U64_MAX })), 'EOVERFLOW', 'overflow before lookup');
      expectResult(f.run(ioasMap({ ioas_id: 999, flags: 1 })), 'EINVAL', 'no permission before lookup');
      expectResult(f.run(ioasMap({ ioas_id: 3 })), 'ENOENT', 'a HWPT is not an IOAS');
    },
  }));

describe('MAP-016 iommufd MAP: length checks come after the lookup and before placement', () =>
  clauseCases('MAP-016', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap({ ioas_id: 999, length: 0n })), 'ENOENT', 'lookup before length');
      expectResult(f.run(ioasMap({ length: 0n })), 'EINVAL', 'length 0');
      expectResult(f.run(ioasMap({ length: U64_MAX - 1n })), 'EINVAL', 'above SIZE_MAX - PAGE_SIZE');
      expectResult(f.run(ioasMap({ user_va: { bad: 'top' }, length: 2n * P + 1n })), 'EOVERFLOW', 'va wrap first');
      expectResult(f.run(ioasMap({ length: P + 1n, iova: MSI })), 'EINVAL', 'alignment before placement');
    },
  }));

describe('MAP-017 iommufd MAP: the order of the checks of a fixed IOVA', () =>
  clauseCases('MAP-017', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap()), 'ok');
      expectResult(f.run(ioasMap({ iova: BASE + 1n })), 'EINVAL', 'alignment before overlap');
      expectResult(f.run(ioasMap({ iova: TOP, length: 2n * P })), 'EOVERFLOW', 'wrap');
      expectResult(f.run(ioasMap({ user_va: { buf: 0, off: 0x800n } })), 'EEXIST', 'overlap before va offset');
      expectResult(f.run(ioasMap({ iova: BASE + P, user_va: { bad: 'unmapped' } })), 'EFAULT', 'pin last');
      assert.equal(f.areas, 1);
    },
  }));

describe('MAP-018 vfio-type1 MAP: the order of the checks', () =>
  clauseCases('MAP-018', {
    'vfio-type1': (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(f.mapCmd(BASE, P)), 'ok');
      expectResult(f.run(f.mapCmd(BASE, P, { read: false, write: false })), 'EINVAL', 'no permission');
      expectResult(f.run(f.mapCmd(BASE, P + 1n)), 'EINVAL', 'misaligned before overlap');
      expectResult(f.run(f.mapCmd(BASE, P)), 'EEXIST', 'overlap');
      const r = f.run({ op: 'VFIO_IOMMU_MAP_DMA', flags: 3, vaddr: { bad: 'unmapped' }, iova: BASE + P, size: P });
      expectResult(r, 'EFAULT', 'pin last');
      const one = new Fixture(v, ft, {
        ...defaultPlatform(),
        limits: { ...defaultPlatform().limits, dmaEntryLimit: 1 },
      });
      expectResult(one.run(one.mapCmd(BASE, P)), 'ok');
      expectResult(one.run(one.mapCmd(MSI, P)), 'ENOSPC', 'entry limit before the permitted range');
      assert.equal(f.areas, 1);
    },
  }));

describe('MAP-019 rfc MAP: the order of the checks', () =>
  clauseCases('MAP-019', {
    rfc: (v, ft) => {
      const f = fx(v, ft);
      const map = (ioasid: number, iova = BASE, size = P): Command => ({
        op: 'IOASID_MAP_DMA',
        ioasid,
        flags: 3,
        vaddr: { buf: 0, off: iova },
        iova,
        size,
      });
      expectResult(f.run(map(9)), 'ENOENT', 'unknown IOASID');
      expectResult(f.run({ op: 'IOASID_ALLOC' }), 'ok');
      expectResult(f.run(map(2)), 'ENODEV', 'no device attached');
      expectResult(f.run(map(1)), 'ok');
      expectResult(f.run(map(1, BASE, P + 1n)), 'EINVAL', 'alignment before overlap');
      expectResult(f.run(map(1)), 'EEXIST', 'overlap');
      expectResult(f.run(map(1, MSI)), 'EINVAL', 'permitted range');
      assert.equal(f.areas, 1);
    },
  }));

describe('MAP-022 An automatic IOVA stays inside the allowed ranges', () =>
  clauseCases('MAP-022', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      const allowed = { start: 0x4000_0000n, last: 0x4fff_ffffn };
      expectResult(f.run({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [allowed] }), 'ok');
      for (let i = 0; i < 3; i++) {
        const r = f.run(ioasMap({ flags: 6, user_va: { buf: 0, off: 0n }, length: 4n * P, iova: 0n }));
        expectResult(r, 'ok');
        const iova = r.outcome.ok ? (r.outcome.out?.iova as bigint) : 0n;
        assert.ok(allowed.start <= iova && iova + 4n * P - 1n <= allowed.last, `0x${iova.toString(16)} inside`);
      }
      assert.equal(f.areas, 3);
    },
  }));

describe('MAP-024 No free IOVA gives ENOSPC', () =>
  clauseCases('MAP-024', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(
        f.run({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [{ start: 0x4000_0000n, last: 0x4000_1fffn }] }),
        'ok',
      );
      expectResult(f.run(ioasMap({ flags: 6, user_va: { buf: 0, off: 0n }, length: 4n * P })), 'ENOSPC');
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-025 The order of the failures of automatic placement', () =>
  clauseCases('MAP-025', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      expectResult(f.run(ioasMap({ flags: 6, length: 1n << 63n, user_va: { buf: 0, off: 0n } })), 'EOVERFLOW', 'huge');
      const r = f.run(ioasMap({ flags: 6, user_va: { buf: 0, off: 0x800n } }));
      expectResult(r, 'EINVAL', 'alignment of the user address below the IOAS alignment');
      assert.ok(r.clauses.includes('MAP-025'));
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-032 The ALL flag requires iova and size to be 0', () =>
  clauseCases('MAP-032', {
    rfc: (v, ft) => allWithRange(fx(v, ft)),
    'vfio-type1': (v, ft) => allWithRange(fx(v, ft)),
  }));
function allWithRange(f: Fixture): void {
  f.map(BASE, P);
  const cmd: Command =
    f.v.profile === 'rfc'
      ? { op: 'IOASID_UNMAP_DMA', ioasid: 1, flags: 2, iova: BASE, size: 0n }
      : { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 2, iova: 0n, size: P };
  expectResult(f.run(cmd), 'EINVAL');
  assert.equal(f.areas, 1);
}

describe('MAP-034 An UNMAP range must not wrap', () =>
  clauseCases('MAP-034', {
    rfc: (v, ft) => unmapWraps(fx(v, ft), 'EOVERFLOW'),
    iommufd: (v, ft) => unmapWraps(fx(v, ft), 'EOVERFLOW'),
    'vfio-type1': (v, ft) => unmapWraps(fx(v, ft), 'EINVAL'),
  }));
function unmapWraps(f: Fixture, errno: string): void {
  f.map(BASE, P);
  expectResult(f.run(f.unmapCmd(TOP, 2n * P)), errno);
  assert.equal(f.areas, 1);
}

describe('MAP-035 iommufd UNMAP: U64_MAX is only valid as unmap-all', () =>
  clauseCases('MAP-035', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, P);
      expectResult(f.run({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: U64_MAX, length: 1n }), 'EOVERFLOW');
      expectResult(f.run({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: P, length: U64_MAX }), 'EOVERFLOW');
      assert.equal(f.areas, 1);
    },
  }));

describe('MAP-037 rfc and type1 UNMAP ranges are page aligned', () =>
  clauseCases('MAP-037', {
    rfc: (v, ft) => unmapMisaligned(fx(v, ft)),
    'vfio-type1': (v, ft) => unmapMisaligned(fx(v, ft)),
  }));
function unmapMisaligned(f: Fixture): void {
  f.map(BASE, 2n * P);
  expectResult(f.run(f.unmapCmd(BASE + 0x800n, P)), 'EINVAL', 'iova');
  expectResult(f.run(f.unmapCmd(BASE, 2n * P - 1n)), 'EINVAL', 'size');
  assert.equal(f.areas, 1);
}

describe('MAP-038 iommufd UNMAP ranges need no alignment', () =>
  clauseCases('MAP-038', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 4n * P);
      const r = f.run(f.unmapCmd(BASE - 5n, 4n * P + 10n));
      expectResult(r, 'ok');
      assert.equal(unmapped(r.outcome), 4n * P);
      assert.equal(f.areas, 0);
    },
  }));

describe('MAP-039 A failed UNMAP removes nothing (rfc, type1)', () =>
  clauseCases('MAP-039', {
    rfc: (v, ft) => failedRemovesNothing(fx(v, ft)),
    'vfio-type1': (v, ft) => failedRemovesNothing(fx(v, ft)),
  }));
function failedRemovesNothing(f: Fixture): void {
  f.map(BASE, P);
  f.map(BASE + P, 2n * P);
  // Misaligned: refused before anything is removed, in every variant.
  expectResult(f.run(f.unmapCmd(BASE, 2n * P + 1n)), 'EINVAL');
  assert.equal(f.areas, 2);
  if (f.v.type1 !== 1) {
    // Bisecting the second mapping at its end: the whole first mapping in range stays too.
    expectResult(f.run(f.unmapCmd(BASE, 2n * P)), 'EINVAL');
    assert.equal(f.areas, 2);
    assert.ok(f.reaches(BASE));
  }
}

describe('MAP-041 The size of an UNMAP is written back only on success', () =>
  clauseCases('MAP-041', {
    rfc: (v, ft) => noWriteBack(fx(v, ft)),
    iommufd: (v, ft) => noWriteBack(fx(v, ft)),
    'vfio-type1': (v, ft) => noWriteBack(fx(v, ft)),
  }));
function noWriteBack(f: Fixture): void {
  f.map(BASE, 4n * P);
  const o = f.step(f.unmapCmd(BASE, 0n));
  assert.equal(result(o), 'EINVAL');
  assert.equal(o.out, undefined, 'no size written back');
  const ok = f.step(f.unmapCmd(BASE, 4n * P));
  assert.equal(unmapped(ok), 4n * P, 'written back on success');
}

// ------------------------------------------------------------------------------------------------ COPY

const copy = (fields: Partial<Extract<Command, { op: 'IOMMU_IOAS_COPY' }>> = {}): Command => ({
  op: 'IOMMU_IOAS_COPY',
  dst_ioas_id: 1,
  src_ioas_id: 1,
  flags: 7,
  length: 2n * P,
  dst_iova: BASE + 64n * P,
  src_iova: BASE + P,
  ...fields,
});

describe('MAP-045 COPY creates one destination mapping per source segment', () =>
  clauseCases('MAP-045', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 2n * P);
      f.map(BASE + 2n * P, 2n * P, { off: 0x100_0000n });
      const r = f.run(copy());
      expectResult(r, 'ok');
      assert.deepEqual(r.outcome.ok && r.outcome.out, { dst_iova: BASE + 64n * P });
      assert.equal(f.areas, 4, 'one destination mapping per source segment');
      const a = f.model.view.areaAtOrAfter(1, BASE + 64n * P)!;
      assert.equal(a.last, BASE + 65n * P - 1n, 'the first segment ends where its source area ends');
    },
  }));

describe('MAP-046 The destination of COPY follows the rules of MAP', () =>
  clauseCases('MAP-046', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 4n * P);
      expectResult(f.run(copy({ dst_iova: BASE + 2n * P })), 'EEXIST', 'overlapping destination');
      expectResult(f.run(copy({ dst_iova: MSI - P })), 'EINVAL', 'reserved destination');
      expectResult(f.run(copy({ dst_iova: BASE + 64n * P + 1n })), 'EINVAL', 'misaligned destination');
      expectResult(f.run(copy({ dst_ioas_id: 3 })), 'ENOENT', 'destination not an IOAS');
      assert.equal(f.areas, 1);
    },
  }));

describe('MAP-048 COPY within one IOAS is allowed', () =>
  clauseCases('MAP-048', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 4n * P);
      expectResult(f.run(copy()), 'ok');
      assert.equal(f.areas, 2);
    },
  }));

describe('MAP-049 A copy shares the source pages and outlives the source mapping', () =>
  clauseCases('MAP-049', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 4n * P);
      expectResult(f.run(copy()), 'ok');
      expectResult(f.run(f.unmapCmd(BASE, 4n * P)), 'ok');
      const dma = f.run({ op: 'DEVICE_DMA', dev: 0, iova: BASE + 64n * P, length: 8n, write: true });
      expectResult(dma, 'ok');
      assert.deepEqual(
        dma.outcome.ok && dma.outcome.out,
        { buf: 0, off: BASE + P },
        'the copy reaches the source memory',
      );
    },
  }));

describe('MAP-050 COPY: the order of the checks', () =>
  clauseCases('MAP-050', {
    iommufd: (v, ft) => {
      const f = fx(v, ft);
      f.map(BASE, 4n * P);
      expectResult(f.run(copy({ flags: 15, src_ioas_id: 99 })), 'EOPNOTSUPP', 'flags first');
      expectResult(f.run(copy({ length: U64_MAX, src_ioas_id: 99 })), 'EOVERFLOW', 'overflow before lookup');
      expectResult(f.run(copy({ flags: 1, src_ioas_id: 99 })), 'EINVAL', 'permission before lookup');
      expectResult(f.run(copy({ src_ioas_id: 99, length: 0n })), 'ENOENT', 'source lookup before length');
      expectResult(f.run(copy({ length: 0n })), 'EINVAL', 'length 0');
      const hole = f.run(copy({ src_iova: BASE + 3n * P, dst_ioas_id: 99 }));
      expectResult(hole, 'ENOENT', 'source coverage before the destination lookup');
      assert.ok(hole.clauses.includes('MAP-044'));
      const dst = f.run(copy({ dst_ioas_id: 99 }));
      expectResult(dst, 'ENOENT', 'destination lookup');
      assert.ok(!dst.clauses.includes('MAP-044'));
      assert.equal(f.areas, 1);
    },
  }));

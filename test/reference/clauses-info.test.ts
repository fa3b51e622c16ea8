// Chapter INFO, clause by clause: CHECK_EXTENSION and GET_INFO (rfc), IOMMU_IOAS_IOVA_RANGES (iommufd), and the
// VFIO container queries (vfio-type1). IOMMU_GET_HW_INFO (INFO-020..023) belongs to the hardware-information work.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { bare, BASE, clauseCases, expectResult, Fixture, P, steps } from './fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;
const MSI = 0xfee0_0000n;
const TOP48 = (1n << 48n) - 1n;

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const out = (m: Model, c: Command): Record<string, unknown> => {
  const r = m.step(c);
  expectResult(r, 'ok', c.op);
  return (r.outcome.ok ? r.outcome.out : undefined) ?? {};
};
type R = { start: bigint; last: bigint };

/** The default platform with one more reserved region on dev1 and dev2 (group 2). */
function group2Reserves(extra: R): Platform {
  const p = defaultPlatform();
  return {
    ...p,
    devices: p.devices.map((d) =>
      d.group === 2 ? { ...d, reserved: [...d.reserved, { ...extra, kind: 'direct' as const }] } : d,
    ),
  };
}

const EXT = {
  TYPE1_MAP: 1,
  PGTABLE_BIND: 2,
  PASID_TABLE_BIND: 3,
  NESTING_HW: 4,
  NESTING_SW: 5,
  PREREG: 6,
  IOPF: 7,
  PASID_GLOBAL: 8,
};

describe('INFO-001 CHECK_EXTENSION answers 0 or 1, never an error', () =>
  clauseCases('INFO-001', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      for (const e of [0, 1, 2, 8, 9, 1000, -1]) {
        const o = out(m, { op: 'IOASID_CHECK_EXTENSION', extension: e });
        assert.ok(o.value === 0 || o.value === 1, `extension ${e}`);
      }
      assert.deepEqual(out(m, { op: 'IOASID_CHECK_EXTENSION', extension: 1000 }), { value: 0 });
    },
  }));

describe("INFO-002 CHECK_EXTENSION reports the declared fd-level features, whatever the fd's state", () =>
  clauseCases('INFO-002', {
    rfc: (v, ft) => {
      const answers = (m: Model) =>
        Object.values(EXT).map((e) => out(m, { op: 'IOASID_CHECK_EXTENSION', extension: e }).value);
      const fdLevel = ['prereg', 'pasid-global', 'nesting-hw', 'nesting-sw', 'pasid-table-user', 'iopf'];
      const base = ft.filter((f) => !fdLevel.includes(f));
      const none = bare(v.profile, base);
      assert.deepEqual(answers(none), [1, 0, 0, 0, 0, 0, 0, 0]);
      const some = bare(v.profile, [...base, 'prereg', 'nesting-sw', 'iopf']);
      const before = answers(some);
      assert.deepEqual(before, [1, 0, 0, 0, 1, 1, 1, 0]);
      ok(some, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
      ]);
      assert.deepEqual(answers(some), before, 'the answers do not depend on the fd state');
    },
  }));

describe('INFO-003 GET_INFO needs an attached device', () =>
  clauseCases('INFO-003', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step({ op: 'IOASID_GET_INFO', ioasid: 1 }), 'ENOENT');
      ok(m, [{ op: 'IOASID_ALLOC' }]);
      expectResult(m.step({ op: 'IOASID_GET_INFO', ioasid: 1 }), 'ENODEV', 'no device');
      ok(m, [
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: 1 },
      ]);
      expectResult(m.step({ op: 'IOASID_GET_INFO', ioasid: 1 }), 'ENODEV', 'group 2 only partly attached');
    },
  }));

describe('INFO-004 GET_INFO reports the protocol fixed by the format', () =>
  clauseCases('INFO-004', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      assert.equal(out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).format, 'kernel');
    },
  }));

describe('INFO-006 GET_INFO describes the IOVA space by permitted ranges', () =>
  clauseCases('INFO-006', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      const permitted = out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).permitted as R[];
      assert.deepEqual(permitted, [
        { start: 0n, last: MSI - 1n },
        { start: 0xfef0_0000n, last: TOP48 },
      ]);
      for (let i = 1; i < permitted.length; i++)
        assert.ok(permitted[i - 1]!.last + 1n < permitted[i]!.start, 'ascending, disjoint, never adjacent');
    },
  }));

describe('INFO-007 The permitted ranges are exactly where MAP may go', () =>
  clauseCases('INFO-007', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      const permitted = out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).permitted as R[];
      for (const r of permitted) {
        expectResult(f.run(f.mapCmd(r.start, P, { off: 0n })), 'ok', `first page of [${r.start}, ${r.last}]`);
        expectResult(f.run(f.mapCmd(r.last - P + 1n, P, { off: 0n })), 'ok', 'last page');
        if (r.last < TOP48) expectResult(f.run(f.mapCmd(r.last - P + 1n + P, P, { off: 0n })), 'EINVAL', 'past it');
      }
      const g = new Fixture(v, ft);
      expectResult(g.run(g.mapCmd(MSI - P, 2n * P, { off: 0n })), 'EINVAL', 'across two ranges');
      assert.equal(g.areas, 0);
    },
  }));

describe('INFO-008 A range is permitted only if every attached device can use it', () =>
  clauseCases('INFO-008', {
    rfc: (v, ft) => {
      const extra = { start: 0x8000_0000n, last: 0x8000_ffffn };
      const m = bare(v.profile, ft, group2Reserves(extra));
      ok(m, [{ op: 'IOASID_ALLOC' }, ...[0, 1, 2].map((dev): Command => ({ op: 'VFIO_BIND_IOASID_FD', dev }))]);
      ok(
        m,
        [0, 1, 2].map((dev): Command => ({ op: 'VFIO_ATTACH_IOASID', dev, ioasid: 1 })),
      );
      const permitted = out(m, { op: 'IOASID_GET_INFO', ioasid: 1 }).permitted as R[];
      for (const bad of [MSI, extra.start, extra.last])
        assert.ok(!permitted.some((r) => r.start <= bad && bad <= r.last), `0x${bad.toString(16)} not permitted`);
      ok(
        m,
        [1, 2].map((dev): Command => ({ op: 'VFIO_DETACH_IOASID', dev, ioasid: 1 })),
      );
      const after = out(m, { op: 'IOASID_GET_INFO', ioasid: 1 }).permitted as R[];
      assert.ok(
        after.some((r) => r.start <= extra.start && extra.last <= r.last),
        "group 2's region is back",
      );
    },
  }));

describe('INFO-009 GET_INFO reports the page sizes MAP may use', () =>
  clauseCases('INFO-009', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      const sizes = out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).page_sizes as bigint;
      assert.equal(sizes, 0x4020_1000n);
      const low = sizes & -sizes;
      expectResult(f.run(f.mapCmd(BASE + low / 2n, low)), 'EINVAL', 'IOVA below the lowest page size');
      expectResult(f.run(f.mapCmd(BASE, low)), 'ok');
    },
  }));

describe('INFO-011 GET_INFO reports the PASID widths', () =>
  clauseCases('INFO-011', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      assert.equal(out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).pasid_bits, 20);
      const p = defaultPlatform();
      const noPasid = { ...p, devices: p.devices.map((d, i) => (i === 1 ? { ...d, pasid: false } : d)) };
      const m = bare(v.profile, ft, noPasid);
      ok(m, [{ op: 'IOASID_ALLOC' }, ...[1, 2].map((dev): Command => ({ op: 'VFIO_BIND_IOASID_FD', dev }))]);
      ok(
        m,
        [1, 2].map((dev): Command => ({ op: 'VFIO_ATTACH_IOASID', dev, ioasid: 1 })),
      );
      assert.equal(out(m, { op: 'IOASID_GET_INFO', ioasid: 1 }).pasid_bits, 0, 'an attached device without PASID');
    },
  }));

// ------------------------------------------------------------------------------------------------ iommufd

const ranges = (ioas_id: number, num_iovas: number): Command => ({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id, num_iovas });

describe('INFO-013 IOVA_RANGES reports the holes of the reserved set', () =>
  clauseCases('INFO-013', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      assert.deepEqual(out(f.model, ranges(1, 4)).allowed_iovas, [
        { start: 0n, last: MSI - 1n },
        { start: 0xfef0_0000n, last: TOP48 },
      ]);
    },
  }));

describe('INFO-014 The allowed list does not change the reported ranges', () =>
  clauseCases('INFO-014', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const before = out(f.model, ranges(1, 4));
      ok(f.model, [{ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [{ start: 0x1000_0000n, last: 0x1fff_ffffn }] }]);
      assert.deepEqual(out(f.model, ranges(1, 4)), before);
    },
  }));

describe('INFO-015 A too small num_iovas gives EMSGSIZE with the count written back', () =>
  clauseCases('INFO-015', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const r = f.run(ranges(1, 1));
      expectResult(r, 'EMSGSIZE');
      assert.deepEqual(r.outcome.out, { num_iovas: 2, out_iova_alignment: P });
    },
  }));

describe('INFO-016 A large enough num_iovas is set to the count', () =>
  clauseCases('INFO-016', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      assert.equal(out(f.model, ranges(1, 9)).num_iovas, 2);
    },
  }));

describe("INFO-017 out_iova_alignment is the IOAS's current alignment", () =>
  clauseCases('INFO-017', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      assert.equal(out(m, ranges(1, 1)).out_iova_alignment, 1n);
      ok(m, [
        { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
        { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: 1 },
      ]);
      assert.equal(out(m, ranges(1, 4)).out_iova_alignment, P);
      assert.equal(m.view.alignment(1), P);
    },
  }));

describe('INFO-018 IOVA_RANGES checks the reserved field before the IOAS', () =>
  clauseCases('INFO-018', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      const r = m.step({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 99, num_iovas: 0, __reserved: 1 });
      expectResult(r, 'EOPNOTSUPP', 'reserved before the IOAS');
      assert.equal(r.outcome.out, undefined);
      const e = m.step(ranges(99, 0));
      expectResult(e, 'ENOENT');
      assert.equal(e.outcome.out, undefined, 'nothing written back');
    },
  }));

describe('INFO-019 A paging HWPT narrows the ranges to its aperture; destroying it widens them', () =>
  clauseCases('INFO-019', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 }]);
      ok(m, [{ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }]);
      assert.deepEqual(out(m, ranges(1, 4)).allowed_iovas, [{ start: 0n, last: TOP48 }], 'narrowed to the aperture');
      ok(m, [{ op: 'IOMMU_DESTROY', id: 3 }]);
      assert.deepEqual(out(m, ranges(1, 4)).allowed_iovas, [{ start: 0n, last: U64_MAX }], 'widened again');
    },
  }));

// ------------------------------------------------------------------------------------------------ vfio-type1

describe('INFO-024 VFIO_GET_API_VERSION returns 0', () =>
  clauseCases('INFO-024', {
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      assert.deepEqual(out(m, { op: 'VFIO_GET_API_VERSION' }), { version: 0 });
      ok(m, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
        { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
      ]);
      assert.deepEqual(out(m, { op: 'VFIO_GET_API_VERSION' }), { version: 0 });
    },
  }));

describe('INFO-025 VFIO_CHECK_EXTENSION returns 0 or 1', () =>
  clauseCases('INFO-025', {
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      const ask = (e: number) => out(m, { op: 'VFIO_CHECK_EXTENSION', extension: e }).value;
      const answers = () => [1, 3, 9, 12345].map(ask);
      assert.deepEqual(answers(), [1, 1, 1, 0]);
      // DMA_CC_IOMMU (4) and UPDATE_VADDR (10) need the IOMMU model: 0 before VFIO_SET_IOMMU, even when offered.
      const early = bare(v.profile, [...ft, 'update-vaddr']);
      assert.deepEqual(
        [4, 10].map((e) => out(early, { op: 'VFIO_CHECK_EXTENSION', extension: e }).value),
        [0, 0],
      );
      ok(m, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
        { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
      ]);
      assert.deepEqual(answers(), [1, 1, 1, 0]);
    },
  }));

describe('INFO-029 VFIO_CHECK_EXTENSION after VFIO_SET_IOMMU asks the IOMMU model', () =>
  clauseCases('INFO-029', {
    'vfio-type1': (v, ft) => {
      /** The answers for DMA_CC_IOMMU and UPDATE_VADDR after SET_IOMMU, on `platform` with `features`. */
      const after = (features: readonly string[], platform: Platform = defaultPlatform()): number[] => {
        const m = bare(v.profile, features, platform);
        ok(m, [
          { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
          { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
        ]);
        return [4, 10].map((e) => out(m, { op: 'VFIO_CHECK_EXTENSION', extension: e }).value as number);
      };
      const noSnoop = defaultPlatform();
      noSnoop.iommu.enforceCoherency = false;
      const snoop = defaultPlatform();
      snoop.iommu.enforceCoherency = true;
      const base = ft.filter((f) => f !== 'update-vaddr');
      assert.deepEqual(after(base), [1, 0], 'default platform (VT-d with snoop control), vaddr updates not offered');
      assert.deepEqual(after(base, snoop), [1, 0], 'enforceCoherency true is the default');
      assert.deepEqual(after(base, noSnoop), [0, 0], 'no snoop control (QEMU intel-iommu): DMA_CC_IOMMU is 0');
      assert.deepEqual(after([...base, 'update-vaddr'], noSnoop), [0, 1], 'native type1 declares update-vaddr');
    },
  }));

describe('INFO-026 GET_INFO reports the page sizes', () =>
  clauseCases('INFO-026', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      const o = out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: 256 });
      assert.equal(o.iova_pgsizes, 0x4020_1000n);
      expectResult(f.run(f.mapCmd(BASE + 0x800n, P)), 'EINVAL', 'below the lowest page size');
    },
  }));

describe('INFO-027 The IOVA-range capability, and its absence', () =>
  clauseCases('INFO-027', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      const o = out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: 256 });
      assert.deepEqual(o.iova_ranges, [
        { start: 0n, end: MSI - 1n },
        { start: 0xfef0_0000n, end: TOP48 },
      ]);
      assert.ok((o.cap_offset as number) > 0);
    },
  }));

describe('INFO-028 An argsz too small for the capabilities is updated, not refused', () =>
  clauseCases('INFO-028', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      const full = out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: 256 });
      const small = out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: 24 });
      assert.equal(full.argsz, 256, 'a large enough argsz is kept');
      assert.equal(small.cap_offset, 0, 'no capability copied');
      assert.deepEqual(small.iova_ranges, []);
      const need = small.argsz as number;
      assert.ok(need > 24, 'argsz updated to the size needed');
      const exact = out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: need });
      assert.equal(exact.argsz, need);
      assert.ok((exact.cap_offset as number) > 0);
      // The capabilities are not copied when they do not fit: no DMA_AVAIL either.
      assert.equal(small.dma_avail, undefined, 'DMA_AVAIL omitted with the chain');
      assert.equal(out(f.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: need - 8 }).dma_avail, undefined);
      assert.equal(exact.dma_avail, 65535, 'DMA_AVAIL reported once the chain fits');
      // The size (Linux 6.12, two ranges): 24 + IOVA_RANGE (8-byte header + 8 + 2 x 16) + DMA_AVAIL 16, plus the
      // 32-byte MIGRATION capability only with type1's dirty page tracking: 88 (iommufd's emulation), 120 (native).
      const need2 = (features: readonly string[]): unknown => {
        const g = new Fixture(v, [...features]);
        return out(g.model, { op: 'VFIO_IOMMU_GET_INFO', argsz: 16 }).argsz;
      };
      const base = ft.filter((x) => x !== 'dirty-tracking');
      assert.equal(need, ft.includes('dirty-tracking') ? 120 : 88);
      assert.equal(need2(base), 88, 'without dirty tracking');
      assert.equal(need2([...base, 'dirty-tracking']), 120, 'native type1, with the MIGRATION capability');
    },
  }));

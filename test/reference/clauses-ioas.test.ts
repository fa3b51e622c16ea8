// Chapter IOAS, clause by clause: address-space objects, their formats, the allowed list, IOMMU_OPTION, the
// VFIO-compatibility IOAS and the type1 container, in every profile each clause applies to.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { bare, BASE, clauseCases, expectResult, Fixture, P, steps, unmapped } from './fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;
const MSI = 0xfee0_0000n;

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const out = (m: Model, c: Command): Record<string, unknown> => {
  const r = m.step(c);
  expectResult(r, 'ok', c.op);
  return (r.outcome.ok ? r.outcome.out : undefined) ?? {};
};
const allow = (ioas_id: number, ...iovas: { start: bigint; last: bigint }[]): Command => ({
  op: 'IOMMU_IOAS_ALLOW_IOVAS',
  ioas_id,
  iovas,
});
const option = (option_id: number, operation: number, object_id: number, val64 = 0n): Command => ({
  op: 'IOMMU_OPTION',
  option_id,
  operation,
  object_id,
  val64,
});
const HUGE = 1;
const RLIMIT = 0;
const SET = 0;
const GET = 1;
const mapAt = (ioas_id: number, iova: bigint, length = P, off = 0n, flags = 7): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id,
  flags,
  user_va: { buf: 0, off },
  length,
  iova,
});

describe('IOAS-001 IOASID_ALLOC creates a kernel-managed IOASID', () =>
  clauseCases('IOAS-001', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      assert.deepEqual(out(m, { op: 'IOASID_ALLOC' }), { id: 1 });
      assert.deepEqual(m.view.objects(), [{ id: 1, kind: 'ioasid', format: 'kernel', parent: 0 }]);
      assert.deepEqual(m.view.addressSpaces(), [1]);
      assert.equal(m.view.areaCount(1), 0);
      assert.deepEqual(m.view.device(0).attachedTo, []);
    },
  }));

describe('IOAS-008 A format never changes', () =>
  clauseCases('IOAS-008', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      const format = (): unknown => out(f.model, { op: 'IOASID_GET_INFO', ioasid: 1 }).format;
      assert.equal(format(), 'kernel');
      f.map(BASE, P);
      assert.equal(format(), 'kernel', 'after MAP');
      f.unmap(BASE, P);
      assert.equal(format(), 'kernel', 'after UNMAP');
      ok(f.model, [
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_BIND_IOASID_FD', dev: 2 },
      ]);
      ok(f.model, [
        { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 2, ioasid: 1 },
      ]);
      assert.equal(format(), 'kernel', 'after attach');
      ok(f.model, [
        { op: 'VFIO_DETACH_IOASID', dev: 1, ioasid: 1 },
        { op: 'VFIO_DETACH_IOASID', dev: 2, ioasid: 1 },
      ]);
      assert.equal(format(), 'kernel', 'after detach');
    },
  }));

describe('IOAS-009 A user-managed IOASID holds no kernel mapping', () =>
  clauseCases('IOAS-009', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-hw']);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pgtable', table_format: 'vtd-s1-4lvl' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 },
      ]);
      assert.ok(!m.view.addressSpaces().includes(2), 'a pgtable IOASID has no kernel address space');
      const map: Command = {
        op: 'IOASID_MAP_DMA',
        ioasid: 2,
        flags: 3,
        vaddr: { buf: 0, off: 0n },
        iova: BASE,
        size: P,
      };
      expectResult(m.step(map), 'EINVAL');
      const unmap: Command = { op: 'IOASID_UNMAP_DMA', ioasid: 2, flags: 2, iova: 0n, size: 0n };
      expectResult(m.step(unmap), 'EINVAL', 'no command looks up its translations');
      assert.equal(m.view.areaCount(2), 0);
    },
  }));

describe('IOAS-010 Mappings are kept apart from the IOMMU page tables', () =>
  clauseCases('IOAS-010', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      ok(f.model, [
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_BIND_IOASID_FD', dev: 2 },
      ]);
      ok(f.model, [
        { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 2, ioasid: 1 },
      ]);
      expectResult(f.run({ op: 'DEVICE_DMA', dev: 1, iova: BASE, length: 8n, write: false }), 'ok', 'later device');
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, mapAt(1, BASE, P, BASE), { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 }]);
      ok(m, [{ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: 1 }]);
      const r = m.step({ op: 'DEVICE_DMA', dev: 0, iova: BASE, length: 8n, write: true });
      expectResult(r, 'ok', 'the first domain is filled from the IOAS');
      assert.deepEqual(r.outcome.ok && r.outcome.out, { buf: 0, off: BASE });
    },
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      ok(f.model, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 2 }]);
      expectResult(f.run({ op: 'DEVICE_DMA', dev: 1, iova: BASE, length: 8n, write: false }), 'ok', 'a later group');
    },
  }));

describe('IOAS-012 IOAS_ALLOC rejects any flag', () =>
  clauseCases('IOAS-012', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step({ op: 'IOMMU_IOAS_ALLOC', flags: 1 }), 'EOPNOTSUPP');
      assert.deepEqual(m.view.objects(), []);
    },
  }));

describe('IOAS-013 The initial state of a new IOAS', () =>
  clauseCases('IOAS-013', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      assert.deepEqual(out(m, { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 1, num_iovas: 4 }), {
        num_iovas: 1,
        out_iova_alignment: 1n,
        allowed_iovas: [{ start: 0n, last: U64_MAX }],
      });
      assert.equal(unmapped(m.step({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: 0n, length: U64_MAX }).outcome), 0n);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'ok', 'no HWPT holds it');
    },
  }));

describe('IOAS-014 Order of the ALLOW_IOVAS checks', () =>
  clauseCases('IOAS-014', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const bad = { start: 5n, last: 5n };
      expectResult(f.run({ ...allow(99, bad), __reserved: 1 } as Command), 'EOPNOTSUPP', 'reserved first');
      expectResult(f.run(allow(99, bad)), 'ENOENT', 'the IOAS before the ranges');
      expectResult(f.run(allow(1, bad, { start: MSI, last: MSI + P - 1n })), 'EINVAL', 'invalid before reserved');
      expectResult(f.run(allow(1, { start: MSI, last: MSI + P - 1n }, bad)), 'EINVAL', 'all ranges before reserved');
    },
  }));

describe('IOAS-015 An allowed range needs start below last', () =>
  clauseCases('IOAS-015', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, allow(1, { start: 0x1000n, last: 0x1fffn })]);
      expectResult(m.step(allow(1, { start: 0x5000n, last: 0x5000n })), 'EINVAL', 'start == last');
      expectResult(m.step(allow(1, { start: 0x6000n, last: 0x5000n })), 'EINVAL', 'start > last');
      const auto = out(m, mapAt(1, 0n, 0x1000n, 0n, 6));
      assert.equal(auto.iova, 0x1000n, 'the old list is still in force');
    },
  }));

describe('IOAS-016 Overlapping input ranges give EINVAL', () =>
  clauseCases('IOAS-016', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step(allow(1, { start: 0x1000n, last: 0x2fffn }, { start: 0x2fffn, last: 0x3fffn })), 'EINVAL');
      expectResult(m.step(allow(1, { start: 0x1000n, last: 0x2fffn }, { start: 0x3000n, last: 0x3fffn })), 'ok');
    },
  }));

describe('IOAS-017 An allowed range may not intersect a reservation, and failure keeps the old list', () =>
  clauseCases('IOAS-017', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      ok(f.model, [allow(1, { start: 0x4000_0000n, last: 0x4000_ffffn })]);
      expectResult(f.run(allow(1, { start: MSI - P, last: MSI })), 'EADDRINUSE', 'the MSI window');
      expectResult(f.run(allow(1, { start: 1n << 48n, last: (1n << 48n) + P })), 'EADDRINUSE', 'outside the aperture');
      const auto = out(f.model, mapAt(1, 0n, P, 0n, 6));
      assert.equal(auto.iova, 0x4000_0000n, 'the old list is kept');
    },
  }));

describe('IOAS-018 A successful ALLOW_IOVAS replaces the whole list', () =>
  clauseCases('IOAS-018', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, allow(1, { start: 0x1000_0000n, last: 0x1000_ffffn })]);
      ok(m, [allow(1, { start: 0x2000_0000n, last: 0x2000_ffffn })]);
      assert.equal(out(m, mapAt(1, 0n, P, 0n, 6)).iova, 0x2000_0000n, 'the old range is no longer allowed');
      ok(m, [allow(1)]);
      assert.equal(out(m, mapAt(1, 0n, P, 0n, 6)).iova, P, 'an empty list frees the whole space again');
    },
  }));

describe('IOAS-019 Automatic IOVA allocation stays inside the allowed ranges', () =>
  clauseCases('IOAS-019', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, allow(1, { start: 0x1000_0000n, last: 0x1000_3fffn })]);
      for (const want of [0x1000_0000n, 0x1000_2000n]) assert.equal(out(m, mapAt(1, 0n, 2n * P, 0n, 6)).iova, want);
      expectResult(m.step(mapAt(1, 0n, 2n * P, 0n, 6)), 'ENOSPC', 'the allowed range is full');
      assert.equal(m.view.areaCount(1), 2);
    },
  }));

describe('IOAS-020 A later reservation may not intersect an allowed range', () =>
  clauseCases('IOAS-020', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 }]);
      ok(m, [allow(1, { start: MSI - P, last: MSI + P - 1n })]);
      expectResult(m.step({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: 1 }), 'EADDRINUSE', 'MSI window');
      ok(m, [allow(1, { start: 1n << 48n, last: (1n << 48n) + P })]);
      expectResult(m.step({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }), 'EADDRINUSE');
      assert.deepEqual(
        m.view.objects().map((o) => o.id),
        [1, 2],
        'nothing was created',
      );
      assert.deepEqual(m.view.usableRanges(1), [{ start: 0n, last: U64_MAX }], 'no reservation was added');
    },
  }));

describe('IOAS-021 The allowed list does not constrain fixed-IOVA maps or existing mappings', () =>
  clauseCases('IOAS-021', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOMMU_IOAS_ALLOC' },
        mapAt(1, 0x9000_0000n),
        allow(1, { start: 0x1000_0000n, last: 0x1fff_ffffn }),
      ]);
      expectResult(m.step(mapAt(1, 0xa000_0000n)), 'ok', 'a fixed map outside the allowed list');
      assert.equal(m.view.areaCount(1), 2, 'ALLOW_IOVAS kept the mapping outside the new list');
    },
  }));

describe('IOAS-022 IOMMU_OPTION rejects reserved bits and unknown options', () =>
  clauseCases('IOAS-022', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step({ ...option(HUGE, GET, 1), __reserved: 1 } as Command), 'EOPNOTSUPP', 'reserved');
      const r = m.step(option(7, GET, 99));
      expectResult(r, 'EOPNOTSUPP', 'unknown option, before the object lookup');
      assert.equal(r.outcome.out, undefined, 'nothing written back');
    },
  }));

describe('IOAS-023 HUGE_PAGES is per IOAS and reads 1 by default', () =>
  clauseCases('IOAS-023', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 }]);
      expectResult(m.step(option(HUGE, GET, 0)), 'ENOENT', 'object 0');
      expectResult(m.step(option(HUGE, 9, 2)), 'ENOENT', 'a DEVICE, checked before the operation');
      expectResult(m.step(option(HUGE, 9, 1)), 'EOPNOTSUPP', 'unknown operation');
      assert.deepEqual(out(m, option(HUGE, GET, 1)), { val64: 1n });
    },
  }));

describe('IOAS-024 Disabling huge pages raises the alignment to PAGE_SIZE', () =>
  clauseCases('IOAS-024', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      assert.equal(m.view.alignment(1), 1n);
      ok(m, [option(HUGE, SET, 1, 0n), option(HUGE, SET, 1, 0n)]);
      assert.equal(m.view.alignment(1), P);
      assert.equal(out(m, { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 1, num_iovas: 1 }).out_iova_alignment, P);
      expectResult(m.step(mapAt(1, BASE, 0x800n)), 'EINVAL', 'a length below PAGE_SIZE');
      assert.deepEqual(out(m, option(HUGE, GET, 1)), { val64: 0n });
    },
  }));

describe('IOAS-025 Huge pages cannot be disabled once a domain holds mappings', () =>
  clauseCases('IOAS-025', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      expectResult(f.run(option(HUGE, SET, 1, 0n)), 'EINVAL');
      assert.deepEqual(out(f.model, option(HUGE, GET, 1)), { val64: 1n });
    },
  }));

describe('IOAS-026 Huge pages cannot be disabled under a mapping that is not page aligned', () =>
  clauseCases('IOAS-026', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, mapAt(1, BASE, 0x800n)]);
      expectResult(m.step(option(HUGE, SET, 1, 0n)), 'EADDRINUSE');
      assert.deepEqual(out(m, option(HUGE, GET, 1)), { val64: 1n });
    },
  }));

describe('IOAS-027 HUGE_PAGES accepts only 0 and 1', () =>
  clauseCases('IOAS-027', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step(option(HUGE, SET, 1, 2n)), 'EINVAL');
      assert.deepEqual(out(m, option(HUGE, GET, 1)), { val64: 1n });
    },
  }));

describe('IOAS-028 RLIMIT_MODE is fd-wide and reads 0 on /dev/iommu', () =>
  clauseCases('IOAS-028', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step(option(RLIMIT, GET, 1)), 'EOPNOTSUPP', 'object_id not 0');
      expectResult(m.step(option(RLIMIT, 5, 0)), 'EOPNOTSUPP', 'unknown operation');
      assert.deepEqual(out(m, option(RLIMIT, GET, 0)), { val64: 0n });
    },
  }));

describe('IOAS-029 RLIMIT_MODE can only be set by a privileged caller on an empty fd', () =>
  clauseCases('IOAS-029', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step(option(RLIMIT, SET, 0, 2n)), 'EINVAL');
      assert.deepEqual(out(m, option(RLIMIT, SET, 0, 1n)), { val64: 1n });
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step(option(RLIMIT, SET, 0, 0n)), 'EBUSY', 'the fd holds an object');
      assert.deepEqual(out(m, option(RLIMIT, GET, 0)), { val64: 1n });
    },
  }));

describe('IOAS-030 GET, SET and CLEAR of the VFIO-compatibility IOAS', () =>
  clauseCases('IOAS-030', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 0, ioas_id: 0 }), 'ENODEV');
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 1, ioas_id: 0 }), 'ENOENT');
      ok(m, [{ op: 'IOMMU_VFIO_IOAS', operation: 1, ioas_id: 2 }]);
      assert.deepEqual(out(m, { op: 'IOMMU_VFIO_IOAS', operation: 0, ioas_id: 0 }), { ioas_id: 2 });
      ok(m, [
        { op: 'IOMMU_VFIO_IOAS', operation: 2, ioas_id: 0 },
        { op: 'IOMMU_VFIO_IOAS', operation: 2, ioas_id: 0 },
      ]);
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 0, ioas_id: 0 }), 'ENODEV');
    },
  }));

describe('IOAS-031 VFIO_IOAS rejects reserved bits and unknown operations', () =>
  clauseCases('IOAS-031', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 1, ioas_id: 1, __reserved: 1 }), 'EOPNOTSUPP');
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 3, ioas_id: 1 }), 'EOPNOTSUPP');
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 0, ioas_id: 0 }), 'ENODEV', 'nothing was set');
    },
  }));

describe('IOAS-032 The compatibility IOAS is not held by its role', () =>
  clauseCases('IOAS-032', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_VFIO_IOAS', operation: 1, ioas_id: 1 }]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'ok');
      expectResult(m.step({ op: 'IOMMU_VFIO_IOAS', operation: 0, ioas_id: 0 }), 'ENODEV');
    },
  }));

describe('IOAS-033 A container has one address space shared by all its groups', () =>
  clauseCases('IOAS-033', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      ok(f.model, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 2 }]);
      f.map(BASE, P);
      for (const dev of [0, 1, 2])
        expectResult(f.run({ op: 'DEVICE_DMA', dev, iova: BASE, length: 8n, write: true }), 'ok', `dev${dev}`);
      f.unmap(BASE, P);
      for (const dev of [0, 1, 2])
        assert.equal(f.step({ op: 'DEVICE_DMA', dev, iova: BASE, length: 8n, write: true }).ok, false, `dev${dev}`);
    },
  }));

describe("IOAS-034 The container's IOMMU model lasts as long as its groups", () =>
  clauseCases('IOAS-034', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      ok(f.model, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 2 }]);
      assert.equal(f.model.view.container().iommuType, v.type1);
      ok(f.model, [{ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 1 }]);
      assert.deepEqual(f.model.view.container(), { groups: [2], iommuType: v.type1 });
      assert.equal(f.areas, 1, 'removing a group other than the last keeps the mappings');
    },
  }));

// ------------------------------------------------------------------------------------------------ CREATE_NESTING

const nest = (parent: number, format: string, table_format?: string): Command =>
  table_format === undefined
    ? { op: 'IOASID_CREATE_NESTING', parent, format }
    : { op: 'IOASID_CREATE_NESTING', parent, format, table_format };

describe('IOAS-002 IOASID_CREATE_NESTING creates a child of the declared format', () =>
  clauseCases('IOAS-002', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw', 'nesting-hw']);
      ok(m, [{ op: 'IOASID_ALLOC' }]);
      assert.deepEqual(out(m, nest(1, 'kernel')), { id: 2 });
      assert.deepEqual(out(m, nest(1, 'pgtable', 'vtd-s1-4lvl')), { id: 3 });
      assert.deepEqual(
        m.view.objects().map((o) => [o.id, o.format, o.parent]),
        [
          [1, 'kernel', 0],
          [2, 'kernel', 1],
          [3, 'pgtable', 1],
        ],
      );
      assert.ok(m.view.addressSpaces().includes(2), 'a kernel child is managed by MAP/UNMAP');
      assert.ok(!m.view.addressSpaces().includes(3), 'a pgtable child holds no kernel mappings');
    },
  }));

describe('IOAS-003 CREATE_NESTING with an unknown parent gives ENOENT', () =>
  clauseCases('IOAS-003', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw']);
      expectResult(m.step(nest(1, 'kernel')), 'ENOENT');
      assert.deepEqual(m.view.objects(), []);
    },
  }));

describe('IOAS-004 A nesting parent must be kernel-managed and not itself a child', () =>
  clauseCases('IOAS-004', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw', 'nesting-hw']);
      ok(m, [{ op: 'IOASID_ALLOC' }, nest(1, 'kernel'), nest(1, 'pgtable', 'vtd-s1-4lvl')]);
      expectResult(m.step(nest(2, 'kernel')), 'EINVAL', 'a kernel child');
      expectResult(m.step(nest(3, 'kernel')), 'EINVAL', 'a pgtable IOASID');
      assert.equal(m.view.objects().length, 3);
    },
  }));

describe('IOAS-005 An unknown format gives EINVAL, a format not offered EOPNOTSUPP', () =>
  clauseCases('IOAS-005', {
    rfc: (v, ft) => {
      const m = bare(
        v.profile,
        ft.filter((f) => f !== 'nesting-sw' && f !== 'nesting-hw' && f !== 'pasid-table-user'),
      );
      ok(m, [{ op: 'IOASID_ALLOC' }]);
      expectResult(m.step(nest(1, 'shadow')), 'EINVAL', 'unknown kind');
      expectResult(m.step(nest(1, 'kernel')), 'EOPNOTSUPP', 'software nesting not offered');
      expectResult(m.step(nest(1, 'pgtable', 'vtd-s1-4lvl')), 'EOPNOTSUPP', 'hardware nesting not offered');
      const hw = bare(v.profile, [...ft, 'nesting-hw']);
      ok(hw, [{ op: 'IOASID_ALLOC' }]);
      expectResult(hw.step(nest(1, 'pgtable', 'arm-lpae')), 'EOPNOTSUPP', 'a table format not offered');
      assert.equal(m.view.objects().length + hw.view.objects().length, 2);
    },
  }));

describe('IOAS-006 Order of the CREATE_NESTING checks', () =>
  clauseCases('IOAS-006', {
    rfc: (v, ft) => {
      const m = bare(
        v.profile,
        ft.filter((f) => f !== 'nesting-sw'),
      );
      expectResult(m.step(nest(5, 'shadow')), 'ENOENT', 'unknown parent first');
      ok(m, [{ op: 'IOASID_ALLOC' }]);
      const sw = bare(v.profile, [...ft, 'nesting-sw']);
      ok(sw, [{ op: 'IOASID_ALLOC' }, nest(1, 'kernel')]);
      expectResult(sw.step(nest(2, 'shadow')), 'EINVAL', 'a child parent before the format');
      expectResult(m.step(nest(1, 'shadow')), 'EINVAL', 'unknown kind before "not offered"');
      expectResult(m.step(nest(1, 'kernel')), 'EOPNOTSUPP');
    },
  }));

describe('IOAS-007 CREATE_NESTING does not need a device on the parent', () =>
  clauseCases('IOAS-007', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw', 'nesting-hw']);
      ok(m, [{ op: 'IOASID_ALLOC' }, nest(1, 'kernel'), nest(1, 'pgtable', 'vtd-s1-5lvl')]);
      assert.deepEqual(m.view.device(0).attachedTo, []);
    },
  }));

describe('IOAS-011 Software nesting keeps both levels and a shadow that follows them', () =>
  clauseCases('IOAS-011', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw']);
      const map = (ioasid: number, iova: bigint, off: bigint): Command => ({
        op: 'IOASID_MAP_DMA',
        ioasid,
        flags: 3,
        // A kernel child maps parent IOVAs (NEST chapter); the parent maps user memory.
        vaddr: ioasid === 2 ? { iova: off } : { buf: 0, off },
        iova,
        size: P,
      });
      ok(m, [
        { op: 'IOASID_ALLOC' },
        nest(1, 'kernel'),
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 },
        map(1, 0x20_0000n, 0x40_0000n),
        map(2, BASE, 0x20_0000n),
      ]);
      const dma = (): ReturnType<Model['step']> =>
        m.step({ op: 'DEVICE_DMA', dev: 0, iova: BASE + 8n, length: 8n, write: false });
      const r = dma();
      expectResult(r, 'ok', 'child IOVA → parent IOVA → memory');
      assert.deepEqual(r.outcome.ok && r.outcome.out, { buf: 0, off: 0x40_0008n });
      ok(m, [{ op: 'IOASID_UNMAP_DMA', ioasid: 1, flags: 0, iova: 0x20_0000n, size: P }]);
      assert.equal(dma().outcome.ok, false, 'the parent level is gone: the shadow follows at once');
    },
  }));

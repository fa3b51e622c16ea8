// Chapter FD, clause by clause: object IDs, destroying objects and what holds them, and the generic rules the model
// enforces (ENOTTY for another profile's command, unknown flags). The raw-ABI clauses (sizes, trailing bytes, faults
// writing results: FD-023..029, FD-031..034) belong to the ABI work and are not here.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { bare, BASE, clauseCases, expectResult, Fixture, P, steps } from './fixtures.ts';

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const ids = (m: Model): number[] => m.view.objects().map((o) => o.id);
const idOf = (m: Model, c: Command, field = 'id'): number => {
  const r = m.step(c);
  expectResult(r, 'ok', c.op);
  return r.outcome.ok ? (r.outcome.out?.[field] as number) : 0;
};

const bind = (dev: number): Command => ({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev });
const attach = (dev: number, pt_id: number): Command => ({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id });
const hwpt = (dev_id: number, pt_id: number, flags = 0): Command => ({
  op: 'IOMMU_HWPT_ALLOC',
  flags,
  dev_id,
  pt_id,
  data_type: 0,
});

describe('FD-001 IDs start at 1; ID 0 is never allocated', () =>
  clauseCases('FD-001', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      assert.equal(idOf(m, { op: 'IOASID_ALLOC' }), 1);
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      assert.equal(idOf(m, bind(0)), 1, 'a DEVICE object too starts at 1');
      assert.equal(idOf(m, { op: 'IOMMU_IOAS_ALLOC' }), 2);
    },
  }));

describe('FD-003 One ID space per fd, shared by every kind of object', () =>
  clauseCases('FD-003', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw']);
      assert.equal(idOf(m, { op: 'IOASID_ALLOC' }), 1);
      assert.equal(
        idOf(m, { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'kernel' }),
        2,
        'a child shares the space',
      );
      assert.equal(idOf(m, { op: 'IOASID_ALLOC' }), 3);
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      assert.equal(idOf(m, { op: 'IOMMU_IOAS_ALLOC' }), 1);
      assert.equal(idOf(m, bind(0)), 2);
      assert.equal(idOf(m, attach(0, 1), 'pt_id'), 3, 'an automatic HWPT too');
      assert.equal(idOf(m, hwpt(2, 1)), 4);
      assert.deepEqual(
        m.view.objects().map((o) => o.kind),
        ['ioas', 'device', 'hwpt-paging', 'hwpt-paging'],
      );
    },
  }));

describe('FD-005 IDs are local to the fd that made them', () =>
  clauseCases('FD-005', {
    rfc: (v, ft) => {
      const a = bare(v.profile, ft);
      ok(a, [{ op: 'IOASID_ALLOC' }, { op: 'IOASID_ALLOC' }, { op: 'IOASID_ALLOC' }]);
      const b = bare(v.profile, ft);
      expectResult(b.step({ op: 'IOASID_FREE', ioasid: 3 }), 'ENOENT', "another fd's ID");
      assert.equal(idOf(b, { op: 'IOASID_ALLOC' }), 1);
    },
    iommufd: (v, ft) => {
      const a = bare(v.profile, ft);
      ok(a, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }]);
      const b = bare(v.profile, ft);
      expectResult(b.step({ op: 'IOMMU_DESTROY', id: 2 }), 'ENOENT', "another fd's ID");
      assert.equal(idOf(b, { op: 'IOMMU_IOAS_ALLOC' }), 1);
      assert.deepEqual(ids(a), [1, 2]);
    },
  }));

describe('FD-006 An object of the wrong kind is rejected without effect', () =>
  clauseCases('FD-006', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-hw']);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pgtable', table_format: 'vtd-s1-4lvl' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 },
      ]);
      const map: Command = {
        op: 'IOASID_MAP_DMA',
        ioasid: 2,
        flags: 3,
        vaddr: { buf: 0, off: 0n },
        iova: BASE,
        size: P,
      };
      expectResult(m.step(map), 'EINVAL', 'MAP on a pgtable IOASID');
      assert.equal(m.view.areaCount(2), 0);
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const map: Command = {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: 3,
        flags: 7,
        user_va: { buf: 0, off: 0n },
        length: P,
        iova: BASE,
      };
      expectResult(f.run(map), 'ENOENT', 'IOAS_MAP with a HWPT ID');
      expectResult(f.run({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 2, num_iovas: 4 }), 'ENOENT', 'a DEVICE ID');
      assert.equal(f.areas, 0);
    },
  }));

describe('FD-007 HWPT_ALLOC reports a bad pt_id with EINVAL', () =>
  clauseCases('FD-007', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run(hwpt(2, 42)), 'EINVAL', 'no such pt_id');
      expectResult(f.run(hwpt(2, 2)), 'EINVAL', 'a DEVICE as pt_id');
      expectResult(f.run(hwpt(1, 42)), 'ENOENT', 'dev_id first');
      assert.deepEqual(ids(f.model), [1, 2, 3]);
    },
  }));

describe('FD-008 Attach reports a missing pt_id with ENOENT and a wrong type with EINVAL', () =>
  clauseCases('FD-008', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), attach(0, 1)]);
      expectResult(m.step(attach(0, 77)), 'ENOENT');
      expectResult(m.step(attach(0, 2)), 'EINVAL', 'a DEVICE');
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 3 }], 'attachment unchanged');
    },
  }));

describe('FD-009 DESTROY removes an unreferenced object of any type', () =>
  clauseCases('FD-009', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }, bind(0), hwpt(3, 2)]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 4 }), 'ok', 'an unattached HWPT');
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'ok', 'an IOAS');
      assert.deepEqual(ids(m), [2, 3]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'ENOENT', 'the ID names nothing');
      assert.equal(idOf(m, { op: 'IOMMU_IOAS_ALLOC' }), 1, 'until it is handed out again');
    },
  }));

describe('FD-010 An IOAS used by a paging HWPT cannot be destroyed', () =>
  clauseCases('FD-010', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), hwpt(2, 1)]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'EBUSY', 'an allocated HWPT with no device');
      ok(m, [{ op: 'IOMMU_DESTROY', id: 3 }, attach(0, 1)]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'EBUSY', 'an automatic HWPT');
      assert.deepEqual(ids(m), [1, 2, 3]);
    },
  }));

describe('FD-012 A HWPT attached to a device cannot be destroyed', () =>
  clauseCases('FD-012', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), hwpt(2, 1), attach(0, 3)]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 3 }), 'EBUSY');
      ok(m, [
        { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 },
        { op: 'IOMMU_DESTROY', id: 3 },
      ]);
      assert.deepEqual(ids(m), [1, 2]);
    },
  }));

describe('FD-013 A nesting parent cannot be destroyed while a nested HWPT uses it', () =>
  clauseCases('FD-013', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), hwpt(2, 1, 1)]);
      const nested: Command = {
        op: 'IOMMU_HWPT_ALLOC',
        flags: 0,
        dev_id: 2,
        pt_id: 3,
        data_type: 1,
        data: { flags: 0, pgtbl_addr: 0x10_0000n, addr_width: 48 },
      };
      ok(m, [nested]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 3 }), 'EBUSY', 'a nested HWPT uses it');
      ok(m, [
        { op: 'IOMMU_DESTROY', id: 4 },
        { op: 'IOMMU_DESTROY', id: 3 },
      ]);
    },
  }));

describe('FD-015 A device object cannot be destroyed from user space', () =>
  clauseCases('FD-015', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 2 }), 'EBUSY', 'attached');
      expectResult(f.run({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }), 'ok');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 2 }), 'EBUSY', 'not attached');
      expectResult(f.run({ op: 'VFIO_DEVICE_CLOSE', dev: 0 }), 'ok');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 2 }), 'ENOENT', 'closing frees the ID');
    },
  }));

describe('FD-016 An IOAS that only holds mappings is destroyed and unmapped', () =>
  clauseCases('FD-016', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOMMU_IOAS_ALLOC' },
        { op: 'IOMMU_IOAS_MAP', ioas_id: 1, flags: 7, user_va: { buf: 0, off: 0n }, length: 4n * P, iova: BASE },
      ]);
      assert.equal(m.view.areaCount(1), 1);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'ok');
      assert.deepEqual(ids(m), []);
      assert.equal(m.view.areaCount(1), 0);
    },
  }));

describe('FD-017 IOASID_FREE refuses an IOASID that is in use', () =>
  clauseCases('FD-017', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw']);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
      ]);
      expectResult(m.step({ op: 'IOASID_FREE', ioasid: 1 }), 'EBUSY', 'a device is attached');
      ok(m, [
        { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 },
        { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'kernel' },
      ]);
      expectResult(m.step({ op: 'IOASID_FREE', ioasid: 1 }), 'EBUSY', 'a child is nested on it');
      assert.deepEqual(ids(m), [1, 2]);
      ok(m, [
        { op: 'IOASID_FREE', ioasid: 2 },
        { op: 'IOASID_FREE', ioasid: 1 },
      ]);
    },
  }));

describe('FD-018 IOASID_FREE unbinds and unmaps what the IOASID holds', () =>
  clauseCases('FD-018', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, 4n * P);
      ok(f.model, [{ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 }]);
      expectResult(f.run({ op: 'IOASID_FREE', ioasid: 1 }), 'ok');
      assert.deepEqual(ids(f.model), []);
      assert.equal(f.model.view.areaCount(1), 0, 'the mappings went with it');
      assert.equal(idOf(f.model, { op: 'IOASID_ALLOC' }), 1);
      assert.equal(f.model.view.areaCount(1), 0, 'a new IOASID with that ID starts empty');
    },
  }));

describe('FD-019 A type1 container loses its address space with its last group', () =>
  clauseCases('FD-019', {
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      expectResult(f.run({ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 1 }), 'ok');
      assert.deepEqual(f.model.view.container(), { groups: [], iommuType: 0 });
      assert.equal(f.areas, 0);
      expectResult(f.run(f.mapCmd(BASE, P)), 'EINVAL', 'no IOMMU model');
      expectResult(f.run({ op: 'VFIO_IOMMU_GET_INFO', argsz: 256 }), 'EINVAL');
      ok(f.model, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
        { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
      ]);
      assert.equal(f.areas, 0);
      assert.equal(f.reaches(BASE), false);
    },
  }));

describe('FD-022 An unknown command number gives ENOTTY', () =>
  clauseCases('FD-022', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      const r = m.step({ op: 'IOMMU_IOAS_ALLOC' });
      expectResult(r, 'ENOTTY');
      assert.deepEqual(r.clauses, ['FD-022']);
      assert.deepEqual(ids(m), []);
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step({ op: 'IOASID_ALLOC' }), 'ENOTTY');
      expectResult(m.step({ op: 'VFIO_SET_IOMMU', type: 3 }), 'ENOTTY');
      assert.deepEqual(ids(m), []);
    },
  }));

describe('FD-030 Unknown flags and non-zero reserved fields', () =>
  clauseCases('FD-030', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'IOASID_ALLOC', flags: 4 }), 'EOPNOTSUPP');
      const map: Command = {
        op: 'IOASID_MAP_DMA',
        ioasid: 1,
        flags: 3 | 8,
        vaddr: { buf: 0, off: 0n },
        iova: BASE,
        size: P,
      };
      expectResult(f.run(map), 'EOPNOTSUPP');
      expectResult(f.run({ op: 'IOASID_UNMAP_DMA', ioasid: 1, flags: 1, iova: BASE, size: P }), 'EOPNOTSUPP');
      assert.deepEqual(ids(f.model), [1]);
      assert.equal(f.areas, 0);
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'IOMMU_IOAS_ALLOC', flags: 1 }), 'EOPNOTSUPP');
      expectResult(f.run({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [], __reserved: 1 }), 'EOPNOTSUPP');
      expectResult(
        f.run({
          op: 'IOMMU_IOAS_COPY',
          dst_ioas_id: 1,
          src_ioas_id: 1,
          flags: 16 | 7,
          length: P,
          dst_iova: 0n,
          src_iova: 0n,
        }),
        'EOPNOTSUPP',
      );
      assert.deepEqual(ids(f.model), [1, 2, 3]);
    },
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      const map: Command = {
        op: 'VFIO_IOMMU_MAP_DMA',
        flags: 3 | 16,
        vaddr: { buf: 0, off: BASE },
        iova: BASE,
        size: P,
      };
      expectResult(f.run(map), 'EINVAL');
      expectResult(f.run({ op: 'VFIO_IOMMU_UNMAP_DMA', flags: 8, iova: BASE, size: P }), 'EINVAL');
      assert.equal(f.areas, 0);
    },
  }));

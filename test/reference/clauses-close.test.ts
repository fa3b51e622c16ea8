// Closing the fd (chapter FD, "Closing the fd", and DEV-018), clause by clause: the FD_CLOSE harness step in every
// profile each clause applies to. Platform: defaultPlatform() (dev0 in group 1, dev1 and dev2 in group 2), with a
// small RLIMIT_MEMLOCK where a test must see pins released.
import { strict as assert } from 'node:assert';
import type { Command, Outcome } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { bare, BASE, clauseCases, expectResult, P, result, steps } from './fixtures.ts';
import { S1 } from './iommufd-fixtures.ts';

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const objects = (m: Model): string[] => m.view.objects().map((o) => `${o.id}:${o.kind}`);
const close: Command = { op: 'FD_CLOSE' };
const dma = (dev: number, iova: bigint): Command => ({ op: 'DEVICE_DMA', dev, iova, length: 8n, write: true });
/** The user memory a DMA reaches, or its fault reason. */
const reach = (m: Model, dev: number, iova: bigint): string => {
  const o: Outcome = m.step(dma(dev, iova)).outcome;
  if (!o.ok) return `fault:${o.out?.reason as string}`;
  return `buf${o.out?.buf as number}+0x${(o.out?.off as bigint).toString(16)}`;
};
const memlock = (pages: number): Platform => {
  const p = defaultPlatform();
  return { ...p, limits: { ...p.limits, memlockPages: pages } };
};

// iommufd commands
const ioasAlloc: Command = { op: 'IOMMU_IOAS_ALLOC' };
const bind = (dev: number): Command => ({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev });
const attach = (dev: number, pt_id: number): Command => ({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id });
const ioasMap = (ioas: number, iova: bigint, length: bigint, off = 0n): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: ioas,
  flags: 7,
  user_va: { buf: 0, off },
  length,
  iova,
});
// rfc commands
const rfcMap = (ioasid: number, iova: bigint, size: bigint, off = 0n): Command => ({
  op: 'IOASID_MAP_DMA',
  ioasid,
  flags: 3,
  vaddr: { buf: 0, off },
  iova,
  size,
});
// vfio-type1 commands
const t1Map = (iova: bigint, size: bigint): Command => ({
  op: 'VFIO_IOMMU_MAP_DMA',
  flags: 3,
  vaddr: { buf: 0, off: 0n },
  iova,
  size,
});

describe('FD-020 Closing the fd destroys every object, dependants first', () =>
  clauseCases('FD-020', {
    iommufd: (v, ft) => {
      // IOAS 1, DEVICE 2, NEST_PARENT 3, FAULT 4, nested 5 reporting to 4, 16 pinned pages: every holder relation.
      const m = bare(v.profile, [...ft, 'nesting-hw', 'iopf'], memlock(16));
      ok(m, [
        ioasAlloc,
        bind(0),
        { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: 2, pt_id: 1, data_type: 0 },
        { op: 'IOMMU_FAULT_QUEUE_ALLOC' },
        { op: 'IOMMU_HWPT_ALLOC', flags: 4, dev_id: 2, pt_id: 3, data_type: 1, data: S1, fault_id: 4 },
        attach(0, 5),
        ioasMap(1, BASE, 16n * P),
        { op: 'DEVICE_PAGE_REQUEST', dev: 0, addr: 0x4000n, grpid: 1, perm: 1, last: true },
      ]);
      // What IOMMU_DESTROY refuses while the holders live.
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 1 }), 'EBUSY', 'the IOAS under its parent HWPT');
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 3 }), 'EBUSY', 'the parent under its nested HWPT');
      ok(m, [
        { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 },
        { op: 'VFIO_DEVICE_CLOSE', dev: 0 },
      ]);
      // A fault that arrived after the detach is still pending on the queue: the release must answer it.
      ok(m, [{ op: 'IOMMU_FAULT_CLOSE', fault_id: 4 }]);
      assert.deepEqual(objects(m), ['1:ioas', '3:hwpt-paging', '4:fault', '5:hwpt-nested']);
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('FD-020'), 'the context was released');
      assert.deepEqual(objects(m), [], 'every object destroyed, none refused with EBUSY');
      const st = m.snapshot().state;
      assert.equal(st.iopinned, 0n, 'every pin released');
      assert.equal(st.pri.raised, st.pri.answered, 'every page group answered');
      // The harness's fresh fd: IDs from 1 again, and the 16 pages can be pinned again within RLIMIT_MEMLOCK.
      ok(m, [ioasAlloc, bind(0), attach(0, 1), ioasMap(1, BASE, 16n * P)]);
      assert.deepEqual(objects(m), ['1:ioas', '2:device', '3:hwpt-paging']);
    },
    rfc: (v, ft) => {
      // IOASID 1 (kernel) with a software-nesting child 2, a registration of 8 pages and 8 pages pinned by MAP.
      const m = bare(v.profile, [...ft, 'nesting-sw', 'prereg'], memlock(16));
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        rfcMap(1, BASE, 8n * P),
        { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'kernel' },
        { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: 1, off: 0n }, size: 8n * P },
      ]);
      expectResult(m.step({ op: 'IOASID_FREE', ioasid: 1 }), 'EBUSY', 'a parent with a child');
      ok(m, [{ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }]);
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('FD-020'), 'the context was released');
      assert.deepEqual(objects(m), [], 'child and parent destroyed');
      assert.equal(m.snapshot().state.rfcx.locked, 0n, 'pins and registrations released');
      // The fresh fd: IDs from 1, the same registration accepted again (no EEXIST), 16 pages fit the limit again.
      ok(m, [{ op: 'IOASID_ALLOC' }, { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: 1, off: 0n }, size: 16n * P }]);
      assert.deepEqual(objects(m), ['1:ioasid']);
    },
  }));

describe('FD-021 A bound device keeps the fd and its address spaces alive', () =>
  clauseCases('FD-021', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [ioasAlloc, bind(0), attach(0, 1), ioasMap(1, BASE, 4n * P, 8n * P)]);
      const before = reach(m, 0, BASE + P);
      assert.equal(before, 'buf0+0x9000');
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('FD-021') && !r.clauses.includes('FD-020'), 'held, not released');
      assert.equal(reach(m, 0, BASE + P), before, 'DMA still translated after the close');
      assert.deepEqual(objects(m), ['1:ioas', '2:device', '3:hwpt-paging'], 'nothing destroyed');
      const gone = m.step({ op: 'VFIO_DEVICE_CLOSE', dev: 0 });
      expectResult(gone, 'ok', 'the last holder unbinds');
      assert.ok(gone.clauses.includes('FD-020'), 'released with the last holder');
      assert.equal(reach(m, 0, BASE + P), 'fault:blocked');
      assert.deepEqual(objects(m), []);
    },
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        rfcMap(1, BASE, 4n * P, 8n * P),
      ]);
      const before = reach(m, 0, BASE + P);
      assert.equal(before, 'buf0+0x9000');
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('FD-021') && !r.clauses.includes('FD-020'), 'held, not released');
      assert.equal(reach(m, 0, BASE + P), before, 'DMA still translated after the close');
      assert.deepEqual(objects(m), ['1:ioasid']);
      ok(m, [{ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }]);
      assert.equal(reach(m, 0, BASE + P), 'fault:blocked');
      assert.deepEqual(objects(m), [], 'released once unbound');
    },
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
        { op: 'VFIO_SET_IOMMU', type: v.type1! },
        t1Map(BASE, 4n * P),
      ]);
      const before = reach(m, 0, BASE + P);
      assert.equal(before, 'buf0+0x1000');
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('FD-021'), 'the group holds the container');
      assert.equal(reach(m, 0, BASE + P), before, 'DMA still translated after the close');
      assert.equal(m.view.areaCount(0), 1, 'the mapping stays');
      ok(m, [{ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 1 }]);
      assert.equal(reach(m, 0, BASE + P), 'fault:blocked');
      // A fresh container: no IOMMU model, no mapping.
      ok(m, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }]);
      assert.deepEqual(m.view.container(), { groups: [1], iommuType: 0 });
      assert.equal(m.view.areaCount(0), 0);
    },
  }));

describe('DEV-018 Closing the fd does not tear down bound devices', () =>
  clauseCases('DEV-018', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [ioasAlloc, bind(0), bind(1), attach(0, 1), attach(1, 1), ioasMap(1, BASE, 4n * P)]);
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('DEV-018'));
      assert.deepEqual(m.view.device(0), { bound: true, devId: 2, attachedTo: [{ pt: 4 }] }, 'dev0 stays attached');
      assert.deepEqual(m.view.device(1), { bound: true, devId: 3, attachedTo: [{ pt: 4 }] }, 'dev1 stays attached');
      // The device's own ioctls still work on the closed fd's context.
      ok(m, [{ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 1 }, attach(1, 1)]);
      ok(m, [{ op: 'VFIO_DEVICE_CLOSE', dev: 0 }]);
      assert.equal(reach(m, 1, BASE), 'buf0+0x0', 'one bound device still holds the context');
      assert.deepEqual(objects(m), ['1:ioas', '3:device', '4:hwpt-paging']);
      ok(m, [{ op: 'VFIO_DEVICE_CLOSE', dev: 1 }]);
      assert.deepEqual(objects(m), [], 'released after the last bound device closed');
    },
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_BIND_IOASID_FD', dev: 2 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
        rfcMap(1, BASE, 4n * P),
      ]);
      const r = m.step(close);
      expectResult(r, 'ok', 'FD_CLOSE');
      assert.ok(r.clauses.includes('DEV-018'));
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }], 'dev0 stays attached');
      ok(m, [
        { op: 'VFIO_UNBIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_UNBIND_IOASID_FD', dev: 2 },
      ]);
      assert.equal(reach(m, 0, BASE), 'buf0+0x0', 'dev0 still bound: nothing released');
      assert.deepEqual(objects(m), ['1:ioasid']);
      ok(m, [{ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }]);
      assert.deepEqual(objects(m), [], 'released after the last bound device unbound');
    },
  }));

describe('FD-036 A closed fd accepts no command', () =>
  clauseCases('FD-036', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [ioasAlloc, bind(0), attach(0, 1), ioasMap(1, BASE, 4n * P), { op: 'IOMMU_FAULT_QUEUE_ALLOC' }]);
      ok(m, [close]);
      const refused: Command[] = [
        ioasAlloc,
        ioasMap(1, BASE + 8n * P, P),
        { op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: BASE, length: 4n * P },
        { op: 'IOMMU_DESTROY', id: 1 },
        { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 },
        { op: 'IOMMU_IOAS_ALLOC', abi: { size: 2 } },
        bind(1),
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 }, // another profile's command: EBADF before ENOTTY
        close,
      ];
      for (const c of refused) {
        const r = m.step(c);
        expectResult(r, 'EBADF', c.op);
        assert.equal(r.decidedBy, 'FD-036', c.op);
      }
      assert.deepEqual(objects(m), ['1:ioas', '2:device', '3:hwpt-paging', '4:fault'], 'nothing changed');
      assert.equal(m.view.areaCount(1), 1);
      // Not through the fd: the device's ioctls and the fault fd.
      assert.equal(result(m.step({ op: 'IOMMU_FAULT_READ', fault_id: 4, count: 40 }).outcome), 'ok');
      ok(m, [
        { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 },
        { op: 'IOMMU_FAULT_CLOSE', fault_id: 4 },
      ]);
      ok(m, [{ op: 'VFIO_DEVICE_CLOSE', dev: 0 }]);
      // Released: a fresh fd takes commands again.
      ok(m, [ioasAlloc]);
    },
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOASID_ALLOC' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
      ]);
      ok(m, [close]);
      const refused: Command[] = [
        { op: 'IOASID_ALLOC' },
        rfcMap(1, BASE, P),
        { op: 'IOASID_FREE', ioasid: 1 },
        { op: 'IOASID_GET_INFO', ioasid: 1 },
        { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
        { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: 1 },
        { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 },
        { op: 'IOASID_FAULT_READ', count: 1 },
        { op: 'MIGRATE' },
        close,
      ];
      for (const c of refused) {
        const r = m.step(c);
        expectResult(r, 'EBADF', c.op);
        assert.equal(r.decidedBy, 'FD-036', c.op);
      }
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }], 'nothing changed');
      assert.equal(m.view.device(1).bound, false);
      ok(m, [{ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }, { op: 'IOASID_ALLOC' }]);
    },
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
        { op: 'VFIO_SET_IOMMU', type: v.type1! },
      ]);
      ok(m, [close]);
      const refused: Command[] = [
        { op: 'VFIO_GET_API_VERSION' },
        { op: 'VFIO_CHECK_EXTENSION', extension: 3 },
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 2 },
        t1Map(BASE, P),
        { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 2, iova: 0n, size: 0n },
        { op: 'VFIO_IOMMU_GET_INFO', argsz: 128 },
        close,
      ];
      for (const c of refused) {
        const r = m.step(c);
        expectResult(r, 'EBADF', c.op);
        assert.equal(r.decidedBy, 'FD-036', c.op);
      }
      assert.deepEqual(m.view.container(), { groups: [1], iommuType: v.type1! }, 'nothing changed');
      ok(m, [{ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 1 }, { op: 'VFIO_GET_API_VERSION' }]);
    },
  }));

describe('FD-011 An IOAS used by an emulated device cannot be destroyed', () => {
  clauseCases('FD-011', {
    iommufd: (v, ft) => {
      // mdev0 (device 3 of the platform) is emulated: it binds as an ACCESS and attaches to an IOAS only.
      const m = bare(v.profile, ft);
      ok(m, [ioasAlloc, ioasAlloc, ioasMap(1, BASE, 4n * P), bind(3)]);
      expectResult(m.step(attach(3, 3)), 'ENOENT', 'the ACCESS object is no IOAS');
      const a = m.step(attach(3, 1));
      expectResult(a, 'ok', 'ACCESS attached to IOAS 1');
      assert.deepEqual(a.outcome.ok && a.outcome.out, { pt_id: 1 });
      const r = m.step({ op: 'IOMMU_DESTROY', id: 1 });
      expectResult(r, 'EBUSY', 'the IOAS its ACCESS holds');
      assert.equal(r.decidedBy, 'FD-011');
      assert.deepEqual(objects(m), ['1:ioas', '2:ioas', '3:device'], 'nothing destroyed');
      assert.equal(m.view.areaCount(1), 1, 'the mappings stay');
      assert.equal(reach(m, 3, BASE), 'buf0+0x0', 'the emulated device still reaches the IOAS');
      // Replaced onto IOAS 2, the ACCESS lets IOAS 1 go and holds IOAS 2.
      ok(m, [attach(3, 2), { op: 'IOMMU_DESTROY', id: 1 }]);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 2 }), 'EBUSY', 'now IOAS 2 is held');
      // The ACCESS itself is held by its driver; detached, its IOAS can go.
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 3 }), 'EBUSY', 'the ACCESS object');
      ok(m, [
        { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 3 },
        { op: 'IOMMU_DESTROY', id: 2 },
      ]);
      assert.deepEqual(objects(m), ['3:device']);
    },
  });
  it('an ACCESS needs PAGE_SIZE-aligned areas and raises the IOAS alignment to PAGE_SIZE (iopt_add_access)', () => {
    const m = bare('iommufd', ['dma-probe']);
    ok(m, [ioasAlloc, ioasMap(1, BASE, P / 2n), bind(3)]);
    expectResult(m.step(attach(3, 1)), 'EADDRINUSE', 'a half-page area');
    ok(m, [{ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: BASE, length: P / 2n }, attach(3, 1)]);
    const r = m.step({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 1, num_iovas: 4 });
    expectResult(r, 'ok');
    assert.equal(r.outcome.out?.out_iova_alignment, P);
    expectResult(m.step(ioasMap(1, BASE, P / 2n)), 'EINVAL', 'a half-page MAP once the ACCESS is attached');
    ok(m, [ioasMap(1, BASE, P)]);
  });
});

// Chapter DEV, clause by clause: deterministic examples in every profile each clause applies to, asserting outcome,
// errno, outputs and the state the model's view shows. Platform: defaultPlatform() — dev0 (group 1), dev1 and dev2
// (group 2), mdev0 (mediated, on dev0); every physical device reserves the MSI window.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { bare, BASE, clauseCases, expectResult, Fixture, P, steps } from './fixtures.ts';

const MSI = 0xfee0_0000n;

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const ids = (m: Model, kind?: string): number[] =>
  m.view
    .objects()
    .filter((o) => kind === undefined || o.kind === kind)
    .map((o) => o.id);

const rfcBind = (dev: number): Command => ({ op: 'VFIO_BIND_IOASID_FD', dev });
const rfcAttach = (dev: number, ioasid: number): Command => ({ op: 'VFIO_ATTACH_IOASID', dev, ioasid });
const bind = (dev: number): Command => ({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev });
const attach = (dev: number, pt_id: number): Command => ({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id });

describe('DEV-001 Many devices per fd, one fd per device', () =>
  clauseCases('DEV-001', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [rfcBind(0), rfcBind(1), rfcBind(2)]);
      expectResult(m.step(rfcBind(0)), 'EINVAL', 'already bound');
      assert.deepEqual(
        [0, 1, 2].map((d) => m.view.device(d).bound),
        [true, true, true],
      );
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [bind(0), bind(1)]);
      expectResult(m.step(bind(1)), 'EINVAL', 'already bound');
      assert.deepEqual(ids(m, 'device'), [1, 2], 'no third DEVICE object');
    },
  }));

describe('DEV-002 Order of checks of VFIO_DEVICE_BIND_IOMMUFD', () =>
  clauseCases('DEV-002', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [bind(0)]);
      const r = m.step({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0, flags: 1 });
      expectResult(r, 'EINVAL');
      assert.ok(r.clauses.includes('DEV-002') && !r.clauses.includes('DEV-001'), 'flags are checked before "bound"');
      expectResult(m.step({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 1, flags: 1 }), 'EINVAL', 'flags');
      assert.equal(m.view.device(1).bound, false);
    },
  }));

describe('DEV-003 The bound device is a DEVICE object of the fd', () =>
  clauseCases('DEV-003', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      const r = m.step(bind(0));
      expectResult(r, 'ok');
      assert.deepEqual(r.outcome.ok && r.outcome.out, { id: 2 }, 'the next ID of the single space');
      assert.equal(m.view.device(0).devId, 2);
      expectResult(m.step({ op: 'IOMMU_DESTROY', id: 2 }), 'EBUSY', 'a bound device cannot be destroyed');
      expectResult(m.step({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }), 'ok', 'dev_id');
    },
  }));

describe('DEV-004 Attach requires a bound device', () =>
  clauseCases('DEV-004', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }]);
      expectResult(m.step(rfcAttach(0, 1)), 'EINVAL');
      assert.deepEqual(m.view.device(0).attachedTo, []);
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }]);
      expectResult(m.step(attach(0, 1)), 'EINVAL');
      assert.deepEqual(m.view.device(0).attachedTo, []);
      assert.deepEqual(ids(m), [1], 'no automatic HWPT was made');
    },
  }));

describe('DEV-005 Attachments are many-to-many', () =>
  clauseCases('DEV-005', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, { op: 'IOASID_ALLOC' }, rfcBind(0), rfcBind(1), rfcBind(2)]);
      ok(m, [rfcAttach(0, 1), rfcAttach(1, 2), rfcAttach(2, 2)]);
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }], "another device's attach leaves dev0 alone");
      assert.deepEqual(m.view.device(1).attachedTo, [{ pt: 2 }]);
      assert.deepEqual(m.view.device(2).attachedTo, [{ pt: 2 }], 'two devices on one IOASID');
    },
  }));

describe('DEV-006 A RID routes to one translation at a time', () =>
  clauseCases('DEV-006', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, { op: 'IOASID_ALLOC' }, rfcBind(0), rfcAttach(0, 1)]);
      expectResult(m.step(rfcAttach(0, 2)), 'EBUSY', 'RID already routed to another IOASID');
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }]);
    },
  }));

describe('DEV-007 The same attachment twice is refused', () =>
  clauseCases('DEV-007', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, rfcBind(0), rfcAttach(0, 1)]);
      expectResult(m.step(rfcAttach(0, 1)), 'EEXIST');
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }]);
    },
  }));

describe('DEV-010 A partially attached IOMMU group blocks the IOASID', () =>
  clauseCases('DEV-010', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, rfcBind(1), rfcBind(2), rfcAttach(1, 1)]);
      const map: Command = {
        op: 'IOASID_MAP_DMA',
        ioasid: 1,
        flags: 3,
        vaddr: { buf: 0, off: 0n },
        iova: BASE,
        size: P,
      };
      expectResult(m.step(map), 'ENODEV', 'dev2 of the same group is not attached');
      expectResult(m.step({ op: 'IOASID_GET_INFO', ioasid: 1 }), 'ENODEV');
      ok(m, [rfcAttach(2, 1), map]);
      assert.equal(m.view.areaCount(1), 1, 'accepted once the whole group is attached');
    },
  }));

describe('DEV-011 A parent cannot be detached under an attached child', () =>
  clauseCases('DEV-011', {
    rfc: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-sw']);
      ok(m, [{ op: 'IOASID_ALLOC' }, rfcBind(0), rfcAttach(0, 1)]);
      const child = m.step({ op: 'IOASID_CREATE_NESTING', parent: 1, format: 'kernel' });
      expectResult(child, 'ok');
      ok(m, [rfcAttach(0, 2)]);
      expectResult(m.step({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 }), 'EBUSY');
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 1 }, { pt: 2 }]);
      ok(m, [
        { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 2 },
        { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 },
      ]);
    },
  }));

describe('DEV-012 Detaching what is not attached', () =>
  clauseCases('DEV-012', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, rfcBind(0)]);
      expectResult(m.step({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 9 }), 'ENOENT');
      expectResult(m.step({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 }), 'EINVAL');
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [bind(0)]);
      expectResult(m.step({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }), 'ok', 'not attached');
      assert.deepEqual(m.view.device(0).attachedTo, []);
    },
  }));

describe("DEV-014 A device's reserved regions narrow the usable ranges while it is attached", () =>
  clauseCases('DEV-014', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      assert.ok(!f.model.view.usableRanges(1).some((r) => r.start <= MSI && MSI <= r.last), 'MSI excluded');
      const info = f.run({ op: 'IOASID_GET_INFO', ioasid: 1 });
      expectResult(info, 'ok');
      const permitted = (info.outcome.ok ? info.outcome.out?.permitted : []) as { start: bigint; last: bigint }[];
      assert.ok(!permitted.some((r) => r.start <= MSI && MSI <= r.last));
      assert.ok(
        permitted.every((r) => r.last < 1n << 48n),
        'the aperture bounds the ranges',
      );
      ok(f.model, [{ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 }]);
      assert.ok(
        f.model.view.usableRanges(1).some((r) => r.start <= MSI && MSI <= r.last),
        'MSI usable again',
      );
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const r = f.run({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 1, num_iovas: 8 });
      expectResult(r, 'ok');
      const ranges = (r.outcome.ok ? r.outcome.out?.allowed_iovas : []) as { start: bigint; last: bigint }[];
      assert.ok(!ranges.some((x) => x.start <= MSI && MSI <= x.last), 'MSI excluded');
      ok(f.model, [{ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }]);
      const again = f.run({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 1, num_iovas: 8 });
      assert.deepEqual(again.outcome.ok && again.outcome.out?.allowed_iovas, [{ start: 0n, last: (1n << 64n) - 1n }]);
    },
    'vfio-type1': (v, ft) => {
      const f = new Fixture(v, ft);
      const r = f.run({ op: 'VFIO_IOMMU_GET_INFO', argsz: 256 });
      expectResult(r, 'ok');
      const ranges = (r.outcome.ok ? r.outcome.out?.iova_ranges : []) as { start: bigint; end: bigint }[];
      assert.ok(ranges.length > 0);
      assert.ok(!ranges.some((x) => x.start <= MSI && MSI <= x.end), 'MSI excluded');
      assert.ok(
        ranges.every((x) => x.end < 1n << 48n),
        'the aperture bounds the ranges',
      );
    },
  }));

/** The default platform with group 2 (dev1, dev2) reserving nothing: its IOVA space can map the MSI window. */
function group2Unreserved(): Platform {
  const p = defaultPlatform();
  return { ...p, devices: p.devices.map((d) => (d.group === 2 ? { ...d, reserved: [] } : d)) };
}

describe('DEV-015 An attach whose reserved regions or aperture conflict with a mapping fails', () =>
  clauseCases('DEV-015', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft, group2Unreserved());
      ok(m, [{ op: 'IOASID_ALLOC' }, rfcBind(0), rfcBind(1), rfcBind(2), rfcAttach(1, 1), rfcAttach(2, 1)]);
      ok(m, [{ op: 'IOASID_MAP_DMA', ioasid: 1, flags: 3, vaddr: { buf: 0, off: 0n }, iova: MSI, size: P }]);
      expectResult(m.step(rfcAttach(0, 1)), 'EADDRINUSE', "dev0's MSI window covers the mapping");
      assert.deepEqual(m.view.device(0).attachedTo, []);
      assert.equal(m.view.areaCount(1), 1, 'the mapping stays');
    },
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [
        { op: 'IOMMU_IOAS_ALLOC' },
        bind(0),
        { op: 'IOMMU_IOAS_MAP', ioas_id: 1, flags: 7, user_va: { buf: 0, off: 0n }, length: P, iova: MSI },
      ]);
      expectResult(m.step(attach(0, 1)), 'EADDRINUSE', 'the MSI window covers a mapping');
      assert.deepEqual(m.view.device(0).attachedTo, []);
      assert.equal(m.view.areaCount(1), 1, 'the mapping stays');
      assert.deepEqual(ids(m), [1, 2], 'no automatic HWPT left behind');
    },
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft, group2Unreserved());
      ok(m, [
        { op: 'VFIO_GROUP_SET_CONTAINER', group: 2 },
        { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
        { op: 'VFIO_IOMMU_MAP_DMA', flags: 3, vaddr: { buf: 0, off: 0n }, iova: MSI, size: P },
      ]);
      expectResult(m.step({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }), 'EINVAL', "group 1's MSI window");
      assert.deepEqual(m.view.container().groups, [2]);
      assert.equal(m.view.areaCount(0), 1, 'the mapping stays');
    },
  }));

describe('DEV-016 An address space with an attached device cannot be destroyed', () =>
  clauseCases('DEV-016', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'IOASID_FREE', ioasid: 1 }), 'EBUSY');
      assert.deepEqual(ids(f.model), [1]);
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 3 }), 'EBUSY', 'the HWPT has a device');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 1 }), 'EBUSY', 'the IOAS has a HWPT_PAGING');
      assert.deepEqual(ids(f.model), [1, 2, 3]);
    },
  }));

describe('DEV-017 Unbinding or closing a device detaches it everywhere', () =>
  clauseCases('DEV-017', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }), 'ok');
      assert.deepEqual(f.model.view.device(0), { bound: false, devId: 0, attachedTo: [] });
      expectResult(f.run({ op: 'IOASID_FREE', ioasid: 1 }), 'ok', 'the IOASID can go now');
      expectResult(f.run({ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 }), 'EINVAL', 'not bound');
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'VFIO_DEVICE_CLOSE', dev: 0 }), 'ok');
      assert.deepEqual(f.model.view.device(0), { bound: false, devId: 0, attachedTo: [] });
      assert.deepEqual(ids(f.model), [1], 'the device ID and the automatic HWPT are gone');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 2 }), 'ENOENT');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 1 }), 'ok');
    },
  }));

describe('DEV-019 The first attach attaches, later ones replace', () =>
  clauseCases('DEV-019', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }, bind(0)]);
      expectResult(m.step({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: 1, flags: 1 }), 'EINVAL', 'flags');
      const a = m.step(attach(0, 1));
      expectResult(a, 'ok');
      assert.deepEqual(a.outcome.ok && a.outcome.out, { pt_id: 4 });
      const b = m.step(attach(0, 2));
      expectResult(b, 'ok', 'replace');
      assert.deepEqual(b.outcome.ok && b.outcome.out, { pt_id: 5 }, 'a new automatic HWPT, made before the old goes');
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 5 }]);
      assert.equal(m.view.objects().find((o) => o.id === 5)?.parent, 2, 'the new HWPT is on IOAS 2');
      assert.ok(!ids(m).includes(4), 'the old automatic HWPT is gone');
    },
  }));

describe('DEV-020 What pt_id may name', () =>
  clauseCases('DEV-020', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), bind(1)]);
      expectResult(m.step(attach(0, 0)), 'ENOENT', 'ID 0');
      expectResult(m.step(attach(0, 42)), 'ENOENT', 'no such object');
      expectResult(m.step(attach(0, 3)), 'EINVAL', 'a DEVICE');
      assert.deepEqual(m.view.device(0).attachedTo, []);
      ok(m, [{ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }]);
      const r = m.step(attach(0, 4));
      assert.deepEqual(r.outcome.ok && r.outcome.out, { pt_id: 4 }, 'a HWPT pt_id is written back unchanged');
    },
  }));

describe('DEV-021 An IOAS pt_id selects or creates an automatic HWPT', () =>
  clauseCases('DEV-021', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0), bind(1)]);
      ok(m, [{ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }]);
      const a = m.step(attach(0, 1));
      assert.deepEqual(a.outcome.ok && a.outcome.out, { pt_id: 5 }, 'a new automatic HWPT, not the allocated 4');
      const b = m.step(attach(1, 1));
      assert.deepEqual(b.outcome.ok && b.outcome.out, { pt_id: 5 }, 'the existing automatic HWPT is picked');
      assert.deepEqual(m.view.objects().find((o) => o.id === 5)?.format, 'auto');
    },
  }));

describe('DEV-022 All devices of an IOMMU group share one HWPT', () =>
  clauseCases('DEV-022', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }, bind(1), bind(2), attach(1, 1)]);
      expectResult(m.step(attach(2, 2)), 'EINVAL', 'group 2 is on another HWPT');
      assert.deepEqual(m.view.device(2).attachedTo, []);
      const r = m.step(attach(2, 1));
      expectResult(r, 'ok', 'joining the same HWPT');
      assert.deepEqual(m.view.device(2).attachedTo, m.view.device(1).attachedTo);
    },
  }));

describe('DEV-023 Replacing with the current page table is a no-op', () =>
  clauseCases('DEV-023', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      const before = f.model.view.usableRanges(1);
      for (const pt of [3, 1]) {
        const r = f.run(attach(0, pt));
        expectResult(r, 'ok');
        assert.deepEqual(r.outcome.ok && r.outcome.out, { pt_id: 3 });
      }
      assert.deepEqual(f.model.view.usableRanges(1), before, 'no reservation changed');
      assert.deepEqual(ids(f.model), [1, 2, 3]);
    },
  }));

describe('DEV-024 A replace moves the whole group and frees an unused automatic HWPT', () =>
  clauseCases('DEV-024', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }, bind(0), attach(0, 1)]);
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 4 }]);
      ok(m, [attach(0, 2)]);
      assert.deepEqual(m.view.device(0).attachedTo, [{ pt: 5 }]);
      assert.ok(!ids(m).includes(4), 'the old automatic HWPT is freed');
      assert.ok(
        m.view.usableRanges(1).some((r) => r.start <= MSI && MSI <= r.last),
        'regions left IOAS 1',
      );
      assert.ok(!m.view.usableRanges(2).some((r) => r.start <= MSI && MSI <= r.last), 'regions moved to IOAS 2');
      // A HWPT made by IOMMU_HWPT_ALLOC survives a replace.
      const alloc = m.step({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 3, pt_id: 1, data_type: 0 });
      expectResult(alloc, 'ok');
      const manual = alloc.outcome.ok ? (alloc.outcome.out?.id as number) : 0;
      assert.equal(m.view.objects().find((o) => o.id === manual)?.format, 'manual');
      ok(m, [attach(0, manual)]);
      assert.ok(!ids(m).includes(5), 'the automatic HWPT on IOAS 2 went with its last device');
      ok(m, [attach(0, 2)]);
      assert.ok(ids(m).includes(manual), 'the allocated HWPT survives the replace');
    },
  }));

describe('DEV-026 Detaching the last user frees an automatic HWPT', () =>
  clauseCases('DEV-026', {
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      expectResult(f.run({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }), 'ok');
      assert.deepEqual(ids(f.model), [1, 2], 'the automatic HWPT is destroyed');
      expectResult(f.run({ op: 'IOMMU_DESTROY', id: 3 }), 'ENOENT');
      assert.equal(f.model.view.alignment(1), 1n, 'the alignment no longer reflects its domain');
      ok(f.model, [{ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 1, data_type: 0 }, attach(0, 3)]);
      ok(f.model, [{ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }]);
      assert.deepEqual(ids(f.model), [1, 2, 3], 'an allocated HWPT stays');
    },
  }));

describe('DEV-027 Adding a group to a container', () =>
  clauseCases('DEV-027', {
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }]);
      expectResult(m.step({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }), 'EINVAL', 'already in the container');
      expectResult(m.step({ op: 'VFIO_GROUP_SET_CONTAINER', group: 77 }), 'ENOENT', 'no such group: cannot be opened');
      expectResult(m.step({ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 77 }), 'ENOENT', 'no such group (unset)');
      expectResult(m.step({ op: 'VFIO_GROUP_UNSET_CONTAINER', group: 2 }), 'EINVAL', 'a group not in the container');
      assert.deepEqual(m.view.container().groups, [1]);
    },
  }));

describe('DEV-028 VFIO_SET_IOMMU needs a group and runs once', () =>
  clauseCases('DEV-028', {
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      expectResult(m.step({ op: 'VFIO_SET_IOMMU', type: 3 }), 'EINVAL', 'no group');
      ok(m, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }]);
      expectResult(m.step({ op: 'VFIO_SET_IOMMU', type: 2 }), 'ENODEV', 'no driver for type 2');
      ok(m, [{ op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 }]);
      expectResult(m.step({ op: 'VFIO_SET_IOMMU', type: 3 }), 'EINVAL', 'already set');
      assert.equal(m.view.container().iommuType, v.type1 ?? 3);
    },
  }));

describe('DEV-029 Container ioctls before VFIO_SET_IOMMU are refused', () =>
  clauseCases('DEV-029', {
    'vfio-type1': (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }]);
      expectResult(m.step({ op: 'VFIO_IOMMU_GET_INFO', argsz: 256 }), 'EINVAL');
      expectResult(
        m.step({ op: 'VFIO_IOMMU_MAP_DMA', flags: 3, vaddr: { buf: 0, off: 0n }, iova: BASE, size: P }),
        'EINVAL',
      );
      expectResult(m.step({ op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova: BASE, size: P }), 'EINVAL');
      expectResult(m.step({ op: 'VFIO_GET_API_VERSION' }), 'ok');
      assert.equal(m.view.areaCount(0), 0);
    },
  }));

describe('DEV-030 Order of checks of VFIO_ATTACH_IOASID', () =>
  clauseCases('DEV-030', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOASID_ALLOC' }, { op: 'IOASID_ALLOC' }]);
      expectResult(m.step(rfcAttach(0, 9)), 'EINVAL', 'not bound before unknown IOASID');
      ok(m, [rfcBind(0)]);
      expectResult(m.step(rfcAttach(0, 9)), 'ENOENT');
      ok(m, [rfcAttach(0, 1)]);
      expectResult(m.step(rfcAttach(0, 1)), 'EEXIST', 'the same attachment before "routed elsewhere"');
      expectResult(m.step(rfcAttach(0, 2)), 'EBUSY');
    },
  }));

describe("DEV-013 After detach the device's DMA is blocked", () =>
  clauseCases('DEV-013', {
    rfc: (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      assert.ok(f.reaches(BASE));
      ok(f.model, [{ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 1 }]);
      const r = f.run({ op: 'DEVICE_DMA', dev: 0, iova: BASE, length: 8n, write: false });
      expectResult(r, 'fault');
      assert.deepEqual(r.outcome.out, { reason: 'blocked' }, 'neither translated nor passed through');
    },
    iommufd: (v, ft) => {
      const f = new Fixture(v, ft);
      f.map(BASE, P);
      assert.ok(f.reaches(BASE));
      ok(f.model, [{ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }]);
      const r = f.run({ op: 'DEVICE_DMA', dev: 0, iova: BASE, length: 8n, write: false });
      expectResult(r, 'fault');
      assert.deepEqual(r.outcome.out, { reason: 'blocked' });
    },
  }));

// Chapters NEST, FMT and BIND in the iommufd profile: IOMMU_HWPT_ALLOC of paging (NEST_PARENT, DIRTY_TRACKING) and
// nested HWPTs, the object type as the format, and dirty tracking.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { Fd, S1 } from './iommufd-fixtures.ts';

/** IOAS 1, device 0 bound as 2. */
function base(): { f: Fd; ioas: number; dev: number } {
  const f = new Fd();
  const ioas = f.ioas();
  const dev = f.bind(0);
  return { f, ioas, dev };
}

describe('NEST in iommufd', () => {
  describe('NEST-013 a NEST_PARENT paging HWPT is the parent of a nesting', () => {
    it('created from the IOAS (its aperture reserved), nested HWPTs can hang off it; with FAULT_ID_VALID EOPNOTSUPP', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const h = f.state().get(parent, 'hwpt-paging')!;
      assert.deepEqual([h.nestParent, h.ioas, h.devices], [true, ioas, 0]);
      assert.equal(f.state().get(ioas, 'ioas')!.space.domains, 1);
      assert.equal(f.nested(dev, parent), 4);
      assert.equal(
        f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 5, dev_id: dev, pt_id: ioas, data_type: 0, fault_id: 0 }),
        'EOPNOTSUPP',
      );
    });
  });

  describe('NEST-014 FMT-013 a nested HWPT needs a NEST_PARENT, non-automatic paging parent', () => {
    it('EINVAL on a plain paging HWPT and on an automatic one, creating nothing', () => {
      const { f, ioas, dev } = base();
      const plain = f.paging(dev, ioas);
      assert.equal(f.err(f.nestedCmd(dev, plain)), 'EINVAL');
      const auto = f.attach(0, ioas);
      assert.equal(f.err(f.nestedCmd(dev, auto)), 'EINVAL');
      assert.equal(f.objects(), `1:ioas,2:device,3:hwpt-paging,4:hwpt-paging`);
    });
  });

  describe('FMT-014 NEST-014 a pt_id that cannot be a parent is EINVAL, not ENOENT', () => {
    it('unused ID, a nested HWPT, a device, a FAULT', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const nested = f.nested(dev, parent);
      const fault = f.faultQueue();
      for (const pt of [99, nested, dev, fault]) assert.equal(f.err(f.nestedCmd(dev, pt)), 'EINVAL', `pt_id ${pt}`);
      assert.equal(f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: 99, data_type: 0 }), 'EINVAL');
    });
  });

  describe('NEST-015 FMT-016 flag and data checks of a nested allocation come before the parent check', () => {
    it('NEST_PARENT or DIRTY on a paging pt_id, or no data: EOPNOTSUPP even when the parent lacks NEST_PARENT', () => {
      const { f, ioas, dev } = base();
      const plain = f.paging(dev, ioas);
      const nested: Command = { ...f.nestedCmd(dev, plain), flags: 1 };
      assert.equal(f.err(nested), 'EOPNOTSUPP');
      assert.equal(f.err({ ...f.nestedCmd(dev, plain), flags: 2 }), 'EOPNOTSUPP');
      assert.equal(f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: plain, data_type: 0 }), 'EOPNOTSUPP');
    });
  });

  describe('NEST-016 a nested HWPT lives in its parent IOAS', () => {
    it("attaching to it reserves the device's regions in the parent's IOAS; a conflict is EADDRINUSE", () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const nested = f.nested(dev, parent);
      f.attach(0, nested);
      const r = f.ok({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: ioas, num_iovas: 8 });
      const ranges = r.allowed_iovas as { start: bigint; last: bigint }[];
      assert.ok(!ranges.some((x) => x.start <= 0xfee0_0000n && 0xfee0_0000n <= x.last), 'MSI window still reported');
      // Device 1 onto a second nesting whose IOAS maps the MSI window: EADDRINUSE, nothing attached.
      const ioas2 = f.ioas();
      f.ok({
        op: 'IOMMU_IOAS_MAP',
        ioas_id: ioas2,
        flags: 7,
        user_va: { buf: 1, off: 0n },
        length: 0x20_0000n,
        iova: 0xfee0_0000n,
      });
      const dev1 = f.bind(1);
      const parent2 = f.paging(dev1, ioas2, 1);
      const nested2 = f.nested(dev1, parent2);
      assert.equal(f.err({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 1, pt_id: nested2 }), 'EADDRINUSE');
      assert.equal(f.state().devices[1]!.hwpt, 0);
    });
  });

  describe('NEST-006 FD-013 a parent cannot be destroyed while a nested HWPT uses it', () => {
    it('EBUSY, then ok once the nested HWPT is gone', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const nested = f.nested(dev, parent);
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: parent }), 'EBUSY');
      f.ok({ op: 'IOMMU_DESTROY', id: nested });
      f.ok({ op: 'IOMMU_DESTROY', id: parent });
      assert.equal(f.objects(), '1:ioas,2:device');
    });
  });
});

describe('BIND in iommufd', () => {
  describe('BIND-013 a nested allocation binds the user stage-1 table', () => {
    it('a HWPT_NESTED with that root, attached to nothing', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const id = f.nested(dev, parent);
      const h = f.state().get(id, 'hwpt-nested')!;
      assert.deepEqual([h.parent, h.ioas, h.devices, h.s1?.pgtblAddr], [parent, ioas, 0, S1.pgtbl_addr]);
    });
  });

  describe('BIND-014 FMT-015 data_type and data_len must agree, before the IDs are looked up', () => {
    it('EINVAL for NONE with data_len 24 and for VTD_S1 with data_len 0, even with an unknown dev_id', () => {
      const { f, ioas } = base();
      assert.equal(
        f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 77, pt_id: ioas, data_type: 0, data_len: 24 }),
        'EINVAL',
      );
      assert.equal(
        f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 77, pt_id: ioas, data_type: 1, data_len: 0 }),
        'EINVAL',
      );
      assert.equal(f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 77, pt_id: ioas, data_type: 0 }), 'ENOENT');
    });
  });

  describe('BIND-015 the driver data must be VT-d stage-1 of exactly 24 bytes', () => {
    it('EOPNOTSUPP for another data_type, EINVAL for 16 or 32 bytes, EFAULT unreadable', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const n = f.nestedCmd(dev, parent);
      assert.equal(f.err({ ...n, data_type: 0xdead }), 'EOPNOTSUPP');
      assert.equal(f.err({ ...n, data_len: 16 }), 'EINVAL');
      assert.equal(f.err({ ...n, data_len: 32 }), 'EINVAL');
      assert.equal(
        f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: parent, data_type: 1, data_len: 24 }),
        'EFAULT',
      );
      assert.equal(f.objects(), '1:ioas,2:device,3:hwpt-paging');
    });
  });

  describe('BIND-016 a nested HWPT is unbound only by destroying it', () => {
    it('EBUSY while attached, ok after detach, then ENOENT', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const nested = f.nested(dev, parent);
      f.attach(0, nested);
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: nested }), 'EBUSY');
      f.ok({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 });
      f.ok({ op: 'IOMMU_DESTROY', id: nested });
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: nested }), 'ENOENT');
    });
  });
});

describe('FMT in iommufd', () => {
  describe('FMT-010 an IOAS command given another object reports ENOENT', () => {
    it('MAP, UNMAP, IOVA_RANGES, ALLOW_IOVAS on a HWPT, a device, a FAULT', () => {
      const { f, ioas, dev } = base();
      const hwpt = f.paging(dev, ioas);
      const fault = f.faultQueue();
      for (const id of [hwpt, dev, fault]) {
        assert.equal(f.err({ op: 'IOMMU_IOAS_UNMAP', ioas_id: id, iova: 0n, length: 0x1000n }), 'ENOENT');
        assert.equal(f.err({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: id, num_iovas: 4 }), 'ENOENT');
        assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: id, iovas: [] }), 'ENOENT');
        assert.equal(
          f.err({
            op: 'IOMMU_IOAS_MAP',
            ioas_id: id,
            flags: 7,
            user_va: { buf: 0, off: 0n },
            length: 0x1000n,
            iova: 0x1000n,
          }),
          'ENOENT',
        );
      }
    });
  });

  describe('FMT-011 HWPT_INVALIDATE is rejected on anything but a nested HWPT', () => {
    it('ENOENT with entry_num 0 on a NEST_PARENT paging HWPT and on an IOAS', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      for (const id of [parent, ioas])
        assert.deepEqual(
          f.step({ op: 'IOMMU_HWPT_INVALIDATE', hwpt_id: id, data_type: 0, entry_len: 24, entry_num: 0 }),
          { ok: false, errno: 'ENOENT', out: { entry_num: 0 } },
        );
    });
  });

  describe('FMT-012 dirty tracking is rejected on anything but a paging HWPT', () => {
    it('ENOENT for a nested HWPT and an IOAS', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const nested = f.nested(dev, parent);
      for (const id of [nested, ioas]) {
        assert.equal(f.err({ op: 'IOMMU_HWPT_SET_DIRTY_TRACKING', hwpt_id: id, flags: 1 }), 'ENOENT');
        assert.equal(
          f.err({
            op: 'IOMMU_HWPT_GET_DIRTY_BITMAP',
            hwpt_id: id,
            flags: 0,
            iova: 0n,
            length: 0x1000n,
            page_size: 0x1000n,
          }),
          'ENOENT',
        );
      }
    });
  });

  describe('FMT-017 a paging HWPT cannot carry a fault queue', () => {
    it('FAULT_ID_VALID on an IOAS pt_id: EOPNOTSUPP even with a valid FAULT, nothing created', () => {
      const { f, ioas, dev } = base();
      const fault = f.faultQueue();
      assert.equal(
        f.err({ op: 'IOMMU_HWPT_ALLOC', flags: 4, dev_id: dev, pt_id: ioas, data_type: 0, fault_id: fault }),
        'EOPNOTSUPP',
      );
      assert.equal(f.objects(), '1:ioas,2:device,3:fault');
    });
  });

  describe('FMT-018 a rejected HWPT_ALLOC changes nothing and frees its ID', () => {
    it('after a refused nested allocation the next object gets the same ID', () => {
      const { f, ioas, dev } = base();
      const parent = f.paging(dev, ioas, 1);
      const before = f.objects();
      assert.equal(f.err(f.nestedCmd(dev, parent, 99)), 'ENOENT');
      assert.equal(f.objects(), before);
      assert.equal(f.nested(dev, parent), 4);
    });
  });

  describe('FMT-019 dirty tracking needs a HWPT allocated for it', () => {
    it('EOPNOTSUPP without the IOMMU capability, and on a paging HWPT allocated without DIRTY_TRACKING', () => {
      const { f, ioas, dev } = base();
      const plain = f.paging(dev, ioas);
      assert.equal(f.err({ op: 'IOMMU_HWPT_SET_DIRTY_TRACKING', hwpt_id: plain, flags: 1 }), 'EOPNOTSUPP');
      assert.equal(
        f.err({
          op: 'IOMMU_HWPT_GET_DIRTY_BITMAP',
          hwpt_id: plain,
          flags: 0,
          iova: 0n,
          length: 0x1000n,
          page_size: 0x1000n,
        }),
        'EOPNOTSUPP',
      );
      const g = new Fd(
        'iommufd',
        ['nesting-hw'],
        (() => {
          const p = base().f.model.config.platform;
          return { ...p, iommu: { ...p.iommu, dirtyTracking: false } };
        })(),
      );
      const io = g.ioas();
      const d = g.bind(0);
      assert.equal(g.err({ op: 'IOMMU_HWPT_ALLOC', flags: 2, dev_id: d, pt_id: io, data_type: 0 }), 'EOPNOTSUPP');
      assert.equal(g.objects(), '1:ioas,2:device');
    });

    it('a DMA write while tracking is on is reported once, then cleared (NO_CLEAR keeps it)', () => {
      const { f, ioas, dev } = base();
      const hwpt = f.paging(dev, ioas, 2);
      f.attach(0, hwpt);
      f.ok({
        op: 'IOMMU_IOAS_MAP',
        ioas_id: ioas,
        flags: 7,
        user_va: { buf: 0, off: 0n },
        length: 0x10000n,
        iova: 0x10000n,
      });
      f.ok({ op: 'DEVICE_DMA', dev: 0, iova: 0x11000n, length: 0x10n, write: true });
      f.ok({ op: 'IOMMU_HWPT_SET_DIRTY_TRACKING', hwpt_id: hwpt, flags: 1 });
      f.ok({ op: 'DEVICE_DMA', dev: 0, iova: 0x12000n, length: 0x1001n, write: true });
      f.ok({ op: 'DEVICE_DMA', dev: 0, iova: 0x15000n, length: 0x10n, write: false });
      const bitmap = {
        op: 'IOMMU_HWPT_GET_DIRTY_BITMAP',
        hwpt_id: hwpt,
        iova: 0x10000n,
        length: 0x10000n,
        page_size: 0x1000n,
      } as const;
      assert.deepEqual(f.ok({ ...bitmap, flags: 1 }).dirty, [{ first: 2, last: 3 }]);
      assert.deepEqual(f.ok({ ...bitmap, flags: 0 }).dirty, [{ first: 2, last: 3 }]);
      assert.deepEqual(f.ok({ ...bitmap, flags: 0 }).dirty, []);
    });
  });

  describe('FMT-020 the dirty bitmap range must be aligned and must not wrap', () => {
    it('EOVERFLOW, then EINVAL for alignment and page_size, before FMT-019', () => {
      const { f, ioas, dev } = base();
      const plain = f.paging(dev, ioas);
      const b = { op: 'IOMMU_HWPT_GET_DIRTY_BITMAP', hwpt_id: plain, flags: 0 } as const;
      assert.equal(f.err({ ...b, iova: 0x1000n, length: (1n << 64n) - 1n, page_size: 0x1000n }), 'EOVERFLOW');
      assert.equal(f.err({ ...b, iova: 0x1001n, length: 0x1000n, page_size: 0x1000n }), 'EINVAL');
      assert.equal(f.err({ ...b, iova: 0x1000n, length: 0x1000n, page_size: 0n }), 'EINVAL');
      assert.equal(f.err({ ...b, iova: 0x1000n, length: 0x1000n, page_size: 0x2000n }), 'EINVAL');
      assert.equal(f.err({ ...b, iova: 0x2000n, length: 0x2000n, page_size: 0x2000n }), 'EOPNOTSUPP');
    });
  });
});

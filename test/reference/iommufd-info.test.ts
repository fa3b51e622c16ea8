// Chapter INFO in the iommufd and vfio-type1 profiles: IOMMU_IOAS_IOVA_RANGES, IOMMU_GET_HW_INFO, and the VFIO
// container's VFIO_GET_API_VERSION, VFIO_CHECK_EXTENSION and VFIO_IOMMU_GET_INFO.
import { strict as assert } from 'node:assert';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { Fd } from './iommufd-fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;
const APERTURE_LAST = (1n << 48n) - 1n;

function ranges(f: Fd, ioas: number, num_iovas = 8) {
  return f.ok({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: ioas, num_iovas });
}

describe('INFO in iommufd', () => {
  describe('INFO-013 IOVA_RANGES reports the holes of the reserved set', () => {
    it('a fresh IOAS reports [0, U64_MAX]; an attached device removes its aperture outside and MSI window', () => {
      const f = new Fd();
      const ioas = f.ioas();
      assert.deepEqual(ranges(f, ioas).allowed_iovas, [{ start: 0n, last: U64_MAX }]);
      f.bind(0);
      f.attach(0, ioas);
      assert.deepEqual(ranges(f, ioas).allowed_iovas, [
        { start: 0n, last: 0xfedf_ffffn },
        { start: 0xfef0_0000n, last: APERTURE_LAST },
      ]);
    });
  });

  describe('INFO-014 ALLOW_IOVAS does not change the reported ranges', () => {
    it('same report before and after', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const before = ranges(f, ioas).allowed_iovas;
      f.ok({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: ioas, iovas: [{ start: 0x1000n, last: 0xffffn }] });
      assert.deepEqual(ranges(f, ioas).allowed_iovas, before);
    });
  });

  describe('INFO-015 INFO-016 num_iovas too small gives EMSGSIZE with the count; large enough is set to the count', () => {
    it('EMSGSIZE with num_iovas 2 for 1 slot; ok with 2 for 8 slots', () => {
      const f = new Fd();
      const ioas = f.ioas();
      f.bind(0);
      f.attach(0, ioas);
      const o = f.step({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: ioas, num_iovas: 1 });
      assert.ok(!o.ok && o.errno === 'EMSGSIZE');
      assert.equal(o.out?.num_iovas, 2);
      assert.equal(ranges(f, ioas).num_iovas, 2);
    });
  });

  describe('INFO-017 out_iova_alignment is the current alignment', () => {
    it('1 for a fresh IOAS, 4096 with a VT-d domain, 4096 with huge pages off', () => {
      const f = new Fd();
      const ioas = f.ioas();
      assert.equal(ranges(f, ioas).out_iova_alignment, 1n);
      f.ok({ op: 'IOMMU_OPTION', option_id: 1, operation: 0, object_id: ioas, val64: 0n });
      assert.equal(ranges(f, ioas).out_iova_alignment, 4096n);
      const g = new Fd();
      const io = g.ioas();
      g.bind(0);
      g.attach(0, io);
      assert.equal(ranges(g, io).out_iova_alignment, 4096n);
    });
  });

  describe('INFO-018 IOVA_RANGES checks __reserved before the IOAS', () => {
    it('EOPNOTSUPP even for an unknown IOAS, then ENOENT', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 9, num_iovas: 1, __reserved: 1 }), 'EOPNOTSUPP');
      assert.equal(f.err({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 9, num_iovas: 1 }), 'ENOENT');
    });
  });

  describe('INFO-019 a paging HWPT narrows the ranges to its aperture; destroying it widens them', () => {
    it('HWPT_ALLOC without any attach narrows; DESTROY gives [0, U64_MAX] back', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const h = f.paging(dev, ioas);
      assert.deepEqual(ranges(f, ioas).allowed_iovas, [{ start: 0n, last: APERTURE_LAST }]);
      f.ok({ op: 'IOMMU_DESTROY', id: h });
      assert.deepEqual(ranges(f, ioas).allowed_iovas, [{ start: 0n, last: U64_MAX }]);
    });
  });

  describe('INFO-020 GET_HW_INFO rejects flags and reserved bits before the device lookup', () => {
    it('EOPNOTSUPP for flags or __reserved even with a bad dev_id; ENOENT for an IOAS ID', () => {
      const f = new Fd();
      const ioas = f.ioas();
      assert.equal(f.err({ op: 'IOMMU_GET_HW_INFO', dev_id: 77, data_len: 0, flags: 1 }), 'EOPNOTSUPP');
      assert.equal(f.err({ op: 'IOMMU_GET_HW_INFO', dev_id: 77, data_len: 0, reserved_nonzero: true }), 'EOPNOTSUPP');
      assert.equal(f.err({ op: 'IOMMU_GET_HW_INFO', dev_id: ioas, data_len: 0 }), 'ENOENT');
      assert.equal(f.err({ op: 'IOMMU_GET_HW_INFO', dev_id: 77, data_len: 0 }), 'ENOENT');
    });
  });

  describe('INFO-021 copy what fits, zero the rest, report the full length', () => {
    it('data_len 0, 8, 24 and 64 all succeed with data_len 24 written back', () => {
      const f = new Fd();
      const dev = f.bind(0);
      for (const [len, copied, zeroed] of [
        [0, 0, 0],
        [8, 8, 0],
        [24, 24, 0],
        [64, 24, 40],
      ] as const) {
        const o = f.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: len });
        assert.deepEqual([o.data_len, o.copied, o.zeroed], [24, copied, zeroed], `data_len ${len}`);
      }
    });
  });

  describe('INFO-022 out_capabilities and out_max_pasid_log2', () => {
    it('DIRTY_TRACKING exactly when the IOMMU tracks; the PASID width when PASID is enabled', () => {
      const f = new Fd();
      const dev = f.bind(0);
      const o = f.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0 });
      assert.deepEqual([o.out_capabilities, o.out_max_pasid_log2], [1, 20]);
      const p = defaultPlatform();
      p.iommu.dirtyTracking = false;
      p.devices[0] = { ...p.devices[0]!, pasid: false };
      const g = new Fd('iommufd', [], p);
      const d = g.bind(0);
      const q = g.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: d, data_len: 0 });
      assert.deepEqual([q.out_capabilities, q.out_max_pasid_log2], [0, 0]);
    });
  });

  describe('INFO-023 out_data_type names the format: IOMMU_HW_INFO_TYPE_INTEL_VTD', () => {
    it('1 for VT-d', () => {
      const f = new Fd();
      const dev = f.bind(0);
      assert.equal(f.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 24 }).out_data_type, 1);
    });
  });
});

/** A vfio-type1 container with group 1 and the IOMMU type set. */
function container(type = 3): Fd {
  const f = new Fd('vfio-type1', ['type1-v1', 'ioctl-abi']);
  f.ok({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 });
  f.ok({ op: 'VFIO_SET_IOMMU', type });
  return f;
}

describe('INFO in vfio-type1', () => {
  describe('INFO-024 VFIO_GET_API_VERSION returns 0', () => {
    it('before and after SET_IOMMU', () => {
      const f = new Fd('vfio-type1', []);
      assert.deepEqual(f.ok({ op: 'VFIO_GET_API_VERSION' }), { version: 0 });
      f.ok({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 });
      f.ok({ op: 'VFIO_SET_IOMMU', type: 3 });
      assert.deepEqual(f.ok({ op: 'VFIO_GET_API_VERSION' }), { version: 0 });
    });
  });

  describe('INFO-025 VFIO_CHECK_EXTENSION returns 0 or 1', () => {
    it('1 for TYPE1 (v1 offered), TYPE1v2 and UNMAP_ALL; 0 for an unknown extension', () => {
      const f = container();
      for (const [ext, v] of [
        [1, 1],
        [3, 1],
        [9, 1],
        [77, 0],
      ] as const)
        assert.deepEqual(f.ok({ op: 'VFIO_CHECK_EXTENSION', extension: ext }), { value: v }, `extension ${ext}`);
    });
  });

  describe('INFO-026 GET_INFO reports the page sizes', () => {
    it('4 KiB | 2 MiB | 1 GiB on the default platform', () => {
      const f = container();
      assert.equal(f.ok({ op: 'VFIO_IOMMU_GET_INFO', argsz: 1024 }).iova_pgsizes, 0x4020_1000n);
    });
  });

  describe('INFO-027 the IOVA-range capability lists the usable ranges', () => {
    it('the aperture minus the MSI window', () => {
      const f = container();
      assert.deepEqual(f.ok({ op: 'VFIO_IOMMU_GET_INFO', argsz: 1024 }).iova_ranges, [
        { start: 0n, end: 0xfedf_ffffn },
        { start: 0xfef0_0000n, end: APERTURE_LAST },
      ]);
    });
  });

  describe('INFO-028 an argsz too small for the capabilities is updated, not refused', () => {
    it('argsz 24: ok, argsz written back larger, cap_offset 0, no ranges', () => {
      const f = container();
      const o = f.ok({ op: 'VFIO_IOMMU_GET_INFO', argsz: 24 });
      assert.ok((o.argsz as number) > 24);
      assert.deepEqual([o.cap_offset, o.iova_ranges], [0, []]);
    });
  });
});

// Chapter FD, feature ioctl-abi: the size / argsz of a command, its tail, unreadable and read-only arguments, unknown
// flags and reserved fields, in the iommufd and vfio-type1 profiles.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { Fd, S1 } from './iommufd-fixtures.ts';

const MAP = (ioas: number, iova: bigint): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: ioas,
  flags: 7,
  user_va: { buf: 0, off: iova },
  length: 0x1000n,
  iova,
});

function type1(): Fd {
  const f = new Fd('vfio-type1', ['ioctl-abi', 'type1-v1']);
  f.ok({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 });
  f.ok({ op: 'VFIO_SET_IOMMU', type: 3 });
  return f;
}
const T1MAP: Command = {
  op: 'VFIO_IOMMU_MAP_DMA',
  flags: 3,
  vaddr: { buf: 0, off: 0x1000n },
  iova: 0x1000n,
  size: 0x1000n,
};

describe('FD ioctl ABI', () => {
  describe('FD-034 an ioctl the type1 model does not know gives ENOTTY once it is selected', () => {
    it('EINVAL before VFIO_SET_IOMMU (DEV-029), ENOTTY after, nothing created', () => {
      const f = new Fd('vfio-type1', ['ioctl-abi']);
      f.ok({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 });
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC' }), 'EINVAL');
      f.ok({ op: 'VFIO_SET_IOMMU', type: 3 });
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC' }), 'ENOTTY');
      assert.equal(f.err({ op: 'IOASID_ALLOC' }), 'ENOTTY');
      assert.equal(f.objects(), '');
    });
  });

  describe('FD-023 FD-024 an unreadable argument gives EFAULT before anything else', () => {
    it('iommufd: EFAULT even for a size that would be too small, nothing created', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC', abi: { memory: 'unreadable', size: 4 } }), 'EFAULT');
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: 1, abi: { memory: 'unreadable' } }), 'EFAULT');
      assert.equal(f.objects(), '');
    });
    it('vfio-type1: MAP, UNMAP, GET_INFO give EFAULT and map nothing', () => {
      const f = type1();
      assert.equal(f.err({ ...T1MAP, abi: { memory: 'unreadable' } }), 'EFAULT');
      assert.equal(f.model.view.areaCount(0), 0);
      assert.equal(f.err({ op: 'VFIO_IOMMU_GET_INFO', argsz: 64, abi: { memory: 'unreadable' } }), 'EFAULT');
    });
  });

  describe('FD-025 a size below the minimum gives EINVAL', () => {
    it('iommufd: one byte short of each minimum', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const cases: [Command, number][] = [
        [{ op: 'IOMMU_DESTROY', id: ioas }, 8],
        [{ op: 'IOMMU_IOAS_ALLOC' }, 12],
        [MAP(ioas, 0x1000n), 40],
        [{ op: 'IOMMU_IOAS_UNMAP', ioas_id: ioas, iova: 0n, length: 0x1000n }, 24],
        [{ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0 }, 24],
        [{ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0 }, 32],
        [{ op: 'IOMMU_FAULT_QUEUE_ALLOC' }, 16],
      ];
      for (const [c, min] of cases) {
        assert.equal(f.err({ ...c, abi: { size: min - 1 } }), 'EINVAL', `${c.op} size ${min - 1}`);
        assert.notEqual(f.result({ ...c, abi: { size: min } }), 'EINVAL', `${c.op} size ${min}`);
      }
    });
    it('vfio-type1: argsz 31 for MAP_DMA, 15 for GET_INFO', () => {
      const f = type1();
      assert.equal(f.err({ ...T1MAP, abi: { size: 31 } }), 'EINVAL');
      assert.equal(f.err({ op: 'VFIO_IOMMU_GET_INFO', argsz: 15 }), 'EINVAL');
      assert.equal(f.model.view.areaCount(0), 0);
    });
  });

  describe('FD-026 non-zero bytes beyond the known structure', () => {
    it('iommufd: E2BIG, nothing created', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC', abi: { size: 64, tailNonZero: true } }), 'E2BIG');
      assert.equal(f.objects(), '');
    });
    it('vfio-type1: the tail is never read and the command runs', () => {
      const f = type1();
      assert.equal(f.result({ ...T1MAP, abi: { size: 64, tailNonZero: true } }), 'ok');
      assert.equal(f.model.view.areaCount(0), 1);
    });
  });

  describe('FD-027 zero bytes beyond the structure are accepted', () => {
    it('iommufd and vfio-type1 behave as with the exact size', () => {
      const f = new Fd();
      assert.deepEqual(f.ok({ op: 'IOMMU_IOAS_ALLOC', abi: { size: 64, tailNonZero: false } }), { id: 1 });
      const g = type1();
      assert.equal(g.result({ ...T1MAP, abi: { size: 64, tailNonZero: false } }), 'ok');
    });
  });

  describe('FD-028 a short structure is completed with zeros', () => {
    it('a 24-byte HWPT_ALLOC is a paging HWPT with no data; a 40-byte one has fault_id 0', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const parent = f.paging(dev, ioas, 1);
      const fault = f.faultQueue();
      // 24 bytes: data_type and data_len read as 0, so a nested request on a parent has no data (EOPNOTSUPP).
      const nested: Command = {
        op: 'IOMMU_HWPT_ALLOC',
        flags: 4,
        dev_id: dev,
        pt_id: parent,
        data_type: 1,
        data: S1,
        data_len: 24,
        fault_id: fault,
      };
      assert.equal(f.err({ ...nested, abi: { size: 24 } }), 'EOPNOTSUPP');
      // 40 bytes: the data is there, fault_id is 0, which names no FAULT.
      assert.equal(f.err({ ...nested, abi: { size: 40 } }), 'ENOENT');
      assert.equal(f.result({ ...nested, abi: { size: 48 } }), 'ok');
      assert.equal(
        f.result({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0, abi: { size: 24 } }),
        'ok',
      );
    });
  });

  describe('FD-029 the generic checks come before the command own ones', () => {
    it('EFAULT before EINVAL before E2BIG before EOPNOTSUPP', () => {
      const f = new Fd();
      const bad: Command = { op: 'IOMMU_IOAS_ALLOC', flags: 1 };
      assert.equal(f.err({ ...bad, abi: { memory: 'unreadable', size: 4 } }), 'EFAULT');
      assert.equal(f.err({ ...bad, abi: { size: 4 } }), 'EINVAL');
      assert.equal(f.err({ ...bad, abi: { size: 64, tailNonZero: true } }), 'E2BIG');
      assert.equal(f.err({ ...bad, abi: { size: 64 } }), 'EOPNOTSUPP');
    });
  });

  describe('FD-030 unknown flags and non-zero reserved fields', () => {
    it('iommufd: EOPNOTSUPP for HWPT_ALLOC, GET_HW_INFO, FAULT_QUEUE_ALLOC, SET_DIRTY_TRACKING, GET_DIRTY_BITMAP', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const h = f.paging(dev, ioas, 2);
      const cases: Command[] = [
        { op: 'IOMMU_HWPT_ALLOC', flags: 0x80, dev_id: dev, pt_id: ioas, data_type: 0 },
        { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0, __reserved: 1 },
        { op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0, flags: 2 },
        { op: 'IOMMU_FAULT_QUEUE_ALLOC', flags: 1 },
        { op: 'IOMMU_HWPT_SET_DIRTY_TRACKING', hwpt_id: h, flags: 2 },
        { op: 'IOMMU_HWPT_GET_DIRTY_BITMAP', hwpt_id: h, flags: 2, iova: 0n, length: 0x1000n, page_size: 0x1000n },
        {
          op: 'IOMMU_HWPT_GET_DIRTY_BITMAP',
          hwpt_id: h,
          flags: 0,
          iova: 0n,
          length: 0x1000n,
          page_size: 0x1000n,
          __reserved: 1,
        },
      ];
      for (const c of cases) assert.equal(f.err(c), 'EOPNOTSUPP', c.op);
      assert.equal(f.objects(), '1:ioas,2:device,3:hwpt-paging');
    });
    it('vfio-type1: EINVAL for an unknown MAP flag', () => {
      const f = type1();
      assert.equal(f.err({ ...T1MAP, flags: 0x103 }), 'EINVAL');
    });
  });

  describe('FD-031 results are written back only within the caller size', () => {
    it('a 32-byte GET_HW_INFO gets no out_capabilities; a 40-byte one does', () => {
      const f = new Fd();
      const dev = f.bind(0);
      const short = f.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0, abi: { size: 32 } });
      assert.equal('out_capabilities' in short, false);
      assert.equal(short.out_max_pasid_log2, 20);
      assert.equal(f.ok({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0, abi: { size: 40 } }).out_capabilities, 1);
    });
  });

  describe('FD-032 a fault writing the result does not undo MAP or UNMAP', () => {
    it('EFAULT, and the mapping stays (MAP) or stays removed (UNMAP)', () => {
      const f = new Fd();
      const ioas = f.ioas();
      assert.equal(f.err({ ...MAP(ioas, 0x1000n), abi: { memory: 'readonly' } }), 'EFAULT');
      assert.equal(f.model.view.areaCount(ioas), 1);
      assert.equal(
        f.err({ op: 'IOMMU_IOAS_UNMAP', ioas_id: ioas, iova: 0n, length: 0x10000n, abi: { memory: 'readonly' } }),
        'EFAULT',
      );
      assert.equal(f.model.view.areaCount(ioas), 0);
    });
  });

  describe('FD-033 a fault writing the new ID aborts the creation', () => {
    it('IOAS_ALLOC, HWPT_ALLOC, FAULT_QUEUE_ALLOC: EFAULT, nothing left, the ID reused next', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC', abi: { memory: 'readonly' } }), 'EFAULT');
      assert.equal(f.objects(), '');
      const ioas = f.ioas();
      assert.equal(ioas, 1);
      const dev = f.bind(0);
      const hw: Command = { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0 };
      assert.equal(f.err({ ...hw, abi: { memory: 'readonly' } }), 'EFAULT');
      assert.equal(f.state().get(ioas, 'ioas')!.space.domains, 0);
      assert.equal(f.err({ op: 'IOMMU_FAULT_QUEUE_ALLOC', abi: { memory: 'readonly' } }), 'EFAULT');
      assert.equal(f.objects(), '1:ioas,2:device');
      assert.equal(f.faultQueue(), 3);
      // A creation that fails anyway keeps its own errno.
      assert.equal(f.err({ op: 'IOMMU_IOAS_ALLOC', flags: 1, abi: { memory: 'readonly' } }), 'EOPNOTSUPP');
    });
  });

  describe('FD-035 a query whose result cannot be written back gives EFAULT', () => {
    it('iommufd: IOVA_RANGES, OPTION (the set stays), GET_HW_INFO', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      assert.equal(
        f.err({ op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: ioas, num_iovas: 0, abi: { memory: 'readonly' } }),
        'EFAULT',
      );
      assert.equal(
        f.err({
          op: 'IOMMU_OPTION',
          option_id: 1,
          operation: 0,
          object_id: ioas,
          val64: 0n,
          abi: { memory: 'readonly' },
        }),
        'EFAULT',
      );
      assert.equal(f.state().get(ioas, 'ioas')!.space.hugePages, false);
      assert.equal(f.err({ op: 'IOMMU_GET_HW_INFO', dev_id: dev, data_len: 0, abi: { memory: 'readonly' } }), 'EFAULT');
    });
    it('vfio-type1: UNMAP_DMA keeps its unmap, GET_INFO', () => {
      const f = type1();
      f.ok(T1MAP);
      assert.equal(
        f.err({ op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova: 0x1000n, size: 0x1000n, abi: { memory: 'readonly' } }),
        'EFAULT',
      );
      assert.equal(f.model.view.areaCount(0), 0);
      assert.equal(f.err({ op: 'VFIO_IOMMU_GET_INFO', argsz: 64, abi: { memory: 'readonly' } }), 'EFAULT');
    });
  });
});

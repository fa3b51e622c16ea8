// Chapter INV in the iommufd profile: IOMMU_HWPT_INVALIDATE of a nested HWPT with VT-d stage-1 entries.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { Fd } from './iommufd-fixtures.ts';

const U64_MAX = (1n << 64n) - 1n;

/** A nesting: IOAS 1, device 2, NEST_PARENT 3, nested 4. */
function nesting(): { f: Fd; parent: number; nested: number } {
  const f = new Fd();
  const ioas = f.ioas();
  const dev = f.bind(0);
  const parent = f.paging(dev, ioas, 1);
  return { f, parent, nested: f.nested(dev, parent) };
}

const entry = (addr: bigint, npages = 1n, flags = 0) => ({ addr, npages, flags });

function inv(hwpt: number, entries: ReturnType<typeof entry>[], extra: Partial<Command> = {}): Command {
  return {
    op: 'IOMMU_HWPT_INVALIDATE',
    hwpt_id: hwpt,
    data_type: 0,
    entry_len: 24,
    entry_num: entries.length,
    entries,
    ...extra,
  } as Command;
}

describe('INV in iommufd', () => {
  describe('INV-010 a non-zero __reserved is refused', () => {
    it('EOPNOTSUPP with entry_num 0', () => {
      const { f, nested } = nesting();
      assert.deepEqual(f.step(inv(nested, [entry(0n)], { __reserved: 1 })), {
        ok: false,
        errno: 'EOPNOTSUPP',
        out: { entry_num: 0 },
      });
    });
  });

  describe('INV-011 a non-empty array needs a pointer and an entry size', () => {
    it('EINVAL for a NULL array or entry_len 0 with entry_num 1; entry_num 0 needs neither', () => {
      const { f, nested } = nesting();
      assert.deepEqual(f.step(inv(nested, [entry(0n)], { null_array: true })), {
        ok: false,
        errno: 'EINVAL',
        out: { entry_num: 0 },
      });
      assert.equal(f.err(inv(nested, [entry(0n)], { entry_len: 0 })), 'EINVAL');
      assert.deepEqual(f.step(inv(nested, [], { null_array: true, entry_len: 0 })), {
        ok: true,
        out: { entry_num: 0 },
      });
    });
  });

  describe('INV-012 only a nested HWPT takes an invalidation', () => {
    it('ENOENT with entry_num 0 for a paging HWPT, a device, an unused ID', () => {
      const { f, parent } = nesting();
      for (const id of [parent, 2, 99])
        assert.deepEqual(f.step(inv(id, [entry(0n)])), { ok: false, errno: 'ENOENT', out: { entry_num: 0 } });
    });
  });

  describe('INV-013 order of checks: __reserved, array, hwpt_id, then the driver', () => {
    it('each check wins over the ones after it', () => {
      const { f, nested, parent } = nesting();
      assert.equal(f.err(inv(parent, [entry(1n)], { __reserved: 1, null_array: true })), 'EOPNOTSUPP');
      assert.equal(f.err(inv(parent, [entry(1n)], { null_array: true })), 'EINVAL');
      assert.equal(f.err(inv(parent, [entry(1n)], { data_type: 9 })), 'ENOENT');
      assert.equal(f.err(inv(nested, [entry(1n)], { data_type: 9 })), 'EINVAL');
    });
  });

  describe('INV-014 entries are applied in order up to the first failure', () => {
    it('the second of three bad: EINVAL with entry_num 1', () => {
      const { f, nested } = nesting();
      assert.deepEqual(f.step(inv(nested, [entry(0x1000n), entry(0x1001n), entry(0x2000n)])), {
        ok: false,
        errno: 'EINVAL',
        out: { entry_num: 1 },
      });
      assert.deepEqual(f.step(inv(nested, [entry(0x1000n), entry(0x2000n, 4n, 1)])), {
        ok: true,
        out: { entry_num: 2 },
      });
    });
  });

  describe('INV-015 entry_num is always written back; a faulting write-back is EFAULT', () => {
    it('0 for early errors, the count otherwise, EFAULT when the argument is read-only', () => {
      const { f, nested } = nesting();
      assert.deepEqual(f.step(inv(nested, [entry(0n)], { __reserved: 1 })).out, { entry_num: 0 });
      assert.deepEqual(f.step(inv(nested, [entry(0n), entry(0n, 1n, 2)])).out, { entry_num: 1 });
      assert.equal(f.err(inv(nested, [entry(0n)], { abi: { memory: 'readonly' } })), 'EFAULT');
      assert.equal(f.err(inv(99, [entry(0n)], { abi: { memory: 'readonly' } })), 'EFAULT');
    });
  });

  describe('INV-016 an empty array probes the data type', () => {
    it('ok for VTD_S1, EINVAL for another type, with entry_num 0', () => {
      const { f, nested } = nesting();
      assert.deepEqual(f.step(inv(nested, [])), { ok: true, out: { entry_num: 0 } });
      assert.deepEqual(f.step(inv(nested, [], { data_type: 1 })), {
        ok: false,
        errno: 'EINVAL',
        out: { entry_num: 0 },
      });
    });
  });

  describe('INV-017 an entry must be exactly 24 bytes and readable', () => {
    it('EINVAL for 16 and 32 at the first entry; EFAULT at the first unreadable one', () => {
      const { f, nested } = nesting();
      for (const entry_len of [16, 32])
        assert.deepEqual(f.step(inv(nested, [entry(0n)], { entry_len })), {
          ok: false,
          errno: 'EINVAL',
          out: { entry_num: 0 },
        });
      assert.deepEqual(f.step(inv(nested, [entry(0n)], { entry_num: 2 })), {
        ok: false,
        errno: 'EFAULT',
        out: { entry_num: 1 },
      });
    });
  });

  describe('INV-018 VT-d stage-1 entries', () => {
    it('unknown flags EOPNOTSUPP; unaligned addr or npages U64_MAX with addr ≠ 0 EINVAL; addr 0 all ok', () => {
      const { f, nested } = nesting();
      assert.equal(f.err(inv(nested, [entry(0n, 1n, 2)])), 'EOPNOTSUPP');
      assert.equal(f.err(inv(nested, [entry(0x800n)])), 'EINVAL');
      assert.equal(f.err(inv(nested, [entry(0x1000n, U64_MAX)])), 'EINVAL');
      assert.deepEqual(f.step(inv(nested, [entry(0n, U64_MAX, 1)])), { ok: true, out: { entry_num: 1 } });
    });
  });
});

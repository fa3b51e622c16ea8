// IOAS-035: a domain joins an IOAS only when every existing mapping meets the alignment the domain brings — its IOVA,
// its length and the page offset of its user address — and that check comes before the aperture reservations and
// before the domain is filled (io_pagetable.c: iopt_table_add_domain → iopt_check_iova_alignment).
import { strict as assert } from 'node:assert';
import { IOAS_MAP, type Command } from '../../src/reference/commands.ts';
import { Fd } from './iommufd-fixtures.ts';

const RW = IOAS_MAP.FIXED_IOVA | IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE;
const map = (ioas: number, iova: bigint, length: bigint, buf: number, off: bigint): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: ioas,
  flags: RW,
  user_va: { buf, off },
  length,
  iova,
});

/** An fd with IOAS 1 holding one mapping made while the IOAS had no domain (alignment 1), and device 0 bound. */
function withMapping(iova: bigint, length: bigint, off: bigint, buf = 0): { f: Fd; ioas: number; dev: number } {
  const f = new Fd();
  const ioas = f.ioas();
  f.ok(map(ioas, iova, length, buf, off));
  const dev = f.bind(0);
  return { f, ioas, dev };
}

describe('IOAS-035 A domain joins an IOAS only when every mapping meets its alignment', () => {
  const cases: { name: string; iova: bigint; length: bigint; off: bigint; want: string }[] = [
    { name: 'aligned IOVA, length and user page offset', iova: 0x10_0000n, length: 0x2000n, off: 0n, want: 'ok' },
    { name: 'a user address one byte into its page', iova: 0x10_0000n, length: 0x2000n, off: 1n, want: 'EADDRINUSE' },
    { name: 'an IOVA one byte past a page', iova: 0x10_0001n, length: 0x2000n, off: 0n, want: 'EADDRINUSE' },
    { name: 'a length one byte short of a page', iova: 0x10_0000n, length: 0x1fffn, off: 0n, want: 'EADDRINUSE' },
  ];
  for (const c of cases)
    it(`IOAS-035 HWPT_ALLOC over a mapping with ${c.name}: ${c.want}`, () => {
      const { f, ioas, dev } = withMapping(c.iova, c.length, c.off);
      const before = f.model.view.areaCount(ioas);
      const r = f.result({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0 });
      assert.equal(r, c.want);
      assert.ok(f.last!.clauses.includes('IOAS-035'));
      if (c.want !== 'ok') {
        assert.equal(f.last!.decidedBy, 'IOAS-035');
        // Nothing created, every mapping kept.
        assert.equal(f.model.view.objects().filter((o) => o.kind === 'hwpt-paging').length, 0);
        assert.equal(f.model.view.areaCount(ioas), before);
      }
    });

  it('IOAS-035 the automatic domain of an attach is refused the same way, and the device stays unattached', () => {
    const { f, ioas } = withMapping(0x10_0000n, 0x2000n, 1n);
    assert.equal(f.result({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: ioas }), 'EADDRINUSE');
    assert.equal(f.last!.decidedBy, 'IOAS-035');
    assert.deepEqual(f.model.view.device(0).attachedTo, []);
  });

  it('IOAS-035 MEM-013 the alignment check wins over a mapping that cannot be pinned (EADDRINUSE, not EFAULT)', () => {
    // The Linux lane's finding: a fixed mapping whose user range runs one byte past buffer 1 into the guard page
    // (iommufd pins lazily, so the MAP succeeds); the first domain is refused for the page offset before any fill.
    const f = new Fd();
    const ioas = f.ioas();
    const size = BigInt(f.model.view.platform.buffers[1]!.size);
    f.ok(map(ioas, 0x60_0000n, size, 1, 1n));
    const dev = f.bind(0);
    assert.equal(f.result({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev, pt_id: ioas, data_type: 0 }), 'EADDRINUSE');
    assert.equal(f.last!.decidedBy, 'IOAS-035');
    // With the page offset aligned the same over-long range is refused by the fill instead (MEM-013).
    const g = new Fd();
    const ioas2 = g.ioas();
    g.ok(map(ioas2, 0x60_0000n, size + 0x1000n, 1, 0n));
    const dev2 = g.bind(0);
    assert.equal(g.result({ op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: dev2, pt_id: ioas2, data_type: 0 }), 'EFAULT');
    assert.equal(g.last!.decidedBy, 'MEM-013');
  });
});

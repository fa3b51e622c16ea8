// Refinement through user-managed first-stage tables (REF-011, REF-012): the refinement writes a guest table at the
// bound root in user memory, as the user would, and probes DMA through it after every step; a root the parent does
// not map makes every nested DMA fault in the second stage.
import { strict as assert } from 'node:assert';
import type { Command, Profile } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { TraceRefiner, type RefineStep } from '../../conformance/refine.ts';

function refine(profile: Profile, features: string[], steps: Command[]) {
  const platform = defaultPlatform();
  const model = new Model({ profile, features: new Set(features), platform });
  const ref = new TraceRefiner({ name: 'test', profile, features, platform }, undefined);
  const out: (RefineStep & { ok: boolean })[] = [];
  const run = (s: Command) => {
    const res = model.step(s);
    const rr = ref.afterStep(s, res.outcome, model.view);
    out.push({ ...rr, ok: res.outcome.ok });
    return out[out.length - 1]!;
  };
  for (const s of steps) run(s);
  return { out, ref, run };
}

const rfcNested: Command[] = [
  { op: 'IOASID_ALLOC' },
  { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
  { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
  {
    op: 'IOASID_MAP_DMA',
    ioasid: { ref: 0 },
    flags: 3,
    vaddr: { buf: 0, off: 0x80_0000n },
    iova: 0x80_0000n,
    size: 0x20_0000n,
  },
  { op: 'IOASID_CREATE_NESTING', parent: { ref: 0 }, format: 'pgtable', table_format: 'vtd-s1-4lvl' },
  { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 4 } },
  { op: 'IOASID_BIND_PGTABLE', ioasid: { ref: 4 }, table_format: 'vtd-s1-4lvl', root: 0x80_0000n },
];
const unmapParent: Command = {
  op: 'IOASID_UNMAP_DMA',
  ioasid: { ref: 0 },
  flags: 0,
  iova: 0x80_0000n,
  size: 0x20_0000n,
};
const RFC = ['dma-probe', 'pasid', 'nesting-hw'];

describe('REF-011 REF-012 refinement probes DMA through the user first-stage table it writes', () => {
  it('reaches the parent-mapped page through the table, and faults once the parent unmaps it', () => {
    const r = refine('rfc', RFC, rfcNested);
    assert.ok(r.out[6]!.clauses.includes('REF-011'));
    const u = r.run(unmapParent);
    assert.ok(u.ok);
    assert.ok(u.clauses.includes('REF-012'), u.clauses.join());
    for (const [i, s] of r.out.entries()) assert.equal(s.violation, undefined, `step ${i}: ${s.violation?.message}`);
  });
  it('catches a driver whose invalidations after the parent unmap do not happen (stale nested translations)', () => {
    const r = refine('rfc', RFC, rfcNested);
    // The probes after the bind cached GVA 0x7000 → parent IOVA 0x80_0000; now every invalidation is lost.
    r.ref.driver.machine.invalidate = () => ({ ok: true });
    const u = r.run(unmapParent);
    assert.equal(u.violation?.clause, 'REF-012');
    assert.match(u.violation.message, /through the user first-stage table\): the uAPI state implies a fault/);
  });
  it('iommufd: a root the parent IOAS does not map makes every nested DMA fault', () => {
    const r = refine(
      'iommufd',
      ['dma-probe', 'nesting-hw'],
      [
        { op: 'IOMMU_IOAS_ALLOC' },
        { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
        { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: { ref: 1 }, pt_id: { ref: 0 }, data_type: 0 },
        {
          op: 'IOMMU_HWPT_ALLOC',
          flags: 0,
          dev_id: { ref: 1 },
          pt_id: { ref: 2 },
          data_type: 1,
          data: { flags: 0, pgtbl_addr: 0x10_0000n, addr_width: 48 },
          data_len: 24,
        },
        { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 3 } },
        {
          op: 'IOMMU_IOAS_MAP',
          ioas_id: { ref: 0 },
          flags: 7,
          user_va: { buf: 0, off: 0n },
          length: 0x2000n,
          iova: 0x40_0000n,
        },
      ],
    );
    assert.deepEqual(
      r.out.map((s) => s.ok),
      [true, true, true, true, true, true],
    );
    assert.ok(r.out[5]!.clauses.includes('REF-012'), r.out[5]!.clauses.join());
    for (const [i, s] of r.out.entries()) assert.equal(s.violation, undefined, `step ${i}: ${s.violation?.message}`);
    const hw = r.ref.driver.machine.dma({ sid: 0x100, addr: 0x7000n, size: 8n, write: false });
    assert.ok(!hw.ok && hw.fault.stage === 'second');
  });
});

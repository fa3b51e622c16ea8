// Chapter REF: the refinement check (conformance/refine.ts) with the reference driver over the VT-d hardware model,
// on deterministic uAPI traces; each clause also has the defect that breaks it caught where a broken driver exists.
import { strict as assert } from 'node:assert';
import type { Command, Profile } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { encodeFsPte } from '../../src/hw-reference/entries.ts';
import type { DriverBug } from '../../src/hw-reference/driver.ts';
import { TraceRefiner, type RefineStep } from '../../conformance/refine.ts';

/** Runs `steps` through the uAPI model and the refinement check; returns each step's outcome and verdict. */
/** Every feature the default platform supports, per profile. */
const ALL: Record<Profile, string[]> = {
  rfc: ['dma-probe', 'pasid', 'pasid-global', 'pasid-virt', 'mdev', 'enqcmd', 'nesting-hw', 'nesting-sw'],
  iommufd: ['dma-probe'],
  'vfio-type1': ['dma-probe'],
};

function refine(profile: Profile, steps: Command[], bug?: DriverBug, features: string[] = ALL[profile]) {
  const platform = defaultPlatform();
  const model = new Model({ profile, features: new Set(features), platform });
  const ref = new TraceRefiner({ name: 'test', profile, features, platform }, bug);
  const out: (RefineStep & { ok: boolean; errno?: string })[] = [];
  for (const s of steps) {
    const res = model.step(s);
    const rr = ref.afterStep(s, res.outcome, model.view);
    out.push({ ...rr, ok: res.outcome.ok, ...(res.outcome.ok ? {} : { errno: res.outcome.errno }) });
  }
  return { out, ref, model };
}
const clausesOf = (r: ReturnType<typeof refine>) => new Set(r.out.flatMap((s) => s.clauses));
const violations = (r: ReturnType<typeof refine>) => r.out.flatMap((s) => (s.violation ? [s.violation.clause] : []));

const rfcBase: Command[] = [
  { op: 'IOASID_ALLOC' },
  { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
  { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
];
const map = (iova: bigint, size: bigint, flags = 3, off = 0x20_0000n, ioasid = 0): Command => ({
  op: 'IOASID_MAP_DMA',
  ioasid: { ref: ioasid },
  flags,
  vaddr: { buf: 0, off },
  iova,
  size,
});

describe('REF-001 After every call returns, DMA has the outcome the uAPI state implies', () => {
  it('replays DEVICE_DMA steps on the hardware and probes after every step without a violation', () => {
    const r = refine('rfc', [
      ...rfcBase,
      map(0x40_0000n, 0x20_0000n),
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0ff8n, length: 16n, write: true },
    ]);
    assert.deepEqual(violations(r), []);
    assert.ok(r.out.at(-1)!.clauses.includes('REF-001'));
    assert.ok(r.ref.probes > 20);
  });
  it('catches a hardware state that disagrees with the uAPI state', () => {
    const r = refine('rfc', [...rfcBase, map(0x40_0000n, 0x1000n)]);
    // Corrupt the hardware behind the driver's back: the page now maps one page further.
    const m = r.ref.driver.machine;
    const hit = m.dma({ sid: 0x100, addr: 0x40_0000n, size: 8n, write: false });
    assert.ok(hit.ok);
    m.invalidate({ type: 'iotlb', g: 'global' });
    m.invalidate({ type: 'devtlb', sid: 0x100, addr: 0x7fff_ffff_ffff_f000n, s: true });
    const model = r.model;
    const cmd: Command = { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0000n, length: 8n, write: false };
    const leafTables = [...Array(1 << 12).keys()];
    void leafTables;
    // Rewrite the leaf: find it by walking the same address through a second-stage PTE scan of the driver's frames.
    for (let a = 0x1000_0000n; a < 0x1010_0000n; a += 8n) {
      const v = m.mem.readQ(a);
      if ((v & 0x000f_ffff_ffff_f000n) === hit.hpa - (hit.hpa & 0xfffn) && (v & 3n) !== 0n)
        m.mem.writeQ(a, v + 0x1000n);
    }
    const res = model.step(cmd);
    const v = r.ref.afterStep(cmd, res.outcome, model.view);
    assert.equal(v.violation?.clause, 'REF-001');
  });
});

describe('REF-002 After MAP returns, the new range translates to the mapped memory with the mapped permissions', () => {
  it('probes the new mapping (edges, inside, outside) and it reaches the pinned pages, with a 2-MiB leaf', () => {
    const r = refine('rfc', [...rfcBase, map(0x40_0000n, 0x20_0000n)]);
    assert.ok(r.out[3]!.clauses.includes('REF-002'));
    assert.deepEqual(violations(r), []);
    const t = r.ref.driver.machine.iommu.translate({ sid: 0x100, addr: 0x41_0000n, size: 8, write: false });
    assert.ok(t.ok && t.t.size === 0x20_0000n, 'aligned IOVA and memory: a 2-MiB leaf');
  });
});

describe('REF-003 After UNMAP returns, no DMA to a removed byte succeeds whatever the caches held', () => {
  it('holds with the reference driver and catches the driver that skips the IOTLB invalidation', () => {
    const steps: Command[] = [
      ...rfcBase,
      map(0x40_0000n, 0x20_0000n),
      { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova: 0x40_0000n, size: 0x20_0000n },
    ];
    const good = refine('rfc', steps);
    assert.deepEqual(violations(good), []);
    assert.ok(good.out[4]!.clauses.includes('REF-003'));
    assert.deepEqual(violations(refine('rfc', steps, 'skip-iotlb-after-unmap')), ['REF-003']);
  });
});

describe('REF-004 DMA follows what UNMAP actually removed, not the range it was given', () => {
  it('iommufd: the areas removed before ENOENT fault, the one left in place still translates', () => {
    const r = refine('iommufd', [
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: 7,
        user_va: { buf: 0, off: 0n },
        length: 0x2000n,
        iova: 0x10_0000n,
      },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: 7,
        user_va: { buf: 0, off: 0x1_0000n },
        length: 0x2000n,
        iova: 0x20_0000n,
      },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 0 } },
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x10_0000n, length: 0x10_1000n },
    ]);
    assert.equal(r.out[5]!.errno, 'ENOENT');
    assert.ok(r.out[5]!.clauses.includes('REF-004'));
    assert.deepEqual(violations(r), []);
  });
  it('rfc: a bisecting range removes nothing and the mapping keeps translating', () => {
    const r = refine('rfc', [
      ...rfcBase,
      map(0x40_0000n, 0x2000n),
      { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova: 0x40_0000n, size: 0x1000n },
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_1000n, length: 8n, write: false },
    ]);
    assert.equal(r.out[4]!.errno, 'EINVAL');
    assert.ok(r.out[5]!.ok);
    assert.deepEqual(violations(r), []);
  });
});

describe('REF-005 A write to a mapping made without write permission faults', () => {
  it('faults writes to a read-only mapping on the hardware (second stage W = 0)', () => {
    const r = refine('rfc', [
      ...rfcBase,
      map(0x40_0000n, 0x2000n, 1),
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0000n, length: 8n, write: true },
    ]);
    assert.ok(r.out[3]!.clauses.includes('REF-005'));
    assert.equal(r.out[4]!.errno, 'fault');
    assert.deepEqual(violations(r), []);
    const hw = r.ref.driver.machine.dma({ sid: 0x100, addr: 0x40_0000n, size: 8n, write: true });
    assert.ok(!hw.ok && hw.fault.code === 'SGN.6');
  });
});

describe('REF-006 After a detach returns, DMA through that attachment faults', () => {
  const steps: Command[] = [
    ...rfcBase,
    map(0x40_0000n, 0x2000n),
    { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: { ref: 0 } },
  ];
  it('holds with the reference driver', () => {
    const r = refine('rfc', steps);
    assert.ok(r.out[4]!.clauses.includes('REF-006'));
    assert.deepEqual(violations(r), []);
  });
  it('catches the driver that flushes the wrong PASID when it tears the entry down', () => {
    assert.deepEqual(violations(refine('rfc', steps, 'flush-wrong-pasid')), ['REF-006']);
  });
});

describe('REF-007 After a replace returns, DMA follows the new page table', () => {
  it('iommufd: a device moved to another IOAS reaches only the new mappings', () => {
    const r = refine('iommufd', [
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: 7,
        user_va: { buf: 0, off: 0n },
        length: 0x2000n,
        iova: 0x10_0000n,
      },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 0 } },
      { op: 'IOMMU_IOAS_ALLOC' },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 4 },
        flags: 3,
        user_va: { buf: 1, off: 0n },
        length: 0x1000n,
        iova: 0x20_0000n,
      },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 4 } },
    ]);
    assert.ok(r.out[6]!.ok);
    assert.ok(r.out[6]!.clauses.includes('REF-007'));
    assert.deepEqual(violations(r), []);
    assert.ok(!r.ref.driver.machine.dma({ sid: 0x100, addr: 0x10_0000n, size: 8n, write: false }).ok);
  });
});

describe('REF-008 A PASID attachment routes exactly its (RID, PASID) and nothing else', () => {
  it('routes the attached PASID, keeps the RID route, and faults other PASIDs', () => {
    const r = refine('rfc', [
      ...rfcBase,
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 3 }, pasid: 5 },
      map(0x40_0000n, 0x1000n, 3, 0x20_0000n, 3),
      map(0x40_0000n, 0x1000n, 3, 0x30_0000n, 0),
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0000n, length: 8n, write: false, pasid: 5 },
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0000n, length: 8n, write: false },
      { op: 'DEVICE_DMA', dev: 0, iova: 0x40_0000n, length: 8n, write: false, pasid: 6 },
    ]);
    assert.deepEqual(violations(r), []);
    assert.ok(clausesOf(r).has('REF-008'));
    assert.deepEqual(
      r.out.slice(7).map((s) => s.ok),
      [true, true, false],
    );
    assert.deepEqual(r.ref.driver.realPasids(0, 5), [5]);
  });
});

const globalSteps: Command[] = [
  { op: 'IOASID_SET_HWID_MODE', mode: 1 },
  { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 },
  { op: 'IOASID_ALLOC' },
  { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
  { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 2 }, pasid: 14 },
  { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
  { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: { ref: 2 }, pasid: 14 },
];

describe('REF-009 Under the global PASID scheme one local PASID reaches one address space from every device', () => {
  it('installs the local and the one global PASID on every device', () => {
    const r = refine('rfc', [...globalSteps, map(0x40_0000n, 0x1000n, 3, 0x20_0000n, 2)]);
    assert.deepEqual(violations(r), []);
    assert.deepEqual(r.ref.driver.realPasids(0, 14), [14, 1024]);
    assert.deepEqual(r.ref.driver.realPasids(1, 14), [14, 1024]);
  });
  it('catches the driver that gives each device its own global PASID, in 7 steps', () => {
    const r = refine('rfc', globalSteps, 'per-device-global-pasid');
    assert.deepEqual(violations(r), ['REF-009']);
  });
});

describe("REF-010 ENQCMD with a mapped local PASID reaches the same address space as the devices' DMA", () => {
  it('delivers the global PASID after KVM_MAP_PASID and faults after KVM_UNMAP_PASID', () => {
    const r = refine('rfc', [
      ...globalSteps,
      map(0x40_0000n, 0x1000n, 3, 0x20_0000n, 2),
      { op: 'KVM_MAP_PASID', user_pasid: 14, ioasid: { ref: 2 } },
      { op: 'CPU_ENQCMD', dev: 1, pasid: 14 },
      { op: 'KVM_UNMAP_PASID', user_pasid: 14 },
      { op: 'CPU_ENQCMD', dev: 1, pasid: 14 },
    ]);
    assert.deepEqual(violations(r), []);
    assert.ok(r.out[9]!.ok && r.out[9]!.clauses.includes('REF-010'));
    assert.equal(r.out[11]!.errno, 'fault');
    assert.deepEqual(
      r.ref.driver.machine.devices.get(0x200)!.work.map((w) => w.pasid),
      [1024],
    );
  });
});

describe("REF-011 Hardware nesting composes the user's first-stage table with the kernel's second stage", () => {
  // The user writes its first-stage table into its own memory (parent IOVA 0x80_0000.. = buffer 0 at 0x80_0000).
  const steps: Command[] = [
    ...rfcBase,
    map(0x80_0000n, 0x20_0000n, 3, 0x80_0000n),
    { op: 'IOASID_CREATE_NESTING', parent: { ref: 0 }, format: 'pgtable', table_format: 'vtd-s1-4lvl' },
    { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 4 } },
    { op: 'IOASID_BIND_PGTABLE', ioasid: { ref: 4 }, table_format: 'vtd-s1-4lvl', root: 0x80_0000n },
  ];
  function userTable(r: ReturnType<typeof refine>, gvaToGpa: bigint) {
    const d = r.ref.driver;
    const hpa = (gpa: bigint) => d.hpaOf(0, gpa)!; // parent IOVA g maps buffer 0 offset g
    // 4 table pages at GPAs 0x80_0000, 0x80_1000, 0x80_2000, 0x80_3000; the leaf maps GVA 0x7000 → gvaToGpa.
    for (let l = 0; l < 3; l++)
      d.machine.mem.writeQ(hpa(0x80_0000n + BigInt(l) * 0x1000n), encodeFsPte(0x80_1000n + BigInt(l) * 0x1000n, true));
    d.machine.mem.writeQ(hpa(0x80_3000n) + 7n * 8n, encodeFsPte(gvaToGpa, true));
  }
  it('walks the user table through the parent and reaches the parent-mapped page', () => {
    const r = refine('rfc', steps);
    assert.deepEqual(
      r.out.map((s) => s.errno ?? 'ok'),
      ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'],
    );
    // The refinement wrote a guest table at the bound root (GVA 0x7000 → parent IOVA 0x80_0000, the parent's first
    // mapping) and probed through it after the bind, without a violation.
    assert.ok(r.out[6]!.clauses.includes('REF-011'), r.out[6]!.clauses.join());
    assert.deepEqual(violations(r), []);
    const hw = r.ref.driver.machine.dma({ sid: 0x100, addr: 0x7008n, size: 8n, write: true });
    assert.ok(hw.ok);
    assert.deepEqual(r.ref.driver.userOf(hw.hpa), { buf: 0, off: 0x80_0008n });
    // A GVA the table does not map faults in the first stage.
    const hole = r.ref.driver.machine.dma({ sid: 0x100, addr: 0x8000n, size: 8n, write: false });
    assert.ok(!hole.ok && hole.fault.stage === 'first');
  });
  it('REF-012 After the parent of a nesting is unmapped, nested DMA that needs the removed range faults', () => {
    const r = refine('rfc', steps);
    userTable(r, 0x81_0000n);
    assert.ok(r.ref.driver.machine.dma({ sid: 0x100, addr: 0x7008n, size: 8n, write: false }).ok, 'cached now');
    const unmap: Command = { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova: 0x80_0000n, size: 0x20_0000n };
    const res = r.model.step(unmap);
    assert.ok(res.outcome.ok);
    r.ref.afterStep(unmap, res.outcome, r.model.view);
    const hw = r.ref.driver.machine.dma({ sid: 0x100, addr: 0x7008n, size: 8n, write: false });
    assert.ok(
      !hw.ok && hw.fault.stage === 'second',
      JSON.stringify(hw, (_, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x)),
    );
  });
  it("REF-014 A user invalidation makes later DMA see the user's updated first-stage table", () => {
    const r = refine('rfc', steps);
    userTable(r, 0x81_0000n);
    const dma = () => r.ref.driver.machine.dma({ sid: 0x100, addr: 0x7008n, size: 8n, write: false });
    const first = dma();
    assert.ok(first.ok);
    userTable(r, 0x82_0000n);
    const stale = dma();
    assert.ok(stale.ok && stale.hpa === first.hpa, 'before the invalidation the old translation may be used');
    const inv: Command = { op: 'IOASID_INVALIDATE_CACHE', ioasid: { ref: 4 }, granularity: 0 };
    const res = r.model.step(inv);
    assert.ok(res.outcome.ok, JSON.stringify(res.outcome));
    r.ref.afterStep(inv, res.outcome, r.model.view);
    const fresh = dma();
    assert.ok(fresh.ok);
    assert.deepEqual(r.ref.driver.userOf(fresh.hpa), { buf: 0, off: 0x82_0008n });
  });
});

describe('REF-013 Software nesting shadows the composition of both levels', () => {
  it('the shadow table composes child and parent and follows a parent UNMAP', () => {
    const r = refine('rfc', [
      { op: 'IOASID_ALLOC' },
      { op: 'IOASID_CREATE_NESTING', parent: { ref: 0 }, format: 'kernel' },
      { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
      { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
      { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 1 } },
      {
        op: 'IOASID_MAP_DMA',
        ioasid: { ref: 0 },
        flags: 3,
        vaddr: { buf: 0, off: 0x5000n },
        iova: 0x10_0000n,
        size: 0x4000n,
      },
      { op: 'IOASID_MAP_DMA', ioasid: { ref: 1 }, flags: 1, vaddr: { iova: 0x10_1000n }, iova: 0x9000n, size: 0x2000n },
      { op: 'DEVICE_DMA', dev: 0, iova: 0x9008n, length: 8n, write: false },
      { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova: 0x10_0000n, size: 0x4000n },
      { op: 'DEVICE_DMA', dev: 0, iova: 0x9008n, length: 8n, write: false },
    ]);
    assert.deepEqual(violations(r), []);
    assert.ok(clausesOf(r).has('REF-013'));
    assert.deepEqual([r.out[7]!.ok, r.out[9]!.ok], [true, false]);
  });
});

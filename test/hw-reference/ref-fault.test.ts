// The fault path through the reference driver (src/hw-reference/driver.ts) and the refinement check
// (conformance/refine.ts): a device's page request goes to the VT-d page request queue (HW-028), the driver hands a
// first-level group to the uAPI's fault queue or fixes a second-level one in the kernel, a fault read delivers the
// records the uAPI model predicts, and the uAPI response completes the page group on the device (HW-030).
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import type { Command, Profile } from '../../src/reference/commands.ts';
import { Model, isModelLimit } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { TraceRefiner, type RefineStep } from '../../conformance/refine.ts';
import { TraceGenerator } from '../../generators/trace.ts';

const FEATURES: Record<Profile, string[]> = {
  rfc: ['dma-probe', 'pasid', 'nesting-hw', 'iopf'],
  iommufd: ['dma-probe', 'nesting-hw', 'iopf'],
  'vfio-type1': ['dma-probe'],
};

/** The uAPI model and the refinement check in lockstep over `steps`. */
function refine(profile: Profile, steps: Command[]) {
  const platform = defaultPlatform();
  const features = FEATURES[profile];
  const model = new Model({ profile, features: new Set(features), platform });
  const ref = new TraceRefiner({ name: 'test', profile, features, platform }, undefined);
  const out: (RefineStep & { outcome: ReturnType<Model['step']>['outcome'] })[] = [];
  const run = (s: Command) => {
    const res = model.step(s);
    const rr = ref.afterStep(s, res.outcome, model.view);
    out.push({ ...rr, outcome: res.outcome });
    return out[out.length - 1]!;
  };
  for (const s of steps) run(s);
  return { out, ref, model, run };
}

const DEV0 = 0x0100;
/** The device model of the function behind device index 0. */
const device = (r: ReturnType<typeof refine>) => r.ref.driver.machine.devices.get(DEV0)!;

/** rfc: a kernel IOASID (0), a nested user-managed IOASID (4) bound to a first-stage table, device 0 on both. */
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
const pr = (addr: bigint, grpid: number, perm: number, last = true): Command => ({
  op: 'DEVICE_PAGE_REQUEST',
  dev: 0,
  addr,
  grpid,
  perm,
  last,
});
const ok = (r: ReturnType<typeof refine>) => {
  for (const [i, s] of r.out.entries()) assert.equal(s.violation, undefined, `step ${i}: ${s.violation?.message}`);
};

describe('FAULT-003 FAULT-007 FAULT-015 HW-028 HW-030 REF-001 a first-level page request reaches the rfc fault queue and the response completes it on the device', () => {
  it('queues the group for the user, delivers the record the uAPI model returns, and answers the device', () => {
    const r = refine('rfc', rfcNested);
    const q = r.run(pr(0x7000n, 2, 3));
    assert.deepEqual(q.outcome, { ok: true, out: { response: 'queued' } });
    assert.ok(q.clauses.includes('FAULT-003') && q.clauses.includes('HW-028'), q.clauses.join());
    // The device holds the group outstanding and has received nothing yet.
    assert.ok(device(r).groups.has('-:2'));
    assert.equal(device(r).responses.length, 0);
    const read = r.run({ op: 'IOASID_FAULT_READ', count: 8 });
    assert.ok(read.clauses.includes('FAULT-007'));
    assert.deepEqual(r.ref.driver.lastDelivered, [{ ioasid: 2, addr: 0x7000n, perm: 3 }]);
    const rec = (read.outcome.out?.records as Record<string, unknown>[])[0]!;
    assert.equal(rec.ioasid, 2);
    const resp = r.run({
      op: 'IOASID_FAULT_RESPOND',
      ioasid: { ref: 4 },
      cookie: { ref: 8, field: 'cookie' },
      code: 0,
    });
    assert.deepEqual(resp.outcome, { ok: true, out: { response: 'SUCCESS' } });
    assert.ok(resp.clauses.includes('FAULT-015') && resp.clauses.includes('HW-030'));
    assert.deepEqual(device(r).responses, [{ pasid: undefined, group: 2, code: 'success', auto: false }]);
    assert.equal(device(r).groups.size, 0);
    ok(r);
  });
  it('a group of two requests is delivered whole (FAULT-009) once its last request arrives', () => {
    const r = refine('rfc', [...rfcNested, pr(0x7000n, 1, 1, false), pr(0x9000n, 1, 2, true)]);
    assert.deepEqual(
      r.out.slice(-2).map((s) => s.outcome.out?.response),
      ['none', 'queued'],
    );
    r.run({ op: 'IOASID_FAULT_READ', count: 8 });
    assert.deepEqual(r.ref.driver.lastDelivered, [
      { ioasid: 2, addr: 0x7000n, perm: 1 },
      { ioasid: 2, addr: 0x9000n, perm: 2 },
    ]);
    ok(r);
  });
  it('catches a driver whose page group response never reaches the device', () => {
    const r = refine('rfc', [...rfcNested, pr(0x7000n, 2, 3), { op: 'IOASID_FAULT_READ', count: 8 }]);
    r.ref.driver.machine.pageResponse = () => false;
    const resp = r.run({
      op: 'IOASID_FAULT_RESPOND',
      ioasid: { ref: 4 },
      cookie: { ref: 8, field: 'cookie' },
      code: 0,
    });
    assert.equal(resp.violation?.clause, 'FAULT-015');
    assert.match(resp.violation.message, /no outstanding group of device 0 matched/);
  });
});

describe('FAULT-004 HW-028 a second-level fault is fixed in the kernel and never reaches the user', () => {
  it('answers SUCCESS where the kernel-managed table maps the access, INVALID elsewhere', () => {
    const r = refine('rfc', [
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
      { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
      { op: 'IOASID_MAP_DMA', ioasid: { ref: 0 }, flags: 1, vaddr: { buf: 0, off: 0n }, iova: 0x1000n, size: 0x1000n },
      pr(0x1000n, 0, 1),
      pr(0x1000n, 1, 2),
      pr(0x5000n, 2, 1),
    ]);
    assert.deepEqual(
      r.out.slice(-3).map((s) => s.outcome.out?.response),
      ['SUCCESS', 'INVALID', 'INVALID'],
    );
    assert.ok(r.out.at(-1)!.clauses.includes('FAULT-004'));
    assert.deepEqual(
      device(r).responses.map((x) => x.code),
      ['success', 'invalid', 'invalid'],
    );
    assert.equal(r.ref.driver.pendingEvents().length, 0);
    ok(r);
  });
});

describe('FAULT-006 FAULT-023 FAULT-029 groups no table handles, and groups an ending attachment leaves, are answered INVALID', () => {
  it('answers INVALID without an attachment, and at detach every group still pending', () => {
    const r = refine('rfc', [
      ...rfcNested,
      pr(0x7000n, 1, 1),
      pr(0x8000n, 2, 1),
      { op: 'IOASID_FAULT_READ', count: 1 },
    ]);
    assert.equal(r.ref.driver.pendingEvents().length, 2);
    const d = r.run({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: { ref: 4 } });
    assert.ok(d.clauses.includes('FAULT-023'), d.clauses.join());
    assert.deepEqual(
      device(r).responses.map((x) => [x.group, x.code]),
      [
        [2, 'invalid'],
        [1, 'invalid'],
      ],
    );
    const none = refine('rfc', [{ op: 'VFIO_BIND_IOASID_FD', dev: 0 }, pr(0x7000n, 3, 1)]);
    assert.deepEqual(none.out[1]!.outcome.out, { response: 'INVALID' });
    assert.ok(none.out[1]!.clauses.includes('FAULT-006'));
    assert.deepEqual(device(none).responses, [{ pasid: undefined, group: 3, code: 'invalid', auto: true }]);
    ok(r);
    ok(none);
  });
});

describe('FAULT-005 FAULT-008 FAULT-015 HW-028 HW-030 iommufd: a nested HWPT with a FAULT gets the group, and the fault fd write completes it', () => {
  const steps: Command[] = [
    { op: 'IOMMU_IOAS_ALLOC' },
    { op: 'IOMMU_FAULT_QUEUE_ALLOC' },
    { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
    { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: { ref: 2 }, pt_id: { ref: 0 }, data_type: 0 },
    {
      op: 'IOMMU_HWPT_ALLOC',
      flags: 4,
      dev_id: { ref: 2 },
      pt_id: { ref: 3 },
      data_type: 1,
      data: { flags: 0, pgtbl_addr: 0x10_0000n, addr_width: 48 },
      data_len: 24,
      fault_id: { ref: 1 },
    },
    { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 4 } },
  ];
  it('queues, reads the struct iommu_hwpt_pgfault the model returns, and answers the device', () => {
    const r = refine('iommufd', [...steps, pr(0x4000n, 5, 2)]);
    assert.deepEqual(
      r.out.map((s) => (s.outcome.ok ? 'ok' : s.outcome.errno)),
      ['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok'],
    );
    assert.deepEqual(r.out[6]!.outcome.out, { response: 'queued' });
    assert.ok(r.out[6]!.clauses.includes('FAULT-005'));
    const read = r.run({ op: 'IOMMU_FAULT_READ', fault_id: { ref: 1 }, count: 40 });
    assert.ok(read.clauses.includes('FAULT-008'));
    assert.deepEqual(r.ref.driver.lastDelivered, [
      { flags: 2, dev_id: 3, pasid: 0, grpid: 5, perm: 2, addr: 0x4000n, length: 0 },
    ]);
    r.run({ op: 'IOMMU_FAULT_RESPOND', fault_id: { ref: 1 }, cookie: { ref: 7, field: 'cookie' }, code: 1 });
    assert.deepEqual(device(r).responses, [{ pasid: undefined, group: 5, code: 'invalid', auto: false }]);
    ok(r);
  });
  it('catches a driver that does not know the HWPT reports to a FAULT object', () => {
    const r = refine('iommufd', steps);
    (r.ref.driver as unknown as { faultOf: Map<number, number> }).faultOf.clear();
    const q = r.run(pr(0x4000n, 5, 2));
    assert.equal(q.violation?.clause, 'FAULT-005');
    assert.match(q.violation.message, /the uAPI model says queued, on the hardware the group is answered INVALID/);
  });
});

describe('FAULT-003 FAULT-004 FAULT-005 FAULT-006 FAULT-007 FAULT-008 FAULT-023 HW-028 the fault path refines over generated traces', () => {
  for (const [profile, features, reach] of [
    ['rfc', ['dma-probe', 'pasid', 'nesting-hw', 'iopf', 'mdev'], ['FAULT-003', 'FAULT-004', 'FAULT-006', 'FAULT-007']],
    ['iommufd', ['dma-probe', 'nesting-hw', 'iopf'], ['FAULT-005', 'FAULT-006', 'FAULT-008', 'FAULT-023']],
  ] as [Profile, string[], string[]][]) {
    it(`${profile}: page requests, reads and responses on the hardware agree with the uAPI model`, function () {
      this.timeout(300_000);
      const platform = defaultPlatform();
      const gen = new TraceGenerator({ profile, features, platform, maxSteps: 60 });
      const hits = new Map<string, number>();
      fc.assert(
        fc.property(gen.arbitrary(), (templates) => {
          const trace = gen.realise(templates).trace;
          const model = new Model({ profile, features: new Set(features), platform });
          const ref = new TraceRefiner({ name: 'reference', profile, features, platform }, undefined);
          for (const cmd of trace.steps) {
            let res;
            try {
              res = model.step(cmd);
            } catch (e) {
              if (isModelLimit(e)) return true;
              throw e;
            }
            const rr = ref.afterStep(cmd, res.outcome, model.view);
            for (const c of rr.clauses) hits.set(c, (hits.get(c) ?? 0) + 1);
            if (rr.violation !== undefined) throw new Error(`${rr.violation.clause}: ${rr.violation.message}`);
          }
          return true;
        }),
        { seed: 7, numRuns: 150 },
      );
      assert.ok((hits.get('HW-028') ?? 0) > 50, `HW-028 reached ${hits.get('HW-028')} times`);
      for (const c of reach) assert.ok((hits.get(c) ?? 0) > 0, `reached ${c}`);
    });
  }
});

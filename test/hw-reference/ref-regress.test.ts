// Traces random refinement runs found against the reference driver, kept as regressions: each held a real driver
// defect (the hardware disagreed with the uAPI state).
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { TraceRefiner } from '../../conformance/refine.ts';

function violationsOf(features: string[], steps: Command[]): string[] {
  const platform = defaultPlatform();
  const model = new Model({ profile: 'rfc', features: new Set(features), platform });
  const ref = new TraceRefiner({ name: 'test', profile: 'rfc', features, platform }, undefined);
  const out: string[] = [];
  for (const [i, s] of steps.entries()) {
    const res = model.step(s);
    assert.ok(
      res.outcome.ok,
      `step ${i} ${s.op}: ${JSON.stringify(res.outcome, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString(16) : x))}`,
    );
    const v = ref.afterStep(s, res.outcome, model.view).violation;
    if (v !== undefined) out.push(`${v.clause}: ${v.message}`);
  }
  return out;
}

const FEATURES = ['dma-probe', 'pasid', 'pasid-global', 'pasid-virt', 'mdev', 'enqcmd'];

describe('REF-002 REF-008 a mediated device keeps its RID route when the global PASID range takes its real PASID', () => {
  it('moves the RID attachment of the mediated device off a PASID the global scheme allocates', () => {
    // The mediated device's RID attachment took the top PASID of its parent's RID; the global range is then set to
    // start there, and a PASID attachment takes that global PASID: the RID route must move, not be overwritten.
    const v = violationsOf(FEATURES, [
      { op: 'VFIO_BIND_IOASID_FD', dev: 3 },
      { op: 'IOASID_ALLOC' },
      { op: 'IOASID_SET_HWID_MODE', mode: 1 },
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: { ref: 1 } },
      { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1048575 },
      { op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: { ref: 3 }, pasid: 3 },
      { op: 'IOASID_MAP_DMA', ioasid: { ref: 1 }, flags: 2, vaddr: { buf: 0, off: 0n }, iova: 0n, size: 0x8000n },
    ]);
    assert.deepEqual(v, []);
  });
});

describe('REF-010 a CPU PASID translation keeps its real PASID across a change of the PASID scheme', () => {
  it('still delivers the PASID KVM_MAP_PASID mapped after the attachment ends and the global scheme is chosen', () => {
    const v = violationsOf(FEATURES, [
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_BIND_IOASID_FD', dev: 3 },
      { op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: { ref: 0 }, pasid: 30 },
      { op: 'KVM_MAP_PASID', user_pasid: 30, ioasid: { ref: 0 } },
      { op: 'VFIO_UNBIND_IOASID_FD', dev: 3 },
      { op: 'IOASID_SET_HWID_MODE', mode: 1 },
      { op: 'CPU_ENQCMD', dev: 0, pasid: 30 },
    ]);
    assert.deepEqual(v, []);
  });
});

describe('FAULT-009 a page group begun before its user table was bound is not compared on the hardware', () => {
  it('the first request has no PASID entry to fault on; the refinement stops comparing the fault path', () => {
    const v = violationsOf(
      ['dma-probe', 'pasid', 'nesting-hw', 'iopf'],
      [
        { op: 'IOASID_ALLOC' },
        { op: 'IOASID_CREATE_NESTING', parent: { ref: 0 }, format: 'pgtable', table_format: 'vtd-s1-4lvl' },
        { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 1 } },
        { op: 'DEVICE_PAGE_REQUEST', dev: 0, addr: 0x9549000n, grpid: 2, perm: 1, last: false },
        { op: 'IOASID_BIND_PGTABLE', ioasid: { ref: 1 }, table_format: 'vtd-s1-4lvl', root: 0xa67000n },
        { op: 'DEVICE_PAGE_REQUEST', dev: 0, addr: 0xef14000n, grpid: 2, perm: 1, last: true },
        { op: 'IOASID_FAULT_READ', count: 3 },
      ],
    );
    assert.deepEqual(v, []);
  });
});

// Step-deletion shrinking of trace files (shrinkTraceSteps): besides chunks, it removes pairs of steps that only go
// together and re-points an object reference at an object an earlier step made, so that a counterexample built
// on a HWPT shrinks to one built on the IOAS itself. Tests name the clause the buggy adapter breaks.
import { strict as assert } from 'node:assert';
import { createAdapter } from '../../conformance/adapters/registry.ts';
import { runAndCheck, shrinkTraceSteps } from '../../conformance/runner.ts';
import type { Command } from '../../src/reference/commands.ts';

describe('runner: shrinking re-points references and removes pairs of steps', () => {
  it('IOAS-014 a reservation reached through a nested HWPT shrinks to the four steps that attach to the IOAS itself', async () => {
    const allow: Command = {
      op: 'IOMMU_IOAS_ALLOW_IOVAS',
      ioas_id: { ref: 0 },
      iovas: [
        { start: 0xfedf_f000n, last: 0xfee0_0fffn },
        { start: 0xfee0_4fffn, last: 0xfee0_2fffn },
      ],
    };
    const steps: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
      { op: 'IOMMU_FAULT_QUEUE_ALLOC' },
      { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: { ref: 1 }, pt_id: { ref: 0 }, data_type: 0 },
      {
        op: 'IOMMU_HWPT_ALLOC',
        flags: 4,
        dev_id: { ref: 1 },
        pt_id: { ref: 3 },
        data_type: 1,
        data: { flags: 0, pgtbl_addr: 0x1_0000_0000n, addr_width: 48 },
        data_len: 24,
        fault_id: { ref: 2 },
      },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 1 },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 1, pt_id: { ref: 4 } },
      allow,
    ];
    const buggy = createAdapter('buggy-allow-iovas-reserved-first');
    const caps = await buggy.open();
    const first = await runAndCheck(buggy, caps, steps);
    assert.equal(first.failure?.step, 7, first.failure?.message);
    const r = await shrinkTraceSteps(buggy, caps, steps, first.failure, 500);
    assert.deepEqual(r.steps, [
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 1 },
      { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 1, pt_id: { ref: 0 } },
      allow,
    ]);
    const onRef = await runAndCheck(createAdapter('reference'), caps, r.steps);
    assert.equal(onRef.failure, undefined);
  });
});

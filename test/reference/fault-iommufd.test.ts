// Chapter FAULT in the iommufd profile: FAULT objects, the fault fd, routing of page requests to nested HWPTs,
// reading and answering page groups, and the automatic answers at detach and destroy.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { TraceGenerator } from '../../generators/trace.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { Fd, IOMMUFD_FEATURES, records } from './iommufd-fixtures.ts';

describe('FAULT in iommufd', () => {
  describe('FAULT-001 a page request is routed by RID (and PASID) to the table attached', () => {
    it('a request of a device attached to a fault-capable nested HWPT is queued; one of another device is not', () => {
      const f = new Fd();
      const s = f.faultSetup();
      assert.equal(f.response(f.pr(0, 1)), 'queued');
      f.bind(1);
      f.ok({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 1, pt_id: s.ioas });
      assert.equal(f.response(f.pr(1, 1)), 'INVALID');
      assert.deepEqual(
        f
          .state()
          .get(s.fault, 'fault')!
          .queue.deliver.map((g) => g.dev),
        [0],
      );
    });
    it('a PASID-tagged request finds no handler on VT-d and is answered INVALID', () => {
      const f = new Fd();
      const s = f.faultSetup();
      assert.equal(f.response(f.pr(0, 1, true, 0x4000n, 1, 5)), 'INVALID');
      assert.equal(f.state().get(s.fault, 'fault')!.queue.pending, 0);
    });
    it('a device without PRI cannot issue a page request (malformed harness step)', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'DEVICE_PAGE_REQUEST', dev: 2, addr: 0n, grpid: 0, perm: 1, last: true }), 'EINVAL');
    });
  });

  describe('FAULT-002 FAULT-005 groups are queued on the FAULT of the HWPT that faulted, whatever level missed', () => {
    it('groups of two devices on one nested HWPT share its queue; nothing in the parent is examined', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.bind(1);
      f.attach(1, s.nested);
      // Nothing is mapped in the parent IOAS: a stage-2 miss is still reported (FAULT-005).
      assert.equal(f.response(f.pr(0, 0)), 'queued');
      assert.equal(f.response(f.pr(1, 0)), 'queued');
      const q = f.state().get(s.fault, 'fault')!.queue;
      assert.deepEqual(
        q.deliver.map((g) => [g.dev, g.table]),
        [
          [0, s.nested],
          [1, s.nested],
        ],
      );
    });
  });

  describe('FAULT-006 a request no table handles is answered INVALID and reported to no one', () => {
    it('unattached, attached to a paging HWPT, attached to a nested HWPT without FAULT', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const fault = f.faultQueue();
      assert.equal(f.response(f.pr(0, 0)), 'INVALID');
      f.attach(0, ioas);
      assert.equal(f.response(f.pr(0, 0)), 'INVALID');
      const parent = f.paging(dev, ioas, 1);
      const plain = f.nested(dev, parent);
      f.attach(0, plain);
      assert.equal(f.response(f.pr(0, 0)), 'INVALID');
      assert.equal(f.state().get(fault, 'fault')!.queue.pending, 0);
      assert.deepEqual(f.pri(), { raised: 3, answered: 3, pending: 0 });
    });
    it('in vfio-type1 every request is answered INVALID', () => {
      const f = new Fd('vfio-type1', ['dma-probe']);
      f.ok({ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 });
      f.ok({ op: 'VFIO_SET_IOMMU', type: 3 });
      assert.equal(f.response(f.pr(0, 2)), 'INVALID');
      assert.equal(f.response(f.pr(0, 2, false)), 'INVALID');
      assert.deepEqual(f.pri(), { raised: 2, answered: 2, pending: 0 });
    });
  });

  describe('FAULT-008 a record carries the request and the device ID, length 0, the group cookie', () => {
    it('flags, dev_id, pasid, grpid, perm, addr, length, cookie', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 7, true, 0x9000n, 3);
      const r = records(f.read(s.fault, 40));
      assert.deepEqual(r, [
        { flags: 2, dev_id: s.dev, pasid: 0, grpid: 7, perm: 3, addr: 0x9000n, length: 0, cookie: 1 },
      ]);
    });
  });

  describe('FAULT-009 a page group is delivered whole, only once its last request arrived', () => {
    it('requests before the last are not readable; the group reads as all its records with one cookie', () => {
      const f = new Fd();
      const s = f.faultSetup();
      assert.equal(f.response(f.pr(0, 3, false, 0x1000n)), 'none');
      assert.equal(f.response(f.pr(0, 3, false, 0x2000n)), 'none');
      const empty = f.read(s.fault, 120);
      assert.ok(empty.ok);
      assert.equal(empty.out?.bytes, 0);
      assert.equal(f.response(f.pr(0, 3, true, 0x3000n)), 'queued');
      const r = records(f.read(s.fault, 120));
      assert.deepEqual(
        r.map((x) => [x.addr, x.flags, x.cookie]),
        [
          [0x1000n, 0, 1],
          [0x2000n, 0, 1],
          [0x3000n, 2, 1],
        ],
      );
    });
  });

  describe('FAULT-010 groups are read once, in arrival order of their last requests', () => {
    it('FIFO by last request; a read group is never returned again', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 1, false, 0x1000n);
      f.pr(0, 2, true, 0x2000n);
      f.pr(0, 1, true, 0x3000n);
      const first = records(f.read(s.fault, 40));
      assert.deepEqual(
        first.map((x) => x.grpid),
        [2],
      );
      const second = records(f.read(s.fault, 80));
      assert.deepEqual(
        second.map((x) => x.grpid),
        [1, 1],
      );
      const again = f.read(s.fault, 400);
      assert.equal(again.ok && again.out?.bytes, 0);
      assert.equal(f.state().get(s.fault, 'fault')!.queue.response.size, 2);
    });
  });

  describe('FAULT-011 a read with nothing queued returns at once with 0 bytes', () => {
    it('0 bytes, no records', () => {
      const f = new Fd();
      const s = f.faultSetup();
      const o = f.read(s.fault, 40);
      assert.deepEqual(o, { ok: true, out: { bytes: 0, records: [], cookie: 0 } });
    });
  });

  describe('FAULT-012 a read must ask for whole 40-byte records at position 0', () => {
    it('ESPIPE for count 20 or pos 40, the group staying queued', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 0);
      assert.equal(f.err({ op: 'IOMMU_FAULT_READ', fault_id: s.fault, count: 20 }), 'ESPIPE');
      assert.equal(f.err({ op: 'IOMMU_FAULT_READ', fault_id: s.fault, count: 40, pos: 40 }), 'ESPIPE');
      assert.equal(f.state().get(s.fault, 'fault')!.queue.deliver.length, 1);
    });
  });

  describe('FAULT-013 a buffer too small for the first group is EINVAL, a later group stays queued', () => {
    it('EINVAL with the group kept; a read holding one group of two returns it and leaves the other', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 0, false);
      f.pr(0, 0, true);
      f.pr(0, 1, true);
      assert.equal(f.result({ op: 'IOMMU_FAULT_READ', fault_id: s.fault, count: 40 }), 'EINVAL');
      assert.equal(f.state().get(s.fault, 'fault')!.queue.deliver.length, 2);
      const o = f.read(s.fault, 80);
      assert.equal(o.ok && o.out?.bytes, 80);
      assert.equal(f.state().get(s.fault, 'fault')!.queue.deliver.length, 1);
    });
  });

  describe('FAULT-014 iommufd sets no queue limit: every group is queued', () => {
    it('64 groups pending, all queued', () => {
      const f = new Fd();
      const s = f.faultSetup();
      for (let g = 0; g < 64; g++) assert.equal(f.response(f.pr(0, g % 512)), 'queued');
      assert.equal(f.state().get(s.fault, 'fault')!.queue.deliver.length, 64);
    });
  });

  describe('FAULT-015 FAULT-029 a response answers the group it names, exactly once', () => {
    it('SUCCESS answers the group: raised = answered, nothing pending', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 4);
      const cookie = f.read(s.fault, 40);
      assert.ok(cookie.ok);
      assert.deepEqual(f.pri(), { raised: 1, answered: 0, pending: 1 });
      assert.deepEqual(f.respond(s.fault, cookie.out?.cookie as number, 0), { ok: true, out: { bytes: 8 } });
      assert.deepEqual(f.pri(), { raised: 1, answered: 1, pending: 0 });
    });
  });

  describe('FAULT-016 only SUCCESS (0) and INVALID (1) are accepted', () => {
    it('FAILURE (2) and 7 give EINVAL, the group staying pending', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 4);
      f.read(s.fault, 40);
      assert.equal(f.respond(s.fault, 1, 2).ok ? 'ok' : 'EINVAL', 'EINVAL');
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 7 }), 'EINVAL');
      assert.equal(f.state().get(s.fault, 'fault')!.queue.response.size, 1);
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 1 }), 'ok');
    });
  });

  describe('FAULT-018 a cookie awaiting no response is rejected with EINVAL', () => {
    it('never issued, already answered, answered at detach', () => {
      const f = new Fd();
      const s = f.faultSetup();
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 9, code: 0 }), 'EINVAL');
      f.pr(0, 4);
      f.read(s.fault, 40);
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 0 }), 'ok');
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 0 }), 'EINVAL');
      f.pr(0, 5);
      f.read(s.fault, 40);
      f.ok({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 });
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 0 }), 'EINVAL');
      assert.deepEqual(f.pri(), { raised: 2, answered: 2, pending: 0 });
    });
  });

  describe('FAULT-021 a write must carry whole 8-byte responses at position 0', () => {
    it('ESPIPE for count 12 or pos 8, nothing answered', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 4);
      f.read(s.fault, 40);
      const base = { op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 0 } as const;
      assert.equal(f.err({ ...base, count: 12 }), 'ESPIPE');
      assert.equal(f.err({ ...base, pos: 8 }), 'ESPIPE');
      assert.equal(f.pri().pending, 1);
    });
  });

  describe('FAULT-022 a write answers in order up to the first bad response', () => {
    it('a good then a bad response: 8 bytes, the first answered; a bad first one: its error', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 1);
      f.pr(0, 2);
      f.read(s.fault, 40);
      f.read(s.fault, 40);
      const o = f.step({
        op: 'IOMMU_FAULT_RESPOND',
        fault_id: s.fault,
        cookie: 1,
        code: 0,
        more: [{ cookie: 2, code: 2 }],
      });
      assert.deepEqual(o, { ok: true, out: { bytes: 8 } });
      assert.deepEqual([...f.state().get(s.fault, 'fault')!.queue.response.keys()], [2]);
      // A count past the responses given reads unfilled memory: EFAULT after the first.
      const o2 = f.step({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 2, code: 1, count: 16 });
      assert.deepEqual(o2, { ok: true, out: { bytes: 8 } });
      assert.equal(f.result({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 3, code: 0, count: 16 }), 'EINVAL');
    });
  });

  describe('FAULT-023 ending an attachment answers its pending groups INVALID', () => {
    it('detach, replace and close answer queued and read groups of that device only', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.bind(1);
      f.attach(1, s.nested);
      f.pr(0, 1);
      f.pr(1, 1);
      f.pr(0, 2);
      f.read(s.fault, 40);
      f.ok({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 });
      const q = f.state().get(s.fault, 'fault')!.queue;
      assert.deepEqual(
        [...q.deliver, ...[...q.response.values()].map((a) => a.group)].map((g) => g.dev),
        [1],
      );
      assert.ok(f.clauses().includes('FAULT-023'));
      // Replace device 1 onto the IOAS: its group is answered too.
      f.ok({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 1, pt_id: s.ioas });
      assert.deepEqual(f.pri(), { raised: 3, answered: 3, pending: 0 });
      // Close: a device attached again raises a group, then closes.
      f.attach(0, s.nested);
      f.pr(0, 9);
      f.ok({ op: 'VFIO_DEVICE_CLOSE', dev: 0 });
      assert.deepEqual(f.pri(), { raised: 4, answered: 4, pending: 0 });
    });
  });

  describe('FAULT-024 FD-014 a FAULT object in use cannot be destroyed', () => {
    it('EBUSY while the fd is open or a HWPT reports to it; then destroyed, its ID free', () => {
      const f = new Fd();
      const s = f.faultSetup();
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: s.fault }), 'EBUSY');
      f.ok({ op: 'IOMMU_FAULT_CLOSE', fault_id: s.fault });
      assert.equal(f.err({ op: 'IOMMU_DESTROY', id: s.fault }), 'EBUSY');
      f.ok({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 });
      f.ok({ op: 'IOMMU_DESTROY', id: s.nested });
      f.ok({ op: 'IOMMU_DESTROY', id: s.fault });
      assert.equal(f.state().objects.has(s.fault), false);
      assert.equal(f.faultQueue(), s.fault);
    });
  });

  describe('FAULT-025 IOMMU_FAULT_QUEUE_ALLOC', () => {
    it('flags must be 0 (EOPNOTSUPP, no object); otherwise a FAULT object with an open fd', () => {
      const f = new Fd();
      assert.equal(f.err({ op: 'IOMMU_FAULT_QUEUE_ALLOC', flags: 1 }), 'EOPNOTSUPP');
      assert.equal(f.objects(), '');
      const id = f.faultQueue();
      assert.equal(id, 1);
      assert.equal(f.state().get(1, 'fault')!.fdOpen, true);
    });
  });

  describe('FAULT-026 a fault-capable HWPT must be nested', () => {
    it('FAULT_ID_VALID with pt_id an IOAS: EOPNOTSUPP, with or without NEST_PARENT, before fault_id is looked up', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      for (const flags of [4, 5])
        assert.equal(
          f.err({ op: 'IOMMU_HWPT_ALLOC', flags, dev_id: dev, pt_id: ioas, data_type: 0, fault_id: 999 }),
          'EOPNOTSUPP',
        );
      assert.equal(f.objects(), '1:ioas,2:device');
    });
  });

  describe('FAULT-027 fault_id must name a FAULT object', () => {
    it('ENOENT for a missing ID or an IOAS, and no nested HWPT remains', () => {
      const f = new Fd();
      const ioas = f.ioas();
      const dev = f.bind(0);
      const parent = f.paging(dev, ioas, 1);
      assert.equal(f.err(f.nestedCmd(dev, parent, 77)), 'ENOENT');
      assert.equal(f.err(f.nestedCmd(dev, parent, ioas)), 'ENOENT');
      assert.equal(f.objects(), '1:ioas,2:device,3:hwpt-paging');
      assert.equal(f.state().get(parent, 'hwpt-paging')!.children, 0);
    });
  });

  describe('FAULT-030 a closed fault fd accepts nothing', () => {
    it('EBADF for read, write and close after close, and for an ID that is no FAULT', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.pr(0, 1);
      f.ok({ op: 'IOMMU_FAULT_CLOSE', fault_id: s.fault });
      assert.equal(f.err({ op: 'IOMMU_FAULT_READ', fault_id: s.fault, count: 40 }), 'EBADF');
      assert.equal(f.err({ op: 'IOMMU_FAULT_RESPOND', fault_id: s.fault, cookie: 1, code: 0 }), 'EBADF');
      assert.equal(f.err({ op: 'IOMMU_FAULT_CLOSE', fault_id: s.fault }), 'EBADF');
      assert.equal(f.err({ op: 'IOMMU_FAULT_READ', fault_id: s.ioas, count: 40 }), 'EBADF');
      // The group stays pending on the object (answered at detach, FAULT-023).
      assert.equal(f.pri().pending, 1);
    });
  });

  describe('FAULT-031 a device without PRI or ATS cannot use a fault-capable HWPT', () => {
    it('ENODEV, the attachment unchanged', () => {
      const f = new Fd();
      const s = f.faultSetup();
      f.bind(2);
      // dev2 shares group 2 with dev1 and has no PRI.
      assert.equal(f.err({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 2, pt_id: s.nested }), 'ENODEV');
      assert.equal(f.state().devices[2]!.hwpt, 0);
      assert.equal(f.state().get(s.nested, 'hwpt-nested')!.devices, 1);
    });
  });
});

describe('FAULT-029 FAULT-018 every page group is answered exactly once, over generated traces', () => {
  it('raised = answered + pending after every step; cookies are unique per queue; 30 traces of up to 150 steps', () => {
    const gen = new TraceGenerator({
      profile: 'iommufd',
      features: IOMMUFD_FEATURES,
      platform: defaultPlatform(),
      maxSteps: 150,
      weights: { 'iommufd.page-request': 3, 'iommufd.fault-read': 2, 'iommufd.fault-respond': 2 },
    });
    let answeredByUser = 0;
    let answeredByTeardown = 0;
    fc.assert(
      fc.property(gen.arbitrary(), (templates) => {
        const { trace } = gen.realise(templates);
        const f = new Fd();
        for (const c of trace.steps) {
          const before = f.pri();
          f.step(c);
          const after = f.pri();
          assert.equal(after.raised, after.answered + after.pending, `after ${c.op}`);
          assert.ok(after.answered >= before.answered, 'a response was taken back');
          if (after.answered > before.answered && c.op === 'IOMMU_FAULT_RESPOND') answeredByUser++;
          if (after.answered > before.answered && (c.op.startsWith('VFIO_DEVICE') || c.op === 'IOMMU_DESTROY'))
            answeredByTeardown++;
          for (const o of f.state().objects.values())
            if (o.kind === 'fault') {
              const groups = [...o.queue.deliver, ...[...o.queue.response.values()].map((a) => a.group)];
              assert.equal(new Set(groups.map((g) => g.seq)).size, groups.length, 'a group queued twice');
            }
        }
      }),
      { numRuns: 30, seed: 29 },
    );
    // The property is only meaningful if the traces answered groups both ways.
    assert.ok(answeredByUser > 0, 'no user response in the generated traces');
    assert.ok(answeredByTeardown > 0, 'no teardown response in the generated traces');
  });
});

// Chapter FAULT in the rfc profile: page requests routed to the IOASID whose table faulted, IOASID_FAULT_READ records
// per address space, IOASID_FAULT_RESPOND, the kernel's own answers, and teardown.
import { strict as assert } from 'node:assert';
import type { Command, Outcome } from '../../src/reference/commands.ts';
import { RFC_FAULT_QUEUE_DEPTH } from '../../src/reference/fault.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { Rfc, rfcPlatform } from './rfc-fixtures.ts';

const FEATURES = ['dma-probe', 'iopf', 'mdev', 'nesting-hw', 'nesting-sw', 'pasid'];

/**
 * IOASID 1 (kernel-managed) with device `dev` attached by RID, and IOASID 2, a pgtable child, attached on top: the
 * RID's faults go to IOASID 2.
 */
function nested(dev = 0, platform: Platform = rfcPlatform()): Rfc {
  const r = new Rfc(FEATURES, platform);
  r.step({ op: 'IOASID_ALLOC' });
  r.step({ op: 'VFIO_BIND_IOASID_FD', dev });
  r.step({ op: 'VFIO_ATTACH_IOASID', dev, ioasid: 1 });
  r.step({ op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pgtable', table_format: 'vtd-s1-4lvl' });
  const o = r.step({ op: 'VFIO_ATTACH_IOASID', dev, ioasid: 2 });
  assert.ok(o.ok, 'fixture: attach to the pgtable child');
  return r;
}

function pr(r: Rfc, dev: number, grpid: number, last = true, addr = 0x4000n, perm = 1): string {
  const o: Outcome = r.step({ op: 'DEVICE_PAGE_REQUEST', dev, addr, grpid, perm, last });
  assert.ok(o.ok, 'page request refused');
  return o.out?.response as string;
}
const read = (r: Rfc, count: number) => r.step({ op: 'IOASID_FAULT_READ', count });
const respond = (r: Rfc, ioasid: number, cookie: number, code = 0) =>
  r.step({ op: 'IOASID_FAULT_RESPOND', ioasid, cookie, code });
const errno = (o: Outcome) => (o.ok ? 'ok' : o.errno);
function pri(r: Rfc) {
  const st = r.model.snapshot().state;
  return { raised: st.pri.raised, answered: st.pri.answered, pending: st.rfcFaults.pending };
}

describe('FAULT in rfc', () => {
  describe('FAULT-001 FAULT-002 FAULT-003 a first-level fault is queued under the IOASID that faulted', () => {
    it('the RID routes to the pgtable child; the record names IOASID 2', () => {
      const r = nested();
      assert.equal(pr(r, 0, 1), 'queued');
      const o = read(r, 4);
      assert.ok(o.ok);
      assert.deepEqual(o.out?.records, [{ ioasid: 2, addr: 0x4000n, perm: 1, cookie: 1 }]);
    });
  });

  describe('FAULT-004 a second-level fault stays in the kernel', () => {
    it('on a kernel-managed IOASID: SUCCESS when mapped with the access, INVALID otherwise, never queued', () => {
      const r = new Rfc(FEATURES);
      r.step({ op: 'IOASID_ALLOC' });
      r.step({ op: 'VFIO_BIND_IOASID_FD', dev: 0 });
      r.step({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 });
      r.step({ op: 'IOASID_MAP_DMA', ioasid: 1, flags: 1, vaddr: { buf: 0, off: 0n }, iova: 0x10000n, size: 0x1000n });
      assert.equal(pr(r, 0, 0, true, 0x10000n, 1), 'SUCCESS');
      assert.equal(pr(r, 0, 0, true, 0x10000n, 3), 'INVALID');
      assert.equal(pr(r, 0, 0, true, 0x20000n, 1), 'INVALID');
      assert.deepEqual(pri(r), { raised: 3, answered: 3, pending: 0 });
    });
  });

  describe('FAULT-006 a request with no attachment is answered INVALID', () => {
    it('an unbound device and a PASID nothing is attached to', () => {
      const r = nested();
      r.step({ op: 'VFIO_BIND_IOASID_FD', dev: 1 });
      assert.equal(pr(r, 1, 0), 'INVALID');
      const o = r.step({ op: 'DEVICE_PAGE_REQUEST', dev: 0, addr: 0n, grpid: 0, perm: 1, last: true, pasid: 9 });
      assert.deepEqual(o, { ok: true, out: { response: 'INVALID' } });
      assert.equal(pri(r).pending, 0);
    });
  });

  describe('FAULT-007 a record is (IOASID, address, access, cookie), no RID or PASID', () => {
    it('exactly these fields', () => {
      const r = nested();
      pr(r, 0, 3, true, 0x7000n, 3);
      const o = read(r, 1);
      assert.ok(o.ok);
      assert.deepEqual(Object.keys((o.out?.records as object[])[0]!).sort(), ['addr', 'cookie', 'ioasid', 'perm']);
    });
  });

  describe('FAULT-009 FAULT-010 FAULT-011 groups are delivered whole, once, in order; an empty read returns at once', () => {
    it('partial requests wait for the last; FIFO; a second read finds nothing', () => {
      const r = nested();
      assert.equal(pr(r, 0, 1, false, 0x1000n), 'none');
      assert.deepEqual(read(r, 8), { ok: true, out: { count: 0, records: [], cookie: 0 } });
      pr(r, 0, 2, true, 0x2000n);
      pr(r, 0, 1, true, 0x3000n);
      const o = read(r, 8);
      assert.ok(o.ok);
      assert.deepEqual(
        (o.out?.records as { addr: bigint; cookie: number }[]).map((x) => [x.addr, x.cookie]),
        [
          [0x2000n, 1],
          [0x1000n, 2],
          [0x3000n, 2],
        ],
      );
      assert.deepEqual(read(r, 8), { ok: true, out: { count: 0, records: [], cookie: 0 } });
    });
  });

  describe('FAULT-013 a buffer too small for the first group is EINVAL', () => {
    it('a two-record group with room for one: EINVAL, still queued', () => {
      const r = nested();
      pr(r, 0, 1, false);
      pr(r, 0, 1, true);
      assert.equal(errno(read(r, 1)), 'EINVAL');
      assert.equal(pri(r).pending, 1);
      assert.equal(errno(read(r, 2)), 'ok');
    });
  });

  describe('FAULT-014 an overflowing queue is answered SUCCESS by the kernel', () => {
    it(`past ${RFC_FAULT_QUEUE_DEPTH} pending groups the device gets SUCCESS and nothing is queued`, () => {
      const r = nested();
      for (let g = 0; g < RFC_FAULT_QUEUE_DEPTH; g++) assert.equal(pr(r, 0, g), 'queued');
      assert.equal(pr(r, 0, 99), 'SUCCESS');
      assert.deepEqual(pri(r), { raised: RFC_FAULT_QUEUE_DEPTH + 1, answered: 1, pending: RFC_FAULT_QUEUE_DEPTH });
    });
  });

  describe('FAULT-015 FAULT-029 a response completes its group exactly once', () => {
    it('SUCCESS reaches the device; the books balance', () => {
      const r = nested();
      pr(r, 0, 1);
      read(r, 1);
      assert.deepEqual(respond(r, 2, 1, 0), { ok: true, out: { response: 'SUCCESS' } });
      assert.deepEqual(pri(r), { raised: 1, answered: 1, pending: 0 });
    });
  });

  describe('FAULT-016 the code must be SUCCESS, INVALID or FAILURE', () => {
    it('code 3: EINVAL, the group pending', () => {
      const r = nested();
      pr(r, 0, 1);
      read(r, 1);
      assert.equal(errno(respond(r, 2, 1, 3)), 'EINVAL');
      assert.equal(pri(r).pending, 1);
    });
  });

  describe('FAULT-017 a user FAILURE never reaches a shared PRI', () => {
    it('dev0 (parent of mdev0): INVALID sent; dev1 of the default platform (no mediated child): FAILURE sent', () => {
      const r = nested(0);
      pr(r, 0, 1);
      read(r, 1);
      assert.deepEqual(respond(r, 2, 1, 2), { ok: true, out: { response: 'INVALID' } });
      const s = nested(1, defaultPlatform());
      pr(s, 1, 1);
      read(s, 1);
      assert.deepEqual(respond(s, 2, 1, 2), { ok: true, out: { response: 'FAILURE' } });
    });
  });

  describe('FAULT-018 a cookie awaiting no response is ENOENT, nothing sent', () => {
    it('never read, answered twice', () => {
      const r = nested();
      pr(r, 0, 1);
      assert.equal(errno(respond(r, 2, 1)), 'ENOENT');
      read(r, 1);
      assert.equal(errno(respond(r, 2, 1)), 'ok');
      assert.equal(errno(respond(r, 2, 1)), 'ENOENT');
      assert.deepEqual(pri(r), { raised: 1, answered: 1, pending: 0 });
    });
  });

  describe('FAULT-019 a fault belongs to exactly one IOASID', () => {
    it('a response naming the parent IOASID for a group of the child: ENOENT, the group pending', () => {
      const r = nested();
      pr(r, 0, 1);
      read(r, 1);
      assert.equal(errno(respond(r, 1, 1)), 'ENOENT');
      assert.equal(pri(r).pending, 1);
    });
  });

  describe('FAULT-020 check order: IOASID, code, cookie', () => {
    it('unknown IOASID ENOENT before a bad code; a bad code EINVAL before an unknown cookie', () => {
      const r = nested();
      assert.equal(errno(respond(r, 77, 99, 9)), 'ENOENT');
      assert.equal(errno(respond(r, 2, 99, 9)), 'EINVAL');
      assert.equal(errno(respond(r, 2, 99, 0)), 'ENOENT');
    });
  });

  describe('FAULT-023 ending an attachment answers its pending groups', () => {
    it('detaching the child answers its queued and read groups INVALID; their cookies become unknown', () => {
      const r = nested();
      pr(r, 0, 1);
      pr(r, 0, 2);
      read(r, 1);
      const d: Command = { op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: 2 };
      assert.equal(errno(r.step(d)), 'ok');
      assert.deepEqual(pri(r), { raised: 2, answered: 2, pending: 0 });
      assert.equal(errno(respond(r, 2, 1)), 'ENOENT');
    });
    it('unbinding the device answers them too', () => {
      const r = nested();
      pr(r, 0, 1);
      assert.equal(errno(r.step({ op: 'VFIO_UNBIND_IOASID_FD', dev: 0 })), 'ok');
      assert.deepEqual(pri(r), { raised: 1, answered: 1, pending: 0 });
    });
  });
});

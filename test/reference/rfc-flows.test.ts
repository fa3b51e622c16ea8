// The sample flows of the /dev/ioasid RFC (Kevin Tian, 27 May 2021, §5) and of seed 004, end to end on the rfc model:
// every step's outcome is asserted, and the DMA a device can do at the end of each phase.
import { strict as assert } from 'node:assert';
import { isModelLimit } from '../../src/reference/model.ts';
import { BASE, P, PGTABLE, Rfc } from './rfc-fixtures.ts';

const GPA = 0x8000_0000n;
const GIOVA = 0x4000_0000n;

describe('rfc sample flows', () => {
  it('type1-equivalent passthrough (IOAS-001 DEV-005 INFO-004 MAP-001 MAP-028 FD-017 FD-018)', () => {
    const fx = new Rfc();
    const gpa = fx.alloc();
    fx.bind(0);
    fx.fails({ op: 'IOASID_GET_INFO', ioasid: gpa }, 'ENODEV', 'INFO-003');
    assert.ok(fx.attach(0, gpa).ok);
    const info = fx.ok({ op: 'IOASID_GET_INFO', ioasid: gpa });
    assert.equal(info.format, 'kernel');
    assert.ok(fx.map(gpa, GPA, 16n * P, { off: 0n }).ok);
    assert.equal(fx.reach(0, GPA + 5n * P + 8n, { write: true }), 'buf0+0x5008');
    const u = fx.unmap(gpa, GPA, 16n * P);
    assert.equal(u.ok && u.out!.size, 16n * P);
    assert.equal(fx.reach(0, GPA), 'fault:not-present');
    fx.fails({ op: 'IOASID_FREE', ioasid: gpa }, 'EBUSY', 'FD-017');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: gpa });
    fx.ok({ op: 'IOASID_FREE', ioasid: gpa });
    assert.equal(fx.reach(0, GPA), 'fault:blocked');
  });

  it('hardware nesting for gIOVA (NEST-001 NEST-003 BIND-001 BIND-007 INV-005 BIND-009)', () => {
    const fx = new Rfc();
    const gpa = fx.readyRoot(0);
    assert.ok(fx.map(gpa, GPA, 256n * P, { off: 0n }).ok);
    const giova = fx.nest(gpa, 'pgtable');
    // The guest's vIOMMU page table root lives at a GPA.
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: giova, table_format: PGTABLE, root: GPA }, 'ENODEV');
    assert.ok(fx.attach(0, giova).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: giova, table_format: PGTABLE, root: GPA });
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: giova, granularity: 1, start: GIOVA, size: 4n * P });
    fx.fails(fx.mapCmd(giova, GIOVA, P), 'EINVAL', 'FMT-002');
    // The GPA space stays kernel-managed under the guest table.
    assert.ok(fx.map(gpa, GPA + 256n * P, P, { off: 0x10_0000n }).ok);
    assert.throws(() => fx.dma(0, GIOVA), isModelLimit);
    fx.fails({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: gpa }, 'EBUSY', 'DEV-011');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: giova });
    fx.ok({ op: 'IOASID_FREE', ioasid: giova });
    assert.equal(fx.reach(0, GPA + 8n), 'buf0+0x8');
  });

  it('software nesting (NEST-007 NEST-008 NEST-009 NEST-010 NEST-012 MEM-008)', () => {
    const fx = new Rfc();
    const gpa = fx.readyRoot(0);
    assert.ok(fx.map(gpa, GPA, 16n * P, { off: 0n }).ok);
    const locked = fx.locked;
    const giova = fx.nest(gpa, 'kernel');
    assert.ok(fx.attach(0, giova).ok);
    // The guest maps GIOVA → GPA; the kernel shadows GIOVA → HPA.
    assert.ok(fx.mapChild(giova, GIOVA, GPA + 4n * P, 2n * P).ok);
    fx.fails(
      { op: 'IOASID_MAP_DMA', ioasid: giova, flags: 3, vaddr: { iova: GPA + 32n * P }, iova: GIOVA + 8n * P, size: P },
      'ENOENT',
      'NEST-008',
    );
    assert.equal(fx.locked, locked);
    assert.equal(fx.reach(0, GIOVA + P + 8n), 'buf0+0x5008');
    assert.ok(fx.unmap(gpa, GPA, 16n * P).ok);
    assert.equal(fx.reach(0, GIOVA), 'fault:not-present');
    assert.ok(fx.map(gpa, GPA + 4n * P, 2n * P, { off: 0x30_0000n }).ok);
    assert.equal(fx.reach(0, GIOVA), 'buf0+0x300000');
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: giova, granularity: 0 });
  });

  it('vSVA on a physical device (PASID-003 PASID-005 NEST-003 BIND-007 INV-005)', () => {
    const fx = new Rfc();
    const gpa = fx.readyRoot(0);
    assert.ok(fx.map(gpa, GPA, 64n * P, { off: 0n }).ok);
    const gva = fx.nest(gpa, 'pgtable');
    // The guest binds process address space PASID 12 to its first-level table.
    assert.ok(fx.attach(0, gva, 12).ok);
    assert.equal(fx.real(0, 12), 12);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: gva, table_format: PGTABLE, root: GPA + 8n * P });
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: gva, granularity: 0 });
    // Requests without PASID still use the GPA space; ENQCMD to the delegated device is not translated.
    assert.equal(fx.reach(0, GPA + 8n), 'buf0+0x8');
    assert.throws(() => fx.dma(0, 0x1000n, { pasid: 12 }), isModelLimit);
    assert.equal(fx.enqcmd(0, 12), 12);
  });

  it('vSVA on an ENQCMD mediated device (PASID-006 PASID-021 PASID-022 PASID-024)', () => {
    const fx = new Rfc();
    fx.bind(3);
    const gpa = fx.alloc();
    assert.ok(fx.attach(3, gpa).ok);
    assert.ok(fx.map(gpa, GPA, 64n * P, { off: 0n }).ok);
    const gva = fx.nest(gpa, 'pgtable');
    assert.ok(fx.attach(3, gva, 12).ok);
    const real = fx.real(3, 12)!;
    assert.notEqual(real, undefined);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: gva, table_format: PGTABLE, root: GPA });
    // The guest process's PASID in its MSR is virtual; KVM programs the CPU translation to the real one.
    assert.equal(fx.enqcmd(3, 12), 'fault:no-translation');
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 12, ioasid: gpa }, 'ENOENT', 'PASID-021');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 12, ioasid: gva });
    assert.equal(fx.enqcmd(3, 12), real);
    fx.ok({ op: 'KVM_UNMAP_PASID', user_pasid: 12 });
    assert.equal(fx.enqcmd(3, 12), 'fault:no-translation');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 3, ioasid: gva, pasid: 12 });
    assert.equal(fx.state.rfcx.kpasids.size, 0);
  });

  it('several IOASIDs (DEV-006 MAP-001 MEM-001 FD-004)', () => {
    const fx = new Rfc();
    const a = fx.readyRoot(0);
    const b = fx.readyRoot(1, 2);
    assert.deepEqual([a, b], [1, 2]);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: b }, 'EBUSY', 'DEV-006');
    // Pre-registration lets both spaces map one buffer with a single accounting.
    fx.ok({ op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: 1, off: 0n }, size: 1n << 20n });
    assert.ok(fx.map(a, BASE, 4n * P, { buf: 1, off: 0n }).ok);
    assert.ok(fx.map(b, BASE, 4n * P, { buf: 1, off: 4n * P }).ok);
    assert.equal(fx.locked, 256n);
    assert.equal(fx.reach(0, BASE), 'buf1+0x0');
    assert.equal(fx.reach(1, BASE), 'buf1+0x4000');
    assert.ok(fx.unmap(a, BASE, 4n * P).ok);
    assert.equal(fx.reach(0, BASE), 'fault:not-present');
    assert.equal(fx.reach(2, BASE), 'buf1+0x4000');
  });

  it('the global PASID scheme with two devices sharing one local PASID (PASID-013 PASID-014 PASID-015 PASID-017 PASID-022)', () => {
    const fx = new Rfc();
    const gpa = fx.readyRoot(0, 1, 2);
    assert.ok(fx.map(gpa, GPA, 16n * P, { off: 0n }).ok);
    const other = fx.alloc();
    fx.global(1024);
    fx.bind(3);
    // One guest process, PASID 5, bound to a physical device and an mdev.
    assert.ok(fx.attach(0, gpa, 5).ok);
    assert.ok(fx.attach(3, gpa, 5).ok);
    const g = fx.real(0, 5)!;
    assert.ok(g >= 1024);
    assert.equal(fx.real(3, 5), g);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: other, pasid: 5 }, 'EBUSY', 'PASID-015');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: gpa, pasid: 1024 }, 'EINVAL', 'PASID-013');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: gpa });
    assert.equal(fx.enqcmd(0, 5), g);
    assert.equal(fx.enqcmd(3, 5), g);
    assert.equal(fx.reach(0, GPA, { pasid: 5 }), 'buf0+0x0');
    assert.equal(fx.reach(0, GPA, { pasid: g }), 'buf0+0x0');
    assert.equal(fx.reach(3, GPA, { pasid: 5 }), 'buf0+0x0');
    assert.equal(fx.reach(1, GPA, { pasid: 5 }), 'fault:blocked');
  });

  it('migration of local PASIDs (PASID-026 PASID-027 PASID-028 PASID-029 PASID-031)', () => {
    const fx = new Rfc();
    const gpa = fx.readyRoot(0);
    assert.ok(fx.map(gpa, GPA, 4n * P, { off: 0n }).ok);
    fx.global(1024);
    fx.bind(3);
    assert.ok(fx.attach(0, gpa, 5).ok);
    assert.ok(fx.attach(3, gpa, 6).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: gpa });
    const before = { g5: fx.real(0, 5)!, g6: fx.real(3, 6)! };
    const s = fx.ok({ op: 'IOASID_PASID_STATE_SAVE' }).state;
    fx.ok({ op: 'MIGRATE' });
    assert.deepEqual(fx.ok({ op: 'IOASID_PASID_STATE_SAVE' }).state, s);
    const after = { g5: fx.real(0, 5)!, g6: fx.real(3, 6)! };
    assert.notEqual(after.g5, before.g5);
    assert.notEqual(after.g6, before.g6);
    assert.equal(fx.enqcmd(0, 5), 'fault:no-translation');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: gpa });
    assert.equal(fx.enqcmd(0, 5), after.g5);
    assert.equal(fx.reach(0, GPA + 8n, { pasid: 5 }), 'buf0+0x8');
    assert.equal(fx.reach(3, GPA + 8n, { pasid: 6 }), 'buf0+0x8');
    assert.equal(fx.reach(0, GPA, { pasid: before.g5 }), 'fault:blocked');
  });
});

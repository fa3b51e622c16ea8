// Chapters FMT and BIND in the rfc profile: one protocol per IOASID, declared at creation; binding user page tables and
// PASID tables. Deterministic examples asserting outcome, errno, recorded clause and state.
import { strict as assert } from 'node:assert';
import { isModelLimit } from '../../src/reference/model.ts';
import { BASE, P, PASIDTABLE, PGTABLE, Rfc } from './rfc-fixtures.ts';

/** A parent ready with dev0 and a pgtable child dev0's RID is attached to: [fx, parent, child]. */
function pgtableChild(): [Rfc, number, number] {
  const fx = new Rfc();
  const parent = fx.readyRoot(0);
  const child = fx.nest(parent, 'pgtable');
  assert.ok(fx.attach(0, child).ok);
  return [fx, parent, child];
}

/** A parent ready with dev0 and a pasid-table child dev0's RID is attached to. */
function pasidTableChild(): [Rfc, number, number] {
  const fx = new Rfc();
  const parent = fx.readyRoot(0);
  const child = fx.nest(parent, 'pasid-table');
  assert.ok(fx.attach(0, child).ok);
  return [fx, parent, child];
}

describe('FMT-001 the format of an IOASID is fixed for its whole life', () => {
  it('a pgtable child keeps refusing MAP before and after a bind, a detach and a re-attach', () => {
    const [fx, , child] = pgtableChild();
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL', 'FMT-002');
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL', 'FMT-002');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: child });
    assert.equal(fx.attach(0, child).ok, true);
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL', 'FMT-002');
    assert.equal(fx.state.get(child, 'ioasid')!.format, 'pgtable');
  });
  it('a kernel-managed IOASID keeps refusing BIND_PGTABLE after its mappings are all removed', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    assert.equal(fx.map(io, BASE, P).ok, true);
    fx.ok({ op: 'IOASID_UNMAP_DMA', ioasid: io, flags: 2, iova: 0n, size: 0n });
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: io, table_format: PGTABLE, root: 0x8000n }, 'EINVAL', 'BIND-001');
    assert.equal(fx.state.get(io, 'ioasid')!.format, 'kernel');
  });
});

describe('FMT-002 MAP and UNMAP are rejected on a pgtable IOASID', () => {
  it('MAP and UNMAP give EINVAL whether or not a table is bound', () => {
    const [fx, , child] = pgtableChild();
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL', 'FMT-002');
    fx.fails({ op: 'IOASID_UNMAP_DMA', ioasid: child, flags: 0, iova: BASE, size: P }, 'EINVAL', 'FMT-002');
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.fails({ op: 'IOASID_UNMAP_DMA', ioasid: child, flags: 2, iova: 0n, size: 0n }, 'EINVAL', 'FMT-002');
  });
});

describe('FMT-003 MAP and UNMAP are rejected on a PASID-table IOASID', () => {
  it('MAP and UNMAP give EINVAL', () => {
    const [fx, , child] = pasidTableChild();
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL', 'FMT-003');
    fx.fails({ op: 'IOASID_UNMAP_DMA', ioasid: child, flags: 0, iova: BASE, size: P }, 'EINVAL', 'FMT-003');
  });
});

describe('FMT-004 BIND_PGTABLE is rejected on an IOASID that is not of format pgtable', () => {
  it('a kernel-managed IOASID, a software-nesting child and a pasid-table child all give EINVAL', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    const kid = fx.nest(root, 'kernel');
    const pt = fx.nest(root, 'pasid-table');
    assert.ok(fx.attach(0, kid).ok);
    for (const io of [root, kid]) {
      fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: io, table_format: PGTABLE, root: 0x8000n }, 'EINVAL', 'FMT-004');
      assert.equal(fx.state.get(io, 'ioasid')!.bound, undefined);
    }
    // The pasid-table child, reached by another device through the same parent.
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: kid });
    assert.ok(fx.attach(0, pt).ok);
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: pt, table_format: PGTABLE, root: 0x8000n }, 'EINVAL', 'FMT-004');
  });
});

describe('FMT-005 BIND_PASID_TABLE is rejected on an IOASID that is not of format pasid-table', () => {
  it('a kernel-managed IOASID and a pgtable child give EINVAL', () => {
    const [fx, parent, child] = pgtableChild();
    for (const io of [parent, child]) {
      fx.fails(
        { op: 'IOASID_BIND_PASID_TABLE', ioasid: io, table_format: PASIDTABLE, base: 0x9000n },
        'EINVAL',
        'FMT-005',
      );
      assert.equal(fx.state.get(io, 'ioasid')!.bound, undefined);
    }
  });
});

describe('FMT-006 a format the IOMMU does not support is refused at creation', () => {
  it('an unknown vendor format, and a kind the implementation does not declare, give EOPNOTSUPP and create nothing', () => {
    const fx = new Rfc(['pasid', 'nesting-hw']);
    const root = fx.alloc();
    const before = fx.fingerprint();
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'pgtable', table_format: 'arm-smmu-v3-s1' },
      'EOPNOTSUPP',
      'FMT-006',
    );
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: root, format: 'kernel' }, 'EOPNOTSUPP', 'FMT-006');
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'pasid-table', table_format: PASIDTABLE },
      'EOPNOTSUPP',
    );
    assert.equal(fx.fingerprint(), before);
  });
  it('refusal does not depend on a device being attached to the parent', () => {
    const fx = new Rfc(['nesting-sw']);
    const root = fx.readyRoot(0);
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'pgtable', table_format: PGTABLE },
      'EOPNOTSUPP',
      'FMT-006',
    );
  });
});

describe('FMT-007 nesting requires a kernel-managed parent', () => {
  it('a pgtable or pasid-table parent gives EINVAL and creates nothing', () => {
    const fx = new Rfc();
    const root = fx.alloc();
    for (const f of ['pgtable', 'pasid-table'] as const) {
      const kid = fx.nest(root, f);
      const before = fx.fingerprint();
      fx.fails({ op: 'IOASID_CREATE_NESTING', parent: kid, format: 'kernel' }, 'EINVAL', 'FMT-007');
      assert.equal(fx.fingerprint(), before);
    }
  });
});

describe('FMT-008 any IOASID accepts an invalidation', () => {
  it('kernel, kernel child, pgtable and pasid-table IOASIDs all return 0', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    const kid = fx.nest(root, 'kernel');
    const pg = fx.nest(root, 'pgtable');
    const pt = fx.nest(root, 'pasid-table');
    fx.bind(1);
    const other = fx.alloc();
    assert.ok(fx.attach(1, other).ok);
    assert.ok(fx.attach(0, kid).ok);
    for (const io of [root, kid]) {
      fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 0 });
      assert.ok(fx.hit('FMT-008') && fx.hit('INV-003'));
    }
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: kid });
    assert.ok(fx.attach(0, pg).ok);
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: pg, granularity: 0 });
    assert.ok(fx.hit('FMT-008'));
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: pg });
    assert.ok(fx.attach(0, pt).ok);
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: pt, granularity: 0 });
    assert.ok(fx.hit('FMT-008'));
  });
});

describe('FMT-009 the format is checked after existence and readiness', () => {
  it('MAP on a pgtable IOASID with no device attached gives ENODEV, a missing IOASID ENOENT, a ready one EINVAL', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    const child = fx.nest(root, 'pgtable');
    fx.fails(fx.mapCmd(child, BASE, P), 'ENODEV', 'FMT-009');
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: 'bogus', root: 0x8001n }, 'ENODEV');
    fx.fails(fx.mapCmd(99, BASE, P), 'ENOENT');
    assert.ok(fx.attach(0, child).ok);
    fx.fails(fx.mapCmd(child, BASE, 0n), 'EINVAL', 'FMT-002');
  });
});

describe('FMT-018 a rejected command changes nothing', () => {
  it('wrong-format MAP, UNMAP, BIND_PGTABLE, BIND_PASID_TABLE and CREATE_NESTING leave the fd exactly as before', () => {
    const [fx, parent, child] = pgtableChild();
    assert.equal(fx.map(parent, BASE, 4n * P).ok, true);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    const before = fx.fingerprint();
    fx.fails(fx.mapCmd(child, BASE, P), 'EINVAL');
    fx.fails({ op: 'IOASID_UNMAP_DMA', ioasid: child, flags: 2, iova: 0n, size: 0n }, 'EINVAL');
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: parent, table_format: PGTABLE, root: 0x1000n }, 'EINVAL', 'FMT-018');
    fx.fails(
      { op: 'IOASID_BIND_PASID_TABLE', ioasid: child, table_format: PASIDTABLE, base: 0x1000n },
      'EINVAL',
      'FMT-018',
    );
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: child, format: 'kernel' }, 'EINVAL');
    assert.equal(fx.fingerprint(), before);
  });
});

describe('BIND-001 only a pgtable-format IOASID accepts BIND_PGTABLE', () => {
  it('a pgtable child accepts it and records the root; other formats give EINVAL and bind nothing', () => {
    const [fx, parent, child] = pgtableChild();
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: parent, table_format: PGTABLE, root: 0x8000n }, 'EINVAL', 'BIND-001');
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    assert.equal(fx.state.get(child, 'ioasid')!.bound, 0x8000n);
    assert.equal(fx.state.get(parent, 'ioasid')!.bound, undefined);
  });
});

describe('BIND-002 order of checks of the bind commands', () => {
  it('ENOENT before ENODEV before the wrong format before a bad field', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    const pg = fx.nest(root, 'pgtable');
    const bad = { table_format: 'bogus', root: 0x8001n };
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: 77, ...bad }, 'ENOENT', 'BIND-002');
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: pg, ...bad }, 'ENODEV', 'BIND-002');
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: root, ...bad }, 'EINVAL', 'BIND-001');
    assert.ok(fx.attach(0, pg).ok);
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: pg, ...bad }, 'EINVAL', 'BIND-003');
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: pg, table_format: PGTABLE, root: 0x8001n }, 'EINVAL', 'BIND-005');
  });
  it('BIND_PASID_TABLE: ENODEV before the format, then an unaligned base is a wrong field', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    const pt = fx.nest(root, 'pasid-table');
    fx.fails({ op: 'IOASID_BIND_PASID_TABLE', ioasid: pt, table_format: 'bogus', base: 0x10n }, 'ENODEV', 'BIND-002');
    assert.ok(fx.attach(0, pt).ok);
    fx.fails(
      { op: 'IOASID_BIND_PASID_TABLE', ioasid: pt, table_format: PASIDTABLE, base: 0x10n },
      'EINVAL',
      'BIND-002',
    );
    assert.equal(fx.state.get(pt, 'ioasid')!.bound, undefined);
  });
});

describe('BIND-003 the bound format must be the declared one', () => {
  it('another format gives EINVAL and leaves the bound table in place', () => {
    const [fx, , child] = pgtableChild();
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.fails(
      { op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: 'vtd-s1-5lvl', root: 0xa000n },
      'EINVAL',
      'BIND-003',
    );
    assert.equal(fx.state.get(child, 'ioasid')!.bound, 0x8000n);
  });
  it('a PASID table of another format gives EINVAL', () => {
    const [fx, , child] = pasidTableChild();
    fx.fails(
      { op: 'IOASID_BIND_PASID_TABLE', ioasid: child, table_format: 'vtd-pasid', base: 0x9000n },
      'EINVAL',
      'BIND-003',
    );
  });
});

describe('BIND-004 an unusable page-table format is refused before any device uses it', () => {
  it('rfc refuses it at CREATE_NESTING; a declared, offered format never fails the bind for lack of support', () => {
    const fx = new Rfc();
    const root = fx.readyRoot(0);
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'pgtable', table_format: 'vtd-s1-3lvl' },
      'EOPNOTSUPP',
      'BIND-004',
    );
    const child = fx.nest(root, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x4000n });
  });
});

describe('BIND-005 the table root must be page aligned', () => {
  it('a root that is not a multiple of 4 KiB gives EINVAL and is not rounded', () => {
    const [fx, , child] = pgtableChild();
    for (const root of [0x8001n, 0x8800n, 0xfffn]) {
      fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root }, 'EINVAL', 'BIND-005');
      assert.equal(fx.state.get(child, 'ioasid')!.bound, undefined);
    }
  });
});

describe('BIND-006 the root is not checked against the parent mappings', () => {
  it('a root no parent mapping covers is bound', () => {
    const [fx, parent, child] = pgtableChild();
    assert.equal(fx.state.get(parent, 'ioasid')!.space!.areas.size, 0);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x7000_0000n });
    assert.ok(fx.hit('BIND-006'));
  });
});

describe('BIND-007 the table is bound through the routing of every attached device', () => {
  it('the bind succeeds with devices attached by RID and by PASID, and a device attached later uses the table', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0, 1, 2);
    const child = fx.nest(parent, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    assert.ok(fx.attach(1, child, 7).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    assert.ok(fx.hit('BIND-007'));
    assert.ok(fx.attach(2, child, 7).ok);
    // Walking the user table is the hardware model's job: the uAPI model says so rather than guess.
    assert.throws(() => fx.dma(1, BASE, { pasid: 7 }), isModelLimit);
    assert.throws(() => fx.dma(0, BASE), isModelLimit);
  });
});

describe('BIND-008 a second bind replaces the table', () => {
  it('a second BIND_PGTABLE succeeds and the IOASID holds the new root', () => {
    const [fx, , child] = pgtableChild();
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0xc000n });
    assert.ok(fx.hit('BIND-008'));
    assert.equal(fx.state.get(child, 'ioasid')!.bound, 0xc000n);
  });
});

describe('BIND-009 there is no unbind: destroying the IOASID unbinds', () => {
  it('the RFC numbers of the unbind commands are not commands of the profile, and IOASID_FREE unbinds', () => {
    const [fx, parent, child] = pgtableChild();
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.fails({ op: 'IOASID_FREE', ioasid: child }, 'EBUSY', 'FD-017');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: child });
    fx.ok({ op: 'IOASID_FREE', ioasid: child });
    assert.ok(fx.hit('BIND-009'));
    assert.equal(fx.state.get(child, 'ioasid'), undefined);
    fx.fails({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n }, 'ENOENT');
    assert.equal(fx.state.get(parent, 'ioasid')!.children, 0);
  });
});

describe('BIND-010 only a pasid-table IOASID accepts BIND_PASID_TABLE', () => {
  it('a pasid-table child accepts it; a kernel-managed IOASID gives EINVAL', () => {
    const [fx, parent, child] = pasidTableChild();
    fx.fails(
      { op: 'IOASID_BIND_PASID_TABLE', ioasid: parent, table_format: PASIDTABLE, base: 0x9000n },
      'EINVAL',
      'BIND-010',
    );
    fx.ok({ op: 'IOASID_BIND_PASID_TABLE', ioasid: child, table_format: PASIDTABLE, base: 0x9000n });
    assert.equal(fx.state.get(child, 'ioasid')!.bound, 0x9000n);
  });
});

describe('BIND-011 a device reaches one PASID-table IOASID, by its RID', () => {
  it('a user PASID on a pasid-table IOASID gives EINVAL; a second pasid-table IOASID gives EBUSY', () => {
    const [fx, parent, child] = pasidTableChild();
    const second = fx.nest(parent, 'pasid-table');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: child, pasid: 5 }, 'EINVAL', 'BIND-011');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: second }, 'EBUSY', 'BIND-011');
    // Several devices may share one pasid-table IOASID.
    fx.bind(1);
    assert.ok(fx.attach(1, parent).ok);
    assert.ok(fx.attach(1, child).ok);
  });
});

describe('BIND-012 with a PASID table bound, the kernel does not write PASID entries', () => {
  it('BIND_PGTABLE on a pgtable IOASID the device reaches by PASID still succeeds and is recorded', () => {
    const [fx, parent, pt] = pasidTableChild();
    fx.ok({ op: 'IOASID_BIND_PASID_TABLE', ioasid: pt, table_format: PASIDTABLE, base: 0x9000n });
    const pg = fx.nest(parent, 'pgtable');
    assert.ok(fx.attach(0, pg, 4).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: pg, table_format: PGTABLE, root: 0x8000n });
    assert.ok(fx.hit('BIND-012'));
    assert.equal(fx.state.get(pg, 'ioasid')!.bound, 0x8000n);
    // DMA with a PASID is routed by the user's PASID table: the hardware model decides.
    assert.throws(() => fx.dma(0, BASE, { pasid: 9 }), isModelLimit);
  });
});

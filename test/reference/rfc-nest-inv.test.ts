// Chapters NEST and INV in the rfc profile: IOASID_CREATE_NESTING, software nesting through a kernel-kept shadow, and
// IOASID_INVALIDATE_CACHE. Deterministic examples asserting outcome, errno, recorded clause and state.
import { strict as assert } from 'node:assert';
import { isModelLimit } from '../../src/reference/model.ts';
import { BASE, P, PGTABLE, Rfc } from './rfc-fixtures.ts';

const GIOVA = 0x4000_0000n;

/** A parent with dev0 attached and 4 pages mapped at BASE (buffer 0 at BASE), and a kernel child dev0 is on. */
function softwareNesting(): [Rfc, number, number] {
  const fx = new Rfc();
  const parent = fx.readyRoot(0);
  assert.ok(fx.map(parent, BASE, 4n * P).ok);
  const child = fx.nest(parent, 'kernel');
  assert.ok(fx.attach(0, child).ok);
  return [fx, parent, child];
}

describe('NEST-001 the parent of a nesting must be kernel-managed', () => {
  it('an unknown parent gives ENOENT, a child parent EINVAL, whatever its format; nothing is created', () => {
    const fx = new Rfc();
    const root = fx.alloc();
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: 42, format: 'kernel' }, 'ENOENT', 'NEST-001');
    for (const f of ['kernel', 'pgtable', 'pasid-table'] as const) {
      const kid = fx.nest(root, f);
      const next = fx.state.ids.peek();
      fx.fails({ op: 'IOASID_CREATE_NESTING', parent: kid, format: 'kernel' }, 'EINVAL', 'NEST-001');
      assert.equal(fx.state.ids.peek(), next);
      assert.equal(fx.state.get(kid, 'ioasid')!.children, 0);
    }
    assert.equal(fx.state.get(root, 'ioasid')!.children, 3);
  });
});

describe('NEST-002 a nesting format the platform does not offer is refused at creation', () => {
  it('an unknown kind is EINVAL; a kind not offered is EOPNOTSUPP; the parent checks come first', () => {
    const fx = new Rfc(['nesting-hw']);
    const root = fx.alloc();
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: root, format: 'nested' }, 'EINVAL', 'NEST-002');
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: root, format: 'kernel' }, 'EOPNOTSUPP', 'NEST-002');
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: 99, format: 'nested' }, 'ENOENT', 'NEST-001');
    assert.equal(fx.state.get(root, 'ioasid')!.children, 0);
  });
  it('a platform without hardware nesting refuses pgtable even when the feature is declared', () => {
    const fx = new Rfc(
      ['nesting-hw'],
      (() => {
        const p = new Rfc().model.config.platform;
        return { ...p, iommu: { ...p.iommu, nestingHw: false } };
      })(),
    );
    const root = fx.readyRoot(0);
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'pgtable', table_format: PGTABLE },
      'EOPNOTSUPP',
      'NEST-002',
    );
  });
});

describe('NEST-018 a user-table child names its table format; a kernel child names none', () => {
  it('pgtable without a table format, and kernel with one, give EINVAL before EOPNOTSUPP', () => {
    const fx = new Rfc(['nesting-hw']);
    const root = fx.alloc();
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: root, format: 'pgtable' }, 'EINVAL', 'NEST-018');
    fx.fails({ op: 'IOASID_CREATE_NESTING', parent: root, format: 'pasid-table' }, 'EINVAL', 'NEST-018');
    // kernel is not offered here, but the superfluous field is checked first.
    fx.fails(
      { op: 'IOASID_CREATE_NESTING', parent: root, format: 'kernel', table_format: PGTABLE },
      'EINVAL',
      'NEST-018',
    );
  });
});

describe('NEST-003 a device attached to a child must already be attached to the parent', () => {
  it('without the parent attach, RID and PASID attaches to a child give EINVAL and attach nothing', () => {
    const fx = new Rfc();
    const root = fx.alloc();
    const child = fx.nest(root, 'pgtable');
    fx.bind(0);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: child }, 'EINVAL', 'NEST-003');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: child, pasid: 3 }, 'EINVAL', 'NEST-003');
    assert.deepEqual(fx.state.devices[0]!.attachments, []);
    assert.ok(fx.attach(0, root).ok);
    assert.ok(fx.attach(0, child).ok);
  });
  it('a PASID attach to a child needs the parent attached without a PASID', () => {
    const fx = new Rfc();
    const root = fx.alloc();
    const child = fx.nest(root, 'pgtable');
    fx.bind(0);
    assert.ok(fx.attach(0, root, 2).ok);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: child, pasid: 3 }, 'EINVAL', 'NEST-003');
  });
});

describe('NEST-004 NEST-005 hardware nesting translates through the user table and the parent', () => {
  it('the uAPI model leaves the two-stage walk to the hardware model instead of guessing', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0);
    assert.ok(fx.map(parent, BASE, P).ok);
    const child = fx.nest(parent, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: BASE });
    assert.throws(() => fx.dma(0, 0x1000n), isModelLimit);
  });
});

describe('NEST-006 a parent cannot be destroyed while a child exists', () => {
  it('IOASID_FREE of a parent with a child is EBUSY until the child is freed', () => {
    const fx = new Rfc();
    const root = fx.alloc();
    const child = fx.nest(root, 'kernel');
    fx.fails({ op: 'IOASID_FREE', ioasid: root }, 'EBUSY', 'NEST-006');
    assert.ok(fx.state.get(root, 'ioasid'));
    fx.ok({ op: 'IOASID_FREE', ioasid: child });
    fx.ok({ op: 'IOASID_FREE', ioasid: root });
  });
});

describe('NEST-007 MAP on a software-nesting child maps parent IOVAs through a shadow', () => {
  it('a DMA at child IOVA + k reaches what the parent maps at vaddr + k', () => {
    const [fx, , child] = softwareNesting();
    assert.ok(fx.mapChild(child, GIOVA, BASE + P, 2n * P).ok);
    assert.ok(fx.hit('NEST-007'));
    assert.equal(fx.reach(0, GIOVA), `buf0+0x${(BASE + P).toString(16)}`);
    assert.equal(fx.reach(0, GIOVA + P + 8n), `buf0+0x${(BASE + 2n * P + 8n).toString(16)}`);
    assert.equal(fx.reach(0, GIOVA + 2n * P), 'fault:not-present');
    // The RID now translates through the child: the parent's IOVAs are not reachable directly.
    assert.equal(fx.reach(0, BASE), 'fault:not-present');
  });
});

describe('NEST-008 a child mapping must lie on mapped parent IOVA', () => {
  it('a parent range with a gap gives ENOENT; one spanning two adjacent parent mappings is accepted', () => {
    const [fx, parent, child] = softwareNesting();
    fx.fails(
      { op: 'IOASID_MAP_DMA', ioasid: child, flags: 3, vaddr: { iova: BASE + 3n * P }, iova: GIOVA, size: 2n * P },
      'ENOENT',
      'NEST-008',
    );
    fx.fails(
      { op: 'IOASID_MAP_DMA', ioasid: child, flags: 3, vaddr: { iova: 0x9000_0000n }, iova: GIOVA, size: P },
      'ENOENT',
      'NEST-008',
    );
    assert.equal(fx.state.get(child, 'ioasid')!.space!.areas.size, 0);
    assert.ok(fx.map(parent, BASE + 4n * P, P, { off: 0x100_0000n }).ok);
    assert.ok(fx.mapChild(child, GIOVA, BASE + 3n * P, 2n * P).ok);
    assert.equal(fx.reach(0, GIOVA + P), 'buf0+0x1000000');
  });
});

describe('NEST-009 unmapping in the parent removes the child shadow entries', () => {
  it('after the parent UNMAP the child DMA faults, and the child mapping still unmaps with its full size', () => {
    const [fx, parent, child] = softwareNesting();
    assert.ok(fx.mapChild(child, GIOVA, BASE, 2n * P).ok);
    assert.equal(fx.reach(0, GIOVA).startsWith('buf0'), true);
    const u = fx.unmap(parent, BASE, 4n * P);
    assert.equal(u.ok && u.out!.size, 4n * P);
    assert.equal(fx.reach(0, GIOVA), 'fault:not-present');
    assert.ok(fx.hit('NEST-009'));
    const cu = fx.unmap(child, GIOVA, 2n * P);
    assert.equal(cu.ok && cu.out!.size, 2n * P);
  });
});

describe('NEST-010 the shadow follows a later parent mapping', () => {
  it('a parent MAP into the range a child mapping points at is reached through the child with no child command', () => {
    const [fx, parent, child] = softwareNesting();
    assert.ok(fx.mapChild(child, GIOVA, BASE, P).ok);
    assert.ok(fx.unmap(parent, BASE, 4n * P).ok);
    assert.equal(fx.reach(0, GIOVA), 'fault:not-present');
    assert.ok(fx.map(parent, BASE, P, { off: 0x20_0000n }).ok);
    assert.equal(fx.reach(0, GIOVA), 'buf0+0x200000');
    assert.ok(fx.hit('NEST-010'));
  });
});

describe('NEST-011 a shadow entry grants only what both levels grant', () => {
  it('a writable child mapping over a read-only parent mapping is accepted, and a write DMA faults', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0);
    assert.ok(fx.map(parent, BASE, P, { flags: 1 }).ok);
    const child = fx.nest(parent, 'kernel');
    assert.ok(fx.attach(0, child).ok);
    assert.ok(fx.mapChild(child, GIOVA, BASE, P, 3).ok);
    assert.equal(fx.reach(0, GIOVA).startsWith('buf0'), true);
    assert.equal(fx.reach(0, GIOVA, { write: true }), 'fault:write-denied');
    // And a read-only child over a writable parent denies the write at the child level.
    assert.ok(fx.unmap(parent, BASE, P).ok);
    assert.ok(fx.map(parent, BASE, P).ok);
    assert.ok(fx.mapChild(child, GIOVA + P, BASE, P, 1).ok);
    assert.equal(fx.reach(0, GIOVA + P, { write: true }), 'fault:write-denied');
    assert.equal(fx.reach(0, GIOVA, { write: true }).startsWith('buf0'), true);
  });
});

describe('NEST-012 a child mapping is not pinned or accounted again', () => {
  it('with RLIMIT_MEMLOCK used up by the parent, a child MAP still succeeds and accounts nothing', () => {
    const base = new Rfc().model.config.platform;
    const fx = new Rfc(['nesting-sw', 'dma-probe'], { ...base, limits: { ...base.limits, memlockPages: 4 } });
    const parent = fx.readyRoot(0);
    assert.ok(fx.map(parent, BASE, 4n * P).ok);
    assert.equal(fx.locked, 4n);
    fx.fails(fx.mapCmd(parent, BASE + 8n * P, P), 'ENOMEM', 'MEM-014');
    const child = fx.nest(parent, 'kernel');
    assert.ok(fx.attach(0, child).ok);
    assert.ok(fx.mapChild(child, GIOVA, BASE, 4n * P).ok);
    assert.ok(fx.hit('NEST-012'));
    assert.equal(fx.locked, 4n);
  });
});

describe('INV-001 two granularities and no cache-type selector', () => {
  it('all and range are accepted; any other granularity gives EINVAL', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 0 });
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 1, start: BASE, size: P });
    for (const g of [2, 3, -1, 0x100])
      fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: g }, 'EINVAL', 'INV-001');
  });
});

describe('INV-002 order of checks of IOASID_INVALIDATE_CACHE', () => {
  it('ENOENT, then ENODEV, then the granularity, then the range', () => {
    const fx = new Rfc();
    const io = fx.alloc();
    fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: 9, granularity: 7 }, 'ENOENT', 'INV-002');
    fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 7 }, 'ENODEV', 'INV-002');
    fx.bind(0);
    assert.ok(fx.attach(0, io).ok);
    fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 7, start: 1n, size: 0n }, 'EINVAL', 'INV-001');
    fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 1, start: 1n, size: 0n }, 'EINVAL', 'INV-004');
  });
  it('a partially attached IOMMU group makes the IOASID not ready (ENODEV)', () => {
    const fx = new Rfc();
    const io = fx.alloc();
    fx.bind(1);
    assert.ok(fx.attach(1, io).ok);
    fx.fails({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 0 }, 'ENODEV', 'DEV-010');
  });
});

describe('INV-003 any IOASID accepts an invalidation; on a kernel-managed one it does nothing', () => {
  it('returns 0 and leaves the mappings and the DMA results as they were', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    assert.ok(fx.map(io, BASE, 2n * P).ok);
    const before = fx.fingerprint();
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 0 });
    assert.ok(fx.hit('INV-003'));
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: io, granularity: 1, start: BASE, size: P });
    assert.equal(fx.fingerprint(), before);
    assert.equal(fx.reach(0, BASE + P), `buf0+0x${(BASE + P).toString(16)}`);
  });
});

describe('INV-004 an address range must be well formed', () => {
  it('size 0, misaligned start or size, and a wrapping range give EINVAL; an unmapped range is accepted', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    const inv = (start: bigint, size: bigint) => ({
      op: 'IOASID_INVALIDATE_CACHE' as const,
      ioasid: io,
      granularity: 1,
      start,
      size,
    });
    fx.fails(inv(BASE, 0n), 'EINVAL', 'INV-004');
    fx.fails(inv(BASE + 0x10n, P), 'EINVAL', 'INV-004');
    fx.fails(inv(BASE, P + 1n), 'EINVAL', 'INV-004');
    fx.fails(inv(0xffff_ffff_ffff_f000n, 2n * P), 'EINVAL', 'INV-004');
    fx.ok(inv(0xffff_ffff_ffff_f000n, P));
    fx.ok(inv(0xfee0_0000n, P));
  });
});

describe('INV-005 an address-space invalidation covers every routing of a pgtable IOASID', () => {
  it('the invalidation of a pgtable IOASID with RID and PASID routings succeeds, all and range', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0, 1, 2);
    const child = fx.nest(parent, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    assert.ok(fx.attach(1, child, 9).ok);
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: child, granularity: 0 });
    assert.ok(fx.hit('INV-005'));
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: child, granularity: 1, start: 0n, size: 16n * P });
    assert.ok(fx.hit('INV-005'));
  });
});

describe('INV-006 a PASID-table invalidation covers the PASID cache', () => {
  it('a range of PASIDs inside the width is accepted; size 0 or beyond the width gives EINVAL', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0);
    const pt = fx.nest(parent, 'pasid-table');
    assert.ok(fx.attach(0, pt).ok);
    const inv = (start: bigint, size: bigint) => ({
      op: 'IOASID_INVALIDATE_CACHE' as const,
      ioasid: pt,
      granularity: 1,
      start,
      size,
    });
    fx.ok(inv(3n, 5n));
    assert.ok(fx.hit('INV-006'));
    fx.ok(inv(0n, 1n << 20n));
    fx.fails(inv(3n, 0n), 'EINVAL', 'INV-006');
    fx.fails(inv((1n << 20n) - 1n, 2n), 'EINVAL', 'INV-006');
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: pt, granularity: 0 });
  });
});

describe('INV-007 after a successful invalidation no stale translation is used', () => {
  it('the uAPI model keeps no cache: the hardware model judges user-table translations after an invalidation', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0);
    const child = fx.nest(parent, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: PGTABLE, root: 0x8000n });
    fx.ok({ op: 'IOASID_INVALIDATE_CACHE', ioasid: child, granularity: 0 });
    assert.throws(() => fx.dma(0, 0x1000n), isModelLimit);
  });
});

describe('INV-009 the kernel invalidates after its own changes', () => {
  it('once IOASID_UNMAP_DMA returns, DMA through the range faults, directly and through a software-nesting shadow', () => {
    const [fx, parent, child] = softwareNesting();
    fx.bind(1);
    assert.ok(fx.attach(1, parent).ok);
    fx.bind(2);
    assert.ok(fx.attach(2, parent).ok);
    assert.ok(fx.mapChild(child, GIOVA, BASE, P).ok);
    assert.equal(fx.reach(1, BASE).startsWith('buf0'), true);
    assert.equal(fx.reach(0, GIOVA).startsWith('buf0'), true);
    assert.ok(fx.unmap(parent, BASE, 4n * P).ok);
    assert.equal(fx.reach(1, BASE), 'fault:not-present');
    assert.equal(fx.reach(0, GIOVA), 'fault:not-present');
  });
});

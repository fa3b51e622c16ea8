// Chapter MEM in the rfc profile: pre-registration and the accounting of pinned pages. Deterministic examples
// asserting outcome, errno, recorded clause and the pages accounted against RLIMIT_MEMLOCK.
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import { ALL_RFC, BASE, P, Rfc, rfcPlatform } from './rfc-fixtures.ts';

const MiB = 1n << 20n;

/** A model whose RLIMIT_MEMLOCK is `pages` pages, with one ready IOASID; returns [fx, ioasid]. */
function limited(pages: number | null, features: readonly string[] = ALL_RFC): [Rfc, number] {
  const fx = new Rfc(
    features,
    rfcPlatform((p) => (p.limits.memlockPages = pages)),
  );
  return [fx, fx.readyRoot(0)];
}

function reg(off: bigint, size: bigint, buf = 0): Command {
  return { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf, off }, size };
}
function unreg(off: bigint, size: bigint, buf = 0): Command {
  return { op: 'IOASID_UNREGISTER_MEMORY', vaddr: { buf, off }, size };
}

describe('MEM-001 a pre-registered range is pinned and accounted once for the whole fd', () => {
  it('registering accounts its pages; MAPs of it into two IOASIDs account nothing more', () => {
    const fx = new Rfc();
    const a = fx.readyRoot(0);
    const b = fx.readyRoot(1, 2);
    fx.ok(reg(0n, MiB));
    assert.equal(fx.locked, 256n);
    assert.ok(fx.map(a, BASE, 16n * P, { off: 0n }).ok);
    assert.ok(fx.map(b, BASE, 16n * P, { off: 0n }).ok);
    assert.ok(fx.hit('MEM-001'));
    assert.equal(fx.locked, 256n);
  });
});

describe('MEM-002 registering beyond RLIMIT_MEMLOCK is refused', () => {
  it('ENOMEM registers nothing; within the limit it succeeds', () => {
    const [fx] = limited(16);
    fx.fails(reg(0n, 17n * P), 'ENOMEM', 'MEM-002');
    assert.equal(fx.locked, 0n);
    assert.equal(fx.state.rfcx.regs.length, 0);
    fx.ok(reg(0n, 16n * P));
    fx.fails(reg(16n * P, P), 'ENOMEM', 'MEM-002');
  });
});

describe('MEM-003 once memory is pre-registered, MAP must use registered memory', () => {
  it('a MAP outside the registrations gives EINVAL; one spanning two adjacent registrations is accepted; the rule lapses with the last registration', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    fx.ok(reg(0n, 4n * P));
    fx.ok(reg(4n * P, 4n * P));
    fx.fails(fx.mapCmd(io, BASE, P, { off: 8n * P }), 'EINVAL', 'MEM-003');
    fx.fails(fx.mapCmd(io, BASE, 2n * P, { off: 7n * P }), 'EINVAL', 'MEM-003');
    assert.equal(fx.state.get(io, 'ioasid')!.space!.areas.size, 0);
    assert.ok(fx.map(io, BASE, 8n * P, { off: 0n }).ok);
    assert.ok(fx.unmap(io, BASE, 8n * P).ok);
    fx.ok(unreg(0n, 4n * P));
    fx.ok(unreg(4n * P, 4n * P));
    assert.ok(fx.map(io, BASE, P, { off: 8n * P }).ok);
  });
  it('the check follows the overlap and permitted-range checks of MAP-019', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    fx.ok(reg(0n, 4n * P));
    assert.ok(fx.map(io, BASE, P, { off: 0n }).ok);
    fx.fails(fx.mapCmd(io, BASE, P, { off: 8n * P }), 'EEXIST', 'MAP-002');
    fx.fails(fx.mapCmd(io, 0xfee0_0000n, P, { off: 8n * P }), 'EINVAL', 'MAP-008');
  });
});

describe('MEM-004 registrations must not overlap', () => {
  it('a range sharing one byte with a registration gives EEXIST and registers nothing', () => {
    const fx = new Rfc();
    fx.ok(reg(4n * P, 4n * P));
    for (const [off, size] of [
      [7n * P, 2n * P],
      [3n * P, 2n * P],
      [5n * P, P],
      [0n, 16n * P],
    ] as const)
      fx.fails(reg(off, size), 'EEXIST', 'MEM-004');
    assert.equal(fx.state.rfcx.regs.length, 1);
    fx.ok(reg(8n * P, P));
    fx.ok(reg(3n * P, P));
  });
});

describe('MEM-005 UNREGISTER names exactly one registration', () => {
  it('a sub-range, a super-range or a range spanning two registrations gives ENOENT', () => {
    const fx = new Rfc();
    fx.ok(reg(0n, 4n * P));
    fx.ok(reg(4n * P, 4n * P));
    for (const [off, size] of [
      [0n, 2n * P],
      [0n, 8n * P],
      [P, 4n * P],
    ] as const)
      fx.fails(unreg(off, size), 'ENOENT', 'MEM-005');
    assert.equal(fx.locked, 8n);
    fx.ok(unreg(4n * P, 4n * P));
    assert.equal(fx.locked, 4n);
  });
});

describe('MEM-006 a registration in use cannot be removed', () => {
  it('EBUSY while a mapping of any IOASID uses a page of it; accepted after the unmap', () => {
    const fx = new Rfc();
    const a = fx.readyRoot(0);
    const b = fx.readyRoot(1, 2);
    fx.ok(reg(0n, 4n * P));
    assert.ok(fx.map(a, BASE, P, { off: 3n * P }).ok);
    assert.ok(fx.map(b, BASE, P, { off: 3n * P }).ok);
    fx.fails(unreg(0n, 4n * P), 'EBUSY', 'MEM-006');
    assert.ok(fx.unmap(a, BASE, P).ok);
    fx.fails(unreg(0n, 4n * P), 'EBUSY', 'MEM-006');
    fx.ok({ op: 'IOASID_UNMAP_DMA', ioasid: b, flags: 2, iova: 0n, size: 0n });
    fx.ok(unreg(0n, 4n * P));
    assert.equal(fx.locked, 0n);
  });
});

describe('MEM-007 REGISTER_MEMORY takes whole, non-empty pages', () => {
  it('size 0, a misaligned vaddr or size gives EINVAL', () => {
    const fx = new Rfc();
    fx.fails(reg(0n, 0n), 'EINVAL', 'MEM-007');
    fx.fails(reg(0x800n, P), 'EINVAL', 'MEM-007');
    fx.fails(reg(0n, P + 1n), 'EINVAL', 'MEM-007');
    assert.equal(fx.state.rfcx.regs.length, 0);
  });
});

describe('MEM-008 software nesting piggybacks on the parent accounting', () => {
  it('a child MAP of parent IOVAs is neither accounted nor checked against the registrations', () => {
    const fx = new Rfc();
    const parent = fx.readyRoot(0);
    fx.ok(reg(0n, 4n * P));
    assert.ok(fx.map(parent, BASE, 4n * P, { off: 0n }).ok);
    const child = fx.nest(parent, 'kernel');
    assert.ok(fx.attach(0, child).ok);
    const locked = fx.locked;
    // vaddr BASE is a parent IOVA; as a process address it lies in no registration.
    assert.ok(fx.mapChild(child, 0x4000_0000n, BASE, 4n * P).ok);
    assert.ok(fx.hit('MEM-008'));
    assert.equal(fx.locked, locked);
    assert.equal(fx.state.rfcx.regUsers.get(0x7f00_0000_0000n), 1);
  });
});

describe('MEM-012 a mapping installed in several domains is pinned once', () => {
  it('one MAP on an IOASID with devices of two IOMMU groups accounts its pages once', () => {
    const [fx, io] = limited(null);
    fx.bind(1, 2);
    assert.ok(fx.attach(1, io).ok);
    assert.ok(fx.attach(2, io).ok);
    assert.ok(fx.map(io, BASE, 8n * P).ok);
    assert.ok(fx.hit('MEM-012'));
    assert.equal(fx.locked, 8n);
  });
});

describe('MEM-014 pinning beyond RLIMIT_MEMLOCK fails with ENOMEM', () => {
  it('an unregistered MAP past the limit leaves no mapping', () => {
    const [fx, io] = limited(8);
    assert.ok(fx.map(io, BASE, 6n * P).ok);
    fx.fails(fx.mapCmd(io, BASE + 8n * P, 4n * P), 'ENOMEM', 'MEM-014');
    assert.equal(fx.state.get(io, 'ioasid')!.space!.areas.size, 1);
    assert.equal(fx.locked, 6n);
    // Without pre-registration each MAP of the same memory is accounted again (MEM-009 allows it).
    assert.ok(fx.map(io, BASE + 8n * P, 2n * P, { off: BASE }).ok);
    assert.equal(fx.locked, 8n);
  });
});

describe('MEM-016 accounting equals what the live mappings and registrations imply', () => {
  it('filling the limit, unmapping and re-mapping the same amount always works; UNREGISTER and FREE release', () => {
    const [fx, io] = limited(16);
    assert.ok(fx.map(io, BASE, 16n * P).ok);
    fx.fails(fx.mapCmd(io, BASE + 16n * P, P), 'ENOMEM', 'MEM-014');
    assert.ok(fx.unmap(io, BASE, 16n * P).ok);
    assert.equal(fx.locked, 0n);
    assert.ok(fx.map(io, BASE, 16n * P).ok);
    fx.ok({ op: 'IOASID_UNMAP_DMA', ioasid: io, flags: 2, iova: 0n, size: 0n });
    fx.ok(reg(0n, 12n * P));
    assert.equal(fx.locked, 12n);
    fx.ok(unreg(0n, 12n * P));
    assert.equal(fx.locked, 0n);
    const other = fx.alloc();
    fx.bind(1, 2);
    assert.ok(fx.attach(1, other).ok);
    assert.ok(fx.attach(2, other).ok);
    assert.ok(fx.map(other, BASE, 10n * P).ok);
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 1, ioasid: other });
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 2, ioasid: other });
    fx.ok({ op: 'IOASID_FREE', ioasid: other });
    assert.equal(fx.locked, 0n);
    assert.ok(fx.map(io, BASE, 16n * P).ok);
  });
  it('the accounted pages equal the registrations plus the pins of unregistered mappings at every step', () => {
    const fx = new Rfc();
    const io = fx.readyRoot(0);
    const check = () => {
      const st = fx.state;
      let want = 0n;
      for (const r of st.rfcx.regs) want += (r.last - r.va + 1n) / P;
      for (const pin of st.rfcx.pins.values()) want += pin.pages;
      assert.equal(st.rfcx.locked, want);
    };
    const cmds: Command[] = [
      fx.mapCmd(io, BASE, 4n * P),
      reg(0x40_0000n, 8n * P),
      fx.mapCmd(io, BASE + 16n * P, 2n * P, { off: 0x40_0000n }),
      { op: 'IOASID_UNMAP_DMA', ioasid: io, flags: 0, iova: BASE, size: 4n * P },
      unreg(0x40_0000n, 8n * P),
      { op: 'IOASID_UNMAP_DMA', ioasid: io, flags: 2, iova: 0n, size: 0n },
      unreg(0x40_0000n, 8n * P),
    ];
    for (const c of cmds) {
      fx.step(c);
      check();
    }
    assert.equal(fx.locked, 0n);
  });
});

describe('MEM-017 pre-registration is refused where it is not offered', () => {
  it('without prereg both commands give EOPNOTSUPP and the extension reports 0', () => {
    const fx = new Rfc(['pasid']);
    fx.fails(reg(0n, P), 'EOPNOTSUPP', 'MEM-017');
    fx.fails(unreg(0n, P), 'EOPNOTSUPP', 'MEM-017');
    assert.equal(fx.ok({ op: 'IOASID_CHECK_EXTENSION', extension: 6 }).value, 0);
    assert.equal(fx.locked, 0n);
  });
});

describe('MEM-018 registering memory the process does not own fails with EFAULT', () => {
  it('an unmapped address and a range past a buffer end give EFAULT; overlap is checked first', () => {
    const [fx] = limited(1);
    fx.fails({ op: 'IOASID_REGISTER_MEMORY', vaddr: { bad: 'unmapped' }, size: P }, 'EFAULT', 'MEM-018');
    fx.fails(reg((64n << 20n) - P, 2n * P, 1), 'EFAULT', 'MEM-018');
    fx.fails(reg((64n << 20n) - P, 2n * P, 1), 'EFAULT');
    fx.ok(reg(0n, P));
    fx.fails(reg(0n, P), 'EEXIST', 'MEM-004');
    // EFAULT before ENOMEM: the limit (1 page) is used up.
    fx.fails({ op: 'IOASID_REGISTER_MEMORY', vaddr: { bad: 'unmapped' }, size: P }, 'EFAULT', 'MEM-018');
    fx.fails(reg(P, P), 'ENOMEM', 'MEM-002');
  });
});

describe('MEM-009 without pre-registration a page may be accounted once per mapping', () => {
  it('the rfc model accounts two MAPs of the same pages into two IOASIDs twice, and once when registered', () => {
    const fx = new Rfc();
    const a = fx.readyRoot(0);
    const b = fx.readyRoot(1, 2);
    assert.ok(fx.map(a, BASE, 4n * P, { off: 0n }).ok);
    assert.ok(fx.map(b, BASE, 4n * P, { off: 0n }).ok);
    assert.ok(fx.hit('MEM-009'));
    assert.equal(fx.locked, 8n);
    assert.ok(fx.unmap(a, BASE, 4n * P).ok);
    assert.ok(fx.unmap(b, BASE, 4n * P).ok);
    fx.ok(reg(0n, 4n * P));
    assert.ok(fx.map(a, BASE, 4n * P, { off: 0n }).ok);
    assert.ok(fx.map(b, BASE, 4n * P, { off: 0n }).ok);
    assert.equal(fx.locked, 4n);
  });
});

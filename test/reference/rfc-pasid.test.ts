// Chapter PASID in the rfc profile: the per-RID delegated, per-RID host-managed and global PASID schemes, the CPU PASID
// translation of ENQCMD, and the PASID state that migrates. Deterministic examples asserting outcome, errno, recorded
// clause and state.
import { strict as assert } from 'node:assert';
import type { Command, PasidState } from '../../src/reference/commands.ts';
import { ALL_RFC, BASE, P, Rfc, rfcPlatform } from './rfc-fixtures.ts';

/** dev0 and dev1 bound; IOASID A (dev0, dev1, dev2 by RID) and B (no device) with a page mapped at BASE in A. */
function twoSpaces(fx = new Rfc()): { fx: Rfc; a: number; b: number } {
  const a = fx.readyRoot(0, 1, 2);
  assert.ok(fx.map(a, BASE, P, { off: 0n }).ok);
  const b = fx.alloc();
  return { fx, a, b };
}

const W = 20;

describe('PASID-001 DEV-009 a user PASID must lie inside the device PASID space', () => {
  it('PASID 0 and PASIDs at or above 2^W give EINVAL and install nothing, in every scheme', () => {
    const { fx, a } = twoSpaces();
    for (const p of [0, 2 ** W, 2 ** W + 5])
      fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: p }, 'EINVAL', 'PASID-001');
    assert.equal(fx.attach(0, a, 2 ** W - 1).ok, true);
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 2 ** W - 1 });
    fx.global(1024);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 0 }, 'EINVAL', 'PASID-001');
    assert.equal(fx.state.devices[0]!.attachments.filter((x) => x.pasid !== undefined).length, 0);
  });
  it('a device without PASID capability has width 0: every user PASID is out of range', () => {
    const fx = new Rfc(
      ALL_RFC,
      rfcPlatform((p) => (p.devices[1]!.pasid = false)),
    );
    const a = fx.readyRoot(1, 2);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: a, pasid: 1 }, 'EINVAL', 'PASID-001');
  });
});

describe('PASID-002 DEV-009 a (device, PASID) routes to one IOASID at a time', () => {
  it('the same PASID again on the same device gives EBUSY, to the same or another IOASID, and the route stays', () => {
    const { fx, a, b } = twoSpaces();
    assert.ok(fx.attach(0, a, 5).ok);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 5 }, 'EBUSY', 'PASID-002');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: b, pasid: 5 }, 'EBUSY', 'PASID-002');
    assert.equal(fx.reach(0, BASE, { pasid: 5 }), 'buf0+0x0');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 5 });
    assert.ok(fx.attach(0, b, 5).ok);
  });
});

describe('PASID-003 DEV-008 a physical device user PASID is its real PASID', () => {
  it('DMA tagged with P reaches the IOASID, other PASIDs do not, and the real PASID is P', () => {
    const { fx, a, b } = twoSpaces();
    // DEV-008: P routes to the requested IOASID (B, empty) while DMA without a PASID still reaches A.
    assert.ok(fx.attach(0, b, 9).ok);
    assert.equal(fx.reach(0, BASE, { pasid: 9 }), 'fault:not-present');
    assert.equal(fx.reach(0, BASE), 'buf0+0x0');
    assert.ok(fx.attach(0, a, 7).ok);
    assert.equal(fx.real(0, 7), 7);
    assert.equal(fx.reach(0, BASE, { pasid: 7 }), 'buf0+0x0');
    assert.ok(fx.hit('PASID-003'));
    assert.equal(fx.reach(0, BASE, { pasid: 8 }), 'fault:blocked');
  });
});

describe('PASID-004 per-RID PASID spaces are independent', () => {
  it('the same user PASID on two physical devices reaches two different IOASIDs', () => {
    const fx = new Rfc();
    const a = fx.readyRoot(0);
    assert.ok(fx.map(a, BASE, P, { off: 0n }).ok);
    const b = fx.readyRoot(1, 2);
    assert.ok(fx.map(b, BASE, P, { off: 0x5000n }).ok);
    assert.ok(fx.attach(0, a, 3).ok);
    assert.ok(fx.attach(1, b, 3).ok);
    assert.equal(fx.reach(0, BASE, { pasid: 3 }), 'buf0+0x0');
    assert.equal(fx.reach(1, BASE, { pasid: 3 }), 'buf0+0x5000');
    assert.ok(fx.hit('PASID-004'));
  });
});

describe('PASID-005 ENQCMD to a physical device in the per-RID scheme is not translated', () => {
  it('CPU_ENQCMD carrying P reaches the device with P', () => {
    const { fx, a } = twoSpaces();
    assert.ok(fx.attach(0, a, 9).ok);
    assert.equal(fx.enqcmd(0, 9), 9);
    assert.ok(fx.hit('PASID-005'));
  });
});

describe('PASID-006 a mediated device user PASID is virtual', () => {
  it('the kernel allocates a real PASID on the parent RID; DMA through the mdev with P and the parent with the real one reach the IOASID', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3);
    assert.ok(fx.attach(3, a, 5).ok);
    const real = fx.real(3, 5)!;
    assert.notEqual(real, undefined);
    assert.ok(fx.hit('PASID-006'));
    assert.equal(fx.reach(3, BASE, { pasid: 5 }), 'buf0+0x0');
    assert.equal(fx.reach(0, BASE, { pasid: real }), 'buf0+0x0');
    if (real !== 5) assert.equal(fx.reach(0, BASE, { pasid: 5 }), 'fault:blocked');
  });
  it('the real PASID avoids the PASIDs the physical parent uses, and the parent cannot later take it', () => {
    // A mediated device without ENQCMD, so that the parent's delegated PASIDs may coexist (PASID-025).
    const { fx, a } = twoSpaces(
      new Rfc(
        ALL_RFC,
        rfcPlatform((p) => (p.devices[3]!.enqcmd = false)),
      ),
    );
    assert.ok(fx.attach(0, a, 1).ok);
    fx.bind(3);
    assert.ok(fx.attach(3, a, 1).ok);
    const real = fx.real(3, 1)!;
    assert.notEqual(real, 1);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: real }, 'EBUSY', 'PASID-002');
  });
});

describe('PASID-007 two mediated devices of one parent may use the same user PASID', () => {
  it('both attaches succeed with distinct real PASIDs (non-ENQCMD mdevs)', () => {
    const plat = rfcPlatform((p) => {
      p.devices[3]!.enqcmd = false;
      p.devices.push({ ...p.devices[3]!, name: 'mdev2', parent: 0 });
    });
    const fx = new Rfc(ALL_RFC, plat);
    const a = fx.readyRoot(0);
    const b = fx.alloc();
    fx.bind(3, 5);
    assert.ok(fx.attach(3, a, 2).ok);
    assert.ok(fx.attach(5, b, 2).ok);
    assert.ok(fx.hit('PASID-007'));
    assert.notEqual(fx.real(3, 2), fx.real(5, 2));
  });
});

describe('PASID-008 ENQCMD-capable mediated devices share one real PASID per user PASID', () => {
  it('two mdevs of different parents, same user PASID, same IOASID: one real PASID', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3, 4);
    assert.ok(fx.attach(3, a, 6).ok);
    assert.ok(fx.attach(4, a, 6).ok);
    assert.ok(fx.hit('PASID-008'));
    assert.equal(fx.real(3, 6), fx.real(4, 6));
  });
});

describe('PASID-009 SET_HWID_MODE accepts only the defined modes', () => {
  it('an unknown mode is EINVAL; the global mode without pasid-global is EOPNOTSUPP; the scheme is unchanged', () => {
    const fx = new Rfc(['pasid']);
    fx.fails({ op: 'IOASID_SET_HWID_MODE', mode: 7 }, 'EINVAL', 'PASID-009');
    fx.fails({ op: 'IOASID_SET_HWID_MODE', mode: 1 }, 'EOPNOTSUPP', 'PASID-009');
    assert.equal(fx.state.rfcx.mode, 'per-rid');
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 0 });
  });
});

describe('PASID-010 the scheme changes only while no PASID is in use', () => {
  it('EBUSY with a PASID attachment, even for the current mode; the mode value is checked first', () => {
    const { fx, a } = twoSpaces();
    assert.ok(fx.attach(0, a, 4).ok);
    fx.fails({ op: 'IOASID_SET_HWID_MODE', mode: 1 }, 'EBUSY', 'PASID-010');
    fx.fails({ op: 'IOASID_SET_HWID_MODE', mode: 0 }, 'EBUSY', 'PASID-010');
    fx.fails({ op: 'IOASID_SET_HWID_MODE', mode: 5 }, 'EINVAL', 'PASID-009');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 4 });
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    assert.equal(fx.state.rfcx.mode, 'global');
  });
});

describe('PASID-011 the global split needs the global scheme and a point inside the PASID space', () => {
  it('per-RID scheme, min below 2 and min above 2^W - 1 give EINVAL', () => {
    const fx = new Rfc();
    fx.fails({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 }, 'EINVAL', 'PASID-011');
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    for (const m of [0, 1, 2 ** W]) fx.fails({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: m }, 'EINVAL', 'PASID-011');
    assert.equal(fx.state.rfcx.globalMin, 0);
    fx.ok({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 2 });
    fx.ok({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 2 ** W - 1 });
  });
});

describe('PASID-012 the split changes only while no PASID is in use', () => {
  it('a later call replaces the split; with a PASID attached it is EBUSY', () => {
    const { fx, a } = twoSpaces();
    fx.global(16);
    fx.ok({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 });
    assert.equal(fx.state.rfcx.globalMin, 1024);
    assert.ok(fx.attach(0, a, 100).ok);
    fx.fails({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 64 }, 'EBUSY', 'PASID-012');
    fx.fails({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1 }, 'EINVAL', 'PASID-011');
    assert.equal(fx.state.rfcx.globalMin, 1024);
  });
});

describe('PASID-013 in the global scheme a user PASID must be local', () => {
  it('a PASID at or above min, and any PASID before the split is set, gives EINVAL', () => {
    const { fx, a } = twoSpaces();
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 5 }, 'EINVAL', 'PASID-013');
    fx.ok({ op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 });
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 1024 }, 'EINVAL', 'PASID-013');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 5000 }, 'EINVAL', 'PASID-013');
    assert.ok(fx.attach(0, a, 1023).ok);
  });
});

describe('PASID-014 the same local PASID is valid on every device', () => {
  it('a second device attaching L to the same IOASID reuses the global PASID, and both reach the IOASID by L and G', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    assert.ok(fx.attach(1, a, 5).ok);
    assert.ok(fx.hit('PASID-014'));
    const g = fx.real(0, 5)!;
    assert.equal(fx.real(1, 5), g);
    for (const dev of [0, 1]) {
      assert.equal(fx.reach(dev, BASE, { pasid: 5 }), 'buf0+0x0');
      assert.equal(fx.reach(dev, BASE, { pasid: g }), 'buf0+0x0');
    }
  });
});

describe('PASID-015 a local PASID cannot name two address spaces', () => {
  it('L bound to A by an attachment, then by a CPU translation only: attaching L to B gives EBUSY', () => {
    const { fx, a, b } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: b, pasid: 5 }, 'EBUSY', 'PASID-015');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 5 });
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: b, pasid: 5 }, 'EBUSY', 'PASID-015');
    fx.ok({ op: 'KVM_UNMAP_PASID', user_pasid: 5 });
    assert.ok(fx.attach(1, b, 5).ok);
  });
});

describe('PASID-016 global PASIDs come only from the global range', () => {
  it('every global PASID lies in [min, 2^W) and equals no local PASID', () => {
    const { fx, a, b } = twoSpaces();
    fx.global(8);
    const locals = [1, 2, 3, 4, 5, 6, 7];
    for (const l of locals) assert.ok(fx.attach(0, l % 2 === 0 ? a : b, l).ok);
    for (const l of locals) {
      const g = fx.real(0, l)!;
      assert.ok(g >= 8 && g < 2 ** W, `global ${g}`);
      assert.ok(!locals.includes(g));
    }
  });
  it('an implementation whose CPU_ENQCMD reveals a global PASID inside the local range violates PASID-016', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    const r = fx.model.step({ op: 'CPU_ENQCMD', dev: 0, pasid: 5 }, { ok: true, out: { pasid: 17 } });
    assert.deepEqual(
      r.violations.map((v) => v.clause),
      ['PASID-016'],
    );
  });
  it('an implementation choice inside the global range is adopted', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    const r = fx.model.step({ op: 'CPU_ENQCMD', dev: 0, pasid: 5 }, { ok: true, out: { pasid: 4000 } });
    assert.deepEqual(r.violations, []);
    assert.equal(fx.real(0, 5), 4000);
    assert.equal(fx.reach(0, BASE, { pasid: 4000 }), 'buf0+0x0');
  });
});

describe('PASID-017 a physical device gets both the local and the global PASID entry', () => {
  it('DMA tagged with L and with G both reach the IOASID; a mediated device is reached by G on its parent only', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    fx.bind(3);
    assert.ok(fx.attach(1, a, 9).ok);
    assert.ok(fx.hit('PASID-017'));
    const g = fx.real(1, 9)!;
    assert.equal(fx.reach(1, BASE, { pasid: 9 }), 'buf0+0x0');
    assert.equal(fx.reach(1, BASE, { pasid: g }), 'buf0+0x0');
    assert.ok(fx.attach(3, a, 9).ok);
    assert.equal(fx.reach(0, BASE, { pasid: g }), 'buf0+0x0');
    assert.equal(fx.reach(0, BASE, { pasid: 9 }), 'fault:blocked');
  });
});

describe('PASID-018 global PASIDs are keyed by the local PASID', () => {
  it('two local PASIDs on the same IOASID get two different global PASIDs', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    assert.ok(fx.attach(0, a, 6).ok);
    assert.notEqual(fx.real(0, 5), fx.real(0, 6));
  });
});

describe('PASID-019 a global PASID lives as long as its last user', () => {
  it('it keeps its value while an attachment or a CPU translation names it, and is released after the last', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    assert.ok(fx.attach(1, a, 5).ok);
    const g = fx.real(0, 5)!;
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 5 });
    assert.equal(fx.real(1, 5), g);
    assert.equal(fx.reach(0, BASE, { pasid: g }), 'fault:blocked');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 1, ioasid: a, pasid: 5 });
    assert.equal(fx.enqcmd(0, 5), g);
    fx.ok({ op: 'KVM_UNMAP_PASID', user_pasid: 5 });
    assert.equal(fx.state.rfcx.kpasids.size, 0);
    assert.equal(fx.reach(1, BASE, { pasid: g }), 'fault:blocked');
  });
});

describe('PASID-020 an exhausted pool fails the attach', () => {
  it('with one global PASID left, a second local PASID gives ENOSPC and installs nothing', () => {
    const { fx, a } = twoSpaces();
    fx.global(2 ** W - 1);
    assert.ok(fx.attach(0, a, 5).ok);
    const before = fx.fingerprint();
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: a, pasid: 6 }, 'ENOSPC', 'PASID-020');
    assert.equal(fx.fingerprint(), before);
    // Reusing the allocated one needs no new PASID.
    assert.ok(fx.attach(1, a, 5).ok);
  });
});

describe('PASID-021 KVM_MAP_PASID needs an existing kernel-allocated PASID', () => {
  it('ENOENT for an unknown IOASID, an unattached PASID, another IOASID, and a delegated per-RID PASID', () => {
    const { fx, a, b } = twoSpaces();
    // dev2 cannot use ENQCMD, so its delegated PASID does not conflict with the mdev's (PASID-025).
    assert.ok(fx.attach(2, a, 5).ok);
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a }, 'ENOENT', 'PASID-021');
    fx.bind(3);
    assert.ok(fx.attach(3, a, 6).ok);
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 6, ioasid: b }, 'ENOENT', 'PASID-021');
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 6, ioasid: 99 }, 'ENOENT', 'PASID-021');
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 8, ioasid: a }, 'ENOENT', 'PASID-021');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 6, ioasid: a });
    assert.equal(fx.state.rfcx.cpu.size, 1);
  });
});

describe('PASID-022 a CPU translation makes ENQCMD reach the device with the kernel-allocated PASID', () => {
  it('in the global scheme and for an ENQCMD mdev in the per-RID scheme', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3);
    assert.ok(fx.attach(3, a, 6).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 6, ioasid: a });
    assert.equal(fx.enqcmd(3, 6), fx.real(3, 6));
    assert.ok(fx.hit('PASID-022'));
    const g = new Rfc();
    const ga = g.readyRoot(0);
    g.global(1024);
    assert.ok(g.attach(0, ga, 5).ok);
    g.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: ga });
    assert.equal(g.enqcmd(0, 5), g.real(0, 5));
  });
});

describe('PASID-023 one CPU translation per user PASID', () => {
  it('a second KVM_MAP_PASID for the same PASID gives EBUSY and keeps the first', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    fx.fails({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a }, 'EBUSY', 'PASID-023');
    assert.equal(fx.enqcmd(0, 5), fx.real(0, 5));
  });
});

describe('PASID-024 KVM_UNMAP_PASID removes the translation', () => {
  it('after it CPU_ENQCMD with P faults; an unknown P gives ENOENT', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    fx.ok({ op: 'KVM_UNMAP_PASID', user_pasid: 5 });
    assert.equal(fx.enqcmd(0, 5), 'fault:no-translation');
    assert.ok(fx.hit('PASID-024'));
    fx.fails({ op: 'KVM_UNMAP_PASID', user_pasid: 5 }, 'ENOENT', 'PASID-024');
  });
});

describe('PASID-025 physical and mediated devices cannot both use ENQCMD in the per-RID scheme', () => {
  it('whichever is attached second gives EOPNOTSUPP; the global scheme accepts the mix', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: a, pasid: 6 }, 'EOPNOTSUPP', 'PASID-025');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 5 });
    assert.ok(fx.attach(3, a, 6).ok);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: a, pasid: 5 }, 'EOPNOTSUPP', 'PASID-025');
    // dev2 cannot use ENQCMD: no conflict.
    assert.ok(fx.attach(2, a, 5).ok);
    const g = twoSpaces();
    g.fx.global(1024);
    g.fx.bind(3);
    assert.ok(g.fx.attach(0, g.a, 5).ok);
    assert.ok(g.fx.attach(3, g.a, 6).ok);
  });
});

describe('PASID-034 check order of a user PASID attach', () => {
  it('range before in-use before the ENQCMD mix before the pool', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3);
    assert.ok(fx.attach(0, a, 5).ok);
    // Out of range and in use: EINVAL.
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 0 }, 'EINVAL', 'PASID-001');
    // In use on the mdev and a mix: EBUSY first.
    assert.ok(fx.state.devices[3]!.attachments.length === 0);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: a, pasid: 2 ** W }, 'EINVAL', 'PASID-001');
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 3, ioasid: a, pasid: 7 }, 'EOPNOTSUPP', 'PASID-025');
    // A conflicting attach on an exhausted pool: EBUSY, not ENOSPC.
    const g = twoSpaces();
    g.fx.global(2 ** W - 1);
    assert.ok(g.fx.attach(0, g.a, 5).ok);
    g.fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: g.b, pasid: 5 }, 'EBUSY', 'PASID-015');
    g.fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: g.b, pasid: 6 }, 'ENOSPC', 'PASID-020');
  });
});

describe('PASID-035 when the CPU PASID translation is on', () => {
  it('off for a per-RID fd with delegated PASIDs only; on once a kernel-allocated PASID exists', () => {
    const { fx, a } = twoSpaces();
    assert.ok(fx.attach(1, a, 4).ok);
    assert.equal(fx.enqcmd(1, 4), 4);
    assert.equal(fx.enqcmd(1, 12), 12);
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 1, ioasid: a, pasid: 4 });
    fx.bind(3);
    assert.ok(fx.attach(3, a, 4).ok);
    assert.equal(fx.enqcmd(3, 4), 'fault:no-translation');
    assert.ok(fx.hit('PASID-035'));
  });
  it('always on in the global scheme', () => {
    const fx = new Rfc();
    fx.global(1024);
    assert.equal(fx.enqcmd(0, 4), 'fault:no-translation');
  });
});

describe('PASID-036 changing the scheme clears the split', () => {
  it('global → per-RID → global needs a new split; keeping the scheme keeps it', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    assert.equal(fx.state.rfcx.globalMin, 1024);
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 0 });
    fx.ok({ op: 'IOASID_SET_HWID_MODE', mode: 1 });
    assert.equal(fx.state.rfcx.globalMin, 0);
    fx.fails({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: a, pasid: 5 }, 'EINVAL', 'PASID-013');
  });
});

describe('PASID-037 an IOASID that a CPU translation names cannot be freed', () => {
  it('IOASID_FREE gives EBUSY with no device attached, and succeeds after KVM_UNMAP_PASID', () => {
    const fx = new Rfc();
    fx.global(1024);
    fx.bind(0);
    const x = fx.alloc();
    assert.ok(fx.attach(0, x, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: x });
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: x, pasid: 5 });
    fx.fails({ op: 'IOASID_FREE', ioasid: x }, 'EBUSY', 'PASID-037');
    fx.ok({ op: 'KVM_UNMAP_PASID', user_pasid: 5 });
    fx.ok({ op: 'IOASID_FREE', ioasid: x });
  });
});

/** The state IOASID_PASID_STATE_SAVE returned. */
function saved(fx: Rfc): PasidState {
  return fx.ok({ op: 'IOASID_PASID_STATE_SAVE' }).state as PasidState;
}

describe('PASID-026 saved PASID state holds only user-visible PASIDs', () => {
  it('the scheme, the split and (device, user PASID, IOASID) triples; no global or mdev real PASID', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    fx.bind(3);
    assert.ok(fx.attach(0, a, 5).ok);
    assert.ok(fx.attach(3, a, 7).ok);
    const s = saved(fx);
    assert.deepEqual(s, {
      mode: 1,
      min: 1024,
      attachments: [
        { dev: 0, pasid: 5, ioasid: a },
        { dev: 3, pasid: 7, ioasid: a },
      ],
    });
    // The exact structure above holds only user PASIDs; the kernel-allocated ones differ from them.
    assert.notEqual(fx.real(0, 5), 5);
    assert.notEqual(fx.real(3, 7), 7);
  });
});

describe('PASID-027 local PASIDs migrate unchanged', () => {
  it('after MIGRATE every user PASID is attached on the same device to the same IOASID and DMA by it reaches it', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    assert.ok(fx.attach(1, a, 6).ok);
    const before = saved(fx);
    fx.ok({ op: 'MIGRATE' });
    assert.ok(fx.hit('PASID-027'));
    assert.deepEqual(saved(fx), before);
    assert.equal(fx.reach(0, BASE, { pasid: 5 }), 'buf0+0x0');
    assert.equal(fx.reach(1, BASE, { pasid: 6 }), 'buf0+0x0');
  });
});

describe('PASID-028 global PASIDs are re-allocated on the destination', () => {
  it('every global PASID is fresh, and the source values being taken does not fail the restore', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    const g = fx.real(0, 5)!;
    fx.ok({ op: 'MIGRATE' });
    assert.ok(fx.hit('PASID-028'));
    const g2 = fx.real(0, 5)!;
    assert.notEqual(g2, g);
    assert.ok(g2 >= 1024);
    assert.equal(fx.reach(0, BASE, { pasid: g2 }), 'buf0+0x0');
    assert.equal(fx.reach(0, BASE, { pasid: g }), 'fault:blocked');
  });
});

describe('PASID-029 CPU translations are rebuilt by the user', () => {
  it('after MIGRATE CPU_ENQCMD with a migrated local PASID faults until KVM_MAP_PASID', () => {
    const { fx, a } = twoSpaces();
    fx.global(1024);
    assert.ok(fx.attach(0, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    assert.equal(fx.enqcmd(0, 5), fx.real(0, 5));
    fx.ok({ op: 'MIGRATE' });
    assert.equal(fx.enqcmd(0, 5), 'fault:no-translation');
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    assert.equal(fx.enqcmd(0, 5), fx.real(0, 5));
  });
});

describe('PASID-030 RESTORE needs a destination without PASIDs', () => {
  it('EBUSY with a PASID attachment; ENOENT for an unbound device or a missing IOASID; all or nothing', () => {
    const { fx, a } = twoSpaces();
    assert.ok(fx.attach(0, a, 5).ok);
    const s = saved(fx);
    const restore = (state: PasidState): Command => ({ op: 'IOASID_PASID_STATE_RESTORE', state });
    fx.fails(restore(s), 'EBUSY', 'PASID-030');
    fx.ok({ op: 'VFIO_DETACH_IOASID', dev: 0, ioasid: a, pasid: 5 });
    fx.fails(restore({ ...s, attachments: [{ dev: 3, pasid: 5, ioasid: a }] }), 'ENOENT', 'PASID-030');
    fx.fails(restore({ ...s, attachments: [{ dev: 0, pasid: 5, ioasid: 77 }] }), 'ENOENT', 'PASID-030');
    // A later attachment that fails undoes the earlier ones.
    fx.fails(
      restore({
        ...s,
        attachments: [
          { dev: 0, pasid: 5, ioasid: a },
          { dev: 1, pasid: 0, ioasid: a },
        ],
      }),
      'EINVAL',
    );
    assert.equal(fx.state.devices[0]!.attachments.filter((x) => x.pasid !== undefined).length, 0);
    fx.ok(restore(s));
    assert.equal(fx.reach(0, BASE, { pasid: 5 }), 'buf0+0x0');
  });
});

describe('PASID-031 mediated devices migrate by their virtual PASIDs', () => {
  it('the mdev is saved by its user PASID and gets a new real PASID on the destination parent', () => {
    const { fx, a } = twoSpaces();
    fx.bind(3);
    assert.ok(fx.attach(3, a, 6).ok);
    const r1 = fx.real(3, 6)!;
    assert.deepEqual(saved(fx).attachments, [{ dev: 3, pasid: 6, ioasid: a }]);
    fx.ok({ op: 'MIGRATE' });
    assert.ok(fx.hit('PASID-031'));
    const r2 = fx.real(3, 6)!;
    assert.notEqual(r2, r1);
    assert.equal(fx.reach(3, BASE, { pasid: 6 }), 'buf0+0x0');
    assert.equal(fx.reach(0, BASE, { pasid: r2 }), 'buf0+0x0');
  });
});

describe('PASID-038 what MIGRATE moves besides the PASID state', () => {
  it('IOASIDs, mappings, RID attachments and bound tables stay; CPU translations go', () => {
    const { fx, a } = twoSpaces();
    const child = fx.nest(a, 'pgtable');
    assert.ok(fx.attach(0, child).ok);
    fx.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: child, table_format: 'vtd-s1-4lvl', root: 0x8000n });
    fx.global(1024);
    assert.ok(fx.attach(1, a, 5).ok);
    fx.ok({ op: 'KVM_MAP_PASID', user_pasid: 5, ioasid: a });
    const objects = [...fx.state.objects.keys()];
    fx.ok({ op: 'MIGRATE' });
    assert.ok(fx.hit('PASID-038'));
    assert.deepEqual([...fx.state.objects.keys()], objects);
    assert.equal(fx.state.get(child, 'ioasid')!.bound, 0x8000n);
    assert.equal(fx.reach(2, BASE), 'buf0+0x0');
    assert.equal(fx.state.rfcx.cpu.size, 0);
  });
});

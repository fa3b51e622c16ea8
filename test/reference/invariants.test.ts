// The invariants of the reference model (src/reference/invariants.ts): a fast-check property per invariant and
// profile over random walks of 100+ steps drawn from the project's generators (each property also shows its walks
// reach the invariant), the full O(n) checker as the oracle of the incremental one, and for every invariant a
// corrupted state injected through the test-only hook, so that no property is vacuous.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { PROFILES, type Command, type Profile } from '../../src/reference/commands.ts';
import { makeArea, addArea, removeArea } from '../../src/reference/core/placement.ts';
import type { Violation } from '../../src/reference/core/context.ts';
import { checkAllInvariants, INVARIANT_CLAUSES, type InvariantName } from '../../src/reference/invariants.ts';
import type { Model } from '../../src/reference/model.ts';
import type { Space, State } from '../../src/reference/state.ts';
import { BASE, Fixture, P, RandomWalk, VARIANTS, type Variant } from './fixtures.ts';

/** The invariants that have something to check in a profile (vfio-type1 has no objects, only rfc has formats). */
const APPLIES: Record<InvariantName, readonly Profile[]> = {
  'no-overlap': PROFILES,
  reserved: PROFILES,
  'map-shape': PROFILES,
  'unmap-whole': PROFILES,
  format: ['rfc'],
  attachments: PROFILES,
  destroyed: ['rfc', 'iommufd'],
  accounting: PROFILES,
  // Not property-tested yet: 3,000-step walks of the current generators never reach a PASID attachment under the
  // global scheme nor a fault step in rfc / iommufd (0 evaluations), so a property here would be vacuous.
  pasid: [],
  fault: [],
};

/** Templates per walk: enough that a walk keeps 100+ steps after the generators' drops. */
const MIN_TEMPLATES = 140;
const RUNS = 12;

/** The full checker's verdict on the model's current state. */
function oracle(m: Model): Violation[] {
  return checkAllInvariants(m.snapshot().state);
}

const fmt = (vs: readonly Violation[]): string => vs.map((v) => `${v.clause} ${v.message}`).join('; ');

for (const profile of PROFILES) {
  describe(`invariants over random walks in ${profile}`, () => {
    for (const name of Object.keys(APPLIES) as InvariantName[]) {
      if (!APPLIES[name].includes(profile)) continue;
      const clauses = INVARIANT_CLAUSES[name];
      it(`${clauses.join(' ')} invariant "${name}" holds after every step of 100+ step walks (${profile})`, () => {
        let evaluated = 0;
        let shortest = Infinity;
        const walk = new RandomWalk(profile);
        const templates = fc.array(walk.template(), { minLength: MIN_TEMPLATES, maxLength: MIN_TEMPLATES + 60 });
        fc.assert(
          fc.property(templates, (ts) => {
            const w = new RandomWalk(profile);
            const n = w.run(ts, (cmd: Command, r) => {
              const broken = r.violations.filter((v) => clauses.includes(v.clause));
              assert.deepEqual(broken, [], `${cmd.op} at step ${w.steps}: ${fmt(broken)}`);
              if (w.steps % 25 === 0) assert.deepEqual(oracle(w.model), [], `full checker at step ${w.steps}`);
            });
            shortest = Math.min(shortest, n);
            assert.deepEqual(oracle(w.model), [], 'full checker at the end');
            evaluated += w.model.invariants!.evaluated[name];
          }),
          { numRuns: RUNS, seed: 0x1c0 + PROFILES.indexOf(profile) },
        );
        assert.ok(shortest >= 100, `every walk is at least 100 steps long (shortest ${shortest})`);
        assert.ok(evaluated > 0, `the walks reached invariant ${name} (${evaluated} evaluations)`);
      });
    }
  });
}

// ------------------------------------------------------------------------------------------------ corruptions

/** The address space of a fixture, from the state. */
function spaceOf(st: State, v: Variant): Space {
  if (v.profile === 'vfio-type1') return st.container.space;
  const o = st.objects.get(1);
  const space = o?.kind === 'ioas' || o?.kind === 'ioasid' ? o.space : undefined;
  if (space !== undefined) return space;
  throw new Error('the fixture has no address space 1');
}

/** Steps `cmd` on the fixture with `corrupt` applied inside the step; returns the clauses the checker reported. */
function corrupted(f: Fixture, cmd: Command, corrupt: (st: State) => void): string[] {
  f.model.invariants!.injectOnce = corrupt;
  const r = f.model.step(cmd);
  assert.equal(f.model.invariants!.injectOnce, undefined, 'the hook ran');
  return r.violations.map((v) => v.clause);
}

/** Asserts the incremental checker reported `clause` and, when `full`, that the oracle finds it in the state too. */
function expectCaught(f: Fixture, got: readonly string[], clause: string, full = true): void {
  assert.ok(got.includes(clause), `reported ${clause} (got [${got.join(', ')}])`);
  if (full) {
    const all = oracle(f.model).map((v) => v.clause);
    assert.ok(all.includes(clause), `the full checker also finds ${clause} (got [${all.join(', ')}])`);
  }
}

const reservedClause = (v: Variant): string => (v.profile === 'iommufd' ? 'MAP-009' : 'MAP-008');

for (const v of VARIANTS) {
  describe(`invariants catch corrupted states in ${v.name}`, () => {
    it('MAP-002 no two mappings overlap: an overlapping area slipped in by a MAP is reported', () => {
      const f = new Fixture(v);
      const got = corrupted(f, f.mapCmd(BASE, P), (st) =>
        addArea(spaceOf(st, v), st.platform, makeArea(BASE + P / 2n, P, 0n, 0, BASE, 3, 999)),
      );
      expectCaught(f, got, 'MAP-002');
    });

    it(`${reservedClause(v)} DEV-015 mappings avoid reserved ranges: a mapping in the MSI window, a reservation over a mapping`, () => {
      const f = new Fixture(v);
      const got = corrupted(f, f.mapCmd(BASE, P), (st) =>
        addArea(spaceOf(st, v), st.platform, makeArea(0xfee0_0000n, P, 0n, 0, 0n, 3, 998)),
      );
      expectCaught(f, got, reservedClause(v));
      const g = new Fixture(v);
      const got2 = corrupted(g, g.mapCmd(BASE, P), (st) =>
        spaceOf(st, v).reserved.add({ start: BASE, last: BASE + P - 1n, owner: 'test' }),
      );
      expectCaught(g, got2, 'DEV-015');
    });

    it('MAP-001 a MAP creates exactly one mapping: a second area created by the same MAP is reported', () => {
      const f = new Fixture(v);
      const got = corrupted(f, f.mapCmd(BASE, P), (st) =>
        addArea(spaceOf(st, v), st.platform, makeArea(BASE + 16n * P, P, 0n, 0, BASE, 3, 997)),
      );
      expectCaught(f, got, 'MAP-001', false);
    });

    it('MAP-026 MAP-029 MAP-031 an UNMAP removes whole mappings: a remnant, a miscount, a survivor of unmap-all', () => {
      const f = new Fixture(v);
      f.map(BASE, 2n * P);
      const remnant = corrupted(f, f.unmapCmd(BASE, 2n * P), (st) =>
        addArea(spaceOf(st, v), st.platform, makeArea(BASE + P, P, 0n, 0, BASE + P, 3, 996)),
      );
      expectCaught(f, remnant, 'MAP-026', false);
      const g = new Fixture(v);
      g.map(BASE, P);
      g.map(BASE + 4n * P, P);
      const miscount = corrupted(g, g.unmapCmd(BASE, P), (st) => {
        const s = spaceOf(st, v);
        removeArea(s, st.platform, s.areas.containing(BASE + 4n * P)!);
      });
      expectCaught(g, miscount, 'MAP-029', false);
      const h = new Fixture(v);
      h.map(BASE, P);
      const all = h.unmapAll().ok;
      assert.ok(all);
      h.map(BASE, P);
      const survivor = corrupted(h, unmapAllCmd(v), (st) =>
        addArea(spaceOf(st, v), st.platform, makeArea(BASE, P, 0n, 0, BASE, 3, 995)),
      );
      expectCaught(h, survivor, 'MAP-031', false);
    });

    if (v.profile !== 'iommufd')
      it('MAP-039 a failed UNMAP removes nothing: a mapping removed by a refused UNMAP is reported', () => {
        const f = new Fixture(v);
        f.map(BASE, P);
        const got = corrupted(f, f.unmapCmd(BASE + 1n, P), (st) => {
          const s = spaceOf(st, v);
          removeArea(s, st.platform, s.areas.containing(BASE)!);
        });
        expectCaught(f, got, 'MAP-039', false);
      });

    it('MEM-016 accounting equals what the mappings imply: a wrong user count, a wrong unpinnable count', () => {
      const f = new Fixture(v);
      const got = corrupted(f, f.mapCmd(BASE, P), (st) => {
        const s = spaceOf(st, v);
        const a = s.areas.containing(BASE)!;
        s.pagesUsers.set(a.pages, 7);
      });
      expectCaught(f, got, 'MEM-016');
      const g = new Fixture(v);
      const got2 = corrupted(g, g.mapCmd(BASE, P), (st) => {
        spaceOf(st, v).badAreas++;
      });
      expectCaught(g, got2, 'MEM-016');
    });
  });
}

function unmapAllCmd(v: Variant): Command {
  switch (v.profile) {
    case 'iommufd':
      return { op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: 0n, length: (1n << 64n) - 1n };
    case 'rfc':
      return { op: 'IOASID_UNMAP_DMA', ioasid: 1, flags: 2, iova: 0n, size: 0n };
    case 'vfio-type1':
      return { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 2, iova: 0n, size: 0n };
  }
}

const RFC = VARIANTS.find((x) => x.profile === 'rfc')!;
const IOMMUFD = VARIANTS.find((x) => x.profile === 'iommufd')!;
const TYPE1 = VARIANTS.find((x) => x.name === 'vfio-type1 v2')!;

describe('invariants catch corrupted objects and attachments', () => {
  it('IOAS-008 IOAS-009 an IOASID format never changes, and a user-managed one holds no kernel mapping (rfc)', () => {
    const f = new Fixture(RFC);
    f.map(BASE, P);
    const got = corrupted(f, { op: 'IOASID_GET_INFO', ioasid: 1 }, (st) => {
      (st.objects.get(1) as { format: string }).format = 'pgtable';
    });
    expectCaught(f, got, 'IOAS-008', false);
    expectCaught(f, got, 'IOAS-009');
    const g = new Fixture(RFC);
    const got2 = corrupted(g, { op: 'IOASID_ALLOC' }, (st) => {
      const o = st.objects.get(1)!;
      st.objects.set(1, { ...o, format: 'pasid-table' } as typeof o);
    });
    expectCaught(g, got2, 'IOAS-008', false);
  });

  it('MAP-022 an automatic IOVA stays inside the allowed ranges (iommufd)', () => {
    const f = new Fixture(IOMMUFD);
    assert.ok(
      f.step({ op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [{ start: 0x4000_0000n, last: 0x4fff_ffffn }] }).ok,
    );
    const cmd: Command = {
      op: 'IOMMU_IOAS_MAP',
      ioas_id: 1,
      flags: 6,
      user_va: { buf: 0, off: 0n },
      length: P,
      iova: 0n,
    };
    const got = corrupted(f, cmd, (st) => {
      const s = spaceOf(st, IOMMUFD);
      const a = s.areas.containing(0x4000_0000n)!;
      removeArea(s, st.platform, a);
      addArea(s, st.platform, { ...a, iova: 0x8000_0000n, last: 0x8000_0000n + P - 1n });
    });
    expectCaught(f, got, 'MAP-022', false);
  });

  it('DEV-016 FD-012 DEV-003 bindings and attachments name live objects with matching counts (iommufd)', () => {
    const f = new Fixture(IOMMUFD);
    expectCaught(
      f,
      corrupted(f, { op: 'IOMMU_IOAS_ALLOC' }, (st) => void (st.devices[0]!.hwpt = 99)),
      'DEV-016',
    );
    const g = new Fixture(IOMMUFD);
    const got = corrupted(g, { op: 'IOMMU_IOAS_ALLOC' }, (st) => {
      const h = st.objects.get(3)!;
      if (h.kind === 'hwpt-paging') h.devices++;
    });
    expectCaught(g, got, 'FD-012', false);
    const h = new Fixture(IOMMUFD);
    expectCaught(
      h,
      corrupted(h, { op: 'IOMMU_IOAS_ALLOC' }, (st) => void (st.devices[1]!.boundId = 1)),
      'DEV-003',
    );
  });

  it('DEV-016 DEV-017 FD-017 attachments name a bound device and a live IOASID with matching counts (rfc)', () => {
    const f = new Fixture(RFC);
    const got = corrupted(f, { op: 'IOASID_ALLOC' }, (st) =>
      st.devices[0]!.attachments.push({ ioasid: 42, pasid: undefined }),
    );
    expectCaught(f, got, 'DEV-016');
    const g = new Fixture(RFC);
    expectCaught(
      g,
      corrupted(g, { op: 'IOASID_ALLOC' }, (st) => void (st.devices[0]!.boundId = 0)),
      'DEV-017',
    );
    const h = new Fixture(RFC);
    const got3 = corrupted(h, { op: 'IOASID_ALLOC' }, (st) => {
      const o = st.objects.get(1)!;
      if (o.kind === 'ioasid') o.attachments++;
    });
    expectCaught(h, got3, 'FD-017', false);
  });

  it('MEM-015 FD-019 the container counts its DMA entries and keeps nothing without groups (vfio-type1)', () => {
    const f = new Fixture(TYPE1);
    expectCaught(
      f,
      corrupted(f, f.mapCmd(BASE, P), (st) => void st.container.dmaAvail--),
      'MEM-015',
    );
    const g = new Fixture(TYPE1);
    g.map(BASE, P);
    const got = corrupted(g, { op: 'VFIO_GROUP_UNSET_CONTAINER', group: 1 }, (st) => {
      st.container.iommuType = 3;
    });
    expectCaught(g, got, 'FD-019');
  });

  it('FD-009 FD-016 a destroyed IOAS leaves no reference and no mapping behind (iommufd)', () => {
    const f = new Fixture(IOMMUFD);
    assert.ok(f.step({ op: 'IOMMU_IOAS_ALLOC' }).ok);
    assert.ok(f.step({ op: 'IOMMU_VFIO_IOAS', operation: 1, ioas_id: 4 }).ok);
    const got = corrupted(f, { op: 'IOMMU_DESTROY', id: 4 }, (st) => void (st.vfioIoas = 4));
    expectCaught(f, got, 'FD-009', false);
    const g = new Fixture(IOMMUFD);
    assert.ok(g.step({ op: 'IOMMU_IOAS_ALLOC' }).ok);
    let space: Space | undefined;
    // A harmless step whose hook only keeps a handle on IOAS 4's live address space.
    const none = corrupted(g, { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: 4, num_iovas: 8 }, (st) => {
      space = st.get(4, 'ioas')!.space;
    });
    assert.deepEqual(none, []);
    // The destroy "forgets" to unmap: a mapping stays in the destroyed IOAS.
    const got2 = corrupted(g, { op: 'IOMMU_DESTROY', id: 4 }, (st) =>
      addArea(space!, st.platform, makeArea(BASE, P, 0n, 0, BASE, 3, 994)),
    );
    expectCaught(g, got2, 'FD-016', false);
  });

  it('FD-018 DEV-016 a freed IOASID is named by no attachment (rfc)', () => {
    const f = new Fixture(RFC);
    assert.ok(f.step({ op: 'IOASID_ALLOC' }).ok);
    const got = corrupted(f, { op: 'IOASID_FREE', ioasid: 2 }, (st) =>
      st.devices[1]!.attachments.push({ ioasid: 2, pasid: undefined }),
    );
    expectCaught(f, got, 'FD-018', false);
    expectCaught(f, got, 'DEV-016');
  });

  it('DEV-026 an automatic HWPT freed by the last detach is named by no device (iommufd)', () => {
    const f = new Fixture(IOMMUFD);
    const got = corrupted(f, { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }, (st) => void (st.devices[0]!.hwpt = 3));
    expectCaught(f, got, 'DEV-026', false);
  });
});

// The bug catalogue (conformance/bugs): every entry names clauses that exist and apply to its profile, has a
// rationale, and is an adapter; the mechanism leaves the reference path alone and lets state-changing bugs show up
// later in a trace. Titles name the clauses each check covers.
import { strict as assert } from 'node:assert';
import { BUGS, executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { createAdapter } from '../../conformance/adapters/registry.ts';
import { CATALOGUE } from '../../conformance/bugs/catalogue.ts';
import { checkReplies } from '../../conformance/runner.ts';
import { IOAS_MAP, type Command } from '../../src/reference/commands.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { DEFAULT_SPEC_DIR, loadSpec } from '../../src/spec/spec.ts';
import { loadVocabularies } from '../../src/spec/vocabulary.ts';

const { spec } = loadSpec();
const FEATURES = new Set(loadVocabularies(DEFAULT_SPEC_DIR).features.map((f) => f.name));

describe('bug catalogue: every entry is tied to clauses of the specification', () => {
  it('holds at least 30 bugs over at least 8 chapters and all three profiles', () => {
    const names = Object.keys(CATALOGUE);
    assert.ok(names.length >= 30, `only ${names.length} bugs`);
    assert.ok(new Set(Object.values(CATALOGUE).map((b) => b.chapter)).size >= 8);
    assert.deepEqual([...new Set(Object.values(CATALOGUE).map((b) => b.profile))].sort(), [
      'iommufd',
      'rfc',
      'vfio-type1',
    ]);
  });

  for (const [name, b] of Object.entries(CATALOGUE))
    it(`${name} names ${b.clauses.join(', ')}: they exist and apply to ${b.profile}`, () => {
      assert.ok(b.clauses.length > 0, 'names no clause');
      for (const id of b.clauses) {
        const c = spec.byId.get(id);
        assert.ok(c !== undefined, `${id} is not a clause of spec/chapters`);
        assert.ok(
          c.profiles.includes(b.profile),
          `${id} does not apply to profile ${b.profile} (${c.profiles.join(',')})`,
        );
      }
      assert.ok(
        b.clauses.some((id) => id.startsWith(`${b.chapter}-`)),
        `no clause of its chapter ${b.chapter}`,
      );
      assert.ok(b.rationale.length >= 120, 'the rationale should say where such a bug lives');
      for (const f of b.features ?? []) assert.ok(FEATURES.has(f), `feature ${f} is not in spec/features.txt`);
      assert.ok(b.description.length > 20);
    });

  it('keeps the historical buggy-<bug> names (unmap-bisect MAP-026, map-overlap MAP-002, destroy-errno FD-002, id-skip FD-004, crash-third-unmap)', () => {
    for (const n of ['unmap-bisect', 'map-overlap', 'destroy-errno', 'id-skip', 'crash-third-unmap']) {
      assert.ok(BUGS[n] !== undefined, n);
      assert.equal(createAdapter(`buggy-${n}`).name, `buggy-${n}`);
    }
  });

  it("a buggy-<bug> adapter speaks its bug's profile unless told otherwise (rfc-attach-twice DEV-007, type1-dma-avail-leak MEM-015)", async () => {
    assert.equal((await createAdapter('buggy-rfc-attach-twice').open()).profile, 'rfc');
    assert.equal((await createAdapter('buggy-type1-dma-avail-leak').open()).profile, 'vfio-type1');
    const asked = await createAdapter('buggy-type1-dma-avail-leak', { profile: 'iommufd' }).open();
    assert.equal(asked.profile, 'iommufd');
    // The features a bug needs come with its own profile only (FMT-002's bug needs user-managed IOASIDs).
    assert.ok((await createAdapter('buggy-map-on-user-ioasid').open()).features.includes('nesting-hw'));
    assert.ok(
      !(await createAdapter('buggy-map-on-user-ioasid', { profile: 'iommufd' }).open()).features.includes('pasid'),
    );
  });
});

const caps = referenceCapabilities();
const buf = (off: bigint) => ({ buf: 0, off });
const map = (iova: bigint, length: bigint): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: { ref: 0 },
  flags: IOAS_MAP.FIXED_IOVA | IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE,
  user_va: buf(iova),
  length,
  iova,
});
const TWO_AREAS: Command[] = [{ op: 'IOMMU_IOAS_ALLOC' }, map(0x10000n, 0x1000n), map(0x20000n, 0x2000n)];

describe('bug mechanism: the reference path is untouched and bugs change one behaviour', () => {
  it('MAP-001 MAP-028 a bug that does not fire answers exactly like the reference', () => {
    const steps: Command[] = [
      ...TWO_AREAS,
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x10000n, length: 0x1000n },
    ];
    const ref = executeTrace(caps, steps);
    for (const name of ['unmap-all-keeps-last', 'unmap-bisect', 'map-overlap', 'auto-iova-zero'])
      assert.deepEqual(executeTrace(referenceCapabilities({ bug: name }), steps, BUGS[name]), ref, name);
  });

  it('MAP-031 unmap-all-keeps-last: the short length diverges, and the area it kept makes a later MAP fail', () => {
    const bugCaps = referenceCapabilities({ bug: 'unmap-all-keeps-last' });
    const all: Command = { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0n, length: U64_MAX };
    const reply = executeTrace(bugCaps, [...TWO_AREAS, all, map(0x20000n, 0x2000n)], BUGS['unmap-all-keeps-last']);
    assert.deepEqual(reply.replies[3]!.outcome, { ok: true, out: { length: 0x1000n } });
    assert.deepEqual(reply.replies[4]!.outcome, { ok: false, errno: 'EEXIST' });
    const v = checkReplies(caps, [...TWO_AREAS, all, map(0x20000n, 0x2000n)], reply);
    assert.equal(v.failure?.step, 3);
    assert.ok(v.failure?.clauses.includes('MAP-031'));
  });

  it('IOAS-017 allow-iovas-not-atomic: the failed call answers like the reference; the half-applied list shows in a later automatic MAP (MAP-020, MAP-024)', () => {
    const steps: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC' },
      {
        op: 'IOMMU_IOAS_ALLOW_IOVAS',
        ioas_id: { ref: 0 },
        iovas: [
          { start: 0x1000n, last: 0x1fffn },
          { start: 0x1800n, last: 0x2fffn },
        ],
      },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 0 },
        flags: IOAS_MAP.READABLE,
        user_va: buf(0n),
        length: 0x2000n,
        iova: 0n,
      },
    ];
    const reply = executeTrace(caps, steps, BUGS['allow-iovas-not-atomic']);
    const ref = executeTrace(caps, steps);
    assert.deepEqual(reply.replies[1], ref.replies[1]);
    const v = checkReplies(caps, steps, reply);
    assert.equal(v.failure?.step, 2, v.failure?.message);
    // Only the first range (one page) is allowed in the implementation: no room for two pages.
    assert.deepEqual(reply.replies[2]!.outcome, { ok: false, errno: 'ENOSPC' });
    assert.ok(v.failure?.clauses.includes('MAP-020'));
  });

  it('MAP-026 unmap-bisect cuts the mapping: the rest of it is still mapped afterwards', () => {
    const steps: Command[] = [
      ...TWO_AREAS,
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x21000n, length: 0x1000n },
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x20000n, length: 0x1000n },
    ];
    const r = executeTrace(caps, steps, BUGS['unmap-bisect']);
    assert.deepEqual(r.replies[3]!.outcome, { ok: true, out: { length: 0x1000n } });
    assert.deepEqual(r.replies[4]!.outcome, { ok: true, out: { length: 0x1000n } });
  });
});

// Trace generation: templates realised against the reference model's view. Mechanics tests name the feature;
// tests that check a generated step provokes a clause name the clause.
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { PROFILE_COMMANDS, PROFILES, type Command, type Profile } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { decodeTrace, encodeTrace } from '../../src/reference/trace.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { REFERENCE_FEATURES } from '../../conformance/adapters/reference.ts';
import { Picks, PICK_RANGE, type Template } from '../../generators/template.ts';
import { subtractAreas, templatesFor, TraceGenerator, wrapU64, lengthBucket } from '../../generators/trace.ts';

const platform = defaultPlatform();
const gen = (
  profile: Profile,
  features = REFERENCE_FEATURES[profile],
  extra: { adversarial?: number; maxSteps?: number } = {},
) => new TraceGenerator({ profile, features: [...features], platform, ...extra });

/** The trace refers only to earlier steps. */
function refsBackwards(steps: readonly Command[]): boolean {
  return steps.every((s, i) =>
    Object.values(s).every(
      (v) =>
        typeof v !== 'object' ||
        v === null ||
        typeof (v as { ref?: unknown }).ref !== 'number' ||
        (v as { ref: number }).ref < i,
    ),
  );
}

describe('generators: picks', () => {
  it('picks read as indexes, fractions, chances and bigints, and shrink towards the first choice', () => {
    const p = new Picks([0, 5, PICK_RANGE - 1, PICK_RANGE / 2]);
    assert.equal(p.int(0, 7), 0);
    assert.equal(p.int(1, 3), 2);
    assert.equal(p.int(9, 3), 0, 'a missing pick reads as 0');
    assert.equal(p.int(1, 0), 0);
    assert.equal(p.chance(0, 0.3), false, 'pick 0 is "no"');
    assert.equal(p.chance(2, 0.01), true);
    assert.equal(p.of(1, ['a', 'b', 'c']), 'c');
    assert.equal(p.big(3, 100n), 50n);
    assert.ok(p.frac(2) < 1);
  });
});

describe('generators: trace realisation', () => {
  for (const profile of PROFILES) {
    it(`${profile}: every realised trace is a valid trace of its profile and refers only backwards`, () => {
      const g = gen(profile);
      fc.assert(
        fc.property(g.arbitrary(), (templates) => {
          const r = g.realise(templates);
          assert.equal(r.error, undefined, r.error?.message);
          const d = decodeTrace(JSON.parse(encodeTrace(r.trace)));
          assert.ok(d.ok, d.ok ? '' : JSON.stringify(d.errors));
          for (const s of r.trace.steps) assert.ok(PROFILE_COMMANDS[profile].is(s), `${s.op} is a ${profile} command`);
          assert.ok(refsBackwards(r.trace.steps));
          assert.ok(r.trace.steps.length <= templates.length);
        }),
        { seed: 7, numRuns: 40 },
      );
    });

    it(`${profile}: removing templates (what shrinking does) keeps every trace valid`, () => {
      const g = gen(profile);
      fc.assert(
        fc.property(g.arbitrary(), fc.array(fc.nat(), { maxLength: 20 }), (templates, drops) => {
          const kept = templates.filter((_t, i) => !drops.includes(i % 23));
          const r = g.realise(kept);
          assert.equal(r.error, undefined);
          assert.ok(decodeTrace(JSON.parse(encodeTrace(r.trace))).ok);
          assert.ok(refsBackwards(r.trace.steps));
        }),
        { seed: 11, numRuns: 30 },
      );
    });
  }

  it('realisation is deterministic: the same templates give the same trace', () => {
    const g = gen('iommufd');
    const [templates] = fc.sample(g.arbitrary(), { seed: 3, numRuns: 1 });
    assert.equal(encodeTrace(g.realise(templates!).trace), encodeTrace(g.realise(templates!).trace));
    const again = fc.sample(g.arbitrary(), { seed: 3, numRuns: 1 })[0]!;
    assert.deepEqual(again, templates);
  });

  it('capability gating: only commands of the declared profile and features are drawn', () => {
    const bare = templatesFor('iommufd', []);
    assert.ok(!bare.some((d) => d.op === 'IOMMU_IOAS_COPY'), 'COPY needs the copy feature');
    assert.ok(!bare.some((d) => d.op === 'DEVICE_DMA'), 'DEVICE_DMA needs dma-probe');
    assert.ok(templatesFor('iommufd', ['copy']).some((d) => d.op === 'IOMMU_IOAS_COPY'));
    const g = gen('iommufd', [], { adversarial: 1 });
    for (const templates of fc.sample(g.arbitrary(), { seed: 5, numRuns: 30 })) {
      for (const s of g.realise(templates).trace.steps) {
        assert.notEqual(s.op, 'IOMMU_IOAS_COPY');
        assert.notEqual(s.op, 'DEVICE_DMA');
        assert.equal('abi' in s, false, 'raw ABI sizes need ioctl-abi');
        assert.equal('__reserved' in s, false, 'reserved fields need ioctl-abi');
      }
    }
  });

  it('adversarial share: 0 draws no variant, 1 draws a variant in every template that has one', () => {
    const none = gen('iommufd', REFERENCE_FEATURES.iommufd, { adversarial: 0 });
    for (const t of fc.sample(none.arbitrary(), { seed: 1, numRuns: 20 }).flat()) assert.equal(t.a, '');
    const all = gen('iommufd', REFERENCE_FEATURES.iommufd, { adversarial: 1 });
    const withVariants = new Set(all.defs.filter((d) => d.variants.length > 0).map((d) => d.kind));
    for (const t of fc.sample(all.arbitrary(), { seed: 1, numRuns: 20 }).flat())
      if (withVariants.has(t.k)) assert.notEqual(t.a, '');
  });

  it('the default adversarial share is about 20% of the templates', () => {
    const g = gen('iommufd');
    const ts = fc.sample(g.arbitrary(), { seed: 2, numRuns: 60 }).flat();
    const withVariants = new Set(g.defs.filter((d) => d.variants.length > 0).map((d) => d.kind));
    const eligible = ts.filter((t) => withVariants.has(t.k));
    const share = eligible.filter((t) => t.a !== '').length / eligible.length;
    assert.ok(share > 0.12 && share < 0.3, `share ${share}`);
  });

  it('--max-steps bounds the templates of a trace', () => {
    const g = gen('vfio-type1', REFERENCE_FEATURES['vfio-type1'], { maxSteps: 12 });
    for (const t of fc.sample(g.arbitrary(), { seed: 9, numRuns: 50 })) assert.ok(t.length >= 1 && t.length <= 12);
  });

  it('unknown template kinds are dropped, not fatal (old templates replayed by a newer generator)', () => {
    const g = gen('iommufd');
    const r = g.realise([
      { k: 'iommufd.nonexistent', p: [], a: '' },
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
    ]);
    assert.equal(r.dropped, 1);
    assert.deepEqual(r.trace.steps, [{ op: 'IOMMU_IOAS_ALLOC' }]);
  });

  it('references name the creating step, so a trace means the same whatever IDs an implementation picks', () => {
    const g = gen('iommufd');
    const r = g.realise([
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      { k: 'iommufd.map', p: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0], a: '' },
    ]);
    const map = r.trace.steps[2] as Extract<Command, { op: 'IOMMU_IOAS_MAP' }>;
    assert.deepEqual(map.ioas_id, { ref: 1 });
  });
});

describe('generators: adversarial placements against the model', () => {
  /** Realises `templates` and steps the model, returning the last step's outcome and clauses. */
  function last(profile: Profile, templates: Template[]) {
    const g = gen(profile, REFERENCE_FEATURES[profile], { adversarial: 1 });
    const r = g.realise(templates);
    const m = new Model({ profile, features: new Set(REFERENCE_FEATURES[profile]), platform });
    const results = r.trace.steps.map((s) => m.step(s));
    const out = results[results.length - 1];
    assert.ok(out !== undefined, 'the trace has steps');
    return { steps: r.trace.steps, outcome: out.outcome, clauses: out.clauses };
  }
  const MAP4 = { k: 'iommufd.map', p: [0, 3, 0, 0, 0, 0, 0, 0, 0, 0], a: '' }; // 4 pages at the lowest free IOVA

  it('MAP-026 the bisect-start variant starts strictly inside a mapping, and iommufd refuses it with ENOENT', () => {
    const r = last('iommufd', [
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      MAP4,
      { k: 'iommufd.unmap', p: [0, 0, 0, 0, 0], a: 'bisect-start' },
    ]);
    assert.deepEqual(r.outcome, { ok: false, errno: 'ENOENT' });
    assert.ok(r.clauses.includes('MAP-026'), r.clauses.join());
  });

  it('MAP-027 the bisect-end variant ends strictly inside a mapping, and iommufd refuses it with ENOENT', () => {
    const r = last('iommufd', [
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      MAP4,
      { k: 'iommufd.unmap', p: [0, 0, 0, 0, 0], a: 'bisect-end' },
    ]);
    assert.deepEqual(r.outcome, { ok: false, errno: 'ENOENT' });
    assert.ok(r.clauses.includes('MAP-027'), r.clauses.join());
  });

  it('MAP-002 the overlap-page variant overlaps an existing mapping by one page, refused with EEXIST', () => {
    const r = last('iommufd', [
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      MAP4,
      { k: 'iommufd.map', p: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], a: 'overlap-page' },
    ]);
    assert.deepEqual(r.outcome, { ok: false, errno: 'EEXIST' });
    assert.ok(r.clauses.includes('MAP-002'));
  });

  it('MAP-013 the u64-top variant maps the last page of the 64-bit space', () => {
    const g = gen('iommufd', REFERENCE_FEATURES.iommufd, { adversarial: 1 });
    const r = g.realise([
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      { k: 'iommufd.map', p: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], a: 'u64-top' },
    ]);
    const map = r.trace.steps[1] as Extract<Command, { op: 'IOMMU_IOAS_MAP' }>;
    assert.equal(map.iova + map.length - 1n, U64_MAX);
  });

  it('FD-002 the stale-ID variant names an object that is gone', () => {
    const r = last('iommufd', [
      { k: 'iommufd.ioas-alloc', p: [], a: '' },
      { k: 'iommufd.destroy', p: [0], a: '' },
      { k: 'iommufd.destroy', p: [0], a: 'id-stale' },
    ]);
    assert.deepEqual(r.steps[2], { op: 'IOMMU_DESTROY', id: { ref: 0 } });
    assert.deepEqual(r.outcome, { ok: false, errno: 'ENOENT' });
    assert.ok(r.clauses.includes('FD-002'));
  });
});

describe('generators: helpers', () => {
  it('wrapU64 wraps every bigint of a command into the u64 range', () => {
    assert.deepEqual(wrapU64({ op: 'X', iova: -1n, n: 3, r: [{ start: U64_MAX + 2n }] }), {
      op: 'X',
      iova: U64_MAX,
      n: 3,
      r: [{ start: 1n }],
    });
    const c = { op: 'Y', iova: 5n };
    assert.equal(wrapU64(c), c, 'unchanged commands are not copied');
  });

  it('subtractAreas leaves the free gaps of the usable ranges', () => {
    const area = (iova: bigint, last: bigint) => ({ iova, last, va: 0n, buf: 0, off: 0n, prot: 3, pages: 1 });
    assert.deepEqual(subtractAreas([{ start: 0n, last: 99n }], [area(10n, 19n), area(50n, 99n)]), [
      { start: 0n, last: 9n },
      { start: 20n, last: 49n },
    ]);
    assert.deepEqual(subtractAreas([{ start: 0n, last: 9n }], []), [{ start: 0n, last: 9n }]);
  });

  it('trace-length histogram buckets', () => {
    assert.deepEqual([0, 1, 9, 10, 49, 50, 199, 200, 299, 300, 5000].map(lengthBucket), [
      '0',
      '1-9',
      '1-9',
      '10-49',
      '10-49',
      '50-99',
      '150-199',
      '200-299',
      '200-299',
      '300+',
      '300+',
    ]);
  });
});

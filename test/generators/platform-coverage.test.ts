// The platform arbitrary and coverage-aware weighting (generator mechanics; titles name the feature).
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { isLeft } from 'fp-ts/lib/Either.js';
import { PROFILES } from '../../src/reference/commands.ts';
import { Platform } from '../../src/reference/platform.ts';
import { loadSpec } from '../../src/spec/spec.ts';
import { REFERENCE_FEATURES, executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { checkReplies } from '../../conformance/runner.ts';
import {
  clauseMatches,
  coverageReport,
  coverageWeights,
  parseClausePatterns,
  weightsFor,
} from '../../generators/coverage.ts';
import { platformArbitrary } from '../../generators/platform.ts';
import { TraceGenerator, templatesFor } from '../../generators/trace.ts';

describe('generators: platform arbitrary', () => {
  it('draws platforms the Platform codec accepts', () => {
    fc.assert(
      fc.property(platformArbitrary, (p) => {
        const r = Platform.decode(JSON.parse(JSON.stringify(Platform.encode(p))));
        assert.ok(!isLeft(r));
        assert.ok(p.devices.some((d) => d.kind === 'physical'));
        assert.ok(p.iommu.aperture.start < p.iommu.aperture.last);
      }),
      { seed: 1, numRuns: 100 },
    );
  });

  for (const profile of PROFILES)
    it(`${profile}: the reference conforms to itself on generated platforms (traces realise, the model never fails)`, () => {
      fc.assert(
        fc.property(platformArbitrary, fc.integer({ min: 0, max: 1000 }), (platform, seed) => {
          const features = REFERENCE_FEATURES[profile];
          const gen = new TraceGenerator({ profile, features: [...features], platform, maxSteps: 60 });
          const [templates] = fc.sample(gen.arbitrary(), { seed, numRuns: 1 });
          const r = gen.realise(templates!);
          assert.equal(r.error, undefined, r.error?.message);
          const caps = referenceCapabilities({ profile, features, platform });
          const v = checkReplies(caps, r.trace.steps, executeTrace(caps, r.trace.steps));
          assert.equal(v.failure, undefined, v.failure?.message);
        }),
        { seed: 2, numRuns: 25 },
      );
    });
});

describe('generators: coverage-aware weighting', () => {
  const { spec } = loadSpec();

  it('reports applicable clauses not reached, and whether a template can reach them', () => {
    const defs = templatesFor('iommufd', ['copy']);
    const report = coverageReport(spec, 'iommufd', ['copy'], { 'MAP-002': 3, 'NOT-999': 1 }, defs);
    assert.ok(report.reached.includes('MAP-002'));
    assert.ok(!report.unreached.some((u) => u.id === 'MAP-002'));
    assert.deepEqual(report.unknown, ['NOT-999']);
    const u26 = report.unreached.find((u) => u.id === 'MAP-026');
    assert.ok(u26 !== undefined && u26.hasTemplate, 'UNMAP has a template');
    assert.ok(report.applicable.length === report.reached.length + report.unreached.length);
    for (const id of report.applicable) assert.ok(spec.byId.get(id)!.profiles.includes('iommufd'));
  });

  it('favours the templates whose commands the unreached clauses name', () => {
    const defs = templatesFor('iommufd', ['copy']);
    const w = coverageWeights(defs, {
      applicable: [],
      reached: [],
      unreached: [{ id: 'X-001', level: 'MUST', commands: ['IOMMU_IOAS_COPY'], hasTemplate: true }],
      unknown: [],
    });
    assert.deepEqual(w, { 'iommufd.copy': 4 });
    assert.deepEqual(weightsFor(defs, [{ commands: ['IOMMU_IOAS_UNMAP'] }], 5), { 'iommufd.unmap': 5 });
  });

  it('--clause patterns: IDs, chapters and prefixes', () => {
    assert.deepEqual(parseClausePatterns(' MAP-012, DEV ,FD-0*'), ['MAP-012', 'DEV', 'FD-0*']);
    assert.deepEqual(parseClausePatterns(undefined), []);
    assert.throws(() => parseClausePatterns('map'), /bad clause pattern "map"/);
    assert.ok(clauseMatches('MAP-012', ['MAP']));
    assert.ok(clauseMatches('FD-004', ['FD-0*']));
    assert.ok(!clauseMatches('FMT-004', ['FD']));
    assert.ok(!clauseMatches('MAP-013', ['MAP-012']));
    assert.ok(clauseMatches('ANY-001', []));
  });
});

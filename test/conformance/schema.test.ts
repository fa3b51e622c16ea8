// The JSON Schemas exported from the io-ts codecs: current, and accepting what the runner really writes
// (trace files, protocol messages, results.json). Mechanics tests; titles name the feature.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { PROFILES } from '../../src/reference/commands.ts';
import { encodeTrace } from '../../src/reference/trace.ts';
import { REFERENCE_FEATURES, executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { PROTOCOL_VERSION, toWireJson } from '../../conformance/protocol.ts';
import { resultsText, runConformance } from '../../conformance/runner.ts';
import { SCHEMA_DIR, staleSchemas, type Schema } from '../../conformance/schema/export.ts';
import { TraceGenerator } from '../../generators/trace.ts';
import { validate } from '../schema-validate.ts';

const KEYWORDS = new Set([
  '$schema',
  '$id',
  'title',
  'description',
  'definitions',
  '$ref',
  'allOf',
  'anyOf',
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'const',
  'enum',
  'pattern',
  'minimum',
  'maximum',
]);

function keywordsOf(s: unknown, out = new Set<string>(), parentIsMap = false): Set<string> {
  if (Array.isArray(s)) s.forEach((x) => keywordsOf(x, out));
  else if (typeof s === 'object' && s !== null)
    for (const [k, v] of Object.entries(s)) {
      if (!parentIsMap) out.add(k);
      keywordsOf(v, out, !parentIsMap && (k === 'properties' || k === 'definitions'));
    }
  return out;
}

const load = (name: string) => JSON.parse(readFileSync(join(SCHEMA_DIR, name), 'utf8')) as Schema;

describe('schema: export', () => {
  it('the committed schemas are what the io-ts codecs export now (run conformance/schema/export.ts)', async () => {
    assert.deepEqual(await staleSchemas(), []);
  });

  it('the schemas use only the draft-07 keywords this validator knows', () => {
    for (const f of ['trace.schema.json', 'protocol.schema.json', 'results.schema.json']) {
      const unknown = [...keywordsOf(load(f))].filter((k) => !KEYWORDS.has(k));
      assert.deepEqual(unknown, [], f);
    }
  });
});

describe('schema: what the runner writes validates', function () {
  this.timeout(60_000);

  it('generated traces of every profile validate against trace.schema.json', () => {
    const schema = load('trace.schema.json');
    for (const profile of PROFILES) {
      const gen = new TraceGenerator({
        profile,
        features: [...REFERENCE_FEATURES[profile]],
        platform: referenceCapabilities().platform,
        adversarial: 0.5,
      });
      for (const templates of fc.sample(gen.arbitrary(), { seed: 4, numRuns: 15 })) {
        const doc: unknown = JSON.parse(encodeTrace(gen.realise(templates, { seed: '4:0', origin: 'test' }).trace));
        assert.equal(validate(schema, schema, doc), undefined);
      }
    }
    assert.match(validate(schema, schema, { format: 'ioasid-conformance-trace', version: 1 })!, /missing profile/);
  });

  it('protocol messages in both directions validate against protocol.schema.json', () => {
    const schema = load('protocol.schema.json');
    const caps = referenceCapabilities({ profile: 'vfio-type1' });
    const steps = [
      { op: 'VFIO_GET_API_VERSION' as const },
      { op: 'VFIO_IOMMU_UNMAP_DMA' as const, flags: 2, iova: 0n, size: 0n },
    ];
    const messages: unknown[] = [
      { type: 'hello', protocol: PROTOCOL_VERSION },
      { type: 'capabilities', protocol: PROTOCOL_VERSION, capabilities: caps },
      { type: 'run', id: 1, steps },
      { type: 'step', id: 1, index: 0, outcome: executeTrace(caps, steps).replies[0]!.outcome },
      { type: 'result', id: 1, replies: executeTrace(caps, steps).replies },
      { type: 'error', id: 1, message: 'no' },
      { type: 'bye' },
    ];
    for (const m of messages)
      assert.equal(validate(schema, schema, JSON.parse(toWireJson(m))), undefined, toWireJson(m));
    assert.notEqual(validate(schema, schema, { type: 'run', id: 'x' }), undefined);
  });

  it('results.json of a failing run validates against results.schema.json', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-schema-'));
    try {
      const out = await runConformance({
        adapter: 'buggy-unmap-bisect',
        adapterOptions: {},
        seed: 1,
        runs: 8,
        maxSteps: 60,
        adversarial: 0.2,
        clauses: [],
        jobs: 1,
        shard: { index: 1, count: 1 },
        reportDir: dir,
        corpusDir: undefined,
        shrinkBudget: 100,
      });
      const schema = load('results.schema.json');
      assert.equal(validate(schema, schema, JSON.parse(resultsText(out.results))), undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// The runner: lockstep comparison, shrinking, determinism across --jobs / --shard, robustness, the corpus.
// Mechanics tests name the feature; tests that check a defect is caught name the clauses it breaks.
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isLeft } from 'fp-ts/lib/Either.js';
import type { Command } from '../../src/reference/commands.ts';
import { encodeTrace, TRACE_FORMAT, TRACE_VERSION, type Trace } from '../../src/reference/trace.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { loadSpec } from '../../src/spec/spec.ts';
import { ReferenceAdapter, executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { createAdapter, registerAdapter, unregisterAdapter } from '../../conformance/adapters/registry.ts';
import { UsageError } from '../../conformance/errors.ts';
import {
  AdapterResults,
  Results,
  blamedClauses,
  checkReplies,
  compareKeys,
  diffOutcome,
  junitXml,
  mergeResults,
  readTraceFile,
  removeSteps,
  resultsText,
  runAndCheck,
  runConformance,
  shardIndices,
  shrinkSelection,
  shrinkTraceSteps,
  writeFileAtomic,
  type RunOptions,
} from '../../conformance/runner.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ioasid-runner-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function opts(name: string, extra: Partial<RunOptions> = {}): RunOptions {
  return {
    adapter: 'reference',
    adapterOptions: {},
    seed: 1,
    runs: 12,
    maxSteps: 80,
    adversarial: 0.2,
    clauses: [],
    jobs: 1,
    shard: { index: 1, count: 1 },
    reportDir: join(dir, name),
    corpusDir: undefined,
    shrinkBudget: 600,
    ...extra,
  };
}

const caps = referenceCapabilities();
const MAPPED: Command[] = [
  { op: 'IOMMU_IOAS_ALLOC' },
  {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: { ref: 0 },
    flags: 7,
    user_va: { buf: 0, off: 0n },
    length: 0x4000n,
    iova: 0x10_0000n,
  },
];
const BISECT: Command = { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0x10_1000n, length: 0x1000n };

describe('runner: lockstep comparison', () => {
  it('compares u64 outputs as numbers whatever their encoding, and ignores extra outputs', () => {
    assert.equal(
      diffOutcome({ ok: true, out: { iova: 0x1000n } }, { ok: true, out: { iova: '0x1000', extra: 1 } }),
      undefined,
    );
    assert.equal(diffOutcome({ ok: true, out: { iova: 0x1000n } }, { ok: true, out: { iova: 4096 } }), undefined);
    assert.match(
      diffOutcome({ ok: true, out: { iova: 0x1000n } }, { ok: true, out: { iova: '0x2000' } })!,
      /output iova: expected "0x1000", got "0x2000"/,
    );
    assert.match(diffOutcome({ ok: true, out: { id: 1 } }, { ok: true })!, /output id: expected 1, got nothing/);
    assert.match(diffOutcome({ ok: false, errno: 'ENOENT' }, { ok: true })!, /expected ENOENT, got ok/);
    assert.match(
      diffOutcome({ ok: false, errno: 'ENOENT' }, { ok: false, errno: 'EINVAL' })!,
      /expected ENOENT, got EINVAL/,
    );
    assert.match(
      diffOutcome({ ok: true, out: { l: [{ start: 0n }] } }, { ok: true, out: { l: [] } })!,
      /expected 1 entries, got 0/,
    );
  });

  it('MAP-026 a divergence fails the trace at its step and names the clauses the model evaluated there', () => {
    const steps = [...MAPPED, BISECT];
    const reply = executeTrace(caps, steps);
    const lie = {
      replies: [...reply.replies.slice(0, 2), { outcome: { ok: true as const, out: { length: 0x1000n } } }],
    };
    const v = checkReplies(caps, steps, lie);
    assert.equal(v.failure?.kind, 'divergence');
    assert.equal(v.failure.step, 2);
    assert.ok(v.failure.clauses.includes('MAP-026'), v.failure.clauses.join());
    assert.equal(v.steps, 3);
    assert.ok((v.hits['MAP-026'] ?? 0) >= 1);
    // The per-clause statistics blame the check whose error the model expected, not every clause it evaluated.
    assert.ok(v.failure.clauses.includes('MAP-038'), v.failure.clauses.join());
    assert.equal(v.failure.decidedBy, 'MAP-026');
    assert.deepEqual(blamedClauses(v.failure), ['MAP-026']);
    // Where the model expected success, one outcome cannot tell which check the implementation got wrong.
    const refused = checkReplies(caps, MAPPED, {
      replies: [reply.replies[0]!, { outcome: { ok: false, errno: 'EINVAL' } }],
    });
    assert.equal(refused.failure?.decidedBy, undefined);
    assert.deepEqual(blamedClauses(refused.failure!), refused.failure!.clauses);
    assert.ok(refused.failure!.clauses.length > 1);
  });

  it('FD-004 an implementation-chosen ID that is not the lowest free one is a violation', () => {
    const v = checkReplies(caps, [{ op: 'IOMMU_IOAS_ALLOC' }], {
      replies: [{ outcome: { ok: true, out: { id: 5 } } }],
    });
    assert.equal(v.failure?.kind, 'violation');
    assert.deepEqual(v.failure.violated, ['FD-004']);
  });

  it('an adapter error fails the trace at the step it interrupted, naming the clauses of that step', () => {
    const steps = [...MAPPED, BISECT];
    const v = checkReplies(caps, steps, {
      replies: executeTrace(caps, MAPPED).replies,
      error: { kind: 'crash', message: 'boom', step: 2 },
      stderr: 'oops',
    });
    assert.equal(v.failure?.kind, 'crash');
    assert.equal(v.failure.step, 2);
    assert.ok(v.failure.clauses.includes('MAP-026'));
    assert.equal(v.failure.stderr, 'oops');
    const short = checkReplies(caps, steps, { replies: [] });
    assert.equal(short.failure?.kind, 'protocol');
  });
});

describe('runner: runs', function () {
  this.timeout(120_000);

  it('the reference passes against itself, and the same seed gives a byte-identical results.json', async () => {
    const a = await runConformance(opts('same-a'));
    const b = await runConformance(opts('same-b'));
    assert.equal(a.failed, 0);
    assert.equal(a.passed, 12);
    assert.equal(resultsText(a.results), resultsText(b.results));
    const text = readFileSync(join(dir, 'same-a', 'results.json'), 'utf8');
    assert.equal(text, resultsText(a.results));
    assert.ok(!/"(time|duration|date)/i.test(text), 'no timings in results.json');
    assert.ok(!isLeft(Results.decode(JSON.parse(text))));
    const entry = a.results.adapters.reference as AdapterResults;
    assert.ok(Object.keys(entry.clauses).length > 20);
    assert.equal(entry.steps, a.steps);
  });

  it('--jobs: worker threads give the same results.json as one thread', async () => {
    const one = await runConformance(opts('jobs', { runs: 8 }));
    const four = await runConformance(opts('jobs', { runs: 8, jobs: 3 }));
    assert.equal(resultsText(four.results), resultsText(one.results));
  });

  it('--shard: shards partition the traces and merge into the results of the whole run', async () => {
    assert.deepEqual(shardIndices(7, { index: 2, count: 3 }), [1, 4]);
    const whole = await runConformance(opts('shards', { adapter: 'buggy-unmap-bisect', runs: 10 }));
    const parts: Results[] = [];
    for (const index of [1, 2, 3])
      parts.push(
        (await runConformance(opts('shards', { adapter: 'buggy-unmap-bisect', runs: 10, shard: { index, count: 3 } })))
          .results,
      );
    const partial = parts[0]!.adapters['reference+unmap-bisect'] as AdapterResults;
    assert.deepEqual(partial.partial, { shardCount: 3, shards: [1] });
    // Unreached clauses need the spec, as the whole run had; the order of merging does not matter.
    const { spec } = loadSpec();
    assert.equal(resultsText(mergeResults(parts, spec)), resultsText(whole.results));
    assert.equal(resultsText(mergeResults([parts[2]!, parts[0]!, parts[1]!], spec)), resultsText(whole.results));
    assert.throws(() => mergeResults([parts[0]!, parts[0]!], undefined), /shard 1 is in both results/);
  });

  it('--profile: runs of the reference in its three profiles merge into one result set; a same-named clash says why', async () => {
    const { spec } = loadSpec();
    const runs: Results[] = [];
    for (const profile of ['iommufd', 'rfc', 'vfio-type1'] as const)
      runs.push((await runConformance(opts(`profiles-${profile}`, { runs: 3, adapterOptions: { profile } }))).results);
    const merged = mergeResults(runs, spec);
    assert.deepEqual(Object.keys(merged.adapters).sort(), ['reference', 'reference/rfc', 'reference/vfio-type1']);
    for (const [name, entry] of Object.entries(merged.adapters))
      assert.equal(
        (entry as AdapterResults).capabilities.profile,
        name === 'reference' ? 'iommufd' : name.slice('reference/'.length),
      );
    // Two implementations that declare the same name but different profiles are not shards of one run.
    const rfc = structuredClone(runs[1]!);
    const entry = rfc.adapters['reference/rfc'] as AdapterResults;
    const renamed: Results = {
      ...rfc,
      adapters: { reference: { ...entry, capabilities: { ...entry.capabilities, name: 'reference' } } },
    };
    assert.throws(
      () => mergeResults([runs[0]!, renamed], spec),
      /adapter "reference" declare different capabilities \(profile iommufd vs rfc\)/,
    );
  });

  it('reference-stdio gives the same results.json as the in-process reference', async () => {
    const inproc = await runConformance(opts('stdio', { runs: 6 }));
    const stdio = await runConformance(opts('stdio', { runs: 6, adapter: 'reference-stdio' }));
    assert.equal(resultsText(stdio.results), resultsText(inproc.results));
  });

  it('MAP-026 MAP-027 a reference that accepts bisecting unmaps fails with a shrunk trace of at most 7 steps that replay reproduces', async () => {
    const out = await runConformance(opts('bisect', { adapter: 'buggy-unmap-bisect', runs: 40 }));
    assert.ok(out.failed > 0);
    const entry = out.results.adapters['reference+unmap-bisect'] as AdapterResults;
    const first = entry.clauses['MAP-026']?.firstFailure ?? entry.clauses['MAP-027']?.firstFailure;
    assert.ok(first !== undefined, 'a bisecting unmap was caught');
    assert.match(
      first.replay,
      /^npx ioasid-conformance replay .*buggy-unmap-bisect-1-\d+\.json --adapter buggy-unmap-bisect$/,
    );
    const trace = readTraceFile(first.file);
    assert.ok(trace.steps.length <= 7, `${trace.steps.length} steps`);
    assert.equal(first.step, trace.steps.length - 1, 'the shrunk trace ends at its failing step');
    // Replay: the buggy adapter still fails at that step, the reference passes.
    const buggy = createAdapter('buggy-unmap-bisect');
    const v = await runAndCheck(buggy, await buggy.open(), trace.steps);
    assert.equal(v.failure?.step, first.step);
    const ref = new ReferenceAdapter('reference');
    assert.equal((await runAndCheck(ref, await ref.open(), trace.steps)).failure, undefined);
    // Every failing trace is saved as generated (<adapter>-<seed>-<n>.full.json, which the failure list names, at the
    // step it names); the shrunk ones as <adapter>-<seed>-<n>.json.
    const files = readdirSync(join(dir, 'bisect', 'failures'));
    assert.equal(files.filter((f) => /^buggy-unmap-bisect-1-\d+\.full\.json$/.test(f)).length, entry.failures.length);
    assert.equal(files.filter((f) => /^buggy-unmap-bisect-1-\d+\.json$/.test(f)).length, out.shrinks.length);
    for (const f of entry.failures) {
      const full = readTraceFile(f.file);
      assert.equal((await runAndCheck(buggy, await buggy.open(), full.steps)).failure?.step, f.step, f.file);
    }
    assert.ok(!readdirSync(join(dir, 'bisect', 'failures')).some((f) => f.endsWith('.tmp')));
  });

  it('a crashing implementation is reported with its trace kept, and the run goes on', async () => {
    const out = await runConformance(opts('crash', { adapter: 'buggy-crash-third-unmap', runs: 15 }));
    const entry = out.results.adapters['reference+crash-third-unmap'] as AdapterResults;
    assert.ok(entry.failures.length > 0 && entry.failures.every((f) => f.kind === 'crash'));
    assert.ok(out.passed > 0, 'traces after a crash still run');
    const shrunk = out.shrinks.find((s) => s.failure.kind === 'crash')!;
    const t = readTraceFile(shrunk.file);
    assert.equal(
      t.steps.filter((s) => s.op === 'IOMMU_IOAS_UNMAP').length,
      3,
      'the shrunk crash keeps exactly the three unmaps',
    );
  });

  it('an implementation that refuses the handshake is reported in results.json and nothing runs', async () => {
    const out = await runConformance(
      opts('version', { adapter: 'stdio:node --import tsx conformance/reference-stdio.ts --misbehave version' }),
    );
    assert.match(out.openError ?? '', /speaks protocol 2/);
    const entry = Object.values(out.results.adapters)[0]!;
    assert.ok('error' in entry && entry.error.kind === 'version');
  });

  it('a test can register an in-process adapter wrapping the reference with its own bug', async () => {
    registerAdapter('test-wrong-unmap-length', (name) => {
      const inner = new ReferenceAdapter(name);
      return {
        name,
        open: () => inner.open(),
        close: () => inner.close(),
        async runTrace(steps) {
          const r = await inner.runTrace(steps);
          return {
            ...r,
            replies: r.replies.map((x, i) =>
              steps[i]!.op === 'IOMMU_IOAS_UNMAP' && x.outcome.ok ? { outcome: { ok: true, out: { length: 1n } } } : x,
            ),
          };
        },
      };
    });
    try {
      const out = await runConformance(opts('registered', { adapter: 'test-wrong-unmap-length', runs: 10 }));
      const entry = out.results.adapters.reference as AdapterResults;
      assert.ok(entry.failures.some((f) => /output length/.test(f.message)));
      await assert.rejects(
        runConformance(opts('registered', { adapter: 'test-wrong-unmap-length', runs: 10, jobs: 2 })),
        UsageError,
      );
      await assert.rejects(
        runConformance(opts('registered', { adapter: 'test-wrong-unmap-length', profile: 'rfc' })),
        /speaks the iommufd profile, not rfc/,
      );
    } finally {
      unregisterAdapter('test-wrong-unmap-length');
    }
  });

  it('the regression corpus runs first; traces of another profile are skipped', async () => {
    const corpus = join(dir, 'corpus');
    mkdirSync(corpus, { recursive: true });
    const t = (profile: Trace['profile'], steps: Command[]): Trace => ({
      format: TRACE_FORMAT,
      version: TRACE_VERSION,
      profile,
      features: [],
      platform: caps.platform,
      steps,
    });
    writeFileSync(join(corpus, 'a-bisect.json'), encodeTrace(t('iommufd', [...MAPPED, BISECT])));
    writeFileSync(join(corpus, 'b-rfc.json'), encodeTrace(t('rfc', [{ op: 'IOASID_ALLOC' }])));
    writeFileSync(join(corpus, 'README.md'), 'not a trace');
    const out = await runConformance(opts('corpus', { adapter: 'buggy-unmap-bisect', runs: 0, corpusDir: corpus }));
    const entry = out.results.adapters['reference+unmap-bisect'] as AdapterResults;
    assert.deepEqual(entry.corpus, {
      total: 1,
      passed: 0,
      failed: 1,
      skipped: [{ file: join(corpus, 'b-rfc.json'), reason: 'profile rfc' }],
    });
    assert.equal(entry.failures[0]!.trace, 'corpus/a-bisect.json');
    assert.equal(entry.failures[0]!.file, join(corpus, 'a-bisect.json'));
  });
});

describe('runner: reports and files', () => {
  it('orders traces: corpus files by name, then random traces by number', () => {
    assert.deepEqual(['random/10', 'corpus/b.json', 'random/2', 'corpus/a.json'].sort(compareKeys), [
      'corpus/a.json',
      'corpus/b.json',
      'random/2',
      'random/10',
    ]);
  });

  it('shrinks the first failing trace of every clause (and of every clause-less failure kind)', () => {
    const f = (clauses: string[], kind: 'divergence' | 'crash' = 'divergence') => ({
      kind,
      step: 0,
      clauses,
      message: '',
    });
    const rec = (key: string, failure?: ReturnType<typeof f>) => ({
      key,
      length: 1,
      steps: 1,
      hits: {},
      ...(failure ? { failure } : {}),
    });
    const sel = shrinkSelection([
      rec('random/3', f(['A-001'])),
      rec('random/1', f(['A-001', 'B-001'])),
      rec('random/2', f(['C-001'])),
      rec('random/4', f([], 'crash')),
      rec('random/0'),
      rec('corpus/x.json', f(['D-001'])),
    ]);
    assert.deepEqual(sel, ['random/1', 'random/2', 'random/4']);
  });

  it('writes files atomically (no temporary file left behind)', () => {
    const p = join(dir, 'atomic', 'deep', 'x.json');
    writeFileAtomic(p, 'one');
    writeFileAtomic(p, 'two');
    assert.equal(readFileSync(p, 'utf8'), 'two');
    assert.deepEqual(readdirSync(join(dir, 'atomic', 'deep')), ['x.json']);
  });

  it('JUnit: one failing test case per failing trace, with the replay command', () => {
    const r = {
      format: 'ioasid-conformance-results',
      version: 1,
      adapters: { x: { error: { kind: 'version', message: 'speaks protocol 2 & more' } } },
    } as Results;
    const xml = junitXml(r);
    assert.match(xml, /<testsuites name="ioasid-conformance" tests="1" failures="1">/);
    assert.match(xml, /speaks protocol 2 &amp; more/);
  });
});

describe('runner: shrinking trace files', function () {
  this.timeout(60_000);

  it('removing steps renumbers later references and refuses to orphan one', () => {
    const steps: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'IOMMU_IOAS_ALLOC' },
      { op: 'IOMMU_DESTROY', id: { ref: 1 } },
    ];
    assert.deepEqual(removeSteps(steps, 0, 1), [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_DESTROY', id: { ref: 0 } }]);
    assert.equal(removeSteps(steps, 1, 1), undefined);
  });

  it('MAP-026 step deletion shrinks a padded failing trace down to the steps that matter', async () => {
    const noise: Command[] = [
      { op: 'IOMMU_IOAS_ALLOC' },
      {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: { ref: 2 },
        flags: 7,
        user_va: { buf: 1, off: 0n },
        length: 0x1000n,
        iova: 0x50_0000n,
      },
      { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 2 }, iova: 0n, length: U64_MAX },
    ];
    const steps: Command[] = [...MAPPED, ...noise, BISECT];
    const buggy = createAdapter('buggy-unmap-bisect');
    const c = await buggy.open();
    const first = await runAndCheck(buggy, c, steps);
    assert.equal(first.failure?.step, 5);
    const r = await shrinkTraceSteps(buggy, c, steps, first.failure, 200);
    assert.deepEqual(r.steps, [...MAPPED, BISECT]);
    assert.equal(r.failure.step, 2);
  });
});

describe('runner: trace files', () => {
  it('a corpus or failure file that does not exist is bad input', () => {
    assert.throws(
      () => readTraceFile(join(dir, 'nope.json')),
      (e: unknown) => e instanceof UsageError && /cannot read trace .*nope\.json: ENOENT/.test(e.message),
    );
    assert.ok(!existsSync(join(dir, 'nope.json')));
  });
});

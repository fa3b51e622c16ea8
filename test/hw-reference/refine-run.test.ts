// The refinement check inside the runner (`run --refine`): the three broken drivers are caught and shrunk to at most
// 7 steps by the runner's shrinking; refinement holds for the reference driver over generated traces; and hardware
// traces check an IOMMU implementation against the hardware model (the hardware adapter interface).
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Command, Profile } from '../../src/reference/commands.ts';
import { Model, isModelLimit } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { referenceCapabilities, ReferenceAdapter } from '../../conformance/adapters/reference.ts';
import { checkReplies, runConformance, shrinkTraceSteps, type RunOutcome } from '../../conformance/runner.ts';
import { refinerFactory, TraceRefiner } from '../../conformance/refine.ts';
import { TraceGenerator } from '../../generators/trace.ts';
import { checkHwReplies, ReferenceHwAdapter, runHwConformance } from '../../conformance/adapters/hw.ts';
import { realiseHw } from '../../generators/hw.ts';

const RFC_FEATURES = ['dma-probe', 'pasid', 'pasid-global', 'pasid-virt', 'mdev', 'enqcmd', 'nesting-hw', 'nesting-sw'];

async function run(
  driver: string,
  seed: number,
  runs: number,
  maxSteps: number,
  dir: string,
  clauses: string[] = [],
): Promise<RunOutcome> {
  return runConformance({
    adapter: 'reference',
    adapterOptions: { profile: 'rfc' },
    profile: 'rfc',
    seed,
    runs,
    maxSteps,
    adversarial: 0.2,
    clauses,
    jobs: 1,
    shard: { index: 1, count: 1 },
    reportDir: dir,
    corpusDir: undefined,
    shrinkBudget: 400,
    refine: driver,
  });
}

/** Runs seeds in order until the broken driver fails; returns the shortest shrunk failure and its clauses. */
async function caught(driver: string, clause: string): Promise<{ length: number; violated: readonly string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'ioasid-refine-'));
  try {
    for (let seed = 1; seed <= 40; seed++) {
      // Generation favours the commands of the clause the defect breaks (the runner's --clause focus).
      const out = await run(driver, seed, 40, 30, dir, [clause]);
      const shrunk = out.shrinks.filter((s) => s.length >= 0 && (s.failure.violated ?? []).includes(clause));
      if (shrunk.length === 0) continue;
      const best = shrunk.reduce((a, b) => (b.length < a.length ? b : a));
      return { length: best.length, violated: best.failure.violated ?? [] };
    }
    throw new Error(`${driver} was not caught on ${clause} in 40 seeds of 40 traces`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('REF-003 the driver that skips the IOTLB invalidation after UNMAP is caught by run --refine', () => {
  it('with a shrunk trace of at most 7 steps', async function () {
    this.timeout(300_000);
    const c = await caught('broken-skip-iotlb-after-unmap', 'REF-003');
    assert.ok(c.length <= 7, `shrunk to ${c.length} steps`);
  });
});

describe('REF-006 the driver that flushes the wrong PASID is caught by run --refine', () => {
  it('with a shrunk trace of at most 7 steps', async function () {
    this.timeout(300_000);
    // The stale translation shows as a route a detach ended (REF-006), a PASID nothing attaches (REF-008), or a DMA
    // that reaches what the state no longer maps (REF-001); seeds run in order until one catches it.
    const dir = mkdtempSync(join(tmpdir(), 'ioasid-refine-'));
    try {
      let lengths: number[] = [];
      let clauses = new Set<string>();
      for (let seed = 1; seed <= 20 && lengths.length === 0; seed++) {
        const out = await run('broken-flush-wrong-pasid', seed, 30, 30, dir);
        lengths = out.shrinks.filter((s) => s.length >= 0).map((s) => s.length);
        clauses = new Set(out.shrinks.flatMap((s) => s.failure.violated ?? []));
      }
      assert.ok(lengths.length > 0 && Math.min(...lengths) <= 7, `shrunk to ${lengths.join(', ')} steps`);
      assert.ok(
        ['REF-006', 'REF-008', 'REF-001'].some((c) => clauses.has(c)),
        [...clauses].join(', '),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('REF-009 the driver that gives each device its own global PASID is caught by run --refine', () => {
  it('with a shrunk trace of at most 7 steps, from generated traces', async function () {
    this.timeout(600_000);
    const c = await caught('broken-per-device-global-pasid', 'REF-009');
    assert.ok(c.length <= 7, `shrunk to ${c.length} steps`);
  });
  it("and from a long hand-written trace, by the runner's step-deletion shrinking", async () => {
    const adapter = new ReferenceAdapter('reference', { profile: 'rfc' });
    const caps = await adapter.open();
    assert.deepEqual(caps, referenceCapabilities({ profile: 'rfc' }));
    const noise: Command[] = [
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_BIND_IOASID_FD', dev: 2 },
      { op: 'IOASID_MAP_DMA', ioasid: { ref: 2 }, flags: 3, vaddr: { buf: 0, off: 0n }, iova: 0x1000n, size: 0x1000n },
    ];
    const steps: Command[] = [
      { op: 'IOASID_SET_HWID_MODE', mode: 1 },
      { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 },
      ...noise,
      { op: 'IOASID_ALLOC' },
      { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
      { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 5 }, pasid: 14 },
      { op: 'IOASID_GET_INFO', ioasid: { ref: 5 } },
      { op: 'VFIO_BIND_IOASID_FD', dev: 1 },
      { op: 'VFIO_ATTACH_IOASID', dev: 1, ioasid: { ref: 5 }, pasid: 14 },
      {
        op: 'IOASID_MAP_DMA',
        ioasid: { ref: 5 },
        flags: 3,
        vaddr: { buf: 1, off: 0n },
        iova: 0x40_0000n,
        size: 0x1000n,
      },
    ];
    const refine = refinerFactory('broken-per-device-global-pasid');
    const reply = await adapter.runTrace(steps);
    const v = checkReplies(caps, steps, reply, false, refine);
    assert.deepEqual(v.failure?.violated, ['REF-009']);
    const s = await shrinkTraceSteps(adapter, caps, steps, v.failure, 500, refine);
    assert.ok(s.steps.length <= 7, `shrunk to ${s.steps.length} steps`);
    assert.deepEqual(s.failure.violated, ['REF-009']);
    await adapter.close();
  });
});

describe('REF-001 REF-002 REF-003 REF-005 REF-006 REF-008 refinement holds for the reference driver over generated traces', () => {
  for (const [profile, features] of [
    ['rfc', RFC_FEATURES],
    ['iommufd', ['dma-probe']],
    ['vfio-type1', ['dma-probe']],
  ] as [Profile, string[]][]) {
    it(`${profile}: no probe disagrees with the uAPI state, and the probes reach the REF clauses`, function () {
      this.timeout(300_000);
      const platform = defaultPlatform();
      const gen = new TraceGenerator({ profile, features, platform, maxSteps: 40 });
      const hits = new Set<string>();
      let probes = 0;
      fc.assert(
        fc.property(gen.arbitrary(), (templates) => {
          const trace = gen.realise(templates).trace;
          const model = new Model({ profile, features: new Set(features), platform });
          const ref = new TraceRefiner({ name: 'reference', profile, features, platform }, undefined);
          for (const cmd of trace.steps) {
            let res;
            try {
              res = model.step(cmd);
            } catch (e) {
              if (isModelLimit(e)) return true;
              throw e;
            }
            const rr = ref.afterStep(cmd, res.outcome, model.view);
            for (const c of rr.clauses) hits.add(c);
            if (rr.violation !== undefined) throw new Error(`${rr.violation.clause}: ${rr.violation.message}`);
          }
          probes += ref.probes;
          return true;
        }),
        { seed: 7, numRuns: 40 },
      );
      assert.ok(probes > 1000, `${probes} probes`);
      for (const c of ['REF-001', 'REF-002', 'REF-003', 'REF-005']) assert.ok(hits.has(c), `reached ${c}`);
      if (profile === 'rfc') for (const c of ['REF-006', 'REF-008']) assert.ok(hits.has(c), `reached ${c}`);
    });
  }
});

describe('HW-016 HW-020 HW-025 hardware traces check an IOMMU implementation against the hardware model', () => {
  it('the reference hardware model conforms to itself over generated hardware traces', async () => {
    const r = await runHwConformance(new ReferenceHwAdapter(), { seed: 3, runs: 150 });
    assert.equal(r.failure, undefined);
    assert.ok(r.steps > 2000);
  });
  it('an emulator that performs writes a read-only translation denies (never reports SGN.6) is caught and shrunk', async () => {
    const broken = new ReferenceHwAdapter('no-write-check', (m) => {
      const dma = m.dma.bind(m);
      m.dma = (req) => {
        const r = dma(req);
        return !r.ok && r.fault.code === 'SGN.6' ? { ok: true, hpa: req.addr } : r;
      };
    });
    const r = await runHwConformance(broken, { seed: 3, runs: 300 });
    assert.ok(r.failure !== undefined, 'caught');
    assert.match(r.failure.verdict.failure!.message, /HW_DMA: expected fault, got ok/);
    assert.ok(r.failure.trace.steps.length < 40, `${r.failure.trace.steps.length} steps`);
  });
  it('replies are compared step by step and a missing reply is reported', () => {
    const t = realiseHw([{ k: 'dma', p: [0, 0, 0, 0, 0, 0] }]);
    const v = checkHwReplies(t, [], 'the emulator crashed');
    assert.equal(v.failure?.message, 'the emulator crashed');
  });
});

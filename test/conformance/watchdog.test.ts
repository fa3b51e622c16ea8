// The watchdog of in-process adapters (conformance/adapters/watchdog.ts): an adapter whose step loops forever or whose
// promise never settles fails its trace as a timeout, the trace is kept and replays, and the run goes on.
// Mechanics tests: they name the feature, not a clause.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Adapter } from '../../conformance/adapter.ts';
import { ReferenceAdapter } from '../../conformance/adapters/reference.ts';
import { createAdapter, registerAdapter, unregisterAdapter } from '../../conformance/adapters/registry.ts';
import { WatchdogAdapter, callWithin, guardAdapter, settleWithin } from '../../conformance/adapters/watchdog.ts';
import { replayTraceCommand } from '../../conformance/run-cli.ts';
import {
  readTraceFile,
  runAndCheck,
  runConformance,
  type AdapterResults,
  type RunOptions,
} from '../../conformance/runner.ts';
import type { Command } from '../../src/reference/commands.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ioasid-watchdog-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** The time limit the tests use (short: every hang costs it once). */
const LIMIT = 150;

/** Whether a trace reaches a third unmap (where the hanging adapters hang). */
function hangsAt(steps: readonly Command[]): boolean {
  return steps.filter((s) => s.op === 'IOMMU_IOAS_UNMAP').length >= 3;
}

let _spins = 0;

/** A reference that hangs on traces with three unmaps: `sync` loops forever, `async` never settles its promise. */
function hanging(kind: 'sync' | 'async') {
  return (name: string): Adapter => {
    const inner = new ReferenceAdapter(name);
    return {
      name,
      open: () => inner.open(),
      close: () => inner.close(),
      runTrace(steps) {
        if (hangsAt(steps)) {
          if (kind === 'async') return new Promise(() => undefined);
          for (;;) _spins++;
        }
        return inner.runTrace(steps);
      },
    };
  };
}

function opts(name: string, adapter: string): RunOptions {
  return {
    adapter,
    adapterOptions: { timeoutMs: LIMIT },
    seed: 1,
    runs: 12,
    maxSteps: 80,
    adversarial: 0.2,
    clauses: [],
    jobs: 1,
    shard: { index: 1, count: 1 },
    reportDir: join(dir, name),
    corpusDir: undefined,
    shrinkBudget: 4,
  };
}

/** Runs a replay command and returns its exit code and what it printed. */
async function replay(argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const log = console.log;
  const err = console.error;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  console.error = console.log;
  try {
    return { code: await replayTraceCommand(argv), out: lines.join('\n') };
  } finally {
    console.log = log;
    console.error = err;
  }
}

describe('watchdog: guarded calls', () => {
  it('interrupts a synchronous loop at the time limit and passes values and exceptions through', () => {
    const t0 = performance.now();
    assert.deepEqual(
      callWithin(() => {
        for (;;) _spins++;
      }, 50),
      { interrupted: true },
    );
    assert.ok(performance.now() - t0 < 5000);
    assert.deepEqual(
      callWithin(() => 42, 50),
      { value: 42 },
    );
    assert.throws(
      () =>
        callWithin(() => {
          throw new Error('boom');
        }, 50),
      /boom/,
    );
  });

  it('reports a promise that never settles, and one that settles in time', async () => {
    const r = await settleWithin(() => new Promise<number>(() => undefined), 50);
    assert.ok('unsettled' in r && r.waitedMs >= 40);
    assert.deepEqual(await settleWithin(() => Promise.resolve(7), 50), { value: 7 });
    await assert.rejects(
      settleWithin(() => Promise.reject(new Error('no')), 50),
      /no/,
    );
  });

  it('guards in-process adapters only; the reference family without the loop interruption', () => {
    const ref = guardAdapter(createAdapter('reference'));
    assert.ok(ref instanceof WatchdogAdapter && !ref.interruptLoops);
    const other = guardAdapter(hanging('sync')('x'), 10);
    assert.ok(other instanceof WatchdogAdapter && other.interruptLoops && other.timeoutMs === 10);
    assert.equal(guardAdapter(other), other);
    const stdio = createAdapter('reference-stdio');
    assert.equal(guardAdapter(stdio), stdio);
  });
});

for (const kind of ['sync', 'async'] as const) {
  describe(`watchdog: an in-process adapter that hangs (${kind === 'sync' ? 'a synchronous loop' : 'a promise that never settles'})`, function () {
    this.timeout(60_000);
    const name = `test-hang-${kind}`;
    before(() => registerAdapter(name, hanging(kind)));
    after(() => unregisterAdapter(name));

    it('fails the trace as a timeout naming the adapter and the request, keeps the trace, and the run goes on', async () => {
      const out = await runConformance(opts(kind, name));
      const entry = out.results.adapters.reference as AdapterResults;
      const hangs = entry.failures.filter((f) => f.kind === 'timeout');
      assert.ok(hangs.length > 0, 'some trace hangs');
      assert.equal(hangs.length, entry.failures.length, 'every failure is the hang');
      const why =
        kind === 'sync' ? 'it ran a synchronous loop, interrupted by the watchdog' : 'its promise had not settled';
      for (const f of hangs) {
        assert.match(
          f.message,
          new RegExp(
            `^in-process adapter "${name}" did not answer request \\d+ \\(\\d+ steps\\) within ${LIMIT} ms \\(${why}`,
          ),
        );
        assert.ok(existsSync(f.file), `the trace of ${f.trace} is kept (${f.file})`);
        assert.ok(hangsAt(readTraceFile(f.file).steps));
      }
      const firstHang = Math.min(...hangs.map((f) => Number(f.trace.slice('random/'.length))));
      assert.ok(out.passed > 0, 'other traces pass');
      const failed = new Set(hangs.map((f) => f.trace));
      assert.ok(
        Array.from({ length: 12 }, (_, i) => i).some((i) => i > firstHang && !failed.has(`random/${i}`)),
        'a trace after the hang still runs and passes (the adapter was restarted)',
      );
    });

    it('the kept trace replays: the hang again on the adapter, a pass on the reference', async () => {
      const out = await runConformance(opts(`${kind}-replay`, name));
      const f = (out.results.adapters.reference as AdapterResults).failures[0]!;
      const again = await replay([f.file, '--adapter', name, '--timeout', String(LIMIT)]);
      assert.equal(again.code, 1);
      assert.match(again.out, new RegExp(`in-process adapter "${name}" did not answer request 1`));
      assert.equal((await replay([f.file, '--adapter', 'reference', '--quiet'])).code, 0);
      // Through the API as well: the same verdict, with the adapter guarded as the runner guards it.
      const adapter = guardAdapter(createAdapter(name), LIMIT);
      const caps = await adapter.open();
      const v = await runAndCheck(adapter, caps, readTraceFile(f.file).steps);
      assert.equal(v.failure?.kind, 'timeout');
      await adapter.close();
    });
  });
}

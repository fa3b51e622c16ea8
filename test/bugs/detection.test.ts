// Detection: the default run catches representative catalogued bugs, shrinks each counterexample to at most 7
// steps, and the shrunk trace file replays the failure on the buggy adapter while conforming on the reference.
// Each test names the clauses the bug breaks.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAdapter } from '../../conformance/adapters/registry.ts';
import { formatTotals, median, mutantSeed, type BugResult } from '../../conformance/bugs/mutants.ts';
import { readTraceFile, runAndCheck } from '../../conformance/runner.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ioasid-bugs-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Replays a trace file on an adapter (configured for the trace, as `replay` does) and returns the verdict. */
async function replay(file: string, adapterName: string) {
  const trace = readTraceFile(file);
  const adapter = createAdapter(adapterName, {
    profile: trace.profile,
    features: trace.features,
    platform: trace.platform,
  });
  const caps = await adapter.open();
  try {
    return await runAndCheck(adapter, caps, trace.steps);
  } finally {
    await adapter.close();
  }
}

const REPRESENTATIVE: readonly [string, string][] = [
  ['unmap-all-keeps-last', 'MAP-031'],
  ['copy-partial-source', 'MAP-044'],
  ['destroy-device-object', 'FD-015'],
  ['rlimit-mode-set-busy', 'IOAS-029'],
  ['type1-dma-avail-leak', 'MEM-015'],
  ['rfc-free-in-use', 'FD-017'],
  ['dma-ignores-write-perm', 'REF-005'],
];

describe('bug detection: the default run catches catalogued bugs with small replayable counterexamples', () => {
  for (const [name, clause] of REPRESENTATIVE)
    it(`${clause} ${name}: caught, shrunk to <= 7 steps, replayed by the shrunk trace, conforming on the reference`, async () => {
      const r = await mutantSeed(name, 1, dir);
      assert.ok(r.caught, `${name} not caught`);
      assert.ok(r.shrunkSteps !== undefined && r.shrunkSteps >= 1 && r.shrunkSteps <= 7, `shrunk to ${r.shrunkSteps}`);
      assert.ok(r.file !== undefined);
      const onBug = await replay(r.file, `buggy-${name}`);
      assert.ok(onBug.failure !== undefined, 'the shrunk trace passes on the buggy adapter');
      assert.equal(onBug.failure.kind, r.failure!.kind);
      const onRef = await replay(r.file, 'reference');
      assert.equal(onRef.failure, undefined, `the shrunk trace fails on the reference: ${onRef.failure?.message}`);
    });

  it('mutants report: the totals end with "caught N of M"', () => {
    const mk = (bug: string, caught: boolean): BugResult => ({
      bug,
      profile: 'iommufd',
      chapter: 'MAP',
      clauses: ['MAP-026'],
      seeds: [],
      caught,
      caughtByRandom: caught,
      ...(caught ? { medianMsToFailure: 10, medianShrunkSteps: 3 } : {}),
    });
    const lines = formatTotals([mk('a', true), mk('b', false), mk('c', true)]);
    assert.equal(lines[lines.length - 1], 'caught 2 of 3');
    assert.ok(lines.some((l) => l === 'missed: b'));
    assert.equal(median([5, 1, 3]), 3);
    assert.equal(median([]), undefined);
  });
});

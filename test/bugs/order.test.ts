// The order-of-checks bugs (conformance/bugs/order.ts): each answers a call with one fault like the reference and a
// call with two faults with the errno of the wrong one; the default run catches each with a small counterexample
// that replays on the buggy adapter and conforms on the reference. Each test names the clause the bug breaks.
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUGS, executeTrace, referenceCapabilities } from '../../conformance/adapters/reference.ts';
import { createAdapter } from '../../conformance/adapters/registry.ts';
import { CATALOGUE } from '../../conformance/bugs/catalogue.ts';
import { mutantSeed } from '../../conformance/bugs/mutants.ts';
import { ORDER_BUGS } from '../../conformance/bugs/order.ts';
import { readTraceFile, runAndCheck } from '../../conformance/runner.ts';
import type { Command } from '../../src/reference/commands.ts';
import { U64_MAX } from '../../src/reference/u64.ts';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ioasid-order-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const caps = referenceCapabilities({ profile: 'iommufd' });

/** The errno (or ok) of the last step of `steps` on the reference and on the buggy implementation `name`. */
function lastOutcomes(name: string, steps: Command[]): { ref: string; bug: string } {
  const show = (r: ReturnType<typeof executeTrace>) => {
    const o = r.replies[steps.length - 1]?.outcome;
    return o === undefined ? 'none' : o.ok ? 'ok' : o.errno;
  };
  return { ref: show(executeTrace(caps, steps)), bug: show(executeTrace(caps, steps, BUGS[name])) };
}

const IOAS: Command = { op: 'IOMMU_IOAS_ALLOC' };

describe('order-of-checks bugs: one fault answered right, two faults answered with the wrong errno', () => {
  it('the catalogue holds them, each tied to its clause', () => {
    for (const [name, b] of Object.entries(ORDER_BUGS)) {
      assert.equal(CATALOGUE[name], b);
      assert.equal(b.clauses.length, 1);
    }
    assert.deepEqual(
      Object.values(ORDER_BUGS)
        .map((b) => b.clauses[0])
        .sort(),
      ['FD-029', 'INFO-018', 'INV-013', 'IOAS-014', 'MAP-017', 'MAP-025', 'MAP-036', 'MAP-050'],
    );
  });

  it('INFO-018 iova-ranges-reserved-last', () => {
    const name = 'iova-ranges-reserved-last';
    const q = (ioas_id: number, reserved: number): Command => ({
      op: 'IOMMU_IOAS_IOVA_RANGES',
      ioas_id,
      num_iovas: 4,
      ...(reserved ? { __reserved: reserved } : {}),
    });
    assert.deepEqual(lastOutcomes(name, [IOAS, q(1, 1)]), { ref: 'EOPNOTSUPP', bug: 'EOPNOTSUPP' });
    assert.deepEqual(lastOutcomes(name, [IOAS, q(9, 0)]), { ref: 'ENOENT', bug: 'ENOENT' });
    assert.deepEqual(lastOutcomes(name, [IOAS, q(9, 1)]), { ref: 'EOPNOTSUPP', bug: 'ENOENT' });
  });

  it('MAP-036 unmap-range-before-lookup', () => {
    const name = 'unmap-range-before-lookup';
    const u = (ioas_id: number, iova: bigint, length: bigint): Command => ({
      op: 'IOMMU_IOAS_UNMAP',
      ioas_id,
      iova,
      length,
    });
    assert.deepEqual(lastOutcomes(name, [IOAS, u(9, 0x1000n, 0x1000n)]), { ref: 'ENOENT', bug: 'ENOENT' });
    assert.deepEqual(lastOutcomes(name, [IOAS, u(9, 0n, U64_MAX)]), { ref: 'ENOENT', bug: 'ENOENT' });
    assert.deepEqual(lastOutcomes(name, [IOAS, u(9, 0x1000n, 0n)]), { ref: 'ENOENT', bug: 'EINVAL' });
    assert.deepEqual(lastOutcomes(name, [IOAS, u(9, U64_MAX - 0xfffn, 0x2000n)]), { ref: 'ENOENT', bug: 'EOVERFLOW' });
  });

  it('FD-029 abi-size-after-command', () => {
    const name = 'abi-size-after-command';
    const d = (id: number, size?: number): Command => ({
      op: 'IOMMU_DESTROY',
      id,
      ...(size === undefined ? {} : { abi: { size } }),
    });
    assert.deepEqual(lastOutcomes(name, [IOAS, d(1, 4)]), { ref: 'EINVAL', bug: 'EINVAL' });
    assert.deepEqual(lastOutcomes(name, [IOAS, d(9)]), { ref: 'ENOENT', bug: 'ENOENT' });
    assert.deepEqual(lastOutcomes(name, [IOAS, d(9, 4)]), { ref: 'EINVAL', bug: 'ENOENT' });
  });
});

describe('order-of-checks bugs: the default run catches them', function () {
  this.timeout(300_000);
  for (const [name, b] of Object.entries(ORDER_BUGS))
    it(`${b.clauses.join(' ')} ${name}: caught by seed 1, shrunk to <= 7 steps, the shrunk trace replays and conforms on the reference`, async () => {
      const r = await mutantSeed(name, 1, dir);
      assert.ok(r.caught, `${name} not caught`);
      assert.ok(r.shrunkSteps !== undefined && r.shrunkSteps <= 7, `shrunk to ${r.shrunkSteps}`);
      const trace = readTraceFile(r.file!);
      for (const [adapter, fails] of [
        [`buggy-${name}`, true],
        ['reference', false],
      ] as const) {
        const a = createAdapter(adapter, {
          profile: trace.profile,
          features: trace.features,
          platform: trace.platform,
        });
        const c = await a.open();
        const v = await runAndCheck(a, c, trace.steps);
        await a.close();
        assert.equal(v.failure !== undefined, fails, `${adapter}: ${v.failure?.message ?? 'conforms'}`);
      }
    });
});

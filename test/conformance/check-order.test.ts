// The `two-faults` variants of the iommufd generators reach commands with two faults at once, and the model answers
// with the errno of the check the specification puts first: each test finds generated steps where the command
// fails with errno A, and the same command with the first fault repaired fails with another errno B.
import { strict as assert } from 'node:assert';
import { REFERENCE_FEATURES } from '../../conformance/adapters/reference.ts';
import type { Command, Outcome } from '../../src/reference/commands.ts';
import { IOAS_MAP } from '../../src/reference/commands.ts';
import type { IdArg } from '../../src/reference/args.ts';
import { Model } from '../../src/reference/model.ts';
import { listAreas } from '../../src/reference/view.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { TraceGenerator } from '../../generators/trace.ts';
import fc from 'fast-check';

const platform = defaultPlatform();
const features = [...REFERENCE_FEATURES.iommufd];

function errno(o: Outcome): string {
  return o.ok ? 'ok' : o.errno;
}

/** `c` without the fields `keys`. */
function without(c: Command, ...keys: string[]): Command {
  const copy: Record<string, unknown> = { ...c };
  for (const k of keys) delete copy[k];
  return copy as unknown as Command;
}

/**
 * Generates traces weighted towards template `kind` (every step adversarial), runs them on the model, and collects
 * for every step that `repair` applies to: the errno of the step, and the errno of the repaired step in the same
 * state. Returns the pairs seen, as `A>B` strings.
 */
function pairs(
  kind: string,
  repair: (c: Command, m: Model, resolve: (id: IdArg) => number) => Command | undefined,
  runs = 60,
  weight = 12,
): Set<string> {
  const gen = new TraceGenerator({
    profile: 'iommufd',
    features,
    platform,
    maxSteps: 60,
    adversarial: 0.6,
    weights: { [kind]: weight },
  });
  const seen = new Set<string>();
  for (const templates of fc.sample(gen.arbitrary(), { seed: 7, numRuns: runs })) {
    const model = new Model({ profile: 'iommufd', features: new Set(features), platform });
    const outcomes: Outcome[] = [];
    const resolve = (id: IdArg): number =>
      typeof id === 'number' ? id : Number(outcomes[id.ref]?.ok ? (outcomes[id.ref]!.out?.[id.field ?? 'id'] ?? 0) : 0);
    for (const c of gen.realise(templates).trace.steps) {
      const fixed = repair(c, model, resolve);
      if (fixed !== undefined) {
        const snap = model.snapshot();
        const b = errno(model.step(fixed).outcome);
        model.restore(snap);
        const o = model.step(c).outcome;
        outcomes.push(o);
        const a = errno(o);
        if (a !== 'ok' && b !== 'ok' && a !== b) seen.add(`${a}>${b}`);
      } else outcomes.push(model.step(c).outcome);
    }
  }
  return seen;
}

/** The ID of a live IOAS of the model, if any. */
function liveIoas(m: Model): number | undefined {
  return m.view.objects().find((o) => o.kind === 'ioas')?.id;
}

describe('check order: commands with two faults get the errno of the first check', function () {
  this.timeout(120_000);

  it('INFO-018 IOVA_RANGES: a non-zero __reserved wins over a bad ioas_id (EOPNOTSUPP, not ENOENT)', () => {
    const seen = pairs('iommufd.iova-ranges', (c) =>
      c.op === 'IOMMU_IOAS_IOVA_RANGES' && c.__reserved ? without(c, '__reserved') : undefined,
    );
    assert.ok(seen.has('EOPNOTSUPP>ENOENT'), [...seen].join(' '));
  });

  it('FD-029 a short size or a non-zero tail wins over the command’s own errors (EINVAL / E2BIG first)', () => {
    const seen = pairs('iommufd.iova-ranges', (c) =>
      c.op === 'IOMMU_IOAS_IOVA_RANGES' && c.abi !== undefined && 'size' in c.abi ? without(c, 'abi') : undefined,
    );
    assert.ok(seen.has('EINVAL>ENOENT') && seen.has('E2BIG>ENOENT'), [...seen].join(' '));
  });

  it('INV-013 HWPT_INVALIDATE: __reserved and a missing array are checked before the hwpt_id lookup', () => {
    const seen = pairs('iommufd.hwpt-invalidate', (c) =>
      c.op === 'IOMMU_HWPT_INVALIDATE' && (c.__reserved || c.null_array)
        ? without(c, '__reserved', 'null_array')
        : undefined,
    );
    assert.ok(seen.has('EOPNOTSUPP>ENOENT') && seen.has('EINVAL>ENOENT'), [...seen].join(' '));
  });

  it('MAP-036 UNMAP: an unknown ioas_id wins over a bad range (ENOENT, not EINVAL / EOVERFLOW)', () => {
    const seen = pairs('iommufd.unmap', (c, m) => {
      if (c.op !== 'IOMMU_IOAS_UNMAP' || typeof c.ioas_id !== 'number') return undefined;
      const io = liveIoas(m);
      return io === undefined || io === c.ioas_id ? undefined : { ...c, ioas_id: io };
    });
    assert.ok(seen.has('ENOENT>EINVAL') && seen.has('ENOENT>EOVERFLOW'), [...seen].join(' '));
  });

  it('IOAS-014 ALLOW_IOVAS: the lookup before the ranges, and every range validated before the reservations', () => {
    const lookup = pairs('iommufd.allow-iovas', (c, m) => {
      if (c.op !== 'IOMMU_IOAS_ALLOW_IOVAS' || typeof c.ioas_id !== 'number' || c.__reserved || c.abi) return undefined;
      const io = liveIoas(m);
      return io === undefined || io === c.ioas_id ? undefined : { ...c, ioas_id: io };
    });
    assert.ok(lookup.has('ENOENT>EINVAL'), [...lookup].join(' '));
    const ranges = pairs('iommufd.allow-iovas', (c) =>
      c.op === 'IOMMU_IOAS_ALLOW_IOVAS' && c.iovas.some((r) => r.start > r.last)
        ? { ...c, iovas: c.iovas.filter((r) => r.start <= r.last) }
        : undefined,
    );
    assert.ok(ranges.has('EINVAL>EADDRINUSE'), [...ranges].join(' '));
  });

  it('MAP-050 COPY: length 0 and unknown flags are checked before the destination lookup', () => {
    const seen = pairs('iommufd.copy', (c) =>
      c.op === 'IOMMU_IOAS_COPY' && c.length === 0n ? { ...c, length: 0x1000n } : undefined,
    );
    assert.ok(seen.has('EINVAL>ENOENT'), [...seen].join(' '));
  });

  it('MAP-017 fixed MAP: alignment before the wrap, and the overlap before the user_va page offset', () => {
    const seen = pairs(
      'iommufd.map',
      (c, m, resolve) => {
        if (c.op !== 'IOMMU_IOAS_MAP' || (c.flags & IOAS_MAP.FIXED_IOVA) === 0) return undefined;
        // The unaligned iova made aligned: the wrap past U64_MAX decides.
        if (c.iova % 0x1000n !== 0n) return { ...c, iova: c.iova - (c.iova % 0x1000n) };
        // The same MAP above every area of its IOAS (no overlap there): the user_va page offset decides.
        const io = resolve(c.ioas_id);
        if (!('buf' in c.user_va) || c.user_va.off % 0x1000n === 0n || m.view.objects().every((o) => o.id !== io))
          return undefined;
        const top = listAreas(m.view, io).reduce((x, a) => (a.last > x ? a.last : x), 0n);
        const iova = ((top >> 16n) + 1n) << 16n;
        return m.view.usableRanges(io).some((r) => r.start <= iova && iova + c.length - 1n <= r.last)
          ? { ...c, iova }
          : undefined;
      },
      150,
    );
    assert.ok(seen.has('EINVAL>EOVERFLOW') && seen.has('EEXIST>EINVAL'), [...seen].join(' '));
  });

  it('MAP-025 automatic MAP: a length of 2^63 fails with EOVERFLOW before the alignment and hole checks', () => {
    const seen = pairs(
      'iommufd.map',
      (c) =>
        c.op === 'IOMMU_IOAS_MAP' && (c.flags & IOAS_MAP.FIXED_IOVA) === 0 && c.length === 1n << 63n
          ? { ...c, length: 1n << 62n }
          : undefined,
      150,
      2,
    );
    assert.ok(seen.has('EOVERFLOW>EINVAL'), [...seen].join(' '));
  });
});

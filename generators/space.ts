/**
 * Placement of MAP / UNMAP / COPY / DMA arguments in an address space, shared by every profile: well-formed
 * placements (a free gap, a whole area, a span of whole areas) and the adversarial ones (an overlap by one page, a
 * bisecting range, IOVAs at 0 / the aperture's end / the top of the u64 space, lengths off by one).
 *
 * @module
 */
import type { UserPtr } from '../src/reference/args.ts';
import type { Area } from '../src/reference/core/areas.ts';
import { U64_MAX, alignUp } from '../src/reference/u64.ts';
import type { Picks, RealiseCtx, Variant } from './template.ts';

/** 2 MiB, the large page generators sometimes use. */
const HUGE = 2n << 20n;

/** A MAP's placement: IOVA, length and user memory. */
export interface MapArgs {
  iova: bigint;
  length: bigint;
  ptr: UserPtr;
}

/** An UNMAP's range, or unmap-all. */
export interface UnmapArgs {
  iova: bigint;
  length: bigint;
  all: boolean;
}

/** The adversarial variants of a MAP placement. */
export const MAP_VARIANTS: readonly Variant[] = [
  { name: 'overlap-page' },
  { name: 'iova-zero' },
  { name: 'aperture-end' },
  { name: 'u64-top' },
  { name: 'u64-wrap' },
  { name: 'iova-u64-max' },
  { name: 'length-u64-max' },
  { name: 'length-off-by-one' },
  { name: 'length-zero' },
  { name: 'iova-unaligned' },
  { name: 'reserved-region' },
  { name: 'va-unmapped' },
  { name: 'va-top' },
  { name: 'va-past-end' },
  { name: 'va-unaligned' },
];

/** The adversarial variants of an UNMAP range. */
export const UNMAP_VARIANTS: readonly Variant[] = [
  { name: 'bisect-start' },
  { name: 'bisect-end' },
  { name: 'bisect-middle' },
  // MAP-039, MAP-040: from one area into the middle of a later one, where atomic and non-atomic unmaps part ways.
  { name: 'span-bisect', weight: 2 },
  { name: 'length-off-by-one' },
  { name: 'iova-off-by-one' },
  { name: 'length-zero' },
  { name: 'u64-top' },
  { name: 'u64-wrap' },
];

/** Whether the platform's IOMMU supports 2 MiB pages. */
function hasHuge(ctx: RealiseCtx): boolean {
  return (ctx.platform.iommu.pageSizes & HUGE) !== 0n;
}

/** The length of a well-formed mapping: a few granules, sometimes a few large pages. Picks: `i`, `i + 1`. */
export function mapLength(ctx: RealiseCtx, p: Picks, i: number, gran: bigint): bigint {
  if (p.chance(i + 1, 0.1) && hasHuge(ctx) && HUGE % gran === 0n) return HUGE * BigInt(1 + p.int(i, 2));
  return gran * BigInt(1 + p.int(i, 8));
}

/** User memory for `length` bytes at a granule-aligned offset of a buffer. Picks: `i`, `i + 1`. */
export function userMemory(ctx: RealiseCtx, p: Picks, i: number, length: bigint, gran: bigint): UserPtr {
  const bufs = ctx.platform.buffers.map((b, k) => ({ k, size: b.size })).filter((b) => b.size >= length);
  if (bufs.length === 0) return { buf: 0, off: 0n };
  const b = p.of(i, bufs);
  const room = b.size - length;
  const align = length >= HUGE && room >= HUGE ? HUGE : gran;
  const off = (p.big(i + 1, room + 1n) / align) * align;
  return { buf: b.k, off };
}

/** A free, granule-aligned IOVA for `length` bytes in `as`: a gap, near its start. Picks: `i`, `i + 1`. */
export function freeIova(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
  as: number,
  length: bigint,
  gran: bigint,
): bigint | undefined {
  const align = length >= HUGE && length % HUGE === 0n ? HUGE : gran;
  const fits = ctx.gaps(as).filter((g) => {
    const s = alignUp(g.start, align);
    return s >= g.start && s + length - 1n <= g.last;
  });
  if (fits.length === 0) return undefined;
  const g = p.of(i, fits);
  const s = alignUp(g.start, align);
  const shifted = s + align * BigInt(p.int(i + 1, 4));
  return shifted + length - 1n <= g.last ? shifted : s;
}

/** A well-formed MAP placement in `as`. Picks `i` … `i + 5`. */
export function mapPlacement(ctx: RealiseCtx, p: Picks, i: number, as: number): MapArgs {
  const gran = ctx.granule(as);
  let length = mapLength(ctx, p, i, gran);
  let iova = freeIova(ctx, p, i + 2, as, length, gran);
  if (iova === undefined) {
    length = gran;
    iova = freeIova(ctx, p, i + 2, as, length, gran) ?? 0n;
  }
  return { iova, length, ptr: userMemory(ctx, p, i + 4, length, gran) };
}

/** The first reserved region of the platform's devices, if any. */
function reservedRegion(ctx: RealiseCtx): { start: bigint; last: bigint } | undefined {
  for (const d of ctx.platform.devices) for (const r of d.reserved) if (r.kind !== 'relaxable') return r;
  return undefined;
}

/** An adversarial MAP placement: `variant` applied to a well-formed one. Picks `i` … `i + 6`. */
export function mapAdversarial(ctx: RealiseCtx, p: Picks, i: number, as: number, variant: string): MapArgs {
  const m = mapPlacement(ctx, p, i, as);
  const gran = ctx.granule(as);
  const ap = ctx.platform.iommu.aperture;
  switch (variant) {
    case 'overlap-page': {
      const areas = ctx.areas(as);
      if (areas.length === 0) return m;
      const a = p.of(i + 6, areas);
      if (p.chance(i + 1, 0.5) || a.iova < gran) return { ...m, iova: a.last + 1n - gran, length: 2n * gran };
      return { ...m, iova: a.iova - gran, length: 2n * gran };
    }
    case 'iova-zero':
      return { ...m, iova: 0n, length: gran };
    case 'aperture-end':
      return { ...m, iova: ap.last + 1n - gran, length: p.chance(i + 6, 0.5) ? gran : 2n * gran };
    case 'u64-top':
      return { ...m, iova: U64_MAX + 1n - gran, length: gran };
    case 'u64-wrap':
      return { ...m, iova: U64_MAX + 1n - gran, length: 2n * gran };
    case 'iova-u64-max':
      return { ...m, iova: U64_MAX, length: gran };
    case 'length-u64-max':
      return { ...m, length: U64_MAX };
    case 'length-off-by-one':
      return { ...m, length: p.chance(i + 6, 0.5) ? m.length + 1n : m.length - 1n };
    case 'length-zero':
      return { ...m, length: 0n };
    case 'iova-unaligned':
      return { ...m, iova: m.iova + (p.chance(i + 6, 0.5) ? 1n : gran / 2n) };
    case 'reserved-region': {
      const r = reservedRegion(ctx);
      return r === undefined ? m : { ...m, iova: r.start, length: gran };
    }
    case 'va-unmapped':
      return { ...m, ptr: { bad: 'unmapped' } };
    case 'va-top':
      return { ...m, ptr: { bad: 'top' } };
    case 'va-past-end': {
      const k = 'buf' in m.ptr ? m.ptr.buf : 0;
      const size = ctx.platform.buffers[k]?.size ?? 0n;
      return { ...m, ptr: { buf: k, off: p.chance(i + 6, 0.5) ? size : size - gran } };
    }
    case 'va-unaligned':
      return 'buf' in m.ptr ? { ...m, ptr: { buf: m.ptr.buf, off: m.ptr.off + 1n } } : m;
    default:
      return m;
  }
}

/** A range inside a gap (nothing mapped there). */
function holeRange(ctx: RealiseCtx, p: Picks, i: number, as: number, gran: bigint): UnmapArgs {
  const iova = freeIova(ctx, p, i, as, gran, gran) ?? 0n;
  return { iova, length: gran, all: false };
}

/** A well-formed UNMAP range in `as`: a whole area, a span of whole areas, a hole, or everything. Picks `i` … `i + 3`. */
export function unmapRange(ctx: RealiseCtx, p: Picks, i: number, as: number): UnmapArgs {
  const areas = ctx.areas(as);
  const gran = ctx.granule(as);
  const mode = p.int(i, 12);
  if (mode === 11 || (areas.length === 0 && mode >= 8)) return { iova: 0n, length: 0n, all: true };
  if (areas.length === 0 || mode === 10) return holeRange(ctx, p, i + 1, as, gran);
  const k = p.int(i + 1, areas.length);
  const a = areas[k]!;
  if (mode >= 6 && mode <= 7) {
    const b = areas[Math.min(areas.length - 1, k + 1 + p.int(i + 2, 3))]!;
    return { iova: a.iova, length: b.last - a.iova + 1n, all: false };
  }
  if (mode === 8 || mode === 9) {
    // The area with a free granule on each side, when there is one.
    const before = k > 0 ? areas[k - 1]! : undefined;
    const after = areas[k + 1];
    const lo = a.iova >= gran && (before === undefined || before.last < a.iova - gran) ? a.iova - gran : a.iova;
    const hi = a.last <= U64_MAX - gran && (after === undefined || after.iova > a.last + gran) ? a.last + gran : a.last;
    return { iova: lo, length: hi - lo + 1n, all: false };
  }
  return { iova: a.iova, length: a.last - a.iova + 1n, all: false };
}

/** An adversarial UNMAP range. Picks `i` … `i + 3`. */
export function unmapAdversarial(ctx: RealiseCtx, p: Picks, i: number, as: number, variant: string): UnmapArgs {
  const areas = ctx.areas(as);
  const gran = ctx.granule(as);
  const base = unmapRange(ctx, p, i, as);
  const big = areas.filter((a) => a.last - a.iova + 1n >= 2n * gran);
  const pickArea = (xs: readonly Area[]) => (xs.length > 0 ? p.of(i + 1, xs) : undefined);
  switch (variant) {
    case 'bisect-start': {
      const a = pickArea(big);
      return a === undefined ? base : { iova: a.iova + gran, length: a.last - a.iova + 1n - gran, all: false };
    }
    case 'bisect-end': {
      const a = pickArea(big);
      return a === undefined ? base : { iova: a.iova, length: a.last - a.iova + 1n - gran, all: false };
    }
    case 'bisect-middle': {
      const a = pickArea(areas.filter((x) => x.last - x.iova + 1n >= 3n * gran));
      return a === undefined ? base : { iova: a.iova + gran, length: gran, all: false };
    }
    case 'span-bisect': {
      // From the start of one area into the middle of a later one: the walk removes the first, then stops.
      const k = areas.findIndex((a, j) => j > 0 && a.last - a.iova + 1n >= 2n * gran);
      if (k <= 0) return base;
      const first = areas[p.int(i + 2, k)]!;
      return { iova: first.iova, length: areas[k]!.iova + gran - first.iova, all: false };
    }
    case 'length-off-by-one':
      return base.all ? base : { ...base, length: p.chance(i + 3, 0.5) ? base.length + 1n : base.length - 1n };
    case 'iova-off-by-one':
      return base.all ? base : { ...base, iova: p.chance(i + 3, 0.5) ? base.iova + 1n : base.iova - 1n };
    case 'length-zero':
      return { iova: base.all ? 0n : base.iova, length: 0n, all: false };
    case 'u64-top': {
      // MAP-042: the whole mapping that ends at the last byte of the 64-bit space, when there is one.
      const top = areas[areas.length - 1];
      if (top?.last === U64_MAX) return { iova: top.iova, length: top.last - top.iova + 1n, all: false };
      return { iova: U64_MAX + 1n - gran, length: gran, all: false };
    }
    case 'u64-wrap':
      return { iova: U64_MAX + 1n - gran, length: 2n * gran, all: false };
    default:
      return base;
  }
}

/**
 * A DMA probe inside (or, adversarially, at the edges of) the areas of `as`, or of an area an unmap removed
 * ({@link RealiseCtx.unmapped}). Picks `i` … `i + 4`.
 */
export function dmaRange(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
  as: number | undefined,
  variant: string,
): { iova: bigint; length: bigint } {
  const areas = as === undefined ? [] : ctx.areas(as);
  const small = BigInt(1 + p.int(i + 2, 8)) * 8n;
  // REF-003, REF-004: sometimes (always with no area left) a probe of a range an earlier unmap removed, which
  // must fault now.
  const gone = as === undefined ? [] : (ctx.unmapped?.(as) ?? []);
  if (variant === '' && gone.length > 0 && (areas.length === 0 || p.chance(i + 4, 0.25))) {
    const a = p.of(i, gone);
    const off = (p.big(i + 1, a.last - a.iova + 1n) / 8n) * 8n;
    return { iova: a.iova + off, length: off + small <= a.last - a.iova + 1n ? small : 8n };
  }
  if (areas.length === 0) return { iova: BigInt(p.int(i, 16)) * 0x1000n, length: small };
  const a = p.of(i, areas);
  const size = a.last - a.iova + 1n;
  switch (variant) {
    case 'dma-past-end':
      return { iova: a.last + 1n, length: small };
    case 'dma-cross-end':
      return { iova: a.last - 3n, length: 8n };
    case 'dma-before':
      return { iova: a.iova === 0n ? a.last + 1n : a.iova - 1n, length: 1n };
    case 'dma-whole':
      return { iova: a.iova, length: size };
    default: {
      const off = (p.big(i + 1, size) / 8n) * 8n;
      const len = off + small <= size ? small : size - off;
      return { iova: a.iova + off, length: len };
    }
  }
}

/** The adversarial variants of a DMA probe. */
export const DMA_VARIANTS: readonly Variant[] = [
  { name: 'dma-past-end' },
  { name: 'dma-cross-end' },
  { name: 'dma-before' },
  { name: 'dma-whole' },
];

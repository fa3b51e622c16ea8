/**
 * Templates of the `iommufd` profile (Linux 6.12): IOAS, MAP / UNMAP / COPY, ALLOW_IOVAS, IOVA_RANGES, OPTION,
 * VFIO_IOAS, HWPT_ALLOC, device bind / attach / detach / close, DESTROY.
 *
 * @module
 */
import type { IdArg } from '../src/reference/args.ts';
import {
  DIRTY_BITMAP,
  DIRTY_TRACKING,
  HWPT_ALLOC,
  HWPT_DATA,
  HWPT_INVALIDATE_DATA,
  IOAS_MAP,
  OPTION,
  PAGE_RESP,
  VFIO_IOAS_OP,
  VTD_INV_FLAGS,
  type Command,
} from '../src/reference/commands.ts';
import { U64_MAX } from '../src/reference/u64.ts';
import type { ObjectKind } from '../src/reference/view.ts';
import { MAP_VARIANTS, UNMAP_VARIANTS, freeIova, mapAdversarial, mapPlacement, unmapAdversarial } from './space.ts';
import {
  ID_VARIANTS,
  adversarialId,
  pickLive,
  type Picks,
  type RealiseCtx,
  type TemplateDef,
  type Variant,
} from './template.ts';

/** The minimum `size` of each command (FD-025): the end of the original ABI's last field. */
const MIN_SIZE: Partial<Record<Command['op'], number>> = {
  IOMMU_DESTROY: 8,
  IOMMU_IOAS_ALLOC: 12,
  IOMMU_VFIO_IOAS: 12,
  IOMMU_IOAS_ALLOW_IOVAS: 24,
  IOMMU_IOAS_UNMAP: 24,
  IOMMU_OPTION: 24,
  IOMMU_HWPT_ALLOC: 24,
  IOMMU_IOAS_IOVA_RANGES: 32,
  IOMMU_IOAS_MAP: 40,
  IOMMU_IOAS_COPY: 40,
  IOMMU_GET_HW_INFO: 32,
  IOMMU_HWPT_INVALIDATE: 32,
  IOMMU_HWPT_SET_DIRTY_TRACKING: 16,
  IOMMU_HWPT_GET_DIRTY_BITMAP: 48,
  IOMMU_FAULT_QUEUE_ALLOC: 16,
};

/** The raw-ABI variants (feature `ioctl-abi`): a short size, a long size with a non-zero or a zero tail. */
const ABI_VARIANTS: readonly Variant[] = [
  { name: 'abi-short', features: ['ioctl-abi'] },
  { name: 'abi-tail', features: ['ioctl-abi'] },
  { name: 'abi-tail-zero', features: ['ioctl-abi'] },
  { name: 'abi-unreadable', features: ['ioctl-abi'] },
  { name: 'abi-readonly', features: ['ioctl-abi'] },
];
/**
 * The ABI variants for MAP, COPY and UNMAP: not `abi-readonly` yet, since FD-032 keeps their change on EFAULT and the
 * invariants (MAP-001, MAP-039) do not allow for it.
 */
const ABI_VARIANTS_KEEP: readonly Variant[] = ABI_VARIANTS.filter((v) => v.name !== 'abi-readonly');
const FLAG_VARIANTS: readonly Variant[] = [{ name: 'flags-unknown', features: ['ioctl-abi'] }];
const RESERVED_VARIANTS: readonly Variant[] = [{ name: 'reserved-nonzero', features: ['ioctl-abi'] }];

/** Applies an ABI variant to a command (other variants leave it alone). */
function withAbi<C extends Command>(c: C, variant: string): C {
  const min = MIN_SIZE[c.op] ?? 8;
  if (variant === 'abi-short') return { ...c, abi: { size: min - 4 } };
  if (variant === 'abi-tail') return { ...c, abi: { size: 256, tailNonZero: true } };
  if (variant === 'abi-tail-zero') return { ...c, abi: { size: 256, tailNonZero: false } };
  if (variant === 'abi-unreadable') return { ...c, abi: { memory: 'unreadable' } };
  if (variant === 'abi-readonly') return { ...c, abi: { memory: 'readonly' } };
  return c;
}

const IOAS_ALLOC: Command = { op: 'IOMMU_IOAS_ALLOC' };

/**
 * Order of checks (two faults at once): `c`, a command of `op` that carries one fault, with its ID field `field`
 * replaced by an adversarial ID (zero, stale, of another type, never allocated), so that the order of the checks
 * decides the errno. Other commands (a template's fallback) come back unchanged. Pick `i`.
 */
function withBadId(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
  c: Command | undefined,
  op: Command['op'],
  field: string,
  kinds: readonly ObjectKind[],
): Command | undefined {
  if (c?.op !== op) return c;
  const id = adversarialId(ctx, p, i, p.of(i, ID_VARIANTS).name, kinds) ?? 0;
  return { ...c, [field]: id };
}

/** The check-order variant of a template: two faults at once (see each template for which). */
const TWO_FAULTS: Variant = { name: 'two-faults', weight: 3 };
/** The same for templates whose second faults are raw-ABI or reserved-field ones. */
const TWO_FAULTS_ABI: Variant = { name: 'two-faults', features: ['ioctl-abi'], weight: 3 };

/** An IOAS argument: a live IOAS, or an adversarial ID. */
function ioasArg(ctx: RealiseCtx, p: Picks, i: number, variant: string): IdArg | undefined {
  const bad = adversarialId(ctx, p, i, variant, ['ioas']);
  if (bad !== undefined) return bad;
  const io = pickLive(ctx, p, i, 'ioas');
  return io === undefined ? undefined : ctx.ref(io.id);
}

/** Map flags: read and write, fixed IOVA unless automatic placement is drawn. */
function mapFlags(ctx: RealiseCtx, p: Picks, i: number, variant: string): number {
  const rw = [IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE, IOAS_MAP.READABLE, IOAS_MAP.WRITEABLE][p.int(i, 6) % 3]!;
  const fixed = ctx.features.has('auto-iova') && p.chance(i + 1, 0.25) ? 0 : IOAS_MAP.FIXED_IOVA;
  if (variant === 'flags-none') return fixed;
  if (variant === 'flags-unknown') return rw | fixed | 0x100;
  return rw | fixed;
}

const ioasAlloc: TemplateDef = {
  kind: 'iommufd.ioas-alloc',
  op: 'IOMMU_IOAS_ALLOC',
  profiles: ['iommufd'],
  weight: 6,
  picks: 0,
  variants: [...FLAG_VARIANTS, ...ABI_VARIANTS],
  realise: (_ctx, _p, v) => withAbi(v === 'flags-unknown' ? { op: 'IOMMU_IOAS_ALLOC', flags: 1 } : IOAS_ALLOC, v),
};

const destroy: TemplateDef = {
  kind: 'iommufd.destroy',
  op: 'IOMMU_DESTROY',
  profiles: ['iommufd'],
  weight: 5,
  picks: 1,
  // IOMMU_DESTROY's structure has no optional tail: a short size and an unreadable argument are its ABI cases.
  variants: [
    { name: 'id-zero' },
    { name: 'id-stale' },
    { name: 'id-unallocated' },
    ...ABI_VARIANTS.filter((v) => v.name === 'abi-short' || v.name === 'abi-unreadable'),
  ],
  realise(ctx, p, v) {
    const bad = adversarialId(ctx, p, 0, v, ['ioas', 'hwpt-paging', 'hwpt-nested', 'device']);
    if (bad !== undefined) return { op: 'IOMMU_DESTROY', id: bad };
    const o = pickLive(ctx, p, 0);
    return o === undefined ? undefined : withAbi({ op: 'IOMMU_DESTROY', id: ctx.ref(o.id) }, v);
  },
};

const iovaRanges: TemplateDef = {
  kind: 'iommufd.iova-ranges',
  op: 'IOMMU_IOAS_IOVA_RANGES',
  profiles: ['iommufd'],
  weight: 3,
  picks: 4,
  variants: [...ID_VARIANTS, ...RESERVED_VARIANTS, ...ABI_VARIANTS, TWO_FAULTS_ABI],
  realise(ctx, p, v): Command | undefined {
    // INFO-018, FD-029: a non-zero __reserved, a short or long size, together with a bad ioas_id.
    if (v === 'two-faults')
      return withBadId(
        ctx,
        p,
        3,
        this.realise(ctx, p, p.of(2, ['reserved-nonzero', 'abi-short', 'abi-tail'])),
        'IOMMU_IOAS_IOVA_RANGES',
        'ioas_id',
        ['ioas'],
      );
    const id = ioasArg(ctx, p, 0, v);
    if (id === undefined) return IOAS_ALLOC;
    const c: Command = { op: 'IOMMU_IOAS_IOVA_RANGES', ioas_id: id, num_iovas: [0, 1, 2, 4, 8][p.int(1, 5)]! };
    return withAbi(v === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c, v);
  },
};

const allowIovas: TemplateDef = {
  kind: 'iommufd.allow-iovas',
  op: 'IOMMU_IOAS_ALLOW_IOVAS',
  profiles: ['iommufd'],
  // Heavier than its share of real workloads: its check-order cases (IOAS-014 … IOAS-017) need an attached device.
  weight: 5,
  picks: 7,
  variants: [
    ...ID_VARIANTS,
    { name: 'range-inverted' },
    { name: 'range-overlap' },
    { name: 'range-reserved' },
    { name: 'reserved-and-invalid', weight: 3 },
    TWO_FAULTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v): Command | undefined {
    // IOAS-014: a bad ioas_id with a bad range, a non-zero __reserved or a short size (the lookup is second, after
    // __reserved, and the ranges are checked after it); a range over a reservation and an inverted one (every range
    // is validated before any is compared with the reservations: EINVAL, not EADDRINUSE).
    if (v === 'two-faults') {
      const abi = ctx.features.has('ioctl-abi') ? ['reserved-nonzero', 'abi-short'] : [];
      const second = p.of(5, ['range-inverted', 'range-overlap', ...abi]);
      return withBadId(ctx, p, 6, this.realise(ctx, p, second), 'IOMMU_IOAS_ALLOW_IOVAS', 'ioas_id', ['ioas']);
    }
    if (v === 'reserved-and-invalid') {
      const c = this.realise(ctx, p, 'range-reserved');
      if (c?.op !== 'IOMMU_IOAS_ALLOW_IOVAS') return c;
      const last = c.iovas[c.iovas.length - 1]?.last ?? 0n;
      return last >= U64_MAX - 0x10000n
        ? c
        : { ...c, iovas: [...c.iovas, { start: last + 0x4000n, last: last + 0x2000n }] };
    }
    // IOAS-017: a reserved range is in an IOAS's reserved tree only while a device is attached to it, so the
    // `range-reserved` variant targets an IOAS with an attached device when there is one.
    const withDev = v === 'range-reserved' ? ioasesWithDevice(ctx) : [];
    const id = withDev.length > 0 ? ctx.ref(p.of(0, withDev)) : ioasArg(ctx, p, 0, v);
    if (id === undefined) return IOAS_ALLOC;
    const io =
      withDev.length > 0 ? ctx.live('ioas').find((o) => o.id === p.of(0, withDev)) : pickLive(ctx, p, 0, 'ioas');
    const gran = io === undefined ? 4096n : ctx.granule(io.id);
    const n = p.int(1, 3);
    const iovas: { start: bigint; last: bigint }[] = [];
    const usable = io === undefined ? [] : ctx.view.usableRanges(io.id);
    for (let k = 0; k < n && usable.length > 0; k++) {
      const r = p.of(2 + k, usable);
      const start = r.start + ((p.big(3, r.last - r.start) / gran) * gran * BigInt(k + 1)) / BigInt(n + 1);
      const len = gran * BigInt(16 + p.int(4, 1024));
      const last = start + len - 1n > r.last ? r.last : start + len - 1n;
      if (last > start && !iovas.some((q) => q.start <= last && start <= q.last)) iovas.push({ start, last });
    }
    let c: Command = { op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: id, iovas };
    if (v === 'range-inverted') c = { ...c, iovas: [{ start: gran * 4n, last: gran * 2n }] };
    if (v === 'range-overlap')
      c = {
        ...c,
        iovas: [
          { start: 0n, last: gran * 4n - 1n },
          { start: gran * 2n, last: gran * 8n - 1n },
        ],
      };
    if (v === 'range-reserved') {
      const r = ctx.platform.devices.flatMap((d) => d.reserved).filter((q) => q.kind !== 'relaxable')[0];
      c = {
        ...c,
        iovas: [
          { start: r === undefined ? 0n : r.start - gran, last: r === undefined ? U64_MAX : r.start + gran - 1n },
        ],
      };
    }
    if (v === 'reserved-nonzero') c = { ...c, __reserved: 1 };
    return withAbi(c, v);
  },
};

/** The IOASes that a bound device is attached to, directly or through a HWPT hanging off them, ascending. */
function ioasesWithDevice(ctx: RealiseCtx): number[] {
  const ioases = ctx.live('ioas');
  const hwpts = ctx.live('hwpt-paging', 'hwpt-nested');
  const ioasOf = (pt: number): number | undefined => {
    if (ioases.some((o) => o.id === pt)) return pt;
    const h = hwpts.find((o) => o.id === pt);
    if (h?.parent === undefined) return undefined;
    return ioasOf(h.parent);
  };
  const out = new Set<number>();
  for (const d of bindable(ctx))
    for (const a of ctx.view.device(d).attachedTo) {
      const io = ioasOf(a.pt);
      if (io !== undefined) out.add(io);
    }
  return [...out].sort((a, b) => a - b);
}

/**
 * The faults that a MAP with a bad ioas_id may carry as well, and the order of checks that decides its errno: unknown
 * flags and reserved bytes first (MAP-014, EOPNOTSUPP), then U64_MAX iova or length and no permission (MAP-015,
 * EOVERFLOW / EINVAL), all before the lookup; a zero length only after it (MAP-016, ENOENT wins).
 */
function mapSecondFaults(ctx: RealiseCtx): string[] {
  const abi = ctx.features.has('ioctl-abi') ? ['flags-unknown', 'reserved-nonzero'] : [];
  return [...abi, 'length-u64-max', 'iova-u64-max', 'flags-none', 'length-zero'];
}

/**
 * IOMMU_IOAS_MAP with two faults at once (MAP-014, MAP-015, MAP-016): a bad ioas_id (zero, stale, of another type,
 * never allocated) together with one fault from {@link mapSecondFaults}. Picks 0 … 11 (10 and 11: which faults).
 */
function mapTwoFaults(ctx: RealiseCtx, p: Picks, as: number): Command {
  const idVariant = p.of(10, ID_VARIANTS).name;
  const id = adversarialId(ctx, p, 0, idVariant, ['ioas']) ?? 0;
  const fault = p.of(11, mapSecondFaults(ctx));
  const m = mapAdversarial(ctx, p, 1, as, fault);
  const flags = mapFlags(ctx, p, 8, fault) | (fault === 'iova-u64-max' ? IOAS_MAP.FIXED_IOVA : 0);
  const c: Command = {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: id,
    flags,
    user_va: m.ptr,
    length: m.length,
    iova: (flags & IOAS_MAP.FIXED_IOVA) !== 0 ? m.iova : 0n,
  };
  return fault === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c;
}

/**
 * A fixed-IOVA MAP with two placement faults (MAP-017): an overlap with an existing area and a user_va whose page
 * offset differs from the iova's (EEXIST: the overlap is checked first), or an unaligned iova whose range wraps
 * past U64_MAX (EINVAL: the alignment is checked first). Picks 0 … 7 and 12.
 */
function mapFixedTwoFaults(ctx: RealiseCtx, p: Picks, io: number): Command {
  // The offset fault needs an iova_alignment above the user_va's: an IOAS with a device attached and an area.
  const withDev = ioasesWithDevice(ctx).filter((id) => ctx.areas(id).length > 0);
  const as = withDev.length > 0 ? p.of(0, withDev) : io;
  const gran = ctx.granule(as);
  const overlap = ctx.areas(as).length > 0 && p.chance(12, 0.6);
  const m = mapAdversarial(ctx, p, 1, as, overlap ? 'overlap-page' : 'u64-wrap');
  const ptr = overlap && 'buf' in m.ptr ? { buf: m.ptr.buf, off: m.ptr.off + gran / 2n } : m.ptr;
  return {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: ctx.ref(as),
    flags: IOAS_MAP.FIXED_IOVA | IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE,
    user_va: ptr,
    length: m.length,
    iova: overlap ? m.iova : m.iova + gran / 2n,
  };
}

/**
 * An automatic MAP with two faults (MAP-025): a length of at least 2^63 (EOVERFLOW) or of 2^62 (no hole: ENOSPC)
 * with a user_va that is not page aligned (EINVAL on an IOAS whose iova_alignment is above 1, so one with a device
 * attached when there is one): EOVERFLOW first, then EINVAL, then ENOSPC. Picks 0 … 7, 12 and 13.
 */
function mapAutoTwoFaults(ctx: RealiseCtx, p: Picks, io: number): Command {
  // The alignment fault needs an iova_alignment above the user_va's: an IOAS with a device attached.
  const withDev = ioasesWithDevice(ctx);
  const as = withDev.length > 0 ? p.of(0, withDev) : io;
  const m = mapPlacement(ctx, p, 1, as);
  const ptr = 'buf' in m.ptr ? { buf: m.ptr.buf, off: m.ptr.off + 0x800n } : m.ptr;
  return {
    op: 'IOMMU_IOAS_MAP',
    ioas_id: ctx.ref(as),
    flags: IOAS_MAP.READABLE | IOAS_MAP.WRITEABLE,
    user_va: p.chance(12, 0.3) ? m.ptr : ptr,
    length: p.chance(13, 0.5) ? 1n << 63n : 1n << 62n,
    iova: 0n,
  };
}

const ioasMap: TemplateDef = {
  kind: 'iommufd.map',
  op: 'IOMMU_IOAS_MAP',
  profiles: ['iommufd'],
  weight: 20,
  picks: 14,
  variants: [
    ...MAP_VARIANTS,
    ...ID_VARIANTS,
    { name: 'flags-none' },
    { name: 'two-faults' },
    { name: 'fixed-two-faults', weight: 2 },
    { name: 'auto-two-faults', features: ['auto-iova'], weight: 2 },
    ...FLAG_VARIANTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS_KEEP,
  ],
  realise(ctx, p, v) {
    const io = pickLive(ctx, p, 0, 'ioas');
    if (io === undefined) return IOAS_ALLOC;
    if (v === 'two-faults') return mapTwoFaults(ctx, p, io.id);
    if (v === 'fixed-two-faults') return mapFixedTwoFaults(ctx, p, io.id);
    if (v === 'auto-two-faults') return mapAutoTwoFaults(ctx, p, io.id);
    const id = adversarialId(ctx, p, 0, v, ['ioas']) ?? ctx.ref(io.id);
    const m = mapAdversarial(ctx, p, 1, io.id, v);
    const flags = mapFlags(ctx, p, 8, v);
    const c: Command = {
      op: 'IOMMU_IOAS_MAP',
      ioas_id: id,
      flags,
      user_va: m.ptr,
      length: m.length,
      iova: (flags & IOAS_MAP.FIXED_IOVA) !== 0 ? m.iova : 0n,
    };
    return withAbi(v === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c, v);
  },
};

const ioasUnmap: TemplateDef = {
  kind: 'iommufd.unmap',
  op: 'IOMMU_IOAS_UNMAP',
  profiles: ['iommufd'],
  weight: 14,
  picks: 7,
  variants: [...UNMAP_VARIANTS, { name: 'almost-all' }, ...ID_VARIANTS, TWO_FAULTS, ...ABI_VARIANTS_KEEP],
  realise(ctx, p, v): Command | undefined {
    const io = pickLive(ctx, p, 0, 'ioas');
    if (io === undefined) return IOAS_ALLOC;
    // MAP-036: a bad ioas_id with a bad range (length 0, a wrap past U64_MAX, up to U64_MAX, unmap-all): ENOENT.
    if (v === 'two-faults')
      return withBadId(
        ctx,
        p,
        6,
        this.realise(ctx, p, p.of(5, ['length-zero', 'u64-wrap', 'u64-top', 'almost-all'])),
        'IOMMU_IOAS_UNMAP',
        'ioas_id',
        ['ioas'],
      );
    // Unmapping an empty IOAS is mostly a wasted step: map something instead.
    if (v === '' && ctx.areas(io.id).length === 0 && !p.chance(4, 0.3)) return ioasMap.realise(ctx, p, '');
    const id = adversarialId(ctx, p, 0, v, ['ioas']) ?? ctx.ref(io.id);
    const u = unmapAdversarial(ctx, p, 1, io.id, v);
    if (v === 'almost-all') return { op: 'IOMMU_IOAS_UNMAP', ioas_id: id, iova: 0n, length: U64_MAX - 1n };
    // MAP-042: `u64-top` unmaps the mapping that ends at U64_MAX when there is one (unmapAdversarial); without one,
    // it sometimes maps one first (MAP-013: an IOAS with no device attached has no aperture).
    if (v === 'u64-top' && !ctx.areas(io.id).some((a) => a.last === U64_MAX) && p.chance(4, 0.5))
      return ioasMap.realise(ctx, p, 'u64-top');
    const c: Command = u.all
      ? { op: 'IOMMU_IOAS_UNMAP', ioas_id: id, iova: 0n, length: U64_MAX }
      : { op: 'IOMMU_IOAS_UNMAP', ioas_id: id, iova: u.iova, length: u.length };
    return withAbi(c, v);
  },
};

const ioasCopy: TemplateDef = {
  kind: 'iommufd.copy',
  op: 'IOMMU_IOAS_COPY',
  profiles: ['iommufd'],
  features: ['copy'],
  weight: 5,
  picks: 10,
  variants: [
    { name: 'src-hole' },
    { name: 'src-past-area', weight: 3 },
    { name: 'dst-overlap' },
    { name: 'length-off-by-one' },
    { name: 'length-zero' },
    { name: 'write-from-readonly' },
    TWO_FAULTS,
    ...ID_VARIANTS,
    ...FLAG_VARIANTS,
    ...ABI_VARIANTS_KEEP,
  ],
  realise(ctx, p, v): Command | undefined {
    // MAP-050: length 0 (EINVAL) or unknown flags (EOPNOTSUPP) with a bad dst_ioas_id, both checked before the
    // destination is looked up; a WRITEABLE copy of read-only pages onto the source itself (EEXIST: the placement
    // comes before the permission check).
    if (v === 'two-faults') {
      const which = p.int(8, 3);
      if (which === 2) {
        const c = this.realise(ctx, p, 'write-from-readonly');
        if (c?.op !== 'IOMMU_IOAS_COPY') return c;
        return { ...c, dst_ioas_id: c.src_ioas_id, dst_iova: c.src_iova, flags: c.flags | IOAS_MAP.FIXED_IOVA };
      }
      const second = which === 1 && ctx.features.has('ioctl-abi') ? 'flags-unknown' : 'length-zero';
      return withBadId(ctx, p, 9, this.realise(ctx, p, second), 'IOMMU_IOAS_COPY', 'dst_ioas_id', ['ioas']);
    }
    const ioases = ctx.live('ioas');
    if (ioases.length === 0) return IOAS_ALLOC;
    const withAreas = ioases.filter((o) => ctx.view.areaCount(o.id) > 0);
    if (withAreas.length === 0) return ioasMap.realise(ctx, p, '');
    // MAP-047: `write-from-readonly` copies from a read-only area when there is one (else from any area).
    const readOnly = (id: number) => ctx.areas(id).filter((x) => (x.prot & 2) === 0);
    const roSources = v === 'write-from-readonly' ? withAreas.filter((o) => readOnly(o.id).length > 0) : [];
    const src = p.of(0, roSources.length > 0 ? roSources : withAreas);
    const dst = p.chance(1, 0.2) ? src : p.of(1, ioases);
    const areas = roSources.length > 0 ? readOnly(src.id) : ctx.areas(src.id);
    const a = p.of(2, areas);
    const gran = ctx.granule(dst.id) > ctx.granule(src.id) ? ctx.granule(dst.id) : ctx.granule(src.id);
    const areaLen = a.last - a.iova + 1n;
    const pages = areaLen / gran;
    const startPage = pages > 1n ? p.big(3, pages) : 0n;
    let srcIova = a.iova + startPage * gran;
    let length = (pages - startPage) * gran;
    if (length === 0n) length = areaLen;
    if (v === 'src-hole') srcIova = a.last + 1n;
    if (v === 'src-past-area') length += gran;
    if (v === 'length-off-by-one') length += p.chance(4, 0.5) ? 1n : -1n;
    if (v === 'length-zero') length = 0n;
    let dstIova = freeIova(ctx, p, 5, dst.id, length > 0n ? length : gran, gran) ?? 0n;
    if (v === 'dst-overlap') dstIova = a.iova;
    const auto = ctx.features.has('auto-iova') && p.chance(7, 0.25);
    let flags = IOAS_MAP.READABLE | (auto ? 0 : IOAS_MAP.FIXED_IOVA);
    if (v === 'write-from-readonly' || (a.prot & 2) !== 0)
      flags |= p.chance(6, 0.5) || v === 'write-from-readonly' ? IOAS_MAP.WRITEABLE : 0;
    if (v === 'flags-unknown') flags |= 0x100;
    const kinds: ObjectKind[] = ['ioas'];
    const badDst = adversarialId(ctx, p, 1, v, kinds);
    return withAbi(
      {
        op: 'IOMMU_IOAS_COPY',
        dst_ioas_id: badDst ?? ctx.ref(dst.id),
        src_ioas_id: ctx.ref(src.id),
        flags,
        length,
        dst_iova: auto ? 0n : dstIova,
        src_iova: srcIova,
      },
      v,
    );
  },
};

const option: TemplateDef = {
  kind: 'iommufd.option',
  op: 'IOMMU_OPTION',
  profiles: ['iommufd'],
  weight: 2,
  picks: 4,
  variants: [
    { name: 'option-unknown' },
    { name: 'op-unknown' },
    { name: 'val-bad' },
    ...ID_VARIANTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const huge = ctx.features.has('huge-pages') && p.chance(0, 0.7);
    const operation = v === 'op-unknown' ? 2 : p.chance(1, 0.5) ? OPTION.OP_SET : OPTION.OP_GET;
    const val64 = v === 'val-bad' ? 2n : BigInt(p.int(2, 2));
    let c: Command;
    if (huge) {
      const id = ioasArg(ctx, p, 3, v);
      if (id === undefined) return IOAS_ALLOC;
      c = { op: 'IOMMU_OPTION', option_id: OPTION.HUGE_PAGES, operation, object_id: id, val64 };
    } else {
      const id = v.startsWith('id-') ? (adversarialId(ctx, p, 3, v, []) ?? 0) : 0;
      c = {
        op: 'IOMMU_OPTION',
        option_id: v === 'option-unknown' ? 7 : OPTION.RLIMIT_MODE,
        operation,
        object_id: id,
        val64,
      };
    }
    return withAbi(v === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c, v);
  },
};

const vfioIoas: TemplateDef = {
  kind: 'iommufd.vfio-ioas',
  op: 'IOMMU_VFIO_IOAS',
  profiles: ['iommufd'],
  weight: 2,
  picks: 2,
  variants: [{ name: 'op-unknown' }, ...ID_VARIANTS, ...RESERVED_VARIANTS, ...ABI_VARIANTS],
  realise(ctx, p, v) {
    const operation = v === 'op-unknown' ? 3 : [VFIO_IOAS_OP.GET, VFIO_IOAS_OP.SET, VFIO_IOAS_OP.CLEAR][p.int(0, 3)]!;
    const id = operation === VFIO_IOAS_OP.SET || v.startsWith('id-') ? (ioasArg(ctx, p, 1, v) ?? 0) : 0;
    const c: Command = { op: 'IOMMU_VFIO_IOAS', operation, ioas_id: id };
    return withAbi(v === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c, v);
  },
};

/** Devices the generators may bind: physical ones, and mediated ones with the `mdev` feature. */
function bindable(ctx: RealiseCtx): number[] {
  return ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' || ctx.features.has('mdev') ? [i] : []));
}

/** A bound device index, or undefined. */
function boundDevice(ctx: RealiseCtx, p: Picks, i: number): number | undefined {
  const bound = bindable(ctx).filter((d) => ctx.view.device(d).bound);
  return bound.length > 0 ? p.of(i, bound) : undefined;
}

/** VFIO_DEVICE_BIND_IOMMUFD of an unbound device, or undefined when all are bound. */
function bindSome(ctx: RealiseCtx, p: Picks, i: number): Command | undefined {
  const unbound = bindable(ctx).filter((d) => !ctx.view.device(d).bound);
  return unbound.length > 0 ? { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: p.of(i, unbound) } : undefined;
}

const bind: TemplateDef = {
  kind: 'iommufd.bind',
  op: 'VFIO_DEVICE_BIND_IOMMUFD',
  profiles: ['iommufd'],
  weight: 5,
  picks: 1,
  variants: [{ name: 'already-bound' }, ...FLAG_VARIANTS],
  realise(ctx, p, v) {
    if (v === 'already-bound') {
      const d = boundDevice(ctx, p, 0);
      if (d !== undefined) return { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: d };
    }
    const c = bindSome(ctx, p, 0);
    if (c === undefined) return undefined;
    return v === 'flags-unknown' ? { ...c, flags: 1 } : c;
  },
};

const attach: TemplateDef = {
  kind: 'iommufd.attach',
  op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  profiles: ['iommufd'],
  weight: 6,
  picks: 5,
  variants: [{ name: 'unbound' }, ...ID_VARIANTS, ...FLAG_VARIANTS],
  realise(ctx, p, v) {
    if (ctx.live('ioas').length === 0) return IOAS_ALLOC;
    let dev = boundDevice(ctx, p, 0);
    if (v === 'unbound') {
      const unbound = bindable(ctx).filter((d) => !ctx.view.device(d).bound);
      if (unbound.length > 0) dev = p.of(0, unbound);
    }
    if (dev === undefined) return bindSome(ctx, p, 0);
    const targets = ctx.live('ioas', 'hwpt-paging', 'hwpt-nested');
    // Mostly an IOAS (an automatic domain); sometimes an explicit HWPT.
    const ioases = targets.filter((o) => o.kind === 'ioas');
    const faulting = targets.filter((o) => o.format === 'fault');
    const t =
      ctx.features.has('iopf') && faulting.length > 0 && p.chance(3, 0.4)
        ? p.of(2, faulting)
        : p.chance(1, 0.3)
          ? p.of(2, targets)
          : p.of(2, ioases);
    // IOAS-020 / DEV-015: sometimes, before the first attach to an IOAS, allow a range covering the device's
    // reserved regions (the MSI window), so that the attach meets an allowed range it must not reserve.
    const resv = ctx.platform.devices[dev]?.reserved.filter((r) => r.kind !== 'relaxable') ?? [];
    if (v === '' && t.kind === 'ioas' && resv.length > 0 && p.chance(4, 0.2) && !ioasesWithDevice(ctx).includes(t.id)) {
      const areas = ctx.areas(t.id);
      const lo = [...resv.map((r) => r.start), ...areas.map((a) => a.iova)].reduce((a, b) => (a < b ? a : b));
      const hi = [...resv.map((r) => r.last), ...areas.map((a) => a.last)].reduce((a, b) => (a > b ? a : b));
      return { op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: ctx.ref(t.id), iovas: [{ start: lo, last: hi }] };
    }
    const pt = adversarialId(ctx, p, 2, v, ['ioas', 'hwpt-paging', 'hwpt-nested']) ?? ctx.ref(t.id);
    const c: Command = { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id: pt };
    return v === 'flags-unknown' ? { ...c, flags: 1 } : c;
  },
};

const detach: TemplateDef = {
  kind: 'iommufd.detach',
  op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT',
  profiles: ['iommufd'],
  weight: 2,
  picks: 1,
  variants: [{ name: 'unbound' }, ...FLAG_VARIANTS],
  realise(ctx, p, v) {
    const attached = bindable(ctx).filter((d) => ctx.view.device(d).attachedTo.length > 0);
    const pool = v === 'unbound' ? bindable(ctx).filter((d) => !ctx.view.device(d).bound) : attached;
    if (pool.length === 0) return undefined;
    const c: Command = { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: p.of(0, pool) };
    return v === 'flags-unknown' ? { ...c, flags: 1 } : c;
  },
};

const close: TemplateDef = {
  kind: 'iommufd.close',
  op: 'VFIO_DEVICE_CLOSE',
  profiles: ['iommufd'],
  weight: 2,
  picks: 1,
  variants: [{ name: 'unbound' }],
  realise(ctx, p, v) {
    const pool = bindable(ctx).filter((d) => ctx.view.device(d).bound === (v !== 'unbound'));
    return pool.length === 0 ? undefined : { op: 'VFIO_DEVICE_CLOSE', dev: p.of(0, pool) };
  },
};

const hwptAlloc: TemplateDef = {
  kind: 'iommufd.hwpt-alloc',
  op: 'IOMMU_HWPT_ALLOC',
  profiles: ['iommufd'],
  weight: 5,
  picks: 6,
  variants: [
    { name: 'unbound' },
    { name: 'data-type-unknown' },
    { name: 'data-len-bad', features: ['nesting-hw'] },
    { name: 'data-unreadable', features: ['nesting-hw'] },
    // FMT-013, NEST-014: the parent check nested allocation hinges on (it needs a plain paging HWPT first).
    { name: 'nest-on-plain', features: ['nesting-hw'], weight: 3 },
    { name: 'pt-nested', features: ['nesting-hw'] },
    { name: 'fault-on-paging', features: ['iopf'] },
    { name: 'fault-id-bad', features: ['iopf', 'nesting-hw'] },
    { name: 'abi-min', features: ['ioctl-abi'] },
    ...ID_VARIANTS,
    ...FLAG_VARIANTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const ioases = ctx.live('ioas');
    if (ioases.length === 0) return IOAS_ALLOC;
    const devs = ctx.live('device');
    if (devs.length === 0) return bindSome(ctx, p, 0);
    const dev = p.of(0, devs);
    const paging = ctx.live('hwpt-paging').filter((h) => h.format !== 'auto');
    const parents = paging.filter((h) => h.format === 'nest-parent');
    const nestedOk = ctx.features.has('nesting-hw');
    const nested =
      nestedOk &&
      ((parents.length > 0 && p.chance(1, 0.4)) ||
        v === 'data-len-bad' ||
        v === 'data-unreadable' ||
        v === 'nest-on-plain' ||
        v === 'pt-nested' ||
        v === 'fault-id-bad');
    // Nested HWPTs need a NEST_PARENT: make one first.
    if (nested && parents.length === 0 && v !== 'nest-on-plain' && v !== 'pt-nested')
      return {
        op: 'IOMMU_HWPT_ALLOC',
        flags: HWPT_ALLOC.NEST_PARENT,
        dev_id: ctx.ref(dev.id),
        pt_id: ctx.ref(p.of(1, ioases).id),
        data_type: HWPT_DATA.NONE,
      };
    let flags = 0;
    if (!nested && nestedOk && p.chance(2, 0.4)) flags |= HWPT_ALLOC.NEST_PARENT;
    if (!nested && ctx.features.has('dirty-tracking') && p.chance(3, 0.3)) flags |= HWPT_ALLOC.DIRTY_TRACKING;
    const faults = ctx.live('fault');
    let faultId: IdArg | undefined;
    if (nested && ctx.features.has('iopf') && faults.length > 0 && p.chance(4, 0.6)) {
      flags |= HWPT_ALLOC.FAULT_ID_VALID;
      faultId = ctx.ref(p.of(5, faults).id);
    }
    if (v === 'fault-on-paging' || v === 'fault-id-bad') {
      flags |= HWPT_ALLOC.FAULT_ID_VALID;
      faultId = v === 'fault-id-bad' ? (adversarialId(ctx, p, 5, 'id-wrong-type', ['fault']) ?? 0) : faultId;
    }
    if (v === 'flags-unknown') flags |= 0x80;
    const devId = v === 'unbound' ? (adversarialId(ctx, p, 0, 'id-stale', ['device']) ?? 0) : ctx.ref(dev.id);
    let ptObj = nested ? (parents.length > 0 ? p.of(1, parents) : undefined) : p.of(1, ioases);
    if (v === 'nest-on-plain') {
      const plain = ctx.live('hwpt-paging').filter((h) => h.format !== 'nest-parent');
      // FMT-013: no paging HWPT without NEST_PARENT yet: make one (the prerequisite first).
      if (plain.length === 0)
        return {
          op: 'IOMMU_HWPT_ALLOC',
          flags: 0,
          dev_id: ctx.ref(dev.id),
          pt_id: ctx.ref(p.of(1, ioases).id),
          data_type: HWPT_DATA.NONE,
        };
      ptObj = p.of(1, plain);
    }
    if (v === 'pt-nested') {
      const nests = ctx.live('hwpt-nested');
      ptObj = nests.length > 0 ? p.of(1, nests) : ptObj;
    }
    if (ptObj === undefined) return IOAS_ALLOC;
    const pt = adversarialId(ctx, p, 1, v, nested ? ['hwpt-paging'] : ['ioas']) ?? ctx.ref(ptObj.id);
    let c: Command = nested
      ? {
          op: 'IOMMU_HWPT_ALLOC',
          flags,
          dev_id: devId,
          pt_id: pt,
          data_type: HWPT_DATA.VTD_S1,
          data: { flags: 0, pgtbl_addr: 0x1_0000_0000n + BigInt(p.int(3, 16)) * 0x1000n, addr_width: 48 },
          data_len: 24,
        }
      : { op: 'IOMMU_HWPT_ALLOC', flags, dev_id: devId, pt_id: pt, data_type: HWPT_DATA.NONE };
    if (faultId !== undefined) c = { ...c, fault_id: faultId };
    if (v === 'data-type-unknown') c = { ...c, data_type: 77 };
    if (v === 'data-len-bad') c = { ...c, data_len: p.chance(5, 0.5) ? 16 : 32 };
    if (v === 'data-unreadable') {
      const { data: _data, ...rest } = c;
      c = { ...rest, data_len: 24 };
    }
    if (v === 'reserved-nonzero') c = { ...c, __reserved: 1 };
    if (v === 'abi-min') c = { ...c, abi: { size: 24 } };
    return withAbi(c, v);
  },
};

const INV_VARIANTS: readonly Variant[] = [
  { name: 'null-array' },
  { name: 'entry-len-bad' },
  { name: 'entry-flags-bad' },
  { name: 'entry-addr-bad' },
  { name: 'entry-unreadable' },
  { name: 'data-type-bad' },
  { name: 'empty' },
  { name: 'on-paging' },
];

const hwptInvalidate: TemplateDef = {
  kind: 'iommufd.hwpt-invalidate',
  op: 'IOMMU_HWPT_INVALIDATE',
  profiles: ['iommufd'],
  features: ['nesting-hw'],
  weight: 3,
  picks: 7,
  variants: [...INV_VARIANTS, ...ID_VARIANTS, ...RESERVED_VARIANTS, ...ABI_VARIANTS, TWO_FAULTS_ABI],
  realise(ctx, p, v): Command | undefined {
    // INV-013, FD-029: a non-zero __reserved, an array without pointer, a short size, with a bad hwpt_id.
    if (v === 'two-faults')
      return withBadId(
        ctx,
        p,
        6,
        this.realise(ctx, p, p.of(5, ['reserved-nonzero', 'null-array', 'abi-short'])),
        'IOMMU_HWPT_INVALIDATE',
        'hwpt_id',
        ['hwpt-nested'],
      );
    const nests = ctx.live('hwpt-nested');
    // INV-012: `on-paging` targets a paging HWPT whenever one exists, with or without a nested one.
    const paging = v === 'on-paging' ? ctx.live('hwpt-paging') : [];
    if (nests.length === 0 && paging.length === 0) return hwptAlloc.realise(ctx, p, '');
    let target: IdArg = ctx.ref(paging.length > 0 ? p.of(0, paging).id : p.of(0, nests).id);
    target = adversarialId(ctx, p, 0, v, ['hwpt-nested']) ?? target;
    const n = v === 'empty' ? 0 : 1 + p.int(1, 3);
    const entries = Array.from({ length: n }, (_, k) => ({
      addr: k === 0 && p.chance(2, 0.2) ? 0n : BigInt(p.int(3 + k, 1 << 20)) * 0x1000n,
      npages: k === 0 && p.chance(2, 0.2) ? U64_MAX : BigInt(1 + p.int(4, 64)),
      flags: p.chance(4, 0.5) ? VTD_INV_FLAGS.LEAF : 0,
    }));
    // An all-space entry is addr 0 with npages U64_MAX.
    if (entries[0] !== undefined && entries[0].npages === U64_MAX) entries[0] = { ...entries[0], addr: 0n };
    const bad = n > 0 ? p.int(1, n) : 0;
    if (v === 'entry-flags-bad' && entries[bad]) entries[bad] = { ...entries[bad], flags: 0x80 };
    if (v === 'entry-addr-bad' && entries[bad]) entries[bad] = { ...entries[bad], addr: 0x1234n, npages: 1n };
    let c: Command = {
      op: 'IOMMU_HWPT_INVALIDATE',
      hwpt_id: target,
      data_type: v === 'data-type-bad' ? 1 : HWPT_INVALIDATE_DATA.VTD_S1,
      entry_len: v === 'entry-len-bad' ? 32 : 24,
      entry_num: n,
      entries: v === 'entry-unreadable' ? entries.slice(0, bad) : entries,
    };
    if (v === 'null-array') c = { ...c, null_array: true, entry_num: Math.max(1, n) };
    if (v === 'reserved-nonzero') c = { ...c, __reserved: 1 };
    return withAbi(c, v);
  },
};

const getHwInfo: TemplateDef = {
  kind: 'iommufd.get-hw-info',
  op: 'IOMMU_GET_HW_INFO',
  profiles: ['iommufd'],
  weight: 2,
  picks: 2,
  variants: [
    ...ID_VARIANTS,
    ...FLAG_VARIANTS,
    ...RESERVED_VARIANTS,
    { name: 'abi-min', features: ['ioctl-abi'] },
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const devs = ctx.live('device');
    if (devs.length === 0) return bindSome(ctx, p, 0);
    const id = adversarialId(ctx, p, 0, v, ['device']) ?? ctx.ref(p.of(0, devs).id);
    let c: Command = { op: 'IOMMU_GET_HW_INFO', dev_id: id, data_len: [0, 8, 24, 64][p.int(1, 4)]! };
    if (v === 'flags-unknown') c = { ...c, flags: 1 };
    if (v === 'reserved-nonzero') c = { ...c, reserved_nonzero: true };
    if (v === 'abi-min') c = { ...c, abi: { size: 32 } };
    return withAbi(c, v);
  },
};

/** Paging HWPTs a user allocated (not automatic ones): dirty tracking targets. */
function manualPaging(ctx: RealiseCtx) {
  return ctx.live('hwpt-paging').filter((h) => h.format !== 'auto');
}

const setDirtyTracking: TemplateDef = {
  kind: 'iommufd.set-dirty-tracking',
  op: 'IOMMU_HWPT_SET_DIRTY_TRACKING',
  profiles: ['iommufd'],
  features: ['dirty-tracking'],
  weight: 2,
  picks: 2,
  variants: [...ID_VARIANTS, ...FLAG_VARIANTS],
  realise(ctx, p, v) {
    const paging = manualPaging(ctx);
    if (paging.length === 0) return hwptAlloc.realise(ctx, p, '');
    const id = adversarialId(ctx, p, 0, v, ['hwpt-paging']) ?? ctx.ref(p.of(0, paging).id);
    const flags = (p.chance(1, 0.75) ? DIRTY_TRACKING.ENABLE : 0) | (v === 'flags-unknown' ? 4 : 0);
    return { op: 'IOMMU_HWPT_SET_DIRTY_TRACKING', hwpt_id: id, flags };
  },
};

const getDirtyBitmap: TemplateDef = {
  kind: 'iommufd.get-dirty-bitmap',
  op: 'IOMMU_HWPT_GET_DIRTY_BITMAP',
  profiles: ['iommufd'],
  features: ['dirty-tracking'],
  weight: 2,
  picks: 4,
  variants: [
    { name: 'range-wraps' },
    { name: 'range-unaligned' },
    { name: 'page-size-zero' },
    ...ID_VARIANTS,
    ...FLAG_VARIANTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const paging = manualPaging(ctx);
    if (paging.length === 0) return hwptAlloc.realise(ctx, p, '');
    const h = p.of(0, paging);
    const id = adversarialId(ctx, p, 0, v, ['hwpt-paging']) ?? ctx.ref(h.id);
    const as = h.parent ?? 0;
    const areas = ctx.areas(as);
    const gran = ctx.granule(as);
    const a = areas.length > 0 ? p.of(1, areas) : undefined;
    let iova = a?.iova ?? 0n;
    let length = a === undefined ? gran * 16n : a.last - a.iova + 1n;
    if (v === 'range-wraps') length = U64_MAX;
    if (v === 'range-unaligned') iova += 1n;
    const page_size = v === 'page-size-zero' ? 0n : 4096n;
    let flags = p.chance(2, 0.3) ? DIRTY_BITMAP.NO_CLEAR : 0;
    if (v === 'flags-unknown') flags |= 4;
    const c: Command = { op: 'IOMMU_HWPT_GET_DIRTY_BITMAP', hwpt_id: id, flags, iova, length, page_size };
    return withAbi(v === 'reserved-nonzero' ? { ...c, __reserved: 1 } : c, v);
  },
};

const faultQueueAlloc: TemplateDef = {
  kind: 'iommufd.fault-queue-alloc',
  op: 'IOMMU_FAULT_QUEUE_ALLOC',
  profiles: ['iommufd'],
  features: ['iopf'],
  weight: 2,
  picks: 0,
  variants: [...FLAG_VARIANTS, ...ABI_VARIANTS],
  realise: (_ctx, _p, v) =>
    withAbi(v === 'flags-unknown' ? { op: 'IOMMU_FAULT_QUEUE_ALLOC', flags: 1 } : { op: 'IOMMU_FAULT_QUEUE_ALLOC' }, v),
};

/**
 * The next step towards a page group on a user queue: a FAULT object, a bound device with PRI and ATS, a NEST_PARENT
 * HWPT, a nested HWPT reporting to the FAULT, that device attached to it, and then a page request from it. Keeps
 * the fault templates from idling on an empty queue.
 */
function faultChain(ctx: RealiseCtx, p: Picks, i: number): Command | undefined {
  const faults = ctx.view.faults().filter((q) => q.fdOpen);
  if (faults.length === 0) return { op: 'IOMMU_FAULT_QUEUE_ALLOC' };
  const capable = ctx.platform.devices.flatMap((d, k) => (d.kind === 'physical' && d.pri && d.ats ? [k] : []));
  if (capable.length === 0) return undefined;
  const bound = capable.filter((d) => ctx.view.device(d).bound);
  if (bound.length === 0) return { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: p.of(i, capable) };
  const faulting = ctx.live('hwpt-nested').filter((h) => h.format === 'fault');
  const attached = bound.filter((d) => ctx.view.device(d).attachedTo.some((a) => faulting.some((h) => h.id === a.pt)));
  if (attached.length > 0) {
    const dev = p.of(i, attached);
    return {
      op: 'DEVICE_PAGE_REQUEST',
      dev,
      addr: BigInt(p.int(i + 1, 1 << 20)) * 0x1000n,
      grpid: p.int(i + 2, 4),
      perm: p.chance(i + 1, 0.5) ? 1 : 3,
      last: p.chance(i + 2, 0.8),
    };
  }
  const dev = p.of(i, bound);
  if (faulting.length > 0)
    return { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id: ctx.ref(p.of(i + 1, faulting).id) };
  const devObj = ctx.live('device').find((o) => o.id === ctx.view.device(dev).devId);
  if (devObj === undefined) return undefined;
  const parents = ctx.live('hwpt-paging').filter((h) => h.format === 'nest-parent');
  if (parents.length === 0) {
    const ioases = ctx.live('ioas');
    if (ioases.length === 0) return IOAS_ALLOC;
    return {
      op: 'IOMMU_HWPT_ALLOC',
      flags: HWPT_ALLOC.NEST_PARENT,
      dev_id: ctx.ref(devObj.id),
      pt_id: ctx.ref(p.of(i + 1, ioases).id),
      data_type: HWPT_DATA.NONE,
    };
  }
  return {
    op: 'IOMMU_HWPT_ALLOC',
    flags: HWPT_ALLOC.FAULT_ID_VALID,
    dev_id: ctx.ref(devObj.id),
    pt_id: ctx.ref(p.of(i + 1, parents).id),
    data_type: HWPT_DATA.VTD_S1,
    data: { flags: 0, pgtbl_addr: 0x1_0000_0000n, addr_width: 48 },
    data_len: 24,
    fault_id: ctx.ref(p.of(i + 2, faults).id),
  };
}

const faultRead: TemplateDef = {
  kind: 'iommufd.fault-read',
  op: 'IOMMU_FAULT_READ',
  profiles: ['iommufd'],
  features: ['iopf'],
  weight: 5,
  picks: 3,
  variants: [{ name: 'count-unaligned' }, { name: 'pos-nonzero' }, { name: 'count-small' }, { name: 'fd-closed' }],
  realise(ctx, p, v) {
    const queues = ctx.view.faults();
    const open = queues.filter((q) => q.fdOpen);
    if (open.length === 0) return { op: 'IOMMU_FAULT_QUEUE_ALLOC' };
    // Mostly a queue with something to read; with nothing queued anywhere, mostly work towards a page group.
    const busy = open.filter((q) => q.queued.length > 0);
    if (busy.length === 0 && v === '' && !p.chance(0, 0.15)) return faultChain(ctx, p, 1);
    const q = busy.length > 0 && !p.chance(0, 0.15) ? p.of(1, busy) : p.of(1, open);
    const first = q.queued[0] ?? 1;
    // One group per read mostly, so each group's cookie is a read's `cookie` output.
    let count = (p.chance(2, 0.2) ? first + (q.queued[1] ?? 0) : first) * 40;
    if (v === 'count-unaligned') count += 20;
    if (v === 'count-small') count = (first - 1) * 40;
    let faultId: IdArg = ctx.ref(q.id);
    if (v === 'fd-closed') {
      const closed = queues.filter((x) => !x.fdOpen);
      faultId = closed.length > 0 ? ctx.ref(p.of(1, closed).id) : 0x7fff_fff2;
    }
    return v === 'pos-nonzero'
      ? { op: 'IOMMU_FAULT_READ', fault_id: faultId, count, pos: 40 }
      : { op: 'IOMMU_FAULT_READ', fault_id: faultId, count };
  },
};

const faultRespond: TemplateDef = {
  kind: 'iommufd.fault-respond',
  op: 'IOMMU_FAULT_RESPOND',
  profiles: ['iommufd'],
  features: ['iopf'],
  weight: 5,
  picks: 3,
  variants: [
    { name: 'code-failure' },
    { name: 'cookie-unknown' },
    { name: 'count-unaligned' },
    { name: 'batch-bad-second' },
    { name: 'count-overrun' },
  ],
  realise(ctx, p, v) {
    const queues = ctx.view.faults().filter((q) => q.fdOpen);
    const owing = queues.filter((q) => q.awaiting.length > 0);
    if (owing.length === 0) return faultRead.realise(ctx, p, '');
    const q = p.of(0, owing);
    const a = p.of(1, q.awaiting);
    // The cookie as the read returned it: a reference to that read's `cookie` output when it was its first group.
    const cookie: IdArg = a.first ? { ref: a.readStep, field: 'cookie' } : a.cookie;
    const code = v === 'code-failure' ? PAGE_RESP.FAILURE : p.chance(2, 0.7) ? PAGE_RESP.SUCCESS : PAGE_RESP.INVALID;
    const c: Command = {
      op: 'IOMMU_FAULT_RESPOND',
      fault_id: ctx.ref(q.id),
      cookie: v === 'cookie-unknown' ? 0x7fff_0000 : cookie,
      code,
    };
    if (v === 'count-unaligned') return { ...c, count: 12 };
    if (v === 'count-overrun') return { ...c, count: 16 };
    if (v === 'batch-bad-second') return { ...c, more: [{ cookie: 0x7fff_0000, code: PAGE_RESP.SUCCESS }] };
    return c;
  },
};

const faultClose: TemplateDef = {
  kind: 'iommufd.fault-close',
  op: 'IOMMU_FAULT_CLOSE',
  profiles: ['iommufd'],
  features: ['iopf'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'fd-closed' }],
  realise(ctx, p, v) {
    const queues = ctx.view.faults();
    const pool = queues.filter((q) => q.fdOpen === (v !== 'fd-closed'));
    return pool.length === 0 ? undefined : { op: 'IOMMU_FAULT_CLOSE', fault_id: ctx.ref(p.of(0, pool).id) };
  },
};

const pageRequest: TemplateDef = {
  kind: 'iommufd.page-request',
  op: 'DEVICE_PAGE_REQUEST',
  profiles: ['iommufd'],
  features: ['iopf'],
  weight: 6,
  picks: 6,
  variants: [{ name: 'pasid' }, { name: 'no-handler' }, { name: 'no-pri' }],
  realise(ctx, p, v) {
    const pri = ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' && d.pri ? [i] : []));
    if (v === 'no-pri') {
      const none = ctx.platform.devices.findIndex((d) => d.kind === 'physical' && !d.pri);
      if (none >= 0) return { op: 'DEVICE_PAGE_REQUEST', dev: none, addr: 0x1000n, grpid: 0, perm: 1, last: true };
    }
    if (pri.length === 0) return undefined;
    const faulting = new Set(
      ctx
        .live('hwpt-nested')
        .filter((h) => h.format === 'fault')
        .map((h) => h.id),
    );
    const handled = pri.filter((d) => ctx.view.device(d).attachedTo.some((a) => faulting.has(a.pt)));
    if (handled.length === 0 && v === '') return faultChain(ctx, p, 0);
    const dev = handled.length > 0 && v !== 'no-handler' ? p.of(0, handled) : p.of(0, pri);
    const perm = p.chance(1, 0.5) ? 1 : 3;
    const c: Command = {
      op: 'DEVICE_PAGE_REQUEST',
      dev,
      addr: BigInt(p.int(2, 1 << 20)) * 0x1000n,
      grpid: p.int(3, 4),
      perm,
      last: p.chance(4, 0.75),
    };
    return v === 'pasid' ? { ...c, pasid: 1 + p.int(5, 15) } : c;
  },
};

/** The templates of the iommufd profile. */
export const IOMMUFD_TEMPLATES: readonly TemplateDef[] = [
  ioasAlloc,
  destroy,
  iovaRanges,
  allowIovas,
  ioasMap,
  ioasUnmap,
  ioasCopy,
  option,
  vfioIoas,
  hwptAlloc,
  hwptInvalidate,
  getHwInfo,
  setDirtyTracking,
  getDirtyBitmap,
  faultQueueAlloc,
  faultRead,
  faultRespond,
  faultClose,
  pageRequest,
  bind,
  attach,
  detach,
  close,
];

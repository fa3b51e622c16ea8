/**
 * Templates of the `iommufd` profile (Linux 6.12): IOAS, MAP / UNMAP / COPY, ALLOW_IOVAS, IOVA_RANGES, OPTION,
 * VFIO_IOAS, HWPT_ALLOC, device bind / attach / detach / close, DESTROY.
 *
 * @module
 */
import type { IdArg } from '../src/reference/args.ts';
import { HWPT_ALLOC, HWPT_DATA, IOAS_MAP, OPTION, VFIO_IOAS_OP, type Command } from '../src/reference/commands.ts';
import { U64_MAX } from '../src/reference/u64.ts';
import type { ObjectKind } from '../src/reference/view.ts';
import { MAP_VARIANTS, UNMAP_VARIANTS, freeIova, mapAdversarial, unmapAdversarial } from './space.ts';
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
};

/** The raw-ABI variants (feature `ioctl-abi`): a short size, a long size with a non-zero or a zero tail. */
const ABI_VARIANTS: readonly Variant[] = [
  { name: 'abi-short', features: ['ioctl-abi'] },
  { name: 'abi-tail', features: ['ioctl-abi'] },
  { name: 'abi-tail-zero', features: ['ioctl-abi'] },
];
const FLAG_VARIANTS: readonly Variant[] = [{ name: 'flags-unknown', features: ['ioctl-abi'] }];
const RESERVED_VARIANTS: readonly Variant[] = [{ name: 'reserved-nonzero', features: ['ioctl-abi'] }];

/** Applies an ABI variant to a command (other variants leave it alone). */
function withAbi<C extends Command>(c: C, variant: string): C {
  const min = MIN_SIZE[c.op] ?? 8;
  if (variant === 'abi-short') return { ...c, abi: { size: min - 4 } };
  if (variant === 'abi-tail') return { ...c, abi: { size: 256, tailNonZero: true } };
  if (variant === 'abi-tail-zero') return { ...c, abi: { size: 256, tailNonZero: false } };
  return c;
}

const IOAS_ALLOC: Command = { op: 'IOMMU_IOAS_ALLOC' };

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
  weight: 4,
  picks: 1,
  variants: [{ name: 'id-zero' }, { name: 'id-stale' }, { name: 'id-unallocated' }, ...ABI_VARIANTS],
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
  picks: 2,
  variants: [...ID_VARIANTS, ...RESERVED_VARIANTS, ...ABI_VARIANTS],
  realise(ctx, p, v) {
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
  weight: 2,
  picks: 5,
  variants: [
    ...ID_VARIANTS,
    { name: 'range-inverted' },
    { name: 'range-overlap' },
    { name: 'range-reserved' },
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const id = ioasArg(ctx, p, 0, v);
    if (id === undefined) return IOAS_ALLOC;
    const io = pickLive(ctx, p, 0, 'ioas');
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
      const r = ctx.platform.devices.flatMap((d) => d.reserved)[0];
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

const ioasMap: TemplateDef = {
  kind: 'iommufd.map',
  op: 'IOMMU_IOAS_MAP',
  profiles: ['iommufd'],
  weight: 20,
  picks: 10,
  variants: [
    ...MAP_VARIANTS,
    ...ID_VARIANTS,
    { name: 'flags-none' },
    ...FLAG_VARIANTS,
    ...RESERVED_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const io = pickLive(ctx, p, 0, 'ioas');
    if (io === undefined) return IOAS_ALLOC;
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
  picks: 5,
  variants: [...UNMAP_VARIANTS, { name: 'almost-all' }, ...ID_VARIANTS, ...ABI_VARIANTS],
  realise(ctx, p, v) {
    const io = pickLive(ctx, p, 0, 'ioas');
    if (io === undefined) return IOAS_ALLOC;
    // Unmapping an empty IOAS is mostly a wasted step: map something instead.
    if (v === '' && ctx.areas(io.id).length === 0 && !p.chance(4, 0.3)) return ioasMap.realise(ctx, p, '');
    const id = adversarialId(ctx, p, 0, v, ['ioas']) ?? ctx.ref(io.id);
    const u = unmapAdversarial(ctx, p, 1, io.id, v);
    if (v === 'almost-all') return { op: 'IOMMU_IOAS_UNMAP', ioas_id: id, iova: 0n, length: U64_MAX - 1n };
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
  picks: 8,
  variants: [
    { name: 'src-hole' },
    { name: 'src-past-area' },
    { name: 'dst-overlap' },
    { name: 'length-off-by-one' },
    { name: 'length-zero' },
    { name: 'write-from-readonly' },
    ...ID_VARIANTS,
    ...FLAG_VARIANTS,
    ...ABI_VARIANTS,
  ],
  realise(ctx, p, v) {
    const ioases = ctx.live('ioas');
    if (ioases.length === 0) return IOAS_ALLOC;
    const withAreas = ioases.filter((o) => ctx.view.areaCount(o.id) > 0);
    if (withAreas.length === 0) return ioasMap.realise(ctx, p, '');
    const src = p.of(0, withAreas);
    const dst = p.chance(1, 0.2) ? src : p.of(1, ioases);
    const areas = ctx.areas(src.id);
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
  picks: 3,
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
    const t = p.chance(1, 0.3) ? p.of(2, targets) : p.of(2, ioases);
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
  weight: 4,
  picks: 4,
  variants: [
    { name: 'unbound' },
    { name: 'data-type-unknown' },
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
    const parents = ctx.live('hwpt-paging').filter((h) => h.format === 'nest-parent');
    const nested = ctx.features.has('nesting-hw') && parents.length > 0 && p.chance(1, 0.3);
    let flags = 0;
    if (!nested && ctx.features.has('nesting-hw') && p.chance(2, 0.3)) flags |= HWPT_ALLOC.NEST_PARENT;
    if (!nested && ctx.features.has('dirty-tracking') && p.chance(3, 0.2)) flags |= HWPT_ALLOC.DIRTY_TRACKING;
    if (v === 'flags-unknown') flags |= 0x80;
    const devId = v === 'unbound' ? (adversarialId(ctx, p, 0, 'id-stale', ['device']) ?? 0) : ctx.ref(dev.id);
    const pt =
      adversarialId(ctx, p, 1, v, nested ? ['hwpt-paging'] : ['ioas']) ??
      ctx.ref(nested ? p.of(1, parents).id : p.of(1, ioases).id);
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
    if (v === 'data-type-unknown') c = { ...c, data_type: 77 };
    if (v === 'reserved-nonzero') c = { ...c, __reserved: 1 };
    return withAbi(c, v);
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
  bind,
  attach,
  detach,
  close,
];

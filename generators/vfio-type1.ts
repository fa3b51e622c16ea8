/**
 * Templates of the `vfio-type1` profile: the container, its groups, SET_IOMMU (v1 with the `type1-v1` feature, v2),
 * GET_INFO, MAP_DMA and UNMAP_DMA (including UNMAP_ALL).
 *
 * @module
 */
import { VFIO, VFIO_DMA_MAP, VFIO_DMA_UNMAP, type Command } from '../src/reference/commands.ts';
import { MAP_VARIANTS, UNMAP_VARIANTS, mapAdversarial, unmapAdversarial } from './space.ts';
import type { Picks, RealiseCtx, TemplateDef } from './template.ts';

/** The container's address space in the view. */
const AS = 0;

/** The raw-argument variants (feature `ioctl-abi`): unreadable or read-only memory, a longer argsz with a tail. */
const MEM_VARIANTS = [
  { name: 'mem-unreadable', features: ['ioctl-abi'] },
  { name: 'mem-readonly', features: ['ioctl-abi'] },
  { name: 'argsz-tail', features: ['ioctl-abi'] },
  { name: 'argsz-tail-zero', features: ['ioctl-abi'] },
] as const;

/** Applies a raw-argument variant (FD-023, FD-026, FD-027, FD-035); other variants leave the command alone. */
function withMem(c: Command, v: string): Command {
  if (v === 'mem-unreadable') return { ...c, abi: { memory: 'unreadable' } };
  if (v === 'mem-readonly') return { ...c, abi: { memory: 'readonly' } };
  if (v === 'argsz-tail') return { ...c, abi: { size: 64, tailNonZero: true } };
  if (v === 'argsz-tail-zero') return { ...c, abi: { size: 64, tailNonZero: false } };
  return c;
}

/** The IOMMU groups of the platform's physical devices, ascending. */
function groups(ctx: RealiseCtx): number[] {
  return [...new Set(ctx.platform.devices.filter((d) => d.kind === 'physical').map((d) => d.group))].sort(
    (a, b) => a - b,
  );
}

/** A group not yet in the container, as VFIO_GROUP_SET_CONTAINER, or undefined. */
function addGroup(ctx: RealiseCtx, p: Picks, i: number): Command | undefined {
  const inside = ctx.view.container().groups;
  const free = groups(ctx).filter((g) => !inside.includes(g));
  return free.length > 0 ? { op: 'VFIO_GROUP_SET_CONTAINER', group: p.of(i, free) } : undefined;
}

/** The type SET_IOMMU selects: v2, or v1 when the implementation offers it and the pick says so. */
function iommuType(ctx: RealiseCtx, p: Picks, i: number): number {
  return ctx.features.has('type1-v1') && p.chance(i, 0.3) ? VFIO.TYPE1_IOMMU : VFIO.TYPE1v2_IOMMU;
}

/** What must happen before MAP/UNMAP can work: a group in the container, then SET_IOMMU. */
function prerequisite(ctx: RealiseCtx, p: Picks, i: number): Command | undefined {
  const ct = ctx.view.container();
  if (ct.iommuType !== 0) return undefined;
  if (ct.groups.length === 0) return addGroup(ctx, p, i);
  return { op: 'VFIO_SET_IOMMU', type: iommuType(ctx, p, i) };
}

const apiVersion: TemplateDef = {
  kind: 'vfio-type1.api-version',
  op: 'VFIO_GET_API_VERSION',
  profiles: ['vfio-type1'],
  weight: 1,
  picks: 0,
  variants: [],
  realise: () => ({ op: 'VFIO_GET_API_VERSION' }),
};

const checkExtension: TemplateDef = {
  kind: 'vfio-type1.check-extension',
  op: 'VFIO_CHECK_EXTENSION',
  profiles: ['vfio-type1'],
  weight: 2,
  picks: 1,
  variants: [{ name: 'extension-unknown' }],
  realise: (_ctx, p, v) => ({
    op: 'VFIO_CHECK_EXTENSION',
    extension: v === 'extension-unknown' ? p.of(0, [0, 2, 5, 7, 99]) : p.of(0, Object.values(VFIO)),
  }),
};

const setContainer: TemplateDef = {
  kind: 'vfio-type1.set-container',
  op: 'VFIO_GROUP_SET_CONTAINER',
  profiles: ['vfio-type1'],
  weight: 4,
  picks: 1,
  variants: [{ name: 'group-unknown' }, { name: 'group-again' }],
  realise(ctx, p, v) {
    if (v === 'group-unknown') return { op: 'VFIO_GROUP_SET_CONTAINER', group: 999 };
    const inside = ctx.view.container().groups;
    if (v === 'group-again' && inside.length > 0) return { op: 'VFIO_GROUP_SET_CONTAINER', group: p.of(0, inside) };
    return addGroup(ctx, p, 0);
  },
};

const unsetContainer: TemplateDef = {
  kind: 'vfio-type1.unset-container',
  op: 'VFIO_GROUP_UNSET_CONTAINER',
  profiles: ['vfio-type1'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'group-not-set' }],
  realise(ctx, p, v) {
    const inside = ctx.view.container().groups;
    if (v === 'group-not-set') {
      const out = groups(ctx).filter((g) => !inside.includes(g));
      return { op: 'VFIO_GROUP_UNSET_CONTAINER', group: out.length > 0 ? p.of(0, out) : 999 };
    }
    return inside.length > 0 ? { op: 'VFIO_GROUP_UNSET_CONTAINER', group: p.of(0, inside) } : undefined;
  },
};

const setIommu: TemplateDef = {
  kind: 'vfio-type1.set-iommu',
  op: 'VFIO_SET_IOMMU',
  profiles: ['vfio-type1'],
  weight: 3,
  picks: 2,
  variants: [{ name: 'type-unknown' }, { name: 'type-v1-unoffered' }, { name: 'again' }],
  realise(ctx, p, v) {
    const ct = ctx.view.container();
    if (ct.groups.length === 0 && v === '') return addGroup(ctx, p, 0);
    if (v === 'type-unknown') return { op: 'VFIO_SET_IOMMU', type: p.of(1, [0, 2, 5, 8]) };
    if (v === 'type-v1-unoffered') return { op: 'VFIO_SET_IOMMU', type: VFIO.TYPE1_IOMMU };
    // Setting the IOMMU twice is the adversarial 'again' case; a well-formed template has nothing left to do.
    if (ct.iommuType !== 0 && v === '') return undefined;
    return { op: 'VFIO_SET_IOMMU', type: iommuType(ctx, p, 1) };
  },
};

const getInfo: TemplateDef = {
  kind: 'vfio-type1.get-info',
  op: 'VFIO_IOMMU_GET_INFO',
  profiles: ['vfio-type1'],
  weight: 2,
  picks: 1,
  variants: [
    { name: 'argsz-short', features: ['ioctl-abi'] },
    { name: 'mem-unreadable', features: ['ioctl-abi'] },
    { name: 'mem-readonly', features: ['ioctl-abi'] },
  ],
  realise: (_ctx, p, v) =>
    withMem(
      {
        op: 'VFIO_IOMMU_GET_INFO',
        argsz: v === 'argsz-short' ? 8 : p.of(0, [16, 24, 64, 1024]),
      },
      v,
    ),
};

const mapDma: TemplateDef = {
  kind: 'vfio-type1.map',
  op: 'VFIO_IOMMU_MAP_DMA',
  profiles: ['vfio-type1'],
  weight: 20,
  picks: 9,
  variants: [
    ...MAP_VARIANTS,
    { name: 'flags-none' },
    { name: 'flags-vaddr' },
    { name: 'flags-unknown', features: ['ioctl-abi'] },
    { name: 'argsz-short', features: ['ioctl-abi'] },
    ...MEM_VARIANTS,
  ],
  realise(ctx, p, v) {
    const pre = prerequisite(ctx, p, 0);
    if (pre !== undefined) return pre;
    const m = mapAdversarial(ctx, p, 1, AS, v);
    let flags = [VFIO_DMA_MAP.READ | VFIO_DMA_MAP.WRITE, VFIO_DMA_MAP.READ, VFIO_DMA_MAP.WRITE][p.int(8, 6) % 3]!;
    if (v === 'flags-none') flags = 0;
    if (v === 'flags-vaddr') flags = VFIO_DMA_MAP.VADDR;
    if (v === 'flags-unknown') flags |= 0x100;
    const c: Command = { op: 'VFIO_IOMMU_MAP_DMA', flags, vaddr: m.ptr, iova: m.iova, size: m.length };
    return withMem(v === 'argsz-short' ? { ...c, argsz: 16 } : c, v);
  },
};

const unmapDma: TemplateDef = {
  kind: 'vfio-type1.unmap',
  op: 'VFIO_IOMMU_UNMAP_DMA',
  profiles: ['vfio-type1'],
  weight: 14,
  picks: 5,
  variants: [
    ...UNMAP_VARIANTS,
    { name: 'all-with-range' },
    { name: 'dirty-bitmap' },
    { name: 'flags-unknown', features: ['ioctl-abi'] },
    { name: 'argsz-short', features: ['ioctl-abi'] },
    // Not 'mem-readonly' yet: FD-035 keeps the unmap done on EFAULT, which the MAP-039 invariant does not allow for.
    ...MEM_VARIANTS.filter((m) => m.name !== 'mem-readonly'),
  ],
  realise(ctx, p, v) {
    const pre = prerequisite(ctx, p, 0);
    if (pre !== undefined) return pre;
    const u = unmapAdversarial(ctx, p, 1, AS, v);
    let c: Command = u.all
      ? { op: 'VFIO_IOMMU_UNMAP_DMA', flags: VFIO_DMA_UNMAP.ALL, iova: 0n, size: 0n }
      : { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova: u.iova, size: u.length };
    if (v === 'all-with-range')
      c = {
        op: 'VFIO_IOMMU_UNMAP_DMA',
        flags: VFIO_DMA_UNMAP.ALL,
        iova: u.all ? 0n : u.iova,
        size: u.all ? 0x1000n : u.length,
      };
    if (v === 'dirty-bitmap') c = { ...c, flags: c.flags | VFIO_DMA_UNMAP.GET_DIRTY_BITMAP };
    if (v === 'flags-unknown') c = { ...c, flags: c.flags | 0x100 };
    if (v === 'argsz-short') c = { ...c, argsz: 16 };
    return withMem(c, v);
  },
};

const pageRequest: TemplateDef = {
  kind: 'vfio-type1.page-request',
  op: 'DEVICE_PAGE_REQUEST',
  profiles: ['vfio-type1'],
  features: ['dma-probe'],
  weight: 1,
  picks: 4,
  variants: [],
  realise(ctx, p) {
    // The container reports no fault: every page request is answered INVALID by the kernel (FAULT-006).
    const pri = ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' && d.pri ? [i] : []));
    if (pri.length === 0) return undefined;
    return {
      op: 'DEVICE_PAGE_REQUEST',
      dev: p.of(0, pri),
      addr: BigInt(p.int(1, 1 << 20)) * 0x1000n,
      grpid: p.int(2, 4),
      perm: p.chance(3, 0.5) ? 1 : 3,
      last: p.chance(3, 0.8),
    };
  },
};

/** The templates of the vfio-type1 profile. */
export const VFIO_TYPE1_TEMPLATES: readonly TemplateDef[] = [
  apiVersion,
  checkExtension,
  setContainer,
  unsetContainer,
  setIommu,
  getInfo,
  mapDma,
  unmapDma,
  pageRequest,
];

/**
 * Chapter INFO — capabilities and information (spec/chapters/INFO.md).
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { RFC_EXT, VFIO } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { minPageSize } from './core/placement.ts';
import { rfcReady } from './ioas.ts';
import { enforcesCoherency } from './platform.ts';
import type {
  IoasidCheckExtensionCmd,
  IoasidGetInfoCmd,
  VfioCheckExtensionCmd,
  VfioIommuGetInfoCmd,
} from './resolved.ts';
import type { IoasidObject, State } from './state.ts';

/** VFIO_GET_API_VERSION: 0 (INFO-024). */
export function vfioApiVersion(_st: State, ctx: StepContext): Outcome {
  ctx.hit('INFO-024');
  return ctx.ok({ version: 0 });
}

/** VFIO_CHECK_EXTENSION (vfio_iommu_type1_check_extension): 0 or 1 (INFO-025, INFO-029). */
export function vfioCheckExtension(st: State, ctx: StepContext, c: VfioCheckExtensionCmd): Outcome {
  const yes = [VFIO.TYPE1v2_IOMMU, VFIO.TYPE1_NESTING_IOMMU, VFIO.UNMAP_ALL] as number[];
  if (st.features.has('type1-v1')) yes.push(VFIO.TYPE1_IOMMU);
  ctx.hit('INFO-025');
  // INFO-029: the answers that need the container's IOMMU model are 0 before VFIO_SET_IOMMU. DMA_CC_IOMMU: every
  // domain enforces cache coherency (the platform's snoop control); UPDATE_VADDR: a declared feature (Q-INFO-008).
  if (st.container.iommuType !== 0) {
    ctx.hit('INFO-029');
    if (enforcesCoherency(st.platform)) yes.push(VFIO.DMA_CC_IOMMU);
    if (st.features.has('update-vaddr')) yes.push(VFIO.UPDATE_VADDR);
  }
  return ctx.ok({ value: yes.includes(c.extension) ? 1 : 0 });
}

/** VFIO_IOMMU_GET_INFO (vfio_iommu_type1_get_info): INFO-026..028. */
export function vfioGetInfo(st: State, ctx: StepContext, c: VfioIommuGetInfoCmd): Outcome {
  const ct = st.container;
  if (ct.iommuType === 0) return ctx.reject('FD-034', 'EINVAL');
  if (c.argsz < 16) return ctx.reject('FD-025', 'EINVAL');
  const ranges = ct.space.reserved.holes();
  ctx.hit('INFO-026');
  ctx.hit('INFO-027');
  // INFO-028: the chain as vfio_info_cap_add builds it (each capability padded to 8 bytes). The IOVA-range
  // capability: 8-byte vfio_info_cap_header + nr_iovas (4) + reserved (4) + 16 bytes per range; DMA_AVAIL: header +
  // avail (4) = 12, padded to 16; MIGRATION (vfio_iommu_migration_build_caps, native type1's dirty page tracking,
  // hence the dirty-tracking feature): header + flags + pad + pgsize_bitmap + max_dirty_bitmap_size = 32. The fixed
  // part of vfio_iommu_type1_info is 24 bytes (Linux 6.12 native type1: 120 with two ranges; iommufd's emulation: 88).
  const capsSize = 8 + 8 + 16 * ranges.length + 16 + (st.features.has('dirty-tracking') ? 32 : 0);
  const full = 24 + capsSize;
  if (c.argsz < full) ctx.hit('INFO-028');
  return ctx.ok({
    argsz: c.argsz < full ? full : c.argsz,
    iova_pgsizes: st.platform.iommu.pageSizes & ~(minPageSize(st.platform) - 1n),
    cap_offset: c.argsz < full ? 0 : 24,
    iova_ranges: c.argsz < full ? [] : ranges.map((r) => ({ start: r.start, end: r.last })),
    // INFO-028: the capabilities, DMA_AVAIL among them, are copied only when the whole chain fits.
    ...(c.argsz < full ? {} : { dma_avail: ct.dmaAvail }),
  });
}

/** IOASID_CHECK_EXTENSION: the declared fd-level features, 0 or 1 (INFO-001, INFO-002). */
export function rfcCheckExtension(st: State, ctx: StepContext, c: IoasidCheckExtensionCmd): Outcome {
  const io = st.platform.iommu;
  const f = st.features;
  const offered: Record<number, boolean> = {
    [RFC_EXT.TYPE1_MAP]: true,
    [RFC_EXT.PGTABLE_BIND]: f.has('nesting-hw') && io.nestingHw,
    [RFC_EXT.PASID_TABLE_BIND]: f.has('pasid-table-user') && io.pasidTableFormats.length > 0,
    [RFC_EXT.NESTING_HW]: f.has('nesting-hw') && io.nestingHw,
    [RFC_EXT.NESTING_SW]: f.has('nesting-sw') && io.nestingSw,
    [RFC_EXT.PREREG]: f.has('prereg'),
    [RFC_EXT.IOPF]: f.has('iopf') && io.iopf,
    [RFC_EXT.PASID_GLOBAL]: f.has('pasid-global') && io.pasidBits > 0,
  };
  ctx.hit('INFO-001');
  ctx.hit('INFO-002');
  return ctx.ok({ value: offered[c.extension] === true ? 1 : 0 });
}

/**
 * The kinds of child IOASID_CREATE_NESTING can make on `io` (INFO-005): none unless it is a kernel-managed IOASID
 * without a parent (NEST-001); otherwise the kinds the implementation offers and the IOMMU supports (the platform has
 * one IOMMU, so every attached device's IOMMU supports the same), in the order kernel, pgtable, pasid-table.
 */
function nestingKinds(st: State, io: IoasidObject): string[] {
  if (io.parent !== 0 || io.format !== 'kernel') return [];
  const hw = st.platform.iommu;
  const f = st.features;
  const kinds: string[] = [];
  if (f.has('nesting-sw') && hw.nestingSw) kinds.push('kernel');
  if (f.has('nesting-hw') && hw.nestingHw && hw.pgtableFormats.length > 0) kinds.push('pgtable');
  if (f.has('pasid-table-user') && hw.pasidTableFormats.length > 0) kinds.push('pasid-table');
  return kinds;
}

/** IOASID_GET_INFO: needs an attached device (INFO-003); reports formats, nesting, ranges (INFO-004..012). */
export function rfcGetInfo(st: State, ctx: StepContext, c: IoasidGetInfoCmd): Outcome {
  const io = st.get(c.ioasid, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  if (!rfcReady(st, io)) return ctx.reject('INFO-003', 'ENODEV');
  ctx.hit('INFO-004');
  const out: Record<string, unknown> = { format: io.format };
  // INFO-005: the kinds of nesting a parent accepts; none on an IOASID that cannot be a parent.
  ctx.hit('INFO-005');
  out.nesting = nestingKinds(st, io);
  // INFO-010: a user-managed IOASID reports the table format BIND accepts on it, the one declared at creation
  // (BIND-003), which creation checked the IOMMU can walk (NEST-002).
  if (io.tableFormat !== undefined) {
    ctx.hit('INFO-010');
    out.table_formats = [io.tableFormat];
  }
  let short = false;
  if (io.space) {
    ctx.hit('INFO-006');
    ctx.hit('INFO-009');
    const ranges = io.space.reserved.holes().map((r) => ({ start: r.start, last: r.last }));
    // INFO-012: a too small array gets the entries that fit, the total count, and EMSGSIZE.
    ctx.hit('INFO-012');
    short = c.num_ranges !== undefined && c.num_ranges < ranges.length;
    out.num_ranges = ranges.length;
    out.permitted = short ? ranges.slice(0, Math.max(0, c.num_ranges!)) : ranges;
    out.page_sizes = st.platform.iommu.pageSizes;
  }
  // INFO-011: the smallest PASID width among the attached devices; 0 when one of them cannot use PASIDs.
  ctx.hit('INFO-011');
  const noPasid = st.devices.some(
    (d, i) => !st.platform.devices[i]!.pasid && d.attachments.some((a) => a.ioasid === io.id),
  );
  out.pasid_bits = noPasid ? 0 : st.platform.iommu.pasidBits;
  if (short) return ctx.reject('INFO-012', 'EMSGSIZE', out as never);
  return ctx.ok(out as never);
}

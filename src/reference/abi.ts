/**
 * The generic ioctl ABI (feature `ioctl-abi`; spec/chapters/FD.md, FD-025..FD-029): the `size` / `argsz` a caller
 * passes (a command's `abi.size`), checked against the command's minimum and its full structure before the command
 * itself runs, as iommufd's dispatcher (main.c:iommufd_fops_ioctl) and VFIO type1's handlers do.
 *
 * Not for: the commands' own flags and reserved fields (each handler checks those, FD-030), or commands that are
 * not ioctls with a size (the fault fd's read / write, the VFIO cdev device ioctls, the harness steps).
 *
 * @module
 */
import type { Command, Op, Outcome } from './commands.ts';
import type { StepContext } from './core/context.ts';
import type { Resolved } from './resolved.ts';
import type { State } from './state.ts';

/** A structure's sizes: the minimum (offsetofend of the original ABI's last field) and the full size. */
export interface StructSize {
  readonly min: number;
  readonly full: number;
}

/** iommufd's table (main.c:iommufd_ioctl_ops): minimum and full `sizeof` of each command's structure in 6.12. */
export const IOMMUFD_SIZES: Partial<Record<Op, StructSize>> = {
  IOMMU_DESTROY: { min: 8, full: 8 },
  IOMMU_IOAS_ALLOC: { min: 12, full: 12 },
  IOMMU_IOAS_ALLOW_IOVAS: { min: 24, full: 24 },
  IOMMU_IOAS_COPY: { min: 40, full: 40 },
  IOMMU_IOAS_IOVA_RANGES: { min: 32, full: 32 },
  IOMMU_IOAS_MAP: { min: 40, full: 40 },
  IOMMU_IOAS_UNMAP: { min: 24, full: 24 },
  IOMMU_OPTION: { min: 24, full: 24 },
  IOMMU_VFIO_IOAS: { min: 12, full: 12 },
  IOMMU_HWPT_ALLOC: { min: 24, full: 48 },
  IOMMU_GET_HW_INFO: { min: 32, full: 40 },
  IOMMU_HWPT_SET_DIRTY_TRACKING: { min: 16, full: 16 },
  IOMMU_HWPT_GET_DIRTY_BITMAP: { min: 48, full: 48 },
  IOMMU_HWPT_INVALIDATE: { min: 32, full: 32 },
  IOMMU_FAULT_QUEUE_ALLOC: { min: 16, full: 16 },
};

/** VFIO type1's structures (include/uapi/linux/vfio.h): minimum (minsz) and full size; argsz is the size. */
export const TYPE1_SIZES: Partial<Record<Op, StructSize>> = {
  VFIO_IOMMU_MAP_DMA: { min: 32, full: 32 },
  VFIO_IOMMU_UNMAP_DMA: { min: 24, full: 24 },
  VFIO_IOMMU_GET_INFO: { min: 16, full: 24 },
};

/** Offsets of struct iommu_hwpt_alloc's fields past its minimum: a short size leaves them zero (FD-028). */
const HWPT_ALLOC_AT = { data_type: 24, data_len: 28, data_uptr: 32, fault_id: 40 } as const;

/**
 * Applies the generic ABI checks to a command that carries `abi`: returns the rejection, or the command as the
 * handler must see it (a short structure completed with zeros, FD-028; a VFIO argsz taken from `abi.size`).
 */
export function applyAbi(
  st: State,
  ctx: StepContext,
  c: Resolved<Command>,
): { reject: Outcome } | { cmd: Resolved<Command> } {
  const abi = c.abi;
  if (abi === undefined) return { cmd: c };
  const sized =
    st.profile === 'iommufd' ? IOMMUFD_SIZES[c.op] : st.profile === 'vfio-type1' ? TYPE1_SIZES[c.op] : undefined;
  // An argument that cannot be read fails before anything else, the size included (FD-023, FD-024, FD-029).
  if (abi.memory === 'unreadable' && sized !== undefined) {
    if (st.profile === 'iommufd') ctx.hit('FD-024');
    return { reject: ctx.reject('FD-023', 'EFAULT') };
  }
  if (abi.size === undefined) return { cmd: c };
  if (st.profile === 'iommufd') {
    const s = IOMMUFD_SIZES[c.op];
    if (s === undefined) return { cmd: c };
    ctx.hit('FD-029');
    if (abi.size < s.min) return { reject: ctx.reject('FD-025', 'EINVAL') };
    ctx.hit('FD-025');
    if (abi.size > s.full) {
      if (abi.tailNonZero === true) return { reject: ctx.reject('FD-026', 'E2BIG') };
      ctx.hit('FD-027');
      return { cmd: c };
    }
    if (abi.size < s.full) {
      ctx.hit('FD-028');
      if (c.op === 'IOMMU_HWPT_ALLOC') {
        // Each field the size does not reach reads as 0 (data_uptr 0: the data cannot be read).
        let h = c;
        if (abi.size < HWPT_ALLOC_AT.data_type + 4) h = { ...h, data_type: 0 };
        if (abi.size < HWPT_ALLOC_AT.data_len + 4) h = { ...h, data_len: 0 };
        if (abi.size < HWPT_ALLOC_AT.data_uptr + 8) {
          const { data: _data, ...rest } = h;
          h = rest;
        }
        if (abi.size < HWPT_ALLOC_AT.fault_id + 4) h = { ...h, fault_id: 0 };
        return { cmd: h };
      }
    }
    return { cmd: c };
  }
  if (st.profile === 'vfio-type1') {
    const s = TYPE1_SIZES[c.op];
    if (s === undefined || !('argsz' in c || c.op === 'VFIO_IOMMU_MAP_DMA' || c.op === 'VFIO_IOMMU_UNMAP_DMA'))
      return { cmd: c };
    // VFIO copies minsz bytes and never reads past the structure it knows (FD-026's vfio-type1 outcome).
    if (abi.size > s.full) ctx.hit(abi.tailNonZero === true ? 'FD-026' : 'FD-027');
    const withArgsz = { ...c, argsz: (c as { argsz?: number }).argsz ?? abi.size } as Resolved<Command>;
    return { cmd: withArgsz };
  }
  return { cmd: c };
}

/** iommufd commands that write a result back into their argument (iommufd_ucmd_respond or copy_to_user). */
const IOMMUFD_RESPONDS = new Set<Op>([
  'IOMMU_IOAS_ALLOC',
  'IOMMU_HWPT_ALLOC',
  'IOMMU_FAULT_QUEUE_ALLOC',
  'IOMMU_IOAS_MAP',
  'IOMMU_IOAS_COPY',
  'IOMMU_IOAS_UNMAP',
  'IOMMU_IOAS_IOVA_RANGES',
  'IOMMU_OPTION',
  'IOMMU_VFIO_IOAS',
  'IOMMU_GET_HW_INFO',
  'IOMMU_HWPT_INVALIDATE',
]);
/** VFIO type1 commands that write a result back (the unmapped size, the info structure). */
const TYPE1_RESPONDS = new Set<Op>(['VFIO_IOMMU_UNMAP_DMA', 'VFIO_IOMMU_GET_INFO']);
/** Creations that are aborted when the new ID cannot be written back (FD-033). */
const CREATIONS = new Set<Op>(['IOMMU_IOAS_ALLOC', 'IOMMU_HWPT_ALLOC', 'IOMMU_FAULT_QUEUE_ALLOC']);

/** Whether the command's result write-back will fault (its argument is `readonly` and it writes one back). */
export function writeBackFaults(st: State, c: Resolved<Command>): boolean {
  if (c.abi?.memory !== 'readonly') return false;
  if (st.profile === 'iommufd') return IOMMUFD_RESPONDS.has(c.op);
  return st.profile === 'vfio-type1' && TYPE1_RESPONDS.has(c.op);
}

/** Whether a write-back fault aborts the command's effect (FD-033), rather than leaving it in place (FD-032). */
export function abortsOnWriteBackFault(op: Op): boolean {
  return CREATIONS.has(op);
}

/**
 * The outcome of a command whose write-back faulted, given what it did: EFAULT wherever the result would have been
 * written. HWPT_INVALIDATE writes entry_num back on every path, so EFAULT replaces even its errors (INV-015); the
 * others write only on success (IOVA_RANGES also with EMSGSIZE, which writes num_iovas).
 */
export function writeBackFault(ctx: StepContext, op: Op, out: Outcome): Outcome {
  if (op === 'IOMMU_HWPT_INVALIDATE') return ctx.reject('INV-015', 'EFAULT');
  const wrote = out.ok || (op === 'IOMMU_IOAS_IOVA_RANGES' && out.errno === 'EMSGSIZE');
  if (!wrote) return out;
  if (op === 'IOMMU_VFIO_IOAS' && out.ok && out.out === undefined) return out;
  if (CREATIONS.has(op)) return ctx.reject('FD-033', 'EFAULT');
  if (op === 'IOMMU_IOAS_MAP' || op === 'IOMMU_IOAS_COPY' || op === 'IOMMU_IOAS_UNMAP')
    return ctx.reject('FD-032', 'EFAULT');
  return ctx.reject('FD-035', 'EFAULT');
}

/**
 * Dirty tracking of iommufd paging HWPTs: IOMMU_HWPT_SET_DIRTY_TRACKING and IOMMU_HWPT_GET_DIRTY_BITMAP
 * (hw_pagetable.c, io_pagetable.c:iopt_read_and_clear_dirty_data), clauses FMT-012, FMT-019 and FMT-020.
 *
 * A DMA write (DEVICE_DMA) through a paging HWPT whose tracking is on marks the CPU pages it wrote; the bitmap
 * reports them per `page_size` block and clears them unless NO_CLEAR is given.
 *
 * Not for: VFIO type1's VFIO_IOMMU_DIRTY_PAGES (not modelled), or dirty bits of a nested HWPT's stage 1.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { DIRTY_BITMAP, DIRTY_TRACKING } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { iommufdAlignment } from './core/placement.ts';
import type { IommuHwptGetDirtyBitmapCmd, IommuHwptSetDirtyTrackingCmd } from './resolved.ts';
import type { HwptObject, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** The paging HWPT `id`, or the ENOENT outcome of FMT-012 (a nested HWPT, an IOAS, anything else). */
function pagingHwpt(st: State, ctx: StepContext, id: number): HwptObject | Outcome {
  const h = st.get(id, 'hwpt-paging');
  if (h === undefined) return ctx.reject('FMT-012', 'ENOENT');
  ctx.hit('FMT-012');
  return h;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING (hw_pagetable.c:iommufd_hwpt_set_dirty_tracking). `__reserved` is not checked. */
export function iommufdSetDirtyTracking(st: State, ctx: StepContext, c: IommuHwptSetDirtyTrackingCmd): Outcome {
  if ((c.flags & ~DIRTY_TRACKING.ENABLE) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  const h = pagingHwpt(st, ctx, c.hwpt_id);
  if ('ok' in h) return h;
  if (!h.dirty) return ctx.reject('FMT-019', 'EOPNOTSUPP');
  ctx.hit('FMT-019');
  const enable = (c.flags & DIRTY_TRACKING.ENABLE) !== 0;
  // Enabling starts from a clean bitmap (io_pagetable.c:iopt_clear_dirty_data).
  if (enable && h.tracking !== true) h.dirtyPages = [];
  h.tracking = enable;
  return ctx.ok();
}

/** IOMMU_HWPT_GET_DIRTY_BITMAP (hw_pagetable.c:iommufd_hwpt_get_dirty_bitmap), in its order of checks. */
export function iommufdGetDirtyBitmap(st: State, ctx: StepContext, c: IommuHwptGetDirtyBitmapCmd): Outcome {
  if ((c.flags & ~DIRTY_BITMAP.NO_CLEAR) !== 0 || (c.__reserved ?? 0) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  const h = pagingHwpt(st, ctx, c.hwpt_id);
  if ('ok' in h) return h;
  const last = c.iova + ((c.length - 1n) & U64_MAX);
  if (last > U64_MAX) return ctx.reject('FMT-020', 'EOVERFLOW');
  const end = (last + 1n) & U64_MAX;
  const space = st.get(h.ioas, 'ioas')!.space;
  const align = iommufdAlignment(space, st.platform);
  if (c.iova % align !== 0n || end % align !== 0n) return ctx.reject('FMT-020', 'EINVAL');
  if (c.page_size === 0n || c.iova % c.page_size !== 0n || end % c.page_size !== 0n)
    return ctx.reject('FMT-020', 'EINVAL');
  ctx.hit('FMT-020');
  if (!h.dirty) return ctx.reject('FMT-019', 'EOPNOTSUPP');
  ctx.hit('FMT-019');
  // Bits per page_size block relative to iova, as inclusive runs of bit indices; then clear unless NO_CLEAR.
  const runs: { first: number; last: number }[] = [];
  const keep: { start: bigint; last: bigint }[] = [];
  for (const r of h.dirtyPages ?? []) {
    const lo = r.start > c.iova ? r.start : c.iova;
    const hi = r.last < last ? r.last : last;
    if (lo <= hi) {
      const first = Number((lo - c.iova) / c.page_size);
      const lastBit = Number((hi - c.iova) / c.page_size);
      const prev = runs[runs.length - 1];
      if (prev !== undefined && prev.last + 1 >= first) prev.last = Math.max(prev.last, lastBit);
      else runs.push({ first, last: lastBit });
    }
    if ((c.flags & DIRTY_BITMAP.NO_CLEAR) !== 0 || lo > hi) keep.push(r);
    else {
      if (r.start < lo) keep.push({ start: r.start, last: lo - 1n });
      if (r.last > hi) keep.push({ start: hi + 1n, last: r.last });
    }
  }
  h.dirtyPages = keep;
  return ctx.ok({ dirty: runs.map((r) => ({ first: r.first, last: r.last })) });
}

/** Marks the CPU pages a DMA write of `dev` covered in its paging HWPT, when that HWPT is tracking. */
export function markDirty(st: State, dev: number, iova: bigint, length: bigint): void {
  const h = st.get(st.devices[dev]?.hwpt ?? 0, 'hwpt-paging');
  if (h === undefined || h.tracking !== true || length === 0n) return;
  const page = BigInt(st.platform.limits.pageSize);
  let start = (iova / page) * page;
  let end = ((iova + length - 1n) / page) * page + page - 1n;
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of h.dirtyPages ?? []) {
    if (r.last + 1n < start || r.start > end + 1n) out.push(r);
    else {
      start = r.start < start ? r.start : start;
      end = r.last > end ? r.last : end;
    }
  }
  out.push({ start, last: end });
  h.dirtyPages = out.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
}

/**
 * Chapter INV, rfc profile — IOASID_INVALIDATE_CACHE (spec/chapters/INV.md): two granularities, accepted by an
 * IOASID of any format (FMT-008), expressed in the IOASID's own space (addresses, or PASIDs for a pasid-table IOASID).
 *
 * The uAPI model keeps no caches, so a successful invalidation changes no state here; what it must achieve on the
 * IOMMU's caches (INV-005, INV-006, INV-007) is checked by the hardware model.
 *
 * Not for: IOMMU_HWPT_INVALIDATE (iommufd).
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { RFC_INV } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { minPageSize } from './core/placement.ts';
import { rfcReady } from './ioas.ts';
import type { IoasidInvalidateCacheCmd } from './resolved.ts';
import type { State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** IOASID_INVALIDATE_CACHE, checks in the order of INV-002: lookup, readiness, granularity, range. */
export function rfcInvalidateCache(st: State, ctx: StepContext, c: IoasidInvalidateCacheCmd): Outcome {
  ctx.hit('INV-002');
  const io = st.get(c.ioasid, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  if (!rfcReady(st, io)) return ctx.reject(io.attachments > 0 ? 'DEV-010' : 'INFO-003', 'ENODEV');
  if (c.granularity !== RFC_INV.ALL && c.granularity !== RFC_INV.RANGE) return ctx.reject('INV-001', 'EINVAL');
  if (c.granularity === RFC_INV.RANGE) {
    const start = c.start ?? 0n;
    const size = c.size ?? 0n;
    if (io.format === 'pasid-table') {
      // INV-006: a range of PASIDs, inside the PASID width.
      if (size === 0n || start + size > 1n << BigInt(st.platform.iommu.pasidBits))
        return ctx.reject('INV-006', 'EINVAL');
    } else {
      const pg = minPageSize(st.platform);
      if (size === 0n || start % pg !== 0n || size % pg !== 0n || start + size - 1n > U64_MAX)
        return ctx.reject('INV-004', 'EINVAL');
      // INV-004: the range need not be mapped nor permitted.
      ctx.hit('INV-004');
    }
  }
  ctx.hit('INV-001');
  ctx.hit('FMT-008');
  if (io.format === 'kernel') ctx.hit('INV-003');
  else if (io.format === 'pgtable') ctx.hit('INV-005');
  else ctx.hit('INV-006');
  return ctx.ok();
}

/**
 * Chapter NEST — nesting (spec/chapters/NEST.md): iommufd's IOMMU_HWPT_ALLOC of paging (NEST_PARENT) and nested
 * HWPTs, with the format checks of chapter FMT.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { HWPT_ALLOC, HWPT_DATA } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { adoptId } from './fd.ts';
import { domainCannotJoin, outsideAperture } from './ioas.ts';
import type { IommuHwptAllocCmd } from './resolved.ts';
import type { State } from './state.ts';

/** IOMMU_HWPT_ALLOC (hw_pagetable.c:iommufd_hwpt_alloc), in its order of checks. */
export function iommufdHwptAlloc(st: State, ctx: StepContext, c: IommuHwptAllocCmd): Outcome {
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  const hasData = c.data !== undefined;
  if ((c.data_type === HWPT_DATA.NONE) === hasData) return ctx.reject('FMT-015', 'EINVAL');
  if (!st.get(c.dev_id, 'device')) return ctx.reject('FD-007', 'ENOENT');
  const pt = st.objects.get(c.pt_id);
  if (pt === undefined) return ctx.reject('FD-007', 'EINVAL');
  const faultValid = (c.flags & HWPT_ALLOC.FAULT_ID_VALID) !== 0;
  if (pt.kind === 'ioas') {
    if ((c.flags & ~(HWPT_ALLOC.NEST_PARENT | HWPT_ALLOC.DIRTY_TRACKING)) !== 0)
      return ctx.reject(faultValid ? 'FMT-017' : 'FD-030', 'EOPNOTSUPP');
    if ((c.flags & HWPT_ALLOC.DIRTY_TRACKING) !== 0 && !st.platform.iommu.dirtyTracking)
      return ctx.reject('FMT-017', 'EOPNOTSUPP');
    if (hasData) return ctx.reject('FMT-016', 'EOPNOTSUPP');
    const space = pt.space;
    const refused = domainCannotJoin(st, ctx, space);
    if (refused) return refused;
    const id = adoptId(st, ctx);
    if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
    const nestParent = (c.flags & HWPT_ALLOC.NEST_PARENT) !== 0;
    st.objects.set(id, {
      kind: 'hwpt-paging',
      id,
      ioas: pt.id,
      parent: 0,
      auto: false,
      nestParent,
      dirty: (c.flags & HWPT_ALLOC.DIRTY_TRACKING) !== 0,
      fault: 0,
      devices: 0,
      children: 0,
    });
    space.domains++;
    space.reserved.add(...outsideAperture(st, `aperture:${id}`));
    if (nestParent) ctx.hit('NEST-013');
    return ctx.ok({ id });
  }
  if (pt.kind === 'hwpt-paging') {
    ctx.hit('NEST-015');
    if ((c.flags & ~HWPT_ALLOC.FAULT_ID_VALID) !== 0) return ctx.reject('FMT-016', 'EOPNOTSUPP');
    if (!hasData) return ctx.reject('FMT-016', 'EOPNOTSUPP');
    if (pt.auto || !pt.nestParent) return ctx.reject('FMT-013', 'EINVAL');
    if (c.data_type !== HWPT_DATA.VTD_S1 || !st.features.has('nesting-hw')) return ctx.reject('FMT-016', 'EOPNOTSUPP');
    if (faultValid) return ctx.reject('FD-006', 'ENOENT');
    const id = adoptId(st, ctx);
    if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
    st.objects.set(id, {
      kind: 'hwpt-nested',
      id,
      ioas: pt.ioas,
      parent: pt.id,
      auto: false,
      nestParent: false,
      dirty: false,
      fault: 0,
      devices: 0,
      children: 0,
    });
    pt.children++;
    ctx.hit('NEST-014');
    ctx.hit('NEST-016');
    return ctx.ok({ id });
  }
  return ctx.reject('FMT-014', 'EINVAL');
}

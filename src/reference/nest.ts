/**
 * Chapter NEST — nesting (spec/chapters/NEST.md): iommufd's IOMMU_HWPT_ALLOC of paging (NEST_PARENT, DIRTY_TRACKING)
 * and nested HWPTs (VT-d stage-1 driver data, a FAULT queue), with the format checks of chapter FMT and the binding
 * clauses of chapter BIND; and IOMMU_HWPT_INVALIDATE of a nested HWPT (chapter INV).
 *
 * Not for: what a nested HWPT translates (the user's stage-1 table is the hardware model's business), or the rfc
 * profile's IOASID_CREATE_NESTING.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { HWPT_ALLOC, HWPT_DATA, HWPT_INVALIDATE_DATA, VTD_INV_FLAGS } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { adoptId } from './fd.ts';
import { domainCannotJoin, outsideAperture } from './ioas.ts';
import { iommufdDomainAdded } from './mem.ts';
import type { IommuHwptAllocCmd, IommuHwptInvalidateCmd } from './resolved.ts';
import type { HwptObject, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** sizeof(struct iommu_hwpt_vtd_s1): the only driver-data length VT-d accepts (BIND-015). */
export const VTD_S1_SIZE = 24;
/** sizeof(struct iommu_hwpt_vtd_s1_invalidate): the only entry length VT-d accepts (INV-017). */
export const VTD_S1_INV_SIZE = 24;

/** IOMMU_HWPT_ALLOC (hw_pagetable.c:iommufd_hwpt_alloc), in its order of checks. */
export function iommufdHwptAlloc(st: State, ctx: StepContext, c: IommuHwptAllocCmd): Outcome {
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  // data_len defaults to the size of the data given, so a trace need not repeat it.
  const dataLen = c.data_len ?? (c.data !== undefined ? VTD_S1_SIZE : 0);
  if ((c.data_type === HWPT_DATA.NONE) !== (dataLen === 0)) return ctx.reject('FMT-015', 'EINVAL');
  ctx.hit('FMT-015');
  ctx.hit('BIND-014');
  // An emulated device's ACCESS is not a DEVICE: iommufd_get_device finds no object of its type (FD-006).
  if (!st.get(c.dev_id, 'device') || st.get(c.dev_id, 'device')?.access === true)
    return ctx.reject(st.objects.has(c.dev_id) ? 'FD-006' : 'FD-002', 'ENOENT');
  const pt = st.objects.get(c.pt_id);
  // pt_id is looked up with any type: a missing ID is EINVAL, not ENOENT (FD-007, FMT-014).
  if (pt === undefined) return ctx.reject('FMT-014', 'EINVAL');
  const faultValid = (c.flags & HWPT_ALLOC.FAULT_ID_VALID) !== 0;
  if (pt.kind === 'ioas') {
    if ((c.flags & ~(HWPT_ALLOC.NEST_PARENT | HWPT_ALLOC.DIRTY_TRACKING)) !== 0) {
      if (!faultValid) return ctx.reject('FD-030', 'EOPNOTSUPP');
      // FAULT_ID_VALID on a paging HWPT, NEST_PARENT or not, before fault_id is looked up (FAULT-026, NEST-013).
      ctx.hit('FAULT-026');
      if ((c.flags & HWPT_ALLOC.NEST_PARENT) !== 0) ctx.hit('NEST-013');
      return ctx.reject('FMT-017', 'EOPNOTSUPP');
    }
    if ((c.flags & HWPT_ALLOC.DIRTY_TRACKING) !== 0 && !st.platform.iommu.dirtyTracking)
      return ctx.reject('FMT-019', 'EOPNOTSUPP');
    if (dataLen !== 0) return ctx.reject('FMT-016', 'EOPNOTSUPP');
    const space = pt.space;
    const refused = domainCannotJoin(st, ctx, space);
    if (refused) return refused;
    const id = adoptId(st, ctx);
    if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
    const nestParent = (c.flags & HWPT_ALLOC.NEST_PARENT) !== 0;
    const dirty = (c.flags & HWPT_ALLOC.DIRTY_TRACKING) !== 0;
    st.objects.set(id, {
      kind: 'hwpt-paging',
      id,
      ioas: pt.id,
      parent: 0,
      auto: false,
      nestParent,
      dirty,
      fault: 0,
      devices: 0,
      children: 0,
      ...(dirty ? { tracking: false, dirtyPages: [] } : {}),
    });
    iommufdDomainAdded(st, space);
    space.reserved.add(...outsideAperture(st, `aperture:${id}`));
    if (nestParent) ctx.hit('NEST-013');
    if (dirty) ctx.hit('FMT-019');
    return ctx.ok({ id });
  }
  if (pt.kind === 'hwpt-paging') return nestedAlloc(st, ctx, c, pt, dataLen, faultValid);
  // A nested HWPT, a device, a FAULT: nothing to build on (FMT-014, NEST-014).
  ctx.hit('NEST-014');
  return ctx.reject('FMT-014', 'EINVAL');
}

/** The nested branch (hw_pagetable.c:iommufd_hwpt_nested_alloc, intel/nested.c:intel_nested_domain_alloc). */
function nestedAlloc(
  st: State,
  ctx: StepContext,
  c: IommuHwptAllocCmd,
  parent: HwptObject,
  dataLen: number,
  faultValid: boolean,
): Outcome {
  // Flags and data checks come before the parent check (NEST-015, FMT-016).
  if ((c.flags & ~HWPT_ALLOC.FAULT_ID_VALID) !== 0 || dataLen === 0) {
    ctx.hit('NEST-015');
    return ctx.reject('FMT-016', 'EOPNOTSUPP');
  }
  ctx.hit('NEST-015');
  ctx.hit('FMT-016');
  if (parent.auto || !parent.nestParent) {
    ctx.hit('NEST-014');
    return ctx.reject('FMT-013', 'EINVAL');
  }
  ctx.hit('FMT-013');
  ctx.hit('NEST-014');
  // The driver: VT-d nests only where the IOMMU can, and only its own stage-1 format (BIND-015).
  if (!st.platform.iommu.nestingHw || c.data_type !== HWPT_DATA.VTD_S1) return ctx.reject('BIND-015', 'EOPNOTSUPP');
  if (dataLen !== VTD_S1_SIZE) return ctx.reject('BIND-015', 'EINVAL');
  if (c.data === undefined) return ctx.reject('BIND-015', 'EFAULT');
  ctx.hit('BIND-015');
  let fault = 0;
  if (faultValid) {
    // Looked up after the nested domain is built, which is then aborted: no object remains (FAULT-027).
    const f = st.get(c.fault_id ?? 0, 'fault');
    if (f === undefined) return ctx.reject('FAULT-027', 'ENOENT');
    ctx.hit('FAULT-027');
    fault = f.id;
  }
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  st.objects.set(id, {
    kind: 'hwpt-nested',
    id,
    ioas: parent.ioas,
    parent: parent.id,
    auto: false,
    nestParent: false,
    dirty: false,
    fault,
    devices: 0,
    children: 0,
    s1: { pgtblAddr: c.data.pgtbl_addr, addrWidth: c.data.addr_width },
  });
  parent.children++;
  ctx.hit('BIND-013');
  ctx.hit('NEST-016');
  return ctx.ok({ id });
}

/**
 * IOMMU_HWPT_INVALIDATE (hw_pagetable.c:iommufd_hwpt_invalidate, intel/nested.c:intel_nested_cache_invalidate_user).
 * entry_num is written back on every path (INV-015): 0 before the driver runs, else the entries handled.
 */
export function iommufdHwptInvalidate(st: State, ctx: StepContext, c: IommuHwptInvalidateCmd): Outcome {
  const fail = (clause: string, errno: string, handled = 0): Outcome => {
    ctx.hit('INV-015');
    return ctx.reject(clause, errno, { entry_num: handled });
  };
  // The request before the object (INV-013).
  if ((c.__reserved ?? 0) !== 0) return fail('INV-010', 'EOPNOTSUPP');
  if (c.entry_num !== 0 && (c.null_array === true || c.entry_len === 0)) return fail('INV-011', 'EINVAL');
  ctx.hit('INV-011');
  const h = st.objects.get(c.hwpt_id);
  if (h?.kind !== 'hwpt-nested') {
    // Only a user-managed (nested) table takes an invalidation (INV-012, FMT-011).
    ctx.hit('FMT-011');
    return fail('INV-012', 'ENOENT');
  }
  ctx.hit('INV-012');
  ctx.hit('INV-013');
  // The driver: the data type, even for an empty array (INV-016).
  if (c.data_type !== HWPT_INVALIDATE_DATA.VTD_S1) return fail('INV-016', 'EINVAL');
  if (c.entry_num === 0) {
    ctx.hit('INV-016');
    ctx.hit('INV-015');
    return ctx.ok({ entry_num: 0 });
  }
  const entries = c.entries ?? [];
  for (let i = 0; i < c.entry_num; i++) {
    // Entries are copied one by one: a length other than the kernel's struct is EINVAL (INV-017).
    if (c.entry_len !== VTD_S1_INV_SIZE) return fail('INV-017', 'EINVAL', i);
    const e = entries[i];
    if (e === undefined) return fail('INV-017', 'EFAULT', i);
    ctx.hit('INV-017');
    if ((e.flags & ~VTD_INV_FLAGS.LEAF) !== 0) return fail('INV-018', 'EOPNOTSUPP', i);
    if (e.addr % 4096n !== 0n || (e.npages === U64_MAX && e.addr !== 0n)) return fail('INV-018', 'EINVAL', i);
    ctx.hit('INV-018');
    ctx.hit('INV-014');
  }
  ctx.hit('INV-015');
  return ctx.ok({ entry_num: c.entry_num });
}

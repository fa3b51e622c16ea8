/**
 * Chapter FD — the file descriptor, objects and IDs (spec/chapters/FD.md): ID allocation, IOMMU_DESTROY and what
 * holds an object alive.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import type { StepContext } from './core/context.ts';
import type { IommuDestroyCmd } from './resolved.ts';
import type { State } from './state.ts';
import { unmapAll } from './map.ts';
import { destroyFault } from './fault.ts';

/**
 * Allocates the ID of a new object (FD-001, FD-003, FD-004). In lockstep with an implementation, the ID it returned
 * (output `field`, `id` by default) is adopted when it names no live object; the clauses say it must be the lowest free one, so any
 * other choice is recorded as a violation of FD-004 (or FD-003 when the ID is already live, FD-001 for 0).
 */
export function adoptId(st: State, ctx: StepContext, field = 'id'): number {
  const expected = st.ids.peek();
  const seen = ctx.observedNumber(field);
  ctx.hit('FD-003');
  if (seen === undefined || seen === expected) {
    ctx.hit('FD-001');
    ctx.hit('FD-004');
    return st.ids.alloc();
  }
  if (seen === 0) ctx.violate('FD-001', 'the implementation returned object ID 0');
  else if (st.objects.has(seen))
    ctx.violate('FD-003', `the implementation returned ID ${seen}, which a live object holds`);
  else if (st.ids.take(seen, (id) => st.objects.has(id))) {
    ctx.violate('FD-004', `the implementation returned ID ${seen}; the lowest free ID is ${expected}`);
    return seen;
  }
  return st.ids.alloc();
}

/** IOMMU_DESTROY (main.c:iommufd_destroy): FD-002, FD-009..016. */
export function iommufdDestroy(st: State, ctx: StepContext, c: IommuDestroyCmd): Outcome {
  const o = st.objects.get(c.id);
  if (o === undefined) return ctx.reject('FD-002', 'ENOENT');
  switch (o.kind) {
    case 'ioas': {
      const held = [...st.objects.values()].some((h) => h.kind === 'hwpt-paging' && h.ioas === o.id);
      if (held) return ctx.reject('FD-010', 'EBUSY');
      if (o.space.areas.size > 0) ctx.hit('FD-016');
      unmapAll(st, ctx, o.space);
      if (st.vfioIoas === o.id) {
        st.vfioIoas = 0;
        ctx.hit('IOAS-032');
      }
      break;
    }
    case 'hwpt-paging':
    case 'hwpt-nested': {
      // A nested HWPT is unbound only by destroying it, never while attached (BIND-016).
      if (o.kind === 'hwpt-nested') ctx.hit('BIND-016');
      if (o.devices > 0) return ctx.reject('FD-012', 'EBUSY');
      // A nesting parent outlives its nested HWPTs (NEST-006).
      if (o.children > 0) ctx.hit('NEST-006');
      if (o.children > 0) return ctx.reject('FD-013', 'EBUSY');
      releaseHwpt(st, o.id);
      break;
    }
    case 'device':
      return ctx.reject('FD-015', 'EBUSY');
    case 'fault': {
      // Held by its fd and by the HWPTs reporting to it (FD-014, FAULT-024).
      const refused = destroyFault(st, ctx, o);
      if (refused) return refused;
      break;
    }
    case 'ioasid':
      // rfc IOASIDs are freed with IOASID_FREE; IOMMU_DESTROY is not an rfc command.
      return ctx.reject('FD-002', 'ENOENT');
  }
  st.objects.delete(o.id);
  st.ids.free(o.id);
  ctx.hit('FD-009');
  return ctx.ok();
}

/** Drops a HWPT's hold on its IOAS (domain, aperture) or its parent. Does not free the ID. */
export function releaseHwpt(st: State, id: number): void {
  const h = st.objects.get(id);
  if (h === undefined || (h.kind !== 'hwpt-paging' && h.kind !== 'hwpt-nested')) return;
  if (h.kind === 'hwpt-paging') {
    const ioas = st.get(h.ioas, 'ioas');
    if (ioas) {
      ioas.space.domains--;
      ioas.space.reserved.removeOwner(`aperture:${id}`);
    }
  } else {
    const parent = st.get(h.parent, 'hwpt-paging');
    if (parent) parent.children--;
  }
}

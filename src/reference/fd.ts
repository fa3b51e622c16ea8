/**
 * Chapter FD — the file descriptor, objects and IDs (spec/chapters/FD.md): ID allocation, IOMMU_DESTROY and what
 * holds an object alive.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import type { StepContext } from './core/context.ts';
import type { IommuDestroyCmd } from './resolved.ts';
import { FaultQueue, type State } from './state.ts';
import { unmapAll } from './map.ts';
import { RfcState } from './rfc-state.ts';
import { destroyFault } from './fault.ts';
import { iommufdDomainRemoved } from './mem.ts';

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
      // FD-011: an attached ACCESS (emulated device) holds its IOAS (iommufd_access_change_ioas).
      if (o.space.accesses > 0) return ctx.reject('FD-011', 'EBUSY');
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
      iommufdDomainRemoved(st, ioas.space);
      ioas.space.reserved.removeOwner(`aperture:${id}`);
    }
  } else {
    const parent = st.get(h.parent, 'hwpt-paging');
    if (parent) parent.children--;
  }
}

// ------------------------------------------------------------------------------------------------ closing the fd

/**
 * The commands that do not go through the fd, and so still work once the user closed it: the device's own ioctls
 * (its cdev, its group), the fault fd's read / write / close, and what devices and CPUs do. Every other command is
 * an ioctl on the closed fd (FD-036). VFIO_DEVICE_ATTACH_IOMMUFD_PT is here: it names its page table by ID in the
 * context the device is bound to (vfio_iommufd_physical_attach_ioas), not through the iommufd.
 */
const OFF_FD_OPS: ReadonlySet<string> = new Set([
  'DEVICE_DMA',
  'DEVICE_PAGE_REQUEST',
  'CPU_ENQCMD',
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  'VFIO_DEVICE_DETACH_IOMMUFD_PT',
  'VFIO_DEVICE_CLOSE',
  'IOMMU_FAULT_READ',
  'IOMMU_FAULT_RESPOND',
  'IOMMU_FAULT_CLOSE',
  'VFIO_UNBIND_IOASID_FD',
  'VFIO_GROUP_UNSET_CONTAINER',
]);

/** Whether `op` is an ioctl on the fd the user closed (FD-036): it fails with EBADF before anything else. */
export function closedFdRefuses(st: State, op: string): boolean {
  return st.fdClosed && !OFF_FD_OPS.has(op);
}

/** The outcome of an ioctl on the closed fd (FD-036): EBADF, nothing changes. */
export function closedFd(ctx: StepContext): Outcome {
  return ctx.reject('FD-036', 'EBADF');
}

/**
 * What still holds the fd's context once the user closed it (FD-021, DEV-018): iommufd bound devices (the bind takes
 * iommufd_ctx_get) and open fault fds (iommufd_fault_alloc takes one too); rfc bound devices; vfio-type1 the groups
 * in the container (vfio_container_attach_group).
 */
function holders(st: State): number {
  switch (st.profile) {
    case 'iommufd': {
      let n = st.devices.filter((d) => d.boundId !== 0).length;
      for (const o of st.objects.values()) if (o.kind === 'fault' && o.fdOpen) n++;
      return n;
    }
    case 'rfc':
      return st.devices.filter((d) => d.boundId !== 0).length;
    case 'vfio-type1':
      return st.container.groups.length;
  }
}

/**
 * FD_CLOSE: the user drops its reference to the fd. While bound devices (groups, fault fds) hold the context nothing
 * is destroyed and their DMA is translated as before (FD-021, DEV-018); otherwise the context is released at once
 * (FD-020, {@link releaseIfUnheld}).
 */
export function fdClose(st: State, ctx: StepContext): Outcome {
  st.fdClosed = true;
  if (holders(st) > 0) {
    ctx.hit('FD-021');
    if (st.profile !== 'vfio-type1') ctx.hit('DEV-018');
  }
  releaseIfUnheld(st, ctx);
  return ctx.ok();
}

/**
 * Releases the context of a closed fd once nothing holds it (main.c:iommufd_fops_release): every object is destroyed,
 * each dependant before what it depends on, whatever IOMMU_DESTROY or IOASID_FREE would refuse (FD-020) — iommufd
 * nested HWPTs, then paging HWPTs (their domains unpin, MEM-010), FAULTs (pending groups answered), IOAS (unmapped);
 * rfc children, then parents, with every pin and registration released — and the harness opens a fresh fd: IDs
 * restart at 1, options and PASID schemes at their defaults. vfio-type1's container was emptied when its last group
 * left (FD-019). Called after every step that drops a holder.
 */
export function releaseIfUnheld(st: State, ctx: StepContext): void {
  if (!st.fdClosed || holders(st) > 0) return;
  const gone = (id: number): void => {
    st.objects.delete(id);
    st.ids.free(id);
  };
  const live = [...st.objects.values()];
  if (st.profile === 'iommufd') {
    for (const kind of ['hwpt-nested', 'hwpt-paging'])
      for (const o of live)
        if (o.kind === kind) {
          releaseHwpt(st, o.id);
          gone(o.id);
        }
    for (const o of live)
      if (o.kind === 'fault') {
        st.pri.answered += o.queue.pending;
        gone(o.id);
      }
    for (const o of live)
      if (o.kind === 'ioas') {
        unmapAll(st, ctx, o.space);
        gone(o.id);
      }
    st.vfioIoas = 0;
    st.rlimitMode = 0n;
  } else if (st.profile === 'rfc') {
    const ioasids = live.filter((o) => o.kind === 'ioasid');
    for (const io of [...ioasids.filter((o) => o.parent !== 0), ...ioasids.filter((o) => o.parent === 0)]) {
      if (io.space) unmapAll(st, ctx, io.space);
      gone(io.id);
    }
    st.pri.answered += st.rfcFaults.pending;
    st.rfcFaults = new FaultQueue();
    // Registrations, pins and their accounting, the PASID scheme, kernel PASIDs and CPU translations go with the fd.
    const busy = st.rfcx.busy;
    st.rfcx = new RfcState();
    st.rfcx.busy = busy;
  }
  st.fdClosed = false;
  if (st.profile !== 'vfio-type1') ctx.hit('FD-020');
}

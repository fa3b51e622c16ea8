/**
 * Chapter DEV — devices: binding, attach, detach, replace (spec/chapters/DEV.md), and the vfio-type1 groups of a
 * container.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { VFIO } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { adoptId, releaseHwpt, releaseIfUnheld } from './fd.ts';
import { domainCannotJoin, outsideAperture, rfcReady } from './ioas.ts';
import { unmapAll } from './map.ts';
import { autoRespond, iopfRefused } from './fault.ts';
import { pasidAttach, pasidDetached } from './pasid.ts';
import { iommufdDomainAdded } from './mem.ts';
import type {
  VfioAttachIoasidCmd,
  VfioBindIoasidFdCmd,
  VfioDetachIoasidCmd,
  VfioDeviceAttachIommufdPtCmd,
  VfioDeviceBindIommufdCmd,
  VfioDeviceCloseCmd,
  VfioDeviceDetachIommufdPtCmd,
  VfioGroupSetContainerCmd,
  VfioGroupUnsetContainerCmd,
  VfioSetIommuCmd,
  VfioUnbindIoasidFdCmd,
} from './resolved.ts';
import type { Space, State } from './state.ts';

/** Raised for a situation the model does not cover yet: the runner reports it as a model limit, never a pass. */
export class ModelLimit extends Error {
  override readonly name = 'ModelLimit';
}

/** The reserved ranges a device brings (relaxable regions are not enforced). */
function deviceRegions(st: State, dev: number) {
  return st.platform.devices[dev]!.reserved.filter((r) => r.kind !== 'relaxable').map((r) => ({
    start: r.start,
    last: r.last,
    owner: `dev:${dev}`,
  }));
}

/** Whether the device regions conflict with areas or allowed ranges of a space. */
function regionsConflict(st: State, dev: number, space: Space): boolean {
  return deviceRegions(st, dev).some(
    (r) => space.areas.firstIntersecting(r.start, r.last) !== undefined || space.allowed.intersects(r.start, r.last),
  );
}

// ------------------------------------------------------------------------------------------------ iommufd

/** VFIO_DEVICE_BIND_IOMMUFD (device_cdev.c:vfio_df_ioctl_bind_iommufd). */
export function iommufdBind(st: State, ctx: StepContext, c: VfioDeviceBindIommufdCmd): Outcome {
  const pd = st.platform.devices[c.dev];
  if ((c.flags ?? 0) !== 0 || pd === undefined) return ctx.reject('DEV-002', 'EINVAL');
  const d = st.devices[c.dev]!;
  if (d.boundId !== 0) return ctx.reject('DEV-001', 'EINVAL');
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  // An emulated device binds as an ACCESS object (vfio_iommufd_emulated_bind); its ID is returned as the device ID.
  st.objects.set(
    id,
    pd.kind === 'mediated' ? { kind: 'device', id, dev: c.dev, access: true } : { kind: 'device', id, dev: c.dev },
  );
  d.boundId = id;
  ctx.hit('DEV-003');
  return ctx.ok({ id });
}

/**
 * Detaches a device from its HWPT: drops its reservations and an auto HWPT left without users. An emulated device's
 * ACCESS lets go of its IOAS (iommufd_access_detach).
 */
function iommufdDetachDevice(st: State, dev: number, ctx?: StepContext): void {
  const d = st.devices[dev]!;
  if (d.access) {
    const ioas = st.get(d.access, 'ioas');
    if (ioas) ioas.space.accesses--;
    d.access = 0;
  }
  const h = st.get(d.hwpt, 'hwpt-paging') ?? st.get(d.hwpt, 'hwpt-nested');
  d.hwpt = 0;
  if (!h) return;
  // Its page groups on a fault-capable HWPT are answered INVALID (FAULT-023).
  autoRespond(st, ctx, dev, h.id);
  h.devices--;
  st.get(h.ioas, 'ioas')?.space.reserved.removeOwner(`dev:${dev}`);
  if (h.auto && h.devices === 0) {
    releaseHwpt(st, h.id);
    st.objects.delete(h.id);
    st.ids.free(h.id);
  }
}

/** VFIO_DEVICE_ATTACH_IOMMUFD_PT: first call attaches, later calls replace (device.c:iommufd_device_change_pt). */
export function iommufdAttach(st: State, ctx: StepContext, c: VfioDeviceAttachIommufdPtCmd): Outcome {
  const d = st.devices[c.dev];
  // PASID-032: flags must be 0 (argsz and flags are the first check of vfio_df_ioctl_attach_pt), so the
  // VFIO_DEVICE_ATTACH_PASID flag of later kernels is refused: 6.12 has no user PASID attach.
  if ((c.flags ?? 0) !== 0) {
    ctx.hit('DEV-019');
    return ctx.reject('PASID-032', 'EINVAL');
  }
  if (d === undefined) return ctx.reject('DEV-019', 'EINVAL');
  if (d.boundId === 0) return ctx.reject('DEV-004', 'EINVAL');
  if (st.platform.devices[c.dev]!.kind === 'mediated') return accessAttach(st, ctx, c.dev, c.pt_id);
  const target = st.objects.get(c.pt_id);
  if (target === undefined) return ctx.reject('DEV-020', 'ENOENT');
  if (target.kind !== 'ioas' && target.kind !== 'hwpt-paging' && target.kind !== 'hwpt-nested')
    return ctx.reject('DEV-020', 'EINVAL');
  const group = st.platform.devices[c.dev]!.group;
  const ioasId = target.kind === 'ioas' ? target.id : target.ioas;
  const ioas = st.get(ioasId, 'ioas')!;
  // DEV-025: a replace needs an attached device (its group's HWPT lists it), checked before the no-op of DEV-023.
  // VFIO calls iommufd_device_replace only while the device is attached (vfio_iommufd_physical_attach_ioas), so an
  // unattached device takes the attach path below and the EINVAL of iommufd_device_do_replace is never reached here.
  if (d.hwpt !== 0) ctx.hit('DEV-025');
  // Replacing with the page table already attached is a no-op.
  if (
    d.hwpt !== 0 &&
    (d.hwpt === c.pt_id ||
      (target.kind === 'ioas' &&
        st.get(d.hwpt, 'hwpt-paging')?.auto === true &&
        st.get(d.hwpt, 'hwpt-paging')?.ioas === target.id))
  ) {
    ctx.hit('DEV-023');
    return ctx.ok({ pt_id: d.hwpt });
  }
  let hwptId = target.kind === 'ioas' ? 0 : target.id;
  if (target.kind === 'ioas') {
    for (const o of st.objects.values())
      if (o.kind === 'hwpt-paging' && o.auto && o.ioas === target.id) {
        hwptId = o.id;
        break;
      }
  }
  // All devices of an IOMMU group share one HWPT (iommufd_hw_pagetable_attach).
  for (let i = 0; i < st.devices.length; i++) {
    if (i === c.dev || st.platform.devices[i]!.group !== group || st.platform.devices[i]!.kind !== 'physical') continue;
    const other = st.devices[i]!.hwpt;
    if (other !== 0 && (hwptId === 0 || other !== hwptId)) return ctx.reject('DEV-022', 'EINVAL');
    if (other !== 0) ctx.hit('DEV-022');
  }
  const space = ioas.space;
  // The device's reserved regions join the IOAS (a different IOAS on replace).
  if (regionsConflict(st, c.dev, space)) return ctx.reject('DEV-015', 'EADDRINUSE');
  // A fault-capable HWPT needs a device that can enable I/O page faults (FAULT-031).
  const noIopf = iopfRefused(st, ctx, c.dev, hwptId);
  if (noIopf) return noIopf;
  if (hwptId === 0) {
    // A new automatic domain: the aperture is reserved, the alignment rises, existing areas are pinned.
    const refused = domainCannotJoin(st, ctx, space);
    if (refused) return refused;
    hwptId = adoptId(st, ctx, 'pt_id');
    if (hwptId === 0) return ctx.reject('FD-001', 'ENOSPC');
    st.objects.set(hwptId, {
      kind: 'hwpt-paging',
      id: hwptId,
      ioas: ioas.id,
      parent: 0,
      auto: true,
      nestParent: false,
      dirty: false,
      fault: 0,
      devices: 0,
      children: 0,
    });
    iommufdDomainAdded(st, space);
    space.reserved.add(...outsideAperture(st, `aperture:${hwptId}`));
    ctx.hit('DEV-021');
  }
  if (d.hwpt !== 0) {
    ctx.hit('DEV-024');
    iommufdDetachDevice(st, c.dev, ctx);
  }
  space.reserved.add(...deviceRegions(st, c.dev));
  d.hwpt = hwptId;
  const h = st.get(hwptId, 'hwpt-paging') ?? st.get(hwptId, 'hwpt-nested');
  h!.devices++;
  ctx.hit('DEV-019');
  ctx.hit('DEV-014');
  return ctx.ok({ pt_id: hwptId });
}

/**
 * VFIO_DEVICE_ATTACH_IOMMUFD_PT of an emulated device (vfio_iommufd_emulated_attach_ioas): its ACCESS attaches to
 * an IOAS, or replaces the one it has (iommufd_access_change_ioas). Only an IOAS will do (iommufd_get_ioas: ENOENT
 * for any other ID); the same IOAS again is a no-op; the IOAS's areas must meet the PAGE_SIZE alignment the ACCESS
 * brings (iopt_add_access: EADDRINUSE). The ACCESS then holds the IOAS (FD-011).
 */
function accessAttach(st: State, ctx: StepContext, dev: number, ptId: number): Outcome {
  const d = st.devices[dev]!;
  const ioas = st.get(ptId, 'ioas');
  if (!ioas) return ctx.reject('DEV-020', 'ENOENT');
  if (d.access === ioas.id) {
    ctx.hit('DEV-023');
    return ctx.ok({ pt_id: ioas.id });
  }
  const page = BigInt(st.platform.limits.pageSize);
  for (const a of ioas.space.areas.all())
    if (a.iova % page !== 0n || (a.last + 1n) % page !== 0n || a.va % page !== 0n)
      return ctx.reject('DEV-015', 'EADDRINUSE');
  if (d.access) {
    ctx.hit('DEV-024');
    iommufdDetachDevice(st, dev, ctx);
  }
  ioas.space.accesses++;
  d.access = ioas.id;
  ctx.hit('DEV-019');
  ctx.hit('FD-011');
  return ctx.ok({ pt_id: ioas.id });
}

/** VFIO_DEVICE_DETACH_IOMMUFD_PT: always succeeds (device_cdev.c:vfio_df_ioctl_detach_pt). */
export function iommufdDetach(st: State, ctx: StepContext, c: VfioDeviceDetachIommufdPtCmd): Outcome {
  const d = st.devices[c.dev];
  if ((c.flags ?? 0) !== 0 || d === undefined) return ctx.reject('DEV-019', 'EINVAL');
  if (d.boundId === 0) return ctx.reject('DEV-004', 'EINVAL'); // an unbound cdev refuses all but BIND (Linux lane)
  iommufdDetachDevice(st, c.dev, ctx);
  ctx.hit('DEV-012');
  ctx.hit('DEV-013');
  return ctx.ok();
}

/** VFIO_DEVICE_CLOSE: detaches and unbinds the device, freeing its ID (FD-015). */
export function iommufdClose(st: State, ctx: StepContext, c: VfioDeviceCloseCmd): Outcome {
  const d = st.devices[c.dev];
  if (d === undefined || d.boundId === 0) return ctx.reject('DEV-017', 'EBADF');
  iommufdDetachDevice(st, c.dev, ctx);
  st.objects.delete(d.boundId);
  st.ids.free(d.boundId);
  d.boundId = 0;
  ctx.hit('DEV-017');
  // The last holder of a closed fd's context gone, it is released (FD-020, FD-021).
  releaseIfUnheld(st, ctx);
  return ctx.ok();
}

// ------------------------------------------------------------------------------------------------ rfc

/** VFIO_BIND_IOASID_FD: one fd per device. */
export function rfcBind(st: State, ctx: StepContext, c: VfioBindIoasidFdCmd): Outcome {
  const d = st.devices[c.dev];
  if (d === undefined) return ctx.reject('DEV-001', 'EINVAL');
  if (d.boundId !== 0) return ctx.reject('DEV-001', 'EINVAL');
  d.boundId = 1;
  ctx.hit('DEV-001');
  return ctx.ok();
}

/** VFIO_UNBIND_IOASID_FD: detaches everything the device is attached to. */
export function rfcUnbind(st: State, ctx: StepContext, c: VfioUnbindIoasidFdCmd): Outcome {
  const d = st.devices[c.dev];
  if (d === undefined || d.boundId === 0) return ctx.reject('DEV-017', 'EINVAL');
  for (const a of [...d.attachments].reverse()) rfcDropAttachment(st, c.dev, a.ioasid, a.pasid);
  d.boundId = 0;
  ctx.hit('DEV-017');
  // The last holder of a closed fd's context gone, it is released (FD-020, FD-021).
  releaseIfUnheld(st, ctx);
  return ctx.ok();
}

function rfcDropAttachment(st: State, dev: number, ioasid: number, pasid: number | undefined): void {
  const d = st.devices[dev]!;
  const gone = d.attachments.find((a) => a.ioasid === ioasid && a.pasid === pasid);
  d.attachments = d.attachments.filter((a) => !(a.ioasid === ioasid && a.pasid === pasid));
  // Its page groups reported under the IOASID through this attachment are answered INVALID (FAULT-023).
  autoRespond(st, undefined, dev, ioasid, pasid);
  // A PASID attachment releases its kernel-allocated PASID's use (PASID-019).
  if (gone !== undefined) pasidDetached(st, dev, gone);
  const io = st.get(ioasid, 'ioasid');
  if (!io) return;
  io.attachments--;
  if (pasid === undefined && !d.attachments.some((a) => a.pasid === undefined && a.ioasid === ioasid))
    io.space?.reserved.removeOwner(`dev:${dev}`);
}

/** VFIO_ATTACH_IOASID: RID-level (no PASID) attachments. */
export function rfcAttach(st: State, ctx: StepContext, c: VfioAttachIoasidCmd): Outcome {
  const d = st.devices[c.dev];
  if (d === undefined || d.boundId === 0) return ctx.reject('DEV-004', 'EINVAL');
  const io = st.get(c.ioasid, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  if (c.pasid !== undefined) {
    // DEV-030: the nesting place (BIND-011, NEST-003), then the PASID checks of PASID-034.
    if (io.format === 'pasid-table') return ctx.reject('BIND-011', 'EINVAL');
    if (io.parent !== 0 && !d.attachments.some((a) => a.pasid === undefined && a.ioasid === io.parent))
      return ctx.reject('NEST-003', 'EINVAL');
    return pasidAttach(st, ctx, c, io);
  }
  if (d.attachments.some((a) => a.ioasid === io.id && a.pasid === undefined)) return ctx.reject('DEV-007', 'EEXIST');
  // The RID routes to one translation: a second RID attachment must be a child of the current one (nesting).
  const rid = d.attachments.filter((a) => a.pasid === undefined);
  if (io.parent === 0 && rid.length > 0) return ctx.reject('DEV-006', 'EBUSY');
  if (io.parent !== 0 && !rid.some((a) => a.ioasid === io.parent)) return ctx.reject('NEST-003', 'EINVAL');
  // DEV-006: a RID routes to one child of its IOASID at most (BIND-011 for a second PASID-table IOASID).
  const sibling = rid.find((a) => io.parent !== 0 && st.get(a.ioasid, 'ioasid')?.parent === io.parent);
  if (sibling !== undefined)
    return ctx.reject(
      io.format === 'pasid-table' && st.get(sibling.ioasid, 'ioasid')?.format === 'pasid-table'
        ? 'BIND-011'
        : 'DEV-006',
      'EBUSY',
    );
  if (io.space && regionsConflict(st, c.dev, io.space)) return ctx.reject('DEV-015', 'EADDRINUSE');
  io.space?.reserved.add(...deviceRegions(st, c.dev));
  d.attachments.push({ ioasid: io.id, pasid: undefined });
  io.attachments++;
  ctx.hit('DEV-005');
  ctx.hit('DEV-014');
  if (!rfcReady(st, io)) ctx.hit('DEV-010');
  return ctx.ok();
}

/** VFIO_DETACH_IOASID. */
export function rfcDetach(st: State, ctx: StepContext, c: VfioDetachIoasidCmd): Outcome {
  const d = st.devices[c.dev];
  if (d === undefined || d.boundId === 0) return ctx.reject('DEV-004', 'EINVAL');
  const io = st.get(c.ioasid, 'ioasid');
  if (!io) return ctx.reject('DEV-012', 'ENOENT');
  if (!d.attachments.some((a) => a.ioasid === io.id && a.pasid === c.pasid)) return ctx.reject('DEV-012', 'EINVAL');
  // A parent cannot be detached while the device is attached to one of its children.
  if (c.pasid === undefined && d.attachments.some((a) => st.get(a.ioasid, 'ioasid')?.parent === io.id))
    return ctx.reject('DEV-011', 'EBUSY');
  rfcDropAttachment(st, c.dev, io.id, c.pasid);
  ctx.hit('DEV-013');
  return ctx.ok();
}

// ------------------------------------------------------------------------------------------------ vfio-type1

function groupDevices(st: State, group: number): number[] {
  const out: number[] = [];
  st.platform.devices.forEach((d, i) => {
    if (d.group === group && d.kind === 'physical') out.push(i);
  });
  return out;
}

/** Attaches a group's devices to the container's IOMMU: aperture and reserved-region conflicts give EINVAL. */
function type1AttachGroup(st: State, ctx: StepContext, group: number): Outcome | undefined {
  const space = st.container.space;
  const regions = groupDevices(st, group).flatMap((i) => deviceRegions(st, i));
  const aperture = outsideAperture(st, 'aperture');
  if ([...aperture, ...regions].some((r) => space.areas.firstIntersecting(r.start, r.last) !== undefined))
    return ctx.reject('DEV-015', 'EINVAL');
  if (!space.reserved.list.some((r) => r.owner === 'aperture')) space.reserved.add(...aperture);
  space.reserved.add(...regions);
  return undefined;
}

/** VFIO_GROUP_SET_CONTAINER. */
export function type1SetContainer(st: State, ctx: StepContext, c: VfioGroupSetContainerCmd): Outcome {
  const ct = st.container;
  // DEV-027: a group the platform does not have cannot be opened (/dev/vfio/N does not exist): ENOENT.
  if (groupDevices(st, c.group).length === 0) return ctx.reject('DEV-027', 'ENOENT');
  if (ct.groups.includes(c.group)) return ctx.reject('DEV-027', 'EINVAL');
  if (ct.iommuType !== 0) {
    const r = type1AttachGroup(st, ctx, c.group);
    if (r) return r;
  }
  ct.groups = [...ct.groups, c.group].sort((a, b) => a - b);
  ctx.hit('DEV-027');
  return ctx.ok();
}

/** VFIO_GROUP_UNSET_CONTAINER: the last group takes the address space with it (FD-019). */
export function type1UnsetContainer(st: State, ctx: StepContext, c: VfioGroupUnsetContainerCmd): Outcome {
  const ct = st.container;
  // DEV-027: as for SET_CONTAINER, a group the platform does not have cannot be opened.
  if (groupDevices(st, c.group).length === 0) return ctx.reject('DEV-027', 'ENOENT');
  if (!ct.groups.includes(c.group)) return ctx.reject('DEV-027', 'EINVAL');
  ct.groups = ct.groups.filter((g) => g !== c.group);
  for (const i of groupDevices(st, c.group)) ct.space.reserved.removeOwner(`dev:${i}`);
  if (ct.groups.length === 0) {
    unmapAll(st, ctx, ct.space);
    ct.space.reserved.replace([]);
    ct.iommuType = 0;
    ct.dmaAvail = st.platform.limits.dmaEntryLimit;
    ctx.hit('FD-019');
  }
  ctx.hit('IOAS-033');
  // A closed container whose last group left is released (FD-021).
  releaseIfUnheld(st, ctx);
  return ctx.ok();
}

/** VFIO_SET_IOMMU (container.c:vfio_ioctl_set_iommu): IOAS-034. */
export function type1SetIommu(st: State, ctx: StepContext, c: VfioSetIommuCmd): Outcome {
  const ct = st.container;
  if (ct.groups.length === 0 || ct.iommuType !== 0) return ctx.reject('DEV-028', 'EINVAL');
  const v1 = st.features.has('type1-v1');
  const accepted =
    c.type === VFIO.TYPE1v2_IOMMU || c.type === VFIO.TYPE1_NESTING_IOMMU || (v1 && c.type === VFIO.TYPE1_IOMMU);
  if (!accepted) return ctx.reject('DEV-028', 'ENODEV');
  for (const g of ct.groups) {
    const r = type1AttachGroup(st, ctx, g);
    if (r) return r;
  }
  ct.iommuType = c.type === VFIO.TYPE1_IOMMU ? VFIO.TYPE1_IOMMU : VFIO.TYPE1v2_IOMMU;
  ctx.hit('IOAS-034');
  return ctx.ok();
}

/**
 * Chapter IOAS — I/O address space objects and their formats (spec/chapters/IOAS.md), with the lookups other
 * chapters use to reach an address space (FMT: a command of the wrong format is rejected).
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { OPTION, VFIO_IOAS_OP } from './commands.ts';
import type { StepContext } from './core/context.ts';
import type { OwnedRange } from './core/areas.ts';
import type {
  IoasidAllocCmd,
  IoasidFreeCmd,
  IommuIoasAllocCmd,
  IommuIoasAllowIovasCmd,
  IommuIoasIovaRangesCmd,
  IommuOptionCmd,
  IommuVfioIoasCmd,
} from './resolved.ts';
import { Space, type IoasidObject, type State } from './state.ts';
import { U64_MAX } from './u64.ts';
import { iommufdAlignment } from './core/placement.ts';
import { adoptId } from './fd.ts';
import { unmapAll } from './map.ts';
import { domainPinRefused, memUnmapSpace } from './mem.ts';
import { cpuNamesIoasid } from './pasid.ts';

// ------------------------------------------------------------------------------------------------ rfc

/** The reserved ranges outside the platform's aperture (a kernel-managed IOASID can only map inside it). */
export function outsideAperture(st: State, owner: string): OwnedRange[] {
  const { start, last } = st.platform.iommu.aperture;
  const out: OwnedRange[] = [];
  if (start > 0n) out.push({ start: 0n, last: start - 1n, owner });
  if (last < U64_MAX) out.push({ start: last + 1n, last: U64_MAX, owner });
  return out;
}

/** Whether an rfc IOASID is ready: a device is attached and no IOMMU group is attached only in part. */
export function rfcReady(st: State, io: IoasidObject): boolean {
  if (io.attachments === 0) return false;
  const groups = new Set<number>();
  st.devices.forEach((d, i) => {
    // A mediated device is not a member of its parent's IOMMU group (VFIO gives each mdev its own group).
    if (
      st.platform.devices[i]!.kind === 'physical' &&
      d.attachments.some((a) => a.ioasid === io.id && a.pasid === undefined)
    )
      groups.add(st.platform.devices[i]!.group);
  });
  for (const g of groups)
    for (let i = 0; i < st.platform.devices.length; i++) {
      const pd = st.platform.devices[i]!;
      if (
        pd.group === g &&
        pd.kind === 'physical' &&
        !st.devices[i]!.attachments.some((a) => a.ioasid === io.id && a.pasid === undefined)
      )
        return false;
    }
  return true;
}

/**
 * The address space of a kernel-managed, ready rfc IOASID, checked in the order of MAP-019 / FMT-009: it exists
 * (ENOENT), it is ready (ENODEV), its format accepts MAP (EINVAL).
 */
export function rfcKernelIoasid(st: State, ctx: StepContext, id: number): { space: Space } | Outcome {
  const io = st.get(id, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  ctx.hit('FMT-009');
  if (!rfcReady(st, io)) return ctx.reject(io.attachments > 0 ? 'DEV-010' : 'INFO-003', 'ENODEV');
  if (io.format === 'pgtable') return ctx.reject('FMT-002', 'EINVAL');
  if (io.format === 'pasid-table') return ctx.reject('FMT-003', 'EINVAL');
  ctx.hit('FMT-001');
  return { space: io.space! };
}

/** IOASID_ALLOC: a kernel-managed IOASID (IOAS-001) with the lowest free ID (FD-004). */
export function rfcAlloc(st: State, ctx: StepContext, c: IoasidAllocCmd): Outcome {
  if ((c.flags ?? 0) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  const space = new Space();
  space.reserved.add(...outsideAperture(st, 'aperture'));
  st.objects.set(id, { kind: 'ioasid', id, format: 'kernel', parent: 0, space, children: 0, attachments: 0 });
  ctx.hit('IOAS-001');
  return ctx.ok({ id });
}

/** IOASID_FREE: refused while in use (FD-017); otherwise unmaps and unbinds everything (FD-018). */
export function rfcFree(st: State, ctx: StepContext, c: IoasidFreeCmd): Outcome {
  const io = st.get(c.ioasid, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  if (io.children > 0) ctx.hit('NEST-006');
  if (io.attachments > 0 || io.children > 0) return ctx.reject('FD-017', 'EBUSY');
  if (cpuNamesIoasid(st, io.id)) return ctx.reject('PASID-037', 'EBUSY');
  if (io.space) {
    memUnmapSpace(st, io.space);
    unmapAll(st, ctx, io.space);
  }
  // A bound table is unbound by destroying its IOASID (BIND-009).
  if (io.bound !== undefined) ctx.hit('BIND-009');
  if (io.parent !== 0) {
    const parent = st.get(io.parent, 'ioasid');
    if (parent) parent.children--;
  }
  st.objects.delete(io.id);
  st.ids.free(io.id);
  ctx.hit('FD-018');
  return ctx.ok();
}

// ------------------------------------------------------------------------------------------------ iommufd

/** IOMMU_IOAS_ALLOC (ioas.c:iommufd_ioas_alloc_ioctl): IOAS-012, IOAS-013. */
export function iommufdIoasAlloc(st: State, ctx: StepContext, c: IommuIoasAllocCmd): Outcome {
  if ((c.flags ?? 0) !== 0) return ctx.reject('IOAS-012', 'EOPNOTSUPP');
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  st.objects.set(id, { kind: 'ioas', id, space: new Space() });
  ctx.hit('IOAS-013');
  return ctx.ok({ id });
}

/** IOMMU_IOAS_IOVA_RANGES (ioas.c:iommufd_ioas_iova_ranges): INFO-013..018. */
export function iommufdIovaRanges(st: State, ctx: StepContext, c: IommuIoasIovaRangesCmd): Outcome {
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('INFO-018', 'EOPNOTSUPP');
  const ioas = st.get(c.ioas_id, 'ioas');
  if (!ioas) return ctx.reject('FD-006', 'ENOENT');
  const ranges = ioas.space.reserved.holes();
  ctx.hit('INFO-013');
  ctx.hit('INFO-014');
  ctx.hit('INFO-017');
  const out = { num_iovas: ranges.length, out_iova_alignment: iommufdAlignment(ioas.space, st.platform) };
  if (c.num_iovas < ranges.length) return ctx.reject('INFO-015', 'EMSGSIZE', out);
  ctx.hit('INFO-016');
  return ctx.ok({ ...out, allowed_iovas: ranges.map((r) => ({ start: r.start, last: r.last })) });
}

/** IOMMU_IOAS_ALLOW_IOVAS (io_pagetable.c:iopt_set_allow_iova): IOAS-014..018, atomic. */
export function iommufdAllowIovas(st: State, ctx: StepContext, c: IommuIoasAllowIovasCmd): Outcome {
  ctx.hit('IOAS-014');
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  const ioas = st.get(c.ioas_id, 'ioas');
  if (!ioas) return ctx.reject('FD-006', 'ENOENT');
  for (let i = 0; i < c.iovas.length; i++) {
    const r = c.iovas[i]!;
    if (r.start >= r.last) return ctx.reject('IOAS-015', 'EINVAL');
    for (let j = 0; j < i; j++) {
      const q = c.iovas[j]!;
      if (q.start <= r.last && r.start <= q.last) return ctx.reject('IOAS-016', 'EINVAL');
    }
  }
  if (c.iovas.some((r) => ioas.space.reserved.intersects(r.start, r.last))) return ctx.reject('IOAS-017', 'EADDRINUSE');
  ioas.space.allowed.replace(c.iovas.map((r) => ({ start: r.start, last: r.last, owner: 'allow' })));
  ctx.hit('IOAS-018');
  return ctx.ok();
}

/** IOMMU_OPTION (main.c:iommufd_option): IOAS-022..029. */
export function iommufdOption(st: State, ctx: StepContext, c: IommuOptionCmd): Outcome {
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('IOAS-022', 'EOPNOTSUPP');
  if (c.option_id === OPTION.RLIMIT_MODE) {
    if (c.object_id !== 0) return ctx.reject('IOAS-028', 'EOPNOTSUPP');
    if (c.operation === OPTION.OP_GET) {
      ctx.hit('IOAS-028');
      return ctx.ok({ val64: st.rlimitMode });
    }
    if (c.operation !== OPTION.OP_SET) return ctx.reject('IOAS-028', 'EOPNOTSUPP');
    // The model runs as a privileged caller (CAP_SYS_RESOURCE), as the Linux lane does.
    if (st.objects.size > 0) return ctx.reject('IOAS-029', 'EBUSY');
    if (c.val64 > 1n) return ctx.reject('IOAS-029', 'EINVAL');
    st.rlimitMode = c.val64;
    ctx.hit('IOAS-029');
    return ctx.ok({ val64: c.val64 });
  }
  if (c.option_id !== OPTION.HUGE_PAGES) return ctx.reject('IOAS-022', 'EOPNOTSUPP');
  const ioas = st.get(c.object_id, 'ioas');
  if (!ioas) return ctx.reject('IOAS-023', 'ENOENT');
  const space = ioas.space;
  if (c.operation === OPTION.OP_GET) {
    ctx.hit('IOAS-023');
    return ctx.ok({ val64: space.hugePages ? 1n : 0n });
  }
  if (c.operation !== OPTION.OP_SET) return ctx.reject('IOAS-023', 'EOPNOTSUPP');
  if (c.val64 === 1n) {
    space.hugePages = true;
    return ctx.ok({ val64: c.val64 });
  }
  if (c.val64 !== 0n) return ctx.reject('IOAS-027', 'EINVAL');
  if (!space.hugePages) return ctx.ok({ val64: c.val64 });
  if (space.domains > 0 && space.areas.size > 0) return ctx.reject('IOAS-025', 'EINVAL');
  const page = BigInt(st.platform.limits.pageSize);
  for (const a of space.areas.all())
    if (a.iova % page !== 0n || (a.last + 1n) % page !== 0n || a.va % page !== 0n)
      return ctx.reject('IOAS-026', 'EADDRINUSE');
  space.hugePages = false;
  ctx.hit('IOAS-024');
  return ctx.ok({ val64: c.val64 });
}

/** IOMMU_VFIO_IOAS (vfio_compat.c:iommufd_vfio_ioas): IOAS-030..032. */
export function iommufdVfioIoas(st: State, ctx: StepContext, c: IommuVfioIoasCmd): Outcome {
  if ((c.__reserved ?? 0) !== 0) return ctx.reject('IOAS-031', 'EOPNOTSUPP');
  switch (c.operation) {
    case VFIO_IOAS_OP.GET:
      if (st.vfioIoas === 0 || !st.get(st.vfioIoas, 'ioas')) return ctx.reject('IOAS-030', 'ENODEV');
      ctx.hit('IOAS-030');
      return ctx.ok({ ioas_id: st.vfioIoas });
    case VFIO_IOAS_OP.SET:
      if (!st.get(c.ioas_id, 'ioas')) return ctx.reject('IOAS-030', 'ENOENT');
      st.vfioIoas = c.ioas_id;
      ctx.hit('IOAS-030');
      return ctx.ok();
    case VFIO_IOAS_OP.CLEAR:
      st.vfioIoas = 0;
      ctx.hit('IOAS-030');
      return ctx.ok();
    default:
      return ctx.reject('IOAS-031', 'EOPNOTSUPP');
  }
}

/**
 * Whether a new domain (HWPT_PAGING) can join an IOAS (io_pagetable.c:iopt_table_add_domain), in the kernel's
 * order: areas must meet its alignment, user page offset included (IOAS-035, EADDRINUSE), areas and allowed
 * ranges must lie inside its aperture (IOAS-020), and a first domain
 * must be able to pin them (EFAULT, MEM-013) within RLIMIT_MEMLOCK (ENOMEM, MEM-014). Returns the error outcome, or
 * undefined when it can.
 */
export function domainCannotJoin(st: State, ctx: StepContext, space: Space): Outcome | undefined {
  // IOAS-035: the new alignment first (iopt_check_iova_alignment): IOVA, length and the user page offset.
  const m = iommufdAlignment({ ...space, domains: 1 } as Space, st.platform);
  const page = BigInt(st.platform.limits.pageSize);
  ctx.hit('IOAS-035');
  for (const a of space.areas.all())
    if (a.iova % m !== 0n || (a.last + 1n) % m !== 0n || (a.va % page) % m !== 0n)
      return ctx.reject('IOAS-035', 'EADDRINUSE');
  const aperture = outsideAperture(st, 'pending');
  if (
    aperture.some(
      (r) => space.areas.firstIntersecting(r.start, r.last) !== undefined || space.allowed.intersects(r.start, r.last),
    )
  )
    return ctx.reject('IOAS-020', 'EADDRINUSE');
  return domainPinRefused(st, ctx, space);
}

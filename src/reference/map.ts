/**
 * Chapter MAP — mapping: MAP, UNMAP and COPY in every profile (spec/chapters/MAP.md).
 *
 * The profiles share the area mechanics (core/areas.ts, core/placement.ts); what differs — the order of checks,
 * the errno of a bisecting unmap, what an unmap of nothing returns — is spelt out per profile below, each line
 * naming its clause.
 *
 * @module
 */
import { userVa } from './args.ts';
import type { Outcome } from './commands.ts';
import { IOAS_MAP, RFC_MAP, RFC_UNMAP, VFIO_DMA_MAP, VFIO_DMA_UNMAP } from './commands.ts';
import type { Area } from './core/areas.ts';
import { PROT } from './core/areas.ts';
import type { StepContext } from './core/context.ts';
import {
  addArea,
  autoIovaAlignment,
  findAutoIova,
  iommufdAlignment,
  locateUserVa,
  makeArea,
  minPageSize,
  removeArea,
  userMemoryValid,
  validAutoIova,
} from './core/placement.ts';
import type {
  IommuIoasCopyCmd,
  IommuIoasMapCmd,
  IommuIoasUnmapCmd,
  IoasidMapDmaCmd,
  IoasidUnmapDmaCmd,
  VfioIommuMapDmaCmd,
  VfioIommuUnmapDmaCmd,
} from './resolved.ts';
import type { Space, State } from './state.ts';
import { U64_MAX } from './u64.ts';
import { rfcKernelIoasid } from './ioas.ts';
import { iommufdOverLimit, iommufdPin, iommufdPinCost, iommufdUnpin, memMap, memUnmap, memUnmapSpace } from './mem.ts';
import { rfcChildMap, softwareChild } from './nesting.ts';

const PAGE = (st: State) => BigInt(st.platform.limits.pageSize);

/** Pins the user memory of a new area when the space has a domain: EFAULT when it is not the process's. */
function pinFails(st: State, buf: number, off: bigint, length: bigint): boolean {
  return !userMemoryValid(st.platform, buf, off, length);
}

// ------------------------------------------------------------------------------------------------ iommufd

/** IOMMU_IOAS_MAP (io_pagetable.c:iopt_map_user_pages), checks in the order of MAP-014..MAP-017, MAP-025. */
export function iommufdMap(st: State, ctx: StepContext, c: IommuIoasMapCmd): Outcome {
  const known = IOAS_MAP.FIXED_IOVA | IOAS_MAP.WRITEABLE | IOAS_MAP.READABLE;
  if ((c.flags & ~known) !== 0 || (c.__reserved ?? 0) !== 0) return ctx.reject('MAP-014', 'EOPNOTSUPP');
  if (c.iova >= U64_MAX || c.length >= U64_MAX) return ctx.reject('MAP-012', 'EOVERFLOW');
  ctx.hit('MAP-015');
  if ((c.flags & (IOAS_MAP.WRITEABLE | IOAS_MAP.READABLE)) === 0) return ctx.reject('MAP-003', 'EINVAL');
  const ioas = st.get(c.ioas_id, 'ioas');
  if (!ioas) return ctx.reject('FD-006', 'ENOENT');
  const space = ioas.space;
  const page = PAGE(st);
  ctx.hit('MAP-016');
  if (c.length === 0n) return ctx.reject('MAP-004', 'EINVAL');
  if (c.length > U64_MAX - page) return ctx.reject('MAP-016', 'EINVAL');
  const va = userVa(c.user_va);
  if (va + c.length - 1n > U64_MAX) return ctx.reject('MAP-011', 'EOVERFLOW');
  const align = iommufdAlignment(space, st.platform);
  if (c.length % align !== 0n) return ctx.reject('MAP-006', 'EINVAL');
  let iova: bigint;
  if ((c.flags & IOAS_MAP.FIXED_IOVA) === 0) {
    const r = placeAuto(st, ctx, space, c.length, va, align);
    if (typeof r !== 'bigint') return r;
    iova = r;
  } else {
    ctx.hit('MAP-017');
    if (c.iova % align !== 0n) return ctx.reject('MAP-006', 'EINVAL');
    if (c.iova + c.length - 1n > U64_MAX) return ctx.reject('MAP-011', 'EOVERFLOW');
    if (c.iova + c.length - 1n === U64_MAX) ctx.hit('MAP-013');
    if (space.reserved.intersects(c.iova, c.iova + c.length - 1n)) return ctx.reject('MAP-009', 'EINVAL');
    if (space.areas.firstIntersecting(c.iova, c.iova + c.length - 1n)) return ctx.reject('MAP-002', 'EEXIST');
    if (
      space.allowed.list.length > 0 &&
      !space.allowed.list.some((r) => r.start <= c.iova && c.iova + c.length - 1n <= r.last)
    )
      ctx.hit('MAP-010');
    iova = c.iova;
  }
  if ((va % page) % align !== 0n) return ctx.reject('MAP-007', 'EINVAL');
  const loc = 'bad' in c.user_va ? { buf: -1, off: 0n } : { buf: c.user_va.buf, off: c.user_va.off };
  if (space.domains > 0 && pinFails(st, loc.buf, loc.off, c.length)) return ctx.reject('MAP-017', 'EFAULT');
  const prot =
    ((c.flags & IOAS_MAP.READABLE) !== 0 ? PROT.READ : 0) | ((c.flags & IOAS_MAP.WRITEABLE) !== 0 ? PROT.WRITE : 0);
  const area = makeArea(iova, c.length, va, loc.buf, loc.off, prot, st.nextPages);
  if (space.domains > 0) {
    // The domains are filled: the new pages object's pages are pinned and accounted (MEM-014).
    const over = iommufdOverLimit(st, ctx, iommufdPinCost(st, [area]));
    if (over) return over;
    iommufdPin(st, [area]);
  } else {
    // MEM-010: no domain, nothing pinned or accounted; MEM-013: a bad user address is not noticed until one joins.
    ctx.hit('MEM-010');
    if (pinFails(st, loc.buf, loc.off, c.length)) ctx.hit('MEM-013');
  }
  st.nextPages++;
  addArea(space, st.platform, area);
  ctx.hit('MAP-001');
  return ctx.ok({ iova });
}

/**
 * Automatic placement (MAP-020..MAP-025). With an observed implementation outcome the implementation's IOVA is
 * adopted when it obeys the clauses; otherwise the model picks iommufd's first fit.
 */
function placeAuto(
  st: State,
  ctx: StepContext,
  space: Space,
  length: bigint,
  va: bigint,
  align: bigint,
): bigint | Outcome {
  if (length >= U64_MAX / 2n) return ctx.reject('MAP-025', 'EOVERFLOW');
  const a = autoIovaAlignment(length, va);
  if (a < align) return ctx.reject('MAP-025', 'EINVAL');
  const page = PAGE(st);
  const pageOffset = va % page;
  const found = findAutoIova(space, length, a, pageOffset, page);
  if (found === undefined) return ctx.reject('MAP-024', 'ENOSPC');
  ctx.hit('MAP-020');
  ctx.hit('MAP-021');
  ctx.hit('MAP-023');
  if (space.allowed.list.length > 0) ctx.hit('MAP-022');
  const seen = ctx.observedU64('iova');
  if (seen !== undefined && seen !== found) {
    const broken = validAutoIova(space, seen, length, a, pageOffset, page);
    if (broken !== undefined)
      ctx.violate(broken, `automatic IOVA 0x${seen.toString(16)} for ${length} bytes breaks ${broken}`);
    else return seen;
  }
  return found;
}

/** IOMMU_IOAS_UNMAP (io_pagetable.c:iopt_unmap_iova / iopt_unmap_all), MAP-035, MAP-036, MAP-040. */
export function iommufdUnmap(st: State, ctx: StepContext, c: IommuIoasUnmapCmd): Outcome {
  const ioas = st.get(c.ioas_id, 'ioas');
  if (!ioas) return ctx.reject('MAP-036', 'ENOENT');
  const space = ioas.space;
  if (c.iova === 0n && c.length === U64_MAX) return ctx.ok({ length: unmapAll(st, ctx, space) });
  if (c.iova >= U64_MAX || c.length >= U64_MAX) return ctx.reject('MAP-035', 'EOVERFLOW');
  if (c.length === 0n) return ctx.reject('MAP-033', 'EINVAL');
  if (c.iova + c.length - 1n > U64_MAX) return ctx.reject('MAP-034', 'EOVERFLOW');
  const last = c.iova + c.length - 1n;
  ctx.hit('MAP-038');
  let unmapped = 0n;
  // The walk removes whole areas in ascending order and stops at the first it would bisect (MAP-040).
  for (let a = space.areas.firstIntersecting(c.iova, last); a !== undefined && a.iova <= last;) {
    if (a.iova < c.iova) return ctx.reject(unmapped > 0n ? 'MAP-040' : 'MAP-026', 'ENOENT');
    if (a.last > last) return ctx.reject(unmapped > 0n ? 'MAP-040' : 'MAP-027', 'ENOENT');
    const next = space.areas.after(a);
    if (space.domains > 0) iommufdUnpin(st, [a]);
    removeArea(space, st.platform, a);
    unmapped += a.last - a.iova + 1n;
    a = next;
  }
  if (unmapped === 0n) return ctx.reject('MAP-030', 'ENOENT');
  ctx.hit('MAP-028');
  ctx.hit('MAP-029');
  if (last === U64_MAX) ctx.hit('MAP-042');
  return ctx.ok({ length: unmapped });
}

/** Removes every area of a space and returns the bytes removed (MAP-031), unpinning iommufd's pages (MEM-010). */
export function unmapAll(st: State, ctx: StepContext, space: Space): bigint {
  let total = 0n;
  for (const a of [...space.areas.all()]) {
    total += a.last - a.iova + 1n;
    if (st.profile === 'iommufd' && space.domains > 0) iommufdUnpin(st, [a]);
    removeArea(space, st.platform, a);
  }
  ctx.hit('MAP-031');
  return total;
}

/** IOMMU_IOAS_COPY (ioas.c:iommufd_ioas_copy), checks in the order of MAP-050. */
export function iommufdCopy(st: State, ctx: StepContext, c: IommuIoasCopyCmd): Outcome {
  const known = IOAS_MAP.FIXED_IOVA | IOAS_MAP.WRITEABLE | IOAS_MAP.READABLE;
  ctx.hit('MAP-050');
  if ((c.flags & ~known) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  if (c.length >= U64_MAX || c.src_iova >= U64_MAX || c.dst_iova >= U64_MAX) return ctx.reject('MAP-050', 'EOVERFLOW');
  if ((c.flags & (IOAS_MAP.WRITEABLE | IOAS_MAP.READABLE)) === 0) return ctx.reject('MAP-003', 'EINVAL');
  const src = st.get(c.src_ioas_id, 'ioas');
  if (!src) return ctx.reject('FD-006', 'ENOENT');
  if (c.length === 0n) return ctx.reject('MAP-004', 'EINVAL');
  if (c.src_iova + c.length - 1n > U64_MAX) return ctx.reject('MAP-050', 'EOVERFLOW');
  const srcLast = c.src_iova + c.length - 1n;
  // Source coverage by contiguous areas (iopt_get_pages): the segments to copy.
  const segments: { area: Area; from: bigint; to: bigint }[] = [];
  let expect = c.src_iova;
  for (let a = src.space.areas.containing(c.src_iova); ; a = src.space.areas.after(a)) {
    if (a === undefined || a.iova > expect) return ctx.reject('MAP-044', 'ENOENT');
    const to = a.last < srcLast ? a.last : srcLast;
    segments.push({ area: a, from: expect, to });
    if (to === srcLast) break;
    expect = to + 1n;
  }
  ctx.hit('MAP-043');
  const dst = st.get(c.dst_ioas_id, 'ioas');
  if (!dst) return ctx.reject('FD-006', 'ENOENT');
  if (dst === src) ctx.hit('MAP-048');
  ctx.hit('MAP-046');
  const space = dst.space;
  const page = PAGE(st);
  const first = segments[0]!;
  const va = first.area.va + (first.from - first.area.iova);
  const align = iommufdAlignment(space, st.platform);
  if (c.length % align !== 0n) return ctx.reject('MAP-006', 'EINVAL');
  let iova: bigint;
  if ((c.flags & IOAS_MAP.FIXED_IOVA) === 0) {
    const r = placeAuto(st, ctx, space, c.length, va, align);
    if (typeof r !== 'bigint') return r;
    iova = r;
  } else {
    if (c.dst_iova % align !== 0n) return ctx.reject('MAP-006', 'EINVAL');
    if (c.dst_iova + c.length - 1n > U64_MAX) return ctx.reject('MAP-011', 'EOVERFLOW');
    if (space.reserved.intersects(c.dst_iova, c.dst_iova + c.length - 1n)) return ctx.reject('MAP-009', 'EINVAL');
    if (space.areas.firstIntersecting(c.dst_iova, c.dst_iova + c.length - 1n)) return ctx.reject('MAP-002', 'EEXIST');
    iova = c.dst_iova;
  }
  if ((va % page) % align !== 0n) return ctx.reject('MAP-007', 'EINVAL');
  if ((c.flags & IOAS_MAP.WRITEABLE) !== 0 && segments.some((s) => (s.area.prot & PROT.WRITE) === 0))
    return ctx.reject('MAP-047', 'EPERM');
  if (
    space.domains > 0 &&
    segments.some((s) => pinFails(st, s.area.buf, s.area.off + (s.from - s.area.iova), s.to - s.from + 1n))
  )
    return ctx.reject('MAP-046', 'EFAULT');
  const prot =
    ((c.flags & IOAS_MAP.READABLE) !== 0 ? PROT.READ : 0) | ((c.flags & IOAS_MAP.WRITEABLE) !== 0 ? PROT.WRITE : 0);
  const areas = segments.map((s) => {
    const delta = s.from - s.area.iova;
    return makeArea(
      iova + (s.from - c.src_iova),
      s.to - s.from + 1n,
      s.area.va + delta,
      s.area.buf,
      s.area.off + delta,
      prot,
      s.area.pages,
    );
  });
  if (space.domains > 0) {
    // MEM-011: the new areas share their source's pages objects; only pages none of them has pinned yet are pinned
    // and accounted (none when the source lies in an IOAS with a domain).
    const cost = iommufdPinCost(st, areas);
    const over = iommufdOverLimit(st, ctx, cost);
    if (over) return over;
    if (cost === 0n) ctx.hit('MEM-011');
    iommufdPin(st, areas);
  } else ctx.hit('MEM-010');
  for (const a of areas) addArea(space, st.platform, a);
  ctx.hit('MAP-045');
  ctx.hit('MAP-049');
  return ctx.ok({ dst_iova: iova });
}

// ------------------------------------------------------------------------------------------------ vfio-type1

/** VFIO_IOMMU_MAP_DMA (vfio_iommu_type1.c:vfio_dma_do_map), checks in the order of MAP-018. */
export function type1Map(st: State, ctx: StepContext, c: VfioIommuMapDmaCmd): Outcome {
  const ct = st.container;
  if (ct.iommuType === 0) return ctx.reject('DEV-029', 'EINVAL');
  ctx.hit('MAP-018');
  if ((c.argsz ?? 32) < 32) return ctx.reject('FD-025', 'EINVAL');
  const known = VFIO_DMA_MAP.READ | VFIO_DMA_MAP.WRITE | VFIO_DMA_MAP.VADDR;
  if ((c.flags & ~known) !== 0) return ctx.reject('FD-030', 'EINVAL');
  const rw = c.flags & (VFIO_DMA_MAP.READ | VFIO_DMA_MAP.WRITE);
  const vaddrFlag = (c.flags & VFIO_DMA_MAP.VADDR) !== 0;
  if (vaddrFlag ? rw !== 0 : rw === 0) return ctx.reject('MAP-003', 'EINVAL');
  const pg = minPageSize(st.platform);
  const va = userVa(c.vaddr);
  if (c.size === 0n) return ctx.reject('MAP-004', 'EINVAL');
  if (c.size % pg !== 0n || c.iova % pg !== 0n || va % pg !== 0n) return ctx.reject('MAP-005', 'EINVAL');
  // The wrap checks are u64 arithmetic: iova + size - 1 < iova.
  if (c.iova + c.size - 1n > U64_MAX || va + c.size - 1n > U64_MAX) return ctx.reject('MAP-011', 'EINVAL');
  const last = c.iova + c.size - 1n;
  if (vaddrFlag) {
    // Updating a vaddr needs a mapping invalidated with VFIO_DMA_UNMAP_FLAG_VADDR, which traces never create.
    return ctx.reject('MAP-018', ct.space.areas.firstIntersecting(c.iova, last) ? 'EINVAL' : 'ENOENT');
  }
  if (ct.space.areas.firstIntersecting(c.iova, last)) return ctx.reject('MAP-002', 'EEXIST');
  if (ct.dmaAvail === 0) return ctx.reject('MEM-015', 'ENOSPC');
  if (ct.space.reserved.intersects(c.iova, last)) return ctx.reject('MAP-008', 'EINVAL');
  if (last === U64_MAX) ctx.hit('MAP-013');
  const loc = 'bad' in c.vaddr ? { buf: -1, off: 0n } : { buf: c.vaddr.buf, off: c.vaddr.off };
  // MEM-010: a container with an IOMMU model has a domain here (the model's groups are physical; mdev-only
  // containers, which record the mapping unpinned, are not modelled), so MAP pins at once.
  ctx.hit('MEM-010');
  if (pinFails(st, loc.buf, loc.off, c.size)) return ctx.reject('MAP-018', 'EFAULT');
  const prot =
    ((c.flags & VFIO_DMA_MAP.READ) !== 0 ? PROT.READ : 0) | ((c.flags & VFIO_DMA_MAP.WRITE) !== 0 ? PROT.WRITE : 0);
  addArea(ct.space, st.platform, makeArea(c.iova, c.size, va, loc.buf, loc.off, prot, st.nextPages++));
  ct.dmaAvail--;
  ctx.hit('MAP-001');
  return ctx.ok();
}

/** VFIO_IOMMU_UNMAP_DMA (vfio_iommu_type1.c:vfio_dma_do_unmap), v1 and v2 rules. */
export function type1Unmap(st: State, ctx: StepContext, c: VfioIommuUnmapDmaCmd): Outcome {
  const ct = st.container;
  if (ct.iommuType === 0) return ctx.reject('DEV-029', 'EINVAL');
  if ((c.argsz ?? 24) < 24) return ctx.reject('FD-025', 'EINVAL');
  const known = VFIO_DMA_UNMAP.GET_DIRTY_BITMAP | VFIO_DMA_UNMAP.ALL | VFIO_DMA_UNMAP.VADDR;
  if ((c.flags & ~known) !== 0) return ctx.reject('FD-030', 'EINVAL');
  const dirty = (c.flags & VFIO_DMA_UNMAP.GET_DIRTY_BITMAP) !== 0;
  const all = (c.flags & VFIO_DMA_UNMAP.ALL) !== 0;
  if (dirty && (all || (c.flags & VFIO_DMA_UNMAP.VADDR) !== 0)) return ctx.reject('FD-030', 'EINVAL');
  const pg = minPageSize(st.platform);
  if (c.iova % pg !== 0n) return ctx.reject('MAP-037', 'EINVAL');
  let size = c.size;
  if (all) {
    if (c.iova !== 0n || c.size !== 0n) return ctx.reject('MAP-032', 'EINVAL');
    size = U64_MAX;
  } else {
    if (size === 0n) return ctx.reject('MAP-033', 'EINVAL');
    if (size % pg !== 0n) return ctx.reject('MAP-037', 'EINVAL');
    if (c.iova + size - 1n > U64_MAX) return ctx.reject('MAP-034', 'EINVAL');
  }
  // Dirty tracking is never started by traces, so a GET_DIRTY_BITMAP unmap is refused here.
  if (dirty) return ctx.reject('MAP-039', 'EINVAL');
  if ((c.flags & VFIO_DMA_UNMAP.VADDR) !== 0) {
    // VFIO_DMA_UNMAP_FLAG_VADDR invalidates vaddrs without unmapping; the model does not offer vaddr updates.
    return ctx.reject('MAP-039', 'EINVAL');
  }
  const v2 = ct.iommuType !== 1;
  // u64 arithmetic: end = iova + size wraps to 0 when the range ends at U64_MAX (MAP-042).
  const end = (c.iova + size) & U64_MAX;
  if (v2 && !all) {
    const atStart = ct.space.areas.containing(c.iova);
    if (atStart && atStart.iova !== c.iova) return ctx.reject('MAP-026', 'EINVAL');
    const lastByte = c.iova + size - 1n;
    const atEnd = ct.space.areas.containing(lastByte);
    // vfio_find_dma(iommu, iova + size - 1, 0) does not find a mapping that starts exactly at that byte.
    if (atEnd && atEnd.iova !== lastByte && atEnd.last !== lastByte) return ctx.reject('MAP-027', 'EINVAL');
  }
  let unmapped = 0n;
  for (let a = ct.space.areas.firstIntersecting(c.iova, c.iova + size - 1n); a !== undefined;) {
    if (a.iova >= end) break;
    if (!v2 && c.iova > a.iova) {
      ctx.hit('MAP-026');
      break;
    }
    if (!v2 && a.last > c.iova + size - 1n) ctx.hit('MAP-027');
    const next = ct.space.areas.after(a);
    removeArea(ct.space, st.platform, a);
    ct.dmaAvail++;
    unmapped += a.last - a.iova + 1n;
    a = next;
  }
  if (all) ctx.hit('MAP-031');
  else if (unmapped === 0n) ctx.hit('MAP-030');
  else ctx.hit('MAP-028');
  if (c.iova + size - 1n === U64_MAX) ctx.hit('MAP-042');
  ctx.hit('MAP-029');
  return ctx.ok({ size: unmapped });
}

// ------------------------------------------------------------------------------------------------ rfc

/** IOASID_MAP_DMA: type1 v2 semantics on a kernel-managed, ready IOASID, checks in the order of MAP-019. */
export function rfcMap(st: State, ctx: StepContext, c: IoasidMapDmaCmd): Outcome {
  // A software-nesting child maps parent IOVAs (NEST-007, nesting.ts).
  if (softwareChild(st, c.ioasid)) return rfcChildMap(st, ctx, c);
  const got = rfcKernelIoasid(st, ctx, c.ioasid);
  if (!('space' in got)) return got;
  const space = got.space;
  const args = rfcMapArgs(st, ctx, c, space);
  if ('ok' in args) return args;
  const { from: va, prot } = args;
  if (args.last === U64_MAX) ctx.hit('MAP-013');
  const loc = locateUserVa(st.platform, va);
  // Registered memory, or pin (EFAULT) and account (ENOMEM) the pages (MEM-003, MEM-014, mem.ts).
  const pages = memMap(st, ctx, va, c.size, () => pinFails(st, loc.buf, loc.off, c.size));
  if (typeof pages !== 'number') return pages;
  addArea(space, st.platform, makeArea(c.iova, c.size, va, loc.buf, loc.off, prot, pages));
  ctx.hit('MAP-001');
  return ctx.ok();
}

/**
 * The argument checks of IOASID_MAP_DMA after the IOASID lookup, in the order of MAP-019, shared by kernel-managed
 * IOASIDs and software-nesting children (nesting.ts): the source address (a user VA, or a parent IOVA on a child),
 * the mapping's last IOVA and its protection, or the error.
 */
export function rfcMapArgs(
  st: State,
  ctx: StepContext,
  c: IoasidMapDmaCmd,
  space: Space,
): Outcome | { from: bigint; last: bigint; prot: number } {
  ctx.hit('MAP-019');
  if ((c.flags & ~(RFC_MAP.READ | RFC_MAP.WRITE)) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  if ((c.flags & (RFC_MAP.READ | RFC_MAP.WRITE)) === 0) return ctx.reject('MAP-003', 'EINVAL');
  if (c.size === 0n) return ctx.reject('MAP-004', 'EINVAL');
  const pg = minPageSize(st.platform);
  const from = 'iova' in c.vaddr ? c.vaddr.iova : userVa(c.vaddr);
  if (c.size % pg !== 0n || c.iova % pg !== 0n || from % pg !== 0n) return ctx.reject('MAP-005', 'EINVAL');
  if (c.iova + c.size - 1n > U64_MAX || from + c.size - 1n > U64_MAX) return ctx.reject('MAP-011', 'EOVERFLOW');
  const last = c.iova + c.size - 1n;
  if (space.areas.firstIntersecting(c.iova, last)) return ctx.reject('MAP-002', 'EEXIST');
  if (space.reserved.intersects(c.iova, last)) return ctx.reject('MAP-008', 'EINVAL');
  const prot = ((c.flags & RFC_MAP.READ) !== 0 ? PROT.READ : 0) | ((c.flags & RFC_MAP.WRITE) !== 0 ? PROT.WRITE : 0);
  return { from, last, prot };
}

/** IOASID_UNMAP_DMA: whole mappings only; a failed unmap removes nothing (MAP-039). */
export function rfcUnmap(st: State, ctx: StepContext, c: IoasidUnmapDmaCmd): Outcome {
  const got = rfcKernelIoasid(st, ctx, c.ioasid);
  if (!('space' in got)) return got;
  const space = got.space;
  if ((c.flags & ~RFC_UNMAP.ALL) !== 0) return ctx.reject('FD-030', 'EOPNOTSUPP');
  if ((c.flags & RFC_UNMAP.ALL) !== 0) {
    if (c.iova !== 0n || c.size !== 0n) return ctx.reject('MAP-032', 'EINVAL');
    memUnmapSpace(st, space);
    return ctx.ok({ size: unmapAll(st, ctx, space) });
  }
  if (c.size === 0n) return ctx.reject('MAP-033', 'EINVAL');
  const pg = minPageSize(st.platform);
  if (c.iova % pg !== 0n || c.size % pg !== 0n) return ctx.reject('MAP-037', 'EINVAL');
  if (c.iova + c.size - 1n > U64_MAX) return ctx.reject('MAP-034', 'EOVERFLOW');
  const last = c.iova + c.size - 1n;
  const first = space.areas.containing(c.iova);
  if (first && first.iova !== c.iova) return ctx.reject('MAP-026', 'EINVAL');
  const end = space.areas.containing(last);
  if (end && end.last !== last) return ctx.reject('MAP-027', 'EINVAL');
  ctx.hit('MAP-039');
  const victims = [...space.areas.intersecting(c.iova, last)];
  let unmapped = 0n;
  for (const a of victims) {
    memUnmap(st, a);
    removeArea(space, st.platform, a);
    unmapped += a.last - a.iova + 1n;
  }
  ctx.hit(victims.length === 0 ? 'MAP-030' : 'MAP-028');
  if (last === U64_MAX) ctx.hit('MAP-042');
  ctx.hit('MAP-029');
  return ctx.ok({ size: unmapped });
}

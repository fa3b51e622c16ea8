/**
 * Chapter MEM — pre-registration, pinning and accounting (spec/chapters/MEM.md).
 *
 * rfc: IOASID_REGISTER_MEMORY, IOASID_UNREGISTER_MEMORY, and the accounting of the pages IOASID_MAP_DMA pins, so
 * that at every step the pages accounted equal the live registrations plus the mappings of unregistered memory
 * (MEM-016).
 *
 * iommufd: pages are pinned only while an area of them lies in an IOAS with a domain (MEM-010, pages.c:
 * iopt_area_fill_domains), each page of a pages object once however many areas share it through COPY (MEM-011), and
 * accounted against RLIMIT_MEMLOCK (MEM-014); a bad user address surfaces when a domain is added (MEM-013).
 *
 * Not for: vfio-type1 accounting, and not for software-nesting children, whose mappings reuse the parent's pins
 * (MEM-008, handled in `nesting.ts`).
 *
 * @module
 */
import { userVa } from './args.ts';
import type { Outcome } from './commands.ts';
import type { Area } from './core/areas.ts';
import type { StepContext } from './core/context.ts';
import { userMemoryValid } from './core/placement.ts';
import type { IoasidRegisterMemoryCmd, IoasidUnregisterMemoryCmd } from './resolved.ts';
import type { Registration } from './rfc-state.ts';
import type { Space, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** CPU pages of `[va, va + size)` (size a multiple of PAGE_SIZE, or rounded up). */
function pagesOf(st: State, size: bigint): bigint {
  const page = BigInt(st.platform.limits.pageSize);
  return (size + page - 1n) / page;
}

/** Whether accounting `pages` more would exceed RLIMIT_MEMLOCK (null: CAP_IPC_LOCK, unlimited). */
function overLimit(st: State, pages: bigint): boolean {
  const limit = st.platform.limits.memlockPages;
  return limit !== null && st.rfcx.locked + pages > BigInt(limit);
}

/** The registrations intersecting `[va, last]`, ascending. */
function regsIn(st: State, va: bigint, last: bigint): Registration[] {
  return st.rfcx.regs.filter((r) => r.va <= last && va <= r.last);
}

/** Whether `[va, last]` is covered by the union of the registrations (adjacent ones may be spanned, MEM-003). */
export function registered(st: State, va: bigint, last: bigint): boolean {
  let cursor = va;
  for (const r of regsIn(st, va, last)) {
    if (r.va > cursor) return false;
    if (r.last >= last) return true;
    cursor = r.last + 1n;
  }
  return false;
}

/** IOASID_REGISTER_MEMORY: pins and accounts a range once for the whole fd (MEM-001). */
export function rfcRegisterMemory(st: State, ctx: StepContext, c: IoasidRegisterMemoryCmd): Outcome {
  if (!st.features.has('prereg')) return ctx.reject('MEM-017', 'EOPNOTSUPP');
  const page = BigInt(st.platform.limits.pageSize);
  const va = userVa(c.vaddr);
  if (c.size === 0n || va % page !== 0n || c.size % page !== 0n) return ctx.reject('MEM-007', 'EINVAL');
  if (va + c.size - 1n > U64_MAX) return ctx.reject('MEM-007', 'EINVAL');
  const last = va + c.size - 1n;
  if (regsIn(st, va, last).length > 0) return ctx.reject('MEM-004', 'EEXIST');
  const loc = 'bad' in c.vaddr ? { buf: -1, off: 0n } : c.vaddr;
  if (!userMemoryValid(st.platform, loc.buf, loc.off, c.size)) return ctx.reject('MEM-018', 'EFAULT');
  const pages = pagesOf(st, c.size);
  if (overLimit(st, pages)) return ctx.reject('MEM-002', 'ENOMEM');
  const x = st.rfcx;
  x.regs = [...x.regs, { va, last, buf: loc.buf, off: loc.off }].sort((a, b) => (a.va < b.va ? -1 : 1));
  x.regUsers.set(va, 0);
  x.locked += pages;
  ctx.hit('MEM-001');
  ctx.hit('MEM-016');
  return ctx.ok();
}

/** IOASID_UNREGISTER_MEMORY: removes exactly one unused registration and its accounting (MEM-005, MEM-006). */
export function rfcUnregisterMemory(st: State, ctx: StepContext, c: IoasidUnregisterMemoryCmd): Outcome {
  if (!st.features.has('prereg')) return ctx.reject('MEM-017', 'EOPNOTSUPP');
  const va = userVa(c.vaddr);
  const x = st.rfcx;
  const r = x.regs.find((g) => g.va === va && g.last - g.va + 1n === c.size);
  if (r === undefined) return ctx.reject('MEM-005', 'ENOENT');
  if ((x.regUsers.get(r.va) ?? 0) > 0) return ctx.reject('MEM-006', 'EBUSY');
  x.regs = x.regs.filter((g) => g !== r);
  x.regUsers.delete(r.va);
  x.locked -= pagesOf(st, c.size);
  ctx.hit('MEM-005');
  ctx.hit('MEM-016');
  return ctx.ok();
}

/**
 * The pin of a new mapping of user memory `[va, va + size)` on a kernel-managed IOASID made by IOASID_ALLOC, after
 * the overlap and permitted-range checks (MAP-019): while registrations exist the range must lie in them (MEM-003,
 * EINVAL) and nothing more is accounted (MEM-001); otherwise the pages are pinned (`pinFails`: EFAULT, MAP-019) and
 * accounted against RLIMIT_MEMLOCK (MEM-014, ENOMEM), once per mapping (MEM-009, MEM-012). Returns the pages-object
 * ID the new area must carry, or the error outcome.
 */
export function memMap(
  st: State,
  ctx: StepContext,
  va: bigint,
  size: bigint,
  pinFails: () => boolean,
): number | Outcome {
  const x = st.rfcx;
  const last = va + size - 1n;
  if (x.regs.length > 0) {
    if (!registered(st, va, last)) return ctx.reject('MEM-003', 'EINVAL');
    const id = st.nextPages++;
    for (const r of regsIn(st, va, last)) x.regUsers.set(r.va, (x.regUsers.get(r.va) ?? 0) + 1);
    x.pins.set(id, { pages: 0n, va, last, registered: true });
    ctx.hit('MEM-001');
    ctx.hit('MEM-016');
    return id;
  }
  if (pinFails()) return ctx.reject('MAP-019', 'EFAULT');
  const pages = pagesOf(st, size);
  if (overLimit(st, pages)) return ctx.reject('MEM-014', 'ENOMEM');
  const id = st.nextPages++;
  x.pins.set(id, { pages, va, last, registered: false });
  x.locked += pages;
  ctx.hit('MEM-009');
  ctx.hit('MEM-012');
  ctx.hit('MEM-016');
  return id;
}

/** Releases the pin of an area an rfc UNMAP or FREE removes (MEM-016). Areas without a pin (children) are ignored. */
export function memUnmap(st: State, a: Area): void {
  const x = st.rfcx;
  const pin = x.pins.get(a.pages);
  if (pin === undefined) return;
  x.pins.delete(a.pages);
  if (pin.registered) {
    for (const r of regsIn(st, pin.va, pin.last)) x.regUsers.set(r.va, (x.regUsers.get(r.va) ?? 1) - 1);
  } else x.locked -= pin.pages;
}

/** Releases the pins of every area of a space (unmap-all, IOASID_FREE). */
export function memUnmapSpace(st: State, space: Space): void {
  for (const a of space.areas.all()) memUnmap(st, a);
}

// ------------------------------------------------------------------------------------------------ iommufd

/** The CPU pages (first and last page index) the user memory of an area spans. */
function spanOf(st: State, a: Area): { first: bigint; last: bigint } {
  const page = BigInt(st.platform.limits.pageSize);
  return { first: a.va / page, last: (a.va + (a.last - a.iova)) / page };
}

/** The number of distinct pages in a union of page spans. */
function distinctPages(spans: readonly { first: bigint; last: bigint }[]): bigint {
  const sorted = [...spans].sort((x, y) => (x.first < y.first ? -1 : x.first > y.first ? 1 : 0));
  let total = 0n;
  let end = -1n;
  for (const s of sorted) {
    const from = s.first > end ? s.first : end + 1n;
    if (s.last >= from) total += s.last - from + 1n;
    if (s.last > end) end = s.last;
  }
  return total;
}

/**
 * The pages iommufd would pin and account anew to give `areas` a domain: per pages object, the pages its areas add
 * to those it already has pinned (0 for the pages a COPY shares with a pinned source, MEM-011).
 */
export function iommufdPinCost(st: State, areas: Iterable<Area>): bigint {
  const added = new Map<number, { first: bigint; last: bigint }[]>();
  for (const a of areas) {
    const l = added.get(a.pages);
    if (l === undefined) added.set(a.pages, [spanOf(st, a)]);
    else l.push(spanOf(st, a));
  }
  let cost = 0n;
  for (const [pages, spans] of added) {
    const held = st.iopins.get(pages) ?? [];
    cost += distinctPages([...held, ...spans]) - distinctPages(held);
  }
  return cost;
}

/**
 * The accounting check of iommufd pinning (pages.c:incr_user_locked_vm): ENOMEM (MEM-014) when `cost` more pages
 * would exceed RLIMIT_MEMLOCK; undefined when they fit. A process with CAP_IPC_LOCK (memlockPages null) is not
 * limited.
 */
export function iommufdOverLimit(st: State, ctx: StepContext, cost: bigint): Outcome | undefined {
  const limit = st.platform.limits.memlockPages;
  if (limit !== null && st.iopinned + cost > BigInt(limit)) return ctx.reject('MEM-014', 'ENOMEM');
  if (limit !== null) ctx.hit('MEM-014');
  return undefined;
}

/** Pins the pages of areas that joined a domain (a MAP or COPY into an IOAS with one, or a first domain). */
export function iommufdPin(st: State, areas: Iterable<Area>): void {
  for (const a of areas) {
    const held = st.iopins.get(a.pages) ?? [];
    const next = [...held, spanOf(st, a)];
    st.iopinned += distinctPages(next) - distinctPages(held);
    st.iopins.set(a.pages, next);
  }
}

/** Unpins the pages of areas that left every domain (an UNMAP, a destroyed IOAS, the last domain gone). */
export function iommufdUnpin(st: State, areas: Iterable<Area>): void {
  for (const a of areas) {
    const held = st.iopins.get(a.pages);
    if (held === undefined) continue;
    const span = spanOf(st, a);
    const i = held.findIndex((x) => x.first === span.first && x.last === span.last);
    if (i < 0) continue;
    const next = [...held.slice(0, i), ...held.slice(i + 1)];
    st.iopinned -= distinctPages(held) - distinctPages(next);
    if (next.length === 0) st.iopins.delete(a.pages);
    else st.iopins.set(a.pages, next);
  }
}

/**
 * A domain joins an IOAS (HWPT_ALLOC of a paging HWPT, an attach that creates one): the first domain pins every
 * area (MEM-010; the caller checked EFAULT and ENOMEM with {@link domainPinRefused}).
 */
export function iommufdDomainAdded(st: State, space: Space): void {
  if (space.domains === 0) iommufdPin(st, space.areas.all());
  space.domains++;
}

/** A domain leaves an IOAS: with the last one gone nothing needs the pages, which are unpinned (MEM-010). */
export function iommufdDomainRemoved(st: State, space: Space): void {
  space.domains--;
  if (space.domains === 0) iommufdUnpin(st, space.areas.all());
}

/**
 * Whether the first domain of an IOAS cannot pin its areas (io_pagetable.c:iopt_table_add_domain →
 * iopt_fill_domain): a user address that is not the process's gives EFAULT (MEM-013, accepted by MAP while the IOAS
 * had no domain), then accounting beyond RLIMIT_MEMLOCK gives ENOMEM (MEM-014). Later domains find the pages pinned.
 */
export function domainPinRefused(st: State, ctx: StepContext, space: Space): Outcome | undefined {
  if (space.domains > 0) return undefined;
  if (space.badAreas > 0) return ctx.reject('MEM-013', 'EFAULT');
  if (space.areas.size > 0) ctx.hit('MEM-010');
  return iommufdOverLimit(st, ctx, iommufdPinCost(st, space.areas.all()));
}

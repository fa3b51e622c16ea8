/**
 * Chapter MEM, rfc profile — pre-registration, pinning and accounting (spec/chapters/MEM.md): IOASID_REGISTER_MEMORY,
 * IOASID_UNREGISTER_MEMORY, and the accounting of the pages IOASID_MAP_DMA pins, so that at every step the pages
 * accounted equal the live registrations plus the mappings of unregistered memory (MEM-016).
 *
 * Not for: iommufd or vfio-type1 accounting, and not for software-nesting children, whose mappings reuse the parent's
 * pins (MEM-008, handled in `nesting.ts`).
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

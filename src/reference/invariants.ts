/**
 * The invariants of the uAPI reference model (issue 3), checked after every step, each reported with the spec clause
 * it enforces through the step's `violations` (see core/context.ts).
 *
 * Two checkers:
 * - {@link InvariantChecker}, wired into `Model.step`: incremental. A {@link Journal} records what the step changed
 *   (areas inserted / removed with the accounting counters they found, owned-range sets changed, objects created /
 *   deleted) and only that is checked: O(log n) per changed area in the number of mappings. Per-device checks walk the
 *   platform's devices (a constant of the platform, not of the trace); a step that changes reservations or destroys
 *   an object also walks the live objects, as the model's own handling of such a step does.
 * - {@link checkAllInvariants}: the same invariants over the whole state, O(n). Tests use it as the oracle of the
 *   incremental checker; it is not for use per step.
 *
 * The invariants: no two mappings overlap (MAP-002); every mapping avoids reserved ranges (MAP-008 rfc/type1, MAP-009
 * iommufd, DEV-015 when a reservation is added) and an automatic one stays in the allowed ranges (MAP-020, MAP-022),
 * which never meet a reservation (IOAS-017, IOAS-020); a MAP creates exactly one mapping or nothing (MAP-001); an
 * UNMAP removes whole mappings only, reports their bytes and removes nothing when it fails (MAP-026, MAP-027, MAP-028,
 * MAP-029, MAP-031, MAP-039, MAP-040); an IOASID's format never changes (IOAS-008) and a user-managed one holds no
 * kernel mapping (IOAS-009); every binding and attachment names a live device and a live address space, with
 * consistent counts (DEV-003, DEV-016, DEV-017, FD-017); a destroyed object leaves no reference and no mapping behind
 * (FD-009, FD-016, FD-018, DEV-017, DEV-026); the accounting counters equal what the mappings imply (MEM-015,
 * MEM-016).
 *
 * Not (yet) here: the PASID invariants of the global scheme (PASID-014..016) and the fault invariants (FAULT chapter),
 * whose state the model does not hold yet; pinned-page totals against RLIMIT_MEMLOCK, which the model does not count
 * yet (it keeps per-space users of each pages object).
 *
 * @module
 */
import type { Command, Outcome } from './commands.ts';
import { IOAS_MAP, RFC_UNMAP, VFIO_DMA_UNMAP } from './commands.ts';
import type { Area, RangeSet } from './core/areas.ts';
import type { StepContext, Violation } from './core/context.ts';
import { Journal, withJournal, type AreaEvent } from './core/journal.ts';
import { userMemoryValid } from './core/placement.ts';
import type { Resolved } from './resolved.ts';
import type { FdObject, IoasidObject, Space, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** The invariants, by a short name (tests count how often each had something to check). */
export type InvariantName =
  | 'no-overlap'
  | 'reserved'
  | 'map-shape'
  | 'unmap-whole'
  | 'format'
  | 'attachments'
  | 'destroyed'
  | 'accounting'
  | 'pasid'
  | 'fault';

/** The clauses each invariant reports. */
export const INVARIANT_CLAUSES: Readonly<Record<InvariantName, readonly string[]>> = {
  'no-overlap': ['MAP-002'],
  reserved: ['MAP-008', 'MAP-009', 'MAP-020', 'MAP-022', 'DEV-015', 'IOAS-020'],
  'map-shape': ['MAP-001'],
  'unmap-whole': ['MAP-026', 'MAP-027', 'MAP-028', 'MAP-029', 'MAP-031', 'MAP-039', 'MAP-040'],
  format: ['IOAS-008', 'IOAS-009'],
  attachments: ['DEV-003', 'DEV-016', 'DEV-017', 'DEV-027', 'FD-012', 'FD-017', 'FD-019'],
  destroyed: ['FD-009', 'FD-016', 'FD-018', 'DEV-017', 'DEV-026', 'IOAS-032', 'FD-010', 'FD-013'],
  accounting: ['MEM-015', 'MEM-016'],
  pasid: ['PASID-013', 'PASID-014', 'PASID-015', 'PASID-016'],
  fault: ['FAULT-001', 'FAULT-029'],
};

/** Receives one broken invariant. */
type Report = (clause: string, message: string) => void;

const hex = (v: bigint): string => `0x${v.toString(16)}`;
const span = (a: { iova: bigint; last: bigint }): string => `[${hex(a.iova)}, ${hex(a.last)}]`;

/** The clause a mapping inside a reserved range breaks, per profile. */
const reservedClause = (st: State): string => (st.profile === 'iommufd' ? 'MAP-009' : 'MAP-008');

/** Every address space of the state with the ID that names it (0: the vfio-type1 container). */
function* spaces(st: State): Generator<[number, Space]> {
  if (st.profile === 'vfio-type1') yield [0, st.container.space];
  for (const o of st.objects.values()) {
    if (o.kind === 'ioas') yield [o.id, o.space];
    else if (o.kind === 'ioasid' && o.space !== undefined) yield [o.id, o.space];
  }
}

/** The clause a reference left behind by a destroyed object of this kind breaks. */
function destroyClause(o: FdObject): string {
  switch (o.kind) {
    case 'ioasid':
      return 'FD-018';
    case 'device':
      return 'DEV-017';
    case 'hwpt-paging':
    case 'hwpt-nested':
      return o.auto ? 'DEV-026' : 'FD-009';
    case 'ioas':
    case 'fault':
      return 'FD-009';
  }
}

// ------------------------------------------------------------------------------------------------ shared checks

/** MAP-002: `a`, an area of `space`, overlaps neither neighbour. O(log n). */
function checkNeighbours(space: Space, a: Area, report: Report): void {
  if (a.last < a.iova) report('MAP-001', `mapping ${span(a)} ends before it starts`);
  const [prev, next] = space.areas.neighbours(a);
  if (prev !== undefined && prev.last >= a.iova) report('MAP-002', `mappings ${span(prev)} and ${span(a)} overlap`);
  if (next !== undefined && next.iova <= a.last) report('MAP-002', `mappings ${span(a)} and ${span(next)} overlap`);
}

/** MAP-008 / MAP-009: `a` lies outside every reserved range of its space. */
function checkOutsideReserved(st: State, space: Space, a: Area, report: Report): void {
  const r = space.reserved.firstIntersecting(a.iova, a.last);
  if (r !== undefined)
    report(
      reservedClause(st),
      `mapping ${span(a)} intersects reserved ${span({ iova: r.start, last: r.last })} (${r.owner})`,
    );
}

/** DEV-015 / IOAS-017 / IOAS-020: the reserved ranges of `space` meet no mapping and no allowed range. */
function checkReservations(space: Space, report: Report): void {
  for (const r of space.reserved.list) {
    const a = space.areas.firstIntersecting(r.start, r.last);
    if (a !== undefined)
      report('DEV-015', `reserved ${span({ iova: r.start, last: r.last })} (${r.owner}) covers mapping ${span(a)}`);
    if (space.allowed.intersects(r.start, r.last))
      report('IOAS-020', `reserved ${span({ iova: r.start, last: r.last })} (${r.owner}) meets an allowed range`);
  }
}

/** The devices' bindings and attachments name live objects, and the objects' counts agree (O(devices)). */
function checkDevices(st: State, report: Report): void {
  const attachCount = new Map<number, number>();
  st.devices.forEach((d, i) => {
    if (st.profile === 'iommufd') {
      if (d.boundId !== 0) {
        const o = st.objects.get(d.boundId);
        if (o?.kind !== 'device' || o.dev !== i)
          report('DEV-003', `device ${i} is bound as ID ${d.boundId}, which is not its DEVICE object`);
      }
      if (d.hwpt !== 0) {
        if (d.boundId === 0) report('DEV-017', `device ${i} is attached to ${d.hwpt} but not bound`);
        const h = st.objects.get(d.hwpt);
        if (h?.kind !== 'hwpt-paging' && h?.kind !== 'hwpt-nested')
          report('DEV-016', `device ${i} is attached to ${d.hwpt}, which is not a live HWPT`);
        else attachCount.set(h.id, (attachCount.get(h.id) ?? 0) + 1);
      }
    } else if (st.profile === 'rfc') {
      if (d.attachments.length > 0 && d.boundId === 0)
        report('DEV-017', `device ${i} has attachments but is not bound`);
      for (const a of d.attachments) {
        if (st.get(a.ioasid, 'ioasid') === undefined)
          report('DEV-016', `device ${i} is attached to IOASID ${a.ioasid}, which is not live`);
        else attachCount.set(a.ioasid, (attachCount.get(a.ioasid) ?? 0) + 1);
      }
    }
  });
  for (const [id, n] of attachCount) {
    const o = st.objects.get(id);
    const held =
      o?.kind === 'ioasid' ? o.attachments : o?.kind === 'hwpt-paging' || o?.kind === 'hwpt-nested' ? o.devices : n;
    if (held !== n)
      report(
        o?.kind === 'ioasid' ? 'FD-017' : 'FD-012',
        `object ${id} counts ${held} attachments, the devices hold ${n}`,
      );
  }
  if (st.profile === 'vfio-type1') {
    const ct = st.container;
    for (const g of ct.groups)
      if (!st.platform.devices.some((pd) => pd.group === g && pd.kind === 'physical'))
        report('DEV-027', `the container holds group ${g}, which has no device`);
    if (ct.groups.length === 0 && (ct.iommuType !== 0 || ct.space.areas.size > 0))
      report('FD-019', 'the container has no group but keeps its IOMMU model or mappings');
    if (ct.dmaAvail !== st.platform.limits.dmaEntryLimit - ct.space.areas.size)
      report('MEM-015', `dma_avail is ${ct.dmaAvail} with ${ct.space.areas.size} mappings`);
  }
}

/** IOAS-009: a user-managed IOASID holds no kernel mapping. */
function checkIoasidFormat(io: IoasidObject, report: Report): void {
  if (io.format !== 'kernel' && io.space !== undefined && io.space.areas.size > 0)
    report('IOAS-009', `${io.format} IOASID ${io.id} holds ${io.space.areas.size} kernel mappings`);
  if (io.format === 'kernel' && io.space === undefined)
    report('IOAS-008', `kernel-managed IOASID ${io.id} has no address space`);
}

/** The live objects that still name `id` (O(objects)): what a destroyed object would leave behind. */
function referencesTo(st: State, id: number): string[] {
  const out: string[] = [];
  for (const o of st.objects.values()) {
    if (
      (o.kind === 'hwpt-paging' || o.kind === 'hwpt-nested') &&
      (o.ioas === id || o.parent === id || (o.fault !== 0 && o.fault === id))
    )
      out.push(`HWPT ${o.id}`);
    if (o.kind === 'ioasid' && o.parent === id) out.push(`IOASID ${o.id}`);
  }
  st.devices.forEach((d, i) => {
    if (st.profile === 'iommufd' && (d.boundId === id || d.hwpt === id)) out.push(`device ${i}`);
    if (st.profile === 'rfc' && d.attachments.some((a) => a.ioasid === id)) out.push(`device ${i}`);
  });
  if (st.profile === 'iommufd' && st.vfioIoas === id) out.push('the VFIO-compatibility IOAS');
  return out;
}

/** A destroyed object is named by nothing and leaves no mapping or pin behind. */
function checkDestroyed(st: State, o: FdObject, report: Report): void {
  const clause = destroyClause(o);
  const refs = referencesTo(st, o.id);
  if (refs.length > 0) report(clause, `destroyed ${o.kind} ${o.id} is still named by ${refs.join(', ')}`);
  const space = o.kind === 'ioas' || o.kind === 'ioasid' ? o.space : undefined;
  if (space !== undefined && (space.areas.size > 0 || space.pagesUsers.size > 0))
    report(o.kind === 'ioas' ? 'FD-016' : clause, `destroyed ${o.kind} ${o.id} keeps ${space.areas.size} mappings`);
}

/** The pages rfc pre-registrations account (whole CPU pages, MEM-007). O(registrations). */
function registeredPages(st: State, regs: readonly { va: bigint; last: bigint }[]): bigint {
  const page = BigInt(st.platform.limits.pageSize);
  return regs.reduce((n, g) => n + (g.last - g.va + 1n) / page, 0n);
}

/**
 * PASID-013..016 under the global scheme: every user PASID attached is a local PASID (below the split), and the
 * global PASID it resolves to is the same for every device and IOASID that use it (one kernel-allocated entry per
 * local PASID), names one address space, and lies in the global range. O(attachments).
 */
function checkGlobalPasids(st: State, report: Report): void {
  const x = st.rfcx;
  st.devices.forEach((d, i) => {
    for (const a of d.attachments) {
      if (a.pasid === undefined || st.platform.devices[i]!.kind !== 'physical') continue;
      if (a.pasid >= x.globalMin)
        report('PASID-013', `device ${i} uses PASID ${a.pasid}, not below the global split ${x.globalMin}`);
      const k = x.kpasids.get(`L:${a.pasid}`);
      if (k === undefined) {
        report('PASID-014', `local PASID ${a.pasid} of device ${i} has no global PASID`);
        continue;
      }
      if (k.ioasid !== a.ioasid)
        report('PASID-015', `local PASID ${a.pasid} names IOASID ${k.ioasid} and, on device ${i}, ${a.ioasid}`);
      if (a.real !== undefined && a.real !== k.real)
        report('PASID-014', `local PASID ${a.pasid} resolves to ${a.real} on device ${i} and ${k.real} elsewhere`);
      if (k.real < x.globalMin)
        report('PASID-016', `global PASID ${k.real} of local ${a.pasid} lies below the split ${x.globalMin}`);
    }
  });
}

/**
 * FAULT-001 / FAULT-029: every pending page group (queued or awaiting its response) belongs to a live page table, and
 * the groups raised minus the groups answered are exactly the pending ones (so none is answered twice). O(pending
 * groups + objects); run on the steps that raise, read or answer faults.
 */
function checkFaults(st: State, report: Report): void {
  let pending = 0;
  const queues = [st.rfcFaults];
  for (const o of st.objects.values()) if (o.kind === 'fault') queues.push(o.queue);
  for (const [n, q] of queues.entries()) {
    pending += q.pending;
    for (const g of [...q.deliver, ...[...q.response.values()].map((w) => w.group)]) {
      const t = st.objects.get(g.table);
      const live = n === 0 ? t?.kind === 'ioasid' : t?.kind === 'hwpt-paging' || t?.kind === 'hwpt-nested';
      if (!live)
        report('FAULT-001', `a pending page group of device ${g.dev} names table ${g.table}, which is not live`);
    }
  }
  if (st.pri.answered > st.pri.raised)
    report('FAULT-029', `${st.pri.answered} page groups answered, only ${st.pri.raised} raised`);
  if (st.pri.raised - st.pri.answered !== pending)
    report('FAULT-029', `${st.pri.raised - st.pri.answered} page groups outstanding, ${pending} pending in the queues`);
}

// ------------------------------------------------------------------------------------------------ incremental

/** A test-only corruption: runs after the step's handler and before the checks, under the step's journal. */
export type InjectHook = (st: State) => void;

/** The arguments of an UNMAP command that matter to its invariants. */
interface UnmapCmd {
  readonly space: Space | undefined;
  readonly iova: bigint;
  readonly last: bigint;
  readonly all: boolean;
  /** vfio-type1 v1: a bisected mapping is removed whole (MAP-027's v1 outcome). */
  readonly v1: boolean;
}

/** Reports an invariant's violation as a violation of the step (a returned arrow: no per-step function naming). */
function reporterTo(ctx: StepContext): Report {
  return (clause, message) => ctx.violate(clause, `invariant: ${message}`);
}

/** The commands {@link unmapOf} describes. */
const UNMAP_OPS: ReadonlySet<string> = new Set(['IOMMU_IOAS_UNMAP', 'IOASID_UNMAP_DMA', 'VFIO_IOMMU_UNMAP_DMA']);

function unmapOf(st: State, c: Resolved<Command>): UnmapCmd | undefined {
  if (c.op === 'IOMMU_IOAS_UNMAP') {
    const all = c.iova === 0n && c.length === U64_MAX;
    const last = c.length === 0n ? c.iova : c.iova + c.length - 1n;
    return { space: st.get(c.ioas_id, 'ioas')?.space, iova: c.iova, last, all, v1: false };
  }
  if (c.op === 'IOASID_UNMAP_DMA') {
    const all = (c.flags & RFC_UNMAP.ALL) !== 0;
    const last = c.size === 0n ? c.iova : c.iova + c.size - 1n;
    return { space: st.get(c.ioasid, 'ioasid')?.space, iova: c.iova, last, all, v1: false };
  }
  if (c.op === 'VFIO_IOMMU_UNMAP_DMA') {
    const all = (c.flags & VFIO_DMA_UNMAP.ALL) !== 0;
    const last = all ? U64_MAX : c.size === 0n ? c.iova : c.iova + c.size - 1n;
    return { space: st.container.space, iova: all ? 0n : c.iova, last, all, v1: st.container.iommuType === 1 };
  }
  return undefined;
}

/**
 * Checks the invariants after every step, incrementally. One per model; it keeps no state between steps, so model
 * snapshots and restores need nothing from it.
 */
export class InvariantChecker {
  /** Test-only: a corruption applied to the next checked step (see {@link InjectHook}), then cleared. */
  injectOnce: InjectHook | undefined;
  /**
   * How many times each invariant had something to check (a new mapping, an UNMAP, a deleted object…), so tests can
   * show their random traces reach every invariant.
   */
  readonly evaluated: Record<InvariantName, number> = {
    'no-overlap': 0,
    reserved: 0,
    'map-shape': 0,
    'unmap-whole': 0,
    format: 0,
    attachments: 0,
    destroyed: 0,
    accounting: 0,
    pasid: 0,
    fault: 0,
  };

  /**
   * Runs one step's handler `run` under a journal, then checks what it changed, reporting every broken invariant
   * with `ctx.violate(clause, message)`. A handler that throws (ModelLimit) is not checked.
   */
  around(st: State, c: Resolved<Command>, ctx: StepContext, run: () => Outcome): Outcome {
    const j = new Journal();
    const io = 'ioasid' in c && typeof c.ioasid === 'number' ? st.get(c.ioasid, 'ioasid') : undefined;
    const formatBefore = io?.format;
    const lockedBefore = st.rfcx.locked;
    const pri = { raised: st.pri.raised, answered: st.pri.answered };
    const regsBefore = st.rfcx.regs;
    const outcome = withJournal(j, () => {
      const out = run();
      const hook = this.injectOnce;
      this.injectOnce = undefined;
      hook?.(st);
      return out;
    });
    const report = reporterTo(ctx);
    this.check(st, c, outcome, j, report);
    if (st.pri.raised !== pri.raised || st.pri.answered !== pri.answered || c.op.includes('FAULT')) {
      this.evaluated.fault++;
      checkFaults(st, report);
    }
    if (
      st.profile === 'rfc' &&
      st.rfcx.mode === 'global' &&
      st.devices.some((d) => d.attachments.some((a) => a.pasid !== undefined))
    ) {
      this.evaluated.pasid++;
      checkGlobalPasids(st, report);
    }
    if (st.profile === 'rfc' && j.areas.length === 0) {
      // MEM-016 (rfc): without a mapping change, the accounting moves only with the registrations.
      this.evaluated.accounting++;
      const want = lockedBefore + registeredPages(st, st.rfcx.regs) - registeredPages(st, regsBefore);
      if (st.rfcx.locked !== want)
        report('MEM-016', `${st.rfcx.locked} pages are accounted, the registrations imply ${want}`);
    }
    if (io !== undefined && st.get(io.id, 'ioasid') === io && io.format !== formatBefore)
      report('IOAS-008', `IOASID ${io.id} changed format from ${formatBefore} to ${io.format}`);
    if (io !== undefined && st.get(io.id, 'ioasid') === io) {
      this.evaluated.format++;
      checkIoasidFormat(io, report);
    }
    return outcome;
  }

  private check(st: State, c: Resolved<Command>, outcome: Outcome, j: Journal, report: Report): void {
    this.checkAreas(st, c, outcome, j.areas, report);
    this.checkObjects(st, j, report);
    if (j.ranges.size > 0) this.checkRanges(st, j.ranges, report);
    if (st.devices.some((d) => d.boundId !== 0) || st.container.groups.length > 0) this.evaluated.attachments++;
    checkDevices(st, report);
  }

  /** Mappings the step inserted or removed: overlap, reservations, MAP / UNMAP shape, accounting. */
  private checkAreas(st: State, c: Resolved<Command>, outcome: Outcome, events: readonly AreaEvent[], report: Report) {
    const op = c.op;
    const isMap = op === 'IOMMU_IOAS_MAP' || op === 'IOASID_MAP_DMA' || op === 'VFIO_IOMMU_MAP_DMA';
    // Most steps touch no mapping: nothing to check but the shape of a MAP / COPY / UNMAP that changed nothing.
    if (events.length === 0 && !isMap && op !== 'IOMMU_IOAS_COPY' && !UNMAP_OPS.has(op)) return;
    const inserted: { space: Space; area: Area }[] = [];
    const removed: { space: Space; area: Area }[] = [];
    const pagesBefore = new Map<Space, Map<number, number>>();
    const badBefore = new Map<Space, number>();
    const pagesDelta = new Map<Space, Map<number, number>>();
    const badDelta = new Map<Space, number>();
    for (const e of events) {
      (e.op === 'insert' ? inserted : removed).push({ space: e.space, area: e.area });
      let pb = pagesBefore.get(e.space);
      if (pb === undefined) pagesBefore.set(e.space, (pb = new Map<number, number>()));
      if (!pb.has(e.area.pages)) pb.set(e.area.pages, e.pagesUsersBefore);
      if (!badBefore.has(e.space)) badBefore.set(e.space, e.badAreasBefore);
      const d = e.op === 'insert' ? 1 : -1;
      let pd = pagesDelta.get(e.space);
      if (pd === undefined) pagesDelta.set(e.space, (pd = new Map<number, number>()));
      pd.set(e.area.pages, (pd.get(e.area.pages) ?? 0) + d);
      const bytes = e.area.last - e.area.iova + 1n;
      if (!userMemoryValid(st.platform, e.area.buf, e.area.off, bytes))
        badDelta.set(e.space, (badDelta.get(e.space) ?? 0) + d);
    }
    // MEM-016: the accounting counters moved exactly as the mappings did.
    if (pagesBefore.size > 0) this.evaluated.accounting++;
    for (const [space, pb] of pagesBefore) {
      const pd = pagesDelta.get(space)!;
      for (const [pages, before] of pb) {
        const want = before + (pd.get(pages) ?? 0);
        const got = space.pagesUsers.get(pages) ?? 0;
        if (got !== want) report('MEM-016', `pages object ${pages} is accounted to ${got} mappings, ${want} map it`);
      }
      const wantBad = badBefore.get(space)! + (badDelta.get(space) ?? 0);
      if (space.badAreas !== wantBad)
        report('MEM-016', `${space.badAreas} mappings are counted unpinnable, ${wantBad} are`);
    }
    // New mappings: still present ones overlap nothing and avoid reservations.
    const live = inserted.filter(({ space, area }) => space.areas.containing(area.iova) === area);
    for (const { space, area } of live) {
      this.evaluated['no-overlap']++;
      this.evaluated.reserved++;
      checkNeighbours(space, area, report);
      checkOutsideReserved(st, space, area, report);
    }
    if (isMap || op === 'IOMMU_IOAS_COPY') {
      this.evaluated['map-shape']++;
      const automatic =
        (c.op === 'IOMMU_IOAS_MAP' || c.op === 'IOMMU_IOAS_COPY') && (c.flags & IOAS_MAP.FIXED_IOVA) === 0;
      // MAP-001: a MAP creates exactly one mapping (COPY one per source segment) or, failing, nothing.
      if (removed.length > 0) report('MAP-001', `${op} removed ${removed.length} mappings`);
      if (!outcome.ok && inserted.length > 0) report('MAP-001', `a failed ${op} created ${inserted.length} mappings`);
      if (outcome.ok && (isMap ? inserted.length !== 1 : inserted.length === 0))
        report('MAP-001', `${op} created ${inserted.length} mappings`);
      if (outcome.ok && automatic) this.checkAutomatic(st, live, report);
    }
    const u = unmapOf(st, c);
    if (u !== undefined) {
      if (removed.length > 0 || !outcome.ok) this.evaluated['unmap-whole']++;
      this.checkUnmap(st, u, outcome, inserted, removed, report);
    }
  }

  /** MAP-020 / MAP-022: automatic placements stay off page 0 and the top page, and inside one allowed range. */
  private checkAutomatic(st: State, live: readonly { space: Space; area: Area }[], report: Report): void {
    if (live.length === 0) return;
    const page = BigInt(st.platform.limits.pageSize);
    const first = live.reduce((m, x) => (x.area.iova < m ? x.area.iova : m), live[0]!.area.iova);
    const last = live.reduce((m, x) => (x.area.last > m ? x.area.last : m), live[0]!.area.last);
    const space = live[0]!.space;
    if (first < page || last > U64_MAX - page)
      report('MAP-020', `automatic IOVA range ${span({ iova: first, last })} touches page 0 or the top page`);
    if (space.allowed.list.length > 0 && !space.allowed.list.some((r) => r.start <= first && last <= r.last))
      report('MAP-022', `automatic IOVA range ${span({ iova: first, last })} is outside every allowed range`);
  }

  /** MAP-026..031, MAP-039, MAP-040: an UNMAP removes whole mappings only, and reports them. */
  private checkUnmap(
    st: State,
    u: UnmapCmd,
    outcome: Outcome,
    inserted: readonly { area: Area }[],
    removed: readonly { space: Space; area: Area }[],
    report: Report,
  ): void {
    if (inserted.length > 0) report('MAP-026', `an UNMAP created ${inserted.length} mappings (a split remnant)`);
    if (removed.some((r) => r.space !== u.space))
      report('MAP-026', 'an UNMAP removed mappings of another address space');
    if (!outcome.ok) {
      // rfc and type1 check the whole range before removing anything; iommufd may stop at a bisected area.
      if (st.profile !== 'iommufd' && removed.length > 0)
        report('MAP-039', `a failed UNMAP removed ${removed.length} mappings`);
      if (st.profile === 'iommufd' && removed.some((r) => r.area.iova < u.iova || r.area.last > u.last))
        report('MAP-040', 'a failed UNMAP removed a mapping not wholly inside its range');
      return;
    }
    const bytes = removed.reduce((n, r) => n + (r.area.last - r.area.iova + 1n), 0n);
    const reported = outcome.out?.length ?? outcome.out?.size;
    if (reported !== bytes)
      report(
        'MAP-029',
        `UNMAP reported ${JSON.stringify(typeof reported === 'bigint' ? String(reported) : reported)} bytes, removed ${bytes}`,
      );
    if (u.space === undefined) return;
    if (u.all) {
      if (u.space.areas.size > 0) report('MAP-031', `unmap-all left ${u.space.areas.size} mappings`);
      return;
    }
    if (!u.v1) {
      for (const r of removed)
        if (r.area.iova < u.iova || r.area.last > u.last)
          report(
            r.area.iova < u.iova ? 'MAP-026' : 'MAP-027',
            `UNMAP ${span({ iova: u.iova, last: u.last })} removed ${span(r.area)}`,
          );
    }
    // MAP-028: no whole mapping is left inside the range; at most the two bisected edges intersect it.
    const left = u.space.areas.firstIntersecting(u.iova, u.last);
    if (left === undefined) return;
    const inside = (a: Area): boolean => a.iova >= u.iova && a.last <= u.last;
    if (u.v1 && left.iova < u.iova) return; // v1 stops at a mapping it starts inside (MAP-026's v1 outcome)
    for (
      let a: Area | undefined = left, k = 0;
      a !== undefined && a.iova <= u.last && k < 3;
      a = u.space.areas.after(a), k++
    )
      if (inside(a)) {
        report('MAP-028', `UNMAP ${span({ iova: u.iova, last: u.last })} left mapping ${span(a)} inside its range`);
        break;
      }
  }

  /** Objects the step created or deleted. */
  private checkObjects(st: State, j: Journal, report: Report): void {
    for (const e of j.objects) {
      if (e.op === 'set') {
        const now = st.objects.get(e.id);
        if (now === undefined) continue;
        if (e.id < 1) report('FD-001', `an object was given ID ${e.id}`);
        if (
          e.before !== undefined &&
          e.before.kind === 'ioasid' &&
          now.kind === 'ioasid' &&
          e.before.format !== now.format
        )
          report('IOAS-008', `IOASID ${e.id} changed format from ${e.before.format} to ${now.format}`);
        if (now.kind === 'ioasid') {
          this.evaluated.format++;
          checkIoasidFormat(now, report);
          if (now.parent !== 0 && st.get(now.parent, 'ioasid') === undefined)
            report('FD-018', `IOASID ${now.id} names parent ${now.parent}, which is not live`);
        }
        if (now.kind === 'hwpt-paging' || now.kind === 'hwpt-nested') {
          if (st.get(now.ioas, 'ioas') === undefined)
            report('FD-009', `HWPT ${now.id} names IOAS ${now.ioas}, which is not live`);
          if (now.kind === 'hwpt-nested' && st.get(now.parent, 'hwpt-paging') === undefined)
            report('FD-009', `nested HWPT ${now.id} names parent ${now.parent}, which is not live`);
        }
      } else if (!st.objects.has(e.id) && e.before !== undefined) {
        this.evaluated.destroyed++;
        checkDestroyed(st, e.before, report);
      }
    }
  }

  /** Reserved or allowed ranges the step added: they meet no mapping and each other nowhere. */
  private checkRanges(st: State, sets: ReadonlySet<RangeSet>, report: Report): void {
    for (const [, space] of spaces(st))
      if (sets.has(space.reserved) || sets.has(space.allowed)) {
        this.evaluated.reserved++;
        checkReservations(space, report);
      }
  }
}

// ------------------------------------------------------------------------------------------------ full (oracle)

/**
 * Every invariant over the whole state: O(n) in the mappings and objects. The oracle the tests compare the
 * incremental checker with, and a tool for debugging a state; not for use after every step.
 *
 * The step-shaped invariants (what a MAP or an UNMAP changed, formats across a step) need the step and are only in
 * the incremental checker; this one checks what the state alone can show.
 */
export function checkAllInvariants(st: State): Violation[] {
  const out: Violation[] = [];
  const report: Report = (clause, message) => out.push({ clause, message: `invariant: ${message}` });
  for (const [, space] of spaces(st)) {
    const users = new Map<number, number>();
    let bad = 0;
    let prev: Area | undefined;
    for (const a of space.areas.all()) {
      if (a.last < a.iova) report('MAP-001', `mapping ${span(a)} ends before it starts`);
      if (prev !== undefined && prev.last >= a.iova) report('MAP-002', `mappings ${span(prev)} and ${span(a)} overlap`);
      checkOutsideReserved(st, space, a, report);
      users.set(a.pages, (users.get(a.pages) ?? 0) + 1);
      if (!userMemoryValid(st.platform, a.buf, a.off, a.last - a.iova + 1n)) bad++;
      prev = a;
    }
    checkReservations(space, report);
    for (const [pages, n] of users)
      if (space.pagesUsers.get(pages) !== n)
        report(
          'MEM-016',
          `pages object ${pages} is accounted to ${space.pagesUsers.get(pages) ?? 0} mappings, ${n} map it`,
        );
    for (const [pages, n] of space.pagesUsers)
      if (!users.has(pages)) report('MEM-016', `pages object ${pages} is accounted to ${n} mappings, none maps it`);
    if (space.badAreas !== bad) report('MEM-016', `${space.badAreas} mappings are counted unpinnable, ${bad} are`);
  }
  const domains = new Map<number, number>();
  const children = new Map<number, number>();
  for (const o of st.objects.values()) {
    if (o.id < 1) report('FD-001', `an object holds ID ${o.id}`);
    if (o.kind === 'ioasid') {
      checkIoasidFormat(o, report);
      if (o.parent !== 0) {
        if (st.get(o.parent, 'ioasid') === undefined)
          report('FD-018', `IOASID ${o.id} names parent ${o.parent}, which is not live`);
        children.set(o.parent, (children.get(o.parent) ?? 0) + 1);
      }
    }
    if (o.kind === 'hwpt-paging' || o.kind === 'hwpt-nested') {
      if (st.get(o.ioas, 'ioas') === undefined)
        report('FD-009', `HWPT ${o.id} names IOAS ${o.ioas}, which is not live`);
      if (o.kind === 'hwpt-paging') domains.set(o.ioas, (domains.get(o.ioas) ?? 0) + 1);
      if (o.kind === 'hwpt-nested') {
        if (st.get(o.parent, 'hwpt-paging') === undefined)
          report('FD-009', `nested HWPT ${o.id} names parent ${o.parent}, which is not live`);
        children.set(o.parent, (children.get(o.parent) ?? 0) + 1);
      }
      if (o.auto && o.devices === 0) report('DEV-026', `automatic HWPT ${o.id} outlived its last device`);
    }
  }
  for (const o of st.objects.values()) {
    if (o.kind === 'ioas' && o.space.domains !== (domains.get(o.id) ?? 0))
      report('FD-010', `IOAS ${o.id} counts ${o.space.domains} domains, ${domains.get(o.id) ?? 0} HWPTs use it`);
    if ((o.kind === 'ioasid' || o.kind === 'hwpt-paging') && o.children !== (children.get(o.id) ?? 0))
      report(
        o.kind === 'ioasid' ? 'FD-017' : 'FD-013',
        `${o.kind} ${o.id} counts ${o.children} children, ${children.get(o.id) ?? 0} exist`,
      );
  }
  // Objects with a count the devices do not hold anywhere: checkDevices sees only the ones they name.
  for (const o of st.objects.values()) {
    const held =
      o.kind === 'ioasid' ? o.attachments : o.kind === 'hwpt-paging' || o.kind === 'hwpt-nested' ? o.devices : 0;
    if (held > 0 && !st.devices.some((d) => d.hwpt === o.id || d.attachments.some((a) => a.ioasid === o.id)))
      report('FD-017', `object ${o.id} counts ${held} attachments, no device holds one`);
  }
  if (st.profile === 'rfc') {
    // MEM-016 (rfc): the pages accounted are the registrations plus what each mapping's pages object pins.
    let pinned = 0n;
    for (const pin of st.rfcx.pins.values()) pinned += pin.pages;
    const want = registeredPages(st, st.rfcx.regs) + pinned;
    if (st.rfcx.locked !== want)
      report('MEM-016', `${st.rfcx.locked} pages are accounted, registrations and pins imply ${want}`);
  }
  if (st.profile === 'iommufd' && st.vfioIoas !== 0 && st.get(st.vfioIoas, 'ioas') === undefined)
    report('IOAS-032', `the VFIO-compatibility IOAS ${st.vfioIoas} is not live`);
  checkDevices(st, report);
  checkFaults(st, report);
  if (st.profile === 'rfc' && st.rfcx.mode === 'global') checkGlobalPasids(st, report);
  return out;
}

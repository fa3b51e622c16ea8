/**
 * The refinement check (chapter REF): after every uAPI step, the reference driver (or a broken one) realises the
 * uAPI model's state on the hardware model, and DMA probes — drawn at mapping edges, inside, outside, with and
 * without PASID, reads and writes — must have on the hardware exactly the outcome the uAPI state implies. A probe
 * that disagrees is a violation of the REF clause it instantiates: REF-003 for a byte an UNMAP removed, REF-005 for a
 * write to a read-only mapping, REF-006 for a route a detach ended, REF-008 for a PASID nothing attached, REF-009 for
 * a global PASID, REF-002 for a new mapping, REF-001 otherwise. DEVICE_DMA steps of the trace are replayed on the
 * hardware too and must match the model's outcome (REF-001). DEVICE_PAGE_REQUEST steps, fault reads and fault
 * responses go through the driver's fault path and must agree with the model (chapter FAULT, HW-028, HW-030).
 *
 * The runner calls it with `run --refine` ({@link createRefiner} per trace). It judges the driver and hardware
 * model, not the adapter under test: the adapter's replies are checked by the lockstep comparison as always.
 *
 * Through a user-managed first-stage table, whose contents the uAPI state does not model, the refinement acts as the
 * user: it writes a guest table at the bound root and probes through it (REF-011, REF-012).
 *
 * Not for: judging DMA the uAPI model cannot predict (a user table the user rewrote): such probes are not drawn.
 *
 * @module
 */
import type { Command, Outcome } from '../src/reference/commands.ts';
import { PROT, type Area } from '../src/reference/core/areas.ts';
import type { Platform } from '../src/reference/platform.ts';
import { resolveCommand } from '../src/reference/refs.ts';
import type { Resolved } from '../src/reference/resolved.ts';
import { U64_MAX } from '../src/reference/u64.ts';
import { listAreas, type ModelView } from '../src/reference/view.ts';
import { DRIVER_BUGS, DriverLimit, ReferenceDriver, type DriverBug } from '../src/hw-reference/driver.ts';
import { encodeFsPte } from '../src/hw-reference/entries.ts';
import type { Capabilities } from './adapter.ts';

/** What the refinement check says about one step. */
export interface RefineStep {
  /** The REF clauses the step's probes evaluated. */
  readonly clauses: readonly string[];
  /** The first probe whose hardware outcome differs from what the uAPI state implies. */
  readonly violation?: { readonly clause: string; readonly message: string };
}

/** The refinement check of one trace: call {@link Refiner.afterStep} after every step, in order. */
export interface Refiner {
  afterStep(cmd: Command, outcome: Outcome, view: ModelView): RefineStep;
  /** Probes issued so far. */
  readonly probes: number;
  /** Set when the driver met a situation it does not realise; no probe is drawn after it. */
  readonly limit?: string;
}

/** The driver names `--driver` accepts: `reference` and the broken drivers. */
export const DRIVER_NAMES: readonly string[] = ['reference', ...Object.keys(DRIVER_BUGS).map((b) => `broken-${b}`)];

/** Builds a factory of per-trace refiners for driver `name` (`reference` or `broken-<bug>`). */
export function refinerFactory(name: string): (caps: Capabilities) => Refiner {
  if (!DRIVER_NAMES.includes(name)) throw new Error(`unknown driver "${name}" (known: ${DRIVER_NAMES.join(', ')})`);
  const bug = name === 'reference' ? undefined : (name.slice('broken-'.length) as DriverBug);
  return (caps) => new TraceRefiner(caps, bug);
}

/** What the uAPI state implies for one request. */
type Implied = { readonly ok: true; readonly buf: number; readonly off: bigint } | { readonly ok: false } | 'unknown';

/** A probe: device, user PASID, address, size, direction, and why it was drawn (which clause it instantiates). */
interface Probe {
  readonly dev: number;
  readonly pasid?: number;
  /** A hardware PASID to use as it is (global PASIDs, REF-009), instead of the driver's mapping of `pasid`. */
  readonly hwPasid?: number;
  readonly addr: bigint;
  readonly size: bigint;
  readonly write: boolean;
  readonly clause: string;
  readonly why: string;
  /** Where the uAPI state routes the request (computed once per step). */
  as?: number | 'none' | 'unknown';
  /** A probe through a user first-stage table the refinement wrote (REF-011, REF-012). */
  nested?: GuestTable;
}

/**
 * A first-stage table the refinement writes into user memory in place of the user (the guest), so that DMA through a
 * user-managed table can be predicted: one table page, the bound root (a parent IOVA), whose entry 0 points back at
 * itself (so it serves as the table of levels 4, 3 and 2) and whose entry 7 maps GVA {@link GUEST_GVA} to the first
 * page of the parent's first mapping; entry 8 ({@link GUEST_HOLE}) is not present.
 */
interface GuestTable {
  /** The root and parent it was written for (a rebind writes it again). */
  readonly sig: string;
  readonly parentAs: number;
  /** The table page (a parent IOVA) and the user memory it was written to. */
  readonly tables: readonly { readonly gpa: bigint; readonly buf: number; readonly off: bigint }[];
  /** The parent IOVA the GVA page maps to. */
  readonly gpa: bigint;
  /** The entries written (host-physical address, value): a table the user rewrote holds unknown contents. */
  readonly entries: readonly { readonly hpa: bigint; readonly value: bigint }[];
}
/** The GVA page the refinement's guest table maps, and one it leaves unmapped. */
const GUEST_GVA = 0x7000n;
const GUEST_HOLE = 0x8000n;

/** The table an attachment of (device, PASID) names in the uAPI state (the leaf of an rfc RID chain), if any. */
function targetOf(view: ModelView, dev: number, pasid: number | undefined, objects: ReturnType<ModelView['objects']>) {
  if (view.profile === 'vfio-type1') return undefined;
  const att = view.device(dev).attachedTo;
  if (view.profile === 'iommufd') return pasid === undefined ? att[0]?.pt : undefined;
  if (pasid !== undefined) return att.find((a) => a.pasid === pasid)?.pt;
  const rid = att.filter((a) => a.pasid === undefined).map((a) => a.pt);
  return rid.find((id) => !rid.some((other) => objects.find((o) => o.id === other)?.parent === id));
}

const PAGE = 4096n;
/** Faults of the routing structures (root, context, PASID directory and table), before any page table is read. */
const ROUTING_FAULT = /^(SRT|SCT|SPD|SPT)\./;
/** Most probes drawn after one step. */
const PROBES_PER_STEP = 24;

/** The address space a (device, PASID) request is routed to by the uAPI state: a space id, none, or unknowable. */
export function routeOf(
  view: ModelView,
  dev: number,
  pasid: number | undefined,
  objects: ReturnType<ModelView['objects']> = view.objects(),
): number | 'none' | 'unknown' {
  const platform = view.platform;
  const d = platform.devices[dev];
  if (d === undefined) return 'none';
  if (view.profile === 'vfio-type1') {
    const ct = view.container();
    return pasid === undefined && ct.iommuType !== 0 && ct.groups.includes(d.group) ? 0 : 'none';
  }
  const att = view.device(dev).attachedTo;
  if (view.profile === 'iommufd') {
    if (pasid !== undefined) return 'none'; // PASID-033
    const pt = att[0]?.pt;
    if (pt === undefined) return 'none';
    const o = objects.find((x) => x.id === pt);
    return o?.kind === 'hwpt-paging' ? (o.parent ?? 0) : o?.kind === 'hwpt-nested' ? 'unknown' : 'none';
  }
  let target: number | undefined;
  if (pasid === undefined) {
    const rid = att.filter((a) => a.pasid === undefined).map((a) => a.pt);
    target = rid.find((id) => !rid.some((other) => objects.find((o) => o.id === other)?.parent === id));
  } else target = att.find((a) => a.pasid === pasid)?.pt;
  if (target === undefined) return 'none';
  const o = objects.find((x) => x.id === target);
  if (o === undefined) return 'none';
  return o.kind === 'ioasid' && o.format === 'kernel' ? o.id : 'unknown';
}

/** REF-001: what a DMA of `size` bytes at `addr` (within one page) through address space `as` reaches. */
export function impliedIn(view: ModelView, as: number, addr: bigint, size: bigint, write: boolean): Implied {
  const a = view.areaAtOrAfter(as, addr);
  if (a === undefined || a.iova > addr || a.last < addr + size - 1n) return { ok: false };
  // REF-013: a software-nesting child's mapping names a parent IOVA, translated by the parent at the time of the DMA.
  const parent = view.profile === 'rfc' && a.buf < 0 ? view.objects().find((o) => o.id === as)?.parent : undefined;
  if (parent !== undefined && parent !== 0) {
    if ((a.prot & (write ? PROT.WRITE : PROT.READ)) === 0) return { ok: false };
    return impliedIn(view, parent, a.va + (addr - a.iova), size, write);
  }
  const b = view.platform.buffers[a.buf];
  if (b === undefined || a.off + (addr - a.iova) >= b.size) return 'unknown';
  if ((a.prot & (write ? PROT.WRITE : PROT.READ)) === 0) return { ok: false };
  return { ok: true, buf: a.buf, off: a.off + (addr - a.iova) };
}

const key = (a: Area): string => `${a.iova}:${a.last}:${a.buf}:${a.off}:${a.prot}`;

/** The refinement check of one trace over a fresh machine and driver (tests reach the driver for introspection). */
export class TraceRefiner implements Refiner {
  readonly driver: ReferenceDriver;
  private readonly outcomes: Outcome[] = [];
  private prevAreas = new Map<number, Map<string, Area>>();
  private prevRoutes = new Map<string, number>();
  private stepNo = 0;
  probes = 0;
  limit?: string;
  /** The guest tables the refinement wrote into user first-stage tables, by table (rfc IOASID or iommufd HWPT). */
  private readonly guest = new Map<number, GuestTable>();
  /** Set when a page request met a situation the driver does not realise: the fault path is no longer compared. */
  private faultsUnknown = false;

  constructor(
    private readonly caps: Capabilities,
    bug: DriverBug | undefined,
  ) {
    this.driver = new ReferenceDriver(caps.platform, caps.profile, bug);
  }

  private get platform(): Platform {
    return this.caps.platform;
  }

  afterStep(cmd: Command, outcome: Outcome, view: ModelView): RefineStep {
    const resolved = resolveCommand(cmd, this.outcomes) as Resolved<Command>;
    this.outcomes.push(outcome);
    const k = this.stepNo++;
    if (this.limit !== undefined) return { clauses: [] };
    try {
      this.driver.step(resolved, outcome, view);
    } catch (e) {
      if (!(e instanceof DriverLimit)) throw e;
      this.limit = `step ${k}: ${e.message}`;
      return { clauses: [] };
    }
    const clauses = new Set<string>();
    // A DEVICE_DMA step: the hardware must give the model's outcome (REF-001, HW-026 for multi-page DMA).
    if (resolved.op === 'DEVICE_DMA' && this.platform.devices[resolved.dev] !== undefined && resolved.length > 0n) {
      clauses.add('REF-001');
      const v = this.checkDeviceDma(resolved, outcome);
      if (v !== undefined) return { clauses: [...clauses], violation: v };
    }
    // Page requests and the uAPI fault path (chapter FAULT on the hardware, HW-028, HW-030).
    const fv = this.checkFaults(view, resolved, outcome, clauses);
    if (fv !== undefined) return { clauses: [...clauses], violation: fv };
    if (resolved.op === 'CPU_ENQCMD') {
      clauses.add('REF-010');
      const v = this.checkEnqcmd(view, resolved.dev, resolved.pasid, outcome);
      if (v !== undefined) return { clauses: [...clauses], violation: v };
    }
    this.populateGuestTables(view);
    const probes = this.draw(view, k, resolved, outcome);
    for (const p of probes) {
      const v = this.run(view, p, clauses);
      if (v !== undefined) return { clauses: [...clauses], violation: v };
    }
    return { clauses: [...clauses] };
  }

  /**
   * The fault path, realised: a DEVICE_PAGE_REQUEST is sent by the device to the IOMMU and serviced by the driver, and
   * the device must receive the response the uAPI model reports at once, or nothing while the group is queued for the
   * user (FAULT-003 / FAULT-005 queued, FAULT-004 fixed in the kernel, FAULT-006 no handler, FAULT-014 a full queue);
   * a fault read must deliver the records the model returns (FAULT-007, FAULT-008); a fault response must complete
   * the group on the device that raised it (FAULT-015, HW-030); and after every step the groups the driver holds for
   * the user must be the ones the model holds, each still outstanding on its device (FAULT-023, FAULT-029).
   */
  private checkFaults(
    view: ModelView,
    c: Resolved<Command>,
    outcome: Outcome,
    clauses: Set<string>,
  ): RefineStep['violation'] {
    if (view.profile === 'vfio-type1' && c.op !== 'DEVICE_PAGE_REQUEST') return undefined;
    if (c.op === 'DEVICE_PAGE_REQUEST' && outcome.ok && !this.faultsUnknown) {
      const h = this.driver.pageRequest(view, c.dev, c);
      if (h.unknown !== undefined) {
        this.faultsUnknown = true;
        return undefined;
      }
      const response = outcome.out?.response;
      const want = typeof response === 'string' ? response : '';
      if (!c.last && want !== 'none' && want !== 'queued') {
        // The uAPI model answers a request that is not the last of its group when no table handles it (FAULT-006, per
        // request); the hardware and Linux's iommu_report_device_fault answer only a group's last request (HW-029,
        // FAULT-029). A known disagreement of the two levels, reported to the spec: stop comparing the fault path.
        this.faultsUnknown = true;
        return undefined;
      }
      const d = this.platform.devices[c.dev]!;
      const routed = this.driver.routeTable().has(`${d.kind === 'physical' ? d.rid : -1}:${c.pasid ?? 0}`);
      const as = routeOf(view, c.dev, c.pasid);
      if (as === 'unknown' && !routed) {
        // A user table attached but translating nothing yet (no table bound): the hardware has no PASID entry to
        // route the request by, while the uAPI routes it to the table.
        this.faultsUnknown = true;
        return undefined;
      }
      const clause =
        want === 'queued'
          ? view.profile === 'rfc'
            ? 'FAULT-003'
            : 'FAULT-005'
          : want === 'none'
            ? 'FAULT-009'
            : typeof as === 'number' && view.profile === 'rfc'
              ? 'FAULT-004'
              : as === 'unknown' && want === 'SUCCESS'
                ? 'FAULT-014'
                : 'FAULT-006';
      clauses.add('HW-028');
      clauses.add(clause);
      const got =
        h.delivered !== undefined
          ? `is queued for the user${h.responses.length > 0 ? ` and answered ${h.responses.join(', ')}` : ''}`
          : h.responses.length > 0
            ? `is answered ${h.responses.join(', ')}`
            : 'gets no response';
      const ok =
        want === 'queued'
          ? h.delivered !== undefined && h.responses.length === 0
          : want === 'none'
            ? h.delivered === undefined && h.responses.length === 0
            : h.delivered === undefined && h.responses.length === 1 && h.responses[0] === want;
      if (!ok)
        return {
          clause,
          message: `page request of device ${c.dev}${c.pasid === undefined ? '' : ` with PASID ${c.pasid}`} at 0x${c.addr.toString(16)} (group ${c.grpid}${c.last ? ', last' : ''}): the uAPI model says ${want}, on the hardware the group ${got}`,
        };
    }
    if ((c.op === 'IOASID_FAULT_READ' || c.op === 'IOMMU_FAULT_READ') && outcome.ok && !this.faultsUnknown) {
      const clause = c.op === 'IOASID_FAULT_READ' ? 'FAULT-007' : 'FAULT-008';
      clauses.add(clause);
      const want = (outcome.out?.records ?? []) as readonly Record<string, unknown>[];
      const got = this.driver.lastDelivered;
      if (want.length !== got.length)
        return {
          clause,
          message: `${c.op}: the uAPI model returns ${want.length} fault records, the driver delivers ${got.length}`,
        };
      for (let i = 0; i < want.length; i++)
        for (const [k, v] of Object.entries(got[i]!)) {
          // A page request carries a page address (pcie §10.4.1): the record's address is compared by page.
          const norm = (x: unknown) => (k === 'addr' ? BigInt(x as bigint) & ~0xfffn : BigInt(x as bigint));
          if (want[i]![k] === undefined || norm(want[i]![k]) !== norm(v))
            return {
              clause,
              message: `${c.op}: record ${i} field ${k}: the uAPI model returns ${String(want[i]![k])}, the driver delivers ${String(v)}`,
            };
        }
    }
    if ((c.op === 'IOASID_FAULT_RESPOND' || c.op === 'IOMMU_FAULT_RESPOND') && outcome.ok && !this.faultsUnknown) {
      clauses.add('FAULT-015');
      clauses.add('HW-030');
      const n = c.op === 'IOASID_FAULT_RESPOND' ? 1 : Number(outcome.out?.bytes ?? 0) / 8;
      const sent = this.driver.lastResponses;
      const bad = sent.find((r) => !r.matched);
      if (sent.length !== n || bad !== undefined)
        return {
          clause: 'FAULT-015',
          message: `${c.op}: the uAPI model completes ${n} page group(s); the driver ${bad !== undefined ? `sent a response for group ${bad.event.group} that no outstanding group of device ${bad.event.dev} matched` : `sent ${sent.length} response(s)`}`,
        };
    }
    if (this.faultsUnknown) return undefined;
    // FAULT-029 on the hardware: the groups the user owes a response are the driver's, and each is still outstanding.
    let modelPending = 0;
    for (const q of view.faults()) modelPending += q.queued.length + q.awaiting.length;
    const events = this.driver.pendingEvents();
    const clause = /DETACH|UNBIND|ATTACH|CLOSE|RESET|DESTROY/.test(c.op) ? 'FAULT-023' : 'FAULT-029';
    if (modelPending > 0 || events.length > 0 || this.driver.lastAutoAnswered > 0) clauses.add(clause);
    if (events.length !== modelPending)
      return {
        clause,
        message: `after ${c.op}: the uAPI model holds ${modelPending} page group(s) for the user, the driver ${events.length}`,
      };
    for (const e of events) {
      const g = this.driver.machine.devices.get(e.sid)?.groups;
      if (g?.has(`${e.pasid ?? '-'}:${e.group}`) !== true)
        return {
          clause,
          message: `after ${c.op}: page group ${e.group} of device ${e.dev} is pending for the user but no longer outstanding on the device`,
        };
    }
    return undefined;
  }

  private checkDeviceDma(c: Resolved<Command> & { op: 'DEVICE_DMA' }, outcome: Outcome): RefineStep['violation'] {
    if (c.iova + c.length - 1n > U64_MAX) return undefined;
    const req = this.driver.hwRequest(c.dev, c.pasid);
    const hw =
      req === undefined ? undefined : this.driver.machine.dma({ ...req, addr: c.iova, size: c.length, write: c.write });
    const got = hw === undefined || !hw.ok ? undefined : this.driver.userOf(hw.hpa);
    if (outcome.ok) {
      const want = outcome.out as { buf?: number; off?: bigint | string } | undefined;
      const wb = want?.buf;
      const wo = want?.off === undefined ? undefined : BigInt(want.off);
      if (got === undefined || got.buf !== wb || got.off !== wo)
        return {
          clause: 'REF-001',
          message: `DEVICE_DMA ${describeReq(c.dev, c.pasid, c.iova, c.write)}: the uAPI model reaches buffer ${wb} offset ${wo}, the hardware ${hw === undefined ? 'nothing' : hw.ok ? show(got) : `faults (${hw.fault.code})`}`,
        };
    } else if (hw?.ok === true)
      return {
        clause: 'REF-001',
        message: `DEVICE_DMA ${describeReq(c.dev, c.pasid, c.iova, c.write)}: the uAPI model faults, the hardware reaches ${show(got)}`,
      };
    return undefined;
  }

  /**
   * REF-010: a CPU_ENQCMD reaches the device with the PASID the uAPI model reports (or faults when it does), and the
   * device's DMA with the delivered PASID follows the address space the user PASID is attached to.
   */
  private checkEnqcmd(view: ModelView, dev: number, pasid: number, outcome: Outcome): RefineStep['violation'] {
    const req = this.driver.hwRequest(dev, undefined) ?? this.driver.hwRequest(dev, pasid);
    const d = this.platform.devices[dev];
    if (req === undefined || d === undefined || !d.enqcmd) return undefined;
    const got = this.driver.machine.enqcmd(0, pasid, req.sid);
    const want = outcome.ok ? Number((outcome.out as { pasid?: number } | undefined)?.pasid) : undefined;
    const what = `CPU_ENQCMD with PASID ${pasid} to device ${dev}`;
    if (want === undefined)
      return got === undefined
        ? undefined
        : { clause: 'REF-010', message: `${what}: the uAPI model faults, the CPU delivers PASID ${got}` };
    if (got === undefined)
      return { clause: 'REF-010', message: `${what}: the uAPI model delivers PASID ${want}, the CPU faults` };
    // The work's DMA with the delivered PASID follows the address space of the user PASID.
    const as = routeOf(view, dev, pasid);
    if (typeof as !== 'number') return undefined;
    const a = view.areaAtOrAfter(as, 0n);
    const addr = a?.iova ?? 0n;
    const implied = impliedIn(view, as, addr, 8n, false);
    if (implied === 'unknown') return undefined;
    this.probes++;
    const hw = this.driver.machine.dma({ sid: req.sid, pasid: got, addr, size: 8n, write: false });
    const u = hw.ok ? this.driver.userOf(hw.hpa) : undefined;
    const ok = implied.ok
      ? u !== undefined && u.buf === implied.buf && u.off === implied.off
      : !hw.ok && !ROUTING_FAULT.test(hw.fault.code);
    return ok
      ? undefined
      : {
          clause: 'REF-010',
          message: `${what}: the work arrives with PASID ${got}, whose DMA read at 0x${addr.toString(16)} ${hw.ok ? `reaches ${show(u)}` : `faults (${hw.fault.code})`}, not what address space ${as} implies`,
        };
  }

  /** Draws the probes of step `k`: around what changed first, then a rotating sample of what stands. */
  private draw(view: ModelView, k: number, cmd: Resolved<Command>, outcome: Outcome): Probe[] {
    const out: Probe[] = [];
    const push = (p: Probe) => {
      if (out.length < PROBES_PER_STEP && p.addr >= 0n && p.addr + p.size - 1n <= U64_MAX) out.push(p);
    };
    // Routes now: device × (no PASID, attached PASIDs).
    const routes: { dev: number; pasid?: number; as: number | 'none' | 'unknown' }[] = [];
    const now = new Map<string, number>();
    const objects = view.objects();
    this.platform.devices.forEach((d, dev) => {
      const pasids =
        view.profile === 'rfc'
          ? view.device(dev).attachedTo.flatMap((a) => (a.pasid === undefined ? [] : [a.pasid]))
          : [];
      for (const pasid of [undefined, ...pasids]) {
        const as = routeOf(view, dev, pasid, objects);
        routes.push({ dev, ...(pasid === undefined ? {} : { pasid }), as });
        if (typeof as === 'number') now.set(`${dev}:${pasid ?? '-'}`, as);
      }
      void d;
    });
    const spaces = new Set<number>([...view.addressSpaces()]);
    const curAreas = new Map<number, Map<string, Area>>();
    for (const as of spaces) curAreas.set(as, new Map(listAreas(view, as).map((a) => [key(a), a])));
    const unmapStep = /UNMAP/.test(cmd.op);
    // 1. Bytes a step removed (REF-003, REF-004 when the call failed): every route that reached the space before.
    for (const [as, before] of this.prevAreas) {
      const after = curAreas.get(as);
      for (const [kk, a] of before) {
        if (after?.has(kk)) continue;
        const clause = unmapStep ? (outcome.ok ? 'REF-003' : 'REF-004') : 'REF-001';
        for (const [rk, ras] of this.prevRoutes) {
          if (ras !== as) continue;
          const [dev, p] = rk.split(':');
          const pasid = p === '-' ? undefined : Number(p);
          const base = {
            dev: Number(dev),
            ...(pasid === undefined ? {} : { pasid }),
            clause,
            why: `removed mapping [0x${a.iova.toString(16)}, 0x${a.last.toString(16)}]`,
          };
          push({ ...base, addr: a.iova, size: 8n, write: true });
          push({ ...base, addr: a.last, size: 1n, write: false });
        }
      }
    }
    // 2. Routes a step ended (REF-006): the first mapping of the space they reached.
    for (const [rk, as] of this.prevRoutes) {
      if (now.get(rk) === as) continue;
      const first = this.prevAreas.get(as)?.values().next().value;
      if (first === undefined) continue;
      const [dev, p] = rk.split(':');
      const pasid = p === '-' ? undefined : Number(p);
      push({
        dev: Number(dev),
        ...(pasid === undefined ? {} : { pasid }),
        addr: first.iova,
        size: 8n,
        write: false,
        clause: now.has(rk)
          ? view.profile === 'iommufd'
            ? 'REF-007'
            : 'REF-001'
          : pasid === undefined
            ? 'REF-006'
            : 'REF-008',
        why: 'a route the step ended',
      });
    }
    // 2b. Through the user first-stage tables the refinement wrote (REF-011; REF-012 once the parent lost a page).
    for (const r of routes) {
      if (r.as !== 'unknown') continue;
      const t = targetOf(view, r.dev, r.pasid, objects);
      const g = t === undefined ? undefined : this.guest.get(t);
      if (g === undefined) continue;
      const base = { dev: r.dev, ...(r.pasid === undefined ? {} : { pasid: r.pasid }), clause: 'REF-011', nested: g };
      push({ ...base, addr: GUEST_GVA, size: 8n, write: false, why: 'through the user first-stage table' });
      push({ ...base, addr: GUEST_GVA + 0xff8n, size: 8n, write: true, why: 'through the user first-stage table' });
      push({ ...base, addr: GUEST_HOLE, size: 8n, write: false, why: 'a GVA the user first-stage table does not map' });
    }
    // 3. New mappings (REF-002) and edges of what stands, rotating.
    for (const r of routes) {
      if (typeof r.as !== 'number') continue;
      const before = this.prevAreas.get(r.as);
      const list = [...(curAreas.get(r.as)?.values() ?? [])];
      if (list.length === 0) continue;
      const fresh = list.filter((a) => !before?.has(key(a)) || !this.prevRoutes.has(`${r.dev}:${r.pasid ?? '-'}`));
      const pick = list[(k + r.dev) % list.length]!;
      for (const a of [...fresh.slice(0, 2), pick]) {
        const nestedSw = view.profile === 'rfc' && (objects.find((o) => o.id === r.as)?.parent ?? 0) !== 0;
        const clause = nestedSw ? 'REF-013' : fresh.includes(a) ? 'REF-002' : 'REF-001';
        const base = {
          dev: r.dev,
          ...(r.pasid === undefined ? {} : { pasid: r.pasid }),
          clause,
          why: `mapping [0x${a.iova.toString(16)}, 0x${a.last.toString(16)}]`,
        };
        const ro = (a.prot & PROT.WRITE) === 0;
        push({ ...base, addr: a.iova, size: 8n, write: false });
        push({ ...base, addr: a.iova, size: 8n, write: true, ...(ro ? { clause: 'REF-005' } : {}) });
        push({
          ...base,
          addr: a.last - 3n,
          size: 4n,
          write: (k & 1) === 0,
          ...(ro && (k & 1) === 0 ? { clause: 'REF-005' } : {}),
        });
        push({ ...base, addr: a.last + 1n, size: 8n, write: false, why: 'just past a mapping' });
        if (a.iova >= PAGE) push({ ...base, addr: a.iova - 8n, size: 8n, write: true, why: 'just below a mapping' });
        const mid = a.iova + (((a.last - a.iova) / 2n) & ~(PAGE - 1n));
        push({ ...base, addr: mid, size: 8n, write: (k & 2) === 0 && !ro });
      }
    }
    // 4. A PASID no attachment of the device names (REF-008), and requests of unattached devices (REF-001).
    if (view.profile !== 'vfio-type1')
      this.platform.devices.forEach((d, dev) => {
        const some = [...curAreas.values()].flatMap((m) => [...m.values()])[0];
        if (some === undefined || !d.pasid) return;
        const used = new Set(view.device(dev).attachedTo.flatMap((a) => (a.pasid === undefined ? [] : [a.pasid])));
        // High in the space, away from the kernel's lowest-free allocations (which the uAPI view does not show).
        let q = 0x8000 + (k % 7);
        while (used.has(q)) q++;
        if (this.platform.iommu.pasidBits > 0)
          push({
            dev,
            pasid: q,
            addr: some.iova,
            size: 8n,
            write: false,
            clause: view.profile === 'rfc' ? 'REF-008' : 'REF-001',
            why: `PASID ${q}, which no attachment of the device names`,
          });
      });
    // 5. Under the global scheme: every real PASID of a local PASID, from every device attached with it (REF-009).
    if (view.profile === 'rfc') {
      const byLocal = new Map<number, number[]>();
      this.platform.devices.forEach((d, dev) => {
        if (d.kind !== 'physical') return;
        for (const a of view.device(dev).attachedTo)
          if (a.pasid !== undefined) byLocal.set(a.pasid, [...(byLocal.get(a.pasid) ?? []), dev]);
      });
      for (const [local, devs] of byLocal) {
        if (devs.length < 2) continue;
        const reals = new Set(devs.flatMap((dev) => this.driver.realPasids(dev, local)));
        if (reals.size <= 1) continue;
        for (const dev of devs)
          for (const g of reals) {
            const as = routeOf(view, dev, local, objects);
            if (typeof as !== 'number') continue;
            const a = curAreas.get(as)?.values().next().value;
            push({
              dev,
              pasid: local,
              hwPasid: g,
              addr: a?.iova ?? 0n,
              size: 8n,
              write: false,
              clause: 'REF-009',
              why: `real PASID ${g} of local PASID ${local}`,
            });
          }
      }
    }
    this.prevAreas = curAreas;
    this.prevRoutes = now;
    for (const p of out) p.as = routeOf(view, p.dev, p.pasid, objects);
    return out;
  }

  /**
   * Writes the guest table of every user first-stage table the hardware walks now and that has none yet (or was
   * rebound), when its root page is mapped by the parent (REF-011). The uAPI state does not model user
   * memory contents, so writing them is the refinement acting as the user.
   */
  private populateGuestTables(view: ModelView): void {
    const now = this.driver.userTables();
    // A table that is gone (its ID may come back for another table) has no guest table any more.
    for (const id of [...this.guest.keys()]) if (!now.some((u) => u.id === id)) this.guest.delete(id);
    for (const u of now) {
      const sig = `${u.root}:${u.parentAs}`;
      const have = this.guest.get(u.id);
      if (have?.sig === sig && have.tables[0]!.buf >= 0) continue;
      this.guest.delete(u.id);
      if (u.fiveLevel || (u.root & (PAGE - 1n)) !== 0n) continue;
      const w = impliedIn(view, u.parentAs, u.root, 8n, false);
      if (w === 'unknown') continue;
      // A root the parent does not map: every walk faults at it (REF-012), until the parent maps it (then written).
      if (!w.ok) {
        this.guest.set(u.id, {
          sig,
          parentAs: u.parentAs,
          tables: [{ gpa: u.root, buf: -1, off: 0n }],
          gpa: 0n,
          entries: [],
        });
        continue;
      }
      const first = view.areaAtOrAfter(u.parentAs, 0n);
      if (first === undefined) continue;
      const gpa = first.iova & ~(PAGE - 1n);
      const hpa = this.driver.hpaOf(w.buf, w.off)!;
      const entries = [
        { hpa, value: encodeFsPte(u.root, true) },
        { hpa: hpa + 7n * 8n, value: encodeFsPte(gpa, true) },
        { hpa: hpa + 8n * 8n, value: 0n },
      ];
      for (const e of entries) this.driver.machine.mem.writeQ(e.hpa, e.value);
      this.guest.set(u.id, {
        sig,
        parentAs: u.parentAs,
        tables: [{ gpa: u.root, buf: w.buf, off: w.off }],
        gpa,
        entries,
      });
    }
  }

  /**
   * What a probe through a guest table implies: the walk reads the table page through the parent (a page the parent
   * no longer maps faults, REF-012; one it maps to other memory holds unknown contents), then the GVA's GPA goes
   * through the parent with the probe's access.
   */
  private guestImplied(view: ModelView, p: Probe): Implied {
    const g = p.nested!;
    if (g.entries.some((e) => this.driver.machine.mem.readQ(e.hpa) !== e.value)) return 'unknown';
    if (p.addr >= GUEST_HOLE) return { ok: false };
    for (const t of g.tables) {
      const w = impliedIn(view, g.parentAs, t.gpa, 8n, false);
      if (w === 'unknown') return 'unknown';
      if (!w.ok) return { ok: false };
      // Mapped now to memory other than the table written (or none was written yet): contents unknown.
      if (w.buf !== t.buf || w.off !== t.off) return 'unknown';
    }
    return impliedIn(view, g.parentAs, g.gpa + (p.addr - GUEST_GVA), p.size, p.write);
  }

  /** Runs one probe on the hardware and compares it with what the uAPI state implies. */
  private run(view: ModelView, probe: Probe, clauses: Set<string>): RefineStep['violation'] {
    const as = probe.nested?.parentAs ?? probe.as ?? routeOf(view, probe.dev, probe.pasid);
    if (as === 'unknown') return undefined;
    const want: Implied =
      probe.nested !== undefined
        ? this.guestImplied(view, probe)
        : as === 'none'
          ? { ok: false }
          : impliedIn(view, as, probe.addr, probe.size, probe.write);
    if (want === 'unknown') return undefined;
    // A mapped GVA that must fault because the parent no longer maps what the walk needs: REF-012.
    const p =
      probe.nested !== undefined && !want.ok && probe.addr < GUEST_HOLE ? { ...probe, clause: 'REF-012' } : probe;
    this.probes++;
    clauses.add('REF-001');
    clauses.add(p.clause);
    const req =
      p.hwPasid !== undefined ? this.driver.hwRequest(p.dev, undefined) : this.driver.hwRequest(p.dev, p.pasid);
    const hwReq = req === undefined ? undefined : p.hwPasid !== undefined ? { sid: req.sid, pasid: p.hwPasid } : req;
    const hw =
      hwReq === undefined
        ? undefined
        : this.driver.machine.dma({ ...hwReq, addr: p.addr, size: p.size, write: p.write });
    const got = hw?.ok === true ? this.driver.userOf(hw.hpa) : undefined;
    const what = `${describeReq(p.dev, p.pasid, p.addr, p.write)}${p.hwPasid !== undefined ? ` as hardware PASID ${p.hwPasid}` : ''} (${p.why})`;
    if (want.ok) {
      if (got === undefined || got.buf !== want.buf || got.off !== want.off)
        return {
          clause:
            p.clause === 'REF-005' ||
            p.clause === 'REF-003' ||
            p.clause === 'REF-004' ||
            p.clause === 'REF-006' ||
            p.clause === 'REF-008'
              ? 'REF-001'
              : p.clause,
          message: `${what}: the uAPI state implies buffer ${want.buf} offset 0x${want.off.toString(16)}, the hardware ${hw === undefined ? 'drops the request' : hw.ok ? `reaches ${show(got)}` : `faults (${hw.fault.code})`}`,
        };
    } else if (typeof as === 'number' && hw !== undefined && !hw.ok && ROUTING_FAULT.test(hw.fault.code)) {
      // REF-001: the state routes the request to an address space, so the hardware must reach that address space's
      // tables; a fault at the root, context or PASID level means it followed no address space at all.
      return {
        clause: p.clause === 'REF-009' ? 'REF-009' : p.clause === 'REF-002' ? 'REF-002' : 'REF-001',
        message: `${what}: the uAPI state routes it to address space ${as} (where it faults), the hardware blocks it before any page table (${hw.fault.code})`,
      };
    } else if (hw?.ok === true) {
      const ro =
        as !== 'none' &&
        view.areaAtOrAfter(as, p.addr)?.iova !== undefined &&
        p.write &&
        impliedIn(view, as, p.addr, p.size, false) !== 'unknown' &&
        (impliedIn(view, as, p.addr, p.size, false) as { ok: boolean }).ok;
      return {
        clause: ro ? 'REF-005' : p.clause === 'REF-002' ? 'REF-001' : p.clause,
        message: `${what}: the uAPI state implies a fault, the hardware reaches ${show(got)} (host-physical 0x${hw.hpa.toString(16)})`,
      };
    }
    return undefined;
  }
}

function describeReq(dev: number, pasid: number | undefined, addr: bigint, write: boolean): string {
  return `${write ? 'write' : 'read'} by device ${dev}${pasid === undefined ? '' : ` with PASID ${pasid}`} at 0x${addr.toString(16)}`;
}

function show(u: { buf: number; off: bigint } | undefined): string {
  return u === undefined ? 'memory outside every user buffer' : `buffer ${u.buf} offset 0x${u.off.toString(16)}`;
}

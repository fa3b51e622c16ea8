/**
 * The refinement check (chapter REF): after every uAPI step, the reference driver (or a broken one) realises the
 * uAPI model's state on the hardware model, and DMA probes — drawn at mapping edges, inside, outside, with and
 * without PASID, reads and writes — must have on the hardware exactly the outcome the uAPI state implies. A probe
 * that disagrees is a violation of the REF clause it instantiates: REF-003 for a byte an UNMAP removed, REF-005 for a
 * write to a read-only mapping, REF-006 for a route a detach ended, REF-008 for a PASID nothing attached, REF-009 for
 * a global PASID, REF-002 for a new mapping, REF-001 otherwise. DEVICE_DMA steps of the trace are replayed on the
 * hardware too and must match the model's outcome (REF-001).
 *
 * The runner calls it with `run --refine` ({@link createRefiner} per trace). It judges the driver and hardware
 * model, not the adapter under test: the adapter's replies are checked by the lockstep comparison as always.
 *
 * Not for: judging DMA the uAPI model cannot predict (a nested address space whose first-stage table is user memory):
 * such probes are not drawn.
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
    if (resolved.op === 'CPU_ENQCMD') {
      clauses.add('REF-010');
      const v = this.checkEnqcmd(view, resolved.dev, resolved.pasid, outcome);
      if (v !== undefined) return { clauses: [...clauses], violation: v };
    }
    const probes = this.draw(view, k, resolved, outcome);
    for (const p of probes) {
      const v = this.run(view, p, clauses);
      if (v !== undefined) return { clauses: [...clauses], violation: v };
    }
    return { clauses: [...clauses] };
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

  /** Runs one probe on the hardware and compares it with what the uAPI state implies. */
  private run(view: ModelView, p: Probe, clauses: Set<string>): RefineStep['violation'] {
    const as = p.as ?? routeOf(view, p.dev, p.pasid);
    if (as === 'unknown') return undefined;
    const want: Implied = as === 'none' ? { ok: false } : impliedIn(view, as, p.addr, p.size, p.write);
    if (want === 'unknown') return undefined;
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

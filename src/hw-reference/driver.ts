/**
 * The reference driver: realises the uAPI model's state on the hardware model, the way the Linux VT-d driver and
 * iommufd / VFIO do it. After each uAPI step it reads the command, its outcome and the model's read-only view
 * (`Model.view`, never the model's private state) and brings the hardware in line:
 *
 * - kernel-managed address spaces (rfc kernel IOASIDs, iommufd paging HWPTs, the type1 container) get second-stage
 *   tables (PGTT 010b, 4- or 5-level by the aperture) whose leaves are the pinned user pages, with 2-MiB and 1-GiB
 *   leaves where IOVA and physical address allow (HW-007, HW-009);
 * - iommufd nested HWPTs get PGTT 011b entries over their parent's tables (HW-011);
 * - attaching programs the device's scalable-mode context entry (on first use) and the PASID-table entry of
 *   RID_PASID (no PASID) or of the real PASID (HW-001 to HW-006); real PASIDs follow the PASID schemes: per-RID
 *   delegated (the user PASID), per-RID host-managed (a real PASID on the parent's RID for a mediated device),
 *   global (one global PASID per local PASID, fd-wide, programmed next to the local one on physical devices), and
 *   the CPU PASID translation table for ENQCMD (HW-031);
 * - every change issues the invalidations VT-d requires: a removed mapping a page-selective IOTLB invalidation then
 *   device-TLB invalidations (HW-020, HW-022, HW-024); a torn-down PASID entry a PASID-cache, an IOTLB and a
 *   device-TLB invalidation (HW-019, HW-020); a freed domain a domain-selective one;
 * - page requests (HW-028) on a user-managed table (an rfc IOASID with a bound first-stage table, an iommufd nested
 *   HWPT with a FAULT) become uAPI fault records, delivered at the uAPI's fault reads and completed on the device by
 *   the uAPI's responses (HW-030); on a kernel-managed rfc IOASID they are fixed in the kernel; otherwise, and when
 *   an attachment ends, they are answered INVALID (chapter FAULT).
 *
 * A broken driver ({@link DriverBug}) omits or misdirects one of these steps; the refinement check must catch it.
 *
 * Not for: judging anything (see `conformance/refine.ts`), or being a model of Linux's data structures.
 *
 * @module
 */
import type { Area } from '../reference/core/areas.ts';
import { PROT } from '../reference/core/areas.ts';
import type { Command, Outcome, Profile } from '../reference/commands.ts';
import type { Platform } from '../reference/platform.ts';
import type { Resolved } from '../reference/resolved.ts';
import { listAreas, type ModelView } from '../reference/view.ts';
import {
  AW,
  FSPM,
  PGTT,
  PTE_ADDR_MASK,
  decodeRoot,
  encodeContext,
  encodePasidDir,
  encodePasidEntry,
  encodeRoot,
  encodeSsPte,
  levelIndex,
  levelSpan,
} from './entries.ts';
import { Machine } from './machine.ts';
import { FrameAllocator } from './memory.ts';
import { DEFAULT_VTD_CONFIG, devTlbEncode, psiCover, DEVTLB_ALL_ADDR, type VtdInv } from './vtd.ts';
import type { PageRequestRecord } from './prq.ts';
import type { ResponseCode } from './device.ts';
import { RFC_FAULT_QUEUE_DEPTH } from '../reference/fault.ts';

/** The deliberate defects of the broken drivers the refinement check must catch. */
export type DriverBug =
  /** Unmapping clears the page-table entries but issues no IOTLB invalidation (REF-003). */
  | 'skip-iotlb-after-unmap'
  /** Tearing down a PASID entry flushes the PASID cache, IOTLB and device TLB of the wrong PASID (REF-006). */
  | 'flush-wrong-pasid'
  /** The global PASID scheme gives each device its own global PASID for one local PASID (REF-009). */
  | 'per-device-global-pasid';

/** The broken drivers, with what they get wrong. */
export const DRIVER_BUGS: Readonly<Record<DriverBug, string>> = {
  'skip-iotlb-after-unmap': 'skips the IOTLB invalidation after UNMAP',
  'flush-wrong-pasid': 'flushes the wrong PASID when it tears down a PASID entry',
  'per-device-global-pasid': 'gives each device its own global PASID for one local PASID',
};

/** A situation the driver does not realise (the refinement check reports it as a limit, not a failure). */
export class DriverLimit extends Error {}

/** Where the driver's table frames live. */
const TABLE_BASE = 0x1000_0000n;
const TABLE_FRAMES = 1 << 20;
/** Where pinned user memory lives: buffer k starts at a 1-GiB-aligned host-physical address from here. */
const USER_BASE = 1n << 40n;
const GiB = 1n << 30n;
/** The request ID the hardware sees for RID_PASID: Linux's IOMMU_NO_PASID. */
export const RID_PASID = 0;

/** A hardware route: the PASID-table entry of (sid, pasid) points at a domain. */
interface Route {
  readonly sid: number;
  readonly pasid: number;
  readonly domain: string;
  /** For a nested domain: the user's first-stage root (parent IOVA space) and paging mode. */
  readonly nested?: { readonly fsptptr: bigint; readonly fspm: number };
}

/** A domain: a DID and second-stage tables mirroring one address space's areas. */
interface Domain {
  readonly key: string;
  readonly did: number;
  /** The address space whose areas it maps (an rfc IOASID, an iommufd IOAS, 0 for the type1 container). */
  readonly as: number;
  /** Nested domains map nothing themselves: they use `parent`'s tables. */
  readonly parent?: string;
  readonly root: bigint;
  readonly levels: number;
  readonly frames: bigint[];
  /** Installed areas by first IOVA, with the identity they were installed with. */
  readonly installed: Map<bigint, { area: Area; id: string }>;
}

/**
 * A page group the driver handed to the user (HW-028 → a uAPI fault record): from the last request's arrival until
 * the user's response or the end of the attachment answers it (FAULT-003, FAULT-005, FAULT-023).
 */
export interface FaultEvent {
  /** The device index that raised it. */
  readonly dev: number;
  /** The requester ID and PASID the hardware saw (where the response goes, FAULT-015). */
  readonly sid: number;
  readonly pasid?: number;
  readonly group: number;
  /** The queue it is reported on: 0 for the rfc fd, the FAULT object's ID for iommufd. */
  readonly queue: number;
  /** The table that faulted: the rfc IOASID or the iommufd HWPT. */
  readonly table: number;
  /** The route (`sid:pasid`) it came through: ending that route answers it (FAULT-023). */
  readonly route: string;
  /** The group's requests in arrival order: page address and `IOMMU_PGFAULT_PERM_*` bits. */
  readonly requests: readonly { readonly addr: bigint; readonly perm: number; readonly last: boolean }[];
}

/** A uAPI fault record as the driver composes it for the user (the cookie aside). */
export type FaultRecord = Readonly<Record<string, number | bigint>>;

/** What became of one page request the driver sent on behalf of a device (DEVICE_PAGE_REQUEST). */
export interface PageRequestHandling {
  /** The responses the device received while the request was handled, in order (PCIe codes, upper case). */
  readonly responses: readonly ('SUCCESS' | 'INVALID' | 'FAILURE')[];
  /** The group handed to the user, when this request completed a user-managed group. */
  readonly delivered?: FaultEvent;
  /** Why the request could not be realised (the device or its route is beyond what the driver models). */
  readonly unknown?: string;
}

const areaId = (a: Area): string => `${a.iova}:${a.last}:${a.buf}:${a.off}:${a.prot}`;

/** The reference driver over one machine. */
export class ReferenceDriver {
  readonly machine: Machine;
  private readonly alloc: FrameAllocator;
  private readonly root: bigint;
  private readonly levels: number;
  private readonly bufBase: bigint[] = [];
  private readonly domains = new Map<string, Domain>();
  private readonly routes = new Map<string, Route & { readonly user: string }>();
  private readonly contexts = new Map<number, { dir: bigint; tables: Map<number, bigint> }>();
  private readonly ctxTables = new Map<string, bigint>();
  private nextDid = 2;
  private readonly freeDids: number[] = [];
  /**
   * Kernel-allocated PASIDs — global PASIDs (`L:local`), shared real PASIDs of ENQCMD-capable mediated devices
   * (`E:user:ioasid`), real PASIDs of other mediated devices (`M:dev:user`) — with the IOASID they serve. The
   * lowest free value of the pool is taken (`[min, 2^W)` for global PASIDs, `[1, 2^W)` otherwise), as the uAPI
   * model picks it, so that a DEVICE_DMA naming a kernel-allocated PASID means the same on both levels.
   */
  private readonly kpasids = new Map<string, { real: number; ioasid: number }>();
  /** Real PASIDs of mediated devices' RID attachments on their parent's RID (from the top of the PASID space). */
  private readonly mdevRid = new Map<number, number>();
  /** User PASID of a mediated device (`dev:user`) → its real PASID on the parent's RID, rebuilt at every step. */
  private userToReal = new Map<string, number>();
  /** iommufd nested HWPTs and rfc bound user tables: id → first-stage root (parent IOVA) and paging mode. */
  private readonly nestedData = new Map<number, { fsptptr: bigint; fspm: number }>();
  /** CPU PASID translations programmed for VM 0: local → real. */
  private readonly cpuMaps = new Map<number, number>();
  /** Test-only introspection: every invalidation issued, in order. */
  readonly issued: VtdInv[] = [];
  /** Page requests of groups whose last request has not arrived, by `sid:pasid:group`. */
  private readonly partialGroups = new Map<string, PageRequestRecord[]>();
  /** Page groups handed to the user and not read yet, in arrival order (all queues). */
  private faultQueue: FaultEvent[] = [];
  /** Page groups read by the user and awaiting its response, by `queue:cookie`. */
  private readonly awaiting = new Map<string, FaultEvent>();
  /** iommufd: the FAULT object each fault-capable HWPT reports to. */
  private readonly faultOf = new Map<number, number>();
  /** The records the last fault read delivered, as the driver composed them (for the refinement check). */
  lastDelivered: FaultRecord[] = [];
  /** The page group responses the last uAPI fault response sent: the group, the code, whether the device had it. */
  lastResponses: { event: FaultEvent; code: ResponseCode; matched: boolean }[] = [];
  /** Page groups the last step answered INVALID because their attachment ended (FAULT-023). */
  lastAutoAnswered = 0;

  constructor(
    readonly platform: Platform,
    readonly profile: Profile,
    readonly bug?: DriverBug,
  ) {
    const ss1g = (platform.iommu.pageSizes & GiB) !== 0n;
    this.machine = new Machine(
      platform.devices.filter((d) => d.kind === 'physical').map((d) => ({ sid: d.rid, ats: d.ats, pri: d.pri })),
      { ...DEFAULT_VTD_CONFIG, ss1g, fs1g: ss1g },
    );
    this.alloc = new FrameAllocator(this.machine.mem, TABLE_BASE, TABLE_FRAMES);
    this.levels = platform.iommu.aperture.last >= 1n << 48n ? 5 : 4;
    let base = USER_BASE;
    for (const b of platform.buffers) {
      this.bufBase.push(base);
      base += ((b.size + GiB - 1n) / GiB) * GiB;
    }
    this.root = this.alloc.alloc();
    this.machine.setRoot(this.root);
  }

  // ============================================================================================================
  // Pinned user memory

  /** The host-physical address of byte `off` of user buffer `buf` (where the driver pinned it). */
  hpaOf(buf: number, off: bigint): bigint | undefined {
    const b = this.platform.buffers[buf];
    if (b === undefined || off < 0n || off >= b.size) return undefined;
    return this.bufBase[buf]! + off;
  }

  /** The user memory at host-physical address `hpa`, or undefined when it is not pinned user memory. */
  userOf(hpa: bigint): { buf: number; off: bigint } | undefined {
    for (let k = 0; k < this.bufBase.length; k++) {
      const off = hpa - this.bufBase[k]!;
      if (off >= 0n && off < this.platform.buffers[k]!.size) return { buf: k, off };
    }
    return undefined;
  }

  // ============================================================================================================
  // Requests as the hardware sees them

  /**
   * The requester ID and PASID with which a DMA of device `dev` (user PASID `pasid`, or none) reaches the IOMMU: a
   * physical device uses its own RID and the user PASID; a mediated device its parent's RID and the real PASID the
   * driver allocated for it (undefined when it has none: the mediation path drops the request).
   */
  hwRequest(dev: number, pasid?: number): { sid: number; pasid?: number } | undefined {
    const d = this.platform.devices[dev];
    if (d === undefined) return undefined;
    if (d.kind === 'physical') return { sid: d.rid, ...(pasid === undefined ? {} : { pasid }) };
    const parent = this.platform.devices[d.parent];
    // vfio-type1: a mediated device's DMA is its parent's, translated by the container like its group.
    if (this.profile === 'vfio-type1')
      return parent === undefined ? undefined : { sid: parent.rid, ...(pasid === undefined ? {} : { pasid }) };
    const real = pasid === undefined ? this.mdevRid.get(dev) : this.userToReal.get(`${dev}:${pasid}`);
    return parent === undefined || real === undefined ? undefined : { sid: parent.rid, pasid: real };
  }

  /** The real PASIDs the driver installed for user PASID `pasid` on device `dev` (test and refinement introspection). */
  realPasids(dev: number, pasid: number): number[] {
    const out: number[] = [];
    const d = this.platform.devices[dev];
    if (d === undefined) return out;
    const sid = d.kind === 'physical' ? d.rid : this.platform.devices[d.parent]?.rid;
    for (const r of this.routes.values())
      if (r.sid === sid && this.routeUser.get(`${r.sid}:${r.pasid}`) === `${dev}:${pasid}`) out.push(r.pasid);
    return out.sort((a, b) => a - b);
  }

  /** The global PASID the CPU translation table maps local PASID `local` to (VM 0), if any. */
  cpuTranslation(local: number): number | undefined {
    return this.machine.cpu.entry(0, local);
  }

  /** Routes (sid:pasid) → the (dev:userPasid) they realise, for {@link ReferenceDriver.realPasids}. */
  private readonly routeUser = new Map<string, string>();

  // ============================================================================================================
  // One uAPI step

  /**
   * Realises one uAPI step on the hardware: `cmd` (references resolved) with the model's `outcome`, and the model's
   * `view` after it.
   */
  step(cmd: Resolved<Command>, outcome: Outcome, view: ModelView): void {
    if (this.profile === 'iommufd')
      this.platform.devices.forEach((_, i) => this.viewDevId.set(i, view.device(i).devId));
    this.noteCommand(cmd, outcome);
    this.sync(view);
  }

  /** What the view does not show: schemes, nested HWPT data, CPU translations. */
  private noteCommand(cmd: Resolved<Command>, outcome: Outcome): void {
    this.lastDelivered = [];
    this.lastResponses = [];
    this.lastAutoAnswered = 0;
    if (!outcome.ok) return;
    const c = cmd as { op: string } & Record<string, unknown>;
    switch (c.op) {
      case 'IOMMU_HWPT_ALLOC': {
        const data = c.data as { pgtbl_addr: bigint; addr_width: number } | undefined;
        const id = outcome.out?.out_hwpt_id ?? outcome.out?.id;
        if (data !== undefined && typeof id === 'number')
          this.nestedData.set(id, { fsptptr: data.pgtbl_addr, fspm: data.addr_width > 48 ? FSPM.L5 : FSPM.L4 });
        if (typeof id === 'number' && typeof c.fault_id === 'number') this.faultOf.set(id, c.fault_id);
        break;
      }
      case 'IOASID_FAULT_READ':
      case 'IOMMU_FAULT_READ':
        this.deliver(c.op === 'IOASID_FAULT_READ' ? 0 : (c.fault_id as number), outcome);
        break;
      case 'IOASID_FAULT_RESPOND': {
        const sent = (outcome.out?.response as string | undefined)?.toLowerCase() as ResponseCode | undefined;
        this.respondCookies(0, [{ cookie: c.cookie as number, code: sent ?? 'invalid' }]);
        break;
      }
      case 'IOMMU_FAULT_RESPOND': {
        const more = (c.more as readonly { cookie: number; code: number }[] | undefined) ?? [];
        const all = [{ cookie: c.cookie as number, code: c.code as number }, ...more];
        const n = Number(outcome.out?.bytes ?? 0) / 8;
        this.respondCookies(
          c.fault_id as number,
          all.slice(0, n).map((r) => ({ cookie: r.cookie, code: r.code === 0 ? 'success' : 'invalid' })),
        );
        break;
      }
      case 'IOASID_BIND_PGTABLE':
        this.nestedData.set(c.ioasid as number, {
          fsptptr: c.root as bigint,
          fspm: c.table_format === 'vtd-s1-5lvl' ? FSPM.L5 : FSPM.L4,
        });
        break;
      case 'IOASID_INVALIDATE_CACHE':
        this.flushFirstStage(`nested:${c.ioasid as number}`);
        break;
      case 'IOMMU_HWPT_INVALIDATE':
        this.flushFirstStage(`nested:${c.hwpt_id as number}`);
        break;
      default:
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Desired state from the view

  private areasOf(view: ModelView, as: number): Area[] {
    return listAreas(view, as);
  }

  /**
   * The mappings a domain of address space `as` holds: its areas, or for a software-nesting child (REF-013) the
   * composition of its areas with its parent's, with the intersection of both permissions (a shadow table).
   */
  private shadowAreas(view: ModelView, as: number): Area[] {
    const own = this.areasOf(view, as);
    const parent = this.profile === 'rfc' ? view.objects().find((o) => o.id === as)?.parent : undefined;
    if (parent === undefined || parent === 0) return own;
    const out: Area[] = [];
    for (const a of own) {
      const from = a.va;
      const to = a.va + (a.last - a.iova);
      for (const b of this.areasOf(view, parent)) {
        if (b.last < from || b.iova > to) continue;
        const s = b.iova > from ? b.iova : from;
        const e = b.last < to ? b.last : to;
        out.push({
          ...b,
          iova: a.iova + (s - from),
          last: a.iova + (e - from),
          off: b.off + (s - b.iova),
          va: b.va + (s - b.iova),
          prot: a.prot & b.prot,
        });
      }
    }
    return out;
  }

  /** The domain key and address space of an attachment target, or undefined when nothing translates through it. */
  private target(
    view: ModelView,
    pt: number,
    objects: ReturnType<ModelView['objects']>,
  ): { key: string; as: number; nestedOf?: { key: string; as: number; hwpt: number } } | undefined {
    const o = objects.find((x) => x.id === pt);
    if (o === undefined) return undefined;
    if (o.kind === 'ioasid') {
      if (o.format === 'kernel') return { key: `ioasid:${pt}`, as: pt };
      const parent = objects.find((x) => x.id === o.parent);
      const bound = view.rfc().tables.find((x) => x.id === pt)?.bound === true;
      if (o.format !== 'pgtable' || !bound || parent?.kind !== 'ioasid' || parent.format !== 'kernel') return undefined;
      return { key: `nested:${pt}`, as: parent.id, nestedOf: { key: `ioasid:${parent.id}`, as: parent.id, hwpt: pt } };
    }
    if (o.kind === 'hwpt-paging') return { key: `hwpt:${pt}`, as: o.parent ?? 0 };
    if (o.kind === 'hwpt-nested') {
      const parent = objects.find((x) => x.id === o.parent);
      if (parent?.kind !== 'hwpt-paging') return undefined;
      return {
        key: `nested:${pt}`,
        as: parent.parent ?? 0,
        nestedOf: { key: `hwpt:${parent.id}`, as: parent.parent ?? 0, hwpt: pt },
      };
    }
    return undefined;
  }

  /** The routes the uAPI state implies, with the (dev:userPasid) each realises. */
  private desired(view: ModelView): {
    routes: Map<string, Route & { user: string }>;
    domains: Map<string, { as: number; parent?: string }>;
  } {
    const routes = new Map<string, Route & { user: string }>();
    const domains = new Map<string, { as: number; parent?: string }>();
    const objects = view.objects();
    const pasidNeeds: {
      dev: number;
      sid: number;
      user: number;
      key: string;
      ioasid: number;
      t: ReturnType<ReferenceDriver['target']>;
      physical: boolean;
    }[] = [];
    const mdevRidNow = new Set<number>();
    const mdevRidAdds: { dev: number; sid: number; t: NonNullable<ReturnType<ReferenceDriver['target']>> }[] = [];
    const add = (sid: number, pasid: number, user: string, t: NonNullable<ReturnType<ReferenceDriver['target']>>) => {
      if (t.nestedOf !== undefined) {
        const data = this.nestedData.get(t.nestedOf.hwpt);
        if (data === undefined) return;
        domains.set(t.nestedOf.key, { as: t.nestedOf.as });
        domains.set(t.key, { as: t.as, parent: t.nestedOf.key });
        routes.set(`${sid}:${pasid}`, { sid, pasid, domain: t.key, user, nested: data });
        return;
      }
      domains.set(t.key, { as: t.as });
      routes.set(`${sid}:${pasid}`, { sid, pasid, domain: t.key, user });
    };
    if (this.profile === 'vfio-type1') {
      const ct = view.container();
      if (ct.iommuType === 0) return { routes, domains };
      this.platform.devices.forEach((d, i) => {
        if (d.kind === 'physical' && ct.groups.includes(d.group))
          add(d.rid, RID_PASID, `${i}:rid`, { key: 'container', as: 0 });
      });
      return { routes, domains };
    }
    this.platform.devices.forEach((d, i) => {
      const att = view.device(i).attachedTo;
      if (att.length === 0) return;
      const rid = att.filter((a) => a.pasid === undefined).map((a) => a.pt);
      // rfc: the leaf of the RID's chain translates (a child's output goes through its parent).
      const leafRid = rid.find((id) => !rid.some((other) => objects.find((o) => o.id === other)?.parent === id));
      const physical = d.kind === 'physical';
      const sid = physical ? d.rid : this.platform.devices[d.parent]?.rid;
      if (sid === undefined) return;
      if (leafRid !== undefined) {
        const t = this.target(view, leafRid, objects);
        if (t !== undefined) {
          if (physical) add(sid, RID_PASID, `${i}:rid`, t);
          else {
            // After the kernel-allocated PASIDs, which the user can name and so take precedence (below).
            mdevRidNow.add(i);
            mdevRidAdds.push({ dev: i, sid, t });
          }
        }
      }
      for (const a of att) {
        if (a.pasid === undefined) continue;
        // An attachment to an address space that translates nothing yet (an unbound user table) installs no PASID
        // entry, but still holds its kernel-allocated PASID (PASID-019).
        const t = this.target(view, a.pt, objects);
        const key = this.kernelKey(view, i, a.pasid, a.pt);
        if (physical && key === undefined) {
          if (t !== undefined) add(sid, a.pasid, `${i}:${a.pasid}`, t); // PASID-003: delegated
        } else pasidNeeds.push({ dev: i, sid, user: a.pasid, key: key!, ioasid: a.pt, t, physical });
      }
    });
    // Kernel-allocated PASIDs: release those no attachment or CPU translation holds (PASID-019), then allocate.
    const rfc = this.profile === 'rfc' ? view.rfc() : undefined;
    const held = new Set(pasidNeeds.map((n) => n.key));
    for (const c of rfc?.cpu ?? []) {
      const k = this.cpuKeyFor(rfc!.mode === 'global', c.pasid, c.ioasid);
      if (k !== undefined) held.add(k);
    }
    for (const k of [...this.kpasids.keys()]) if (!held.has(k)) this.kpasids.delete(k);
    this.userToReal = new Map();
    for (const n of pasidNeeds) {
      const real = this.kernelPasid(view, n.key, n.dev, n.ioasid);
      if (!n.physical) this.userToReal.set(`${n.dev}:${n.user}`, real);
      if (n.t === undefined) continue;
      if (n.physical) add(n.sid, n.user, `${n.dev}:${n.user}`, n.t); // PASID-017: the local and the global entry
      add(n.sid, real, `${n.dev}:${n.user}`, n.t);
    }
    for (const [dev] of this.mdevRid) if (!mdevRidNow.has(dev)) this.mdevRid.delete(dev);
    // A mediated device's RID attachment uses a real PASID of its parent's RID that nothing else uses; one that a
    // kernel-allocated PASID now needs (a global range set later) moves.
    const taken = new Set([...this.kpasids.values()].map((k) => k.real));
    for (const m of mdevRidAdds) {
      const have = this.mdevRid.get(m.dev);
      if (have !== undefined && (taken.has(have) || routes.has(`${m.sid}:${have}`))) this.mdevRid.delete(m.dev);
      add(m.sid, this.mdevRidPasid(m.dev, m.sid, taken, routes), `${m.dev}:rid`, m.t);
    }
    return { routes, domains };
  }

  /** The key of the kernel-allocated PASID of an attachment, as chapter PASID keys it; undefined when delegated. */
  private kernelKey(view: ModelView, dev: number, user: number, ioasid: number): string | undefined {
    const global = this.profile === 'rfc' && view.rfc().mode === 'global';
    if (global) return this.bug === 'per-device-global-pasid' ? `L:${user}@${dev}` : `L:${user}`;
    const d = this.platform.devices[dev]!;
    if (d.kind === 'physical') return undefined;
    return d.enqcmd && this.platform.iommu.enqcmd ? `E:${user}:${ioasid}` : `M:${dev}:${user}`;
  }

  /** The kernel-allocated PASID a CPU translation of `user` on `ioasid` uses (KVM_MAP_PASID), if any. */
  /**
   * The kernel PASID a CPU translation (KVM_MAP_PASID of `user` to `ioasid`) holds: the one it named when it was
   * made, which a later change of the PASID scheme does not move (the translation keeps its real PASID).
   */
  private cpuKeyFor(global: boolean, user: number, ioasid: number): string | undefined {
    const id = `${user}:${ioasid}`;
    const have = this.cpuKeyOf.get(id);
    if (have !== undefined && this.kpasids.has(have)) return have;
    const k = this.cpuKey(global, user, ioasid);
    if (k === undefined) this.cpuKeyOf.delete(id);
    else this.cpuKeyOf.set(id, k);
    return k;
  }
  private readonly cpuKeyOf = new Map<string, string>();

  private cpuKey(global: boolean, user: number, ioasid: number): string | undefined {
    if (global) {
      if (this.kpasids.has(`L:${user}`)) return `L:${user}`;
      return [...this.kpasids.keys()].find((k) => k.startsWith(`L:${user}@`));
    }
    if (this.kpasids.has(`E:${user}:${ioasid}`)) return `E:${user}:${ioasid}`;
    return [...this.kpasids].find(([k, v]) => k.startsWith('M:') && k.endsWith(`:${user}`) && v.ioasid === ioasid)?.[0];
  }

  /** The kernel-allocated PASID of `key`, allocating the lowest free one of its pool (PASID-016, PASID-006). */
  private kernelPasid(view: ModelView, key: string, dev: number, ioasid: number): number {
    const have = this.kpasids.get(key);
    if (have !== undefined) return have.real;
    const global = key.startsWith('L:');
    const lo = global ? view.rfc().globalMin : 1;
    const hi = 2 ** this.platform.iommu.pasidBits;
    const used = new Set([...this.kpasids.values()].map((v) => v.real));
    const d = this.platform.devices[dev]!;
    // A per-RID mediated device's real PASID must not collide with a user PASID of its parent's RID.
    if (!global && d.kind === 'mediated')
      for (const a of view.device(d.parent).attachedTo) if (a.pasid !== undefined) used.add(a.pasid);
    let v = lo;
    while (v < hi && used.has(v)) v++;
    if (v >= hi) throw new DriverLimit('no kernel-allocated PASID left');
    this.kpasids.set(key, { real: v, ioasid });
    return v;
  }

  /** The real PASID of a mediated device's RID attachment on its parent's RID, from the top of the space down. */
  private mdevRidPasid(
    dev: number,
    sid: number,
    taken: ReadonlySet<number>,
    planned: ReadonlyMap<string, Route>,
  ): number {
    const have = this.mdevRid.get(dev);
    if (have !== undefined) return have;
    const used = new Set([...this.routes.values()].filter((r) => r.sid === sid).map((r) => r.pasid));
    for (const r of planned.values()) if (r.sid === sid) used.add(r.pasid);
    for (const v of taken) used.add(v);
    for (const v of this.mdevRid.values()) used.add(v);
    let p = 2 ** Math.min(20, this.platform.iommu.pasidBits || 20) - 1;
    while (p > 0 && used.has(p)) p--;
    if (p <= 0) throw new DriverLimit('no real PASID left on the parent RID');
    this.mdevRid.set(dev, p);
    return p;
  }

  /** The CPU PASID translation of VM 0 (HW-031): on in the global scheme or with kernel-allocated PASIDs (PASID-035). */
  private syncCpu(view: ModelView): void {
    if (this.profile !== 'rfc') return;
    const rfc = view.rfc();
    const global = rfc.mode === 'global';
    const want = new Map<number, number>();
    for (const id of [...this.cpuKeyOf.keys()])
      if (!rfc.cpu.some((c) => `${c.pasid}:${c.ioasid}` === id)) this.cpuKeyOf.delete(id);
    for (const c of rfc.cpu) {
      const k = this.cpuKeyFor(global, c.pasid, c.ioasid);
      const v = k === undefined ? undefined : this.kpasids.get(k)?.real;
      if (v !== undefined) want.set(c.pasid, v);
    }
    for (const [local] of this.cpuMaps) if (!want.has(local)) this.machine.cpu.set(0, { local, global: null });
    for (const [local, g] of want) if (this.cpuMaps.get(local) !== g) this.machine.cpu.set(0, { local, global: g });
    this.cpuMaps.clear();
    for (const [k, v] of want) this.cpuMaps.set(k, v);
    this.machine.cpu.set(0, { enabled: global || this.kpasids.size > 0 || want.size > 0 });
  }

  /** After a user invalidation of a nested domain: P_IOTLB and device-TLB for every PASID routed to it (REF-014). */
  private flushFirstStage(key: string): void {
    const dom = this.domains.get(key);
    if (dom === undefined) return;
    for (const r of this.routes.values()) {
      if (r.domain !== key) continue;
      this.inv({ type: 'piotlb', g: 2, did: dom.did, pasid: r.pasid });
      if (r.pasid === RID_PASID) this.inv({ type: 'devtlb', sid: r.sid, addr: DEVTLB_ALL_ADDR, s: true });
      else this.inv({ type: 'pdevtlb', sid: r.sid, pasid: r.pasid, addr: DEVTLB_ALL_ADDR, s: true });
    }
  }

  // ------------------------------------------------------------------------------------------------------------
  // Bringing the hardware in line

  private sync(view: ModelView): void {
    const want = this.desired(view);
    // 1. Tear down routes that are gone or changed (HW-019, HW-020, HW-024).
    for (const [k, r] of this.routes) {
      const w = want.routes.get(k);
      if (w !== undefined && w.domain === r.domain && sameNested(w, r)) continue;
      // The attachment ended (or moved to another table): its pending groups are answered (FAULT-023); a rebound
      // user table keeps the attachment and its groups.
      if (w === undefined || w.domain !== r.domain) this.answerRoute(k);
      this.teardownRoute(r);
      this.routes.delete(k);
      this.routeUser.delete(k);
    }
    // 2. Domains: create, and sync their mappings (second-stage ones only; nested ones use their parent's tables).
    for (const [key, d] of want.domains) {
      let dom = this.domains.get(key);
      if (dom === undefined) this.domains.set(key, (dom = this.newDomain(key, d.as, d.parent)));
      if (dom.parent === undefined) this.syncAreas(dom, this.shadowAreas(view, d.as));
    }
    // 3. Install new routes (no invalidation needed: the entries were not present, CM = 0, HW-017).
    for (const [k, r] of want.routes) {
      if (this.routes.has(k)) continue;
      this.installRoute(r);
      this.routes.set(k, r);
      this.routeUser.set(k, r.user);
    }
    // 4. Free domains nothing routes to any more (children first).
    const used = new Set([...this.routes.values()].map((r) => r.domain));
    for (const d of this.domains.values()) if (d.parent !== undefined && used.has(d.key)) used.add(d.parent);
    for (const [key, d] of [...this.domains].sort(
      (a, b) => (a[1].parent !== undefined ? -1 : 0) - (b[1].parent !== undefined ? -1 : 0),
    ))
      if (!used.has(key)) this.freeDomain(d);
    // 5. The CPU side of ENQCMD.
    this.syncCpu(view);
  }

  private inv(d: VtdInv): void {
    this.issued.push(d);
    const r = this.machine.invalidate(d);
    if (!r.ok) throw new Error(`the reference driver issued an invalid descriptor: ${r.error}`);
  }

  private newDomain(key: string, as: number, parent: string | undefined): Domain {
    const did = this.freeDids.pop() ?? this.nextDid++;
    const root = parent === undefined ? this.alloc.alloc() : 0n;
    return {
      key,
      did,
      as,
      ...(parent === undefined ? {} : { parent }),
      root,
      levels: this.levels,
      frames: parent === undefined ? [root] : [],
      installed: new Map(),
    };
  }

  private freeDomain(d: Domain): void {
    // A domain-selective IOTLB invalidation before its tables and DID are reused (HW-020).
    this.inv({ type: 'iotlb', g: 'domain', did: d.did });
    for (const f of d.frames) this.alloc.release(f);
    this.freeDids.push(d.did);
    this.domains.delete(d.key);
  }

  /** Second-stage mappings: remove what the address space no longer maps (with invalidations), add what is new. */
  private syncAreas(dom: Domain, areas: readonly Area[]): void {
    const want = new Map(areas.filter((a) => this.hpaOf(a.buf, a.off) !== undefined).map((a) => [a.iova, a]));
    const removed: Area[] = [];
    for (const [iova, inst] of dom.installed) {
      const a = want.get(iova);
      if (a !== undefined && areaId(a) === inst.id) continue;
      this.writeRange(dom, inst.area, false);
      dom.installed.delete(iova);
      removed.push(inst.area);
    }
    if (removed.length > 0) this.flushRanges(dom, removed);
    for (const [iova, a] of want) {
      if (dom.installed.has(iova)) continue;
      this.writeRange(dom, a, true);
      dom.installed.set(iova, { area: a, id: areaId(a) });
    }
  }

  /** After page-table entries of `dom` were cleared: IOTLB first, then device TLBs (HW-020, HW-022, HW-023, HW-024). */
  private flushRanges(dom: Domain, removed: readonly Area[]): void {
    const users = [...this.routes.values()].filter(
      (r) => r.domain === dom.key || this.domains.get(r.domain)?.parent === dom.key,
    );
    for (const a of removed) {
      const { addr, am } = psiCover(a.iova, a.last);
      if (this.bug !== 'skip-iotlb-after-unmap') {
        if (am > this.machine.iommu.config.mamv) this.inv({ type: 'iotlb', g: 'domain', did: dom.did });
        else this.inv({ type: 'iotlb', g: 'page', did: dom.did, addr, am, ih: false });
        // Nested children cache composed translations under their own DID (REF-012).
        for (const child of this.domains.values())
          if (child.parent === dom.key) this.inv({ type: 'iotlb', g: 'domain', did: child.did });
      }
      for (const r of users) {
        const nestedUser = this.domains.get(r.domain)?.parent === dom.key;
        const e = nestedUser ? { addr: DEVTLB_ALL_ADDR, s: true } : devTlbEncode(addr, 1n << BigInt(12 + am));
        if (r.pasid === RID_PASID) this.inv({ type: 'devtlb', sid: r.sid, ...e });
        else this.inv({ type: 'pdevtlb', sid: r.sid, pasid: r.pasid, ...e });
      }
    }
  }

  /** Writes (or clears) the leaves mapping area `a` in `dom`, with the largest leaves alignment allows (HW-009). */
  private writeRange(dom: Domain, a: Area, map: boolean): void {
    const hpa0 = this.hpaOf(a.buf, a.off)!;
    // A page table maps whole pages: user memory must sit at the same offset within its page as the IOVA.
    if ((hpa0 & 0xfffn) !== (a.iova & 0xfffn))
      throw new DriverLimit(
        `mapping at IOVA 0x${a.iova.toString(16)} has user memory at page offset 0x${(hpa0 & 0xfffn).toString(16)}: no page table can realise it`,
      );
    const r = (a.prot & PROT.READ) !== 0;
    const w = (a.prot & PROT.WRITE) !== 0;
    const sizes = this.platform.iommu.pageSizes;
    let leaves = 0;
    for (let iova = a.iova; iova <= a.last && iova >= a.iova;) {
      const hpa = hpa0 + (iova - a.iova);
      let level = 1;
      for (const l of [3, 2]) {
        const span = levelSpan(l);
        if ((sizes & span) !== 0n && iova % span === 0n && hpa % span === 0n && a.last - iova + 1n >= span) {
          level = l;
          break;
        }
      }
      if (++leaves > 1 << 16) throw new DriverLimit('a mapping needs more than 65536 page-table leaves');
      const slot = this.slot(dom, iova, level, map);
      if (slot !== undefined) this.machine.mem.writeQ(slot, map ? encodeSsPte(hpa, r, w, level > 1) : 0n);
      const next = iova + levelSpan(level);
      if (next <= iova) break;
      iova = next;
    }
  }

  /** The address of the entry for `iova` at `level` in `dom`, allocating intermediate tables when `create`. */
  private slot(dom: Domain, iova: bigint, level: number, create: boolean): bigint | undefined {
    let table = dom.root;
    for (let l = dom.levels; l > level; l--) {
      const at = table + BigInt(levelIndex(iova, l)) * 8n;
      const v = this.machine.mem.readQ(at);
      if ((v & 3n) === 0n) {
        if (!create) return undefined;
        const t = this.alloc.alloc();
        dom.frames.push(t);
        this.machine.mem.writeQ(at, encodeSsPte(t, true, true));
        table = t;
      } else table = v & PTE_ADDR_MASK;
    }
    return table + BigInt(levelIndex(iova, level)) * 8n;
  }

  /** The device's scalable-mode context entry, programmed on first use (HW-001, HW-003, HW-005). */
  private ensureContext(sid: number): { dir: bigint; tables: Map<number, bigint> } {
    let c = this.contexts.get(sid);
    if (c !== undefined) return c;
    const dev = this.platform.devices.find((d) => d.kind === 'physical' && d.rid === sid);
    const bus = (sid >> 8) & 0xff;
    const devfn = sid & 0xff;
    const upper = devfn >= 128;
    const tkey = `${bus}:${upper ? 'u' : 'l'}`;
    let ct = this.ctxTables.get(tkey);
    const re = this.root + BigInt(bus) * 16n;
    if (ct === undefined) {
      ct = this.alloc.alloc();
      this.ctxTables.set(tkey, ct);
      const cur = decodeRoot(this.machine.mem.readQ(re), this.machine.mem.readQ(re + 8n));
      const [lo, hi] = encodeRoot(upper ? { ...cur, up: true, uctp: ct } : { ...cur, lp: true, lctp: ct });
      this.machine.mem.writeQ(re, lo);
      this.machine.mem.writeQ(re + 8n, hi);
    }
    const bits = Math.min(20, this.platform.iommu.pasidBits || 20);
    const pdts = Math.max(0, Math.min(7, bits - 13));
    const dir = this.alloc.allocContiguous(Math.max(1, 2 ** (pdts + 7) / 512));
    const ce = ct + BigInt(devfn % 128) * 32n;
    const [lo, hi] = encodeContext({
      p: true,
      fpd: false,
      dte: dev?.ats ?? false,
      paside: (dev?.pasid ?? false) && this.platform.iommu.pasidBits > 0,
      pre: (dev?.pri ?? false) && (dev?.ats ?? false),
      pdts,
      pasidDirPtr: dir,
      ridPasid: RID_PASID,
    });
    this.machine.mem.writeQ(ce, lo);
    this.machine.mem.writeQ(ce + 8n, hi);
    // The entry was not present: with CM = 0 nothing needs invalidating (HW-017).
    c = { dir, tables: new Map() };
    this.contexts.set(sid, c);
    return c;
  }

  /** The address of the PASID-table entry of (sid, pasid), allocating the PASID table when needed (HW-002). */
  private pasidSlot(sid: number, pasid: number): bigint {
    const c = this.ensureContext(sid);
    const di = pasid >> 6;
    let t = c.tables.get(di);
    if (t === undefined) {
      t = this.alloc.alloc();
      c.tables.set(di, t);
      this.machine.mem.writeQ(c.dir + BigInt(di) * 8n, encodePasidDir({ p: true, fpd: false, smptblptr: t }));
    }
    return t + BigInt(pasid & 63) * 64n;
  }

  private installRoute(r: Route): void {
    const dom = this.domains.get(r.domain)!;
    const tables = dom.parent === undefined ? dom : this.domains.get(dom.parent)!;
    const aw = tables.levels === 5 ? AW.L5 : AW.L4;
    const words = encodePasidEntry({
      p: true,
      fpd: false,
      aw,
      pgtt: r.nested !== undefined ? PGTT.NESTED : PGTT.SECOND,
      ssptptr: tables.root,
      did: dom.did,
      fspm: r.nested?.fspm ?? 0,
      fsptptr: r.nested?.fsptptr ?? 0n,
    });
    const at = this.pasidSlot(r.sid, r.pasid);
    // Words 1 and 2 first, the present bit (word 0) last, as Linux's pasid_set_present ordering does.
    this.machine.mem.writeQ(at + 8n, words[1]);
    this.machine.mem.writeQ(at + 16n, words[2]);
    this.machine.mem.writeQ(at, words[0]);
  }

  /** Clears a PASID-table entry, then PASID cache, IOTLB and device TLB (Linux's intel_pasid_tear_down_entry). */
  private teardownRoute(r: Route): void {
    const dom = this.domains.get(r.domain)!;
    const at = this.pasidSlot(r.sid, r.pasid);
    this.machine.mem.writeQ(at, 0n);
    const pasid = this.bug === 'flush-wrong-pasid' ? r.pasid + 1 : r.pasid;
    this.inv({ type: 'pasid', g: 1, did: dom.did, pasid });
    // Second-stage and nested entries: a domain-selective IOTLB invalidation (HW-021 rationale); the broken driver
    // uses a PASID-selective one for the wrong PASID instead.
    if (this.bug === 'flush-wrong-pasid') this.inv({ type: 'piotlb', g: 2, did: dom.did, pasid });
    else this.inv({ type: 'iotlb', g: 'domain', did: dom.did });
    if (pasid === RID_PASID) this.inv({ type: 'devtlb', sid: r.sid, addr: DEVTLB_ALL_ADDR, s: true });
    else this.inv({ type: 'pdevtlb', sid: r.sid, pasid, addr: DEVTLB_ALL_ADDR, s: true });
  }

  // ============================================================================================================
  // ENQCMD and page requests

  /**
   * A device's page request (DEVICE_PAGE_REQUEST): the driver makes device `dev` send it to the IOMMU (HW-028), then
   * services the page request queue as the kernel's handler does, and reports what the device received and what was
   * handed to the user. `perm` is `IOMMU_PGFAULT_PERM_*`.
   */
  pageRequest(
    view: ModelView,
    dev: number,
    r: {
      readonly addr: bigint;
      readonly perm: number;
      readonly grpid: number;
      readonly last: boolean;
      readonly pasid?: number;
    },
  ): PageRequestHandling {
    const d = this.platform.devices[dev];
    if (d === undefined || d.kind !== 'physical' || !d.pri) return { responses: [], unknown: 'not a PRI function' };
    // PRI needs ATS (the context entry enables page requests only with the device TLB, PRE with DTE).
    if (!d.ats) return { responses: [], unknown: 'a PRI function without ATS' };
    const device = this.machine.devices.get(d.rid);
    // A Response Failure disabled the function's PRI until reset (HW-030), which the uAPI state does not show.
    if (device?.priEnabled === false) return { responses: [], unknown: 'PRI disabled by an earlier Response Failure' };
    // A function never reuses a PRG index that is still outstanding (pcie §10.4.1); the uAPI model's harness may.
    if (this.pendingEvents().some((e) => e.sid === d.rid && e.pasid === r.pasid && e.group === r.grpid))
      return { responses: [], unknown: `PRG index ${r.grpid} reused while its group is outstanding` };
    const before = device?.responses.length ?? 0;
    this.machine.pageRequest({
      sid: d.rid,
      addr: r.addr,
      read: (r.perm & 1) !== 0,
      write: (r.perm & 2) !== 0,
      exec: (r.perm & 4) !== 0,
      priv: (r.perm & 8) !== 0,
      group: r.grpid,
      last: r.last,
      ...(r.pasid === undefined ? {} : { pasid: r.pasid }),
    });
    const delivered = this.servicePageRequests(view);
    const responses = (device?.responses.slice(before) ?? []).map(
      (x) => x.code.toUpperCase() as 'SUCCESS' | 'INVALID' | 'FAILURE',
    );
    return { responses, ...(delivered[0] === undefined ? {} : { delivered: delivered[0] }) };
  }

  /**
   * Reads the page request queue and handles each record (HW-028): a group on a user-managed table (an rfc IOASID
   * with a bound first-stage table, an iommufd nested HWPT with a FAULT) is queued for the user when its last request
   * arrives (FAULT-003, FAULT-005); a group on a kernel-managed rfc IOASID is fixed in the kernel, SUCCESS when every
   * request is mapped with its access and INVALID otherwise (FAULT-004); anything else is answered INVALID
   * (FAULT-006). The rfc fd holds at most {@link RFC_FAULT_QUEUE_DEPTH} pending groups; beyond, SUCCESS (FAULT-014).
   * Returns the groups handed to the user.
   */
  servicePageRequests(view: ModelView): FaultEvent[] {
    const { records } = this.machine.prqRead(true);
    const out: FaultEvent[] = [];
    for (const rec of records) {
      const pasid = rec.pasidPresent ? rec.pasid : undefined;
      const gkey = `${rec.sid}:${pasid ?? '-'}:${rec.group}`;
      const group = [...(this.partialGroups.get(gkey) ?? []), rec];
      if (!rec.last) {
        this.partialGroups.set(gkey, group);
        continue;
      }
      this.partialGroups.delete(gkey);
      const routeKey = `${rec.sid}:${pasid ?? RID_PASID}`;
      const route = this.routes.get(routeKey);
      const dev = route === undefined ? undefined : Number(route.user.split(':')[0]);
      const answer = (code: ResponseCode) => void this.machine.pageResponse(rec.sid, pasid, rec.group, code);
      const dom = route === undefined ? undefined : this.domains.get(route.domain);
      if (route === undefined || dom === undefined || dev === undefined || this.profile === 'vfio-type1') {
        answer('invalid'); // FAULT-006
        continue;
      }
      const id = Number(route.domain.split(':')[1]);
      const requests = group.map((q) => ({
        addr: q.addr,
        perm: (q.read ? 1 : 0) | (q.write ? 2 : 0) | (q.exec ? 4 : 0) | (q.priv ? 8 : 0),
        last: q.last,
      }));
      if (this.profile === 'iommufd') {
        const fault = this.faultOf.get(id);
        const fmt = view.objects().find((o) => o.id === id)?.format;
        // FAULT-005: a nested HWPT with a FAULT gets every group; PASID-tagged requests have no handler (FAULT-001).
        if (dom.parent === undefined || fmt !== 'fault' || fault === undefined || pasid !== undefined) {
          answer('invalid');
          continue;
        }
        out.push(
          this.enqueue({
            dev,
            sid: rec.sid,
            ...(pasid === undefined ? {} : { pasid }),
            group: rec.group,
            queue: fault,
            table: id,
            route: routeKey,
            requests,
          }),
        );
        continue;
      }
      if (dom.parent === undefined) {
        // FAULT-004: a kernel-managed table is fixed in the kernel.
        const areas = this.areasOf(view, dom.as);
        const mapped = requests.every((q) => {
          const a = areas.find((x) => x.iova <= q.addr && q.addr <= x.last);
          const need = ((q.perm & 1) !== 0 ? PROT.READ : 0) | ((q.perm & 2) !== 0 ? PROT.WRITE : 0);
          return a !== undefined && (a.prot & need) === need;
        });
        answer(mapped ? 'success' : 'invalid');
        continue;
      }
      if (this.pendingUserGroups(0) >= RFC_FAULT_QUEUE_DEPTH) {
        answer('success'); // FAULT-014: a full queue, the device retries later
        continue;
      }
      out.push(
        this.enqueue({
          dev,
          sid: rec.sid,
          ...(pasid === undefined ? {} : { pasid }),
          group: rec.group,
          queue: 0,
          table: id,
          route: routeKey,
          requests,
        }),
      );
    }
    return out;
  }

  private enqueue(e: FaultEvent): FaultEvent {
    this.faultQueue.push(e);
    return e;
  }

  /** The page groups handed to the user and not answered yet (queued or awaiting a response), all queues. */
  pendingEvents(): FaultEvent[] {
    return [...this.faultQueue, ...this.awaiting.values()];
  }

  /** Page groups of queue `queue` the user has not answered (queued or awaiting a response). */
  pendingUserGroups(queue?: number): number {
    let n = 0;
    for (const e of this.faultQueue) if (queue === undefined || e.queue === queue) n++;
    for (const e of this.awaiting.values()) if (queue === undefined || e.queue === queue) n++;
    return n;
  }

  /**
   * A fault read of `queue` that the uAPI answered with `outcome`: the driver delivers whole groups in arrival order,
   * as many as the read returned records for, composing each record as the kernel does (rfc: IOASID, address,
   * access; iommufd: struct iommu_hwpt_pgfault), and adopts the cookies the read reported (FAULT-007, FAULT-008).
   */
  private deliver(queue: number, outcome: Outcome): void {
    const records = (outcome.out?.records ?? []) as readonly { cookie?: number }[];
    let i = 0;
    while (i < records.length) {
      const k = this.faultQueue.findIndex((e) => e.queue === queue);
      if (k < 0) break;
      const e = this.faultQueue[k]!;
      this.faultQueue.splice(k, 1);
      const cookie = Number(records[i]?.cookie ?? 0);
      this.awaiting.set(`${queue}:${cookie}`, e);
      for (const q of e.requests) {
        i++;
        this.lastDelivered.push(
          this.profile === 'rfc'
            ? { ioasid: e.table, addr: q.addr, perm: q.perm }
            : {
                flags: (e.pasid !== undefined ? 1 : 0) | (q.last ? 2 : 0),
                dev_id: this.viewDevId.get(e.dev) ?? 0,
                pasid: e.pasid ?? 0,
                grpid: e.group,
                perm: q.perm,
                addr: q.addr,
                length: 0,
              },
        );
      }
    }
  }

  /** The user's responses: each completes its group on the device that raised it (FAULT-015, HW-030). */
  private respondCookies(queue: number, responses: readonly { cookie: number; code: ResponseCode }[]): void {
    for (const r of responses) {
      const e = this.awaiting.get(`${queue}:${r.cookie}`);
      if (e === undefined) continue;
      this.awaiting.delete(`${queue}:${r.cookie}`);
      this.lastResponses.push({
        event: e,
        code: r.code,
        matched: this.machine.pageResponse(e.sid, e.pasid, e.group, r.code),
      });
    }
  }

  /** FAULT-023: ending a route answers INVALID every group raised through it, queued or awaiting a response. */
  private answerRoute(route: string): void {
    const mine = (e: FaultEvent) => e.route === route;
    this.lastAutoAnswered += this.pendingEvents().filter(mine).length;
    for (const e of this.faultQueue.filter(mine)) this.machine.pageResponse(e.sid, e.pasid, e.group, 'invalid');
    this.faultQueue = this.faultQueue.filter((e) => !mine(e));
    for (const [k, e] of [...this.awaiting])
      if (mine(e)) {
        this.machine.pageResponse(e.sid, e.pasid, e.group, 'invalid');
        this.awaiting.delete(k);
      }
  }

  /** iommufd DEVICE IDs of the devices, as the view showed them at the last step (for fault records). */
  private readonly viewDevId = new Map<number, number>();

  // ============================================================================================================
  // Test-only introspection

  /**
   * The user-managed first-stage tables the hardware walks now: the table (rfc IOASID or iommufd nested HWPT), its
   * root (a parent IOVA), whether it is 5-level, and the parent's address space (for the refinement's nested probes).
   */
  userTables(): { id: number; root: bigint; fiveLevel: boolean; parentAs: number }[] {
    const out: { id: number; root: bigint; fiveLevel: boolean; parentAs: number }[] = [];
    for (const d of this.domains.values()) {
      if (d.parent === undefined || !d.key.startsWith('nested:')) continue;
      const id = Number(d.key.slice('nested:'.length));
      const data = this.nestedData.get(id);
      if (data !== undefined) out.push({ id, root: data.fsptptr, fiveLevel: data.fspm === FSPM.L5, parentAs: d.as });
    }
    return out;
  }

  /** The DID of the domain realising `key` (`ioasid:N`, `hwpt:N`, `container`), if any. */
  didOf(key: string): number | undefined {
    return this.domains.get(key)?.did;
  }
  /** The installed routes, `sid:pasid` → domain key. */
  routeTable(): Map<string, string> {
    return new Map([...this.routes].map(([k, r]) => [k, r.domain]));
  }
  /** Table frames in use. */
  get framesInUse(): number {
    return this.alloc.inUse;
  }
}

function sameNested(a: Route, b: Route): boolean {
  return a.nested?.fsptptr === b.nested?.fsptptr && a.nested?.fspm === b.nested?.fspm;
}

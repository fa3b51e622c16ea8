/**
 * The state of one open fd (and the devices and container around it), shared by every profile. Chapter modules
 * read and change it; `clone()` makes a cheap snapshot (area maps are copy-on-write B+ trees).
 *
 * @module
 */
import { AreaMap, RangeSet } from './core/areas.ts';
import { IdAllocator } from './core/ids.ts';
import { ObjectMap } from './core/journal.ts';
import type { Profile } from './commands.ts';
import type { Platform } from './platform.ts';
import { RfcState } from './rfc-state.ts';

/**
 * An address space that holds kernel-managed mappings: an iommufd IOAS, an rfc kernel-managed IOASID, or the
 * vfio-type1 container.
 */
export class Space {
  areas = new AreaMap();
  /** Reserved ranges with their owners (`aperture:<hwpt>`, `dev:<index>`). */
  reserved = new RangeSet();
  /** iommufd: the ranges automatic IOVA allocation is restricted to (empty: anywhere). */
  allowed = new RangeSet();
  /** iommufd: HWPT_PAGING objects (domains) on this space. */
  domains = 0;
  /** iommufd: IOMMU_OPTION HUGE_PAGES (true: large pages enabled). */
  hugePages = true;
  /** Areas whose user memory is not the process's (a bad VA, or past a buffer's end): they fail to pin. */
  badAreas = 0;
  /** Pages objects (by ID) → number of areas that map them, for accounting. */
  pagesUsers = new Map<number, number>();
  /** iommufd: ACCESS objects (emulated devices) attached to this IOAS; they hold it (FD-011). */
  accesses = 0;

  clone(): Space {
    const s = new Space();
    s.areas = this.areas.clone();
    s.reserved = this.reserved.clone();
    s.allowed = this.allowed.clone();
    s.domains = this.domains;
    s.hugePages = this.hugePages;
    s.badAreas = this.badAreas;
    s.pagesUsers = new Map(this.pagesUsers);
    s.accesses = this.accesses;
    return s;
  }
}

/** An iommufd IOAS. */
export interface IoasObject {
  readonly kind: 'ioas';
  readonly id: number;
  space: Space;
}

/** An iommufd HWPT (paging or nested). */
export interface HwptObject {
  readonly kind: 'hwpt-paging' | 'hwpt-nested';
  readonly id: number;
  /** The IOAS it maps (a nested HWPT: its parent's IOAS). */
  readonly ioas: number;
  /** A nested HWPT's parent paging HWPT; 0 for paging. */
  readonly parent: number;
  /** Created by an attach to an IOAS (auto domain) rather than by HWPT_ALLOC. */
  readonly auto: boolean;
  readonly nestParent: boolean;
  readonly dirty: boolean;
  /** The FAULT object it reports to; 0 for none. */
  readonly fault: number;
  /** Devices attached to it. */
  devices: number;
  /** Nested children. */
  children: number;
  /** A paging HWPT allocated with DIRTY_TRACKING: whether tracking is enabled (IOMMU_HWPT_SET_DIRTY_TRACKING). */
  tracking?: boolean;
  /** CPU-page-aligned IOVA ranges written by DMA while tracking was on and not yet cleared, ascending, disjoint. */
  dirtyPages?: readonly { readonly start: bigint; readonly last: bigint }[];
  /** A nested HWPT's stage-1 description (the driver data of IOMMU_HWPT_ALLOC). */
  s1?: { readonly pgtblAddr: bigint; readonly addrWidth: number };
}

/** One page request (PCIe PRI) of a page group. */
export interface PageRequest {
  readonly addr: bigint;
  readonly perm: number;
  readonly pasid: number | undefined;
  readonly last: boolean;
}

/** A page group handed to a user queue; immutable once formed. */
export interface FaultGroup {
  /** Arrival order of the group's last request (fd-wide). */
  readonly seq: number;
  readonly dev: number;
  readonly grpid: number;
  readonly pasid: number | undefined;
  /** The requests of the group, in arrival order, the last one last. */
  readonly requests: readonly PageRequest[];
  /** The page table that faulted: the HWPT (iommufd) or the IOASID (rfc). */
  readonly table: number;
}

/** A page group read by the user and awaiting its response. */
export interface AwaitingGroup {
  readonly group: FaultGroup;
  /** The trace step of the read that returned it, and whether it was that read's first group (its `cookie` output). */
  readonly readStep: number;
  readonly first: boolean;
}

/** A fault queue: groups queued for reading (FIFO), and groups read and awaiting a response, by cookie. */
export class FaultQueue {
  deliver: FaultGroup[] = [];
  response = new Map<number, AwaitingGroup>();

  clone(): FaultQueue {
    const q = new FaultQueue();
    q.deliver = [...this.deliver];
    q.response = new Map(this.response);
    return q;
  }

  /** Number of pending groups (queued or awaiting a response). */
  get pending(): number {
    return this.deliver.length + this.response.size;
  }
}

/** An iommufd FAULT object and its fault fd. */
export interface FaultObject {
  readonly kind: 'fault';
  readonly id: number;
  /** Whether the fault fd is still open (it holds the object). */
  fdOpen: boolean;
  queue: FaultQueue;
}

/** Page-request bookkeeping of the fd (chapter FAULT): for the completion invariant FAULT-029. */
export interface PriState {
  /** Requests waiting for the last request of their group, by `dev:grpid`. */
  partial: Map<string, readonly PageRequest[]>;
  /** Page groups that reached the IOMMU (last request arrived). */
  raised: number;
  /** Page group responses sent to devices (user, kernel, teardown). */
  answered: number;
  /** Next group sequence number. */
  nextSeq: number;
}

/** An iommufd DEVICE (a bound VFIO device). */
export interface DeviceObject {
  readonly kind: 'device';
  readonly id: number;
  /** Index into `platform.devices`. */
  readonly dev: number;
  /**
   * An emulated (mediated) device's ACCESS object (IOMMUFD_OBJ_ACCESS, device.c:iommufd_access_create) rather than a
   * DEVICE: it reaches an IOAS through its driver, never through a HWPT. The view lists it as a device.
   */
  readonly access?: true;
}

/** An rfc IOASID. */
export interface IoasidObject {
  readonly kind: 'ioasid';
  readonly id: number;
  readonly format: 'kernel' | 'pgtable' | 'pasid-table';
  /** Parent IOASID of a nested one; 0 for none. */
  readonly parent: number;
  /** The mappings of a kernel-managed IOASID. */
  space: Space | undefined;
  /** Child IOASIDs. */
  children: number;
  /** Attachments (device, pasid) to this IOASID. */
  attachments: number;
  /** rfc `pgtable` / `pasid-table`: the vendor table format declared at creation (BIND-003). */
  readonly tableFormat?: string;
  /** rfc `pgtable` / `pasid-table`: the root or base of the table bound last (BIND-008); undefined before a bind. */
  bound?: bigint;
}

/** Any object of the fd. */
export type FdObject = IoasObject | HwptObject | DeviceObject | IoasidObject | FaultObject;

/** What the fd knows of one platform device. */
export interface DeviceState {
  /** iommufd: the DEVICE object ID once bound (0: not bound); rfc: 1 when bound to the fd. */
  boundId: number;
  /** iommufd: the HWPT the device is attached to (0: none). */
  hwpt: number;
  /** iommufd, an emulated device: the IOAS its ACCESS is attached to (absent or 0: none). */
  access?: number;
  /** rfc: attachments, RID-level (pasid undefined) and per PASID. */
  attachments: { ioasid: number; pasid: number | undefined; real?: number }[];
}

/** The vfio-type1 container. */
export interface ContainerState {
  /** IOMMU groups added to the container, ascending. */
  groups: number[];
  /** 0 until VFIO_SET_IOMMU; then VFIO_TYPE1_IOMMU (1) or VFIO_TYPE1v2_IOMMU (3). */
  iommuType: number;
  space: Space;
  /** Remaining DMA mappings allowed (dma_entry_limit − mappings). */
  dmaAvail: number;
}

/** The whole state. */
export class State {
  readonly ids: IdAllocator;
  readonly objects: Map<number, FdObject>;
  readonly devices: DeviceState[];
  container: ContainerState;
  /** iommufd: the IOAS of the VFIO container emulation (0: none). */
  vfioIoas = 0;
  /** iommufd: IOMMU_OPTION RLIMIT_MODE (0 per-user accounting on /dev/iommu). */
  rlimitMode = 0n;
  /** Next pages-object ID (accounting). */
  nextPages = 1;
  /**
   * iommufd: the CPU-page spans each pages object has pinned, one per area of it in an IOAS with a domain (MEM-010,
   * MEM-011; mem.ts). Arrays are replaced, never changed in place, so a clone shares them.
   */
  iopins = new Map<number, readonly { readonly first: bigint; readonly last: bigint }[]>();
  /** iommufd: CPU pages pinned and accounted, each page of a pages object once (MEM-011, MEM-014; mem.ts). */
  iopinned = 0n;
  /** Page requests in flight and the completion counters (chapter FAULT). */
  pri: PriState;
  /** rfc: the fd's fault queue (records name their IOASID). */
  rfcFaults: FaultQueue;
  /** Index of the step being applied (set by the model before each step). */
  stepIndex = 0;
  /** The user closed the fd (FD_CLOSE) and its context is still held by bound devices, groups or fault fds. */
  fdClosed = false;
  /** rfc: pre-registrations and pins (MEM), the PASID scheme, kernel-allocated PASIDs, CPU translations (PASID). */
  rfcx: RfcState;

  constructor(
    readonly profile: Profile,
    readonly platform: Platform,
    readonly features: ReadonlySet<string>,
    from?: State,
  ) {
    if (from) {
      this.ids = from.ids.clone();
      this.objects = new ObjectMap();
      for (const [id, o] of from.objects) {
        if (o.kind === 'ioas') this.objects.set(id, { ...o, space: o.space.clone() });
        else if (o.kind === 'ioasid') this.objects.set(id, { ...o, space: o.space?.clone() });
        else if (o.kind === 'fault') this.objects.set(id, { ...o, queue: o.queue.clone() });
        else this.objects.set(id, { ...o });
      }
      this.devices = from.devices.map((d) => ({ ...d, attachments: [...d.attachments] }));
      this.container = { ...from.container, groups: [...from.container.groups], space: from.container.space.clone() };
      this.vfioIoas = from.vfioIoas;
      this.rlimitMode = from.rlimitMode;
      this.nextPages = from.nextPages;
      this.iopins = new Map(from.iopins);
      this.iopinned = from.iopinned;
      this.pri = { ...from.pri, partial: new Map(from.pri.partial) };
      this.rfcFaults = from.rfcFaults.clone();
      this.stepIndex = from.stepIndex;
      this.fdClosed = from.fdClosed;
      this.rfcx = from.rfcx.clone();
    } else {
      this.pri = { partial: new Map(), raised: 0, answered: 0, nextSeq: 1 };
      this.rfcFaults = new FaultQueue();
      this.rfcx = new RfcState();
      this.ids = new IdAllocator();
      this.objects = new ObjectMap();
      this.devices = platform.devices.map(() => ({ boundId: 0, hwpt: 0, attachments: [] }));
      this.container = { groups: [], iommuType: 0, space: new Space(), dmaAvail: platform.limits.dmaEntryLimit };
    }
  }

  /** A deep snapshot. */
  clone(): State {
    return new State(this.profile, this.platform, this.features, this);
  }

  /** The object `id` if it exists and has kind `kind`. */
  get<K extends FdObject['kind']>(id: number, kind: K): (FdObject & { kind: K }) | undefined {
    const o = this.objects.get(id);
    return o !== undefined && o.kind === kind ? (o as FdObject & { kind: K }) : undefined;
  }
}

/**
 * The rfc-only parts of the fd's state that chapters MEM and PASID add: memory pre-registrations and the pins the
 * accounting holds (MEM), the PASID scheme, the kernel-allocated PASIDs and the CPU PASID translations (PASID).
 * A leaf module (it imports only the B+ tree) so that `state.ts` can own one and clone it cheaply: the per-mapping
 * pins sit in a copy-on-write tree, everything else is small.
 *
 * Not for: iommufd or vfio-type1 accounting, which the MAP chapter keeps per address space.
 *
 * @module
 */
import { BTree } from './core/btree.ts';

/** One pre-registered user range (MEM-001): `[va, last]`, whole CPU pages, at `buf`/`off` of a user buffer. */
export interface Registration {
  readonly va: bigint;
  readonly last: bigint;
  readonly buf: number;
  readonly off: bigint;
}

/** What a mapping's pages object holds: pages pinned and accounted for it alone, or a use of registrations. */
export interface Pin {
  /** Pages accounted for this mapping (0 for registered memory, which was accounted at registration). */
  readonly pages: bigint;
  /** The user range it maps. */
  readonly va: bigint;
  readonly last: bigint;
  /** Whether the range lies in registrations (MEM-003) rather than being pinned by the MAP. */
  readonly registered: boolean;
}

/**
 * A kernel-allocated PASID (PASID chapter terms): a global PASID of one local PASID (scheme 3), or the real PASID of
 * mediated devices (scheme 2). Entries are immutable: changes replace them.
 */
export interface KernelPasid {
  /** The real PASID on the wire. */
  readonly real: number;
  /** The IOASID the user PASID is bound to. */
  readonly ioasid: number;
  /** Attachments and CPU translations that use it (PASID-019). */
  readonly users: number;
  /** Whether an implementation's choice of `real` has been observed (adopted) already. */
  readonly seen: boolean;
}

/** The PASID scheme of the fd (PASID-009). */
export type HwidMode = 'per-rid' | 'global';

/** The rfc-only state of one fd. */
export class RfcState {
  /** Pre-registrations, ascending by `va`, never overlapping (MEM-004). */
  regs: readonly Registration[] = [];
  /** Registration start → number of mappings that use a page of it (MEM-006). */
  regUsers = new Map<bigint, number>();
  /** Pages object of a mapping → what it pins (MEM-016); a copy-on-write tree, so a clone is O(1). */
  pins: BTree<number, Pin> = new BTree<number, Pin>();
  /** Pages accounted against RLIMIT_MEMLOCK: registrations plus mappings of unregistered memory (MEM-016). */
  locked = 0n;
  /** The PASID scheme (PASID-009); every fd starts per-RID. */
  mode: HwidMode = 'per-rid';
  /** The global split (PASID-011): local `[1, min)`, global `[min, 2^W)`; 0 while unset (PASID-013). */
  globalMin = 0;
  /** Kernel-allocated PASIDs by key: `L:<local>` (global scheme), `E:<user>:<ioasid>`, `M:<dev>:<user>` (mdevs). */
  kpasids = new Map<string, KernelPasid>();
  /** CPU PASID translations (KVM_MAP_PASID): user PASID → the key of the kernel-allocated PASID it names. */
  cpu = new Map<number, string>();
  /** Real PASIDs that others hold on this host (after MIGRATE: the source's values, PASID-028). */
  busy: ReadonlySet<number> = new Set();

  /** A copy that shares nothing mutable with this one. */
  clone(): RfcState {
    const s = new RfcState();
    s.regs = this.regs;
    s.regUsers = new Map(this.regUsers);
    s.pins = this.pins.clone();
    s.locked = this.locked;
    s.mode = this.mode;
    s.globalMin = this.globalMin;
    s.kpasids = new Map(this.kpasids);
    s.cpu = new Map(this.cpu);
    s.busy = this.busy;
    return s;
  }
}

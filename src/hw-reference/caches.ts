/**
 * The translation caches of the VT-d model — context cache, PASID cache, paging-structure caches and IOTLB — and the
 * coverage of every invalidation descriptor over them (HW-015, HW-018 to HW-022). The caches are adversarial
 * (HW-016): nothing is ever evicted; an entry goes only when an invalidation that covers it completes, so a driver
 * that forgets one meets the stale entry on its next DMA. The device TLB is the device's (`machine.ts`).
 *
 * Not for: filling policy (the walks in `vtd.ts` fill only after a walk succeeds, HW-017).
 *
 * @module
 */
import type { ContextEntry, PasidEntry } from './entries.ts';
import { levelSpan } from './entries.ts';
import type { Stage, Translation } from './iommu.ts';

/** A cached PASID-table entry, tagged with its DID and PASID (HW-015). */
export interface PasidCacheEntry {
  readonly sid: number;
  readonly pasid: number;
  readonly did: number;
  readonly entry: PasidEntry;
}

/** A cached translation, tagged with source-id, PASID, DID and PGTT (HW-015). */
export interface IotlbEntry extends Translation {
  readonly sid: number;
  readonly pasid: number;
  readonly did: number;
  readonly pgtt: number;
  /** Filled by a request without PASID (under RID_PASID). */
  readonly noPasid?: boolean;
}

/**
 * A cached non-leaf paging entry: the entry value read at `level` for inputs sharing `prefix` (the input address
 * with the bits below that level's span cleared), tagged with the stage, DID and PASID of the walk.
 */
export interface PscEntry {
  readonly sid: number;
  readonly pasid: number;
  readonly did: number;
  readonly pgtt: number;
  readonly stage: Stage;
  readonly level: number;
  readonly prefix: bigint;
  readonly value: bigint;
}

/** A page-selective region: `[base, base + size)`, naturally aligned (HW-022). */
export interface Region {
  readonly base: bigint;
  readonly size: bigint;
}

const overlaps = (r: Region, base: bigint, size: bigint): boolean => base < r.base + r.size && r.base < base + size;

/** The region of a page-selective invalidation: the 2^AM pages of the 2^(AM+12)-aligned block containing ADDR (HW-022). */
export function psiRegion(addr: bigint, am: number): Region {
  const size = 1n << BigInt(12 + am);
  return { base: addr & ~(size - 1n), size };
}

/** The caches of one VT-d remapping unit. */
export class VtdCaches {
  /** Source-id → context entry. */
  readonly context = new Map<number, ContextEntry>();
  /** `sid:pasid` → PASID-table entry. */
  readonly pasid = new Map<string, PasidCacheEntry>();
  /** `sid:pasid:pageBase` → translation (one key per leaf: the page's own base). */
  readonly iotlb = new Map<string, IotlbEntry>();
  /** `sid:pasid:stage:level:prefix` → non-leaf paging entry. */
  readonly psc = new Map<string, PscEntry>();

  /** The IOTLB key of a translation of `pasid` for `sid` at page base `base`. */
  static iotlbKey(sid: number, pasid: number, base: bigint): string {
    return `${sid}:${pasid}:${base}`;
  }

  /** The PSC key. */
  static pscKey(sid: number, pasid: number, stage: Stage, level: number, prefix: bigint): string {
    return `${sid}:${pasid}:${stage}:${level}:${prefix}`;
  }

  /** The cached translation used for a request (HW-015: same source-id, PASID and page), trying each leaf size. */
  lookupIotlb(sid: number, pasid: number, addr: bigint): IotlbEntry | undefined {
    for (const size of [1n << 12n, 1n << 21n, 1n << 30n]) {
      const e = this.iotlb.get(VtdCaches.iotlbKey(sid, pasid, addr & ~(size - 1n)));
      if (e !== undefined && e.size === size) return e;
    }
    return undefined;
  }

  private dropIotlb(pred: (e: IotlbEntry) => boolean): void {
    for (const [k, e] of this.iotlb) if (pred(e)) this.iotlb.delete(k);
  }
  private dropPsc(pred: (e: PscEntry) => boolean): void {
    for (const [k, e] of this.psc) if (pred(e)) this.psc.delete(k);
  }

  // ------------------------------------------------------------------------------------------------------------
  // HW-018 context-cache invalidation: context entries only.

  /** Context-cache invalidation: global and domain-selective drop every entry (DID ignored in scalable mode). */
  invalidateContextAll(): void {
    this.context.clear();
  }
  /** Device-selective context-cache invalidation: every source-id equal to `sid` once its low `fm` bits are masked. */
  invalidateContextDevice(sid: number, fm: number): void {
    const mask = ~((1 << fm) - 1) & 0xffff;
    for (const k of [...this.context.keys()]) if ((k & mask) === (sid & mask)) this.context.delete(k);
  }

  // ------------------------------------------------------------------------------------------------------------
  // HW-019 PASID-cache invalidation.

  /** Domain-selective (00b): every entry tagged with `did`. */
  invalidatePasidDomain(did: number): void {
    for (const [k, e] of this.pasid) if (e.did === did) this.pasid.delete(k);
  }
  /** PASID-selective-within-domain (01b): entries tagged with both `did` and `pasid`. */
  invalidatePasidSelective(did: number, pasid: number): void {
    for (const [k, e] of this.pasid) if (e.did === did && e.pasid === pasid) this.pasid.delete(k);
  }
  /** Global (11b). */
  invalidatePasidAll(): void {
    this.pasid.clear();
  }

  // ------------------------------------------------------------------------------------------------------------
  // HW-020 IOTLB invalidation.

  /** Global: every IOTLB and paging-structure-cache entry. */
  invalidateIotlbGlobal(): void {
    this.iotlb.clear();
    this.psc.clear();
  }
  /** Domain-selective: every entry tagged with `did`, whatever its PGTT or PASID. */
  invalidateIotlbDomain(did: number): void {
    this.dropIotlb((e) => e.did === did);
    this.dropPsc((e) => e.did === did);
  }
  /**
   * Page-selective-within-domain: the second-stage and pass-through IOTLB entries of `did` overlapping the region
   * (HW-022: overlap, not containment), every first-stage and nested IOTLB entry of `did` whatever its address, the
   * non-second-stage paging-structure-cache entries of `did` and, when `ih` is false, its second-stage ones in the
   * region.
   */
  invalidateIotlbPage(did: number, r: Region, ih: boolean): void {
    this.dropIotlb(
      (e) => e.did === did && (e.pgtt === 1 || e.pgtt === 3 || overlaps(r, e.iovaBase, e.size)), // PGTT 001b/011b: whatever the address
    );
    this.dropPsc((e) => e.did === did && (e.stage !== 'second' || (!ih && overlaps(r, e.prefix, levelSpan(e.level)))));
  }

  // ------------------------------------------------------------------------------------------------------------
  // HW-021 PASID-based IOTLB invalidation.

  /** PASID-selective (10b): every IOTLB entry and first-stage PSC entry tagged with both `did` and `pasid`. */
  invalidatePiotlbPasid(did: number, pasid: number): void {
    this.dropIotlb((e) => e.did === did && e.pasid === pasid);
    this.dropPsc((e) => e.did === did && e.pasid === pasid && e.stage === 'first');
  }
  /**
   * Page-selective-within-PASID (11b): the first-stage and nested IOTLB entries of `did` and `pasid` in the region,
   * and when `ih` is false their first-stage PSC entries in the region.
   */
  invalidatePiotlbPage(did: number, pasid: number, r: Region, ih: boolean): void {
    this.dropIotlb(
      (e) => e.did === did && e.pasid === pasid && (e.pgtt === 1 || e.pgtt === 3) && overlaps(r, e.iovaBase, e.size),
    );
    if (!ih)
      this.dropPsc(
        (e) => e.did === did && e.pasid === pasid && e.stage === 'first' && overlaps(r, e.prefix, levelSpan(e.level)),
      );
  }
}

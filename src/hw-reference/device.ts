/**
 * The device side of the hardware model: a PCIe function with an optional device TLB (ATS, HW-023, HW-024) and a page
 * request interface (PRI) that tracks its outstanding page request groups (HW-028 to HW-030).
 *
 * Not for: the IOMMU's view of the device (its context entry, `vtd.ts`).
 *
 * @module
 */
import type { Region } from './caches.ts';
import type { Translation } from './iommu.ts';

/** A page group response code (vt-d §7.6.1, PCIe PRG response). */
export type ResponseCode = 'success' | 'invalid' | 'failure';

/** A device-TLB entry: a translation obtained by a translation request, tagged with the PASID used (none: undefined). */
export interface DevTlbEntry extends Translation {
  readonly pasid: number | undefined;
}

/** An outstanding page request group. */
export interface OutstandingGroup {
  readonly pasid: number | undefined;
  readonly group: number;
  readonly pages: bigint[];
}

/** One PCIe function behind the IOMMU. */
export class DeviceModel {
  /** `pasid|-:pageBase` → translation (the device's ATC). */
  readonly tlb = new Map<string, DevTlbEntry>();
  /** Outstanding page request groups, by `pasid|-:group`. */
  readonly groups = new Map<string, OutstandingGroup>();
  /** Responses received (test-only introspection), in order. */
  readonly responses: { pasid: number | undefined; group: number; code: ResponseCode; auto: boolean }[] = [];
  /** Work descriptors received through ENQCMD, with the PASID they arrived with (HW-031). */
  readonly work: { pasid: number }[] = [];
  /** PRI enabled (a Response Failure disables it, HW-030). */
  priEnabled: boolean;

  constructor(
    readonly sid: number,
    readonly ats: boolean,
    readonly pri: boolean,
  ) {
    this.priEnabled = pri;
  }

  private static key(pasid: number | undefined, x: bigint | number): string {
    return `${pasid ?? '-'}:${x}`;
  }

  /** The cached translation for `addr` with `pasid`, trying each page size. */
  lookup(pasid: number | undefined, addr: bigint): DevTlbEntry | undefined {
    for (const size of [1n << 12n, 1n << 21n, 1n << 30n]) {
      const e = this.tlb.get(DeviceModel.key(pasid, addr & ~(size - 1n)));
      if (e !== undefined && e.size === size) return e;
    }
    return undefined;
  }

  /** Caches a translation completion (HW-023: kept until a device-TLB invalidation covering it). */
  fill(pasid: number | undefined, t: Translation): void {
    this.tlb.set(DeviceModel.key(pasid, t.iovaBase), { ...t, pasid });
  }

  /**
   * HW-024: removes the entries of `pasid` (undefined: those used without PASID; 'any': every PASID, GI = 1)
   * overlapping the region.
   */
  invalidate(pasid: number | undefined | 'any', r: Region | 'all'): void {
    for (const [k, e] of this.tlb) {
      if (pasid === 'any' ? e.pasid === undefined : e.pasid !== pasid) continue;
      if (r === 'all' || (e.iovaBase < r.base + r.size && r.base < e.iovaBase + e.size)) this.tlb.delete(k);
    }
  }

  /** Records a page request sent for `group`. */
  sendPageRequest(pasid: number | undefined, group: number, page: bigint): void {
    const k = DeviceModel.key(pasid, group);
    const g = this.groups.get(k) ?? { pasid, group, pages: [] };
    g.pages.push(page);
    this.groups.set(k, g);
  }

  /**
   * HW-030: a response completes the outstanding group with that index and PASID; one that matches none is
   * discarded without effect. Returns whether it matched.
   */
  receiveResponse(pasid: number | undefined, group: number, code: ResponseCode, auto: boolean): boolean {
    const k = DeviceModel.key(pasid, group);
    if (!this.groups.has(k)) return false;
    this.groups.delete(k);
    this.responses.push({ pasid, group, code, auto });
    if (code === 'failure') this.priEnabled = false;
    return true;
  }
}

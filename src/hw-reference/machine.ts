/**
 * A whole machine of the hardware model: host-physical memory, one VT-d remapping unit, the devices behind it (with
 * their device TLBs and page request interfaces), the page request queue and the CPUs' ENQCMD PASID translation. It
 * executes the hardware steps of a trace (`trace.ts`) and is what a driver programs.
 *
 * Not for: deciding what the hardware *should* hold (that is the driver's job, `driver.ts`), or judging a uAPI
 * (`conformance/refine.ts` does, through this machine).
 *
 * @module
 */
import { CpuPasid } from './cpu.ts';
import { DeviceModel, type ResponseCode } from './device.ts';
import { PGTT } from './entries.ts';
import type { DmaRequest, Fault } from './iommu.ts';
import { PAGE_MASK, PAGE_SIZE, PhysMem } from './memory.ts';
import { PageRequestQueue, type PageRequestRecord } from './prq.ts';
import { DEFAULT_VTD_CONFIG, VtdIommu, type VtdConfig, type VtdInv } from './vtd.ts';

/** A device as the machine is built with: its requester ID and its ATS / PRI capabilities. */
export interface MachineDevice {
  readonly sid: number;
  readonly ats: boolean;
  readonly pri: boolean;
}

/** A DMA of any size (the machine splits it at 4-KiB boundaries, HW-026). */
export interface MachineDma extends Omit<DmaRequest, 'size'> {
  readonly size: bigint;
}

/** The outcome of a DMA: the host-physical address of its first byte, or the first page's fault. */
export type MachineDmaResult =
  | { readonly ok: true; readonly hpa: bigint }
  | { readonly ok: false; readonly fault: Fault; readonly recoverable: boolean; readonly page: number };

/** A page request as a device sends it (DEVICE_PAGE_REQUEST). */
export interface PageRequest {
  readonly sid: number;
  readonly pasid?: number;
  readonly addr: bigint;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec?: boolean;
  readonly priv?: boolean;
  readonly group: number;
  readonly last: boolean;
}

/** What happened to a page request (HW-028, HW-029). */
export type PageRequestResult =
  | { readonly queued: true }
  | { readonly queued: false; readonly reason: string; readonly autoResponse?: ResponseCode; readonly fault?: Fault };

/** The machine. */
export class Machine {
  readonly mem = new PhysMem();
  readonly iommu: VtdIommu;
  readonly prq: PageRequestQueue;
  readonly cpu = new CpuPasid();
  readonly devices = new Map<number, DeviceModel>();

  constructor(devices: readonly MachineDevice[], config: VtdConfig = DEFAULT_VTD_CONFIG, prqSize = 16) {
    for (const d of devices)
      if (!this.devices.has(d.sid)) this.devices.set(d.sid, new DeviceModel(d.sid, d.ats, d.pri));
    this.iommu = new VtdIommu(this.mem, config, (sid, pasid, r) => this.devices.get(sid)?.invalidate(pasid, r));
    this.prq = new PageRequestQueue(prqSize);
  }

  /** HW_SET_ROOT. */
  setRoot(addr: bigint): void {
    this.iommu.setRoot(addr);
  }

  /** HW_INVALIDATE. */
  invalidate(d: VtdInv): { ok: true } | { ok: false; error: string } {
    return this.iommu.invalidate(d);
  }

  /** HW_DMA / DEVICE_DMA: split at 4-KiB boundaries, each page translated on its own (HW-026). */
  dma(req: MachineDma): MachineDmaResult {
    if (req.size <= 0n) throw new RangeError('a DMA has at least one byte');
    let first: bigint | undefined;
    let page = 0;
    for (let a = req.addr; a < req.addr + req.size; page++) {
      const end = (a & ~PAGE_MASK) + PAGE_SIZE;
      const stop = end < req.addr + req.size ? end : req.addr + req.size;
      const r = this.dmaPage({ ...req, addr: a, size: Number(stop - a) });
      if (!r.ok) return { ...r, page };
      first ??= r.hpa;
      a = stop;
    }
    return { ok: true, hpa: first! };
  }

  /** One page: through the device TLB and a translation request when ATS is enabled (HW-023, HW-027), else untranslated. */
  private dmaPage(req: DmaRequest): { ok: true; hpa: bigint } | { ok: false; fault: Fault; recoverable: boolean } {
    const dev = this.devices.get(req.sid);
    if (req.at === 'translated' || dev === undefined || !dev.ats || !this.iommu.atsEnabled(req.sid)) {
      const r = this.iommu.dma(req);
      return r.ok ? r : { ok: false, fault: r.fault, recoverable: false };
    }
    const need = (t: { r: boolean; w: boolean }) => (req.write ? t.w : t.r);
    let t = dev.lookup(req.pasid, req.addr);
    if (t === undefined || !need(t)) {
      const c = this.iommu.translate(req);
      if (!c.ok) return { ok: false, fault: c.fault, recoverable: false };
      if (c.t.r || c.t.w) dev.fill(req.pasid, c.t);
      if (!need(c.t)) {
        // HW-027: a completion without the permission: the device may ask for the page (DEVICE_PAGE_REQUEST).
        const code = c.code ?? (req.write ? 'SGN.6' : 'SGN.7');
        const stage = c.stage ?? (req.write ? c.t.wDeniedBy : c.t.rDeniedBy);
        return {
          ok: false,
          recoverable: true,
          fault: {
            code,
            sid: req.sid,
            addr: req.addr,
            recorded: false,
            ...(req.pasid === undefined ? {} : { pasid: req.pasid }),
            ...(stage === undefined ? {} : { stage }),
          },
        };
      }
      t = { ...c.t, pasid: req.pasid };
    }
    // HW-023: the translated request carries the host-physical address and bypasses translation.
    const hpa = t.hpaBase + (req.addr - t.iovaBase);
    const r = this.iommu.dma({ ...req, addr: hpa, at: 'translated' });
    return r.ok ? { ok: true, hpa } : { ok: false, fault: r.fault, recoverable: false };
  }

  /** DEVICE_PAGE_REQUEST: queued after the implicit invalidation (HW-028), or answered automatically (HW-029). */
  pageRequest(pr: PageRequest): PageRequestResult {
    const dev = this.devices.get(pr.sid);
    if (dev === undefined || !dev.priEnabled) return { queued: false, reason: 'the device has no enabled PRI' };
    const page = pr.addr & ~PAGE_MASK;
    dev.sendPageRequest(pr.pasid, pr.group, page);
    const auto = (code: ResponseCode): ResponseCode | undefined => {
      if (!pr.last) return undefined; // HW-029: no response when last-page-in-group is clear
      dev.receiveResponse(pr.pasid, pr.group, code, true);
      return code;
    };
    const found = this.iommu.pasidEntryFor(pr.sid, pr.pasid, page, true);
    if ('code' in found) {
      const a = auto('invalid');
      return { queued: false, reason: `table fault ${found.code}`, fault: found, ...(a ? { autoResponse: a } : {}) };
    }
    if (this.prq.overflow || this.prq.full) {
      if (this.prq.full) this.prq.overflow = true; // HW-029: a full queue sets PRO
      const a = auto('success');
      return { queued: false, reason: 'page request queue overflow', ...(a ? { autoResponse: a } : {}) };
    }
    // HW-028: the implicit invalidation vt-d Table 27 prescribes for the entry's PGTT, then the record.
    const { pe, pasid } = found;
    if (pe.pgtt === PGTT.FIRST)
      this.iommu.invalidate({ type: 'piotlb', g: 3, did: pe.did, pasid, addr: page, am: 0, ih: false });
    else if (pe.pgtt === PGTT.NESTED) this.iommu.invalidate({ type: 'iotlb', g: 'domain', did: pe.did });
    else this.iommu.invalidate({ type: 'iotlb', g: 'page', did: pe.did, addr: page, am: 0, ih: false });
    const rec: PageRequestRecord = {
      sid: pr.sid,
      pasidPresent: pr.pasid !== undefined,
      pasid: pr.pasid ?? 0,
      addr: page,
      read: pr.read,
      write: pr.write,
      exec: pr.exec === true,
      priv: pr.priv === true,
      group: pr.group,
      last: pr.last,
    };
    this.prq.push(rec);
    return { queued: true };
  }

  /** HW_PRQ_READ. */
  prqRead(clearOverflow: boolean): { records: PageRequestRecord[]; overflow: boolean } {
    return this.prq.drain(clearOverflow);
  }

  /** HW_PAGE_RESPONSE: delivered to the device the requester ID names (HW-030); returns whether a group matched. */
  pageResponse(sid: number, pasid: number | undefined, group: number, code: ResponseCode): boolean {
    return this.devices.get(sid)?.receiveResponse(pasid, group, code, false) ?? false;
  }

  /** HW_ENQCMD: the PASID the work reaches device `sid` with (HW-031), or undefined when the submission faults. */
  enqcmd(vm: number, msr: number, sid: number): number | undefined {
    const pasid = this.cpu.submit(vm, msr);
    if (pasid !== undefined) this.devices.get(sid)?.work.push({ pasid });
    return pasid;
  }
}

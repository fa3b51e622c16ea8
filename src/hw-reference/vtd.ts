/**
 * One Intel VT-d remapping unit in scalable mode (vt-d rev. 5.10): routing from requester ID through the root,
 * context, PASID-directory and PASID-table entries (HW-001 to HW-006), first-stage, second-stage, nested and
 * pass-through walks with 4-KiB / 2-MiB / 1-GiB leaves and read/write permissions (HW-007 to HW-013), adversarial
 * caches filled only by successful walks (HW-015 to HW-017), the invalidation descriptors (HW-018 to HW-022, and
 * HW-024 through the device-TLB sink), ATS translation requests (HW-023, HW-027) and fault recording (HW-025).
 * Faults carry the condition codes of vt-d Table 30 (§7.1.3) and, for nested walks, the stage (HW-013).
 *
 * Not for: devices, their TLBs and page-request state, or CPUs (see `machine.ts`); the page request queue is in
 * `prq.ts`.
 *
 * @module
 */
import { VtdCaches, psiRegion, type IotlbEntry, type PscEntry, type Region } from './caches.ts';
import {
  AW,
  FS,
  FSPM,
  PGTT,
  PS,
  PTE_ADDR_MASK,
  SS,
  decodeContext,
  decodePasidDir,
  decodePasidEntry,
  decodeRoot,
  levelIndex,
  levelSpan,
  type ContextEntry,
  type PasidEntry,
} from './entries.ts';
import type { DmaRequest, DmaResult, Fault, Iommu, Stage, Translation, TranslationCompletion } from './iommu.ts';
import { HOST_ADDRESS_WIDTH, PAGE_MASK, type PhysMem } from './memory.ts';

/** A VT-d invalidation descriptor (vt-d §6.5.2), as the queued-invalidation interface receives it. */
export type VtdInv =
  /** Context-cache invalidate (HW-018). */
  | {
      readonly type: 'context';
      readonly g: 'global' | 'domain' | 'device';
      readonly sid?: number;
      readonly fm?: number;
    }
  /** PASID-cache invalidate (HW-019); `g` is the 2-bit granularity: 0 domain, 1 PASID within domain, 3 global. */
  | { readonly type: 'pasid'; readonly g: number; readonly did: number; readonly pasid?: number }
  /** IOTLB invalidate (HW-020). */
  | {
      readonly type: 'iotlb';
      readonly g: 'global' | 'domain' | 'page';
      readonly did?: number;
      readonly addr?: bigint;
      readonly am?: number;
      readonly ih?: boolean;
    }
  /** PASID-based IOTLB invalidate (HW-021); `g` is 2 (PASID-selective) or 3 (page-selective within PASID). */
  | {
      readonly type: 'piotlb';
      readonly g: number;
      readonly did: number;
      readonly pasid: number;
      readonly addr?: bigint;
      readonly am?: number;
      readonly ih?: boolean;
    }
  /** Device-TLB invalidate for requests without PASID (HW-024). */
  | { readonly type: 'devtlb'; readonly sid: number; readonly addr: bigint; readonly s: boolean }
  /** PASID-based device-TLB invalidate (HW-024). */
  | {
      readonly type: 'pdevtlb';
      readonly sid: number;
      readonly pasid: number;
      readonly addr: bigint;
      readonly s: boolean;
      readonly gi?: boolean;
    };

/** What the model reports it supports (CAP/ECAP). */
export interface VtdConfig {
  /** Maximum guest address width (CAP.MGAW). */
  readonly mgaw: number;
  /** Supported second-stage AW values (CAP.SAGAW). */
  readonly sagaw: readonly number[];
  /** 5-level first-stage paging (ECAP.FS5LP... reported as supported). */
  readonly fs5: boolean;
  /** 1-GiB pages in the first stage and in the second stage. */
  readonly fs1g: boolean;
  readonly ss1g: boolean;
  /** Supported PGTT values (ECAP.FLTS/SLTS/NEST/PT). */
  readonly pgtt: readonly number[];
  /** Maximum address-mask value of a page-selective invalidation (CAP.MAMV). */
  readonly mamv: number;
  /** Caching mode (CAP.CM): the model implements CM = 0 only (HW-017). */
  readonly cm: 0;
}

/** The default configuration: everything the seeds need. */
export const DEFAULT_VTD_CONFIG: VtdConfig = {
  mgaw: 57,
  sagaw: [AW.L3, AW.L4, AW.L5],
  fs5: true,
  fs1g: true,
  ss1g: true,
  pgtt: [PGTT.FIRST, PGTT.SECOND, PGTT.NESTED, PGTT.PASS_THROUGH],
  mamv: 18,
  cm: 0,
};

/** Where the device-TLB invalidations go (the devices of the machine). `pasid` 'any' is GI = 1. */
export type DevTlbSink = (sid: number, pasid: number | undefined | 'any', r: Region | 'all') => void;

/**
 * Thrown inside a walk to abandon it with a fault. Deliberately not an Error: faults are the common outcome of a walk
 * and capturing a stack for each would dominate the model's run time.
 */
/* eslint-disable @typescript-eslint/only-throw-error -- see WalkFault */
class WalkFault {
  constructor(
    readonly code: string,
    readonly stage?: Stage,
  ) {}
}

/** The state of one walk: what it may cache on success (HW-017: nothing on a fault). */
interface Walk {
  readonly sid: number;
  /** The effective PASID (RID_PASID for a request without PASID, HW-003). */
  pasid: number;
  /** The request had no PASID. */
  readonly noPasid: boolean;
  did: number;
  pgtt: number;
  fpd: boolean;
  readonly fills: PscEntry[];
  ctx?: ContextEntry;
  pe?: PasidEntry;
}

const SS_RSVD = (0x3ffn << 52n) | (((1n << 52n) - 1n) & ~((1n << BigInt(HOST_ADDRESS_WIDTH)) - 1n));
const FS_RSVD = ((1n << 52n) - 1n) & ~((1n << BigInt(HOST_ADDRESS_WIDTH)) - 1n);
const AW_LEVELS: Record<number, number> = { [AW.L3]: 3, [AW.L4]: 4, [AW.L5]: 5 };

/** The VT-d scalable-mode remapping unit. */
export class VtdIommu implements Iommu<VtdInv> {
  readonly arch = 'vt-d' as const;
  readonly caches = new VtdCaches();
  private rootPtr: bigint | undefined;
  private readonly faults: Fault[] = [];
  /** The RID_PASID a cached translation of a request without PASID was filled under, by source-id (an IOTLB tag). */
  private readonly ridPasidTag = new Map<number, number>();

  constructor(
    private readonly mem: PhysMem,
    readonly config: VtdConfig = DEFAULT_VTD_CONFIG,
    private readonly devTlbSink: DevTlbSink = () => undefined,
  ) {}

  /** Programs the root-table address register (TTM = 01b, scalable mode) and latches it (SRTP). */
  setRoot(addr: bigint): void {
    this.rootPtr = addr & ~PAGE_MASK;
  }

  faultLog(): readonly Fault[] {
    return this.faults;
  }

  // ============================================================================================================
  // Requests

  dma(req: DmaRequest): DmaResult {
    if ((req.addr & PAGE_MASK) + BigInt(req.size) > 4096n)
      throw new RangeError('a request must not cross a 4-KiB boundary (HW-025); split it first (HW-026)');
    // HW-016: a cached translation serves a matching request without consulting the context or PASID entries,
    // which is why a context- or PASID-cache invalidation must be followed by an IOTLB invalidation (HW-018).
    const hit = req.at === 'translated' ? undefined : this.cachedFor(req);
    if (hit !== undefined) return { ok: true, hpa: hit.hpaBase + (req.addr - hit.iovaBase) };
    const w = this.newWalk(req);
    try {
      const ctx = this.context(w, req.sid);
      if (req.at === 'translated') {
        // HW-023: a translated request bypasses translation when the context entry has DTE = 1; SCT.5 otherwise.
        if (!ctx.dte) throw new WalkFault('SCT.5');
        return { ok: true, hpa: req.addr };
      }
      const t = this.translateFor(w, ctx, req);
      // HW-010 / HW-012: the needed permission must be granted by every entry of the walk.
      if (req.write && !t.w) throw new WalkFault('SGN.6', t.wDeniedBy);
      if (!req.write && !t.r) throw new WalkFault('SGN.7', t.rDeniedBy);
      this.commit(w, t);
      return { ok: true, hpa: t.hpaBase + (req.addr - t.iovaBase) };
    } catch (e) {
      if (!(e instanceof WalkFault)) throw e;
      return { ok: false, fault: this.record(w, req, e, true) };
    }
  }

  translate(req: DmaRequest): TranslationCompletion {
    const hit = this.cachedFor(req);
    if (hit !== undefined) return { ok: true, t: hit };
    const w = this.newWalk(req);
    try {
      const ctx = this.context(w, req.sid);
      // HW-023: translation requests need DTE = 1.
      if (!ctx.dte) throw new WalkFault('SCT.5');
      const t = this.translateFor(w, ctx, req);
      this.commit(w, t);
      return { ok: true, t };
    } catch (e) {
      if (!(e instanceof WalkFault)) throw e;
      // HW-027: these conditions complete the translation request with R = W = 0 instead of a recorded fault.
      if (RECOVERABLE.has(e.code)) {
        const page = req.addr & ~PAGE_MASK;
        return {
          ok: true,
          code: e.code,
          ...(e.stage === undefined ? {} : { stage: e.stage }),
          t: { iovaBase: page, hpaBase: 0n, size: 4096n, r: false, w: false },
        };
      }
      return { ok: false, fault: this.record(w, req, e, true) };
    }
  }

  /**
   * The PASID-table entry a request from `sid` with `pasid` (or without PASID) would use, walking memory as a DMA
   * would (HW-001 to HW-005), or the fault of the first failing level. Used by the page-request path (HW-028).
   */
  pasidEntryFor(
    sid: number,
    pasid: number | undefined,
    addr: bigint,
    forPageRequest: boolean,
  ): { ctx: ContextEntry; pe: PasidEntry; pasid: number } | Fault {
    const req: DmaRequest = { sid, addr, size: 1, write: false, ...(pasid === undefined ? {} : { pasid }) };
    const w = this.newWalk(req);
    try {
      const ctx = this.context(w, sid);
      // HW-029: a page request through a context entry without DTE = 1 and PRE = 1 is SCT.8.
      if (forPageRequest && !(ctx.dte && ctx.pre)) throw new WalkFault('SCT.8');
      const eff = this.effectivePasid(ctx, pasid);
      const pe = this.pasidEntry(w, ctx, eff);
      return { ctx, pe, pasid: eff };
    } catch (e) {
      if (!(e instanceof WalkFault)) throw e;
      return this.record(w, req, e, true);
    }
  }

  /** Records a non-recoverable fault (HW-025) found outside a walk, such as SCT.8 for a page request. */
  recordFault(sid: number, pasid: number | undefined, addr: bigint, code: string): Fault {
    const f: Fault = { code, sid, addr, recorded: true, ...(pasid === undefined ? {} : { pasid }) };
    this.faults.push(f);
    return f;
  }

  /** The IOTLB entry serving `req` (same source-id, PASID or RID_PASID tag, page) when it grants the access. */
  private cachedFor(req: DmaRequest): IotlbEntry | undefined {
    const pasid = req.pasid ?? this.ridPasidTag.get(req.sid);
    if (pasid === undefined) return undefined;
    const e = this.caches.lookupIotlb(req.sid, pasid, req.addr);
    if (e === undefined || (req.pasid === undefined) !== (e.noPasid === true)) return undefined;
    return (req.write ? e.w : e.r) ? e : undefined;
  }

  private newWalk(req: DmaRequest): Walk {
    return {
      sid: req.sid,
      pasid: req.pasid ?? 0,
      noPasid: req.pasid === undefined,
      did: 0,
      pgtt: 0,
      fpd: false,
      fills: [],
    };
  }

  private record(w: Walk, req: DmaRequest, e: WalkFault, log: boolean): Fault {
    // HW-025 / HW-004: SRT.* is not qualified; a Fault Processing Disable bit on the walk suppresses the record of
    // qualified conditions, never the blocking.
    const recorded = !(w.fpd && !e.code.startsWith('SRT'));
    const f: Fault = {
      code: e.code,
      sid: req.sid,
      addr: req.addr,
      recorded,
      ...(req.pasid === undefined ? {} : { pasid: req.pasid }),
      ...(e.stage === undefined ? {} : { stage: e.stage }),
    };
    if (log && recorded) this.faults.push(f);
    return f;
  }

  // ============================================================================================================
  // Routing

  /** HW-001 / HW-004: root entry at index bus, then the lower or upper context table. */
  private context(w: Walk, sid: number): ContextEntry {
    const cached = this.caches.context.get(sid);
    if (cached !== undefined) {
      w.ctx = cached;
      w.fpd ||= cached.fpd;
      return cached;
    }
    if (this.rootPtr === undefined) throw new WalkFault('SRT.1');
    const bus = (sid >> 8) & 0xff;
    const devfn = sid & 0xff;
    const re = this.rootPtr + BigInt(bus) * 16n;
    const root = decodeRoot(this.mem.readQ(re), this.mem.readQ(re + 8n));
    const upper = devfn >= 128;
    if (upper ? !root.up : !root.lp) throw new WalkFault('SRT.2');
    const ce = (upper ? root.uctp : root.lctp) + BigInt(devfn % 128) * 32n;
    const ctx = decodeContext(this.mem.readQ(ce), this.mem.readQ(ce + 8n));
    if (!ctx.p) throw new WalkFault('SCT.2');
    w.ctx = ctx;
    w.fpd ||= ctx.fpd;
    return ctx;
  }

  /** HW-003: a request without PASID uses RID_PASID (ECAP.RPS = 1). */
  private effectivePasid(ctx: ContextEntry, pasid: number | undefined): number {
    if (pasid === undefined) return ctx.ridPasid;
    // HW-005: PASID enable, directory size, RID_PASID aliasing.
    if (!ctx.paside) throw new WalkFault('SCT.6');
    if (pasid >= 2 ** (ctx.pdts + 13)) throw new WalkFault('SCT.7');
    if (pasid === ctx.ridPasid) throw new WalkFault('SCT.9');
    return pasid;
  }

  /** HW-002 / HW-004: PASID directory entry p[19:6], then PASID-table entry p[5:0], both host-physical. */
  private pasidEntry(w: Walk, ctx: ContextEntry, pasid: number): PasidEntry {
    const key = `${w.sid}:${pasid}`;
    const cached = this.caches.pasid.get(key);
    if (cached !== undefined) {
      w.pe = cached.entry;
      w.did = cached.did;
      w.pgtt = cached.entry.pgtt;
      w.fpd ||= cached.entry.fpd;
      return cached.entry;
    }
    const de = decodePasidDir(this.mem.readQ(ctx.pasidDirPtr + BigInt(pasid >> 6) * 8n));
    if (!de.p) throw new WalkFault('SPD.2');
    w.fpd ||= de.fpd;
    const a = de.smptblptr + BigInt(pasid & 63) * 64n;
    const pe = decodePasidEntry(this.mem.readQ(a), this.mem.readQ(a + 8n), this.mem.readQ(a + 16n));
    if (!pe.p) throw new WalkFault('SPT.2');
    w.pe = pe;
    w.did = pe.did;
    w.pgtt = pe.pgtt;
    w.fpd ||= pe.fpd;
    return pe;
  }

  // ============================================================================================================
  // Translation

  /** Routes and walks (or hits the IOTLB) for a request; permission is checked by the caller. */
  private translateFor(w: Walk, ctx: ContextEntry, req: DmaRequest): Translation {
    const pasid = this.effectivePasid(ctx, req.pasid);
    w.pasid = pasid;
    const pe = this.pasidEntry(w, ctx, pasid);
    // HW-015 / HW-016: a cached translation of the same source-id, PASID and page serves the request when it grants
    // the access (a cached entry lacking the permission is re-walked, never trusted to deny).
    const hit = this.caches.lookupIotlb(w.sid, pasid, req.addr);
    if (hit !== undefined && (req.write ? hit.w : hit.r)) return hit;
    return this.walk(w, pe, req.addr, req.write, req.supervisor === true);
  }

  /** HW-006: the PGTT field selects the walk. */
  private walk(w: Walk, pe: PasidEntry, addr: bigint, write: boolean, supervisor: boolean): Translation {
    if (!this.config.pgtt.includes(pe.pgtt)) throw new WalkFault('SPT.4.2');
    switch (pe.pgtt) {
      case PGTT.PASS_THROUGH: {
        // HW-006: output = input, no permission check, blocked above the host address width.
        if (addr >> BigInt(HOST_ADDRESS_WIDTH) !== 0n) throw new WalkFault('SGN.4.2');
        return { iovaBase: addr & ~PAGE_MASK, hpaBase: addr & ~PAGE_MASK, size: 4096n, r: true, w: true };
      }
      case PGTT.SECOND: {
        const levels = this.ssLevels(pe);
        // HW-007: input above 2^min(MGAW, AGAW) − 1 is blocked with SGN.5 before any paging entry is read.
        if (addr >> BigInt(Math.min(this.config.mgaw, 12 + 9 * levels)) !== 0n) throw new WalkFault('SGN.5');
        const s = this.ssWalk(w, pe.ssptptr, levels, addr, undefined);
        return {
          ...s,
          ...(s.w ? {} : { wDeniedBy: 'second' as const }),
          ...(s.r ? {} : { rDeniedBy: 'second' as const }),
        };
      }
      case PGTT.FIRST:
        return this.fsWalk(w, pe, addr, write, supervisor, false);
      case PGTT.NESTED:
        return this.fsWalk(w, pe, addr, write, supervisor, true);
      default:
        throw new WalkFault('SPT.4.2');
    }
  }

  /** HW-007: AW 001b/010b/011b select 3/4/5 levels; an unsupported AW is SPT.4.1. */
  private ssLevels(pe: PasidEntry): number {
    const levels = AW_LEVELS[pe.aw];
    if (levels === undefined || !this.config.sagaw.includes(pe.aw)) throw new WalkFault('SPT.4.1');
    return levels;
  }

  /**
   * A second-stage walk of `input` from `root` (HW-007, HW-009, HW-010). `nestedUse` says what a nested walk uses
   * it for: reading the first-stage root table or an entry (a missing read is SFS.6 / SFS.7, HW-012); undefined for
   * the final page or a second-stage-only walk, whose permission the caller checks.
   */
  private ssWalk(
    w: Walk,
    root: bigint,
    levels: number,
    input: bigint,
    nestedUse: 'fs-root' | 'fs-entry' | undefined,
  ): Translation {
    const stage: Stage | undefined = w.pgtt === PGTT.NESTED ? 'second' : undefined;
    let table = root;
    let r = true;
    let wr = true;
    for (let level = levels; level >= 1; level--) {
      const span = levelSpan(level);
      const prefix = input & ~(span - 1n);
      const key = VtdCaches.pscKey(w.sid, w.pasid, 'second', level, prefix);
      const cached = level > 1 ? this.caches.psc.get(key) : undefined;
      const v = cached !== undefined ? cached.value : this.mem.readQ(table + BigInt(levelIndex(input, level)) * 8n);
      // HW-007: R = W = 0 is a not-present second-stage entry (SSS.2); reserved bits are SSS.3.
      if ((v & (SS.R | SS.W)) === 0n) throw new WalkFault('SSS.2', stage);
      if ((v & SS_RSVD) !== 0n) throw new WalkFault('SSS.3', stage);
      r &&= (v & SS.R) !== 0n;
      wr &&= (v & SS.W) !== 0n;
      const ps = (v & PS) !== 0n;
      // HW-009: leaves at level 1, level 2 with PS, level 3 with PS where 1-GiB pages are supported.
      if (ps && (level >= 4 || (level === 3 && !this.config.ss1g))) throw new WalkFault('SSS.3', stage);
      if (level === 1 || ps) {
        const low = v & PTE_ADDR_MASK & (span - 1n);
        if (low !== 0n) throw new WalkFault('SSS.3', stage); // a large leaf's low address bits are reserved
        const base = v & PTE_ADDR_MASK;
        if (nestedUse !== undefined && !r) throw new WalkFault(nestedUse === 'fs-root' ? 'SFS.6' : 'SFS.7', 'second');
        return { iovaBase: prefix, hpaBase: base, size: span, r, w: wr };
      }
      if (cached === undefined)
        w.fills.push({
          sid: w.sid,
          pasid: w.pasid,
          did: w.did,
          pgtt: w.pgtt,
          stage: 'second',
          level,
          prefix,
          value: v,
        });
      table = v & PTE_ADDR_MASK;
    }
    throw new Error('unreachable');
  }

  /** Translates a guest-physical address through the nested second stage (HW-011); returns the host-physical one. */
  private nestedSs(w: Walk, pe: PasidEntry, gpa: bigint, use: 'fs-root' | 'fs-entry'): Translation {
    const levels = this.ssLevels(pe);
    if (gpa >> BigInt(Math.min(this.config.mgaw, 12 + 9 * levels)) !== 0n) throw new WalkFault('SFS.5', 'second');
    return this.ssWalk(w, pe.ssptptr, levels, gpa, use);
  }

  /**
   * A first-stage walk (HW-008, HW-009, HW-010), or a nested one (HW-011, HW-012) where the root pointer, every
   * entry's address and the output are guest-physical and go through the second stage.
   */
  private fsWalk(
    w: Walk,
    pe: PasidEntry,
    input: bigint,
    write: boolean,
    supervisor: boolean,
    nested: boolean,
  ): Translation {
    // HW-008: FSPM 00b → 4 levels, 01b → 5 levels (where supported); SPT.4.3 otherwise. AW is ignored (non-nested).
    const levels = pe.fspm === FSPM.L4 ? 4 : pe.fspm === FSPM.L5 && this.config.fs5 ? 5 : 0;
    if (levels === 0) throw new WalkFault('SPT.4.3');
    // HW-008: canonical check on bits 63:48 (63:57), SGN.1 before any paging entry is read.
    const top = BigInt(12 + 9 * levels - 1);
    const upper = input >> top;
    if (upper !== 0n && upper !== (1n << (64n - top)) - 1n) throw new WalkFault('SGN.1', nested ? 'first' : undefined);
    const stage1: Stage | undefined = nested ? 'first' : undefined;
    let awLimit = 0n;
    if (nested) {
      const ssLevels = this.ssLevels(pe);
      awLimit = 1n << BigInt(Math.min(this.config.mgaw, 12 + 9 * ssLevels));
      // HW-011: FSPTPTR above 2^min(MGAW, AW) − 1 is SPT.4.4.
      if (pe.fsptptr >= awLimit) throw new WalkFault('SPT.4.4', 'second');
    }
    let table = pe.fsptptr;
    let wr = true;
    for (let level = levels; level >= 1; level--) {
      const span = levelSpan(level);
      const prefix = input & ~(span - 1n);
      const key = VtdCaches.pscKey(w.sid, w.pasid, 'first', level, prefix);
      const cached = level > 1 ? this.caches.psc.get(key) : undefined;
      const entryAddr = table + BigInt(levelIndex(input, level)) * 8n;
      let v: bigint;
      let entryHpa = entryAddr;
      let tableTr: Translation | undefined;
      if (cached !== undefined) v = cached.value;
      else {
        if (nested) {
          // HW-011 / HW-012: every first-stage table access is itself translated by the second stage.
          tableTr = this.nestedSs(w, pe, entryAddr, level === levels ? 'fs-root' : 'fs-entry');
          entryHpa = tableTr.hpaBase + (entryAddr - tableTr.iovaBase);
        }
        v = this.mem.readQ(entryHpa);
      }
      // HW-008: P = 0 is SFS.2, a reserved bit SFS.3.
      if ((v & FS.P) === 0n) throw new WalkFault('SFS.2', stage1);
      if ((v & FS_RSVD) !== 0n) throw new WalkFault('SFS.3', stage1);
      const ps = (v & PS) !== 0n && level > 1;
      if (ps && (level >= 4 || (level === 3 && !this.config.fs1g))) throw new WalkFault('SFS.3', stage1);
      const isLeaf = level === 1 || ps;
      if (isLeaf && level > 1 && (v & PTE_ADDR_MASK & (span - 1n) & ~0x1000n) !== 0n)
        throw new WalkFault('SFS.3', stage1); // bits 20:13 (29:13) of a large leaf are reserved; bit 12 is PAT
      // HW-011: an entry's address above 2^min(MGAW, AW) − 1 is SFS.5 under nesting.
      if (nested && (v & PTE_ADDR_MASK) >= awLimit) throw new WalkFault('SFS.5', 'second');
      // HW-010: user requests need U/S = 1 at every level (SGN.2); writes need R/W = 1 at every level.
      if (!supervisor && (v & FS.US) === 0n) throw new WalkFault('SGN.2', stage1);
      wr &&= (v & FS.RW) !== 0n;
      // Accessed / dirty flags are set by an atomic write (HW-012: SFS.8 when the second stage denies it).
      const setBits = ((v & FS.A) === 0n ? FS.A : 0n) | (isLeaf && write && wr && (v & FS.D) === 0n ? FS.D : 0n);
      if (setBits !== 0n && cached === undefined) {
        if (tableTr !== undefined && !(tableTr.r && tableTr.w)) throw new WalkFault('SFS.8', 'second');
        v |= setBits;
        this.mem.writeQ(entryHpa, v);
      }
      if (isLeaf) {
        const base = v & PTE_ADDR_MASK & ~(span - 1n);
        const out = base + (input & (span - 1n));
        if (!nested)
          return {
            iovaBase: prefix,
            hpaBase: base,
            size: span,
            r: true,
            w: wr,
            ...(wr ? {} : { wDeniedBy: 'first' as const }),
          };
        // HW-011: the output address is translated by the second stage too; HW-012: its permissions apply.
        const ssLevels = this.ssLevels(pe);
        if (out >= awLimit) throw new WalkFault('SFS.5', 'second');
        const s = this.ssWalk(w, pe.ssptptr, ssLevels, out, undefined);
        const size = s.size < span ? s.size : span;
        const iovaBase = input & ~(size - 1n);
        const hpa = s.hpaBase + (out - s.iovaBase);
        const wDeniedBy: Stage | undefined = !wr ? 'first' : !s.w ? 'second' : undefined;
        return {
          iovaBase,
          hpaBase: hpa - (input - iovaBase),
          size,
          r: s.r,
          w: wr && s.w,
          ...(wDeniedBy === undefined ? {} : { wDeniedBy }),
          ...(s.r ? {} : { rDeniedBy: 'second' as const }),
        };
      }
      if (cached === undefined)
        w.fills.push({ sid: w.sid, pasid: w.pasid, did: w.did, pgtt: w.pgtt, stage: 'first', level, prefix, value: v });
      table = v & PTE_ADDR_MASK;
    }
    throw new Error('unreachable');
  }

  /** HW-017: a successful walk fills the caches (context, PASID, paging-structure, IOTLB); a faulting one nothing. */
  private commit(w: Walk, t: Translation): void {
    if (w.ctx !== undefined) this.caches.context.set(w.sid, w.ctx);
    if (w.pe !== undefined)
      this.caches.pasid.set(`${w.sid}:${w.pasid}`, { sid: w.sid, pasid: w.pasid, did: w.did, entry: w.pe });
    for (const f of w.fills) this.caches.psc.set(VtdCaches.pscKey(f.sid, f.pasid, f.stage, f.level, f.prefix), f);
    if (w.pe === undefined) return;
    const noPasid = w.noPasid;
    if (noPasid) this.ridPasidTag.set(w.sid, w.pasid);
    const e: IotlbEntry = {
      ...t,
      sid: w.sid,
      pasid: w.pasid,
      did: w.did,
      pgtt: w.pgtt,
      ...(noPasid ? { noPasid } : {}),
    };
    this.caches.iotlb.set(VtdCaches.iotlbKey(w.sid, w.pasid, t.iovaBase), e);
  }

  // ============================================================================================================
  // Invalidation (HW-018 to HW-024)

  invalidate(d: VtdInv): { ok: true } | { ok: false; error: string } {
    const c = this.caches;
    switch (d.type) {
      case 'context':
        if (d.g === 'device') c.invalidateContextDevice(d.sid ?? 0, d.fm ?? 0);
        else c.invalidateContextAll(); // HW-018: DID ignored in scalable mode
        return { ok: true };
      case 'pasid':
        // HW-019: 00b domain, 01b PASID within domain, 11b global; 10b is an invalid descriptor.
        if (d.g === 0) c.invalidatePasidDomain(d.did);
        else if (d.g === 1) c.invalidatePasidSelective(d.did, d.pasid ?? 0);
        else if (d.g === 3) c.invalidatePasidAll();
        else return { ok: false, error: `PASID-cache invalidation with granularity ${d.g} is invalid (HW-019)` };
        return { ok: true };
      case 'iotlb':
        if (d.g === 'global') c.invalidateIotlbGlobal();
        else if (d.g === 'domain') c.invalidateIotlbDomain(d.did ?? 0);
        else {
          const am = d.am ?? 0;
          if (am > this.config.mamv)
            return { ok: false, error: `AM ${am} exceeds CAP.MAMV ${this.config.mamv} (HW-022)` };
          c.invalidateIotlbPage(d.did ?? 0, psiRegion(d.addr ?? 0n, am), d.ih === true);
        }
        return { ok: true };
      case 'piotlb': {
        // HW-021: 10b PASID-selective, 11b page-selective within PASID; 00b and 01b are invalid.
        if (d.g === 2) c.invalidatePiotlbPasid(d.did, d.pasid);
        else if (d.g === 3) {
          const am = d.am ?? 0;
          if (am > this.config.mamv)
            return { ok: false, error: `AM ${am} exceeds CAP.MAMV ${this.config.mamv} (HW-022)` };
          c.invalidatePiotlbPage(d.did, d.pasid, psiRegion(d.addr ?? 0n, am), d.ih === true);
        } else
          return { ok: false, error: `PASID-based IOTLB invalidation with granularity ${d.g} is invalid (HW-021)` };
        return { ok: true };
      }
      case 'devtlb':
        this.devTlbSink(d.sid, undefined, devTlbRegion(d.addr, d.s));
        return { ok: true };
      case 'pdevtlb':
        this.devTlbSink(d.sid, d.gi === true ? 'any' : d.pasid, devTlbRegion(d.addr, d.s));
        return { ok: true };
    }
  }

  /** Whether the device's context entry enables ATS (DTE = 1), read as a request would (no fault recorded). */
  atsEnabled(sid: number): boolean {
    const w = this.newWalk({ sid, addr: 0n, size: 1, write: false });
    try {
      return this.context(w, sid).dte;
    } catch (e) {
      if (e instanceof WalkFault) return false;
      throw e;
    }
  }

  /** Test-only introspection: the number of entries in each cache. */
  cacheSizes(): { context: number; pasid: number; iotlb: number; psc: number } {
    const c = this.caches;
    return { context: c.context.size, pasid: c.pasid.size, iotlb: c.iotlb.size, psc: c.psc.size };
  }
}

/** Conditions that complete a translation request with R = W = 0 rather than a recorded fault (HW-027). */
const RECOVERABLE = new Set(['SPD.2', 'SPT.2', 'SFS.1', 'SFS.2', 'SFS.3', 'SSS.2', 'SGN.1', 'SGN.2', 'SGN.5']);

/** The ALL-pages marker of a device-TLB invalidation: ADDR[63:12] = 0x7FFFFFFF_FFFFF with S = 1 (HW-024). */
export const DEVTLB_ALL_ADDR = 0x7fff_ffff_ffff_f000n;

/**
 * The region of a device-TLB invalidation (HW-024, PCIe ATS): S = 0 is the 4-KiB page of ADDR; S = 1 the naturally
 * aligned block of 2^(t+1) pages, t being the number of consecutive 1 bits of ADDR from bit 12 up.
 */
export function devTlbRegion(addr: bigint, s: boolean): Region | 'all' {
  const page = addr & ~PAGE_MASK;
  if (!s) return { base: page, size: 4096n };
  if ((addr & ~PAGE_MASK) === DEVTLB_ALL_ADDR) return 'all';
  let t = 0n;
  while (((page >> (12n + t)) & 1n) === 1n) t++;
  const size = 1n << (12n + t + 1n);
  return { base: page & ~(size - 1n), size };
}

/** The device-TLB invalidation address (with S) covering `[base, base + size)`, size a power of two ≥ 4 KiB and base aligned. */
export function devTlbEncode(base: bigint, size: bigint): { addr: bigint; s: boolean } {
  if (size <= 4096n) return { addr: base, s: false };
  // size = 2^(12 + t + 1): set t ones from bit 12 up.
  let t = 0n;
  while (1n << (12n + t + 1n) < size) t++;
  return { addr: base | (((1n << t) - 1n) << 12n), s: true };
}

/** The smallest naturally aligned block of 2^AM pages covering `[first, last]` (HW-022; Linux computes the same). */
export function psiCover(first: bigint, last: bigint): { addr: bigint; am: number } {
  let am = 0;
  for (;;) {
    const size = 1n << BigInt(12 + am);
    if ((first & ~(size - 1n)) + size - 1n >= last) return { addr: first & ~(size - 1n), am };
    am++;
  }
}

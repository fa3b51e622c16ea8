// Hand-built VT-d structures for the hardware-model tests: a tiny driver that writes entries the way the spec lays
// them out, so each test states exactly which bits it sets. Test-only; the reference driver is src/hw-reference/driver.ts.
import {
  AW,
  FSPM,
  PGTT,
  encodeContext,
  encodeFsPte,
  encodePasidDir,
  encodePasidEntry,
  encodeRoot,
  encodeSsPte,
  levelIndex,
  levelSpan,
  PTE_ADDR_MASK,
  type ContextEntry,
  type PasidEntry,
} from '../../src/hw-reference/entries.ts';
import { Machine, type MachineDevice } from '../../src/hw-reference/machine.ts';

export { AW, FSPM, PGTT };

/** Devices: 00:02.0 (ATS, PRI), 00:12.0 (devfn 0x90: upper context table), 01:00.0 (no ATS). */
export const DEV_A = 0x0010;
export const DEV_UPPER = 0x0090;
export const DEV_B = 0x0100;
export const DEVICES: MachineDevice[] = [
  { sid: DEV_A, ats: true, pri: true },
  { sid: DEV_UPPER, ats: false, pri: false },
  { sid: DEV_B, ats: false, pri: false },
];

/** A machine plus a bump allocator of frames and helpers that write VT-d entries. */
export class Rig {
  readonly m: Machine;
  private next = 0x10_0000n;
  readonly root: bigint;
  private readonly ctxTables = new Map<string, bigint>();
  private readonly dirs = new Map<number, bigint>();
  private readonly ptables = new Map<string, bigint>();

  constructor(devices: MachineDevice[] = DEVICES, prqSize = 16) {
    this.m = new Machine(devices, undefined, prqSize);
    this.root = this.frame();
    this.m.setRoot(this.root);
  }

  frame(): bigint {
    const f = this.next;
    this.next += 0x1000n;
    return f;
  }

  w(addr: bigint, v: bigint): void {
    this.m.mem.writeQ(addr, v);
  }

  /** Writes the root entry half and the scalable-mode context entry of `sid`. */
  context(sid: number, over: Partial<ContextEntry> = {}, rootPresent = true): ContextEntry {
    const bus = (sid >> 8) & 0xff;
    const devfn = sid & 0xff;
    const upper = devfn >= 128;
    const k = `${bus}:${upper}`;
    let ct = this.ctxTables.get(k);
    if (ct === undefined) this.ctxTables.set(k, (ct = this.frame()));
    const other = this.ctxTables.get(`${bus}:${!upper}`);
    const [lo, hi] = encodeRoot({
      lp: upper ? other !== undefined : rootPresent,
      lctp: upper ? (other ?? 0n) : ct,
      up: upper ? rootPresent : other !== undefined,
      uctp: upper ? ct : (other ?? 0n),
    });
    this.w(this.root + BigInt(bus) * 16n, lo);
    this.w(this.root + BigInt(bus) * 16n + 8n, hi);
    let dir = this.dirs.get(sid);
    if (dir === undefined) this.dirs.set(sid, (dir = this.frame()));
    const e: ContextEntry = {
      p: true,
      fpd: false,
      dte: false,
      paside: true,
      pre: false,
      pdts: 0,
      pasidDirPtr: dir,
      ridPasid: 0,
      ...over,
    };
    const [clo, chi] = encodeContext(e);
    const ce = ct + BigInt(devfn % 128) * 32n;
    this.w(ce, clo);
    this.w(ce + 8n, chi);
    return e;
  }

  /** The address of the context entry of `sid` (written by {@link Rig.context}). */
  contextAddr(sid: number): bigint {
    const ct = this.ctxTables.get(`${(sid >> 8) & 0xff}:${(sid & 0xff) >= 128}`)!;
    return ct + BigInt((sid & 0xff) % 128) * 32n;
  }

  /** Writes the PASID-directory entry (when needed) and the PASID-table entry of (sid, pasid). */
  pasid(sid: number, pasid: number, over: Partial<PasidEntry> = {}, dirPresent = true): bigint {
    const dir = this.dirs.get(sid)!;
    const dk = `${sid}:${pasid >> 6}`;
    let pt = this.ptables.get(dk);
    if (pt === undefined) this.ptables.set(dk, (pt = this.frame()));
    this.w(dir + BigInt(pasid >> 6) * 8n, encodePasidDir({ p: dirPresent, fpd: false, smptblptr: pt }));
    const e: PasidEntry = {
      p: true,
      fpd: false,
      aw: AW.L4,
      pgtt: PGTT.SECOND,
      ssptptr: 0n,
      did: 1,
      fspm: FSPM.L4,
      fsptptr: 0n,
      ...over,
    };
    const [w0, w1, w2] = encodePasidEntry(e);
    const at = pt + BigInt(pasid & 63) * 64n;
    this.w(at, w0);
    this.w(at + 8n, w1);
    this.w(at + 16n, w2);
    return at;
  }

  /**
   * Maps `iova` → `out` at leaf `level` in a `levels`-level table at `root`; intermediate entries grant `mid`
   * (second stage: R/W; first stage: R/W bit). Returns the leaf's address. `tr` translates a table address before
   * it is written (nested first-stage tables live at GPAs: give the GPA → HPA mapping).
   */
  map(
    stage: 'ss' | 'fs',
    root: bigint,
    iova: bigint,
    out: bigint,
    o: {
      level?: number;
      levels?: number;
      r?: boolean;
      w?: boolean;
      mid?: { r: boolean; w: boolean };
      tr?: (a: bigint) => bigint;
      alloc?: () => bigint;
    } = {},
  ): bigint {
    const level = o.level ?? 1;
    const levels = o.levels ?? 4;
    const tr = o.tr ?? ((a: bigint) => a);
    const alloc = o.alloc ?? (() => this.frame());
    let table = root;
    for (let l = levels; l > level; l--) {
      const at = tr(table + BigInt(levelIndex(iova, l)) * 8n);
      const cur = this.m.mem.readQ(at);
      const present = stage === 'ss' ? (cur & 3n) !== 0n : (cur & 1n) !== 0n;
      if (present) {
        table = cur & PTE_ADDR_MASK;
        continue;
      }
      const next = alloc();
      const mid = o.mid ?? { r: true, w: true };
      this.w(at, stage === 'ss' ? encodeSsPte(next, mid.r, mid.w) : encodeFsPte(next, mid.w));
      table = next;
    }
    const leaf = tr(table + BigInt(levelIndex(iova, level)) * 8n);
    const span = levelSpan(level);
    this.w(
      leaf,
      stage === 'ss'
        ? encodeSsPte(out & ~(span - 1n), o.r ?? true, o.w ?? true, level > 1)
        : encodeFsPte(out & ~(span - 1n), o.w ?? true, true, level > 1),
    );
    return leaf;
  }

  /** A one-page DMA. */
  dma(sid: number, addr: bigint, o: { pasid?: number; write?: boolean; size?: bigint; at?: 'translated' } = {}) {
    return this.m.dma({
      sid,
      addr,
      size: o.size ?? 8n,
      write: o.write ?? false,
      ...(o.pasid === undefined ? {} : { pasid: o.pasid }),
      ...(o.at === undefined ? {} : { at: o.at }),
    });
  }

  /** The fault code of a DMA, or 'ok:0x…' for a success. */
  code(sid: number, addr: bigint, o: Parameters<Rig['dma']>[2] = {}): string {
    const r = this.dma(sid, addr, o);
    return r.ok ? `ok:0x${r.hpa.toString(16)}` : r.fault.code;
  }

  /** A second-stage-only PASID entry with a fresh table mapping `iova` → `out`; returns the table root. */
  ssSpace(
    sid: number,
    pasid: number,
    iova: bigint,
    out: bigint,
    did = 1,
    mapOpts: Parameters<Rig['map']>[4] = {},
  ): bigint {
    const root = this.frame();
    this.pasid(sid, pasid, { pgtt: PGTT.SECOND, ssptptr: root, did });
    this.map('ss', root, iova, out, mapOpts);
    return root;
  }
}

/**
 * fast-check generators of hardware traces (`src/hw-reference/trace.ts`): driver-like programs that build VT-d
 * scalable-mode structures in memory (root, context, PASID directory and table entries, first- and second-stage
 * tables with 4-KiB / 2-MiB / 1-GiB leaves), change and clear entries, invalidate (every descriptor kind, right and
 * wrong), and issue DMA at mapped, edge and unmapped addresses, page requests and responses, and ENQCMD. The
 * generator keeps its own layout (which frame holds which table) so that the steps it draws hit live structures;
 * it never asks an IOMMU what it holds.
 *
 * Not for: uAPI traces (`generators/trace.ts`).
 *
 * @module
 */
import fc from 'fast-check';
import {
  encodeContext,
  encodeFsPte,
  encodePasidDir,
  encodePasidEntry,
  encodeRoot,
  encodeSsPte,
  levelIndex,
  levelSpan,
  PTE_ADDR_MASK,
} from '../src/hw-reference/entries.ts';
import type { MachineDevice } from '../src/hw-reference/machine.ts';
import { devTlbEncode } from '../src/hw-reference/vtd.ts';
import type { HwStep, HwTrace } from '../src/hw-reference/trace.ts';
import { HW_TRACE_FORMAT } from '../src/hw-reference/trace.ts';

/** The devices of generated hardware traces: two ATS/PRI functions (lower and upper context table) and a plain one. */
export const HW_DEVICES: readonly MachineDevice[] = [
  { sid: 0x0100, ats: true, pri: true },
  { sid: 0x0188, ats: false, pri: false },
  { sid: 0x0200, ats: true, pri: false },
];

const ROOT = 0x10_0000n;
const PASIDS = [0, 1, 5, 70] as const;
const IOVAS = [0n, 0x1000n, 0x20_0000n, 0x4000_0000n, 0x7f_ffff_f000n] as const;
/** Guest-physical addresses the nested first-stage tables live at (mapped by the second stage when drawn so). */
const GPA_TABLES = 0x800_0000n;

/** One abstract action; realised into steps by {@link HwTraceBuilder}. */
type Action = { readonly k: string; readonly p: readonly number[] };

const action = fc.record({
  k: fc.constantFrom(
    'ctx',
    'ctx',
    'pasid',
    'pasid',
    'map',
    'map',
    'map',
    'unmap',
    'unmap',
    'corrupt',
    'inv',
    'inv',
    'dma',
    'dma',
    'dma',
    'pr',
    'prq',
    'resp',
    'xlate',
    'enqcmd',
  ),
  p: fc.array(fc.nat({ max: 1 << 20 }), { minLength: 6, maxLength: 6 }),
});

/** Builds steps while tracking the layout the steps created. */
class HwTraceBuilder {
  readonly steps: HwStep[] = [{ op: 'HW_SET_ROOT', addr: ROOT }];
  private next = 0x20_0000n;
  private readonly ctxTables = new Map<string, bigint>();
  private readonly dirs = new Map<number, bigint>();
  private readonly ptables = new Map<string, bigint>();
  /** (sid:pasid) → { did, ss root, fs root }. */
  readonly entries = new Map<string, { did: number; ss: bigint; fs: bigint; pgtt: number }>();
  /** Leaves written: address of the entry. */
  readonly leaves: bigint[] = [];
  /** What each leaf maps, for a driver-like unmap that invalidates exactly what it cleared. */
  readonly leafInfo = new Map<
    bigint,
    { sid: number; pasid: number; did: number; stage: 'ss' | 'fs'; iova: bigint; span: bigint }
  >();
  readonly mapped: bigint[] = [];
  /** (sid:pasid) → IOVAs mapped for it. */
  readonly mappedBy = new Map<string, bigint[]>();

  private frame(): bigint {
    const f = this.next;
    this.next += 0x1000n;
    return f;
  }
  private w(addr: bigint, value: bigint): void {
    this.steps.push({ op: 'HW_MEM_WRITE', addr, value });
  }

  ctx(dev: MachineDevice, flags: number): void {
    const bus = (dev.sid >> 8) & 0xff;
    const devfn = dev.sid & 0xff;
    const upper = devfn >= 128;
    const key = `${bus}:${upper}`;
    let ct = this.ctxTables.get(key);
    if (ct === undefined) {
      ct = this.frame();
      this.ctxTables.set(key, ct);
      const other = this.ctxTables.get(`${bus}:${!upper}`);
      const [lo, hi] = encodeRoot({
        lp: !upper || other !== undefined,
        lctp: upper ? (other ?? 0n) : ct,
        up: upper || other !== undefined,
        uctp: upper ? ct : (other ?? 0n),
      });
      this.w(ROOT + BigInt(bus) * 16n, lo);
      this.w(ROOT + BigInt(bus) * 16n + 8n, hi);
    }
    let dir = this.dirs.get(dev.sid);
    if (dir === undefined) this.dirs.set(dev.sid, (dir = this.frame()));
    const [lo, hi] = encodeContext({
      p: (flags & 7) !== 0,
      fpd: (flags & 8) !== 0,
      dte: dev.ats && (flags & 16) === 0,
      paside: (flags & 32) === 0,
      pre: dev.pri && (flags & 64) === 0,
      pdts: 0,
      pasidDirPtr: dir,
      ridPasid: 0,
    });
    const ce = ct + BigInt(devfn % 128) * 32n;
    this.w(ce, lo);
    this.w(ce + 8n, hi);
  }

  pasid(dev: MachineDevice, pasid: number, pgtt: number, did: number, aw: number, fspm: number): void {
    const dir = this.dirs.get(dev.sid);
    if (dir === undefined) return;
    const dkey = `${dev.sid}:${pasid >> 6}`;
    let pt = this.ptables.get(dkey);
    if (pt === undefined) {
      this.ptables.set(dkey, (pt = this.frame()));
      this.w(dir + BigInt(pasid >> 6) * 8n, encodePasidDir({ p: true, fpd: false, smptblptr: pt }));
    }
    const prev = this.entries.get(`${dev.sid}:${pasid}`);
    const ss = prev?.ss ?? this.frame();
    const fs = prev?.fs ?? (pgtt === 3 ? GPA_TABLES : this.frame());
    this.entries.set(`${dev.sid}:${pasid}`, { did, ss, fs, pgtt });
    const words = encodePasidEntry({ p: pgtt !== 0, fpd: false, aw, pgtt, ssptptr: ss, did, fspm, fsptptr: fs });
    const at = pt + BigInt(pasid & 63) * 64n;
    this.w(at + 8n, words[1]);
    this.w(at + 16n, words[2]);
    this.w(at, words[0]);
  }

  /** Maps `iova` → `out` in the stage-`stage` table at `root` (4 levels), at leaf level `level`. */
  map(
    root: bigint,
    stage: 'ss' | 'fs',
    iova: bigint,
    out: bigint,
    level: number,
    r: boolean,
    w: boolean,
    owner?: { sid: number; pasid: number; did: number },
  ): void {
    let table = root;
    for (let l = 4; l > level; l--) {
      const at = table + BigInt(levelIndex(iova, l)) * 8n;
      const key = `${at}`;
      let next = this.tables.get(key);
      if (next === undefined) {
        next = this.frame();
        this.tables.set(key, next);
        this.w(at, stage === 'ss' ? encodeSsPte(next, true, true) : encodeFsPte(next, true));
      }
      table = next;
    }
    const span = levelSpan(level);
    const leaf = table + BigInt(levelIndex(iova, level)) * 8n;
    const base = out & ~(span - 1n) & PTE_ADDR_MASK;
    this.w(leaf, stage === 'ss' ? encodeSsPte(base, r, w, level > 1) : encodeFsPte(base, w, true, level > 1));
    this.leaves.push(leaf);
    this.mapped.push(iova & ~(span - 1n));
    if (owner !== undefined) this.leafInfo.set(leaf, { ...owner, stage, iova: iova & ~(span - 1n), span });
  }
  private readonly tables = new Map<string, bigint>();
}

function pick<T>(xs: readonly T[], n: number): T {
  return xs[n % xs.length]!;
}

/**
 * Realises abstract actions into a hardware trace. Deterministic. Every device's context entry and the PASID entries
 * of `setup` are programmed first (so that most requests reach page tables); the actions then change things.
 */
export function realiseHw(actions: readonly Action[], setup: readonly Action[] = []): HwTrace {
  const b = new HwTraceBuilder();
  for (const d of HW_DEVICES) b.ctx(d, 1);
  for (const a of [...setup.map((x) => ({ ...x, k: 'pasid' })), ...actions]) {
    const [p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0] = a.p;
    // Most actions act on a (device, PASID) that has an entry.
    const live = [...b.entries.keys()];
    const chosen =
      live.length > 0 && a.k !== 'ctx' && a.k !== 'pasid' && p0 % 8 !== 0
        ? pick(live, p1).split(':').map(Number)
        : undefined;
    const dev = chosen !== undefined ? HW_DEVICES.find((d) => d.sid === chosen[0])! : pick(HW_DEVICES, p0);
    const pasid = chosen !== undefined ? chosen[1]! : pick(PASIDS, p1);
    const key = `${dev.sid}:${pasid}`;
    switch (a.k) {
      case 'ctx':
        b.ctx(dev, p2 % 16 === 0 ? p2 : (p2 & ~0x78) | 1);
        break;
      case 'pasid': {
        const pgtt = p2 % 19 === 0 ? p2 % 8 : [1, 2, 3, 4, 2, 1][p2 % 6]!;
        const aw = p3 % 23 === 0 ? 7 : 2;
        const fspm = p4 % 29 === 0 ? 2 : 0;
        b.pasid(dev, pasid, pgtt, 1 + (p5 % 3), aw, fspm);
        break;
      }
      case 'map': {
        const e = b.entries.get(key);
        if (e === undefined) break;
        const level = p2 % 5 === 0 ? 2 : p2 % 17 === 0 ? 3 : 1;
        const iova = pick(IOVAS, p3) + BigInt(p4 % 4) * 0x1000n;
        const out = 0x1_0000_0000n + BigInt(p5 % 64) * 0x20_0000n;
        const ss = e.pgtt === 2 || (e.pgtt === 3 && p1 % 2 === 0);
        if (e.pgtt === 3 && !ss) {
          // Nested: the first-stage table at its GPA must itself be mapped by the second stage.
          b.map(
            e.ss,
            'ss',
            GPA_TABLES + BigInt(p4 % 8) * 0x1000n,
            0x3000_0000n + BigInt(p4 % 8) * 0x1000n,
            1,
            true,
            p5 % 3 !== 0,
          );
        }
        const owner = { sid: dev.sid, pasid, did: e.did };
        b.map(ss ? e.ss : e.fs, ss ? 'ss' : 'fs', iova, out, level, p5 % 7 !== 0, p5 % 2 === 0, owner);
        b.mappedBy.set(key, [...(b.mappedBy.get(key) ?? []), iova & ~(levelSpan(level) - 1n)]);
        break;
      }
      case 'unmap': {
        if (b.leaves.length === 0) break;
        const leaf = pick(b.leaves, p2);
        const info = b.leafInfo.get(leaf);
        const flush = info !== undefined && p3 % 3 !== 0;
        // A device that used the page before it is unmapped (its translation is cached).
        if (flush)
          b.steps.push({
            op: 'HW_DMA',
            sid: info.sid,
            addr: info.iova,
            size: 8n,
            write: false,
            ...(info.pasid === 0 ? {} : { pasid: info.pasid }),
          });
        b.steps.push({ op: 'HW_MEM_WRITE', addr: leaf, value: 0n });
        if (!flush) break;
        // A driver's unmap: the page-selective invalidation covering the leaf (HW-020, HW-021, HW-022), the device
        // TLB (HW-024), then a DMA that must now fault.
        const am = info.span > 0x1000n ? (info.span > 0x20_0000n ? 18 : 9) : 0;
        b.steps.push({
          op: 'HW_INVALIDATE',
          desc:
            info.stage === 'ss'
              ? { type: 'iotlb', g: 'page', did: info.did, addr: info.iova, am, ih: false }
              : { type: 'piotlb', g: 3, did: info.did, pasid: info.pasid, addr: info.iova, am, ih: false },
        });
        const dt = devTlbEncode(info.iova, info.span);
        b.steps.push({
          op: 'HW_INVALIDATE',
          desc:
            info.pasid === 0
              ? { type: 'devtlb', sid: info.sid, ...dt }
              : { type: 'pdevtlb', sid: info.sid, pasid: info.pasid, ...dt },
        });
        b.steps.push({
          op: 'HW_DMA',
          sid: info.sid,
          addr: info.iova + BigInt(p4 % 8) * 8n,
          size: 8n,
          write: p4 % 2 === 0,
          ...(info.pasid === 0 ? {} : { pasid: info.pasid }),
        });
        break;
      }
      case 'corrupt':
        if (b.leaves.length > 0)
          b.steps.push({
            op: 'HW_MEM_WRITE',
            addr: pick(b.leaves, p2),
            value: (BigInt(p3) << 12n) | BigInt(p4 & 0xff) | (p5 % 2 === 0 ? 1n << 55n : 0n),
          });
        break;
      case 'inv': {
        const did = 1 + (p3 % 3);
        const addr = b.mapped.length > 0 ? pick(b.mapped, p4) : 0n;
        const am = p5 % 4 === 0 ? 9 : p5 % 3;
        const descs = [
          { type: 'context', g: pick(['global', 'domain', 'device'] as const, p2), sid: dev.sid, fm: 0 },
          { type: 'pasid', g: p2 % 4, did, pasid },
          { type: 'iotlb', g: pick(['global', 'domain', 'page'] as const, p2), did, addr, am, ih: p5 % 5 === 0 },
          { type: 'piotlb', g: p2 % 4, did, pasid, addr, am, ih: p5 % 5 === 0 },
          { type: 'devtlb', sid: dev.sid, addr, s: p2 % 2 === 0 },
          { type: 'pdevtlb', sid: dev.sid, pasid, addr, s: p2 % 2 === 0, gi: p3 % 5 === 0 },
        ] as const;
        b.steps.push({ op: 'HW_INVALIDATE', desc: pick(descs, p1 + p0) });
        break;
      }
      case 'dma': {
        const mine = b.mappedBy.get(key) ?? [];
        const base =
          mine.length > 0 && p2 % 4 !== 0
            ? pick(mine, p3)
            : b.mapped.length > 0 && p2 % 4 === 1
              ? pick(b.mapped, p3)
              : pick(IOVAS, p3);
        const off = pick([0n, 8n, 0xff8n, 0x1ff8n, 0x1000n], p4);
        b.steps.push({
          op: 'HW_DMA',
          sid: dev.sid,
          addr: base + off,
          size: pick([1n, 8n, 64n, 0x1000n], p5),
          write: p5 % 2 === 0,
          ...(pasid === 0 ? {} : { pasid }),
          ...(p2 % 11 === 0 ? { at: 'translated' as const } : {}),
        });
        break;
      }
      case 'pr':
        b.steps.push({
          op: 'DEVICE_PAGE_REQUEST',
          sid: dev.sid,
          addr: b.mapped.length > 0 ? pick(b.mapped, p2) : 0n,
          read: true,
          write: p3 % 2 === 0,
          group: p4 % 4,
          last: p5 % 3 !== 0,
          ...(pasid === 0 ? {} : { pasid }),
        });
        break;
      case 'prq':
        b.steps.push({ op: 'HW_PRQ_READ', clearOverflow: p2 % 2 === 0 });
        break;
      case 'resp':
        b.steps.push({
          op: 'HW_PAGE_RESPONSE',
          sid: dev.sid,
          group: p4 % 4,
          code: pick(['success', 'invalid', 'failure'] as const, p5 % 7 === 0 ? 2 : p5 % 2),
          ...(pasid === 0 ? {} : { pasid }),
        });
        break;
      case 'xlate':
        b.steps.push({
          op: 'HW_SET_PASID_XLATE',
          vm: p2 % 2,
          ...(p3 % 3 === 0
            ? { enabled: p4 % 2 === 0 }
            : { local: 1 + (p4 % 4), global: p5 % 4 === 0 ? null : pick(PASIDS, p5) }),
        });
        break;
      case 'enqcmd':
        b.steps.push({ op: 'HW_ENQCMD', vm: p2 % 2, msr: 1 + (p4 % 4), sid: dev.sid });
        break;
      default:
    }
  }
  return { format: HW_TRACE_FORMAT, version: 1, devices: [...HW_DEVICES], steps: b.steps };
}

/** The arbitrary of a hardware trace: 1 … 4 PASID entries set up, then 1 … `maxActions` actions, realised. */
export function hwTraceArbitrary(maxActions = 40): fc.Arbitrary<HwTrace> {
  return fc
    .tuple(fc.array(action, { minLength: 1, maxLength: 4 }), fc.array(action, { minLength: 1, maxLength: maxActions }))
    .map(([setup, actions]) => realiseHw(actions, setup));
}

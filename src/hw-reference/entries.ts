/**
 * The bit layouts of the VT-d scalable-mode structures the model reads from memory (vt-d §9): root entries,
 * scalable-mode context entries, PASID-directory and PASID-table entries, first-stage (x86-64 format) and
 * second-stage paging entries. Encoders are what a driver writes; decoders are what the IOMMU reads. Field names are
 * the specification's.
 *
 * Not for: anything architecture-neutral (see `iommu.ts`), or checking entries (the walks in `vtd.ts` do that and
 * name the clause of every check).
 *
 * @module
 */

const bit = (v: bigint, n: number): boolean => ((v >> BigInt(n)) & 1n) === 1n;
const field = (v: bigint, lo: number, width: number): number =>
  Number((v >> BigInt(lo)) & ((1n << BigInt(width)) - 1n));
/** Bits 63:12 of an address field. */
export const ADDR_MASK = 0xffff_ffff_ffff_f000n;

// ---------------------------------------------------------------------------------------------------------------
// Root and context (vt-d §9.2, §9.4)

/** A scalable-mode root entry (128 bits): lower and upper context-table pointers (HW-001). */
export interface RootEntry {
  readonly lp: boolean;
  readonly lctp: bigint;
  readonly up: boolean;
  readonly uctp: bigint;
}
/** Encodes a scalable-mode root entry as its two 64-bit words. */
export function encodeRoot(e: RootEntry): [bigint, bigint] {
  return [(e.lctp & ADDR_MASK) | (e.lp ? 1n : 0n), (e.uctp & ADDR_MASK) | (e.up ? 1n : 0n)];
}
/** Decodes a scalable-mode root entry. */
export function decodeRoot(lo: bigint, hi: bigint): RootEntry {
  return { lp: bit(lo, 0), lctp: lo & ADDR_MASK, up: bit(hi, 0), uctp: hi & ADDR_MASK };
}

/** A scalable-mode context entry (256 bits; the model uses its first two words). */
export interface ContextEntry {
  readonly p: boolean;
  readonly fpd: boolean;
  /** Device-TLB enable (ATS translation requests and translated requests allowed, HW-023). */
  readonly dte: boolean;
  /** PASID enable (requests with PASID allowed, HW-005). */
  readonly paside: boolean;
  /** Page-request enable (HW-028). */
  readonly pre: boolean;
  /** PASID-directory size: the directory has 2^(PDTS+7) entries. */
  readonly pdts: number;
  readonly pasidDirPtr: bigint;
  /** The PASID used for requests without PASID (HW-003). */
  readonly ridPasid: number;
}
/** Encodes a scalable-mode context entry (words 0 and 1; words 2 and 3 are reserved zero). */
export function encodeContext(e: ContextEntry): [bigint, bigint] {
  const lo =
    (e.pasidDirPtr & ADDR_MASK) |
    (BigInt(e.pdts & 7) << 9n) |
    (e.pre ? 1n << 4n : 0n) |
    (e.paside ? 1n << 3n : 0n) |
    (e.dte ? 1n << 2n : 0n) |
    (e.fpd ? 2n : 0n) |
    (e.p ? 1n : 0n);
  return [lo, BigInt(e.ridPasid & 0xfffff)];
}
/** Decodes a scalable-mode context entry from its first two words. */
export function decodeContext(lo: bigint, hi: bigint): ContextEntry {
  return {
    p: bit(lo, 0),
    fpd: bit(lo, 1),
    dte: bit(lo, 2),
    paside: bit(lo, 3),
    pre: bit(lo, 4),
    pdts: field(lo, 9, 3),
    pasidDirPtr: lo & ADDR_MASK,
    ridPasid: field(hi, 0, 20),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// PASID directory and table (vt-d §9.5, §9.6)

/** A PASID-directory entry (64 bits). */
export interface PasidDirEntry {
  readonly p: boolean;
  readonly fpd: boolean;
  readonly smptblptr: bigint;
}
/** Encodes a PASID-directory entry. */
export function encodePasidDir(e: PasidDirEntry): bigint {
  return (e.smptblptr & ADDR_MASK) | (e.fpd ? 2n : 0n) | (e.p ? 1n : 0n);
}
/** Decodes a PASID-directory entry. */
export function decodePasidDir(v: bigint): PasidDirEntry {
  return { p: bit(v, 0), fpd: bit(v, 1), smptblptr: v & ADDR_MASK };
}

/** PGTT values (vt-d §9.6, HW-006). */
export const PGTT = { FIRST: 1, SECOND: 2, NESTED: 3, PASS_THROUGH: 4 } as const;
/** AW values of a second-stage table: 1 → 3 levels (39-bit), 2 → 4 levels (48-bit), 3 → 5 levels (57-bit). */
export const AW = { L3: 1, L4: 2, L5: 3 } as const;
/** FSPM values of a first-stage table: 0 → 4-level paging, 1 → 5-level paging. */
export const FSPM = { L4: 0, L5: 1 } as const;

/** A PASID-table entry (512 bits; the model uses words 0–2). */
export interface PasidEntry {
  readonly p: boolean;
  readonly fpd: boolean;
  /** Second-stage address width (AW). */
  readonly aw: number;
  /** PASID granular translation type. */
  readonly pgtt: number;
  readonly ssptptr: bigint;
  /** Domain ID: the tag of every cache entry this entry produces (HW-015). */
  readonly did: number;
  /** First-stage paging mode. */
  readonly fspm: number;
  readonly fsptptr: bigint;
}
/** Encodes a PASID-table entry as its first three words. */
export function encodePasidEntry(e: PasidEntry): [bigint, bigint, bigint] {
  const w0 =
    (e.ssptptr & ADDR_MASK) |
    (BigInt(e.pgtt & 7) << 6n) |
    (BigInt(e.aw & 7) << 2n) |
    (e.fpd ? 2n : 0n) |
    (e.p ? 1n : 0n);
  const w1 = BigInt(e.did & 0xffff);
  const w2 = (e.fsptptr & ADDR_MASK) | (BigInt(e.fspm & 3) << 2n);
  return [w0, w1, w2];
}
/** Decodes a PASID-table entry from its first three words. */
export function decodePasidEntry(w0: bigint, w1: bigint, w2: bigint): PasidEntry {
  return {
    p: bit(w0, 0),
    fpd: bit(w0, 1),
    aw: field(w0, 2, 3),
    pgtt: field(w0, 6, 3),
    ssptptr: w0 & ADDR_MASK,
    did: field(w1, 0, 16),
    fspm: field(w2, 2, 2),
    fsptptr: w2 & ADDR_MASK,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Paging entries (vt-d §9.7, §9.8)

/** Bit 7 of a paging entry: PS (page size), a leaf above level 1. */
export const PS = 1n << 7n;
/** Second-stage entry bits: R (bit 0), W (bit 1). */
export const SS = { R: 1n, W: 2n } as const;
/** First-stage entry bits (x86-64 format): P, R/W, U/S, A, D. */
export const FS = { P: 1n, RW: 2n, US: 4n, A: 1n << 5n, D: 1n << 6n } as const;
/** The address field of a paging entry, bits 51:12. */
export const PTE_ADDR_MASK = 0x000f_ffff_ffff_f000n;

/** Encodes a second-stage paging entry (HW-007, HW-009, HW-010). */
export function encodeSsPte(addr: bigint, r: boolean, w: boolean, leafAboveL1 = false): bigint {
  return (addr & PTE_ADDR_MASK) | (leafAboveL1 ? PS : 0n) | (w ? SS.W : 0n) | (r ? SS.R : 0n);
}
/**
 * Encodes a first-stage paging entry (HW-008, HW-009, HW-010). A and D are preset so that hardware never needs to
 * write them (HW-012).
 */
export function encodeFsPte(addr: bigint, write: boolean, user = true, leafAboveL1 = false): bigint {
  return (
    (addr & PTE_ADDR_MASK) | (leafAboveL1 ? PS : 0n) | FS.A | FS.D | (user ? FS.US : 0n) | (write ? FS.RW : 0n) | FS.P
  );
}

/** The bytes one entry at paging level `level` covers (level 1: 4 KiB, 2: 2 MiB, 3: 1 GiB, 4: 512 GiB, 5: 256 TiB). */
export function levelSpan(level: number): bigint {
  return 1n << BigInt(12 + 9 * (level - 1));
}
/** The index of `addr` in a table of paging level `level`. */
export function levelIndex(addr: bigint, level: number): number {
  return Number((addr >> BigInt(12 + 9 * (level - 1))) & 511n);
}

/**
 * 64-bit unsigned values. The uAPI is full of u64 fields whose corners (0, U64_MAX, ULONG_MAX − PAGE_SIZE) are where
 * implementations break, so the models compute on `bigint` and traces carry u64s as `"0x…"` hex strings.
 *
 * @module
 */
import * as t from 'io-ts';

/** 2^64 − 1: the all-ones u64 (also ULONG_MAX and SIZE_MAX on a 64-bit kernel). */
export const U64_MAX = (1n << 64n) - 1n;
/** 2^32 − 1. */
export const U32_MAX = 0xffff_ffffn;

/** Formats a bigint as the canonical `0x…` lowercase hex string. */
export function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** Whether `v` is a u64. */
export function isU64(v: bigint): boolean {
  return v >= 0n && v <= U64_MAX;
}

/**
 * io-ts codec of a u64: decodes `"0x…"` hex strings, decimal strings and safe non-negative integers to `bigint`;
 * encodes to `"0x…"`.
 */
export const U64 = new t.Type<bigint, string, unknown>(
  'U64',
  (u): u is bigint => typeof u === 'bigint' && isU64(u),
  (u, c) => {
    let v: bigint | undefined;
    if (typeof u === 'bigint') v = u;
    else if (typeof u === 'number' && Number.isSafeInteger(u) && u >= 0) v = BigInt(u);
    else if (typeof u === 'string' && /^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$/.test(u)) v = BigInt(u);
    return v !== undefined && isU64(v)
      ? t.success(v)
      : t.failure(u, c, 'expected a u64: "0x…" hex string, decimal string or safe integer');
  },
  hex,
);

/** Whether `[a, aLast]` and `[b, bLast]` (inclusive) intersect. */
export function intersects(a: bigint, aLast: bigint, b: bigint, bLast: bigint): boolean {
  return a <= bLast && b <= aLast;
}

/** Rounds `v` up to a multiple of the power of two `align`. */
export function alignUp(v: bigint, align: bigint): bigint {
  return (v + align - 1n) & ~(align - 1n);
}

/** The smallest power of two ≥ v (v ≥ 1). */
export function roundupPow2(v: bigint): bigint {
  let p = 1n;
  while (p < v) p <<= 1n;
  return p;
}

/** The lowest set bit of v (v > 0) as a power of two. */
export function lowestBit(v: bigint): bigint {
  return v & -v;
}

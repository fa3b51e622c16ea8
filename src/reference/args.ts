/**
 * Argument types shared by the commands of every profile: references to objects created by earlier steps, abstract
 * user memory, IOVA ranges. Traces never carry a host's virtual addresses or an implementation's raw IDs.
 *
 * @module
 */
import * as t from 'io-ts';
import { U64 } from './u64.ts';

/**
 * An object ID argument: either a literal number (used on purpose by adversarial steps: 0, a stale ID, a
 * never-allocated one) or `{ ref: n }`, the ID that step `n` of the trace returned (its `id` output, or the output
 * named by `field`). The runner resolves references against what the implementation really returned.
 */
export const IdArg = t.union(
  [t.number, t.intersection([t.type({ ref: t.number }), t.partial({ field: t.string })])],
  'IdArg',
);
export type IdArg = t.TypeOf<typeof IdArg>;

/**
 * User memory, named abstractly: `{ buf: k, off: o }` is byte `o` of the platform's user buffer `k` (an offset past
 * the buffer's end is memory the process does not own); `{ bad: 'unmapped' }` is an address with nothing mapped;
 * `{ bad: 'top' }` is the last page of the address space (so `va + length` overflows). An adapter maps buffers onto
 * real memory whose base is aligned to at least 2 MiB, so the offset alone decides the address's low bits.
 */
export const UserPtr = t.union(
  [t.type({ buf: t.number, off: U64 }), t.type({ bad: t.keyof({ unmapped: null, top: null }) })],
  'UserPtr',
);
export type UserPtr = t.TypeOf<typeof UserPtr>;

/** The base virtual address the models give user buffer `k` (2^40-aligned, far from everything else). */
export function bufferBase(k: number): bigint {
  return 0x7f00_0000_0000n + (BigInt(k) << 40n);
}
/** The address the models give `{ bad: 'unmapped' }`. */
export const UNMAPPED_VA = 0x1000_0000n;
/** The address the models give `{ bad: 'top' }`. */
export const TOP_VA = 0xffff_ffff_ffff_f000n;

/** The virtual address a `UserPtr` stands for in the models. */
export function userVa(p: UserPtr): bigint {
  if ('bad' in p) return p.bad === 'unmapped' ? UNMAPPED_VA : TOP_VA;
  return bufferBase(p.buf) + p.off;
}

/** A device of the platform, by index into `platform.devices`. */
export const DevArg = t.number;

/** An inclusive IOVA range as carried by commands. */
export const IovaRange = t.type({ start: U64, last: U64 }, 'IovaRange');
export type IovaRange = t.TypeOf<typeof IovaRange>;

/** Optional raw-ABI controls of a command (feature `ioctl-abi`). */
export const Abi = t.partial(
  {
    /** The `size`/`argsz` the caller passes; absent means the correct size of the struct. */
    size: t.number,
    /** Whether the bytes past the kernel's struct (when `size` is larger) are non-zero. */
    tailNonZero: t.boolean,
    /**
     * The argument's memory: `unreadable` (nothing can be read, FD-023) or `readonly` (read but not written back,
     * FD-032, FD-033); absent means readable and writable.
     */
    memory: t.keyof({ unreadable: null, readonly: null }),
  },
  'Abi',
);
export type Abi = t.TypeOf<typeof Abi>;

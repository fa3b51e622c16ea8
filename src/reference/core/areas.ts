/**
 * The mechanisms of an I/O address space that every profile shares: the mapped areas (an interval map with
 * O(log n) lookups), the reserved ranges (with their owners: a domain's aperture, a device's reserved regions) and
 * the allowed ranges. Per-profile rules (what an unmap may remove, which errno an overlap gets) live in the chapter
 * modules, not here.
 *
 * @module
 */
import { bigintTree, type BTree } from './btree.ts';
import { U64_MAX, intersects } from '../u64.ts';
import { journalRanges } from './journal.ts';

/** One mapping: IOVAs `[iova, last]` translate to user memory starting at `va` (buffer `buf`, offset `off`). */
export interface Area {
  readonly iova: bigint;
  readonly last: bigint;
  /** The user virtual address of the first byte, as the models place buffers (see `args.ts`). */
  readonly va: bigint;
  /** The user buffer, or -1 for memory the process does not own. */
  readonly buf: number;
  /** Offset of the first byte in the buffer. */
  readonly off: bigint;
  /** Protection bits: 1 = read, 2 = write. */
  readonly prot: number;
  /** The pages object the area maps (a COPY shares its source's), for accounting. */
  readonly pages: number;
}

/** Protection bits of an area. */
export const PROT = { READ: 1, WRITE: 2 } as const;

/** The areas of one address space, keyed by first IOVA; areas never overlap. */
export class AreaMap {
  private tree: BTree<bigint, Area>;

  constructor(tree?: BTree<bigint, Area>) {
    this.tree = tree ?? bigintTree<Area>();
  }

  /** Number of areas. */
  get size(): number {
    return this.tree.size;
  }

  /** The area containing `iova`, if any. */
  containing(iova: bigint): Area | undefined {
    const p = this.tree.getPairOrNextLower(iova);
    return p !== undefined && p[1].last >= iova ? p[1] : undefined;
  }

  /** The lowest area intersecting `[iova, last]`, if any. */
  firstIntersecting(iova: bigint, last: bigint): Area | undefined {
    const at = this.containing(iova);
    if (at) return at;
    const next = this.tree.nextHigherPair(iova);
    return next !== undefined && next[1].iova <= last ? next[1] : undefined;
  }

  /** The area that starts right after `a` (the next higher key), if any. */
  after(a: Area): Area | undefined {
    return this.tree.nextHigherPair(a.iova)?.[1];
  }

  /** The areas intersecting `[iova, last]`, ascending. Do not change the map while iterating. */
  *intersecting(iova: bigint, last: bigint): Generator<Area> {
    for (let a = this.firstIntersecting(iova, last); a !== undefined && a.iova <= last; a = this.after(a)) yield a;
  }

  /** All areas, ascending. */
  *all(): Generator<Area> {
    for (const v of this.tree.values()) yield v;
  }

  /** Adds an area. The caller has checked that it overlaps nothing. */
  insert(a: Area): void {
    this.tree.set(a.iova, a);
  }

  /** Removes the area starting at `iova`. */
  remove(iova: bigint): void {
    this.tree.delete(iova);
  }

  /** The neighbours of `a` in key order (for incremental invariant checks). */
  neighbours(a: Area): [Area | undefined, Area | undefined] {
    return [this.tree.nextLowerPair(a.iova)?.[1], this.tree.nextHigherPair(a.iova)?.[1]];
  }

  /** An O(1) copy-on-write clone. */
  clone(): AreaMap {
    return new AreaMap(this.tree.clone());
  }
}

/** An inclusive range with the owner that reserved it. */
export interface OwnedRange {
  readonly start: bigint;
  readonly last: bigint;
  /** Who reserved it: `domain:<id>` for an aperture, `dev:<index>` for a device's regions, `test` … */
  readonly owner: string;
}

/** A small set of owned ranges (reserved or allowed). Few entries: linear scans are fine here. */
export class RangeSet {
  private ranges: OwnedRange[];

  constructor(ranges: OwnedRange[] = []) {
    this.ranges = ranges;
  }

  /** All ranges. */
  get list(): readonly OwnedRange[] {
    return this.ranges;
  }

  /** Whether any range intersects `[start, last]`. */
  intersects(start: bigint, last: bigint): boolean {
    return this.ranges.some((r) => intersects(r.start, r.last, start, last));
  }

  /** The first range intersecting `[start, last]`, if any. */
  firstIntersecting(start: bigint, last: bigint): OwnedRange | undefined {
    return this.ranges.find((r) => intersects(r.start, r.last, start, last));
  }

  /** Adds ranges. */
  add(...ranges: OwnedRange[]): void {
    journalRanges(this);
    this.ranges = [...this.ranges, ...ranges];
  }

  /** Removes every range of `owner`. */
  removeOwner(owner: string): void {
    this.ranges = this.ranges.filter((r) => r.owner !== owner);
  }

  /** Replaces the whole set. */
  replace(ranges: OwnedRange[]): void {
    journalRanges(this);
    this.ranges = ranges;
  }

  /** The complement of the union of the ranges within `[0, U64_MAX]`, ascending (the holes). */
  holes(): { start: bigint; last: bigint }[] {
    const sorted = [...this.ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const out: { start: bigint; last: bigint }[] = [];
    let cursor = 0n;
    let done = false;
    for (const r of sorted) {
      if (r.start > cursor) out.push({ start: cursor, last: r.start - 1n });
      if (r.last >= U64_MAX) {
        done = true;
        break;
      }
      if (r.last + 1n > cursor) cursor = r.last + 1n;
    }
    if (!done) out.push({ start: cursor, last: U64_MAX });
    return out;
  }

  /** A copy (ranges are immutable, so sharing the array is safe). */
  clone(): RangeSet {
    return new RangeSet(this.ranges);
  }
}

/**
 * Placement helpers shared by MAP and COPY: the IOVA granule of an address space, whether user memory can be
 * pinned, the automatic IOVA search of iommufd, and inserting / removing areas with their accounting.
 *
 * @module
 */
import type { Area } from './areas.ts';
import { U64_MAX, lowestBit, roundupPow2 } from '../u64.ts';
import type { Platform } from '../platform.ts';
import type { Space } from '../state.ts';
import { bufferBase } from '../args.ts';
import { journalArea } from './journal.ts';

/** The smallest IOMMU page size of the platform (the lowest set bit of its page-size bitmap). */
export function minPageSize(platform: Platform): bigint {
  const bits = platform.iommu.pageSizes;
  return bits === 0n ? BigInt(platform.limits.pageSize) : lowestBit(bits);
}

/** The transparent huge page size the automatic IOVA alignment is capped at (HPAGE_SIZE on x86-64). */
export const HPAGE_SIZE = 2n << 20n;

/**
 * iommufd's `iova_alignment` of an IOAS (`iopt_calculate_iova_alignment`): 1 with no domain, the domains' smallest
 * page size with domains, at least PAGE_SIZE when large pages are disabled or an ACCESS is attached.
 */
export function iommufdAlignment(space: Space, platform: Platform): bigint {
  let a = 1n;
  if (!space.hugePages) a = BigInt(platform.limits.pageSize);
  if (space.domains > 0) {
    const m = minPageSize(platform);
    if (m > a) a = m;
  }
  // An attached ACCESS that pins pages (VFIO's emulated devices) needs PAGE_SIZE (iommufd_access_create).
  if (space.accesses > 0 && a < BigInt(platform.limits.pageSize)) a = BigInt(platform.limits.pageSize);
  return a;
}

/** Whether the user memory `[va, va + length)` belongs to the process (lies inside one user buffer). */
export function userMemoryValid(platform: Platform, buf: number, off: bigint, length: bigint): boolean {
  const b = platform.buffers[buf];
  return buf >= 0 && b !== undefined && off + length <= b.size;
}

/** Builds an area, counting its pages object. */
export function makeArea(
  iova: bigint,
  length: bigint,
  va: bigint,
  buf: number,
  off: bigint,
  prot: number,
  pages: number,
): Area {
  return { iova, last: iova + length - 1n, va, buf, off, prot, pages };
}

/** Inserts an area into a space, keeping the accounting counters. */
export function addArea(space: Space, platform: Platform, a: Area): void {
  journalArea('insert', space, a);
  space.areas.insert(a);
  if (!userMemoryValid(platform, a.buf, a.off, a.last - a.iova + 1n)) space.badAreas++;
  space.pagesUsers.set(a.pages, (space.pagesUsers.get(a.pages) ?? 0) + 1);
}

/** Removes an area from a space, keeping the accounting counters. */
export function removeArea(space: Space, platform: Platform, a: Area): void {
  journalArea('remove', space, a);
  space.areas.remove(a.iova);
  if (!userMemoryValid(platform, a.buf, a.off, a.last - a.iova + 1n)) space.badAreas--;
  const n = (space.pagesUsers.get(a.pages) ?? 1) - 1;
  if (n === 0) space.pagesUsers.delete(a.pages);
  else space.pagesUsers.set(a.pages, n);
}

/** The buffer index and offset a user VA stands for, or buf −1 when it is in no buffer. */
export function locateUserVa(platform: Platform, va: bigint): { buf: number; off: bigint } {
  for (let k = 0; k < platform.buffers.length; k++) {
    const base = bufferBase(k);
    if (va >= base && va - base < platform.buffers[k]!.size) return { buf: k, off: va - base };
  }
  return { buf: -1, off: 0n };
}

/**
 * The alignment iommufd gives an automatic IOVA (`iopt_alloc_iova`): min(roundup_pow_of_two(length), the lowest set
 * bit of user_va), capped at the huge page size; user_va 0 is ignored.
 */
export function autoIovaAlignment(length: bigint, va: bigint): bigint {
  let a = roundupPow2(length);
  if (va !== 0n) {
    const low = lowestBit(va);
    if (low < a) a = low;
  }
  return a > HPAGE_SIZE ? HPAGE_SIZE : a;
}

/**
 * Whether `iova` is a valid automatic placement of `length` bytes (MAP-020..023): inside [PAGE_SIZE, U64_MAX −
 * PAGE_SIZE], aligned, with the user page offset, free of areas and reserved ranges, inside one allowed range when
 * there are any.
 */
export function validAutoIova(
  space: Space,
  iova: bigint,
  length: bigint,
  align: bigint,
  pageOffset: bigint,
  pageSize: bigint,
): string | undefined {
  const last = iova + length - 1n;
  if (iova < pageSize || last > U64_MAX - pageSize) return 'MAP-020';
  if (iova % align !== 0n || iova % pageSize !== pageOffset) return 'MAP-023';
  if (space.reserved.intersects(iova, last) || space.areas.firstIntersecting(iova, last) !== undefined)
    return 'MAP-021';
  if (space.allowed.list.length > 0 && !space.allowed.list.some((r) => r.start <= iova && last <= r.last))
    return 'MAP-022';
  return undefined;
}

/**
 * iommufd's first-fit search for an automatic IOVA (`iopt_alloc_iova`, `__alloc_iova_check_range`): the lowest
 * aligned start (with the user page offset) of a hole of areas and reserved ranges, within the allowed ranges when
 * there are any, else within [PAGE_SIZE, U64_MAX − PAGE_SIZE]. Visits holes in ascending order.
 */
export function findAutoIova(
  space: Space,
  length: bigint,
  align: bigint,
  pageOffset: bigint,
  pageSize: bigint,
): bigint | undefined {
  const spans: { start: bigint; last: bigint }[] =
    space.allowed.list.length > 0
      ? [...space.allowed.list]
          .map((r) => ({
            start: r.start < pageSize ? pageSize : r.start,
            last: r.last > U64_MAX - pageSize ? U64_MAX - pageSize : r.last,
          }))
          .filter((r) => r.start <= r.last)
          .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))
      : [{ start: pageSize, last: U64_MAX - pageSize }];
  const reserved = space.reserved.list;
  for (const span of spans) {
    let cursor = span.start;
    for (;;) {
      // Skip the area or reserved range covering cursor, if any.
      let covered: bigint | undefined = space.areas.containing(cursor)?.last;
      for (const r of reserved)
        if (r.start <= cursor && cursor <= r.last && (covered === undefined || r.last > covered)) covered = r.last;
      if (covered !== undefined) {
        if (covered >= span.last) break;
        cursor = covered + 1n;
        continue;
      }
      // The hole [cursor, holeLast] ends before the next area or reserved range.
      let holeLast = span.last;
      const nextArea = space.areas.firstIntersecting(cursor, span.last);
      if (nextArea !== undefined && nextArea.iova - 1n < holeLast) holeLast = nextArea.iova - 1n;
      for (const r of reserved) if (r.start > cursor && r.start - 1n < holeLast) holeLast = r.start - 1n;
      if (cursor + align - 1n <= U64_MAX) {
        const aligned = ((cursor + align - 1n) & ~(align - 1n)) | pageOffset;
        if (aligned < holeLast && holeLast - aligned >= length - 1n) return aligned;
      }
      if (holeLast >= span.last) break;
      cursor = holeLast + 1n;
    }
  }
  return undefined;
}

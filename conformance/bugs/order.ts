/**
 * Bugs of the order of checks (iommufd): each handler checks its faults in the order the specification fixes, and
 * each bug below runs one check too early or too late, so that a call with two faults at once answers with the
 * errno of the wrong one. A call with one fault gets the right errno from every one of them: only the generators'
 * `two-faults` variants (generators/iommufd.ts) tell them apart from the reference.
 *
 * @module
 */
import type { Command, Outcome } from '../../src/reference/commands.ts';
import { IOAS_MAP } from '../../src/reference/commands.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { bug, fail, spaceOf, type Bug, type BugStep, type Ran } from './kit.ts';

/** The errno of a failed outcome, or undefined. */
function errnoOf(o: Outcome): string | undefined {
  return o.ok ? undefined : o.errno;
}

/**
 * A check run after the one it should precede: when the correct step failed and `cmd` carries the fault of the
 * early check, the implementation answers what the command gives without that fault (`repaired`) — when that is a
 * failure, optionally only one with errno `only`.
 */
function checkedLate(s: BugStep, r: Ran, repaired: Command | undefined, only?: string): Outcome {
  if (r.outcome.ok || repaired === undefined) return r.outcome;
  const alt = s.dryRun(repaired).outcome;
  if (alt.ok || errnoOf(alt) === errnoOf(r.outcome)) return r.outcome;
  return only === undefined || errnoOf(alt) === only ? alt : r.outcome;
}

/** `c` without the optional fields `keys`. */
function without(c: Command, ...keys: string[]): Command {
  const copy: Record<string, unknown> = { ...c };
  for (const k of keys) delete copy[k];
  return copy as unknown as Command;
}

/** The order-of-checks bugs, by name. */
export const ORDER_BUGS: Readonly<Record<string, Bug>> = {
  'iova-ranges-reserved-last': bug({
    profile: 'iommufd',
    chapter: 'INFO',
    clauses: ['INFO-018'],
    description: 'IOMMU_IOAS_IOVA_RANGES looks the IOAS up before checking __reserved: ENOENT instead of EOPNOTSUPP',
    rationale:
      'iommufd_ioas_iova_ranges is rewritten to start with iommufd_get_ioas (as most handlers do) and the ' +
      '`if (cmd->__reserved) return -EOPNOTSUPP` line moves below it: a call with both faults sees the lookup fail.',
    ops: ['IOMMU_IOAS_IOVA_RANGES'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_IOVA_RANGES' || !c.__reserved) return r.outcome;
      return checkedLate(s, r, without(c, '__reserved'), 'ENOENT');
    },
  }),

  'invalidate-lookup-first': bug({
    profile: 'iommufd',
    chapter: 'INV',
    clauses: ['INV-013'],
    description:
      'IOMMU_HWPT_INVALIDATE looks the HWPT up before validating the request: ENOENT instead of EOPNOTSUPP or EINVAL',
    rationale:
      'The request checks (__reserved, a non-empty array with no pointer or entry size) are moved into the ' +
      'nested-HWPT branch after iommufd_get_hwpt_nested, next to the driver call: the errno of a malformed request ' +
      'then depends on the ID it names.',
    ops: ['IOMMU_HWPT_INVALIDATE'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_HWPT_INVALIDATE' || (!c.__reserved && !c.null_array)) return r.outcome;
      return checkedLate(s, r, without(c, '__reserved', 'null_array'), 'ENOENT');
    },
  }),

  'unmap-range-before-lookup': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-036'],
    description:
      'IOMMU_IOAS_UNMAP checks iova and length before looking up the IOAS: EINVAL / EOVERFLOW instead of ENOENT',
    rationale:
      'A refactoring hoists the range checks of iopt_unmap_iova (length 0, the wrap past U64_MAX) into the ioctl ' +
      'handler, before iommufd_get_ioas, "to fail early": a call with a bad ioas_id and a bad range no longer gets ENOENT.',
    ops: ['IOMMU_IOAS_UNMAP'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_UNMAP' || errnoOf(r.outcome) !== 'ENOENT' || spaceOf(s.view(), c) !== undefined)
        return r.outcome;
      if (c.iova === 0n && c.length === U64_MAX) return r.outcome; // unmap-all: no range to check
      if (c.length === 0n) return fail('EINVAL');
      if (c.iova + c.length - 1n > U64_MAX) return fail('EOVERFLOW');
      return r.outcome;
    },
  }),

  'abi-size-after-command': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-029'],
    description:
      "the size checks of the generic dispatcher run after the command's own checks: ENOENT or EOPNOTSUPP instead of EINVAL / E2BIG",
    rationale:
      'iommufd_fops_ioctl copies the user structure with the size the user gave and lets the handler run first, ' +
      'validating ucmd.user_size (the minimum, the zeroed tail) only when the handler succeeded: a call with a short ' +
      'size and a bad ID answers with the handler’s errno.',
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.abi === undefined || !('size' in c.abi) || !c.op.startsWith('IOMMU_')) return r.outcome;
      return checkedLate(s, r, without(c, 'abi'));
    },
  }),

  'allow-iovas-reserved-first': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-014'],
    description:
      'IOMMU_IOAS_ALLOW_IOVAS compares each range with the reservations as it loads it: EADDRINUSE instead of EINVAL',
    rationale:
      'iommufd_ioas_load_iovas is merged with the reservation check into one loop over the user array, so a range ' +
      'over a reserved region is reported before a later range that is inverted or overlaps an earlier one.',
    ops: ['IOMMU_IOAS_ALLOW_IOVAS'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_ALLOW_IOVAS' || errnoOf(r.outcome) !== 'EINVAL') return r.outcome;
      // The ranges before the first invalid one: the merged loop has compared them with the reservations.
      const ok: { start: bigint; last: bigint }[] = [];
      for (const x of c.iovas) {
        if (x.start > x.last || ok.some((y) => y.start <= x.last && x.start <= y.last)) break;
        ok.push(x);
      }
      if (ok.length === c.iovas.length) return r.outcome;
      return checkedLate(s, r, { ...c, iovas: ok }, 'EADDRINUSE');
    },
  }),

  'copy-dst-before-length': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-050'],
    description: 'IOMMU_IOAS_COPY looks up both IOASes before checking the length: ENOENT instead of EINVAL',
    rationale:
      'iommufd_ioas_copy is restructured to take references on the source and the destination IOAS up front (one ' +
      'error path for both) and only then to call iopt_get_pages, where length 0 is refused: a zero-length copy to ' +
      'an unknown dst_ioas_id now fails the lookup.',
    ops: ['IOMMU_IOAS_COPY'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_COPY' || c.length !== 0n || errnoOf(r.outcome) !== 'EINVAL') return r.outcome;
      return spaceOf(s.view(), c, 'src_ioas_id') !== undefined && spaceOf(s.view(), c, 'dst_ioas_id') === undefined
        ? fail('ENOENT')
        : r.outcome;
    },
  }),

  'map-offset-before-overlap': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-017'],
    description: 'a fixed IOMMU_IOAS_MAP checks the user_va page offset before the overlap: EINVAL instead of EEXIST',
    rationale:
      'The check that user_va and iova share their offset in the page is moved from iopt_insert_area up into ' +
      'iopt_map_pages, before the area is placed: a MAP that overlaps an area with a badly offset user_va answers ' +
      'EINVAL, so a VMM that retries on EEXIST misreads it.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_MAP' || errnoOf(r.outcome) !== 'EEXIST' || !('buf' in c.user_va)) return r.outcome;
      const page = BigInt(s.view().platform.limits.pageSize);
      return c.user_va.off % page !== c.iova % page ? fail('EINVAL') : r.outcome;
    },
  }),

  'auto-iova-hole-first': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-025'],
    description: 'automatic placement searches for a hole before the length check: ENOSPC instead of EOVERFLOW',
    rationale:
      'iopt_alloc_iova drops the `if (length > ULONG_MAX / 2) return -EOVERFLOW` guard "because no hole is that ' +
      'big anyway": a huge length then fails the hole search with ENOSPC (and an unaligned user_va with EINVAL).',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_MAP' || (c.flags & IOAS_MAP.FIXED_IOVA) !== 0 || errnoOf(r.outcome) !== 'EOVERFLOW')
        return r.outcome;
      if (c.length < 1n << 63n || c.length === U64_MAX) return r.outcome;
      // Without the guard the search runs first: an unaligned user_va still fails its check, anything else finds
      // no hole that long.
      const alt = s.dryRun({ ...c, length: 1n << 62n }).outcome;
      return errnoOf(alt) === 'EINVAL' ? alt : fail('ENOSPC');
    },
  }),
};

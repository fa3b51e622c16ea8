/**
 * Catalogued bugs of chapter MAP: MAP, UNMAP and COPY (spec/chapters/MAP.md).
 *
 * @module
 */
import { IOAS_MAP } from '../../src/reference/commands.ts';
import { PROT, RangeSet } from '../../src/reference/core/areas.ts';
import { StepContext } from '../../src/reference/core/context.ts';
import { addArea, autoIovaAlignment, findAutoIova, removeArea } from '../../src/reference/core/placement.ts';
import { userVa } from '../../src/reference/args.ts';
import { iommufdMap } from '../../src/reference/map.ts';
import type { IommuIoasMapCmd } from '../../src/reference/resolved.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { MAP_OPS, UNMAP_OPS, bug, fail, moveArea, slice, spaceOf, unmapRange, withOut, type Bug } from './kit.ts';

/** The catalogued MAP bugs, by name. */
export const MAP_BUGS: Readonly<Record<string, Bug>> = {
  'unmap-bisect': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-026', 'MAP-027', 'MAP-040'],
    description: 'UNMAP whose range starts or ends strictly inside a mapping cuts the mapping instead of failing',
    rationale:
      'The unmap walk (iopt_unmap_iova_range, vfio_dma_do_unmap) is written as "remove whatever lies in [iova, last]" ' +
      'and trims the areas at both edges, as a CPU page-table unmap would; the check that the range starts and ends on ' +
      'mapping boundaries is the one line that is missing. Every profile forbids it (a pinned range must be unpinned whole).',
    ops: UNMAP_OPS,
    step(s) {
      const r = s.run();
      const u = unmapRange(s.cmd);
      if (r.outcome.ok || u === undefined || !['MAP-026', 'MAP-027', 'MAP-040'].includes(r.rejectedBy ?? ''))
        return r.outcome;
      const removed = s.mutate((st) => {
        const space = spaceOf(st, s.cmd)!;
        let n = 0n;
        for (const a of [...space.areas.intersecting(u.iova, u.last)]) {
          removeArea(space, st.platform, a);
          if (a.iova < u.iova) addArea(space, st.platform, slice(a, a.iova, u.iova - 1n));
          if (a.last > u.last) addArea(space, st.platform, slice(a, u.last + 1n, a.last));
          n += (a.last < u.last ? a.last : u.last) - (a.iova > u.iova ? a.iova : u.iova) + 1n;
        }
        return n;
      });
      // iommufd may already have removed whole areas before the bisected one (MAP-040): they count too.
      return { ok: true, out: { [u.field]: removed + ((r.outcome.out?.[u.field] as bigint | undefined) ?? 0n) } };
    },
  }),

  'map-overlap': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-002'],
    description: 'MAP that overlaps an existing mapping reports success without installing anything',
    rationale:
      'The overlap is only found when the new area is inserted into the interval tree; the error path jumps to the ' +
      'unlock label with rc overwritten by an earlier successful call, so the ioctl returns 0 and the caller believes ' +
      'the range is mapped.',
    ops: MAP_OPS,
    step(s) {
      const r = s.run();
      if (r.outcome.ok || r.outcome.errno !== 'EEXIST') return r.outcome;
      return s.cmd.op === 'IOMMU_IOAS_MAP' ? { ok: true, out: { iova: s.cmd.iova } } : { ok: true };
    },
  }),

  'map-touching-overlap': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-001', 'MAP-002'],
    description:
      'a fixed MAP that merely touches a neighbouring mapping (ends right before or starts right after it) gets EEXIST',
    rationale:
      'The overlap test mixes an exclusive end (iova + length) with the interval tree\'s inclusive "last": ' +
      '`iopt_area_iter_first(iopt, iova, iova + length)` looks one byte too far and sees the neighbour that starts ' +
      'right after the new range; the off-by-one at the end of the range rejects adjacent mappings.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOMMU_IOAS_MAP' || (c.flags & IOAS_MAP.FIXED_IOVA) === 0 || c.length === 0n) return s.run().outcome;
      const space = spaceOf(s.view(), c);
      const last = c.iova + c.length - 1n;
      const touches =
        space !== undefined &&
        ((c.iova > 0n && space.areas.containing(c.iova - 1n) !== undefined) ||
          (last < U64_MAX && space.areas.containing(last + 1n) !== undefined));
      if (touches && s.dryRun().outcome.ok) return fail('EEXIST');
      return s.run().outcome;
    },
  }),

  'unmap-all-keeps-last': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-031', 'MAP-029'],
    description: 'unmap-all (iova 0, length U64_MAX) leaves the highest mapping in place and does not count it',
    rationale:
      'The unmap-all loop is written `while ((area = next) && next_area(area))`, a classic list-walk slip that stops ' +
      'one element early: every area but the last is unmapped and the reported length misses it.',
    ops: ['IOMMU_IOAS_UNMAP'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOMMU_IOAS_UNMAP' || c.iova !== 0n || c.length !== U64_MAX) return s.run().outcome;
      const space = spaceOf(s.view(), c);
      let lastArea;
      for (const a of space?.areas.all() ?? []) lastArea = a;
      const r = s.run();
      if (!r.outcome.ok || lastArea === undefined) return r.outcome;
      const kept = lastArea;
      s.mutate((st) => addArea(spaceOf(st, c)!, st.platform, kept));
      return withOut(r.outcome, { length: (r.outcome.out!.length as bigint) - (kept.last - kept.iova + 1n) });
    },
  }),

  'auto-iova-zero': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-020'],
    description: 'automatic IOVA allocation can return IOVA 0',
    rationale:
      "The hole search of iopt_alloc_iova starts from the IOAS's lowest free address instead of PAGE_SIZE; any user " +
      'that treats IOVA 0 as "no address" (and DMA engines that do) breaks, which is why the kernel never hands it out.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOMMU_IOAS_MAP' || (c.flags & IOAS_MAP.FIXED_IOVA) !== 0) return s.run().outcome;
      const r = s.run();
      const iova = r.outcome.ok ? (r.outcome.out?.iova as bigint | undefined) : undefined;
      if (iova === undefined || iova === 0n) return r.outcome;
      const moved = s.mutate((st) => {
        const space = spaceOf(st, c)!;
        const a = space.areas.containing(iova)!;
        const last = a.last - a.iova;
        const free =
          [...space.areas.intersecting(0n, last)].every((x) => x === a) &&
          !space.reserved.intersects(0n, last) &&
          (space.allowed.list.length === 0 || space.allowed.list.some((x) => x.start === 0n && x.last >= last));
        if (free) moveArea(st, space, a, 0n);
        return free;
      });
      return moved ? withOut(r.outcome, { iova: 0n }) : r.outcome;
    },
  }),

  'auto-iova-ignores-allowed': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-022', 'IOAS-019'],
    description: 'automatic IOVA allocation ignores the ranges set by IOMMU_IOAS_ALLOW_IOVAS',
    rationale:
      'ALLOW_IOVAS fills iopt->allowed_itree, but the allocator only walks the area and reserved trees (the allowed ' +
      'tree was added later and one caller was not converted): an automatic IOVA lands outside what the VMM allowed.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOMMU_IOAS_MAP' || (c.flags & IOAS_MAP.FIXED_IOVA) !== 0) return s.run().outcome;
      const before = s.view();
      const space = spaceOf(before, c);
      if (space === undefined || space.allowed.list.length === 0) return s.run().outcome;
      const r = s.run();
      const iova = r.outcome.ok ? (r.outcome.out?.iova as bigint | undefined) : undefined;
      if (iova === undefined) return r.outcome;
      const page = BigInt(before.platform.limits.pageSize);
      const va = userVa(c.user_va);
      const anywhere = space.clone();
      anywhere.allowed = new RangeSet();
      const alt = findAutoIova(anywhere, c.length, autoIovaAlignment(c.length, va), va % page, page);
      if (alt === undefined || alt === iova) return r.outcome;
      s.mutate((st) => {
        const sp = spaceOf(st, c)!;
        moveArea(st, sp, sp.areas.containing(iova)!, alt);
      });
      return withOut(r.outcome, { iova: alt });
    },
  }),

  'unmap-nothing-ok': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-030'],
    description: 'iommufd UNMAP of a range with nothing mapped succeeds with length 0 instead of ENOENT',
    rationale:
      'A port of VFIO type1 semantics, where an unmap of nothing is a successful no-op: the iommufd handler returns ' +
      'the unmapped byte count without checking it is non-zero.',
    ops: ['IOMMU_IOAS_UNMAP'],
    step(s) {
      const r = s.run();
      return r.rejectedBy === 'MAP-030' ? { ok: true, out: { length: 0n } } : r.outcome;
    },
  }),

  'unmap-length-last-area': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-029', 'MAP-028'],
    description: 'an UNMAP that removes several mappings reports the length of the last one only',
    rationale:
      'The per-area loop assigns the byte count instead of adding to it (`unmapped = area_length` for ' +
      '`unmapped += area_length`); single-area unmaps, the common case, report the right length.',
    ops: ['IOMMU_IOAS_UNMAP'],
    step(s) {
      const u = unmapRange(s.cmd);
      if (u === undefined) return s.run().outcome;
      const space = spaceOf(s.view(), s.cmd);
      const inside = [...(space?.areas.intersecting(u.iova, u.last) ?? [])];
      const r = s.run();
      if (!r.outcome.ok || inside.length < 2) return r.outcome;
      const lastOne = inside[inside.length - 1]!;
      return withOut(r.outcome, { length: lastOne.last - lastOne.iova + 1n });
    },
  }),

  'unmap-top-wraps': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-042'],
    description: 'an UNMAP whose range ends at the last byte of the 64-bit space finds nothing (ENOENT)',
    rationale:
      'The walk computes an exclusive end, `end = iova + length`, which wraps to 0 for a range ending at U64_MAX; ' +
      '`while (area->iova < end)` then never runs. Mappings that end at the top (MAP-013) can never be unmapped one by one.',
    ops: ['IOMMU_IOAS_UNMAP'],
    step(s) {
      const u = unmapRange(s.cmd);
      if (u === undefined || u.last !== U64_MAX) return s.run().outcome;
      return s.dryRun().outcome.ok ? fail('ENOENT') : s.run().outcome;
    },
  }),

  'copy-write-from-readonly': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-047'],
    description: 'COPY with WRITEABLE from a read-only source mapping succeeds and grants write access',
    rationale:
      "iommufd_ioas_copy takes the pages of the source with iopt_get_pages and maps them with the caller's flags; " +
      'the check that the source areas were mapped writable (the pages were pinned for write) is forgotten, so a ' +
      'read-only mapping becomes writable through a copy.',
    ops: ['IOMMU_IOAS_COPY'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_COPY' || r.rejectedBy !== 'MAP-047') return r.outcome;
      const ro = s.run({ ...c, flags: c.flags & ~IOAS_MAP.WRITEABLE });
      const dst = ro.outcome.ok ? (ro.outcome.out?.dst_iova as bigint | undefined) : undefined;
      if (dst === undefined) return ro.outcome;
      s.mutate((st) => {
        const space = spaceOf(st, c, 'dst_ioas_id')!;
        for (const a of [...space.areas.intersecting(dst, dst + c.length - 1n)]) {
          removeArea(space, st.platform, a);
          addArea(space, st.platform, { ...a, prot: a.prot | PROT.WRITE });
        }
      });
      return ro.outcome;
    },
  }),

  'copy-partial-source': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-044'],
    description: 'COPY of a source range that is mapped only at its start copies the mapped part and succeeds',
    rationale:
      'The source lookup checks the first area covers src_iova and then copies area after area until the length is ' +
      'used up or the next area is missing, without checking that it really was used up: a hole or the end of the ' +
      'source silently truncates the copy.',
    ops: ['IOMMU_IOAS_COPY'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_COPY' || r.rejectedBy !== 'MAP-044') return r.outcome;
      const src = spaceOf(s.view(), c, 'src_ioas_id');
      const a = src?.areas.containing(c.src_iova);
      if (a === undefined) return r.outcome;
      let end = a.last;
      for (let n = src!.areas.after(a); n !== undefined && n.iova === end + 1n; n = src!.areas.after(n)) end = n.last;
      const covered = end - c.src_iova + 1n;
      if (covered >= c.length) return r.outcome;
      return s.run({ ...c, length: covered }).outcome;
    },
  }),

  'map-fixed-ignores-reserved': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-009'],
    description: 'a fixed-IOVA MAP into a reserved range (an MSI window, outside the aperture) is accepted',
    rationale:
      'The fixed-IOVA path checks the requested range against the area tree only; the reserved tree is consulted by ' +
      'the automatic allocator, and whoever wrote the fixed path assumed the same. DMA to the MSI window then hits ' +
      'the interrupt remapping hardware instead of memory.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'MAP-009') return r.outcome;
      return s.mutate((st) => {
        const space = spaceOf(st, s.cmd)!;
        const kept = space.reserved;
        space.reserved = new RangeSet();
        const out = iommufdMap(st, new StepContext(), s.cmd as IommuIoasMapCmd);
        space.reserved = kept;
        return out;
      });
    },
  }),

  'map-lookup-before-flags': bug({
    profile: 'iommufd',
    chapter: 'MAP',
    clauses: ['MAP-015', 'MAP-014'],
    description: 'MAP looks up the IOAS before checking flags, overflow and permissions: a bad ID wins over bad flags',
    rationale:
      'The handler starts with `ioas = iommufd_get_ioas(ucmd->ictx, cmd->ioas_id)` as most iommufd handlers do, ' +
      'and validates the command after it; when both the ID and the flags are bad, user space sees ENOENT where ' +
      'Linux reports EOPNOTSUPP or EINVAL — the errno of the wrong check.',
    ops: ['IOMMU_IOAS_MAP'],
    step(s) {
      const c = s.cmd;
      if (c.op === 'IOMMU_IOAS_MAP' && s.view().get(c.ioas_id as number, 'ioas') === undefined) return fail('ENOENT');
      return s.run().outcome;
    },
  }),
};

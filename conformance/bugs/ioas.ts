/**
 * Catalogued bugs of chapters IOAS and INFO on iommufd: IOAS allocation, ALLOW_IOVAS, IOMMU_OPTION and
 * IOVA_RANGES (spec/chapters/IOAS.md, spec/chapters/INFO.md).
 *
 * @module
 */
import type { IovaRange } from '../../src/reference/args.ts';
import { RangeSet } from '../../src/reference/core/areas.ts';
import { StepContext } from '../../src/reference/core/context.ts';
import { iommufdAttach } from '../../src/reference/dev.ts';
import type { VfioDeviceAttachIommufdPtCmd } from '../../src/reference/resolved.ts';
import type { State } from '../../src/reference/state.ts';
import { bug, idOf, spaceOf, withOut, type Bug } from './kit.ts';

/** The index of the first range ALLOW_IOVAS rejects, in the order the kernel checks them. */
function firstBadRange(st: State, ioas: number, iovas: readonly IovaRange[]): number {
  for (let i = 0; i < iovas.length; i++) {
    const r = iovas[i]!;
    if (r.start >= r.last) return i;
    if (iovas.slice(0, i).some((q) => q.start <= r.last && r.start <= q.last)) return i;
  }
  const space = st.get(ioas, 'ioas')?.space;
  const i = iovas.findIndex((r) => space?.reserved.intersects(r.start, r.last) === true);
  return i < 0 ? iovas.length : i;
}

/** The catalogued IOAS and INFO bugs of iommufd, by name. */
export const IOAS_BUGS: Readonly<Record<string, Bug>> = {
  'ioas-alloc-flags-ignored': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-012', 'FD-030'],
    description: 'IOMMU_IOAS_ALLOC with non-zero flags succeeds',
    rationale:
      'The handler never reads cmd->flags (there are no flags yet), so it forgets to reject them; a later kernel ' +
      'that gives a flag a meaning can then not tell old callers that set garbage from new ones.',
    ops: ['IOMMU_IOAS_ALLOC'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      return c.op === 'IOMMU_IOAS_ALLOC' && r.rejectedBy === 'IOAS-012' ? s.run({ ...c, flags: 0 }).outcome : r.outcome;
    },
  }),

  'allow-iovas-not-atomic': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-017', 'IOAS-014'],
    description: 'a failing ALLOW_IOVAS leaves the ranges before the bad one in force instead of the old list',
    rationale:
      'iopt_set_allow_iova validates and inserts each range in one loop, replacing the allowed tree as it goes, and ' +
      'the error path returns without restoring the old tree: the list becomes the valid prefix of the rejected request.',
    ops: ['IOMMU_IOAS_ALLOW_IOVAS'],
    step(s) {
      const c = s.cmd;
      const before = s.view();
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_ALLOW_IOVAS' || !['IOAS-015', 'IOAS-016', 'IOAS-017'].includes(r.rejectedBy ?? ''))
        return r.outcome;
      const n = firstBadRange(before, idOf(c, 'ioas_id'), c.iovas);
      s.mutate((st) =>
        spaceOf(st, c)?.allowed.replace(
          c.iovas.slice(0, n).map((q) => ({ start: q.start, last: q.last, owner: 'allow' })),
        ),
      );
      return r.outcome;
    },
  }),

  'allow-iovas-over-reserved': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-017'],
    description: 'ALLOW_IOVAS accepts a range that intersects a reserved range (EADDRINUSE expected)',
    rationale:
      'The allowed ranges are checked for order and overlap among themselves, but the cross-check against the ' +
      'reserved tree (iopt_check_iova / the reserved itree walk) is omitted because "the allocator will skip ' +
      'reserved ranges anyway".',
    ops: ['IOMMU_IOAS_ALLOW_IOVAS'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_IOAS_ALLOW_IOVAS' || r.rejectedBy !== 'IOAS-017') return r.outcome;
      s.mutate((st) =>
        spaceOf(st, c)?.allowed.replace(c.iovas.map((q) => ({ start: q.start, last: q.last, owner: 'allow' }))),
      );
      return { ok: true };
    },
  }),

  'attach-ignores-allowed': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-020', 'DEV-015'],
    description: 'an attach whose reserved regions intersect an allowed range succeeds',
    rationale:
      'When a device joins an IOAS its reserved regions are inserted into the reserved tree after checking the ' +
      'area tree only; the allowed tree is forgotten, so a range the VMM was promised becomes unusable behind its back.',
    ops: ['VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'DEV-015') return r.outcome;
      // The same attach with the allowed ranges out of sight (a conflict with a mapping still fails).
      return s.mutate((st) => {
        const space = targetIoas(st, idOf(s.cmd, 'pt_id'))!;
        const kept = space.allowed;
        space.allowed = new RangeSet();
        const out = iommufdAttach(st, new StepContext(), s.cmd as VfioDeviceAttachIommufdPtCmd);
        space.allowed = kept;
        return out;
      });
    },
  }),

  'huge-pages-off-with-domain': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-025'],
    description: 'IOMMU_OPTION HUGE_PAGES=0 succeeds while a domain already holds mappings',
    rationale:
      'iopt_disable_large_pages only re-checks the alignment of existing areas and forgets that areas already ' +
      'mapped into a domain with large pages cannot be split afterwards; the option flips while the domain keeps ' +
      'its large IOPTEs.',
    ops: ['IOMMU_OPTION'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'IOAS-025') return r.outcome;
      s.mutate((st) => {
        const space = st.get(idOf(s.cmd, 'object_id'), 'ioas')!.space;
        space.hugePages = false;
      });
      return { ok: true, out: { val64: 0n } };
    },
  }),

  'rlimit-mode-set-busy': bug({
    profile: 'iommufd',
    chapter: 'IOAS',
    clauses: ['IOAS-029'],
    description: 'IOMMU_OPTION RLIMIT_MODE can be changed while the fd already holds objects',
    rationale:
      'The accounting mode is switched without the "no objects yet" check (xa_empty(&ictx->objects)); pages ' +
      'pinned under the old mode are later unaccounted under the new one, leaking or underflowing the counters.',
    ops: ['IOMMU_OPTION'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_OPTION' || r.rejectedBy !== 'IOAS-029' || r.outcome.ok || r.outcome.errno !== 'EBUSY')
        return r.outcome;
      if (c.val64 > 1n) return r.outcome;
      s.mutate((st) => {
        st.rlimitMode = c.val64;
      });
      return { ok: true, out: { val64: c.val64 } };
    },
  }),

  'iova-ranges-emsgsize-no-count': bug({
    profile: 'iommufd',
    chapter: 'INFO',
    clauses: ['INFO-015'],
    description: 'IOVA_RANGES with a too small num_iovas fails with EMSGSIZE but does not write back the count',
    rationale:
      'The handler returns -EMSGSIZE before copying the command back to user space (the copy_to_user of the header ' +
      'sits after the early return), so the caller cannot size its array and retry.',
    ops: ['IOMMU_IOAS_IOVA_RANGES'],
    step(s) {
      const r = s.run();
      return r.rejectedBy === 'INFO-015' ? { ok: false, errno: 'EMSGSIZE' } : r.outcome;
    },
  }),

  'iova-ranges-alignment-stale': bug({
    profile: 'iommufd',
    chapter: 'INFO',
    clauses: ['INFO-017'],
    description: "IOVA_RANGES reports the IOAS's own alignment and ignores the page size its domains impose",
    rationale:
      "out_iova_alignment is filled from the IOAS's cached value set at creation or by HUGE_PAGES, not from " +
      'iopt->iova_alignment that attaching a domain raises; user space then issues MAPs the kernel rejects.',
    ops: ['IOMMU_IOAS_IOVA_RANGES'],
    step(s) {
      const r = s.run();
      if (!r.outcome.ok) return r.outcome;
      const st = s.view();
      const space = st.get(idOf(s.cmd, 'ioas_id'), 'ioas')!.space;
      return withOut(r.outcome, { out_iova_alignment: space.hugePages ? 1n : BigInt(st.platform.limits.pageSize) });
    },
  }),
};

/** The address space an attach to `pt` reaches (an IOAS, or the IOAS of a HWPT). */
function targetIoas(st: State, pt: number) {
  const o = st.objects.get(pt);
  if (o === undefined) return undefined;
  if (o.kind === 'ioas') return o.space;
  if (o.kind === 'hwpt-paging' || o.kind === 'hwpt-nested') return st.get(o.ioas, 'ioas')?.space;
  return undefined;
}

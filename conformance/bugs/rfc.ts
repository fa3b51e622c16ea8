/**
 * Catalogued bugs of the rfc profile (/dev/ioasid): IOASID_FREE, attach and UNMAP.
 *
 * @module
 */
import { StepContext } from '../../src/reference/core/context.ts';
import { removeArea } from '../../src/reference/core/placement.ts';
import { rfcFree } from '../../src/reference/ioas.ts';
import type { IoasidFreeCmd } from '../../src/reference/resolved.ts';
import { bug, idOf, spaceOf, unmapRange, type Bug } from './kit.ts';

/** The catalogued rfc bugs, by name. */
export const RFC_BUGS: Readonly<Record<string, Bug>> = {
  'rfc-free-in-use': bug({
    profile: 'rfc',
    chapter: 'FD',
    clauses: ['FD-017', 'DEV-016'],
    description: 'IOASID_FREE of an IOASID that devices are attached to succeeds and detaches them',
    rationale:
      'ioasid_free tears the IOASID down through the same path as closing the fd (detach everything, unmap ' +
      'everything) without the "in use" check the RFC requires, so a VMM bug that frees the wrong IOASID silently ' +
      'cuts a live device off its address space instead of failing with EBUSY.',
    ops: ['IOASID_FREE'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'FD-017') return r.outcome;
      const id = idOf(s.cmd, 'ioasid');
      return s.mutate((st) => {
        const io = st.get(id, 'ioasid')!;
        if (io.children > 0) return r.outcome;
        for (const d of st.devices) d.attachments = d.attachments.filter((a) => a.ioasid !== id);
        io.attachments = 0;
        return rfcFree(st, new StepContext(), s.cmd as IoasidFreeCmd);
      });
    },
  }),

  'rfc-attach-twice': bug({
    profile: 'rfc',
    chapter: 'DEV',
    clauses: ['DEV-007'],
    description: 'VFIO_ATTACH_IOASID of an attachment that already exists succeeds (as a no-op)',
    rationale:
      'The attach path treats an existing (device, IOASID) entry as "already done, return 0", a common idempotency ' +
      'shortcut; the RFC makes it EEXIST so that the VMM notices its bookkeeping is wrong, and a later single ' +
      'detach would undo both attaches.',
    ops: ['VFIO_ATTACH_IOASID'],
    step(s) {
      const r = s.run();
      return r.rejectedBy === 'DEV-007' ? { ok: true } : r.outcome;
    },
  }),

  'rfc-unmap-not-atomic': bug({
    profile: 'rfc',
    chapter: 'MAP',
    clauses: ['MAP-039'],
    description: 'an rfc UNMAP that fails because it ends inside a mapping still removes the whole mappings before it',
    rationale:
      "The rfc unmap reuses iommufd's iopt_unmap_iova_range, which removes area after area and stops at the one it " +
      "would bisect (MAP-040, allowed in iommufd); the RFC keeps type1 v2's rule that a failed unmap removes " +
      'nothing, and the EINVAL the caller gets hides that part of its range is gone.',
    ops: ['IOASID_UNMAP_DMA'],
    step(s) {
      const r = s.run();
      const u = unmapRange(s.cmd);
      if (r.rejectedBy !== 'MAP-027' || u === undefined) return r.outcome;
      s.mutate((st) => {
        const space = spaceOf(st, s.cmd)!;
        for (const a of [...space.areas.intersecting(u.iova, u.last)])
          if (a.iova >= u.iova && a.last <= u.last) removeArea(space, st.platform, a);
      });
      return r.outcome;
    },
  }),
};

/**
 * Catalogued bugs of the vfio-type1 profile: the container, its groups, MAP/UNMAP_DMA and GET_INFO.
 *
 * @module
 */
import { addArea } from '../../src/reference/core/placement.ts';
import { bug, type Bug } from './kit.ts';

/** The catalogued vfio-type1 bugs, by name. */
export const TYPE1_BUGS: Readonly<Record<string, Bug>> = {
  'type1-dma-avail-leak': bug({
    profile: 'vfio-type1',
    chapter: 'MEM',
    clauses: ['MEM-015', 'INFO-027'],
    description: 'VFIO_IOMMU_UNMAP_DMA does not give the removed mappings back to dma_avail',
    rationale:
      'vfio_remove_dma frees the vfio_dma but the `iommu->dma_avail++` that pairs with the decrement in ' +
      'vfio_dma_do_map sits on another path (unmap-all only): every unmapped range leaks one entry of ' +
      'dma_entry_limit, and a long-running VMM eventually gets ENOSPC.',
    ops: ['VFIO_IOMMU_UNMAP_DMA'],
    step(s) {
      const before = s.view().container.space.areas.size;
      const r = s.run();
      if (!r.outcome.ok) return r.outcome;
      s.mutate((st) => {
        st.container.dmaAvail -= before - st.container.space.areas.size;
      });
      return r.outcome;
    },
  }),

  'type1-unset-keeps-mappings': bug({
    profile: 'vfio-type1',
    chapter: 'FD',
    clauses: ['FD-019', 'IOAS-034'],
    description: 'removing the last group from a container keeps its mappings for the next IOMMU model',
    rationale:
      "vfio_group_unset_container releases the IOMMU driver data only when the container's refcount drops; a " +
      'forgotten `vfio_iommu_type1_release` on the last-group path leaves the old vfio_dma tree in place, and a ' +
      'container reused with new groups starts with stale mappings.',
    ops: ['VFIO_GROUP_UNSET_CONTAINER'],
    step(s) {
      const before = s.view().container;
      const r = s.run();
      if (!r.outcome.ok || before.groups.length !== 1 || before.space.areas.size === 0) return r.outcome;
      s.mutate((st) => {
        for (const a of before.space.areas.all()) addArea(st.container.space, st.platform, a);
        st.container.dmaAvail = before.dmaAvail;
      });
      return r.outcome;
    },
  }),

  'type1-unmap-bisect-v2': bug({
    profile: 'vfio-type1',
    chapter: 'MAP',
    clauses: ['MAP-026'],
    description: 'a type1 v2 UNMAP that starts inside a mapping removes the mappings after it instead of failing',
    rationale:
      'vfio_dma_do_unmap keeps the v1 behaviour for v2 containers: the `iova` of the request is rounded down to the ' +
      'mapping found at it only for v1, and the v2 EINVAL check (`dma->iova != iova`) is dropped in a refactor; ' +
      'the walk then removes whole mappings from the next boundary on.',
    ops: ['VFIO_IOMMU_UNMAP_DMA'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'VFIO_IOMMU_UNMAP_DMA' || r.rejectedBy !== 'MAP-026') return r.outcome;
      const at = s.view().container.space.areas.containing(c.iova)!;
      const rest = c.iova + c.size - 1n - at.last;
      if (rest <= 0n) return { ok: true, out: { size: 0n } };
      return s.run({ ...c, iova: at.last + 1n, size: rest }).outcome;
    },
  }),
};

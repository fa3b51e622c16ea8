/**
 * Catalogued bugs of chapter FD: objects, IDs and IOMMU_DESTROY (spec/chapters/FD.md).
 *
 * @module
 */
import { StepContext } from '../../src/reference/core/context.ts';
import { iommufdClose, iommufdDetach } from '../../src/reference/dev.ts';
import { iommufdDestroy } from '../../src/reference/fd.ts';
import type { IommuDestroyCmd } from '../../src/reference/resolved.ts';
import type { State } from '../../src/reference/state.ts';
import { ALLOC_OPS, bug, fail, idOf, type Bug } from './kit.ts';

const live = (st: State) => (id: number) => st.objects.has(id);

/** The catalogued FD bugs, by name. */
export const FD_BUGS: Readonly<Record<string, Bug>> = {
  'destroy-errno': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-002'],
    description: 'IOMMU_DESTROY of an ID that names no object answers EINVAL instead of ENOENT',
    rationale:
      'The destroy handler folds "no such object" into its generic argument check (`if (!obj) return -EINVAL`), ' +
      'the errno most ioctls use for a bad argument; user space that retries on ENOENT, or tells a double destroy ' +
      'from a bad call by it, is misled.',
    ops: ['IOMMU_DESTROY'],
    step(s) {
      const r = s.run();
      return !r.outcome.ok && r.outcome.errno === 'ENOENT' ? fail('EINVAL') : r.outcome;
    },
  }),

  'id-skip': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-004'],
    description: 'a new IOAS gets the second-lowest free ID instead of the lowest',
    rationale:
      'The IOAS allocation passes an xa_limit whose minimum is "last freed ID + 1" (or 2, reserving 1 for a ' +
      'default object that was later dropped): the lowest free ID is skipped. Users that predict IDs, and the ' +
      'determinism checkpoint/restore relies on, break.',
    ops: ['IOMMU_IOAS_ALLOC', 'IOASID_ALLOC'],
    step(s) {
      const lowest = s.view().ids.peek();
      if (lowest === 0) return s.run().outcome;
      s.mutate((st) => st.ids.take(lowest, live(st)));
      const r = s.run();
      s.mutate((st) => st.ids.free(lowest));
      return r.outcome;
    },
  }),

  'id-cyclic': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-004'],
    description: 'object IDs are handed out cyclically: a freed ID is not reused while higher ones are left',
    rationale:
      'The object table uses xa_alloc_cyclic (or idr_alloc_cyclic, as many drivers do to avoid ID reuse races) where ' +
      'iommufd uses xa_alloc with XA_FLAGS_ALLOC1: after a destroy, the next object gets a fresh ID above every ' +
      'ID used so far instead of the lowest free one.',
    ops: ALLOC_OPS,
    step(s) {
      const high = (s.memo.get('high') as number | undefined) ?? 0;
      const taken: number[] = [];
      if (s.view().ids.peek() <= high)
        s.mutate((st) => {
          for (let p = st.ids.peek(); p !== 0 && p <= high; p = st.ids.peek()) {
            st.ids.take(p, live(st));
            taken.push(p);
          }
        });
      const r = s.run();
      if (taken.length > 0) s.mutate((st) => taken.forEach((id) => st.ids.free(id)));
      const out = r.outcome.ok ? r.outcome.out : undefined;
      for (const f of ['id', 'pt_id']) {
        const v = out?.[f];
        if (typeof v === 'number' && v > high) s.memo.set('high', v);
      }
      return r.outcome;
    },
  }),

  'destroy-attached-hwpt': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-012', 'DEV-016'],
    description: 'IOMMU_DESTROY of a HWPT with devices attached succeeds (the devices are silently detached)',
    rationale:
      'The destroy path drops the object with iommufd_object_destroy_user without checking the users refcount the ' +
      'attached devices hold, as if the only reference were the ID; a real kernel then has devices pointing at freed ' +
      'page tables. Here the devices end up detached, which user space did not ask for.',
    ops: ['IOMMU_DESTROY'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'FD-012') return r.outcome;
      const id = idOf(s.cmd, 'id');
      return s.mutate((st) => {
        const ctx = new StepContext();
        st.devices.forEach((d, dev) => {
          if (d.hwpt === id) iommufdDetach(st, ctx, { op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev });
        });
        return st.objects.has(id) ? iommufdDestroy(st, ctx, s.cmd as IommuDestroyCmd) : ctx.ok();
      });
    },
  }),

  'destroy-nest-parent-in-use': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-013', 'NEST-006'],
    description: 'IOMMU_DESTROY of a NEST_PARENT HWPT succeeds while a nested HWPT still uses it',
    rationale:
      "The nested HWPT takes no reference on its parent (refcount_inc on the parent's obj.users is forgotten in " +
      'iommufd_hwpt_nested_alloc), so the parent looks unused and destroy frees the stage-2 table under a live ' +
      'stage-1.',
    ops: ['IOMMU_DESTROY'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'FD-013') return r.outcome;
      return s.mutate((st) => {
        const h = st.get(idOf(s.cmd, 'id'), 'hwpt-paging')!;
        h.children = 0;
        return iommufdDestroy(st, new StepContext(), s.cmd as IommuDestroyCmd);
      });
    },
  }),

  'destroy-device-object': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-015'],
    description: 'IOMMU_DESTROY of a DEVICE object succeeds and unbinds the device',
    rationale:
      'The DEVICE object is allocated like the others, with a destroy callback, and is not marked as owned by the ' +
      'VFIO device file (iommufd_object_alloc_elm without the internal-only flag), so user space can destroy it ' +
      'from under the VFIO driver that bound it.',
    ops: ['IOMMU_DESTROY'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'FD-015') return r.outcome;
      return s.mutate((st) => {
        const o = st.get(idOf(s.cmd, 'id'), 'device')!;
        return iommufdClose(st, new StepContext(), { op: 'VFIO_DEVICE_CLOSE', dev: o.dev });
      });
    },
  }),
};

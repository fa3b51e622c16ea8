/**
 * Catalogued bugs of chapters DEV, NEST/FMT and INV on iommufd: bind, attach, detach, replace, nested HWPT
 * allocation and HWPT_INVALIDATE (spec/chapters/DEV.md, NEST.md, FMT.md, INV.md).
 *
 * @module
 */
import type { Command } from '../../src/reference/commands.ts';
import { StepContext } from '../../src/reference/core/context.ts';
import { iommufdAttach, iommufdBind } from '../../src/reference/dev.ts';
import { outsideAperture } from '../../src/reference/ioas.ts';
import { iommufdHwptAlloc } from '../../src/reference/nest.ts';
import type { IommuHwptAllocCmd, VfioDeviceAttachIommufdPtCmd } from '../../src/reference/resolved.ts';
import type { HwptObject } from '../../src/reference/state.ts';
import { bug, fail, idOf, type Bug } from './kit.ts';

/** The device index of a device command. */
function devOf(cmd: Command): number {
  return 'dev' in cmd && typeof cmd.dev === 'number' ? cmd.dev : -1;
}

/** The catalogued DEV, NEST and FMT bugs of iommufd, by name. */
export const DEV_BUGS: Readonly<Record<string, Bug>> = {
  'attach-unbound': bug({
    profile: 'iommufd',
    chapter: 'DEV',
    clauses: ['DEV-004'],
    description:
      'VFIO_DEVICE_ATTACH_IOMMUFD_PT on a device that is not bound to the fd succeeds (binding it on the fly)',
    rationale:
      'The attach ioctl of the VFIO cdev looks the iommufd context up from the file instead of from the bound ' +
      'device (df->iommufd), and iommufd_device_bind is called lazily "if not yet bound": a device is attached to ' +
      'an fd it was never bound to, without the ownership checks of bind.',
    ops: ['VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'DEV-004') return r.outcome;
      return s.mutate((st) => {
        const ctx = new StepContext();
        const bound = iommufdBind(st, ctx, { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: devOf(s.cmd) });
        return bound.ok ? iommufdAttach(st, ctx, s.cmd as VfioDeviceAttachIommufdPtCmd) : bound;
      });
    },
  }),

  'detach-keeps-auto-hwpt': bug({
    profile: 'iommufd',
    chapter: 'DEV',
    clauses: ['DEV-026', 'DEV-024'],
    description: 'detaching (or closing, or replacing away) the last device of an automatic HWPT does not free it',
    rationale:
      'The automatic domain created by attaching to an IOAS is released with a plain refcount_dec instead of ' +
      'iommufd_hw_pagetable_put / iommufd_object_destroy: the HWPT, its ID and its hold on the IOAS outlive their ' +
      'last user.',
    ops: ['VFIO_DEVICE_DETACH_IOMMUFD_PT', 'VFIO_DEVICE_CLOSE', 'VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    step(s) {
      const before = s.view();
      const dev = devOf(s.cmd);
      const h = before.devices[dev] === undefined ? undefined : before.get(before.devices[dev].hwpt, 'hwpt-paging');
      const r = s.run();
      if (!r.outcome.ok || h === undefined || !h.auto || h.devices !== 1) return r.outcome;
      const leaked: HwptObject = { ...h, devices: 0 };
      s.mutate((st) => {
        if (st.objects.has(leaked.id) || !st.ids.take(leaked.id, (id) => st.objects.has(id))) return;
        st.objects.set(leaked.id, leaked);
        const ioas = st.get(leaked.ioas, 'ioas');
        if (ioas === undefined) return;
        ioas.space.domains++;
        ioas.space.reserved.add(...outsideAperture(st, `aperture:${leaked.id}`));
      });
      return r.outcome;
    },
  }),

  'attach-no-resv-regions': bug({
    profile: 'iommufd',
    chapter: 'DEV',
    clauses: ['DEV-014', 'INFO-013', 'MAP-009'],
    description: 'attaching a device does not reserve its reserved regions (the MSI window) in the IOAS',
    rationale:
      'The attach path calls iommu_attach_group but not iopt_table_enforce_dev_resv_regions (or calls it before the ' +
      "group lookup and ignores the result): the device's MSI window stays mappable and IOVA_RANGES still reports it.",
    ops: ['VFIO_DEVICE_ATTACH_IOMMUFD_PT'],
    step(s) {
      const r = s.run();
      if (!r.outcome.ok) return r.outcome;
      const dev = devOf(s.cmd);
      s.mutate((st) => {
        const h = st.objects.get(st.devices[dev]!.hwpt);
        const ioas = h !== undefined && h.kind !== 'ioas' && 'ioas' in h ? st.get(h.ioas, 'ioas') : undefined;
        ioas?.space.reserved.removeOwner(`dev:${dev}`);
      });
      return r.outcome;
    },
  }),

  'nested-on-plain-parent': bug({
    profile: 'iommufd',
    chapter: 'NEST',
    clauses: ['FMT-013', 'NEST-014'],
    description: 'a nested HWPT is accepted on a paging HWPT that was not allocated with NEST_PARENT',
    rationale:
      'iommufd_hwpt_nested_alloc checks that the parent is a paging HWPT but not its nest_parent flag: the driver ' +
      'then nests on a stage-2 domain whose format (or whose dirty-tracking and cache-tag setup) cannot serve as a ' +
      'second stage.',
    ops: ['IOMMU_HWPT_ALLOC'],
    step(s) {
      const r = s.run();
      if (r.rejectedBy !== 'FMT-013') return r.outcome;
      return s.mutate((st) => {
        const id = idOf(s.cmd, 'pt_id');
        const parent = st.get(id, 'hwpt-paging')!;
        st.objects.set(id, { ...parent, nestParent: true, auto: false });
        const out = iommufdHwptAlloc(st, new StepContext(), s.cmd as IommuHwptAllocCmd);
        const now = st.get(id, 'hwpt-paging')!;
        st.objects.set(id, { ...now, nestParent: parent.nestParent, auto: parent.auto });
        return out;
      });
    },
  }),

  'hwpt-alloc-bad-pt-enoent': bug({
    profile: 'iommufd',
    chapter: 'FD',
    clauses: ['FD-007', 'FMT-014'],
    description: 'IOMMU_HWPT_ALLOC reports a pt_id that names no object with ENOENT instead of EINVAL',
    rationale:
      'Every other lookup in iommufd gives ENOENT for a missing object, so a re-implementation of HWPT_ALLOC does ' +
      "the same; Linux's iommufd_get_object(…, IOMMUFD_OBJ_ANY) path reports EINVAL here, and VMMs match on it.",
    ops: ['IOMMU_HWPT_ALLOC'],
    step(s) {
      const missing = !s.view().objects.has(idOf(s.cmd, 'pt_id'));
      const r = s.run();
      // Whatever clause the model names for it (FD-007, FMT-014): the EINVAL of a pt_id that names no object.
      return missing && !r.outcome.ok && r.outcome.errno === 'EINVAL' ? fail('ENOENT') : r.outcome;
    },
  }),

  'invalidate-on-paging-hwpt': bug({
    profile: 'iommufd',
    chapter: 'INV',
    clauses: ['INV-012', 'FMT-011'],
    description: 'IOMMU_HWPT_INVALIDATE on a paging HWPT succeeds (as if it flushed a user-managed table)',
    rationale:
      "The handler looks the HWPT up with IOMMUFD_OBJ_ANY and calls the domain's cache_invalidate_user op when it is " +
      'there; the paging domain of this driver has the op too (it shares the ops table with the nested domain), so ' +
      'a VMM that sends a guest flush to the wrong object gets success instead of ENOENT.',
    ops: ['IOMMU_HWPT_INVALIDATE'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_HWPT_INVALIDATE' || r.rejectedBy !== 'INV-012') return r.outcome;
      if (s.view().get(c.hwpt_id as number, 'hwpt-paging') === undefined) return r.outcome;
      return { ok: true, out: { entry_num: c.entry_num } };
    },
  }),

  'invalidate-entry-num-unchanged': bug({
    profile: 'iommufd',
    chapter: 'INV',
    clauses: ['INV-015', 'INV-014'],
    description: 'a HWPT_INVALIDATE that fails at entry i writes back the entry_num it was given instead of i',
    rationale:
      'The error path returns before `cmd->entry_num = done` is stored (the copy back of the struct happens only on ' +
      'success, or copies the original), so user space cannot tell which entries were applied and retries all of ' +
      'them, or none.',
    ops: ['IOMMU_HWPT_INVALIDATE'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'IOMMU_HWPT_INVALIDATE' || r.outcome.ok || r.outcome.out?.entry_num === undefined) return r.outcome;
      return { ok: false, errno: r.outcome.errno, out: { entry_num: c.entry_num } };
    },
  }),
};

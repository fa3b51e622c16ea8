/**
 * Catalogued bugs of the rfc profile's later chapters — formats (FMT), binding (BIND), PASID schemes and migration
 * (PASID), pre-registration (MEM), invalidation (INV) — and of iommufd's fault queues (FAULT).
 *
 * The rfc buggy adapters declare every rfc feature the model covers ({@link RFC_FEATURES}), so that the default run
 * draws the commands these bugs live in.
 *
 * @module
 */
import { RFC_UNMAP } from '../../src/reference/commands.ts';
import { StepContext } from '../../src/reference/core/context.ts';
import { rfcAttach } from '../../src/reference/dev.ts';
import type { VfioAttachIoasidCmd } from '../../src/reference/resolved.ts';
import type { State } from '../../src/reference/state.ts';
import { bug, fail, idOf, spaceOf, type Bug } from './kit.ts';

/** The rfc features a buggy rfc adapter of this file declares (besides the reference's defaults). */
export const RFC_FEATURES: readonly string[] = [
  'pasid',
  'pasid-global',
  'pasid-virt',
  'nesting-hw',
  'nesting-sw',
  'pasid-table-user',
  'prereg',
  'migration',
  'enqcmd',
  'iopf',
  'mdev',
];

/** Runs an rfc attach with the split of the global scheme moved to `min` for the duration of the call. */
function attachWithSplit(st: State, cmd: VfioAttachIoasidCmd, min: number) {
  const kept = st.rfcx.globalMin;
  st.rfcx.globalMin = min;
  const out = rfcAttach(st, new StepContext(), cmd);
  st.rfcx.globalMin = kept;
  return out;
}

/** The catalogued bugs of this file, by name. */
export const PASID_BUGS: Readonly<Record<string, Bug>> = {
  'map-on-user-ioasid': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'FMT',
    clauses: ['FMT-002', 'IOAS-009'],
    description: 'IOASID_MAP_DMA on a user-managed (pgtable) IOASID succeeds',
    rationale:
      'The MAP handler looks up the IOASID and its kernel page table without checking the format declared at ' +
      'creation: every IOASID gets an (unused) io_pagetable, so the map "works" — into a table no device walks, ' +
      'while the VMM believes the range is reachable.',
    ops: ['IOASID_MAP_DMA'],
    step(s) {
      const r = s.run();
      return r.rejectedBy === 'FMT-002' ? { ok: true } : r.outcome;
    },
  }),

  'bind-on-kernel-ioasid': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'BIND',
    clauses: ['BIND-001', 'FMT-004'],
    description: 'IOASID_BIND_PGTABLE on a kernel-managed IOASID succeeds',
    rationale:
      'The bind path checks that the IOASID exists and has a device, then programs the PASID entry with the user ' +
      'root; the "format must be pgtable" check was left to the driver, which trusts the caller. A kernel-managed ' +
      'IOASID then has its stage-1 replaced by a table the kernel does not own.',
    ops: ['IOASID_BIND_PGTABLE'],
    step(s) {
      const r = s.run();
      return r.rejectedBy === 'BIND-001' ? { ok: true } : r.outcome;
    },
  }),

  'local-pasid-in-global-range': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'PASID',
    clauses: ['PASID-013'],
    description: 'in the global scheme, a user PASID at or above the split is accepted as a local PASID',
    rationale:
      "The local-range check compares the user PASID with the device's PASID width only (`pasid < 1 << width`) " +
      'and not with the split set by HWID_SET_GLOBAL_MIN, so a local PASID leaks into the range the kernel hands ' +
      'out global PASIDs from, where it can collide with one.',
    ops: ['VFIO_ATTACH_IOASID'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'VFIO_ATTACH_IOASID' || r.rejectedBy !== 'PASID-013' || c.pasid === undefined) return r.outcome;
      const st = s.view();
      const p = c.pasid;
      if (st.rfcx.globalMin === 0 || p < st.rfcx.globalMin || p + 1 >= 2 ** st.platform.iommu.pasidBits)
        return r.outcome;
      return s.mutate((m) => attachWithSplit(m, c as VfioAttachIoasidCmd, p + 1));
    },
  }),

  'global-pasid-per-device': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'PASID',
    clauses: ['PASID-015', 'PASID-014', 'REF-009'],
    description:
      'in the global scheme, global PASIDs are kept per device: one local PASID can name different address spaces on two devices',
    rationale:
      "The global PASID is looked up in a per-device xarray (the per-RID scheme's data structure, reused) instead " +
      'of the fd-wide one keyed by the local PASID: attaching local PASID p of a second device to another IOASID ' +
      'allocates a second global PASID instead of failing, and ENQCMD with p then means different things.',
    ops: ['VFIO_ATTACH_IOASID'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'VFIO_ATTACH_IOASID' || r.rejectedBy !== 'PASID-015' || c.pasid === undefined) return r.outcome;
      const key = `L:${c.pasid}`;
      return s.mutate((st) => {
        const shared = st.rfcx.kpasids.get(key);
        st.rfcx.kpasids.delete(key);
        const out = rfcAttach(st, new StepContext(), c as VfioAttachIoasidCmd);
        const own = st.rfcx.kpasids.get(key);
        if (own !== undefined) st.rfcx.kpasids.set(`L:${c.pasid}:dev${c.dev}`, own);
        if (shared !== undefined) st.rfcx.kpasids.set(key, shared);
        return out;
      });
    },
  }),

  'migrate-keeps-global-pasids': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'PASID',
    clauses: ['PASID-028'],
    description: "after migration the destination reuses the source's global PASIDs instead of allocating new ones",
    rationale:
      'The restore path replays the saved attachments with the real PASIDs the source used (a "fast path" that ' +
      'serialises kernel-allocated PASIDs, against PASID-026), and on the destination those values belong to ' +
      "other users: two VMs' ENQCMD then reach each other's address spaces.",
    ops: ['MIGRATE'],
    step(s) {
      const before = s.view().rfcx.kpasids;
      const r = s.run();
      if (!r.outcome.ok) return r.outcome;
      s.mutate((st) => {
        for (const [key, k] of [...st.rfcx.kpasids]) {
          const old = before.get(key);
          if (old === undefined || old.real === k.real) continue;
          st.rfcx.kpasids.set(key, { ...k, real: old.real });
          for (const d of st.devices)
            d.attachments = d.attachments.map((a) =>
              a.pasid !== undefined && a.real === k.real ? { ...a, real: old.real } : a,
            );
        }
      });
      return r.outcome;
    },
  }),

  'prereg-users-leak': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'MEM',
    clauses: ['MEM-006', 'MEM-005'],
    description: 'unmapping a mapping of registered memory does not drop its use of the registration',
    rationale:
      'MAP takes a reference on the pre-registration its pages come from; the unmap path releases the pins of ' +
      'unregistered memory and forgets the other branch (the registered case has nothing to unpin, so nothing ' +
      'was written there): the registration can never be removed again (EBUSY).',
    ops: ['IOASID_UNMAP_DMA'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOASID_UNMAP_DMA') return s.run().outcome;
      const before = s.view();
      const space = spaceOf(before, c);
      const all = (c.flags & RFC_UNMAP.ALL) !== 0;
      const last = c.size === 0n ? c.iova : c.iova + c.size - 1n;
      const inside =
        space === undefined ? [] : all ? [...space.areas.all()] : [...space.areas.intersecting(c.iova, last)];
      const r = s.run();
      if (!r.outcome.ok) return r.outcome;
      s.mutate((st) => {
        const still = spaceOf(st, c);
        for (const a of inside) {
          const pin = before.rfcx.pins.get(a.pages);
          if (pin === undefined || !pin.registered || still?.areas.containing(a.iova) === a) continue;
          for (const g of st.rfcx.regs)
            if (g.va <= pin.last && pin.va <= g.last) st.rfcx.regUsers.set(g.va, (st.rfcx.regUsers.get(g.va) ?? 0) + 1);
        }
      });
      return r.outcome;
    },
  }),

  'invalidate-kernel-ioasid-einval': bug({
    profile: 'rfc',
    features: RFC_FEATURES,
    chapter: 'INV',
    clauses: ['INV-003', 'FMT-008'],
    description: 'IOASID_INVALIDATE_CACHE on a kernel-managed IOASID fails with EINVAL instead of succeeding',
    rationale:
      'The handler treats "no user-managed table" as a user error (`if (ioasid->format != PGTABLE) return -EINVAL`), ' +
      'but the RFC makes every IOASID accept an invalidation so that a guest driver need not know which level it ' +
      'talks to; a vIOMMU that forwards every guest flush then fails on kernel-managed spaces.',
    ops: ['IOASID_INVALIDATE_CACHE'],
    step(s) {
      const io = s.view().get(idOf(s.cmd, 'ioasid'), 'ioasid');
      if (io?.format === 'kernel' && s.dryRun().outcome.ok) return fail('EINVAL');
      return s.run().outcome;
    },
  }),

  'fault-answered-twice': bug({
    profile: 'iommufd',
    features: ['iopf'],
    chapter: 'FAULT',
    clauses: ['FAULT-018', 'FAULT-029'],
    description: 'IOMMU_FAULT_RESPOND accepts a second response to a page group already answered',
    rationale:
      'The response path sends the page response to the device but does not erase the group from the response ' +
      'xarray (xa_erase forgotten after iopf_group_response), so a second write with the same cookie answers the ' +
      'device again — a response for a group it no longer has, or worse, for a new group with a reused index.',
    ops: ['IOMMU_FAULT_RESPOND'],
    step(s) {
      const c = s.cmd;
      if (c.op !== 'IOMMU_FAULT_RESPOND') return s.run().outcome;
      const f = s.view().get(c.fault_id as number, 'fault');
      const waiting = f === undefined ? [] : [...f.queue.response.entries()];
      const r = s.run();
      if (!r.outcome.ok || waiting.length === 0) return r.outcome;
      s.mutate((st) => {
        const q = st.get(c.fault_id as number, 'fault')?.queue;
        if (q !== undefined) for (const [cookie, g] of waiting) if (!q.response.has(cookie)) q.response.set(cookie, g);
      });
      return r.outcome;
    },
  }),
};

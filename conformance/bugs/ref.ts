/**
 * Catalogued bugs of chapter REF seen through the uAPI: DMA that does not follow the uAPI state (stale page-table
 * entries after UNMAP, write permission not enforced, a detached device still translated). These are the
 * uAPI-level faces of hardware-programming slips; the hardware model's own broken drivers cover the register level.
 *
 * @module
 */
import type { Area } from '../../src/reference/core/areas.ts';
import { StepContext } from '../../src/reference/core/context.ts';
import { deviceDma } from '../../src/reference/dma.ts';
import type { State } from '../../src/reference/state.ts';
import type { Command } from '../../src/reference/commands.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import { bug, spaceOf, unmapRange, type Bug, type Ran } from './kit.ts';

/** The domain a device's DMA goes through now: `hwpt:<id>:<ioas>` (iommufd) or `container` (vfio-type1). */
function domainOfDevice(st: State, dev: number): string | undefined {
  if (st.profile === 'vfio-type1') return st.container.iommuType !== 0 ? 'container' : undefined;
  if (st.profile !== 'iommufd') return undefined;
  const h = st.objects.get(st.devices[dev]?.hwpt ?? 0);
  return h?.kind === 'hwpt-paging' ? `hwpt:${h.id}:${h.ioas}` : undefined;
}

/** The domains (IOMMU page tables) that hold the mappings of the address space an unmap works on. */
function domainsOfSpace(st: State, cmd: Command): string[] {
  if (cmd.op === 'VFIO_IOMMU_UNMAP_DMA') return st.container.iommuType !== 0 ? ['container'] : [];
  if (cmd.op !== 'IOMMU_IOAS_UNMAP') return [];
  const out: string[] = [];
  for (const o of st.objects.values())
    if (o.kind === 'hwpt-paging' && o.ioas === cmd.ioas_id) out.push(`hwpt:${o.id}:${o.ioas}`);
  return out;
}

/** Whether a domain key still names a live domain. */
function domainAlive(st: State, key: string): boolean {
  if (key === 'container') return st.container.iommuType !== 0;
  const [, id, ioas] = key.split(':');
  return st.get(Number(id), 'hwpt-paging')?.ioas === Number(ioas);
}

/** The catalogued REF bugs, by name. */
export const REF_BUGS: Readonly<Record<string, Bug>> = {
  'unmap-keeps-ptes': bug({
    profile: 'iommufd',
    chapter: 'REF',
    clauses: ['REF-003', 'REF-004', 'INV-009'],
    description: 'after UNMAP the removed range still translates for devices (page-table entries left in place)',
    rationale:
      "The unmap path removes the area from the IOAS's interval tree and unpins the pages, but the domain unmap " +
      '(iopt_area_unmap_domain_range, iommu_unmap + iotlb_sync) is skipped on one path: the IOMMU keeps translating ' +
      'the old IOVAs to pages the process no longer owns — the most dangerous bug in this catalogue.',
    // Every op: a domain that goes away takes its stale entries with it.
    step(s) {
      const c = s.cmd;
      const stale = (s.memo.get('stale') as Map<string, Area[]> | undefined) ?? new Map<string, Area[]>();
      s.memo.set('stale', stale);
      let r: Ran;
      if (c.op === 'DEVICE_DMA') {
        r = s.run();
        const key =
          r.outcome.ok || r.outcome.out?.reason !== 'not-present' ? undefined : domainOfDevice(s.view(), c.dev);
        const hit =
          key === undefined
            ? undefined
            : stale.get(key)?.find((a) => a.iova <= c.iova && c.iova + c.length - 1n <= a.last);
        if (hit !== undefined) return { ok: true, out: { buf: hit.buf, off: hit.off + (c.iova - hit.iova) } };
      } else if (c.op === 'IOMMU_IOAS_UNMAP' || c.op === 'VFIO_IOMMU_UNMAP_DMA') {
        const before = s.view();
        const u = unmapRange(c) ?? { iova: 0n, last: U64_MAX };
        const domains = domainsOfSpace(before, c);
        const inside = [...(spaceOf(before, c)?.areas.intersecting(u.iova, u.last) ?? [])];
        r = s.run();
        if (r.outcome.ok && domains.length > 0) {
          const still = spaceOf(s.view(), c);
          const gone = inside.filter((a) => still?.areas.containing(a.iova) !== a);
          for (const d of domains) stale.set(d, [...(stale.get(d) ?? []), ...gone]);
        }
      } else r = s.run();
      if (stale.size > 0) {
        const st = s.view();
        for (const k of [...stale.keys()]) if (!domainAlive(st, k)) stale.delete(k);
      }
      return r.outcome;
    },
  }),

  'dma-ignores-write-perm': bug({
    profile: 'iommufd',
    chapter: 'REF',
    clauses: ['REF-005'],
    description: 'a device write to a mapping made without write permission succeeds',
    rationale:
      'The IOMMU_WRITE bit is dropped when the MAP flags are converted to iommu prot (`prot = IOMMU_READ` set ' +
      'unconditionally and IOMMU_WRITE tested on the wrong flag), so every mapping is installed writable; read-only ' +
      'guest memory can be overwritten by DMA.',
    ops: ['DEVICE_DMA'],
    step(s) {
      const c = s.cmd;
      const r = s.run();
      if (c.op !== 'DEVICE_DMA' || r.outcome.ok || r.outcome.out?.reason !== 'write-denied') return r.outcome;
      const asRead = s.dryRun({ ...c, write: false });
      return asRead.outcome.ok ? asRead.outcome : r.outcome;
    },
  }),

  'detach-leaves-dma': bug({
    profile: 'iommufd',
    chapter: 'REF',
    clauses: ['REF-006', 'DEV-013'],
    description: "after a detach the device's DMA is still translated by the IOAS it was detached from",
    rationale:
      "Detach drops the device from the HWPT's list but never attaches the blocking domain (iommu_detach_group / " +
      'the blocked-domain switch is missing), so the context entry keeps pointing at the old page table and the ' +
      "device keeps reaching the VM's memory.",
    ops: ['VFIO_DEVICE_DETACH_IOMMUFD_PT', 'DEVICE_DMA'],
    step(s) {
      const c = s.cmd;
      const was = (s.memo.get('was') as Map<number, number> | undefined) ?? new Map<number, number>();
      s.memo.set('was', was);
      if (c.op === 'VFIO_DEVICE_DETACH_IOMMUFD_PT') {
        const st = s.view();
        const h = st.objects.get(st.devices[c.dev]?.hwpt ?? 0);
        const r = s.run();
        if (r.outcome.ok && h?.kind === 'hwpt-paging') was.set(c.dev, h.ioas);
        return r.outcome;
      }
      if (c.op !== 'DEVICE_DMA') return s.run().outcome;
      const r = s.run();
      const ioas = was.get(c.dev);
      if (r.outcome.ok || r.outcome.out?.reason !== 'blocked' || ioas === undefined) return r.outcome;
      const st = s.view();
      if (st.devices[c.dev]!.hwpt !== 0 || st.get(ioas, 'ioas') === undefined) return r.outcome;
      // Translate as if the old attachment were still there: a throwaway copy with a stand-in HWPT.
      const ghost = 0x7fff_fffe;
      st.objects.set(ghost, {
        kind: 'hwpt-paging',
        id: ghost,
        ioas,
        parent: 0,
        auto: true,
        nestParent: false,
        dirty: false,
        fault: 0,
        devices: 1,
        children: 0,
      });
      st.devices[c.dev]!.hwpt = ghost;
      return deviceDma(st, new StepContext(), c);
    },
  }),
};

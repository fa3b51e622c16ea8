/**
 * The implementation of {@link ModelView} over the model's state.
 *
 * @module
 */
import { iommufdAlignment, minPageSize } from './core/placement.ts';
import type { FaultQueue, Space, State } from './state.ts';
import type { FaultQueueInfo, ModelView, ObjectInfo } from './view.ts';

/**
 * Builds a view that always reads the current state returned by `get`. `version` changes whenever the state may
 * have changed (every step, every restore): the list of live objects is computed once per version, since the
 * generators read it at every pick.
 */
export function createView(get: () => State, version: () => number): ModelView {
  let objectsAt = -1;
  let objectsCache: readonly ObjectInfo[] = [];
  const spaceOf = (as: number): Space | undefined => {
    const st = get();
    if (st.profile === 'vfio-type1') return as === 0 ? st.container.space : undefined;
    const o = st.objects.get(as);
    if (o?.kind === 'ioas') return o.space;
    if (o?.kind === 'ioasid') return o.space;
    return undefined;
  };
  return {
    get profile() {
      return get().profile;
    },
    get platform() {
      return get().platform;
    },
    get features() {
      return get().features;
    },
    objects(): readonly ObjectInfo[] {
      if (objectsAt === version()) return objectsCache;
      const out: ObjectInfo[] = [];
      for (const o of get().objects.values()) {
        if (o.kind === 'ioasid') out.push({ id: o.id, kind: o.kind, format: o.format, parent: o.parent });
        else if (o.kind === 'hwpt-paging' || o.kind === 'hwpt-nested')
          out.push({
            id: o.id,
            kind: o.kind,
            format: o.nestParent ? 'nest-parent' : o.auto ? 'auto' : o.fault !== 0 ? 'fault' : 'manual',
            parent: o.kind === 'hwpt-nested' ? o.parent : o.ioas,
          });
        else out.push({ id: o.id, kind: o.kind });
      }
      objectsAt = version();
      return (objectsCache = out.sort((a, b) => a.id - b.id));
    },
    addressSpaces(): number[] {
      const st = get();
      if (st.profile === 'vfio-type1') return [0];
      const out: number[] = [];
      for (const o of st.objects.values())
        if (o.kind === 'ioas' || (o.kind === 'ioasid' && o.space !== undefined)) out.push(o.id);
      return out.sort((a, b) => a - b);
    },
    areaCount(as) {
      return spaceOf(as)?.areas.size ?? 0;
    },
    areaAtOrAfter(as, iova) {
      const s = spaceOf(as);
      if (!s) return undefined;
      const at = s.areas.firstIntersecting(iova, iova) ?? s.areas.firstIntersecting(iova, (1n << 64n) - 1n);
      return at ?? s.areas.firstIntersecting(0n, (1n << 64n) - 1n);
    },
    alignment(as) {
      const st = get();
      const s = spaceOf(as);
      if (!s) return 1n;
      return st.profile === 'iommufd' ? iommufdAlignment(s, st.platform) : minPageSize(st.platform);
    },
    usableRanges(as) {
      return spaceOf(as)?.reserved.holes() ?? [];
    },
    device(dev) {
      const st = get();
      const d = st.devices[dev];
      if (!d) return { bound: false, devId: 0, attachedTo: [] };
      const attachedTo =
        st.profile === 'iommufd'
          ? d.hwpt !== 0
            ? [{ pt: d.hwpt }]
            : []
          : d.attachments.map((a) => (a.pasid === undefined ? { pt: a.ioasid } : { pt: a.ioasid, pasid: a.pasid }));
      return { bound: d.boundId !== 0, devId: st.profile === 'iommufd' ? d.boundId : 0, attachedTo };
    },
    rfc() {
      const st = get();
      const x = st.rfcx;
      return {
        registrations: x.regs.map((r) => ({ buf: r.buf, off: r.off, size: r.last - r.va + 1n })),
        // Computed on access only: it walks every object.
        get tables() {
          const tables: { id: number; tableFormat: string; bound: boolean }[] = [];
          for (const o of st.objects.values())
            if (o.kind === 'ioasid' && o.tableFormat !== undefined)
              tables.push({ id: o.id, tableFormat: o.tableFormat, bound: o.bound !== undefined });
          return tables.sort((a, b) => a.id - b.id);
        },
        mode: x.mode,
        globalMin: x.globalMin,
        cpu: [...x.cpu].map(([pasid, key]) => ({ pasid, ioasid: x.kpasids.get(key)?.ioasid ?? 0 })),
      };
    },
    faults() {
      const st = get();
      const info = (id: number, fdOpen: boolean, q: FaultQueue): FaultQueueInfo => ({
        id,
        fdOpen,
        queued: q.deliver.map((g) => g.requests.length),
        awaiting: [...q.response].map(([cookie, a]) => ({
          cookie,
          readStep: a.readStep,
          first: a.first,
          table: a.group.table,
        })),
      });
      if (st.profile === 'rfc') return [info(0, true, st.rfcFaults)];
      const out: FaultQueueInfo[] = [];
      for (const o of st.objects.values()) if (o.kind === 'fault') out.push(info(o.id, o.fdOpen, o.queue));
      return out.sort((a, b) => a.id - b.id);
    },
    container() {
      const ct = get().container;
      return { groups: ct.groups, iommuType: ct.iommuType };
    },
  };
}

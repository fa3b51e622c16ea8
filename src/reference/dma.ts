/**
 * DMA as the uAPI state implies it (chapter REF): which user memory a device reaches at an IOVA, or the fault it
 * gets. The hardware model (src/hw-reference) must agree with this for every probe.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { PROT } from './core/areas.ts';
import type { StepContext } from './core/context.ts';
import { ModelLimit } from './dev.ts';
import { markDirty } from './dirty.ts';
import { rfcDma } from './pasid.ts';
import type { DeviceDmaCmd } from './resolved.ts';
import type { Space, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** The address space a device's request without PASID is translated by, or undefined when it is blocked. */
function ridSpace(st: State, dev: number): Space | undefined {
  const d = st.devices[dev]!;
  switch (st.profile) {
    case 'iommufd': {
      // An emulated device reaches its ACCESS's IOAS through its driver (iommufd_access_rw), no IOMMU involved.
      if (st.platform.devices[dev]!.kind === 'mediated') return st.get(d.access ?? 0, 'ioas')?.space;
      if (d.hwpt === 0) return undefined;
      const h = st.objects.get(d.hwpt);
      if (h?.kind === 'hwpt-nested') throw new ModelLimit('DMA through a nested HWPT needs the hardware model');
      return h?.kind === 'hwpt-paging' ? st.get(h.ioas, 'ioas')?.space : undefined;
    }
    case 'vfio-type1': {
      const ct = st.container;
      return ct.iommuType !== 0 && ct.groups.includes(st.platform.devices[dev]!.group) ? ct.space : undefined;
    }
    case 'rfc':
      // rfc DMA is routed by rfcDma (pasid.ts): RID or PASID, then the IOASID's format (nesting.ts).
      return undefined;
  }
}

/** DEVICE_DMA: the user memory reached, or a fault with its reason. */
export function deviceDma(st: State, ctx: StepContext, c: DeviceDmaCmd): Outcome {
  if (st.platform.devices[c.dev] === undefined || c.length === 0n || c.iova + c.length - 1n > U64_MAX)
    return ctx.reject('REF-001', 'EINVAL');
  if (st.profile === 'rfc') {
    ctx.hit('REF-001');
    return rfcDma(st, ctx, c);
  }
  ctx.hit('REF-001');
  if (c.pasid !== undefined) {
    // PASID-033: a 6.12 iommufd attach installs only the RID's translation and no kernel driver of the model attaches
    // a PASID, so PASID-tagged DMA finds no translation, whatever the RID is attached to (a nested HWPT included).
    // vfio-type1 containers translate requests without PASID only.
    if (st.profile === 'iommufd') ctx.hit('PASID-033');
    return { ok: false, errno: 'fault', out: { reason: 'blocked' } };
  }
  const space = ridSpace(st, c.dev);
  if (space === undefined) return { ok: false, errno: 'fault', out: { reason: 'blocked' } };
  const out = walkSpace(ctx, space, c.iova, c.length, c.write);
  // A write through a paging HWPT that tracks dirty pages marks them (dirty.ts).
  if (out.ok && c.write && st.profile === 'iommufd') markDirty(st, c.dev, c.iova, c.length);
  return out;
}

/** The user memory a DMA of `[iova, iova + length)` reaches through the mappings of `space`, or its fault. */
export function walkSpace(ctx: StepContext, space: Space, iova: bigint, length: bigint, write: boolean): Outcome {
  const last = iova + length - 1n;
  const first = space.areas.containing(iova);
  if (first === undefined) return { ok: false, errno: 'fault', out: { reason: 'not-present' } };
  for (let a = first; ;) {
    if ((a.prot & (write ? PROT.WRITE : PROT.READ)) === 0)
      return { ok: false, errno: 'fault', out: { reason: write ? 'write-denied' : 'read-denied' } };
    if (a.last >= last) break;
    const next = space.areas.containing(a.last + 1n);
    if (next === undefined) return { ok: false, errno: 'fault', out: { reason: 'not-present' } };
    a = next;
  }
  return ctx.ok({ buf: first.buf, off: first.off + (iova - first.iova) });
}

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
import type { DeviceDmaCmd } from './resolved.ts';
import type { Space, State } from './state.ts';
import { U64_MAX } from './u64.ts';

/** The address space a device's request without PASID is translated by, or undefined when it is blocked. */
function ridSpace(st: State, dev: number): Space | undefined {
  const d = st.devices[dev]!;
  switch (st.profile) {
    case 'iommufd': {
      if (d.hwpt === 0) return undefined;
      const h = st.objects.get(d.hwpt);
      if (h?.kind === 'hwpt-nested') throw new ModelLimit('DMA through a nested HWPT needs the hardware model');
      return h?.kind === 'hwpt-paging' ? st.get(h.ioas, 'ioas')?.space : undefined;
    }
    case 'vfio-type1': {
      const ct = st.container;
      return ct.iommuType !== 0 && ct.groups.includes(st.platform.devices[dev]!.group) ? ct.space : undefined;
    }
    case 'rfc': {
      const rid = d.attachments.filter((a) => a.pasid === undefined).map((a) => st.get(a.ioasid, 'ioasid')!);
      // The leaf of the RID's chain translates (a child's output goes through its parent).
      const leaf = rid.find((io) => !rid.some((other) => other.parent === io.id));
      if (leaf === undefined) return undefined;
      if (leaf.format !== 'kernel' || leaf.parent !== 0)
        throw new ModelLimit('DMA through a nested IOASID needs the hardware model');
      return leaf.space;
    }
  }
}

/** DEVICE_DMA: the user memory reached, or a fault with its reason. */
export function deviceDma(st: State, ctx: StepContext, c: DeviceDmaCmd): Outcome {
  if (st.platform.devices[c.dev] === undefined || c.length === 0n || c.iova + c.length - 1n > U64_MAX)
    return ctx.reject('REF-001', 'EINVAL');
  if (c.pasid !== undefined) throw new ModelLimit('DMA with a PASID needs the PASID model');
  ctx.hit('REF-001');
  const space = ridSpace(st, c.dev);
  if (space === undefined) return { ok: false, errno: 'fault', out: { reason: 'blocked' } };
  const last = c.iova + c.length - 1n;
  const first = space.areas.containing(c.iova);
  if (first === undefined) return { ok: false, errno: 'fault', out: { reason: 'not-present' } };
  for (let a = first; ;) {
    if ((a.prot & (c.write ? PROT.WRITE : PROT.READ)) === 0)
      return { ok: false, errno: 'fault', out: { reason: c.write ? 'write-denied' : 'read-denied' } };
    if (a.last >= last) break;
    const next = space.areas.containing(a.last + 1n);
    if (next === undefined) return { ok: false, errno: 'fault', out: { reason: 'not-present' } };
    a = next;
  }
  return ctx.ok({ buf: first.buf, off: first.off + (c.iova - first.iova) });
}

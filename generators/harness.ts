/**
 * Harness steps, in every profile: DEVICE_DMA probes (feature `dma-probe`) that make the translations the uAPI
 * state implies observable — inside areas, at their edges, through devices that are not attached.
 *
 * @module
 */
import type { Command } from '../src/reference/commands.ts';
import { DMA_VARIANTS, dmaRange } from './space.ts';
import type { RealiseCtx, TemplateDef } from './template.ts';

/** The address space a device's requests without PASID are translated by, as far as the view tells. */
function deviceSpace(ctx: RealiseCtx, dev: number): number | undefined {
  const d = ctx.view.device(dev);
  switch (ctx.profile) {
    case 'vfio-type1': {
      const ct = ctx.view.container();
      return ct.iommuType !== 0 && ct.groups.includes(ctx.platform.devices[dev]!.group) ? 0 : undefined;
    }
    case 'iommufd': {
      const pt = d.attachedTo[0]?.pt;
      const h = ctx.live('hwpt-paging').find((o) => o.id === pt);
      return h?.parent;
    }
    case 'rfc': {
      const rid = d.attachedTo.filter((a) => a.pasid === undefined).map((a) => a.pt);
      return rid.find((id) => ctx.view.addressSpaces().includes(id));
    }
  }
}

/** Whether a device's DMA can be probed: its RID translation is not a nested one (the uAPI model leaves those to the hardware model). */
function probeable(ctx: RealiseCtx, dev: number): boolean {
  const d = ctx.view.device(dev);
  if (ctx.profile === 'iommufd') return !ctx.live('hwpt-nested').some((o) => d.attachedTo.some((a) => a.pt === o.id));
  if (ctx.profile === 'rfc')
    return !d.attachedTo.some((a) =>
      ctx.live('ioasid').some((o) => o.id === a.pt && o.parent !== undefined && o.parent !== 0),
    );
  return true;
}

const dma: TemplateDef = {
  kind: 'harness.dma',
  op: 'DEVICE_DMA',
  profiles: ['rfc', 'iommufd', 'vfio-type1'],
  features: ['dma-probe'],
  weight: 8,
  picks: 6,
  variants: DMA_VARIANTS,
  realise(ctx, p, v): Command | undefined {
    const devs = ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' && probeable(ctx, i) ? [i] : []));
    if (devs.length === 0) return undefined;
    const translated = devs.filter((i) => deviceSpace(ctx, i) !== undefined);
    // Mostly a device with a translation; sometimes one without (its DMA is blocked).
    if (translated.length === 0 && !p.chance(0, 0.2)) return undefined;
    const dev = translated.length > 0 && !p.chance(0, 0.1) ? p.of(1, translated) : p.of(1, devs);
    const r = dmaRange(ctx, p, 2, deviceSpace(ctx, dev), v);
    return { op: 'DEVICE_DMA', dev, iova: r.iova, length: r.length, write: p.chance(5, 0.4) };
  },
};

/** The harness templates. */
export const HARNESS_TEMPLATES: readonly TemplateDef[] = [dma];

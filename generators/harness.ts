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
  picks: 7,
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

/** rfc: devices whose RID routes to a user-managed (pgtable or pasid-table) IOASID: their page groups are queued. */
function rfcFaulting(ctx: RealiseCtx): number[] {
  const user = new Set(
    ctx
      .live('ioasid')
      .filter((o) => o.format !== 'kernel')
      .map((o) => o.id),
  );
  return ctx.platform.devices.flatMap((d, i) =>
    d.kind === 'physical' && d.pri && ctx.view.device(i).attachedTo.some((a) => a.pasid === undefined && user.has(a.pt))
      ? [i]
      : [],
  );
}

const rfcPageRequest: TemplateDef = {
  kind: 'harness.rfc-page-request',
  op: 'DEVICE_PAGE_REQUEST',
  profiles: ['rfc'],
  features: ['iopf'],
  weight: 4,
  picks: 6,
  variants: [{ name: 'no-handler' }, { name: 'pasid' }],
  realise(ctx, p, v): Command | undefined {
    const pri = ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' && d.pri ? [i] : []));
    if (pri.length === 0) return undefined;
    const faulting = rfcFaulting(ctx);
    // Mostly a device whose faults reach the user; else any (kernel-managed: fixed or INVALID by the kernel).
    const dev = faulting.length > 0 && v === '' && !p.chance(0, 0.2) ? p.of(1, faulting) : p.of(1, pri);
    const c: Command = {
      op: 'DEVICE_PAGE_REQUEST',
      dev,
      addr: BigInt(p.int(2, 1 << 20)) * 0x1000n,
      grpid: p.int(3, 4),
      perm: p.chance(4, 0.5) ? 1 : 3,
      last: p.chance(5, 0.8),
    };
    return v === 'pasid' ? { ...c, pasid: 1 + p.int(2, 15) } : c;
  },
};

const rfcFaultRead: TemplateDef = {
  kind: 'harness.rfc-fault-read',
  op: 'IOASID_FAULT_READ',
  profiles: ['rfc'],
  features: ['iopf'],
  weight: 3,
  picks: 2,
  variants: [{ name: 'count-small' }],
  realise(ctx, p, v): Command | undefined {
    const q = ctx.view.faults()[0];
    if (q === undefined || (q.queued.length === 0 && v === '' && !p.chance(0, 0.2))) return undefined;
    const first = q.queued[0] ?? 1;
    // One group per read mostly, so each group's cookie is a read's `cookie` output.
    const count = v === 'count-small' ? first - 1 : p.chance(1, 0.2) ? first + (q.queued[1] ?? 0) : first;
    return { op: 'IOASID_FAULT_READ', count };
  },
};

const rfcFaultRespond: TemplateDef = {
  kind: 'harness.rfc-fault-respond',
  op: 'IOASID_FAULT_RESPOND',
  profiles: ['rfc'],
  features: ['iopf'],
  weight: 3,
  picks: 3,
  variants: [{ name: 'code-bad' }, { name: 'cookie-unknown' }, { name: 'other-ioasid' }],
  realise(ctx, p, v): Command | undefined {
    const q = ctx.view.faults()[0];
    if (q === undefined || q.awaiting.length === 0) return undefined;
    const a = p.of(0, q.awaiting);
    const cookie = a.first ? { ref: a.readStep, field: 'cookie' } : a.cookie;
    const others = ctx.live('ioasid').filter((o) => o.id !== a.table);
    const ioasid = v === 'other-ioasid' && others.length > 0 ? ctx.ref(p.of(1, others).id) : ctx.ref(a.table);
    return {
      op: 'IOASID_FAULT_RESPOND',
      ioasid,
      cookie: v === 'cookie-unknown' ? 0x7fff_0000 : cookie,
      code: v === 'code-bad' ? 3 : p.int(2, 3),
    };
  },
};

/** The harness templates. */
/** Whether anything besides the fd holds its context: a bound device, a group in the container, an open fault fd. */
function contextHeld(ctx: RealiseCtx): boolean {
  if (ctx.platform.devices.some((_, i) => ctx.view.device(i).bound)) return true;
  if (ctx.profile === 'vfio-type1') return ctx.view.container().groups.length > 0;
  return ctx.profile === 'iommufd' && ctx.view.faults().some((q) => q.fdOpen);
}

/**
 * FD_CLOSE (feature `fd-close`): the user closes the fd alone (FD-020, FD-021, DEV-018, FD-036). Mostly when nothing
 * else holds the context, so that it is released at once and the trace goes on with a fresh fd; one time in ten
 * while devices, groups or fault fds hold it, so that its ioctls fail with EBADF until the holders go.
 */
const fdClose: TemplateDef = {
  kind: 'harness.fd-close',
  op: 'FD_CLOSE',
  profiles: ['rfc', 'iommufd', 'vfio-type1'],
  features: ['fd-close'],
  weight: 0.3,
  picks: 1,
  variants: [],
  realise: (ctx, p) => (contextHeld(ctx) && !p.chance(0, 0.1) ? undefined : { op: 'FD_CLOSE' }),
};

/** The harness templates of every profile. */
export const HARNESS_TEMPLATES: readonly TemplateDef[] = [dma, rfcPageRequest, rfcFaultRead, rfcFaultRespond, fdClose];

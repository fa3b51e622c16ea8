/**
 * Templates of the `rfc` profile (the /dev/ioasid design): CHECK_EXTENSION, ALLOC / FREE, GET_INFO, MAP / UNMAP on
 * kernel-managed IOASIDs, and device bind / unbind / attach / detach.
 *
 * @module
 */
import { RFC_EXT, RFC_MAP, RFC_UNMAP, type Command } from '../src/reference/commands.ts';
import { MAP_VARIANTS, UNMAP_VARIANTS, mapAdversarial, unmapAdversarial } from './space.ts';
import { ID_VARIANTS, adversarialId, pickLive, type Picks, type RealiseCtx, type TemplateDef } from './template.ts';

const ALLOC: Command = { op: 'IOASID_ALLOC' };

/** Devices the generators use: physical ones, and mediated ones with the `mdev` feature. */
function devices(ctx: RealiseCtx): number[] {
  return ctx.platform.devices.flatMap((d, i) => (d.kind === 'physical' || ctx.features.has('mdev') ? [i] : []));
}

function unboundDevice(ctx: RealiseCtx, p: Picks, i: number): number | undefined {
  const xs = devices(ctx).filter((d) => !ctx.view.device(d).bound);
  return xs.length > 0 ? p.of(i, xs) : undefined;
}

function boundDevice(ctx: RealiseCtx, p: Picks, i: number): number | undefined {
  const xs = devices(ctx).filter((d) => ctx.view.device(d).bound);
  return xs.length > 0 ? p.of(i, xs) : undefined;
}

/** Whether device `dev` is attached without PASID to IOASID `id`. */
function attachedTo(ctx: RealiseCtx, dev: number, id: number): boolean {
  return ctx.view.device(dev).attachedTo.some((a) => a.pt === id && a.pasid === undefined);
}

/**
 * What IOASID `id` still needs to be ready (PROFILES.md, readiness: a device attached, and no IOMMU group attached
 * only in part): the devices to attach, or an empty list when it is ready.
 */
function missingForReady(ctx: RealiseCtx, id: number): number[] {
  const devs = ctx.platform.devices;
  const attached = devs.flatMap((_d, i) => (attachedTo(ctx, i, id) ? [i] : []));
  if (attached.length === 0) return devs.flatMap((d, i) => (d.kind === 'physical' ? [i] : []));
  const groups = new Set(attached.map((i) => devs[i]!.group));
  return devs.flatMap((d, i) => (d.kind === 'physical' && groups.has(d.group) && !attachedTo(ctx, i, id) ? [i] : []));
}

/**
 * The IOASID a MAP/UNMAP/GET_INFO acts on, or the step that makes one usable: an IOASID accepts those commands only
 * once it is ready, so a well-formed template mostly picks a ready IOASID, or realises as the bind or attach that
 * brings one closer to ready.
 */
function readyIoasid(ctx: RealiseCtx, p: Picks, i: number, v: string): { id: number } | { prep: Command } {
  const all = ctx.live('ioasid').filter((o) => o.format === undefined || o.format === 'kernel');
  if (all.length === 0) return { prep: ALLOC };
  const ready = all.filter((o) => missingForReady(ctx, o.id).length === 0);
  if (v !== '' || p.chance(i + 1, 0.1)) return { id: p.of(i, all).id };
  if (ready.length > 0 && !p.chance(i + 2, 0.2)) return { id: p.of(i, ready).id };
  const io = p.of(i, all);
  for (const dev of missingForReady(ctx, io.id)) {
    const d = ctx.view.device(dev);
    if (!d.bound) return { prep: { op: 'VFIO_BIND_IOASID_FD', dev } };
    // A device routes its RID to one translation: attach only a device that is attached nowhere yet.
    if (d.attachedTo.every((a) => a.pasid !== undefined))
      return { prep: { op: 'VFIO_ATTACH_IOASID', dev, ioasid: ctx.ref(io.id) } };
  }
  return { id: io.id };
}

const checkExtension: TemplateDef = {
  kind: 'rfc.check-extension',
  op: 'IOASID_CHECK_EXTENSION',
  profiles: ['rfc'],
  weight: 2,
  picks: 1,
  variants: [{ name: 'extension-unknown' }],
  realise: (_ctx, p, v) => ({
    op: 'IOASID_CHECK_EXTENSION',
    extension: v === 'extension-unknown' ? p.of(0, [0, 9, 99]) : p.of(0, Object.values(RFC_EXT)),
  }),
};

const alloc: TemplateDef = {
  kind: 'rfc.alloc',
  op: 'IOASID_ALLOC',
  profiles: ['rfc'],
  weight: 5,
  picks: 0,
  variants: [{ name: 'flags-unknown', features: ['ioctl-abi'] }],
  realise: (_ctx, _p, v) => (v === 'flags-unknown' ? { op: 'IOASID_ALLOC', flags: 1 } : ALLOC),
};

const free: TemplateDef = {
  kind: 'rfc.free',
  op: 'IOASID_FREE',
  profiles: ['rfc'],
  weight: 3,
  picks: 1,
  variants: ID_VARIANTS,
  realise(ctx, p, v) {
    const bad = adversarialId(ctx, p, 0, v, ['ioasid']);
    if (bad !== undefined) return { op: 'IOASID_FREE', ioasid: bad };
    const io = pickLive(ctx, p, 0, 'ioasid');
    return io === undefined ? undefined : { op: 'IOASID_FREE', ioasid: ctx.ref(io.id) };
  },
};

const getInfo: TemplateDef = {
  kind: 'rfc.get-info',
  op: 'IOASID_GET_INFO',
  profiles: ['rfc'],
  weight: 2,
  picks: 4,
  variants: ID_VARIANTS,
  realise(ctx, p, v) {
    const bad = adversarialId(ctx, p, 0, v, ['ioasid']);
    if (bad !== undefined) return { op: 'IOASID_GET_INFO', ioasid: bad };
    const r = readyIoasid(ctx, p, 0, v);
    return 'prep' in r ? r.prep : { op: 'IOASID_GET_INFO', ioasid: ctx.ref(r.id) };
  },
};

const map: TemplateDef = {
  kind: 'rfc.map',
  op: 'IOASID_MAP_DMA',
  profiles: ['rfc'],
  weight: 20,
  picks: 12,
  variants: [
    ...MAP_VARIANTS,
    ...ID_VARIANTS,
    { name: 'flags-none' },
    { name: 'flags-unknown', features: ['ioctl-abi'] },
  ],
  realise(ctx, p, v) {
    const r = readyIoasid(ctx, p, 0, v);
    if ('prep' in r) return r.prep;
    const m = mapAdversarial(ctx, p, 3, r.id, v);
    let flags = [RFC_MAP.READ | RFC_MAP.WRITE, RFC_MAP.READ, RFC_MAP.WRITE][p.int(10, 6) % 3]!;
    if (v === 'flags-none') flags = 0;
    if (v === 'flags-unknown') flags |= 0x100;
    const id = adversarialId(ctx, p, 11, v, ['ioasid']) ?? ctx.ref(r.id);
    return { op: 'IOASID_MAP_DMA', ioasid: id, flags, vaddr: m.ptr, iova: m.iova, size: m.length };
  },
};

const unmap: TemplateDef = {
  kind: 'rfc.unmap',
  op: 'IOASID_UNMAP_DMA',
  profiles: ['rfc'],
  weight: 14,
  picks: 8,
  variants: [
    ...UNMAP_VARIANTS,
    { name: 'all-with-range' },
    ...ID_VARIANTS,
    { name: 'flags-unknown', features: ['ioctl-abi'] },
  ],
  realise(ctx, p, v) {
    const r = readyIoasid(ctx, p, 0, v);
    if ('prep' in r) return r.prep;
    const u = unmapAdversarial(ctx, p, 3, r.id, v);
    const id = adversarialId(ctx, p, 7, v, ['ioasid']) ?? ctx.ref(r.id);
    let c: Command = u.all
      ? { op: 'IOASID_UNMAP_DMA', ioasid: id, flags: RFC_UNMAP.ALL, iova: 0n, size: 0n }
      : { op: 'IOASID_UNMAP_DMA', ioasid: id, flags: 0, iova: u.iova, size: u.length };
    if (v === 'all-with-range') c = { ...c, flags: RFC_UNMAP.ALL, size: u.all ? 0x1000n : u.length };
    if (v === 'flags-unknown') c = { ...c, flags: c.flags | 0x100 };
    return c;
  },
};

const bind: TemplateDef = {
  kind: 'rfc.bind',
  op: 'VFIO_BIND_IOASID_FD',
  profiles: ['rfc'],
  weight: 4,
  picks: 1,
  variants: [{ name: 'already-bound' }],
  realise(ctx, p, v) {
    const dev = v === 'already-bound' ? (boundDevice(ctx, p, 0) ?? unboundDevice(ctx, p, 0)) : unboundDevice(ctx, p, 0);
    return dev === undefined ? undefined : { op: 'VFIO_BIND_IOASID_FD', dev };
  },
};

const unbind: TemplateDef = {
  kind: 'rfc.unbind',
  op: 'VFIO_UNBIND_IOASID_FD',
  profiles: ['rfc'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'unbound' }],
  realise(ctx, p, v) {
    const dev = v === 'unbound' ? unboundDevice(ctx, p, 0) : boundDevice(ctx, p, 0);
    return dev === undefined ? undefined : { op: 'VFIO_UNBIND_IOASID_FD', dev };
  },
};

const attach: TemplateDef = {
  kind: 'rfc.attach',
  op: 'VFIO_ATTACH_IOASID',
  profiles: ['rfc'],
  weight: 6,
  picks: 4,
  variants: [{ name: 'unbound' }, { name: 'again' }, ...ID_VARIANTS, { name: 'pasid', features: ['pasid'] }],
  realise(ctx, p, v) {
    const io = pickLive(ctx, p, 1, 'ioasid');
    if (io === undefined) return ALLOC;
    let dev: number | undefined;
    if (v === 'unbound') dev = unboundDevice(ctx, p, 0);
    else if (v !== '') dev = boundDevice(ctx, p, 0);
    else {
      // A well-formed attach: a bound device whose RID is attached nowhere yet; else bind one; else detach one.
      const free = devices(ctx).filter(
        (d) => ctx.view.device(d).bound && ctx.view.device(d).attachedTo.every((a) => a.pasid !== undefined),
      );
      if (free.length > 0) dev = p.of(0, free);
      else {
        const unbound = unboundDevice(ctx, p, 0);
        if (unbound !== undefined) return { op: 'VFIO_BIND_IOASID_FD', dev: unbound };
        const att = devices(ctx).flatMap((d) =>
          ctx.view
            .device(d)
            .attachedTo.filter((a) => a.pasid === undefined)
            .map((a) => ({ d, pt: a.pt })),
        );
        if (att.length === 0) return undefined;
        const a = p.of(0, att);
        return { op: 'VFIO_DETACH_IOASID', dev: a.d, ioasid: ctx.ref(a.pt) };
      }
    }
    if (dev === undefined) return undefined;
    let target = ctx.ref(io.id);
    if (v === 'again') {
      const cur = ctx.view.device(dev).attachedTo.find((a) => a.pasid === undefined);
      if (cur !== undefined) target = ctx.ref(cur.pt);
    }
    const id = adversarialId(ctx, p, 2, v, ['ioasid']) ?? target;
    const c: Command = { op: 'VFIO_ATTACH_IOASID', dev, ioasid: id };
    return v === 'pasid' ? { ...c, pasid: 1 + p.int(3, 16) } : c;
  },
};

const detach: TemplateDef = {
  kind: 'rfc.detach',
  op: 'VFIO_DETACH_IOASID',
  profiles: ['rfc'],
  weight: 2,
  picks: 2,
  variants: [{ name: 'not-attached' }, ...ID_VARIANTS],
  realise(ctx, p, v) {
    const attached = devices(ctx).flatMap((d) =>
      ctx.view.device(d).attachedTo.map((a) => ({ dev: d, pt: a.pt, pasid: a.pasid })),
    );
    if (v === 'not-attached' || v.startsWith('id-')) {
      const dev = boundDevice(ctx, p, 0);
      const io = pickLive(ctx, p, 1, 'ioasid');
      if (dev === undefined || io === undefined) return undefined;
      return { op: 'VFIO_DETACH_IOASID', dev, ioasid: adversarialId(ctx, p, 1, v, ['ioasid']) ?? ctx.ref(io.id) };
    }
    if (attached.length === 0) return undefined;
    const a = p.of(0, attached);
    const c: Command = { op: 'VFIO_DETACH_IOASID', dev: a.dev, ioasid: ctx.ref(a.pt) };
    return a.pasid === undefined ? c : { ...c, pasid: a.pasid };
  },
};

/** The templates of the rfc profile. */
export const RFC_TEMPLATES: readonly TemplateDef[] = [
  checkExtension,
  alloc,
  free,
  getInfo,
  map,
  unmap,
  bind,
  unbind,
  attach,
  detach,
];

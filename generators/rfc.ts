/**
 * Templates of the `rfc` profile (the /dev/ioasid design): CHECK_EXTENSION, ALLOC / FREE, GET_INFO, MAP / UNMAP on
 * kernel-managed IOASIDs, and device bind / unbind / attach / detach.
 *
 * @module
 */
import {
  RFC_EXT,
  RFC_HWID,
  RFC_INV,
  RFC_MAP,
  RFC_UNMAP,
  type Command,
  type ParentIova,
} from '../src/reference/commands.ts';
import type { UserPtr } from '../src/reference/args.ts';
import { MAP_VARIANTS, UNMAP_VARIANTS, mapAdversarial, unmapAdversarial, type MapArgs } from './space.ts';
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
  // Mediated devices are not members of their parent's IOMMU group.
  const attached = devs.flatMap((d, i) => (d.kind === 'physical' && attachedTo(ctx, i, id) ? [i] : []));
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
  const ready = all.filter((o) => isReady(ctx, o.id));
  if (v !== '' || p.chance(i + 1, 0.1)) return { id: p.of(i, all).id };
  if (ready.length > 0 && !p.chance(i + 2, 0.2)) return { id: p.of(i, ready).id };
  const io = p.of(i, all);
  if ((io.parent ?? 0) !== 0) {
    // A child is reached through its parent (NEST-003).
    if (isReady(ctx, io.id)) return { id: io.id };
    const prep = readyChildPrep(ctx, p, i + 3, io.id, io.parent!);
    return prep === undefined ? { id: io.id } : { prep };
  }
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
  weight: 5,
  picks: 4,
  variants: ID_VARIANTS,
  realise(ctx, p, v) {
    const bad = adversarialId(ctx, p, 0, v, ['ioasid']);
    if (bad !== undefined) return { op: 'IOASID_FREE', ioasid: bad };
    const io = pickLive(ctx, p, 0, 'ioasid');
    if (io === undefined) return undefined;
    // Mostly an IOASID that can go (no child, no device), or a teardown: detach (children first), then free.
    const all = ctx.live('ioasid');
    const parents = new Set(all.map((o) => o.parent ?? 0));
    const used = new Set(devices(ctx).flatMap((d) => ctx.view.device(d).attachedTo.map((a) => a.pt)));
    const idle = all.filter((o) => !parents.has(o.id) && !used.has(o.id));
    if (idle.length > 0 && p.chance(2, 0.5)) return { op: 'IOASID_FREE', ioasid: ctx.ref(p.of(3, idle).id) };
    if (p.chance(1, 0.6)) {
      const kids = ctx.live('ioasid').filter((o) => o.parent === io.id);
      const target = kids.length > 0 ? kids[0]! : io;
      for (const dev of devices(ctx)) {
        const a = ctx.view.device(dev).attachedTo.find((x) => x.pt === target.id);
        if (a !== undefined) {
          const c: Command = { op: 'VFIO_DETACH_IOASID', dev, ioasid: ctx.ref(target.id) };
          return a.pasid === undefined ? c : { ...c, pasid: a.pasid };
        }
      }
      return { op: 'IOASID_FREE', ioasid: ctx.ref(target.id) };
    }
    return { op: 'IOASID_FREE', ioasid: ctx.ref(io.id) };
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
    if ('prep' in r) return r.prep;
    // Now and then a permitted-range array of 0..2 entries, often too small (INFO-012).
    const c: Command = { op: 'IOASID_GET_INFO', ioasid: ctx.ref(r.id) };
    return p.chance(3, 0.25) ? { ...c, num_ranges: p.int(3, 3) } : c;
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
    { name: 'parent-unmapped', features: ['nesting-sw'] },
    { name: 'user-managed', features: ['nesting-hw'] },
    { name: 'flags-none' },
    { name: 'flags-unknown', features: ['ioctl-abi'] },
  ],
  realise(ctx, p, v) {
    if (v === 'user-managed') {
      // FMT-002 / FMT-003: a well-formed MAP on a ready user-managed (pgtable, pasid-table) IOASID, or the step
      // towards one; its placement is drawn in the parent's space.
      const formats = [...new Set(offeredKinds(ctx).map((k) => k.format))].filter((f) => f !== 'kernel');
      const u = formats.length > 0 ? readyChild(ctx, p, 0, p.of(1, formats)) : undefined;
      if (u !== undefined && 'prep' in u) return u.prep;
      const parent = u === undefined ? undefined : ctx.live('ioasid').find((o) => o.id === u.id)?.parent;
      if (u !== undefined && parent !== undefined) {
        const m = mapAdversarial(ctx, p, 3, parent, '');
        const vaddr = registeredVaddr(ctx, m, '') ?? { vaddr: m.ptr, length: m.length };
        const flags = RFC_MAP.READ | RFC_MAP.WRITE;
        return {
          op: 'IOASID_MAP_DMA',
          ioasid: ctx.ref(u.id),
          flags,
          vaddr: vaddr.vaddr,
          iova: m.iova,
          size: vaddr.length,
        };
      }
    }
    const r = readyIoasid(ctx, p, 0, v);
    if ('prep' in r) return r.prep;
    const m = mapAdversarial(ctx, p, 3, r.id, v);
    let flags = [RFC_MAP.READ | RFC_MAP.WRITE, RFC_MAP.READ, RFC_MAP.WRITE][p.int(10, 6) % 3]!;
    if (v === 'flags-none') flags = 0;
    if (v === 'flags-unknown') flags |= 0x100;
    const id = adversarialId(ctx, p, 11, v, ['ioasid']) ?? ctx.ref(r.id);
    // A software-nesting child maps parent IOVAs (NEST-007); registered memory once any is registered (MEM-003).
    const vaddr = childVaddr(ctx, p, r.id, m, v) ?? registeredVaddr(ctx, m, v) ?? { vaddr: m.ptr, length: m.length };
    return { op: 'IOASID_MAP_DMA', ioasid: id, flags, vaddr: vaddr.vaddr, iova: m.iova, size: vaddr.length };
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

// ------------------------------------------------------------------------------------------------ MEM, NEST, BIND,
// INV, PASID: the templates of the commands beyond type1-equivalent passthrough.

const PAGE = 0x1000n;

/** An area of address space `as` near a drawn IOVA, in O(log n) (not a list of every area), or undefined. */
function someArea(ctx: RealiseCtx, p: Picks, i: number, as: number) {
  return ctx.view.areaAtOrAfter(as, p.big(i, 1n << 48n));
}

/** The user memory a well-formed registration takes: a page-aligned chunk of a buffer that overlaps none. */
function freeRegistration(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
): { buf: number; off: bigint; size: bigint } | undefined {
  const regs = ctx.view.rfc().registrations;
  const bufs = ctx.platform.buffers.flatMap((b, k) => (regs.some((r) => r.buf === k) ? [] : [{ k, size: b.size }]));
  if (bufs.length === 0) return undefined;
  const b = p.of(i, bufs);
  // Mostly the whole buffer, so that later MAPs of it are registered memory.
  if (!p.chance(i + 1, 0.3)) return { buf: b.k, off: 0n, size: b.size };
  const size = PAGE * BigInt(1 + p.int(i + 2, 64));
  return size <= b.size ? { buf: b.k, off: 0n, size } : { buf: b.k, off: 0n, size: b.size };
}

const register: TemplateDef = {
  kind: 'rfc.register-memory',
  op: 'IOASID_REGISTER_MEMORY',
  profiles: ['rfc'],
  features: ['prereg'],
  weight: 2,
  picks: 4,
  variants: [
    { name: 'overlap' },
    { name: 'unaligned' },
    { name: 'size-zero' },
    { name: 'va-unmapped' },
    { name: 'va-past-end' },
  ],
  realise(ctx, p, v) {
    const regs = ctx.view.rfc().registrations;
    if (v === 'overlap' && regs.length > 0) {
      const r = p.of(0, regs);
      return { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: r.buf, off: r.off }, size: PAGE };
    }
    if (v === 'unaligned') return { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: 1, off: 0x800n }, size: PAGE };
    if (v === 'size-zero') return { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: 1, off: 0n }, size: 0n };
    if (v === 'va-unmapped') return { op: 'IOASID_REGISTER_MEMORY', vaddr: { bad: 'unmapped' }, size: PAGE };
    if (v === 'va-past-end') {
      const k = p.int(0, ctx.platform.buffers.length);
      return { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: k, off: ctx.platform.buffers[k]!.size }, size: PAGE };
    }
    const r = freeRegistration(ctx, p, 1);
    return r === undefined
      ? undefined
      : { op: 'IOASID_REGISTER_MEMORY', vaddr: { buf: r.buf, off: r.off }, size: r.size };
  },
};

const unregister: TemplateDef = {
  kind: 'rfc.unregister-memory',
  op: 'IOASID_UNREGISTER_MEMORY',
  profiles: ['rfc'],
  features: ['prereg'],
  weight: 1,
  picks: 2,
  variants: [{ name: 'partial' }, { name: 'never' }],
  realise(ctx, p, v) {
    const regs = ctx.view.rfc().registrations;
    if (v === 'never' || regs.length === 0)
      return { op: 'IOASID_UNREGISTER_MEMORY', vaddr: { buf: 1, off: 0x10_0000n }, size: PAGE };
    const r = p.of(0, regs);
    const size = v === 'partial' && r.size > PAGE ? r.size - PAGE : r.size;
    return { op: 'IOASID_UNREGISTER_MEMORY', vaddr: { buf: r.buf, off: r.off }, size };
  },
};

/** The nesting kinds the implementation offers, with the table format a well-formed request names. */
function offeredKinds(ctx: RealiseCtx): { format: string; table_format?: string }[] {
  const io = ctx.platform.iommu;
  const out: { format: string; table_format?: string }[] = [];
  if (ctx.features.has('nesting-sw') && io.nestingSw) out.push({ format: 'kernel' });
  if (ctx.features.has('nesting-hw') && io.nestingHw)
    for (const f of io.pgtableFormats) out.push({ format: 'pgtable', table_format: f });
  if (ctx.features.has('pasid-table-user'))
    for (const f of io.pasidTableFormats) out.push({ format: 'pasid-table', table_format: f });
  return out;
}

/** Root IOASIDs (made by IOASID_ALLOC): the parents a nesting may have. */
function roots(ctx: RealiseCtx) {
  return ctx.live('ioasid').filter((o) => (o.parent ?? 0) === 0);
}

const createNesting: TemplateDef = {
  kind: 'rfc.create-nesting',
  op: 'IOASID_CREATE_NESTING',
  profiles: ['rfc'],
  weight: 4,
  picks: 3,
  variants: [
    { name: 'parent-child' },
    { name: 'kind-unknown' },
    { name: 'format-unsupported' },
    { name: 'format-missing' },
    ...ID_VARIANTS,
  ],
  realise(ctx, p, v) {
    const kinds = offeredKinds(ctx);
    const rs = roots(ctx);
    if (rs.length === 0) return ALLOC;
    let parent = ctx.ref(p.of(0, rs).id);
    if (v === 'parent-child') {
      const kids = ctx.live('ioasid').filter((o) => (o.parent ?? 0) !== 0);
      if (kids.length > 0) parent = ctx.ref(p.of(0, kids).id);
    }
    parent = adversarialId(ctx, p, 0, v, ['ioasid']) ?? parent;
    if (v === 'kind-unknown') return { op: 'IOASID_CREATE_NESTING', parent, format: 'nested' };
    if (v === 'format-unsupported')
      return { op: 'IOASID_CREATE_NESTING', parent, format: 'pgtable', table_format: 'arm-smmu-v3-s1' };
    if (v === 'format-missing') return { op: 'IOASID_CREATE_NESTING', parent, format: 'pgtable' };
    if (kinds.length === 0) return { op: 'IOASID_CREATE_NESTING', parent, format: 'kernel' };
    const k = p.of(1, kinds);
    return { op: 'IOASID_CREATE_NESTING', parent, ...k };
  },
};

/** Whether IOASID `id` is ready: a device attached by any routing, and every RID-attached group complete. */
function isReady(ctx: RealiseCtx, id: number): boolean {
  const all = ctx.platform.devices.map((_d, i) => i);
  if (!all.some((i) => ctx.view.device(i).attachedTo.some((a) => a.pt === id))) return false;
  const physical = all.some((i) => ctx.platform.devices[i]!.kind === 'physical' && attachedTo(ctx, i, id));
  return !physical || missingForReady(ctx, id).length === 0;
}

/**
 * The step that brings child IOASID `id` closer to ready: bind a device, attach it to the parent, then to the child
 * (NEST-003: a device reaches a child only through its parent); undefined when nothing can be done.
 */
function readyChildPrep(ctx: RealiseCtx, p: Picks, i: number, id: number, parent: number): Command | undefined {
  const devs = devices(ctx);
  const onParent = devs.filter(
    (d) =>
      attachedTo(ctx, d, parent) &&
      !ctx.view.device(d).attachedTo.some((a) => a.pasid === undefined && a.pt !== parent),
  );
  if (onParent.length > 0) return { op: 'VFIO_ATTACH_IOASID', dev: p.of(i, onParent), ioasid: ctx.ref(id) };
  const free = devs.filter(
    (d) => ctx.view.device(d).bound && ctx.view.device(d).attachedTo.every((a) => a.pasid !== undefined),
  );
  if (free.length > 0) return { op: 'VFIO_ATTACH_IOASID', dev: p.of(i, free), ioasid: ctx.ref(parent) };
  const unbound = devs.filter((d) => !ctx.view.device(d).bound);
  if (unbound.length > 0) return { op: 'VFIO_BIND_IOASID_FD', dev: p.of(i, unbound) };
  return undefined;
}

/** A ready IOASID of child format `format`, or the step towards one (create it, attach a device). */
function readyChild(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
  format: string,
): { id: number } | { prep: Command } | undefined {
  const kids = ctx.live('ioasid').filter((o) => o.format === format && (o.parent ?? 0) !== 0);
  const rdy = kids.filter((o) => isReady(ctx, o.id));
  if (rdy.length > 0 && !p.chance(i + 1, 0.15)) return { id: p.of(i, rdy).id };
  if (kids.length === 0) {
    const kind = offeredKinds(ctx).find((k) => k.format === format);
    const rs = roots(ctx);
    if (kind === undefined) return undefined;
    if (rs.length === 0) return { prep: ALLOC };
    return { prep: { op: 'IOASID_CREATE_NESTING', parent: ctx.ref(p.of(i, rs).id), ...kind } };
  }
  const k = p.of(i, kids);
  const prep = readyChildPrep(ctx, p, i + 2, k.id, k.parent!);
  return prep === undefined ? { id: k.id } : { prep };
}

const bindPgtable: TemplateDef = {
  kind: 'rfc.bind-pgtable',
  op: 'IOASID_BIND_PGTABLE',
  profiles: ['rfc'],
  features: ['nesting-hw'],
  weight: 4,
  picks: 5,
  variants: [{ name: 'wrong-format' }, { name: 'table-format-mismatch' }, { name: 'root-unaligned' }, ...ID_VARIANTS],
  realise(ctx, p, v) {
    const fmt = ctx.platform.iommu.pgtableFormats[0] ?? 'vtd-s1-4lvl';
    const root = PAGE * BigInt(1 + p.int(4, 4096));
    if (v === 'wrong-format') {
      const r = readyIoasid(ctx, p, 0, '');
      if ('prep' in r) return r.prep;
      return { op: 'IOASID_BIND_PGTABLE', ioasid: ctx.ref(r.id), table_format: fmt, root };
    }
    const c = readyChild(ctx, p, 0, 'pgtable');
    if (c === undefined) return undefined;
    if ('prep' in c) return c.prep;
    const declared = ctx.view.rfc().tables.find((t) => t.id === c.id)?.tableFormat ?? fmt;
    const id = adversarialId(ctx, p, 3, v, ['ioasid']) ?? ctx.ref(c.id);
    return {
      op: 'IOASID_BIND_PGTABLE',
      ioasid: id,
      table_format: v === 'table-format-mismatch' ? `${declared}-x` : declared,
      root: v === 'root-unaligned' ? root + 0x10n : root,
    };
  },
};

const bindPasidTable: TemplateDef = {
  kind: 'rfc.bind-pasid-table',
  op: 'IOASID_BIND_PASID_TABLE',
  profiles: ['rfc'],
  features: ['pasid-table-user'],
  weight: 2,
  picks: 5,
  variants: [{ name: 'wrong-format' }, { name: 'table-format-mismatch' }, { name: 'base-unaligned' }, ...ID_VARIANTS],
  realise(ctx, p, v) {
    const fmt = ctx.platform.iommu.pasidTableFormats[0] ?? 'smmuv3-cd';
    const base = PAGE * BigInt(1 + p.int(4, 4096));
    if (v === 'wrong-format') {
      const r = readyIoasid(ctx, p, 0, '');
      if ('prep' in r) return r.prep;
      return { op: 'IOASID_BIND_PASID_TABLE', ioasid: ctx.ref(r.id), table_format: fmt, base };
    }
    const c = readyChild(ctx, p, 0, 'pasid-table');
    if (c === undefined) return undefined;
    if ('prep' in c) return c.prep;
    const declared = ctx.view.rfc().tables.find((t) => t.id === c.id)?.tableFormat ?? fmt;
    return {
      op: 'IOASID_BIND_PASID_TABLE',
      ioasid: adversarialId(ctx, p, 3, v, ['ioasid']) ?? ctx.ref(c.id),
      table_format: v === 'table-format-mismatch' ? `${declared}-x` : declared,
      base: v === 'base-unaligned' ? base + 0x40n : base,
    };
  },
};

const invalidate: TemplateDef = {
  kind: 'rfc.invalidate',
  op: 'IOASID_INVALIDATE_CACHE',
  profiles: ['rfc'],
  weight: 3,
  picks: 5,
  variants: [
    { name: 'granularity-unknown' },
    { name: 'range-zero' },
    { name: 'range-unaligned' },
    { name: 'range-wrap' },
    ...ID_VARIANTS,
  ],
  realise(ctx, p, v) {
    const live = ctx.live('ioasid');
    if (live.length === 0) return ALLOC;
    const rdy = live.filter((o) => isReady(ctx, o.id));
    const io = rdy.length > 0 && !p.chance(1, 0.15) ? p.of(0, rdy) : p.of(0, live);
    const id = adversarialId(ctx, p, 0, v, ['ioasid']) ?? ctx.ref(io.id);
    const range = v.startsWith('range-') || p.chance(2, 0.5);
    if (v === 'granularity-unknown') return { op: 'IOASID_INVALIDATE_CACHE', ioasid: id, granularity: 2 + p.int(3, 3) };
    if (!range) return { op: 'IOASID_INVALIDATE_CACHE', ioasid: id, granularity: RFC_INV.ALL };
    const pasidSpace = io.format === 'pasid-table';
    let start = pasidSpace ? BigInt(p.int(3, 64)) : PAGE * BigInt(p.int(3, 1 << 16));
    let size = pasidSpace ? BigInt(1 + p.int(4, 16)) : PAGE * BigInt(1 + p.int(4, 64));
    if (v === 'range-zero') size = 0n;
    if (v === 'range-unaligned') start += 0x10n;
    if (v === 'range-wrap') [start, size] = [0xffff_ffff_ffff_f000n, 0x2000n];
    return { op: 'IOASID_INVALIDATE_CACHE', ioasid: id, granularity: RFC_INV.RANGE, start, size };
  },
};

const setHwidMode: TemplateDef = {
  kind: 'rfc.set-hwid-mode',
  op: 'IOASID_SET_HWID_MODE',
  profiles: ['rfc'],
  features: ['pasid'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'mode-unknown' }],
  realise(ctx, p, v) {
    if (v === 'mode-unknown') return { op: 'IOASID_SET_HWID_MODE', mode: 2 + p.int(0, 5) };
    // Mostly the global scheme when offered (it reaches more clauses); sometimes back to per-RID.
    const global = ctx.features.has('pasid-global') && !p.chance(0, 0.3);
    return { op: 'IOASID_SET_HWID_MODE', mode: global ? RFC_HWID.GLOBAL : RFC_HWID.PER_RID };
  },
};

/** The platform's PASID width. */
function pasidBits(ctx: RealiseCtx): number {
  return ctx.platform.iommu.pasidBits;
}

const setGlobalMin: TemplateDef = {
  kind: 'rfc.hwid-set-global-min',
  op: 'IOASID_HWID_SET_GLOBAL_MIN',
  profiles: ['rfc'],
  features: ['pasid-global'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'min-one' }, { name: 'min-too-big' }],
  realise(ctx, p, v) {
    if (v === 'min-one') return { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1 };
    if (v === 'min-too-big') return { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 2 ** pasidBits(ctx) };
    const max = 2 ** pasidBits(ctx) - 1;
    return {
      op: 'IOASID_HWID_SET_GLOBAL_MIN',
      min: p.of(
        0,
        [1024, 64, 16, max - 1, max].filter((m) => m >= 2),
      ),
    };
  },
};

/** PASID-capable devices (physical, or mediated with `mdev`), with whether they are bound. */
function pasidDevices(ctx: RealiseCtx): number[] {
  return devices(ctx).filter((d) => ctx.platform.devices[d]!.pasid);
}

/** All PASID attachments of the fd, as the user made them. */
function pasidAttachments(ctx: RealiseCtx): { dev: number; pasid: number; ioasid: number }[] {
  return devices(ctx).flatMap((dev) =>
    ctx.view
      .device(dev)
      .attachedTo.flatMap((a) => (a.pasid === undefined ? [] : [{ dev, pasid: a.pasid, ioasid: a.pt }])),
  );
}

/** A user PASID for an attach to `ioasid`: a local one that already means `ioasid` (PASID-014) or a fresh one. */
function userPasid(ctx: RealiseCtx, p: Picks, i: number, ioasid: number): number {
  const rv = ctx.view.rfc();
  const hi = rv.mode === 'global' ? rv.globalMin : Math.min(2 ** pasidBits(ctx), 32);
  const same = pasidAttachments(ctx).filter((a) => a.ioasid === ioasid && a.pasid < hi);
  if (same.length > 0 && p.chance(i, 0.5)) return p.of(i + 1, same).pasid;
  const taken = new Set(
    pasidAttachments(ctx)
      .filter((a) => a.ioasid !== ioasid)
      .map((a) => a.pasid),
  );
  const top = Math.min(hi, 33);
  for (let k = 0; k < 8; k++) {
    const cand = 1 + p.int(i + 1 + k, Math.max(1, top - 1));
    if (!taken.has(cand)) return cand;
  }
  return 1;
}

const attachPasid: TemplateDef = {
  kind: 'rfc.attach-pasid',
  op: 'VFIO_ATTACH_IOASID',
  profiles: ['rfc'],
  features: ['pasid'],
  weight: 6,
  picks: 12,
  variants: [
    { name: 'pasid-zero' },
    { name: 'pasid-too-big' },
    { name: 'local-in-global-range', features: ['pasid-global'], weight: 2 },
    { name: 'pasid-in-use' },
    // PASID-015: the local PASID another device already uses for another IOASID (the global scheme's central case).
    { name: 'other-ioasid', weight: 4 },
    { name: 'child-without-parent', features: ['nesting-hw'] },
  ],
  realise(ctx, p, v) {
    const rv = ctx.view.rfc();
    if (rv.mode === 'global' && rv.globalMin === 0) return { op: 'IOASID_HWID_SET_GLOBAL_MIN', min: 1024 };
    // Often move a fd without PASIDs to the global scheme, which reaches most of chapter PASID.
    if (
      rv.mode === 'per-rid' &&
      ctx.features.has('pasid-global') &&
      pasidAttachments(ctx).length === 0 &&
      p.chance(11, 0.3)
    )
      return { op: 'IOASID_SET_HWID_MODE', mode: RFC_HWID.GLOBAL };
    const devs = pasidDevices(ctx);
    if (devs.length === 0) return undefined;
    const unbound = devs.filter((d) => !ctx.view.device(d).bound);
    const bound = devs.filter((d) => ctx.view.device(d).bound);
    if (bound.length === 0 || (unbound.length > 0 && p.chance(0, 0.1)))
      return { op: 'VFIO_BIND_IOASID_FD', dev: p.of(1, unbound) };
    const dev = p.of(1, bound);
    // The target: a root kernel-managed IOASID, or (nesting-hw) a pgtable child whose parent the device's RID is on.
    const kids = ctx.live('ioasid').filter((o) => o.format === 'pgtable' && attachedTo(ctx, dev, o.parent ?? 0));
    const rs = roots(ctx);
    if (rs.length === 0) return ALLOC;
    let target = kids.length > 0 && p.chance(2, 0.4) ? p.of(3, kids).id : p.of(3, rs).id;
    if (v === 'child-without-parent') {
      const other = ctx.live('ioasid').filter((o) => o.format === 'pgtable' && !attachedTo(ctx, dev, o.parent ?? 0));
      if (other.length > 0) target = p.of(3, other).id;
    }
    let pasid = userPasid(ctx, p, 4, target);
    const mine = ctx.view.device(dev).attachedTo.filter((a) => a.pasid !== undefined);
    if (v === 'pasid-zero') pasid = 0;
    if (v === 'pasid-too-big') pasid = 2 ** pasidBits(ctx);
    if (v === 'local-in-global-range') pasid = Math.max(rv.globalMin, 2) + p.int(9, 16);
    if (v === 'pasid-in-use' && mine.length > 0) pasid = p.of(9, mine).pasid!;
    if (v === 'other-ioasid') {
      const others = pasidAttachments(ctx).filter((a) => a.ioasid !== target);
      // Another device's first: on the same device the attach fails for a reason of its own (DEV-007).
      const elsewhere = others.filter((a) => a.dev !== dev);
      if (others.length > 0) pasid = p.of(9, elsewhere.length > 0 ? elsewhere : others).pasid;
    }
    return { op: 'VFIO_ATTACH_IOASID', dev, ioasid: ctx.ref(target), pasid };
  },
};

const kvmMap: TemplateDef = {
  kind: 'rfc.kvm-map-pasid',
  op: 'KVM_MAP_PASID',
  profiles: ['rfc'],
  features: ['pasid', 'enqcmd'],
  weight: 3,
  picks: 3,
  variants: [{ name: 'not-attached' }, { name: 'again' }, ...ID_VARIANTS],
  realise(ctx, p, v) {
    const rv = ctx.view.rfc();
    // The PASIDs that have a kernel-allocated PASID: every one in the global scheme, a mediated device's otherwise.
    const withKernel = pasidAttachments(ctx).filter(
      (a) => rv.mode === 'global' || ctx.platform.devices[a.dev]!.kind === 'mediated',
    );
    const unmapped = withKernel.filter((a) => !rv.cpu.some((c) => c.pasid === a.pasid));
    if (v === 'again' && rv.cpu.length > 0) {
      const c = p.of(0, rv.cpu);
      return { op: 'KVM_MAP_PASID', user_pasid: c.pasid, ioasid: ctx.ref(c.ioasid) };
    }
    if (v === 'not-attached' || unmapped.length === 0) {
      const io = pickLive(ctx, p, 1, 'ioasid');
      if (io === undefined) return undefined;
      return { op: 'KVM_MAP_PASID', user_pasid: 900 + p.int(2, 50), ioasid: ctx.ref(io.id) };
    }
    const a = p.of(0, unmapped);
    return {
      op: 'KVM_MAP_PASID',
      user_pasid: a.pasid,
      ioasid: adversarialId(ctx, p, 1, v, ['ioasid']) ?? ctx.ref(a.ioasid),
    };
  },
};

const kvmUnmap: TemplateDef = {
  kind: 'rfc.kvm-unmap-pasid',
  op: 'KVM_UNMAP_PASID',
  profiles: ['rfc'],
  features: ['pasid', 'enqcmd'],
  weight: 1,
  picks: 1,
  variants: [{ name: 'unmapped' }],
  realise(ctx, p, v) {
    const cpu = ctx.view.rfc().cpu;
    if (v === 'unmapped' || cpu.length === 0) return { op: 'KVM_UNMAP_PASID', user_pasid: 950 + p.int(0, 40) };
    return { op: 'KVM_UNMAP_PASID', user_pasid: p.of(0, cpu).pasid };
  },
};

const enqcmd: TemplateDef = {
  kind: 'rfc.cpu-enqcmd',
  op: 'CPU_ENQCMD',
  profiles: ['rfc'],
  features: ['pasid', 'enqcmd'],
  weight: 3,
  picks: 3,
  variants: [{ name: 'pasid-unknown' }],
  realise(ctx, p, v) {
    const devs = devices(ctx).filter((d) => ctx.platform.devices[d]!.enqcmd);
    if (devs.length === 0) return undefined;
    const cpu = ctx.view.rfc().cpu;
    const att = pasidAttachments(ctx).filter((a) => ctx.platform.devices[a.dev]!.enqcmd);
    if (v === 'pasid-unknown') return { op: 'CPU_ENQCMD', dev: p.of(0, devs), pasid: 970 + p.int(1, 20) };
    // Mostly through a CPU translation when there is one: the PASID it reaches is the kernel-allocated one, which
    // after MIGRATE must be a fresh value (PASID-028, PASID-029).
    if (cpu.length > 0 && p.chance(2, 0.5)) return { op: 'CPU_ENQCMD', dev: p.of(0, devs), pasid: p.of(1, cpu).pasid };
    if (att.length > 0 && p.chance(2, 0.6)) {
      const a = p.of(0, att);
      return { op: 'CPU_ENQCMD', dev: a.dev, pasid: a.pasid };
    }
    if (cpu.length > 0) return { op: 'CPU_ENQCMD', dev: p.of(0, devs), pasid: p.of(1, cpu).pasid };
    return { op: 'CPU_ENQCMD', dev: p.of(0, devs), pasid: 1 + p.int(1, 16) };
  },
};

const migrate: TemplateDef = {
  kind: 'rfc.migrate',
  op: 'MIGRATE',
  profiles: ['rfc'],
  features: ['pasid', 'migration'],
  weight: 1,
  picks: 0,
  variants: [],
  realise: () => ({ op: 'MIGRATE' }),
};

const stateSave: TemplateDef = {
  kind: 'rfc.pasid-state-save',
  op: 'IOASID_PASID_STATE_SAVE',
  profiles: ['rfc'],
  features: ['pasid', 'migration'],
  weight: 1,
  picks: 0,
  variants: [],
  realise: () => ({ op: 'IOASID_PASID_STATE_SAVE' }),
};

const stateRestore: TemplateDef = {
  kind: 'rfc.pasid-state-restore',
  op: 'IOASID_PASID_STATE_RESTORE',
  profiles: ['rfc'],
  features: ['pasid', 'migration'],
  weight: 1,
  picks: 2,
  variants: [{ name: 'stale-ioasid' }],
  realise(ctx, p, v) {
    // The user's own record of its PASID state: on this fd it is refused while PASIDs are attached (PASID-030).
    const rv = ctx.view.rfc();
    const attachments = pasidAttachments(ctx);
    const state = { mode: rv.mode === 'global' ? RFC_HWID.GLOBAL : RFC_HWID.PER_RID, min: rv.globalMin, attachments };
    if (v === 'stale-ioasid' || (attachments.length === 0 && p.chance(0, 0.5))) {
      const dev = pasidDevices(ctx).find((d) => ctx.view.device(d).bound);
      if (dev === undefined) return undefined;
      state.attachments = [{ dev, pasid: 3, ioasid: 0x7fff_fff0 }];
    }
    return { op: 'IOASID_PASID_STATE_RESTORE', state };
  },
};

const dmaPasid: TemplateDef = {
  kind: 'rfc.dma-pasid',
  op: 'DEVICE_DMA',
  profiles: ['rfc'],
  features: ['dma-probe', 'pasid'],
  weight: 4,
  picks: 4,
  variants: [{ name: 'pasid-unattached' }],
  realise(ctx, p, v) {
    // Kernel-managed targets only: a user-managed table is walked by the hardware model, not this one.
    const kernel = new Set(ctx.live('ioasid').flatMap((o) => (o.format === 'kernel' ? [o.id] : [])));
    const att = pasidAttachments(ctx).filter((x) => kernel.has(x.ioasid));
    if (att.length === 0) return undefined;
    const a = p.of(0, att);
    const area = someArea(ctx, p, 1, a.ioasid);
    const iova =
      area === undefined ? PAGE * BigInt(p.int(2, 256)) : area.iova + (p.big(2, area.last - area.iova + 1n) & ~7n);
    const pasid = v === 'pasid-unattached' ? a.pasid + 100 : a.pasid;
    return { op: 'DEVICE_DMA', dev: a.dev, iova, length: 8n, write: p.chance(3, 0.4), pasid };
  },
};

const dmaChild: TemplateDef = {
  kind: 'rfc.dma-child',
  op: 'DEVICE_DMA',
  profiles: ['rfc'],
  features: ['dma-probe', 'nesting-sw'],
  weight: 3,
  picks: 4,
  variants: [],
  realise(ctx, p) {
    // A device whose RID is attached to a software-nesting child: its DMA goes through the child, then the parent.
    const kids = ctx.live('ioasid').filter((o) => o.format === 'kernel' && (o.parent ?? 0) !== 0);
    const via = devices(ctx).flatMap((dev) =>
      kids.filter((k) => attachedTo(ctx, dev, k.id)).map((k) => ({ dev, id: k.id })),
    );
    if (via.length === 0) return undefined;
    const v = p.of(0, via);
    const area = someArea(ctx, p, 1, v.id);
    const iova =
      area === undefined ? PAGE * BigInt(p.int(2, 256)) : area.iova + (p.big(2, area.last - area.iova + 1n) & ~7n);
    return { op: 'DEVICE_DMA', dev: v.dev, iova, length: 8n, write: p.chance(3, 0.4) };
  },
};

/** The templates of chapters MEM, NEST, BIND, INV and PASID. */
const RFC_EXTRA_TEMPLATES: readonly TemplateDef[] = [
  register,
  unregister,
  createNesting,
  bindPgtable,
  bindPasidTable,
  invalidate,
  setHwidMode,
  setGlobalMin,
  attachPasid,
  kvmMap,
  kvmUnmap,
  enqcmd,
  migrate,
  stateSave,
  stateRestore,
  dmaPasid,
  dmaChild,
];

/**
 * The `vaddr` and length of a well-formed MAP on a software-nesting child: a parent IOVA inside one parent mapping
 * (NEST-007), so the parent range is covered (NEST-008). Undefined when `id` is not such a child.
 */
function childVaddr(
  ctx: RealiseCtx,
  p: Picks,
  id: number,
  m: MapArgs,
  v: string,
): { vaddr: ParentIova; length: bigint } | undefined {
  const o = ctx.live('ioasid').find((x) => x.id === id);
  if (o === undefined || o.format !== 'kernel' || o.parent === undefined || o.parent === 0) return undefined;
  const a = someArea(ctx, p, 7, o.parent);
  // Adversarial: a parent IOVA nothing maps (NEST-008), or the MAP's own placement.
  if (a === undefined || v === 'parent-unmapped') return { vaddr: { iova: 0xdead_0000_0000n }, length: m.length };
  if (v !== '') return { vaddr: { iova: m.iova }, length: m.length };
  const room = a.last - a.iova + 1n;
  const length = m.length <= room ? m.length : room;
  return { vaddr: { iova: a.iova }, length };
}

/** The vaddr of a well-formed MAP while memory is pre-registered: inside one registration (MEM-003). */
function registeredVaddr(ctx: RealiseCtx, m: MapArgs, v: string): { vaddr: UserPtr; length: bigint } | undefined {
  const regs = ctx.view.rfc().registrations;
  if (regs.length === 0 || v !== '' || 'bad' in m.ptr) return undefined;
  const ptr = m.ptr;
  const inside = regs.find((r) => r.buf === ptr.buf && r.off <= ptr.off && ptr.off + m.length <= r.off + r.size);
  if (inside !== undefined) return undefined;
  const r = regs.find((g) => g.size >= m.length) ?? regs[0]!;
  return { vaddr: { buf: r.buf, off: r.off }, length: m.length <= r.size ? m.length : r.size };
}

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
  ...RFC_EXTRA_TEMPLATES,
];

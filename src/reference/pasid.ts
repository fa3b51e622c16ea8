/**
 * Chapter PASID, rfc profile — the three PASID schemes of seed 004 (spec/chapters/PASID.md): VFIO_ATTACH_IOASID
 * with a user PASID, IOASID_SET_HWID_MODE and IOASID_HWID_SET_GLOBAL_MIN (the global scheme), KVM_MAP_PASID /
 * KVM_UNMAP_PASID and the CPU_ENQCMD harness step (the CPU PASID translation), and the routing of a device's DMA by
 * (RID, PASID) to an IOASID.
 *
 * Kernel-allocated PASIDs (global PASIDs, the real PASIDs of mediated devices) are never returned by a command
 * (register Q-PASID-002); the model picks the lowest free value of the pool and, when an implementation's choice
 * becomes visible (the PASID a CPU_ENQCMD delivers), adopts it after checking it against PASID-016 and uniqueness.
 *
 * Not for: iommufd (which has no user PASID attach, PASID-032) or the hardware's PASID tables (src/hw-reference).
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { RFC_HWID } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { ModelLimit } from './dev.ts';
import { translateIoasid } from './nesting.ts';
import type {
  CpuEnqcmdCmd,
  DeviceDmaCmd,
  IoasidHwidSetGlobalMinCmd,
  IoasidSetHwidModeCmd,
  KvmMapPasidCmd,
  KvmUnmapPasidCmd,
  VfioAttachIoasidCmd,
} from './resolved.ts';
import type { KernelPasid } from './rfc-state.ts';
import type { DeviceState, IoasidObject, State } from './state.ts';

/** One rfc attachment of a device. */
type Attachment = DeviceState['attachments'][number];

/** The PASID width of a device (DEV-009): the IOMMU's when the device is PASID-capable, else 0. */
export function pasidWidth(st: State, dev: number): number {
  return st.platform.devices[dev]!.pasid ? st.platform.iommu.pasidBits : 0;
}

/** Whether any device of the fd has a PASID attachment (PASID-010, PASID-012, PASID-030). */
export function pasidInUse(st: State): boolean {
  return st.devices.some((d) => d.attachments.some((a) => a.pasid !== undefined));
}

/** Whether a device can take ENQCMD work (its own capability and the platform's). */
function enqcmdCapable(st: State, dev: number): boolean {
  return st.platform.devices[dev]!.enqcmd && st.platform.iommu.enqcmd;
}

/** The key of the kernel-allocated PASID an attachment of user PASID `p` of `dev` to `ioasid` uses, if any. */
function kernelKey(st: State, dev: number, p: number, ioasid: number): string | undefined {
  if (st.rfcx.mode === 'global') return `L:${p}`;
  if (st.platform.devices[dev]!.kind === 'physical') return undefined;
  return enqcmdCapable(st, dev) ? `E:${p}:${ioasid}` : `M:${dev}:${p}`;
}

/** Sets a kernel-allocated PASID record (records are immutable). */
function setK(st: State, key: string, k: KernelPasid): void {
  st.rfcx.kpasids.set(key, k);
}

/** Drops one user of a kernel-allocated PASID; the last one releases it (PASID-019). */
function dropUser(st: State, key: string): void {
  const k = st.rfcx.kpasids.get(key);
  if (k === undefined) return;
  if (k.users <= 1) st.rfcx.kpasids.delete(key);
  else setK(st, key, { ...k, users: k.users - 1 });
}

/** The lowest free PASID of `[lo, hi)` for the host pool, or undefined when none is (PASID-020). */
function allocReal(st: State, lo: number, hi: number, exclude: ReadonlySet<number>): number | undefined {
  const used = new Set<number>(exclude);
  for (const k of st.rfcx.kpasids.values()) used.add(k.real);
  for (const b of st.rfcx.busy) used.add(b);
  for (let v = lo; v < hi; v++) if (!used.has(v)) return v;
  return undefined;
}

/** The mediated devices whose parent is `dev`. */
function mdevsOf(st: State, dev: number): number[] {
  return st.platform.devices.flatMap((d, i) => (d.kind === 'mediated' && d.parent === dev ? [i] : []));
}

/**
 * The PASID part of VFIO_ATTACH_IOASID with a user PASID, once the device, the IOASID and its nesting place have
 * been checked (DEV-030): the checks in the order of PASID-034, then the install.
 */
export function pasidAttach(st: State, ctx: StepContext, c: VfioAttachIoasidCmd, io: IoasidObject): Outcome {
  const p = c.pasid!;
  const x = st.rfcx;
  const pd = st.platform.devices[c.dev]!;
  const d = st.devices[c.dev]!;
  ctx.hit('PASID-034');
  // The user PASID range: PASID-001 (and DEV-009), then the local range of the global scheme (PASID-013).
  if (p <= 0 || !Number.isInteger(p) || p >= 2 ** pasidWidth(st, c.dev)) {
    ctx.hit('DEV-009');
    return ctx.reject('PASID-001', 'EINVAL');
  }
  if (x.mode === 'global' && (x.globalMin === 0 || p >= x.globalMin)) return ctx.reject('PASID-013', 'EINVAL');
  // In use: on this device (PASID-002, DEV-009), then fd-wide in the global scheme (PASID-015).
  if (d.attachments.some((a) => a.pasid === p)) {
    ctx.hit('DEV-009');
    return ctx.reject('PASID-002', 'EBUSY');
  }
  // A physical device's PASID table is its RID's: a real PASID the kernel gave one of its mdevs is taken there.
  if (
    pd.kind === 'physical' &&
    x.mode === 'per-rid' &&
    mdevsOf(st, c.dev).some((m) => st.devices[m]!.attachments.some((a) => a.real === p))
  )
    return ctx.reject('PASID-002', 'EBUSY');
  const key = kernelKey(st, c.dev, p, io.id);
  const existing = key === undefined ? undefined : x.kpasids.get(key);
  if (x.mode === 'global' && existing !== undefined && existing.ioasid !== io.id)
    return ctx.reject('PASID-015', 'EBUSY');
  // The ENQCMD mix of the per-RID scheme (PASID-025).
  if (x.mode === 'per-rid' && enqcmdCapable(st, c.dev)) {
    const mixed = st.devices.some(
      (o, i) =>
        i !== c.dev &&
        o.attachments.some((a) => a.pasid !== undefined) &&
        enqcmdCapable(st, i) &&
        st.platform.devices[i]!.kind !== pd.kind,
    );
    if (mixed) return ctx.reject('PASID-025', 'EOPNOTSUPP');
  }
  // The real PASID: the user's (PASID-003), a shared kernel-allocated one (PASID-008, PASID-014) or a new one from
  // the pool (PASID-006, PASID-016, PASID-018), allocated last (PASID-020).
  let real: number;
  if (key === undefined) {
    real = p;
    ctx.hit('PASID-003');
  } else if (existing !== undefined) {
    real = existing.real;
    setK(st, key, { ...existing, users: existing.users + 1 });
    ctx.hit(x.mode === 'global' ? 'PASID-014' : 'PASID-008');
  } else {
    const hi = 2 ** st.platform.iommu.pasidBits;
    const lo = x.mode === 'global' ? x.globalMin : 1;
    const parentRid =
      pd.kind === 'mediated' && x.mode === 'per-rid'
        ? new Set(st.devices[pd.parent]?.attachments.flatMap((a) => (a.pasid === undefined ? [] : [a.pasid])) ?? [])
        : new Set<number>();
    const v = allocReal(st, lo, hi, parentRid);
    if (v === undefined) return ctx.reject('PASID-020', 'ENOSPC');
    real = v;
    setK(st, key, { real, ioasid: io.id, users: 1, seen: false });
    if (x.mode === 'global') {
      ctx.hit('PASID-016');
      ctx.hit('PASID-018');
    } else ctx.hit('PASID-006');
    if (pd.kind === 'mediated') ctx.hit('PASID-007');
  }
  d.attachments.push({ ioasid: io.id, pasid: p, real });
  io.attachments++;
  if (x.mode === 'global' && pd.kind === 'physical') ctx.hit('PASID-017');
  if (x.mode === 'per-rid') ctx.hit('PASID-004');
  ctx.hit('PASID-001');
  ctx.hit('PASID-002');
  ctx.hit('DEV-008');
  ctx.hit('DEV-009');
  ctx.hit('DEV-005');
  return ctx.ok();
}

/** Releases what a PASID attachment of `dev` held (its kernel-allocated PASID's use, PASID-019). */
export function pasidDetached(st: State, dev: number, a: Attachment): void {
  if (a.pasid === undefined) return;
  const key = kernelKey(st, dev, a.pasid, a.ioasid);
  if (key !== undefined) dropUser(st, key);
}

/** Whether a CPU translation still names IOASID `id` (PASID-037: it cannot be freed). */
export function cpuNamesIoasid(st: State, id: number): boolean {
  for (const key of st.rfcx.cpu.values()) if (st.rfcx.kpasids.get(key)?.ioasid === id) return true;
  return false;
}

/** IOASID_SET_HWID_MODE (PASID-009, PASID-010). Changing the scheme clears the split (PASID-036). */
export function rfcSetHwidMode(st: State, ctx: StepContext, c: IoasidSetHwidModeCmd): Outcome {
  if (c.mode !== RFC_HWID.PER_RID && c.mode !== RFC_HWID.GLOBAL) return ctx.reject('PASID-009', 'EINVAL');
  if (c.mode === RFC_HWID.GLOBAL && !(st.features.has('pasid-global') && st.platform.iommu.pasidBits > 0))
    return ctx.reject('PASID-009', 'EOPNOTSUPP');
  if (pasidInUse(st)) return ctx.reject('PASID-010', 'EBUSY');
  const mode = c.mode === RFC_HWID.GLOBAL ? 'global' : 'per-rid';
  if (mode !== st.rfcx.mode) st.rfcx.globalMin = 0;
  st.rfcx.mode = mode;
  ctx.hit('PASID-009');
  ctx.hit('PASID-010');
  ctx.hit('PASID-036');
  return ctx.ok();
}

/** IOASID_HWID_SET_GLOBAL_MIN (PASID-011, PASID-012): scheme, range, then PASIDs in use. */
export function rfcSetGlobalMin(st: State, ctx: StepContext, c: IoasidHwidSetGlobalMinCmd): Outcome {
  if (st.rfcx.mode !== 'global') return ctx.reject('PASID-011', 'EINVAL');
  const max = 2 ** st.platform.iommu.pasidBits - 1;
  if (!Number.isInteger(c.min) || c.min < 2 || c.min > max) return ctx.reject('PASID-011', 'EINVAL');
  if (pasidInUse(st)) return ctx.reject('PASID-012', 'EBUSY');
  st.rfcx.globalMin = c.min;
  ctx.hit('PASID-011');
  ctx.hit('PASID-012');
  return ctx.ok();
}

/** The kernel-allocated PASID of user PASID `p` on IOASID `x`, by key, as KVM looks it up (alloc=false). */
function lookupKernel(st: State, p: number, x: number): string | undefined {
  const k = st.rfcx.kpasids;
  if (st.rfcx.mode === 'global') return k.get(`L:${p}`)?.ioasid === x ? `L:${p}` : undefined;
  if (k.has(`E:${p}:${x}`)) return `E:${p}:${x}`;
  for (const [key, v] of k) if (key.startsWith('M:') && key.endsWith(`:${p}`) && v.ioasid === x) return key;
  return undefined;
}

/** KVM_MAP_PASID{user_pasid, ioasid}: the CPU translation of a user PASID (PASID-021, PASID-023). */
export function rfcKvmMapPasid(st: State, ctx: StepContext, c: KvmMapPasidCmd): Outcome {
  const key = lookupKernel(st, c.user_pasid, c.ioasid);
  if (key === undefined) return ctx.reject('PASID-021', 'ENOENT');
  if (st.rfcx.cpu.has(c.user_pasid)) return ctx.reject('PASID-023', 'EBUSY');
  const k = st.rfcx.kpasids.get(key)!;
  setK(st, key, { ...k, users: k.users + 1 });
  st.rfcx.cpu.set(c.user_pasid, key);
  ctx.hit('PASID-021');
  ctx.hit('PASID-023');
  ctx.hit('PASID-019');
  return ctx.ok();
}

/** KVM_UNMAP_PASID{user_pasid} (PASID-024); the translation's hold on its PASID goes (PASID-019). */
export function rfcKvmUnmapPasid(st: State, ctx: StepContext, c: KvmUnmapPasidCmd): Outcome {
  const key = st.rfcx.cpu.get(c.user_pasid);
  if (key === undefined) return ctx.reject('PASID-024', 'ENOENT');
  st.rfcx.cpu.delete(c.user_pasid);
  dropUser(st, key);
  ctx.hit('PASID-024');
  ctx.hit('PASID-019');
  return ctx.ok();
}

/**
 * Whether the VM's CPU PASID translation is on (PASID-035): in the global scheme, and whenever the fd holds a
 * kernel-allocated PASID or a CPU translation; off for a per-RID fd whose PASIDs are all delegated (PASID-005).
 */
function translationOn(st: State): boolean {
  return st.rfcx.mode === 'global' || st.rfcx.kpasids.size > 0 || st.rfcx.cpu.size > 0;
}

/**
 * Adopts the real PASID an implementation chose for `key`, seen for the first time: it must lie in the pool
 * (PASID-016 for a global PASID), be no other kernel-allocated PASID's (PASID-014, PASID-018) and none that others hold
 * on this host after MIGRATE (PASID-028).
 */
function adoptReal(st: State, ctx: StepContext, key: string, k: KernelPasid): KernelPasid {
  const seen = ctx.observedNumber('pasid');
  if (k.seen || seen === undefined || seen === k.real) return { ...k, seen: seen !== undefined || k.seen };
  const hi = 2 ** st.platform.iommu.pasidBits;
  const lo = key.startsWith('L:') ? st.rfcx.globalMin : 1;
  if (seen < lo || seen >= hi) {
    ctx.violate('PASID-016', `kernel-allocated PASID ${seen} lies outside [${lo}, ${hi})`);
    return k;
  }
  for (const [other, v] of st.rfcx.kpasids)
    if (other !== key && v.real === seen) {
      ctx.violate('PASID-018', `kernel-allocated PASID ${seen} is already the PASID of another user PASID`);
      return k;
    }
  // PASID-028: after MIGRATE the source's kernel-allocated PASIDs are held by others on this host (`busy`).
  if (st.rfcx.busy.has(seen)) {
    ctx.violate(
      'PASID-028',
      `kernel-allocated PASID ${seen} is held by another user on this host (re-used after MIGRATE)`,
    );
    return k;
  }
  const adopted = { ...k, real: seen, seen: true };
  for (let i = 0; i < st.devices.length; i++) {
    const d = st.devices[i]!;
    d.attachments = d.attachments.map((a) =>
      a.pasid !== undefined && a.real === k.real && kernelKey(st, i, a.pasid, a.ioasid) === key
        ? { ...a, real: seen }
        : a,
    );
  }
  return adopted;
}

/** CPU_ENQCMD: the PASID that reaches the device, or a fault when the translation is on and has no entry. */
export function rfcCpuEnqcmd(st: State, ctx: StepContext, c: CpuEnqcmdCmd): Outcome {
  if (st.platform.devices[c.dev] === undefined) return ctx.reject('REF-001', 'EINVAL');
  if (!enqcmdCapable(st, c.dev)) return { ok: false, errno: 'fault', out: { reason: 'no-enqcmd' } };
  const key = st.rfcx.cpu.get(c.pasid);
  if (key !== undefined) {
    const k = adoptReal(st, ctx, key, st.rfcx.kpasids.get(key)!);
    setK(st, key, k);
    ctx.hit('PASID-022');
    if (st.rfcx.mode === 'global') ctx.hit('PASID-014');
    return ctx.ok({ pasid: k.real });
  }
  if (translationOn(st)) {
    ctx.hit('PASID-024');
    ctx.hit('PASID-029');
    ctx.hit('PASID-035');
    return { ok: false, errno: 'fault', out: { reason: 'no-translation' } };
  }
  ctx.hit('PASID-005');
  ctx.hit('PASID-035');
  return ctx.ok({ pasid: c.pasid });
}

/** The IOASID a device's DMA tagged with PASID `p` is routed to (DEV-008), if any. */
function pasidRoute(st: State, ctx: StepContext, dev: number, p: number): IoasidObject | undefined {
  const pd = st.platform.devices[dev]!;
  const own = st.devices[dev]!.attachments;
  const global = st.rfcx.mode === 'global';
  if (pd.kind === 'mediated') {
    // The mediation path converts the mdev's user PASID to its real one on the parent's RID (PASID-006).
    const a = own.find((x) => x.pasid === p);
    if (a === undefined) return undefined;
    ctx.hit('PASID-006');
    return st.get(a.ioasid, 'ioasid');
  }
  const a =
    own.find((x) => x.pasid === p) ?? (global ? own.find((x) => x.pasid !== undefined && x.real === p) : undefined);
  if (a !== undefined) {
    ctx.hit(global ? 'PASID-017' : 'PASID-003');
    if (global) ctx.hit('PASID-014');
    else ctx.hit('PASID-004');
    return st.get(a.ioasid, 'ioasid');
  }
  // The parent's RID carries the real PASIDs of its mediated devices.
  for (const m of mdevsOf(st, dev)) {
    const b = st.devices[m]!.attachments.find((x) => x.pasid !== undefined && x.real === p);
    if (b !== undefined) {
      ctx.hit('PASID-006');
      return st.get(b.ioasid, 'ioasid');
    }
  }
  return undefined;
}

/** DEVICE_DMA in the rfc profile: routed by the RID (the leaf of its nesting chain) or by (RID, PASID). */
export function rfcDma(st: State, ctx: StepContext, c: DeviceDmaCmd): Outcome {
  const d = st.devices[c.dev]!;
  const ridIoasids = d.attachments.filter((a) => a.pasid === undefined).map((a) => st.get(a.ioasid, 'ioasid')!);
  if (c.pasid === undefined) {
    // The leaf of the RID's chain translates (a child's output goes through its parent).
    const leaf = ridIoasids.find((io) => !ridIoasids.some((other) => other.parent === io.id));
    if (leaf === undefined) return { ok: false, errno: 'fault', out: { reason: 'blocked' } };
    if (leaf.format === 'pasid-table') throw new ModelLimit('DMA through a user PASID table needs the hardware model');
    return translateIoasid(st, ctx, leaf, c.iova, c.length, c.write);
  }
  const io = pasidRoute(st, ctx, c.dev, c.pasid);
  if (io === undefined) {
    if (ridIoasids.some((r) => r.format === 'pasid-table' && r.bound !== undefined))
      throw new ModelLimit('DMA routed by a user PASID table needs the hardware model');
    return { ok: false, errno: 'fault', out: { reason: 'blocked' } };
  }
  ctx.hit('DEV-008');
  return translateIoasid(st, ctx, io, c.iova, c.length, c.write);
}

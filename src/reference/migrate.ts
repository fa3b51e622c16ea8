/**
 * Chapter PASID, migration — IOASID_PASID_STATE_SAVE, IOASID_PASID_STATE_RESTORE and the MIGRATE harness step
 * (spec/chapters/PASID.md, PASID-026 to PASID-031). The state that migrates is the user's view only: the scheme, the
 * split, and each PASID attachment by its user PASID (PASID-026); kernel-allocated PASIDs are re-allocated on the
 * destination (PASID-028, PASID-031) and CPU translations are left to the user (PASID-029).
 *
 * MIGRATE models the whole move on one model: the destination fd has the same IOASIDs (same IDs), mappings, device
 * bindings, RID attachments and bound tables, which the VMM re-creates before it restores the PASID state (PASID-038);
 * the source's kernel-allocated PASIDs are held by others on the destination, so every one is re-allocated.
 *
 * Not for: migrating mappings or device state, which the VMM does with the ordinary commands.
 *
 * @module
 */
import type { Outcome, PasidState } from './commands.ts';
import { RFC_HWID } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { pasidAttach, pasidDetached, pasidInUse } from './pasid.ts';
import type { IoasidPasidStateRestoreCmd, MigrateCmd } from './resolved.ts';
import type { State } from './state.ts';

/** The PASID state of the fd as IOASID_PASID_STATE_SAVE returns it: no kernel-allocated PASID (PASID-026). */
export function pasidState(st: State): PasidState {
  const attachments: PasidState['attachments'] = [];
  st.devices.forEach((d, dev) => {
    for (const a of d.attachments)
      if (a.pasid !== undefined) attachments.push({ dev, pasid: a.pasid, ioasid: a.ioasid });
  });
  return { mode: st.rfcx.mode === 'global' ? RFC_HWID.GLOBAL : RFC_HWID.PER_RID, min: st.rfcx.globalMin, attachments };
}

/** IOASID_PASID_STATE_SAVE (PASID-026, PASID-031). */
export function rfcPasidStateSave(st: State, ctx: StepContext): Outcome {
  const s = pasidState(st);
  ctx.hit('PASID-026');
  if (s.attachments.some((a) => st.platform.devices[a.dev]!.kind === 'mediated')) ctx.hit('PASID-031');
  return ctx.ok({ state: s });
}

/** Removes every PASID attachment of the fd (the user's detaches), releasing what they hold. */
function dropPasidAttachments(st: State): void {
  st.devices.forEach((d, dev) => {
    for (const a of d.attachments.filter((x) => x.pasid !== undefined)) {
      d.attachments = d.attachments.filter((x) => x !== a);
      const io = st.get(a.ioasid, 'ioasid');
      if (io) io.attachments--;
      pasidDetached(st, dev, a);
    }
  });
}

/**
 * Re-creates saved PASID state on this fd, all or nothing (PASID-030): EBUSY when the fd has a PASID attachment,
 * ENOENT for a device not bound or an IOASID that does not exist, then the checks of the scheme and split and of
 * each attach (PASID-034), each fresh kernel-allocated PASID coming from the pool (PASID-028, PASID-031).
 */
export function restorePasidState(st: State, ctx: StepContext, s: PasidState): Outcome {
  if (pasidInUse(st)) return ctx.reject('PASID-030', 'EBUSY');
  for (const a of s.attachments)
    if ((st.devices[a.dev]?.boundId ?? 0) === 0 || !st.get(a.ioasid, 'ioasid'))
      return ctx.reject('PASID-030', 'ENOENT');
  if (s.mode !== RFC_HWID.PER_RID && s.mode !== RFC_HWID.GLOBAL) return ctx.reject('PASID-009', 'EINVAL');
  if (s.mode === RFC_HWID.GLOBAL && !(st.features.has('pasid-global') && st.platform.iommu.pasidBits > 0))
    return ctx.reject('PASID-009', 'EOPNOTSUPP');
  const global = s.mode === RFC_HWID.GLOBAL;
  if (global && s.min !== 0 && (s.min < 2 || s.min > 2 ** st.platform.iommu.pasidBits - 1))
    return ctx.reject('PASID-011', 'EINVAL');
  const before = { mode: st.rfcx.mode, min: st.rfcx.globalMin };
  st.rfcx.mode = global ? 'global' : 'per-rid';
  st.rfcx.globalMin = global ? s.min : 0;
  for (const a of s.attachments) {
    const io = st.get(a.ioasid, 'ioasid')!;
    const d = st.devices[a.dev]!;
    // The nesting checks of an attach (DEV-030): a pasid-table IOASID takes no PASID, a child needs its parent.
    let r: Outcome | undefined;
    if (io.format === 'pasid-table') r = ctx.reject('BIND-011', 'EINVAL');
    else if (io.parent !== 0 && !d.attachments.some((x) => x.pasid === undefined && x.ioasid === io.parent))
      r = ctx.reject('NEST-003', 'EINVAL');
    else r = pasidAttach(st, ctx, { op: 'VFIO_ATTACH_IOASID', dev: a.dev, ioasid: a.ioasid, pasid: a.pasid }, io);
    if (!r.ok) {
      dropPasidAttachments(st);
      st.rfcx.mode = before.mode;
      st.rfcx.globalMin = before.min;
      return r;
    }
  }
  ctx.hit('PASID-030');
  ctx.hit('PASID-027');
  if (global) ctx.hit('PASID-028');
  if (s.attachments.some((a) => st.platform.devices[a.dev]!.kind === 'mediated')) ctx.hit('PASID-031');
  return ctx.ok();
}

/** IOASID_PASID_STATE_RESTORE on this fd (as the destination). */
export function rfcPasidStateRestore(st: State, ctx: StepContext, c: IoasidPasidStateRestoreCmd): Outcome {
  return restorePasidState(st, ctx, c.state);
}

/**
 * MIGRATE: saves the PASID state, moves to the destination (PASID attachments, kernel-allocated PASIDs and CPU
 * translations do not move; the source's kernel-allocated PASIDs are held by others there) and restores it.
 */
export function rfcMigrate(st: State, ctx: StepContext, _c: MigrateCmd): Outcome {
  const saved = pasidState(st);
  ctx.hit('PASID-026');
  const x = st.rfcx;
  // The destination is a host where the source's kernel-allocated PASIDs are in use (those of earlier hosts are not).
  const held = new Set<number>();
  for (const k of x.kpasids.values()) held.add(k.real);
  dropPasidAttachments(st);
  x.kpasids = new Map();
  x.cpu = new Map();
  x.busy = held;
  x.mode = 'per-rid';
  x.globalMin = 0;
  ctx.hit('PASID-038');
  const r = restorePasidState(st, ctx, saved);
  if (r.ok) ctx.hit('PASID-029');
  return r;
}

/**
 * Chapter BIND, rfc profile — IOASID_BIND_PGTABLE and IOASID_BIND_PASID_TABLE (spec/chapters/BIND.md), with the
 * format rule of chapter FMT: a bind is accepted only by the format declared at creation, and a rejected bind changes
 * nothing (FMT-018). There is no unbind: IOASID_FREE unbinds (BIND-009).
 *
 * Not for: iommufd nested HWPTs (their table is bound by IOMMU_HWPT_ALLOC, `nest.ts`), or walking the bound table.
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import type { StepContext } from './core/context.ts';
import { rfcReady } from './ioas.ts';
import type { IoasidBindPasidTableCmd, IoasidBindPgtableCmd } from './resolved.ts';
import type { IoasidObject, State } from './state.ts';

/** The table page of every supported format: roots and bases are 4 KiB aligned (BIND-005). */
const TABLE_PAGE = 0x1000n;

/**
 * The IOASID of a bind, checked in the order of BIND-002 / FMT-009: it exists (ENOENT), it is ready (ENODEV), its
 * format is the command's (EINVAL: BIND-001 / FMT-004, BIND-010 / FMT-005).
 */
function bindTarget(st: State, ctx: StepContext, id: number, want: 'pgtable' | 'pasid-table'): IoasidObject | Outcome {
  ctx.hit('BIND-002');
  ctx.hit('FMT-009');
  const io = st.get(id, 'ioasid');
  if (!io) return ctx.reject('FD-002', 'ENOENT');
  if (!rfcReady(st, io)) return ctx.reject(io.attachments > 0 ? 'DEV-010' : 'INFO-003', 'ENODEV');
  if (io.format !== want) {
    ctx.hit('FMT-018');
    if (want === 'pgtable') {
      ctx.hit('FMT-004');
      return ctx.reject('BIND-001', 'EINVAL');
    }
    ctx.hit('FMT-005');
    return ctx.reject('BIND-010', 'EINVAL');
  }
  ctx.hit('FMT-001');
  return io;
}

/** IOASID_BIND_PGTABLE: installs (or replaces, BIND-008) the root of a user page table on a pgtable IOASID. */
export function rfcBindPgtable(st: State, ctx: StepContext, c: IoasidBindPgtableCmd): Outcome {
  const io = bindTarget(st, ctx, c.ioasid, 'pgtable');
  if ('ok' in io) return io;
  if (c.table_format !== io.tableFormat) return ctx.reject('BIND-003', 'EINVAL');
  if (c.root % TABLE_PAGE !== 0n) return ctx.reject('BIND-005', 'EINVAL');
  if (io.bound !== undefined) ctx.hit('BIND-008');
  io.bound = c.root;
  ctx.hit('BIND-001');
  ctx.hit('BIND-003');
  ctx.hit('BIND-004');
  ctx.hit('BIND-005');
  // The root is a parent IOVA and is not checked against the parent's mappings (BIND-006).
  ctx.hit('BIND-006');
  ctx.hit('BIND-007');
  if (userPasidTableUnder(st, io)) ctx.hit('BIND-012');
  return ctx.ok();
}

/** Whether a device attached to `io` with a user PASID has a bound user PASID table (BIND-012). */
function userPasidTableUnder(st: State, io: IoasidObject): boolean {
  return st.devices.some(
    (d) =>
      d.attachments.some((a) => a.ioasid === io.id && a.pasid !== undefined) &&
      d.attachments.some(
        (a) =>
          a.pasid === undefined &&
          st.get(a.ioasid, 'ioasid')?.bound !== undefined &&
          st.get(a.ioasid, 'ioasid')?.format === 'pasid-table',
      ),
  );
}

/** IOASID_BIND_PASID_TABLE: installs (or replaces) the base of a user PASID table on a pasid-table IOASID. */
export function rfcBindPasidTable(st: State, ctx: StepContext, c: IoasidBindPasidTableCmd): Outcome {
  const io = bindTarget(st, ctx, c.ioasid, 'pasid-table');
  if ('ok' in io) return io;
  if (c.table_format !== io.tableFormat) return ctx.reject('BIND-003', 'EINVAL');
  // BIND-002: a table address that is not a table page is a wrong field.
  if (c.base % TABLE_PAGE !== 0n) return ctx.reject('BIND-002', 'EINVAL');
  io.bound = c.base;
  ctx.hit('BIND-010');
  ctx.hit('BIND-003');
  return ctx.ok();
}

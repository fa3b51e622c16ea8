/**
 * Chapter NEST, rfc profile — IOASID_CREATE_NESTING, software nesting (MAP on a child of format `kernel` maps parent
 * IOVAs; the kernel's shadow follows both levels) and the translation of a DMA through an IOASID of any format
 * (spec/chapters/NEST.md, with FMT-006, FMT-007 and BIND-004 for the formats a child may declare).
 *
 * The shadow table is not materialised: a DMA through a child is translated by the child's mapping and then by the
 * parent's at the time of the DMA, which is what NEST-009 and NEST-010 require of the shadow.
 *
 * Not for: iommufd nested HWPTs (`nest.ts`), or walking a user-managed page table (the hardware model's job).
 *
 * @module
 */
import type { Outcome } from './commands.ts';
import { PROT } from './core/areas.ts';
import type { StepContext } from './core/context.ts';
import { addArea, makeArea } from './core/placement.ts';
import { ModelLimit } from './dev.ts';
import { rfcMapArgs } from './map.ts';
import { walkSpace } from './dma.ts';
import { adoptId } from './fd.ts';
import { outsideAperture, rfcKernelIoasid } from './ioas.ts';
import type { IoasidCreateNestingCmd, IoasidMapDmaCmd } from './resolved.ts';
import { Space, type IoasidObject, type State } from './state.ts';

/** The format kinds of IOASID_CREATE_NESTING (PROFILES.md, formats). */
const KINDS = ['kernel', 'pgtable', 'pasid-table'] as const;
type Kind = (typeof KINDS)[number];

function isKind(s: string): s is Kind {
  return (KINDS as readonly string[]).includes(s);
}

/** Whether the implementation offers a nesting kind and, for a user table, its vendor format (NEST-002, BIND-004). */
function offered(st: State, kind: Kind, tableFormat: string | undefined): boolean {
  const io = st.platform.iommu;
  switch (kind) {
    case 'kernel':
      return st.features.has('nesting-sw') && io.nestingSw;
    case 'pgtable':
      return st.features.has('nesting-hw') && io.nestingHw && io.pgtableFormats.includes(tableFormat!);
    case 'pasid-table':
      return st.features.has('pasid-table-user') && io.pasidTableFormats.includes(tableFormat!);
  }
}

/** IOASID_CREATE_NESTING: a child over a kernel-managed IOASID made by IOASID_ALLOC, with a fixed format. */
export function rfcCreateNesting(st: State, ctx: StepContext, c: IoasidCreateNestingCmd): Outcome {
  const parent = st.get(c.parent, 'ioasid');
  if (!parent) return ctx.reject('NEST-001', 'ENOENT');
  // NEST-001, FMT-007: one level only; every user-managed IOASID is itself a child.
  if (parent.parent !== 0 || parent.format !== 'kernel') {
    ctx.hit('FMT-007');
    return ctx.reject('NEST-001', 'EINVAL');
  }
  // NEST-002: a malformed request (unknown kind; a table format missing for a user table, or given for `kernel`,
  // NEST-018) is EINVAL; a well-formed one the platform cannot do is EOPNOTSUPP, readiness not considered.
  if (!isKind(c.format)) return ctx.reject('NEST-002', 'EINVAL');
  const userTable = c.format !== 'kernel';
  if (userTable !== (c.table_format !== undefined)) return ctx.reject('NEST-018', 'EINVAL');
  if (!offered(st, c.format, c.table_format)) {
    ctx.hit('FMT-006');
    if (c.format === 'pgtable') ctx.hit('BIND-004');
    return ctx.reject('NEST-002', 'EOPNOTSUPP');
  }
  const id = adoptId(st, ctx);
  if (id === 0) return ctx.reject('FD-001', 'ENOSPC');
  let space: Space | undefined;
  if (c.format === 'kernel') {
    space = new Space();
    space.reserved.add(...outsideAperture(st, 'aperture'));
  }
  const child: IoasidObject =
    c.table_format === undefined
      ? { kind: 'ioasid', id, format: c.format, parent: parent.id, space, children: 0, attachments: 0 }
      : {
          kind: 'ioasid',
          id,
          format: c.format,
          parent: parent.id,
          space,
          children: 0,
          attachments: 0,
          tableFormat: c.table_format,
        };
  st.objects.set(id, child);
  parent.children++;
  ctx.hit('NEST-001');
  ctx.hit('NEST-002');
  ctx.hit('FMT-001');
  return ctx.ok({ id });
}

/** The software-nesting child `id` (format `kernel` with a parent), if it is one. */
export function softwareChild(st: State, id: number): IoasidObject | undefined {
  const io = st.get(id, 'ioasid');
  return io !== undefined && io.format === 'kernel' && io.parent !== 0 ? io : undefined;
}

/**
 * Whether `[iova, last]` of `space` is covered by mappings that follow one another without a gap (NEST-008).
 */
function covered(space: Space, iova: bigint, last: bigint): boolean {
  let cursor = iova;
  for (const a of space.areas.intersecting(iova, last)) {
    if (a.iova > cursor) return false;
    if (a.last >= last) return true;
    cursor = a.last + 1n;
  }
  return false;
}

/**
 * IOASID_MAP_DMA on a software-nesting child: `vaddr` is a parent IOVA (NEST-007); the parent range must be mapped
 * (NEST-008); nothing is pinned, accounted or checked against the registrations (NEST-012, MEM-008). The checks run
 * in the order of MAP-019, the parent coverage taking the place of the pin.
 */
export function rfcChildMap(st: State, ctx: StepContext, c: IoasidMapDmaCmd): Outcome {
  const got = rfcKernelIoasid(st, ctx, c.ioasid);
  if (!('space' in got)) return got;
  const space = got.space;
  const parent = st.get(softwareChild(st, c.ioasid)!.parent, 'ioasid')!;
  const args = rfcMapArgs(st, ctx, c, space);
  if ('ok' in args) return args;
  const { from, prot } = args;
  if (!covered(parent.space!, from, from + c.size - 1n)) return ctx.reject('NEST-008', 'ENOENT');
  // The area's `va` is the parent IOVA; it owns no user memory and no pages object (pages 0: nothing pinned).
  addArea(space, st.platform, makeArea(c.iova, c.size, from, -1, 0n, prot, 0));
  ctx.hit('NEST-007');
  ctx.hit('NEST-012');
  ctx.hit('MEM-008');
  ctx.hit('MAP-001');
  return ctx.ok();
}

/**
 * Translates a DMA of `[iova, iova + length)` through IOASID `io`: a kernel-managed IOASID by its mappings; a
 * software-nesting child by its mapping, then by the parent's at the time of the DMA, with the permissions of both
 * (NEST-007, NEST-009, NEST-010, NEST-011). A user-managed table is walked by the hardware model only.
 */
export function translateIoasid(
  st: State,
  ctx: StepContext,
  io: IoasidObject,
  iova: bigint,
  length: bigint,
  write: boolean,
): Outcome {
  if (io.format !== 'kernel') throw new ModelLimit('DMA through a user-managed table needs the hardware model');
  if (io.parent === 0) return walkSpace(ctx, io.space!, iova, length, write);
  const parent = st.get(io.parent, 'ioasid')!;
  const last = iova + length - 1n;
  let first: Outcome | undefined;
  for (let cursor = iova; ;) {
    const a = io.space!.areas.containing(cursor);
    if (a === undefined) return { ok: false, errno: 'fault', out: { reason: 'not-present' } };
    if ((a.prot & (write ? PROT.WRITE : PROT.READ)) === 0)
      return { ok: false, errno: 'fault', out: { reason: write ? 'write-denied' : 'read-denied' } };
    const end = a.last < last ? a.last : last;
    const r = walkSpace(ctx, parent.space!, a.va + (cursor - a.iova), end - cursor + 1n, write);
    if (!r.ok) {
      ctx.hit('NEST-009');
      return r;
    }
    first ??= r;
    if (end === last) break;
    cursor = end + 1n;
  }
  ctx.hit('NEST-007');
  ctx.hit('NEST-010');
  ctx.hit('NEST-011');
  return first;
}

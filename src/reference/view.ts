/**
 * A read-only view of the reference model's state, for the generators: they draw "an index into what exists now"
 * (a live IOAS, a mapped area and its edges, a bound device) from it. It exposes the uAPI-visible state only — what
 * a careful user could track from the replies — never an implementation's internals.
 *
 * @module
 */
import type { Area } from './core/areas.ts';
import type { Profile } from './commands.ts';
import type { Platform } from './platform.ts';
import { U64_MAX } from './u64.ts';

/** Kinds of objects an fd holds (across profiles). */
export type ObjectKind = 'ioas' | 'hwpt-paging' | 'hwpt-nested' | 'device' | 'fault' | 'ioasid';

/** A live object. */
export interface ObjectInfo {
  readonly id: number;
  readonly kind: ObjectKind;
  /** For rfc IOASIDs: the format declared at creation; for HWPTs: `nest-parent`, `auto`, `fault` (a nested HWPT with a FAULT) or `manual`. */
  readonly format?: string;
  /** The IOAS (iommufd) or parent IOASID (rfc) it hangs off, when it has one. */
  readonly parent?: number;
}

/** What the generators may read. */
export interface ModelView {
  readonly profile: Profile;
  readonly platform: Platform;
  readonly features: ReadonlySet<string>;
  /** Live objects, ascending by ID. */
  objects(): readonly ObjectInfo[];
  /**
   * The address spaces that hold mappings: iommufd IOAS IDs, rfc kernel-managed IOASIDs, and 0 for the vfio-type1
   * container.
   */
  addressSpaces(): readonly number[];
  /** Number of areas in address space `as`. */
  areaCount(as: number): number;
  /** The lowest area whose first IOVA is ≥ `iova` (wrapping to the lowest area), or undefined when there is none. */
  areaAtOrAfter(as: number, iova: bigint): Area | undefined;
  /** The smallest IOVA granule the address space enforces now. */
  alignment(as: number): bigint;
  /** The IOVA ranges where a mapping may be placed now (permitted, outside reserved ranges). */
  usableRanges(as: number): readonly { start: bigint; last: bigint }[];
  /** Device index → its binding and attachments, as the user sees them. */
  device(dev: number): { bound: boolean; devId: number; attachedTo: readonly { pt: number; pasid?: number }[] };
  /** vfio-type1: the container's state. */
  container(): { groups: readonly number[]; iommuType: number };
  /** The fault queues (chapter FAULT): iommufd FAULT objects by ID, and the rfc fd's queue as ID 0. */
  faults(): readonly FaultQueueInfo[];
  /** rfc: what the user knows of chapters MEM, BIND and PASID (see {@link RfcView}). */
  rfc(): RfcView;
}

/** The areas of address space `as`, ascending, read through the view (O(n) in the areas: not for a step's hot path). */
export function listAreas(view: ModelView, as: number): Area[] {
  const out: Area[] = [];
  for (let a = view.areaAtOrAfter(as, 0n); a !== undefined;) {
    const prev = out[out.length - 1];
    if (prev !== undefined && a.iova <= prev.iova) break;
    out.push(a);
    if (a.last >= U64_MAX) break;
    a = view.areaAtOrAfter(as, a.last + 1n);
  }
  return out;
}

/**
 * The rfc state a user can track from its own commands: its pre-registrations, the table formats it declared and
 * whether it bound a table, the PASID scheme and split it set, and the CPU translations it made. Never a
 * kernel-allocated PASID (register Q-PASID-002).
 */
export interface RfcView {
  readonly registrations: readonly { readonly buf: number; readonly off: bigint; readonly size: bigint }[];
  /** User-table IOASIDs: the vendor format declared at creation and whether a table is bound. */
  readonly tables: readonly { readonly id: number; readonly tableFormat: string; readonly bound: boolean }[];
  readonly mode: 'per-rid' | 'global';
  /** The global split, 0 while unset. */
  readonly globalMin: number;
  /** CPU translations: user PASID → the IOASID given to KVM_MAP_PASID. */
  readonly cpu: readonly { readonly pasid: number; readonly ioasid: number }[];
}

/** A fault queue as its reader knows it: the groups it has not read yet and the ones it read and owes a response. */
export interface FaultQueueInfo {
  /** The FAULT object (iommufd), or 0 for the rfc fd's queue. */
  readonly id: number;
  /** iommufd: whether the fault fd is open (always true for rfc). */
  readonly fdOpen: boolean;
  /** Number of records of each queued group, oldest first. */
  readonly queued: readonly number[];
  /** Groups read and awaiting a response: the cookie, the read step that returned it (and whether as its first group, i.e. its `cookie` output), the HWPT or IOASID that faulted. */
  readonly awaiting: readonly {
    readonly cookie: number;
    readonly readStep: number;
    readonly first: boolean;
    readonly table: number;
  }[];
}

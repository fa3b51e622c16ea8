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

/** Kinds of objects an fd holds (across profiles). */
export type ObjectKind = 'ioas' | 'hwpt-paging' | 'hwpt-nested' | 'device' | 'fault' | 'ioasid';

/** A live object. */
export interface ObjectInfo {
  readonly id: number;
  readonly kind: ObjectKind;
  /** For rfc IOASIDs: the format declared at creation; for HWPTs: `nest-parent` when allocated so. */
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
}

/**
 * The change journal of one model step: while a step runs under an active journal, the few places that change the
 * state — inserting and removing areas, adding or replacing owned ranges, creating and deleting objects — report
 * what they changed, so the invariant checker (src/reference/invariants.ts) can check exactly what the step touched
 * instead of scanning every mapping.
 *
 * Not for: undo or snapshots (State.clone does that), nor for anything a command's outcome depends on — with no
 * active journal the hooks do nothing.
 *
 * @module
 */
import type { Area, RangeSet } from './areas.ts';
import type { FdObject, Space } from '../state.ts';

/** An area inserted into (`insert`) or removed from (`remove`) the areas of `space`. */
export interface AreaEvent {
  readonly op: 'insert' | 'remove';
  readonly space: Space;
  readonly area: Area;
  /** The space's users of `area.pages` just before this event (accounting, MEM-016). */
  readonly pagesUsersBefore: number;
  /** The space's count of areas whose memory is not the process's, just before this event. */
  readonly badAreasBefore: number;
}

/** An object set (created, or replaced when `before` is defined) or deleted. */
export interface ObjectEvent {
  readonly op: 'set' | 'delete';
  readonly id: number;
  /** The object the ID named before the event. */
  readonly before: FdObject | undefined;
}

/** What one step changed, in order. */
export class Journal {
  readonly areas: AreaEvent[] = [];
  readonly objects: ObjectEvent[] = [];
  /** Owned-range sets (reserved or allowed) that gained ranges or were replaced. */
  readonly ranges = new Set<RangeSet>();
}

let active: Journal | undefined;

/** The journal of the running step, if any. */
export function activeJournal(): Journal | undefined {
  return active;
}

/** Runs `f` with `j` as the active journal (restoring the previous one afterwards, even when `f` throws). */
export function withJournal<T>(j: Journal, f: () => T): T {
  const prev = active;
  active = j;
  try {
    return f();
  } finally {
    active = prev;
  }
}

/** Records an area about to be inserted into or removed from `space` (called before the space changes). */
export function journalArea(op: AreaEvent['op'], space: Space, area: Area): void {
  if (active === undefined) return;
  active.areas.push({
    op,
    space,
    area,
    pagesUsersBefore: space.pagesUsers.get(area.pages) ?? 0,
    badAreasBefore: space.badAreas,
  });
}

/** Records that an owned-range set gained ranges or was replaced. */
export function journalRanges(set: RangeSet): void {
  active?.ranges.add(set);
}

/** The objects of an fd by ID: a Map that reports sets and deletes to the active journal. */
export class ObjectMap extends Map<number, FdObject> {
  override set(id: number, o: FdObject): this {
    active?.objects.push({ op: 'set', id, before: this.get(id) });
    return super.set(id, o);
  }

  override delete(id: number): boolean {
    const before = this.get(id);
    if (before !== undefined) active?.objects.push({ op: 'delete', id, before });
    return super.delete(id);
  }
}

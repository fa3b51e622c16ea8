/**
 * The page request queue of the VT-d model (vt-d §7.4): a ring of page request descriptors with head and tail, and
 * the Page Request Overflow status (HW-028, HW-029).
 *
 * Not for: deciding whether a request is queued (the machine does, following HW-028 and HW-029).
 *
 * @module
 */

/** A page request descriptor as software reads it (HW-028). */
export interface PageRequestRecord {
  readonly sid: number;
  readonly pasidPresent: boolean;
  readonly pasid: number;
  /** The page address (bits 63:12 of the request). */
  readonly addr: bigint;
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
  readonly priv: boolean;
  readonly group: number;
  readonly last: boolean;
}

/** A ring of `size` slots: it is full when the tail is one slot behind the head (size − 1 records). */
export class PageRequestQueue {
  private readonly ring: (PageRequestRecord | undefined)[];
  private head = 0;
  private tail = 0;
  /** Page Request Overflow (PRO). */
  overflow = false;

  constructor(readonly size = 16) {
    this.ring = new Array<PageRequestRecord | undefined>(size);
  }

  /** Whether the queue is full (HW-029). */
  get full(): boolean {
    return (this.tail + 1) % this.size === this.head;
  }

  /** Appends a record at the tail. The caller has checked {@link PageRequestQueue.full} and the overflow status. */
  push(r: PageRequestRecord): void {
    this.ring[this.tail] = r;
    this.tail = (this.tail + 1) % this.size;
  }

  /** Software's read: every record from head to tail in arrival order; the head moves to the tail. */
  drain(clearOverflow: boolean): { records: PageRequestRecord[]; overflow: boolean } {
    const records: PageRequestRecord[] = [];
    while (this.head !== this.tail) {
      records.push(this.ring[this.head]!);
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.size;
    }
    const overflow = this.overflow;
    if (clearOverflow) this.overflow = false;
    return { records, overflow };
  }
}

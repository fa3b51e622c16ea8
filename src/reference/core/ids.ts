/**
 * Object IDs of one fd: one space for every object type, IDs from 1, 0 never valid, and the lowest free ID reused
 * (the xarray with XA_FLAGS_ALLOC1 that iommufd uses; the rfc profile decides the same). O(log n) per operation.
 *
 * @module
 */

/** Allocates the lowest free positive ID. */
export class IdAllocator {
  /** Freed IDs below `next`, as a binary min-heap. */
  private heap: number[] = [];
  private next = 1;
  private readonly limit: number;

  /** `limit` is the largest ID (2^31 − 1 for iommufd's xa_limit_31b). */
  constructor(limit = 0x7fff_ffff) {
    this.limit = limit;
  }

  /** The ID the next `alloc()` returns, or 0 when the space is exhausted. */
  peek(): number {
    if (this.heap.length > 0) return this.heap[0]!;
    return this.next <= this.limit ? this.next : 0;
  }

  /** Takes the lowest free ID (0 when none is left). */
  alloc(): number {
    if (this.heap.length > 0) return this.pop();
    return this.next <= this.limit ? this.next++ : 0;
  }

  /**
   * Takes a specific free ID (used when an implementation's choice is adopted). Returns false when `id` is not free.
   * O(n) in the number of freed IDs below `next`; such adoption is rare (it only happens when an implementation
   * allocates differently).
   */
  take(id: number, isLive: (id: number) => boolean): boolean {
    if (id < 1 || id > this.limit || isLive(id)) return false;
    if (id >= this.next) {
      for (let i = this.next; i < id; i++) this.push(i);
      this.next = id + 1;
      return true;
    }
    const at = this.heap.indexOf(id);
    if (at < 0) return false;
    this.heap.splice(at, 1);
    this.heap.sort((a, b) => a - b);
    return true;
  }

  /** Returns `id` to the free pool. */
  free(id: number): void {
    this.push(id);
  }

  /** A deep copy. */
  clone(): IdAllocator {
    const c = new IdAllocator(this.limit);
    c.heap = [...this.heap];
    c.next = this.next;
    return c;
  }

  private push(v: number): void {
    const h = this.heap;
    h.push(v);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p]! <= h[i]!) break;
      [h[p], h[i]] = [h[i]!, h[p]!];
      i = p;
    }
  }

  private pop(): number {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]! < h[m]!) m = l;
        if (r < h.length && h[r]! < h[m]!) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The modelled host-physical memory of the hardware model: 4-KiB frames of 512 little-endian 64-bit words. Page
 * tables, PASID directories and tables, context and root tables live here as the bits VT-d defines (see
 * `entries.ts`), written by a driver with {@link PhysMem.writeQ} and read by the IOMMU's walks, so a wrong entry is
 * wrong the way it would be on hardware (HW-001, HW-002). Frames never written read as zero (not present).
 *
 * Not for: modelling the data of user pages (a DMA's outcome is the address it reaches, not bytes), nor caching —
 * the IOMMU's caches live in `caches.ts`.
 *
 * @module
 */

/** The size of a frame, and of the smallest page, in bytes. */
export const PAGE_SIZE = 4096n;
/** log2 of {@link PAGE_SIZE}. */
export const PAGE_SHIFT = 12n;
/** A mask of the low 12 bits (offset within a 4-KiB page). */
export const PAGE_MASK = PAGE_SIZE - 1n;
/** The host address width of the modelled platform (bits); addresses at or above 2^HAW do not exist. */
export const HOST_ADDRESS_WIDTH = 46;

/** One memory access the IOMMU made, for test-only introspection (never used by the model itself). */
export interface MemAccess {
  readonly kind: 'read' | 'write';
  readonly addr: bigint;
}

/** Host-physical memory as sparse 4-KiB frames of 64-bit words. */
export class PhysMem {
  private readonly frames = new Map<number, BigUint64Array>();
  /** Reads the IOMMU performed since the last {@link PhysMem.takeReads} (test-only introspection). */
  private reads: bigint[] = [];
  /** Whether reads are logged (off by default: logging costs time in long runs). */
  logReads = false;

  /** The 64-bit word at `addr` (8-byte aligned); zero where nothing was written. */
  readQ(addr: bigint): bigint {
    if ((addr & 7n) !== 0n) throw new RangeError(`unaligned 8-byte read at 0x${addr.toString(16)}`);
    if (this.logReads) this.reads.push(addr);
    const f = this.frames.get(Number(addr >> PAGE_SHIFT));
    return f === undefined ? 0n : f[Number((addr & PAGE_MASK) >> 3n)]!;
  }

  /** Writes the 64-bit word at `addr` (8-byte aligned). */
  writeQ(addr: bigint, value: bigint): void {
    if ((addr & 7n) !== 0n) throw new RangeError(`unaligned 8-byte write at 0x${addr.toString(16)}`);
    if (addr >> BigInt(HOST_ADDRESS_WIDTH) !== 0n)
      throw new RangeError(`write at 0x${addr.toString(16)} beyond the host address width`);
    const key = Number(addr >> PAGE_SHIFT);
    let f = this.frames.get(key);
    if (f === undefined) {
      if (value === 0n) return;
      this.frames.set(key, (f = new BigUint64Array(512)));
    }
    f[Number((addr & PAGE_MASK) >> 3n)] = BigInt.asUintN(64, value);
  }

  /** Zeroes a whole frame (its words read as 0 afterwards). */
  zeroFrame(addr: bigint): void {
    this.frames.delete(Number(addr >> PAGE_SHIFT));
  }

  /** Test-only introspection: the addresses read since the last call, in order. */
  takeReads(): bigint[] {
    const r = this.reads;
    this.reads = [];
    return r;
  }

  /** Test-only introspection: the number of frames holding a non-zero word. */
  get frameCount(): number {
    return this.frames.size;
  }
}

/**
 * The driver's allocator of table frames in a host-physical region `[base, base + frames·4 KiB)`: frames come out
 * zeroed (every entry not present), freed frames are reused lowest first so that a driver bug which frees a table
 * still in use shows up as a table shared by two owners.
 */
export class FrameAllocator {
  private next: bigint;
  private readonly free: bigint[] = [];
  private live = 0;

  constructor(
    private readonly mem: PhysMem,
    readonly base: bigint,
    readonly frames: number,
  ) {
    this.next = base;
  }

  /** A zeroed frame's address. Throws when the region is exhausted. */
  alloc(): bigint {
    let a: bigint;
    if (this.free.length > 0) a = this.free.pop()!;
    else {
      if (this.next >= this.base + BigInt(this.frames) * PAGE_SIZE) throw new RangeError('out of table frames');
      a = this.next;
      this.next += PAGE_SIZE;
    }
    this.mem.zeroFrame(a);
    this.live++;
    return a;
  }

  /** `n` zeroed, physically contiguous frames (a PASID directory larger than one frame); the first's address. */
  allocContiguous(n: number): bigint {
    if (n === 1) return this.alloc();
    if (this.next + BigInt(n) * PAGE_SIZE > this.base + BigInt(this.frames) * PAGE_SIZE)
      throw new RangeError('out of table frames');
    const a = this.next;
    this.next += BigInt(n) * PAGE_SIZE;
    for (let i = 0n; i < BigInt(n); i++) this.mem.zeroFrame(a + i * PAGE_SIZE);
    this.live += n;
    return a;
  }

  /** Returns a frame (its content stays until it is handed out again, as on hardware). */
  release(addr: bigint): void {
    this.free.push(addr);
    this.free.sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
    this.live--;
  }

  /** Frames allocated and not released. */
  get inUse(): number {
    return this.live;
  }
}

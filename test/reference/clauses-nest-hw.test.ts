// Clauses about what a nested translation does (NEST-017, INV-008). The uAPI model does not walk the user's
// first-stage table (that is the hardware model's job, src/hw-reference), so these examples run each command through
// the uAPI model and the reference driver on the hardware model (the refinement check, conformance/refine.ts), then
// issue DMA on the hardware model. The user's first-stage table lives in its own memory: GPA g is mapped from buffer
// 0 at offset g, four table pages at GPA 0x80_0000.., whose leaf maps GVA 0x7000. The refinement check probes a
// table of its own at the bound root when the table is bound, so every example invalidates after writing its table
// (INV-007) before it relies on what the IOMMU sees.
import { strict as assert } from 'node:assert';
import type { Command, Profile } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';
import { encodeFsPte } from '../../src/hw-reference/entries.ts';
import { TraceRefiner } from '../../conformance/refine.ts';
import { clauseCases } from './fixtures.ts';

const TABLE = 0x80_0000n;
const GVA = 0x7008n;
const SID = 0x100; // dev0's requester ID

/** A uAPI model and the reference driver following it. */
class Rig {
  readonly model: Model;
  readonly ref: TraceRefiner;
  constructor(profile: Profile, features: string[]) {
    const platform = defaultPlatform();
    this.model = new Model({ profile, features: new Set(features), platform });
    this.ref = new TraceRefiner({ name: 'test', profile, features, platform }, undefined);
  }
  /** Steps a command that must succeed, and lets the driver follow; returns its outputs. */
  ok(c: Command): Record<string, unknown> {
    const r = this.model.step(c);
    assert.ok(
      r.outcome.ok,
      `${c.op}: ${JSON.stringify(r.outcome, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))}`,
    );
    const v = this.ref.afterStep(c, r.outcome, this.model.view);
    assert.equal(v.violation, undefined, `${c.op}: refinement`);
    return r.outcome.out ?? {};
  }
  /**
   * Writes the user's first-stage table (in its own memory) so that GVA 0x7000 maps GPA `gpa`; GPA g is buffer `buf`
   * at offset g − `base`.
   */
  userTable(gpa: bigint, buf = 0, base = 0n): void {
    const d = this.ref.driver;
    const hpa = (g: bigint) => d.hpaOf(buf, g - base)!;
    for (let l = 0; l < 3; l++)
      d.machine.mem.writeQ(hpa(TABLE + BigInt(l) * 0x1000n), encodeFsPte(TABLE + BigInt(l + 1) * 0x1000n, true));
    d.machine.mem.writeQ(hpa(TABLE + 0x3000n) + 7n * 8n, encodeFsPte(gpa, true));
  }
  /** A nested DMA read of GVA 0x7008 by dev0: the user memory reached, or the stage that faulted. */
  dma(): string {
    const hw = this.ref.driver.machine.dma({ sid: SID, addr: GVA, size: 8n, write: false });
    if (!hw.ok) return `fault:${hw.fault.stage}`;
    const u = this.ref.driver.userOf(hw.hpa);
    return u === undefined ? 'not user memory' : `buf${u.buf}+0x${u.off.toString(16)}`;
  }
}

/** The user's invalidation of GVA 0x7000: IOMMU_HWPT_INVALIDATE of nested HWPT 4 (iommufd), of IOASID 2 (rfc). */
function invalidate(r: Rig, profile: Profile): void {
  r.ok(
    profile === 'iommufd'
      ? {
          op: 'IOMMU_HWPT_INVALIDATE',
          hwpt_id: 4,
          data_type: 0,
          entry_len: 24,
          entry_num: 1,
          entries: [{ addr: 0x7000n, npages: 1n, flags: 0 }],
        }
      : { op: 'IOASID_INVALIDATE_CACHE', ioasid: 2, granularity: 1, start: 0x7000n, size: 0x1000n },
  );
}

/** iommufd: IOAS 1 mapping GPA [0x80_0000, 0xa0_0000) from buffer 0, DEVICE 2, NEST_PARENT 3, nested 4 on dev0. */
function iommufdNesting(): Rig {
  const r = new Rig('iommufd', ['dma-probe', 'nesting-hw']);
  const map = (iova: bigint, length: bigint): Command => ({
    op: 'IOMMU_IOAS_MAP',
    ioas_id: 1,
    flags: 7,
    user_va: { buf: 0, off: iova },
    length,
    iova,
  });
  r.ok({ op: 'IOMMU_IOAS_ALLOC' });
  r.ok({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 });
  r.ok({ op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: 2, pt_id: 1, data_type: 0 });
  r.ok(map(TABLE, 0x20_0000n));
  r.ok({
    op: 'IOMMU_HWPT_ALLOC',
    flags: 0,
    dev_id: 2,
    pt_id: 3,
    data_type: 1,
    data: { flags: 0, pgtbl_addr: TABLE, addr_width: 48 },
  });
  r.ok({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: 4 });
  return r;
}

/** rfc: IOASID 1 mapping GPA [0x80_0000, 0xa0_0000), a pgtable child 2 bound at 0x80_0000, dev0 attached to both. */
function rfcNesting(): Rig {
  const r = new Rig('rfc', ['dma-probe', 'nesting-hw']);
  r.ok({ op: 'IOASID_ALLOC' });
  r.ok({ op: 'VFIO_BIND_IOASID_FD', dev: 0 });
  r.ok({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 });
  r.ok({ op: 'IOASID_MAP_DMA', ioasid: 1, flags: 3, vaddr: { buf: 0, off: TABLE }, iova: TABLE, size: 0x20_0000n });
  r.ok({ op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pgtable', table_format: 'vtd-s1-4lvl' });
  r.ok({ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 });
  r.ok({ op: 'IOASID_BIND_PGTABLE', ioasid: 2, table_format: 'vtd-s1-4lvl', root: TABLE });
  return r;
}

describe("NEST-017 The second stage follows the parent's IOAS", () =>
  clauseCases('NEST-017', {
    iommufd: () => {
      const r = iommufdNesting();
      r.userTable(0x81_0000n);
      invalidate(r, 'iommufd');
      assert.equal(r.dma(), 'buf0+0x810008', 'GVA → GPA 0x81_0000 → buffer 0 at 0x81_0000');
      // UNMAP of the leaf's page on the parent's IOAS: once it returns, the nested DMA faults in the second stage,
      // although the composed translation was just used (and may be cached).
      r.ok({ op: 'IOMMU_IOAS_UNMAP', ioas_id: 1, iova: TABLE, length: 0x20_0000n });
      assert.equal(r.dma(), 'fault:second');
      // MAP of new memory (buffer 1) at the same GPAs, table pages copied there: the nested DMA reaches it.
      const d = r.ref.driver;
      r.ok({
        op: 'IOMMU_IOAS_MAP',
        ioas_id: 1,
        flags: 7,
        user_va: { buf: 1, off: 0n },
        length: 0x20_0000n,
        iova: TABLE,
      });
      assert.ok(d.hpaOf(1, 0x1_0000n) !== undefined, 'buffer 1 pinned for the parent');
      r.userTable(0x81_0000n, 1, TABLE);
      invalidate(r, 'iommufd');
      assert.equal(r.dma(), 'buf1+0x10008', 'GPA 0x81_0000 now maps buffer 1 at 0x1_0000');
    },
  }));

describe('INV-008 Before an invalidation a change to a user table may go unseen', () =>
  clauseCases('INV-008', {
    iommufd: () => {
      const r = iommufdNesting();
      r.userTable(0x81_0000n);
      invalidate(r, 'iommufd');
      assert.equal(r.dma(), 'buf0+0x810008');
      // The user rewrites its leaf; the IOMMU may keep the old entry (the hardware model caches it) ...
      r.userTable(0x82_0000n);
      assert.ok(['buf0+0x810008', 'buf0+0x820008'].includes(r.dma()), 'old or new before the invalidation');
      assert.equal(r.dma(), 'buf0+0x810008', 'this implementation keeps the old one');
      // ... until the invalidation that covers it (INV-007 applies from then on).
      invalidate(r, 'iommufd');
      assert.equal(r.dma(), 'buf0+0x820008');
    },
    rfc: () => {
      const r = rfcNesting();
      r.userTable(0x81_0000n);
      invalidate(r, 'rfc');
      assert.equal(r.dma(), 'buf0+0x810008');
      r.userTable(0x82_0000n);
      assert.ok(['buf0+0x810008', 'buf0+0x820008'].includes(r.dma()), 'old or new before the invalidation');
      assert.equal(r.dma(), 'buf0+0x810008', 'this implementation keeps the old one');
      invalidate(r, 'rfc');
      assert.equal(r.dma(), 'buf0+0x820008');
    },
  }));

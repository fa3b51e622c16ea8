// Chapter MEM for iommufd and vfio-type1: when pages are pinned and accounted (MEM-010, MEM-011, MEM-013). The
// accounting is observed as RLIMIT_MEMLOCK sees it: the platform allows 16 pages, so a step that pins beyond what
// is pinned already fails with ENOMEM (MEM-014). Platform: defaultPlatform() (dev0 in group 1, dev1 in group 2).
import { strict as assert } from 'node:assert';
import type { Command } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { bare, BASE, clauseCases, expectResult, P, steps } from './fixtures.ts';

const LIMIT = 16;
const memlock = (pages: number | null): Platform => {
  const p = defaultPlatform();
  return { ...p, limits: { ...p.limits, memlockPages: pages } };
};
const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const objects = (m: Model): string[] => m.view.objects().map((o) => `${o.id}:${o.kind}`);
const pinned = (m: Model): bigint => m.snapshot().state.iopinned;

const ioasAlloc: Command = { op: 'IOMMU_IOAS_ALLOC' };
const bind = (dev: number): Command => ({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev });
const attach = (dev: number, pt_id: number): Command => ({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id });
const detach = (dev: number): Command => ({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev });
const paging = (devId: number, ioas: number): Command => ({
  op: 'IOMMU_HWPT_ALLOC',
  flags: 0,
  dev_id: devId,
  pt_id: ioas,
  data_type: 0,
});
/** IOMMU_IOAS_MAP of `pages` pages of buffer 0 at offset `off` pages, at IOVA BASE + `at` pages. */
const map = (ioas: number, at: bigint, pages: bigint, off = at): Command => ({
  op: 'IOMMU_IOAS_MAP',
  ioas_id: ioas,
  flags: 7,
  user_va: { buf: 0, off: off * P },
  length: pages * P,
  iova: BASE + at * P,
});
const unmap = (ioas: number, at: bigint, pages: bigint): Command => ({
  op: 'IOMMU_IOAS_UNMAP',
  ioas_id: ioas,
  iova: BASE + at * P,
  length: pages * P,
});

describe('MEM-010 Pages are pinned only when an IOMMU domain needs them', () =>
  clauseCases('MEM-010', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft, memlock(LIMIT));
      // 32 pages mapped with no domain: twice the limit, nothing pinned.
      ok(m, [ioasAlloc, map(1, 0n, 16n), map(1, 16n, 16n), bind(0)]);
      assert.equal(pinned(m), 0n);
      // Adding the first domain pins all 32: too many, and neither the attach nor HWPT_ALLOC leaves anything.
      const a = m.step(attach(0, 1));
      expectResult(a, 'ENOMEM', 'attach pins 32 pages');
      assert.ok(a.clauses.includes('MEM-010'));
      expectResult(m.step(paging(2, 1)), 'ENOMEM', 'HWPT_ALLOC pins 32 pages');
      assert.deepEqual(m.view.device(0).attachedTo, []);
      assert.deepEqual(objects(m), ['1:ioas', '2:device']);
      // With 16 left the domain joins and pins them; from then on MAP pins at once.
      ok(m, [unmap(1, 16n, 16n), attach(0, 1)]);
      assert.equal(pinned(m), 16n);
      expectResult(m.step(map(1, 32n, 1n)), 'ENOMEM', 'MAP with a domain pins');
      // The last domain gone, the pages are unpinned and MAP pins nothing again.
      ok(m, [detach(0)]);
      assert.equal(pinned(m), 0n);
      ok(m, [map(1, 32n, 16n)]);
      assert.equal(pinned(m), 0n);
    },
    'vfio-type1': (v, ft) => {
      // A container of the model always has a domain once it has an IOMMU model (its groups are physical), so MAP
      // pins at once: a bad user address fails at MAP, not later; and before VFIO_SET_IOMMU nothing can be mapped.
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'VFIO_GROUP_SET_CONTAINER', group: 1 }]);
      const t1 = (vaddr: { buf: number; off: bigint } | { bad: 'unmapped' }): Command => ({
        op: 'VFIO_IOMMU_MAP_DMA',
        flags: 3,
        vaddr,
        iova: BASE,
        size: 4n * P,
      });
      expectResult(m.step(t1({ buf: 0, off: 0n })), 'EINVAL', 'no IOMMU model, no domain: no mapping');
      ok(m, [{ op: 'VFIO_SET_IOMMU', type: v.type1! }]);
      const r = m.step(t1({ bad: 'unmapped' }));
      expectResult(r, 'EFAULT', 'pinned at MAP');
      assert.ok(r.clauses.includes('MEM-010'));
      assert.equal(m.view.areaCount(0), 0);
      ok(m, [t1({ buf: 0, off: 0n })]);
    },
  }));

describe('MEM-011 A page shared by COPY is pinned and accounted once', () =>
  clauseCases('MEM-011', {
    iommufd: (v, ft) => {
      // IOAS 1 with dev0's domain, IOAS 2 with dev1's domain.
      const m = bare(v.profile, ft, memlock(LIMIT));
      ok(m, [ioasAlloc, ioasAlloc, bind(0), bind(1), attach(0, 1), attach(1, 2), map(1, 0n, 12n)]);
      assert.equal(pinned(m), 12n);
      const copy = (dst: number, at: bigint, from: bigint, pages: bigint): Command => ({
        op: 'IOMMU_IOAS_COPY',
        dst_ioas_id: dst,
        src_ioas_id: 1,
        flags: 7,
        length: pages * P,
        dst_iova: BASE + at * P,
        src_iova: BASE + from * P,
      });
      // 12 + 12 would exceed the limit: the copy is not accounted again.
      const r = m.step(copy(2, 0n, 0n, 12n));
      expectResult(r, 'ok', 'COPY into a domain');
      assert.ok(r.clauses.includes('MEM-011'));
      ok(m, [copy(2, 64n, 4n, 4n), copy(1, 64n, 0n, 8n)]);
      assert.equal(pinned(m), 12n, 'three copies, still 12 pages');
      // The accounting is real: 8 more pages of other memory do not fit.
      expectResult(m.step(map(1, 128n, 8n)), 'ENOMEM');
      // The source unmapped, its copies still hold all 12 pages; only the last area of them releases them.
      ok(m, [unmap(1, 0n, 12n)]);
      assert.equal(pinned(m), 12n);
      ok(m, [unmap(2, 0n, 12n)]);
      assert.equal(pinned(m), 8n, 'the 8-page copy in IOAS 1 still holds pages 0..7');
      ok(m, [unmap(1, 64n, 8n)]);
      assert.equal(pinned(m), 4n, 'the 4-page copy in IOAS 2 holds pages 4..7');
      ok(m, [map(1, 128n, 12n)]);
      assert.equal(pinned(m), 16n);
    },
  }));

describe('MEM-013 iommufd: a bad user address surfaces when a domain is added', () =>
  clauseCases('MEM-013', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      const bad: Command = {
        op: 'IOMMU_IOAS_MAP',
        ioas_id: 1,
        flags: 7,
        user_va: { bad: 'unmapped' },
        length: 4n * P,
        iova: BASE,
      };
      ok(m, [ioasAlloc, bind(0)]);
      const r = m.step(bad);
      expectResult(r, 'ok', 'no domain: MAP does not touch the memory');
      assert.ok(r.clauses.includes('MEM-013'));
      const a = m.step(attach(0, 1));
      expectResult(a, 'EFAULT', 'the attach that adds a domain');
      assert.equal(a.decidedBy, 'MEM-013');
      expectResult(m.step(paging(2, 1)), 'EFAULT', 'HWPT_ALLOC adds a domain');
      assert.deepEqual(objects(m), ['1:ioas', '2:device'], 'nothing added');
      assert.deepEqual(m.view.device(0).attachedTo, []);
      // Without the bad area the domain joins; with a domain the same MAP fails at once (MAP-017).
      ok(m, [unmap(1, 0n, 4n), attach(0, 1)]);
      expectResult(m.step(bad), 'EFAULT', 'with a domain');
      assert.equal(m.view.areaCount(1), 0);
    },
  }));

// Chapter HW: the VT-d scalable-mode hardware model, clause by clause, on hand-built structures (fixtures.ts).
import { strict as assert } from 'node:assert';
import { encodeFsPte, encodeSsPte } from '../../src/hw-reference/entries.ts';
import { DEFAULT_VTD_CONFIG, devTlbRegion, DEVTLB_ALL_ADDR } from '../../src/hw-reference/vtd.ts';
import { AW, DEV_A, DEV_B, DEV_UPPER, FSPM, PGTT, Rig } from './fixtures.ts';

const OUT = 0x1_0000_0000n;
const GiB = 1n << 30n;

describe('HW-001 The requester ID selects a scalable-mode root entry and a lower or upper context entry', () => {
  it('routes devfn < 128 through LCTP and devfn >= 128 through UCTP, at index devfn mod 128', () => {
    const r = new Rig();
    r.context(DEV_A);
    r.ssSpace(DEV_A, 0, 0x1000n, OUT);
    assert.equal(r.code(DEV_A, 0x1000n), `ok:0x${OUT.toString(16)}`);
    // The upper half is not present yet: a legacy single-table model would alias 0x90 onto 0x10's entry.
    assert.equal(r.code(DEV_UPPER, 0x1000n), 'SRT.2');
    r.context(DEV_UPPER);
    r.ssSpace(DEV_UPPER, 0, 0x1000n, OUT + 0x5000n);
    assert.equal(r.code(DEV_UPPER, 0x1000n), `ok:0x${(OUT + 0x5000n).toString(16)}`);
    assert.equal(r.code(DEV_A, 0x1000n), `ok:0x${OUT.toString(16)}`);
  });
});

describe('HW-002 The effective PASID indexes a host-physical PASID directory and PASID table', () => {
  it('reads directory entry p[19:6] and table entry p[5:0] at host-physical addresses', () => {
    const r = new Rig();
    const ctx = r.context(DEV_A);
    const at = r.pasid(DEV_A, 70, { pgtt: PGTT.SECOND, ssptptr: r.frame() });
    r.m.mem.logReads = true;
    r.dma(DEV_A, 0x1000n, { pasid: 70 });
    const reads = r.m.mem.takeReads();
    assert.ok(reads.includes(ctx.pasidDirPtr + 8n), 'directory index 1');
    assert.ok(reads.includes(at), 'table index 6 (70 & 63) of the table named by directory entry 1');
    assert.equal(at & 0xfffn, 6n * 64n);
    // PASID 6 uses directory entry 0, which is not present.
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 6 }), 'SPD.2');
  });
});

describe('HW-003 A request without PASID uses the PASID-table entry named by RID_PASID', () => {
  it('translates through RID_PASID, tags the IOTLB entry with it, and a PASID-selective flush removes it', () => {
    const r = new Rig();
    r.context(DEV_A, { ridPasid: 5 });
    r.ssSpace(DEV_A, 5, 0x1000n, OUT, 3);
    r.ssSpace(DEV_A, 0, 0x1000n, OUT + 0x9000n, 4);
    assert.equal(r.code(DEV_A, 0x1000n), `ok:0x${OUT.toString(16)}`);
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 5 }), 'SCT.9');
    const e = [...r.m.iommu.caches.iotlb.values()][0]!;
    assert.equal(e.pasid, 5);
    r.m.invalidate({ type: 'piotlb', g: 2, did: 3, pasid: 5 });
    assert.equal(r.m.iommu.caches.iotlb.size, 0);
  });
});

describe('HW-004 A non-present structure entry blocks the request with the code of the first failing level', () => {
  it('gives SRT.2, SCT.2, SPD.2 and SPT.2 and reads nothing after the failing entry', () => {
    const r = new Rig();
    r.context(DEV_B, {}, false);
    assert.equal(r.code(DEV_B, 0n), 'SRT.2');
    r.context(DEV_B, { p: false });
    assert.equal(r.code(DEV_B, 0n), 'SCT.2');
    r.context(DEV_B);
    r.pasid(DEV_B, 0, {}, false);
    r.m.mem.logReads = true;
    assert.equal(r.code(DEV_B, 0n), 'SPD.2');
    assert.equal(r.m.mem.takeReads().length, 2 + 2 + 1, 'root (2 words), context (2 words), directory entry');
    r.pasid(DEV_B, 0, { p: false });
    assert.equal(r.code(DEV_B, 0n), 'SPT.2');
  });
});

describe('HW-005 A request with PASID is blocked when the context entry does not admit its PASID', () => {
  it('gives SCT.6 without PASIDE, SCT.7 beyond the directory, SCT.9 for RID_PASID', () => {
    const r = new Rig();
    r.context(DEV_A, { paside: false });
    assert.equal(r.code(DEV_A, 0n, { pasid: 1 }), 'SCT.6');
    r.context(DEV_A, { pdts: 0 });
    assert.equal(r.code(DEV_A, 0n, { pasid: 1 << 13 }), 'SCT.7');
    assert.notEqual(r.code(DEV_A, 0n, { pasid: (1 << 13) - 1 }), 'SCT.7');
    assert.equal(r.code(DEV_A, 0n, { pasid: 0 }), 'SCT.9');
  });
});

describe('HW-006 The PGTT field selects first-stage, second-stage, nested or pass-through translation', () => {
  it('walks each type and blocks reserved or unsupported types with SPT.4.2', () => {
    const r = new Rig();
    r.context(DEV_A);
    const fs = r.frame();
    r.pasid(DEV_A, 1, { pgtt: PGTT.FIRST, fsptptr: fs });
    r.map('fs', fs, 0x2000n, OUT);
    assert.equal(r.code(DEV_A, 0x2008n, { pasid: 1 }), `ok:0x${(OUT + 8n).toString(16)}`);
    r.ssSpace(DEV_A, 2, 0x2000n, OUT + 0x1000n);
    assert.equal(r.code(DEV_A, 0x2000n, { pasid: 2 }), `ok:0x${(OUT + 0x1000n).toString(16)}`);
    r.pasid(DEV_A, 3, { pgtt: PGTT.PASS_THROUGH });
    assert.equal(r.code(DEV_A, 0x1234_5000n, { pasid: 3 }), 'ok:0x12345000');
    assert.equal(r.code(DEV_A, 1n << 50n, { pasid: 3 }), 'SGN.4.2');
    for (const pgtt of [0, 5, 6, 7]) {
      r.pasid(DEV_A, 4, { pgtt });
      assert.equal(r.code(DEV_A, 0n, { pasid: 4 }), 'SPT.4.2', `PGTT ${pgtt}`);
    }
  });
});

describe('HW-007 A second-stage walk has the depth AW selects and blocks addresses beyond its width', () => {
  it('walks 3, 4 and 5 levels, gives SGN.5 above the width, SPT.4.1, SSS.2 and SSS.3', () => {
    const r = new Rig();
    r.context(DEV_A);
    for (const [pasid, aw, levels] of [
      [1, AW.L3, 3],
      [2, AW.L4, 4],
      [3, AW.L5, 5],
    ] as const) {
      const root = r.frame();
      r.pasid(DEV_A, pasid, { pgtt: PGTT.SECOND, aw, ssptptr: root });
      r.map('ss', root, 0x40_0000_0000n >> BigInt(5 - levels), OUT, { levels });
      r.m.mem.logReads = true;
      assert.equal(r.code(DEV_A, 0x40_0000_0000n >> BigInt(5 - levels), { pasid }), `ok:0x${OUT.toString(16)}`);
      const paging = r.m.mem.takeReads().filter((a) => a >= root);
      assert.ok(paging.length >= levels, `${levels} paging reads`);
    }
    assert.equal(r.code(DEV_A, 1n << 39n, { pasid: 1 }), 'SGN.5');
    r.pasid(DEV_A, 4, { pgtt: PGTT.SECOND, aw: 7, ssptptr: r.frame() });
    assert.equal(r.code(DEV_A, 0n, { pasid: 4 }), 'SPT.4.1');
    const root = r.ssSpace(DEV_A, 5, 0x1000n, OUT, 1, { r: false, w: false });
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 5 }), 'SSS.2');
    const leaf = r.map('ss', root, 0x3000n, OUT);
    r.w(leaf, encodeSsPte(OUT, true, true) | (1n << 55n));
    assert.equal(r.code(DEV_A, 0x3000n, { pasid: 5 }), 'SSS.3');
  });
});

describe('HW-008 A first-stage walk has the depth FSPM selects and blocks non-canonical addresses', () => {
  it('walks 4 and 5 levels, gives SGN.1, SPT.4.3, SFS.2, SFS.3 and ignores AW', () => {
    const r = new Rig();
    r.context(DEV_A);
    const f4 = r.frame();
    r.pasid(DEV_A, 1, { pgtt: PGTT.FIRST, fspm: FSPM.L4, fsptptr: f4, aw: 7 });
    r.map('fs', f4, 0x7fff_ffff_f000n, OUT);
    assert.equal(r.code(DEV_A, 0x7fff_ffff_f000n, { pasid: 1 }), `ok:0x${OUT.toString(16)}`, 'AW 7 is ignored');
    assert.equal(r.code(DEV_A, 0x8000_0000_0000n, { pasid: 1 }), 'SGN.1');
    const f5 = r.frame();
    r.pasid(DEV_A, 2, { pgtt: PGTT.FIRST, fspm: FSPM.L5, fsptptr: f5 });
    r.map('fs', f5, 0x80_0000_0000_0000n, OUT, { levels: 5 });
    assert.equal(r.code(DEV_A, 0x80_0000_0000_0000n, { pasid: 2 }), `ok:0x${OUT.toString(16)}`);
    assert.equal(
      r.code(DEV_A, 0x80_0000_0000_0000n, { pasid: 1 }),
      'SGN.1',
      'the same address is not canonical with 4 levels',
    );
    assert.equal(r.code(DEV_A, 0x100_0000_0000_0000n, { pasid: 2 }), 'SGN.1');
    r.pasid(DEV_A, 3, { pgtt: PGTT.FIRST, fspm: 2, fsptptr: r.frame() });
    assert.equal(r.code(DEV_A, 0n, { pasid: 3 }), 'SPT.4.3');
    assert.equal(r.code(DEV_A, 0x5000n, { pasid: 1 }), 'SFS.2');
    const leaf = r.map('fs', f4, 0x6000n, OUT);
    r.w(leaf, encodeFsPte(OUT, true) | (1n << 50n));
    assert.equal(r.code(DEV_A, 0x6000n, { pasid: 1 }), 'SFS.3');
  });
});

describe('HW-009 A walk ends at a 4-KiB, 2-MiB or 1-GiB leaf and the output keeps the offset within it', () => {
  it('keeps 12, 21 or 30 low bits and treats PS above level 3 as reserved', () => {
    const r = new Rig();
    r.context(DEV_A);
    const root = r.ssSpace(DEV_A, 1, 0x20_0000n, 0x4000_0000n, 1, { level: 2 });
    assert.equal(r.code(DEV_A, 0x3f_f008n, { pasid: 1 }), `ok:0x${(0x4000_0000n + 0x1f_f008n).toString(16)}`);
    r.map('ss', root, 2n * GiB, 4n * GiB, { level: 3 });
    assert.equal(
      r.code(DEV_A, 2n * GiB + 0x3abc_d008n, { pasid: 1 }),
      `ok:0x${(4n * GiB + 0x3abc_d008n).toString(16)}`,
    );
    const fs = r.frame();
    r.pasid(DEV_A, 2, { pgtt: PGTT.FIRST, fsptptr: fs });
    r.map('fs', fs, 0x20_0000n, 0x4000_0000n, { level: 2 });
    assert.equal(r.code(DEV_A, 0x20_1008n, { pasid: 2 }), `ok:0x${0x4000_1008n.toString(16)}`);
    // PS = 1 at level 4 (second and first stage).
    const ss4 = r.frame();
    r.pasid(DEV_A, 3, { pgtt: PGTT.SECOND, ssptptr: ss4 });
    r.w(ss4, encodeSsPte(0n, true, true, true));
    assert.equal(r.code(DEV_A, 0n, { pasid: 3 }), 'SSS.3');
    const fs4 = r.frame();
    r.pasid(DEV_A, 4, { pgtt: PGTT.FIRST, fsptptr: fs4 });
    r.w(fs4, encodeFsPte(0n, true, true, true));
    assert.equal(r.code(DEV_A, 0n, { pasid: 4 }), 'SFS.3');
  });
});

describe('HW-010 Read and write permission is checked at every level of the walk', () => {
  it('needs W (R/W) in every entry for a write and R in every second-stage entry for a read; U/S for user requests', () => {
    const r = new Rig();
    r.context(DEV_A);
    r.ssSpace(DEV_A, 1, 0x1000n, OUT, 1, { mid: { r: true, w: false } });
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 1 }), `ok:0x${OUT.toString(16)}`);
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 1, write: true }), 'SGN.6');
    r.ssSpace(DEV_A, 2, 0x1000n, OUT, 1, { mid: { r: false, w: true } });
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 2, write: true }), `ok:0x${OUT.toString(16)}`);
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 2 }), 'SGN.7');
    const fs = r.frame();
    r.pasid(DEV_A, 3, { pgtt: PGTT.FIRST, fsptptr: fs });
    r.map('fs', fs, 0x1000n, OUT, { mid: { r: true, w: false } });
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 3, write: true }), 'SGN.6');
    const leaf = r.map('fs', fs, 0x2000n, OUT);
    r.w(leaf, encodeFsPte(OUT, true, false));
    assert.equal(r.code(DEV_A, 0x2000n, { pasid: 3 }), 'SGN.2');
  });
});

/** A nested PASID entry: first-stage tables at GPAs 0x10_0000.. mapped by the second stage to host frames. */
function nestedRig(
  o: { tableR?: boolean; tableW?: boolean; finalW?: boolean; finalR?: boolean; presetAD?: boolean } = {},
) {
  const r = new Rig();
  r.context(DEV_A);
  const ss = r.frame();
  const fsRootGpa = 0x7000_0000n;
  r.pasid(DEV_A, 1, { pgtt: PGTT.NESTED, ssptptr: ss, fsptptr: fsRootGpa });
  // GPA → HPA for the first-stage table pages (4 levels + their leaf table: 4 pages).
  const gpaToHpa = new Map<bigint, bigint>();
  let nextGpa = fsRootGpa;
  const allocGpa = () => {
    const g = nextGpa;
    nextGpa += 0x1000n;
    const h = r.frame();
    gpaToHpa.set(g, h);
    r.map('ss', ss, g, h, { r: o.tableR ?? true, w: o.tableW ?? true });
    return g;
  };
  allocGpa();
  const tr = (a: bigint) => gpaToHpa.get(a & ~0xfffn)! + (a & 0xfffn);
  // First stage: GVA 0x7000 → GPA 0x4000_0000; second stage: GPA 0x4000_0000 → HPA OUT.
  const leaf = r.map('fs', fsRootGpa, 0x7000n, 0x4000_0000n, { tr, alloc: allocGpa });
  r.map('ss', ss, 0x4000_0000n, OUT, { r: o.finalR ?? true, w: o.finalW ?? true });
  if (o.presetAD === false) r.w(leaf, r.m.mem.readQ(leaf) & ~(3n << 5n));
  return { r, ss, gpaToHpa, tr, leafHpa: leaf };
}

describe('HW-011 Under nesting every first-stage address is translated by the second stage', () => {
  it('reads first-stage tables at the HPA the second stage gives and translates the output GPA', () => {
    const { r, gpaToHpa } = nestedRig();
    r.m.mem.logReads = true;
    assert.equal(r.code(DEV_A, 0x7008n, { pasid: 1 }), `ok:0x${(OUT + 8n).toString(16)}`);
    const reads = r.m.mem.takeReads();
    assert.ok(reads.includes(gpaToHpa.get(0x7000_0000n)!), 'the first-stage root is read at its HPA');
    assert.ok(!reads.includes(0x7000_0000n), 'never at its GPA');
  });
  it('blocks FSPTPTR above the AW limit with SPT.4.4 and an entry address above it with SFS.5', () => {
    const { r, ss, tr, gpaToHpa } = nestedRig();
    r.pasid(DEV_A, 2, { pgtt: PGTT.NESTED, aw: AW.L3, ssptptr: ss, fsptptr: 1n << 40n });
    assert.equal(r.code(DEV_A, 0x7000n, { pasid: 2 }), 'SPT.4.4');
    // A 3-level (39-bit) second stage that maps the first-stage root; the root's entry points above 2^39.
    const ss3 = r.frame();
    r.map('ss', ss3, 0x7000_0000n, gpaToHpa.get(0x7000_0000n)!, { levels: 3 });
    r.pasid(DEV_A, 3, { pgtt: PGTT.NESTED, aw: AW.L3, ssptptr: ss3, fsptptr: 0x7000_0000n });
    r.w(tr(0x7000_0000n), encodeFsPte(1n << 40n, true));
    const f = r.dma(DEV_A, 0x7000n, { pasid: 3 });
    assert.ok(!f.ok && f.fault.code === 'SFS.5' && f.fault.stage === 'second');
  });
});

describe('HW-012 Under nesting second-stage permissions are enforced on table reads and on the final page', () => {
  it('gives SFS.6 for an unreadable table root, SGN.6 / SGN.7 for the final page, SFS.8 for A/D updates', () => {
    assert.equal(nestedRig({ tableR: false }).r.code(DEV_A, 0x7000n, { pasid: 1 }), 'SFS.6');
    const ro = nestedRig({ finalW: false }).r;
    assert.equal(ro.code(DEV_A, 0x7000n, { pasid: 1 }), `ok:0x${OUT.toString(16)}`);
    assert.equal(ro.code(DEV_A, 0x7000n, { pasid: 1, write: true }), 'SGN.6');
    assert.equal(nestedRig({ finalR: false }).r.code(DEV_A, 0x7000n, { pasid: 1 }), 'SGN.7');
    assert.equal(nestedRig({ tableW: false, presetAD: false }).r.code(DEV_A, 0x7000n, { pasid: 1 }), 'SFS.8');
    const ok = nestedRig({ tableW: false }).r;
    assert.equal(
      ok.code(DEV_A, 0x7000n, { pasid: 1, write: true }),
      `ok:0x${OUT.toString(16)}`,
      'A/D preset: no write needed',
    );
  });
  it('gives SFS.7 when a lower first-stage table page is not readable', () => {
    const { r, ss, gpaToHpa } = nestedRig();
    // Make the level-3 table's GPA (second table page) write-only in the second stage.
    r.map('ss', ss, 0x7000_1000n, gpaToHpa.get(0x7000_1000n)!, { r: false, w: true });
    assert.equal(r.code(DEV_A, 0x7000n, { pasid: 1 }), 'SFS.7');
  });
});

describe('HW-013 A nested fault names the stage that caused it', () => {
  it('attributes a first-stage write denial and SGN.1 to the first stage, the rest to the second', () => {
    const { r, leafHpa } = nestedRig();
    r.w(leafHpa, encodeFsPte(0x4000_0000n, false));
    const w = r.dma(DEV_A, 0x7000n, { pasid: 1, write: true });
    assert.ok(!w.ok && w.fault.code === 'SGN.6' && w.fault.stage === 'first');
    const c = r.dma(DEV_A, 0xffff_0000_0000_0000n, { pasid: 1 });
    assert.ok(!c.ok && c.fault.code === 'SGN.1' && c.fault.stage === 'first');
    const s = nestedRig({ finalW: false }).r.dma(DEV_A, 0x7000n, { pasid: 1, write: true });
    assert.ok(!s.ok && s.fault.code === 'SGN.6' && s.fault.stage === 'second');
    const t = nestedRig({ tableR: false }).r.dma(DEV_A, 0x7000n, { pasid: 1 });
    assert.ok(!t.ok && t.fault.stage === 'second');
  });
});

describe('HW-014 A user-managed PASID table in guest-physical memory is read through the second stage', () => {
  it('the VT-d model keeps PASID structures host-physical even for nested entries (it declares no GPA PASID table)', () => {
    assert.ok(!('pasidTableUser' in DEFAULT_VTD_CONFIG));
    const { r } = nestedRig();
    const ctx = r.context(DEV_A);
    r.m.iommu.caches.context.clear();
    r.m.mem.logReads = true;
    r.dma(DEV_A, 0x7000n, { pasid: 1 });
    assert.ok(r.m.mem.takeReads().includes(ctx.pasidDirPtr), 'the directory is read at its host-physical address');
  });
});

describe('HW-015 Cached translations are looked up by source-id, PASID and page and carry DID and PGTT', () => {
  it('serves only the same source-id, PASID and page, and tags entries with DID and PGTT', () => {
    const r = new Rig();
    r.context(DEV_A);
    r.context(DEV_B);
    const root = r.ssSpace(DEV_A, 1, 0x1000n, OUT, 7);
    r.pasid(DEV_A, 2, { pgtt: PGTT.SECOND, ssptptr: root, did: 8 });
    r.pasid(DEV_B, 1, { pgtt: PGTT.SECOND, ssptptr: root, did: 7 });
    const leaf = r.map('ss', root, 0x1000n, OUT);
    assert.ok(r.dma(DEV_A, 0x1000n, { pasid: 1 }).ok);
    const e = [...r.m.iommu.caches.iotlb.values()][0]!;
    assert.deepEqual([e.sid, e.pasid, e.did, e.pgtt], [DEV_A, 1, 7, PGTT.SECOND]);
    assert.deepEqual(
      [...r.m.iommu.caches.pasid.values()].map((x) => [x.did, x.pasid]),
      [[7, 1]],
    );
    assert.deepEqual([...r.m.iommu.caches.context.keys()], [DEV_A]);
    r.w(leaf, 0n);
    assert.ok(r.dma(DEV_A, 0x1ff0n, { pasid: 1 }).ok, 'same page: the cached translation');
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 2 }), 'SSS.2', 'another PASID walks');
    assert.equal(r.code(DEV_B, 0x1000n, { pasid: 1 }), 'SSS.2', 'another source-id walks');
  });
});

describe('HW-016 A cached entry may serve requests until an invalidation covering it completes', () => {
  it('keeps a context, PASID and paging translation after memory changes, until the covering invalidations', () => {
    const r = new Rig();
    r.context(DEV_A);
    r.ssSpace(DEV_A, 0, 0x1000n, OUT, 1);
    assert.ok(r.dma(DEV_A, 0x1000n).ok);
    r.context(DEV_A, { p: false });
    assert.ok(r.dma(DEV_A, 0x1000n).ok, 'context cache still serves');
    r.m.invalidate({ type: 'context', g: 'global' });
    assert.ok(r.dma(DEV_A, 0x1000n).ok, 'the IOTLB still serves: context invalidation covers context entries only');
    r.m.invalidate({ type: 'iotlb', g: 'global' });
    assert.equal(r.code(DEV_A, 0x1000n), 'SCT.2');
  });
});

describe('HW-017 Without caching mode a faulting walk leaves nothing cached', () => {
  it('uses a newly written entry at the next request without any invalidation', () => {
    const r = new Rig();
    assert.equal(DEFAULT_VTD_CONFIG.cm, 0);
    r.context(DEV_A);
    const root = r.frame();
    r.pasid(DEV_A, 0, { p: false, ssptptr: root });
    assert.equal(r.code(DEV_A, 0x1000n), 'SPT.2');
    r.pasid(DEV_A, 0, { ssptptr: root });
    assert.equal(r.code(DEV_A, 0x1000n), 'SSS.2');
    assert.deepEqual(r.m.iommu.cacheSizes(), { context: 0, pasid: 0, iotlb: 0, psc: 0 });
    r.map('ss', root, 0x1000n, OUT);
    assert.equal(r.code(DEV_A, 0x1000n), `ok:0x${OUT.toString(16)}`);
  });
});

/** A rig with DEV_A's PASIDs 1 (DID 1) and 2 (DID 2) second-stage, and PASID 3 first-stage (DID 1), all used once. */
function cachedRig() {
  const r = new Rig();
  r.context(DEV_A);
  r.context(DEV_B);
  const s1 = r.ssSpace(DEV_A, 1, 0x1000n, OUT, 1);
  r.map('ss', s1, 0x40_0000n, OUT + 0x40_0000n, { level: 2 });
  r.ssSpace(DEV_A, 2, 0x1000n, OUT + 0x1000n, 2);
  r.ssSpace(DEV_B, 1, 0x1000n, OUT + 0x2000n, 1);
  const fs = r.frame();
  r.pasid(DEV_A, 3, { pgtt: PGTT.FIRST, fsptptr: fs, did: 1 });
  r.map('fs', fs, 0x9000n, OUT + 0x3000n);
  for (const [sid, pasid, a] of [
    [DEV_A, 1, 0x1000n],
    [DEV_A, 1, 0x40_1000n],
    [DEV_A, 2, 0x1000n],
    [DEV_B, 1, 0x1000n],
    [DEV_A, 3, 0x9000n],
  ] as const)
    assert.ok(r.dma(sid, a, { pasid }).ok);
  const tags = () =>
    [...r.m.iommu.caches.iotlb.values()]
      .map((e) => `${e.sid === DEV_A ? 'A' : 'B'}${e.pasid}@${e.iovaBase.toString(16)}`)
      .sort();
  return { r, tags };
}

describe('HW-018 A context-cache invalidation covers context entries only', () => {
  it('drops every context entry (global/domain) or those of the masked source-id, nothing else', () => {
    const { r } = cachedRig();
    const before = r.m.iommu.cacheSizes();
    r.m.invalidate({ type: 'context', g: 'device', sid: DEV_B, fm: 0 });
    assert.deepEqual([...r.m.iommu.caches.context.keys()], [DEV_A]);
    r.m.invalidate({ type: 'context', g: 'domain' });
    const after = r.m.iommu.cacheSizes();
    assert.equal(after.context, 0);
    assert.deepEqual([after.pasid, after.iotlb, after.psc], [before.pasid, before.iotlb, before.psc]);
  });
});

describe('HW-019 A PASID-cache invalidation covers the PASID-table entries its granularity selects', () => {
  it('selects by DID (00b), by DID and PASID (01b), all (11b), and rejects 10b', () => {
    const { r } = cachedRig();
    const keys = () => [...r.m.iommu.caches.pasid.keys()].sort();
    assert.equal(keys().length, 4);
    r.m.invalidate({ type: 'pasid', g: 1, did: 1, pasid: 3 });
    assert.deepEqual(keys(), [`${DEV_A}:1`, `${DEV_A}:2`, `${DEV_B}:1`].sort());
    r.m.invalidate({ type: 'pasid', g: 0, did: 1 });
    assert.deepEqual(keys(), [`${DEV_A}:2`]);
    assert.equal(r.m.invalidate({ type: 'pasid', g: 2, did: 2 }).ok, false);
    r.m.invalidate({ type: 'pasid', g: 3, did: 0 });
    assert.deepEqual(keys(), []);
  });
});

describe('HW-020 An IOTLB invalidation covers second-stage pages by address and first-stage entries by domain', () => {
  it('page-selective removes second-stage entries of the DID in the region and every first-stage entry of the DID', () => {
    const { r, tags } = cachedRig();
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 1, addr: 0x1000n, am: 0, ih: false });
    assert.deepEqual(
      tags(),
      [`A1@400000`, `A2@1000`].sort(),
      'A1@1000, B1@1000 (DID 1, in region) and A3 (first stage, DID 1) go',
    );
    r.m.invalidate({ type: 'iotlb', g: 'domain', did: 2 });
    assert.deepEqual(tags(), ['A1@400000']);
    r.m.invalidate({ type: 'iotlb', g: 'global' });
    assert.deepEqual(r.m.iommu.cacheSizes().iotlb + r.m.iommu.cacheSizes().psc, 0);
  });
  it('IH = 1 keeps the second-stage paging-structure caches', () => {
    const { r } = cachedRig();
    const psc = r.m.iommu.cacheSizes().psc;
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 2, addr: 0x1000n, am: 0, ih: true });
    assert.equal(r.m.iommu.cacheSizes().psc, psc);
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 2, addr: 0x1000n, am: 0, ih: false });
    assert.ok(r.m.iommu.cacheSizes().psc < psc);
  });
});

describe('HW-021 A PASID-based IOTLB invalidation covers the entries of one DID and PASID', () => {
  it('PASID-selective removes one (DID, PASID); page-selective only first-stage entries in the region; 00b/01b invalid', () => {
    const { r, tags } = cachedRig();
    r.m.invalidate({ type: 'piotlb', g: 3, did: 1, pasid: 1, addr: 0x1000n, am: 0 });
    assert.ok(tags().includes('A1@1000'), 'second-stage entries are not touched by page-selective P_IOTLB');
    r.m.invalidate({ type: 'piotlb', g: 3, did: 1, pasid: 3, addr: 0x9000n, am: 0 });
    assert.ok(!tags().includes('A3@9000'));
    r.m.invalidate({ type: 'piotlb', g: 2, did: 1, pasid: 1 });
    assert.deepEqual(tags(), ['A2@1000']);
    assert.equal(r.m.invalidate({ type: 'piotlb', g: 0, did: 1, pasid: 1 }).ok, false);
    assert.equal(r.m.invalidate({ type: 'piotlb', g: 1, did: 1, pasid: 1 }).ok, false);
  });
});

describe('HW-022 A page-selective invalidation covers the naturally aligned block of 2^AM pages', () => {
  it('ignores the low AM bits of ADDR, removes a large page it overlaps, rejects AM above MAMV', () => {
    const { r, tags } = cachedRig();
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 1, addr: 0x5f_f000n, am: 0 });
    assert.ok(!tags().includes('A1@400000'), 'a 2-MiB page overlapping a 4-KiB block goes');
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 2, addr: 0x3000n, am: 1 });
    assert.ok(tags().includes('A2@1000'), 'block [0x2000, 0x4000) does not cover 0x1000');
    r.m.invalidate({ type: 'iotlb', g: 'page', did: 2, addr: 0x3000n, am: 2 });
    assert.ok(!tags().includes('A2@1000'), 'block [0, 0x4000) does');
    assert.equal(
      r.m.invalidate({ type: 'iotlb', g: 'page', did: 2, addr: 0n, am: DEFAULT_VTD_CONFIG.mamv + 1 }).ok,
      false,
    );
  });
});

describe('HW-023 A device TLB keeps translations that only a device-TLB invalidation removes', () => {
  it('uses the device TLB after the IOTLB is flushed; translated requests need DTE', () => {
    const r = new Rig();
    r.context(DEV_A, { dte: true });
    const root = r.ssSpace(DEV_A, 0, 0x1000n, OUT);
    assert.ok(r.dma(DEV_A, 0x1000n).ok);
    r.map('ss', root, 0x1000n, OUT, { r: false, w: false });
    r.m.invalidate({ type: 'iotlb', g: 'global' });
    r.m.invalidate({ type: 'pasid', g: 3, did: 0 });
    assert.ok(r.dma(DEV_A, 0x1000n).ok, 'the device TLB still holds it');
    r.m.invalidate({ type: 'devtlb', sid: DEV_A, addr: 0x1000n, s: false });
    assert.equal(r.code(DEV_A, 0x1000n), 'SSS.2');
    assert.equal(r.code(DEV_A, 0x1234_5000n, { at: 'translated' }), 'ok:0x12345000');
    r.context(DEV_B);
    assert.equal(r.code(DEV_B, 0x1000n, { at: 'translated' }), 'SCT.5');
  });
});

describe('HW-024 A device-TLB invalidation covers the region, PASID and device it names', () => {
  it('decodes S and the all-pages address, and separates no-PASID, PASID and GI entries', () => {
    assert.deepEqual(devTlbRegion(0x5000n, false), { base: 0x5000n, size: 0x1000n });
    assert.deepEqual(devTlbRegion(0x4000n, true), { base: 0x4000n, size: 0x2000n });
    assert.deepEqual(devTlbRegion(0x5000n, true), { base: 0x4000n, size: 0x4000n });
    assert.equal(devTlbRegion(DEVTLB_ALL_ADDR, true), 'all');
    const r = new Rig();
    r.context(DEV_A, { dte: true });
    r.ssSpace(DEV_A, 0, 0x1000n, OUT);
    r.ssSpace(DEV_A, 1, 0x1000n, OUT);
    r.ssSpace(DEV_A, 2, 0x1000n, OUT);
    for (const pasid of [undefined, 1, 2]) assert.ok(r.dma(DEV_A, 0x1000n, pasid === undefined ? {} : { pasid }).ok);
    const dev = r.m.devices.get(DEV_A)!;
    r.m.invalidate({ type: 'devtlb', sid: DEV_A, addr: DEVTLB_ALL_ADDR, s: true });
    assert.deepEqual([...dev.tlb.values()].map((e) => e.pasid).sort(), [1, 2]);
    r.m.invalidate({ type: 'pdevtlb', sid: DEV_A, pasid: 1, addr: 0x1000n, s: false });
    assert.deepEqual(
      [...dev.tlb.values()].map((e) => e.pasid),
      [2],
    );
    r.m.invalidate({ type: 'pdevtlb', sid: DEV_A, pasid: 9, addr: DEVTLB_ALL_ADDR, s: true, gi: true });
    assert.equal(dev.tlb.size, 0);
  });
});

describe('HW-025 A DMA request yields a host-physical address or a blocked request with its condition code', () => {
  it('records non-recoverable faults unless FPD is set on the walk (never for SRT)', () => {
    const r = new Rig();
    r.context(DEV_B, { fpd: true });
    assert.equal(r.code(DEV_B, 0x1000n), 'SPD.2');
    assert.equal(r.m.iommu.faultLog().length, 0, 'FPD suppresses the record');
    r.context(DEV_B);
    r.m.invalidate({ type: 'context', g: 'global' });
    const f = r.dma(DEV_B, 0x1000n);
    assert.ok(!f.ok && f.fault.recorded);
    assert.equal(r.m.iommu.faultLog().at(-1)!.code, 'SPD.2');
    assert.throws(() => r.m.iommu.dma({ sid: DEV_B, addr: 0xff8n, size: 16, write: false }), /4-KiB boundary/);
  });
});

describe('HW-026 A DMA that crosses a page boundary is checked page by page', () => {
  it('succeeds only when every page does, and names the first failing page', () => {
    const r = new Rig();
    r.context(DEV_B);
    const root = r.ssSpace(DEV_B, 0, 0x1000n, OUT);
    const x = r.dma(DEV_B, 0x1ff0n, { size: 0x20n });
    assert.ok(!x.ok && x.page === 1 && x.fault.code === 'SSS.2');
    r.map('ss', root, 0x2000n, OUT + 0x7000n);
    const y = r.dma(DEV_B, 0x1ff0n, { size: 0x20n });
    assert.ok(y.ok && y.hpa === OUT + 0xff0n);
  });
});

describe('HW-027 A translation request that finds no permission completes with reduced permission', () => {
  it('completes SSS.2 with R = W = 0 and a read-only page with R only, recording no fault', () => {
    const r = new Rig();
    r.context(DEV_A, { dte: true });
    r.ssSpace(DEV_A, 0, 0x1000n, OUT, 1, { w: false });
    const none = r.m.iommu.translate({ sid: DEV_A, addr: 0x5000n, size: 8, write: false });
    assert.ok(none.ok && !none.t.r && !none.t.w && none.code === 'SSS.2');
    const ro = r.m.iommu.translate({ sid: DEV_A, addr: 0x1000n, size: 8, write: true });
    assert.ok(ro.ok && ro.t.r && !ro.t.w);
    assert.equal(r.m.iommu.faultLog().length, 0);
    const d = r.dma(DEV_A, 0x1000n, { write: true });
    assert.ok(!d.ok && d.recoverable && d.fault.code === 'SGN.6');
  });
});

/** A rig where DEV_A has DTE and PRE and PASID 1 is first-stage (DID 4). */
function prqRig(prqSize = 16) {
  const r = new Rig(undefined, prqSize);
  r.context(DEV_A, { dte: true, pre: true });
  const fs = r.frame();
  r.pasid(DEV_A, 1, { pgtt: PGTT.FIRST, fsptptr: fs, did: 4 });
  r.map('fs', fs, 0x1000n, OUT, { w: false });
  return { r, fs };
}
const pr = (group: number, last: boolean, addr = 0x1000n) => ({
  sid: DEV_A,
  pasid: 1,
  addr,
  read: true,
  write: true,
  group,
  last,
});

describe('HW-028 A queued page request is recorded with its group after an implicit invalidation', () => {
  it('invalidates the page (P_IOTLB for first stage), then appends the record; reads return arrival order', () => {
    const { r, fs } = prqRig();
    assert.ok(r.dma(DEV_A, 0x1000n, { pasid: 1 }).ok);
    r.map('fs', fs, 0x1000n, OUT, { w: true });
    r.m.devices.get(DEV_A)!.tlb.clear();
    assert.equal(r.code(DEV_A, 0x1000n, { pasid: 1, write: true }), 'ok:0x100000000', 'the walk re-reads');
    r.m.iommu.caches.iotlb.clear();
    r.m.devices.get(DEV_A)!.tlb.clear();
    assert.ok(r.dma(DEV_A, 0x1000n, { pasid: 1 }).ok);
    assert.equal(r.m.iommu.caches.iotlb.size, 1);
    assert.deepEqual(r.m.pageRequest(pr(3, false, 0x1abcn)), { queued: true });
    assert.equal(r.m.iommu.caches.iotlb.size, 0, 'the implicit invalidation removed the cached page');
    r.m.pageRequest(pr(3, true, 0x2000n));
    const { records } = r.m.prqRead(false);
    assert.deepEqual(
      records.map((x) => [x.sid, x.pasidPresent, x.pasid, x.addr, x.read, x.write, x.group, x.last]),
      [
        [DEV_A, true, 1, 0x1000n, true, true, 3, false],
        [DEV_A, true, 1, 0x2000n, true, true, 3, true],
      ],
    );
  });
});

describe('HW-029 A page request that cannot be queued gets the response vt-d Table 31 prescribes', () => {
  it('PRE = 0: SCT.8 recorded and Invalid Request for the last page; none when last is clear', () => {
    const r = new Rig();
    r.context(DEV_A, { dte: true, pre: false });
    const a = r.m.pageRequest(pr(1, false));
    assert.ok(!a.queued && a.fault?.code === 'SCT.8' && a.autoResponse === undefined);
    const b = r.m.pageRequest(pr(1, true));
    assert.ok(!b.queued && b.autoResponse === 'invalid');
    assert.equal(r.m.iommu.faultLog().at(-1)!.code, 'SCT.8');
  });
  it('a full queue sets PRO and answers Success; while PRO is set nothing is queued', () => {
    const { r } = prqRig(4);
    for (let g = 0; g < 3; g++) assert.ok(r.m.pageRequest(pr(g, true)).queued);
    const full = r.m.pageRequest(pr(7, true));
    assert.ok(!full.queued && full.autoResponse === 'success');
    assert.equal(r.m.prq.overflow, true);
    const { records, overflow } = r.m.prqRead(false);
    assert.equal(records.length, 3);
    assert.ok(overflow);
    assert.ok(!r.m.pageRequest(pr(8, true)).queued, 'PRO still set');
    r.m.prqRead(true);
    assert.ok(r.m.pageRequest(pr(9, true)).queued);
  });
});

describe('HW-030 A page group response completes the outstanding group it names and is otherwise ignored', () => {
  it('completes a matching group, ignores strays and duplicates, and Response Failure disables PRI', () => {
    const { r } = prqRig();
    r.m.pageRequest(pr(2, true));
    assert.equal(r.m.pageResponse(DEV_A, 1, 5, 'success'), false, 'no such group');
    assert.equal(r.m.pageResponse(DEV_A, undefined, 2, 'success'), false, 'PASID must match');
    assert.equal(r.m.pageResponse(DEV_A, 1, 2, 'success'), true);
    assert.equal(r.m.pageResponse(DEV_A, 1, 2, 'success'), false, 'a duplicate is discarded');
    r.m.pageRequest(pr(4, true));
    assert.equal(r.m.pageResponse(DEV_A, 1, 4, 'failure'), true);
    assert.equal(r.m.devices.get(DEV_A)!.priEnabled, false);
    assert.ok(!r.m.pageRequest(pr(5, true)).queued);
  });
});

describe("HW-031 The PASID that reaches the device is the CPU's PASID after the CPU's PASID translation", () => {
  it('delivers the MSR untranslated, translated, or faults with nothing delivered', () => {
    const r = new Rig();
    assert.equal(r.m.enqcmd(0, 7, DEV_A), 7);
    r.m.cpu.set(0, { enabled: true, local: 7, global: 1030 });
    assert.equal(r.m.enqcmd(0, 7, DEV_A), 1030);
    assert.equal(r.m.enqcmd(0, 8, DEV_A), undefined);
    r.m.cpu.set(0, { local: 7, global: null });
    assert.equal(r.m.enqcmd(0, 7, DEV_A), undefined);
    assert.deepEqual(
      r.m.devices.get(DEV_A)!.work.map((w) => w.pasid),
      [7, 1030],
    );
    assert.equal(r.m.enqcmd(1, 7, DEV_A), 7, 'another VM has its own table');
  });
});

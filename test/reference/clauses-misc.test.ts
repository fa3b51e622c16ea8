// Clauses of chapters INFO, MAP, DEV, PASID and FAULT that the other clause files leave out: rfc GET_INFO's nesting
// kinds, table formats and short range array (INFO-005, INFO-010, INFO-012), iommufd's allowed list and fixed IOVAs
// (MAP-010), replace (DEV-025), the absent PASID attach of iommufd 6.12 (PASID-032, PASID-033) and virtual functions
// with a fault-capable HWPT (FAULT-028). Platform: defaultPlatform() unless a case says otherwise.
import { strict as assert } from 'node:assert';
import type { Command, Outputs } from '../../src/reference/commands.ts';
import type { Model } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { bare, BASE, clauseCases, expectResult, P, steps } from './fixtures.ts';
import { S1 } from './iommufd-fixtures.ts';

const ok = (m: Model, cmds: readonly Command[]): void => {
  for (const [i, r] of steps(m, cmds).entries()) expectResult(r, 'ok', `setup step ${i} ${cmds[i]!.op}`);
};
const out = (m: Model, c: Command): Outputs => {
  const r = m.step(c);
  expectResult(r, 'ok', c.op);
  return r.outcome.out ?? {};
};
const platform = (edit: (p: Platform) => void): Platform => {
  const p = defaultPlatform();
  edit(p);
  return p;
};

// rfc
const rfcReady: Command[] = [
  { op: 'IOASID_ALLOC' },
  { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
  { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 1 },
];
const info = (ioasid: number, num_ranges?: number): Command =>
  num_ranges === undefined ? { op: 'IOASID_GET_INFO', ioasid } : { op: 'IOASID_GET_INFO', ioasid, num_ranges };
// iommufd
const bind = (dev: number): Command => ({ op: 'VFIO_DEVICE_BIND_IOMMUFD', dev });
const attach = (dev: number, pt_id: number, flags?: number): Command =>
  flags === undefined
    ? { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id }
    : { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev, pt_id, flags };

describe('INFO-005 GET_INFO reports on a parent which kinds of nesting it accepts', () =>
  clauseCases('INFO-005', {
    rfc: (v) => {
      // Per feature set and platform: the kinds offered, in the order kernel, pgtable, pasid-table.
      const cases: { features: string[]; platform: Platform; want: string[] }[] = [
        { features: ['nesting-sw', 'nesting-hw'], platform: defaultPlatform(), want: ['kernel', 'pgtable'] },
        { features: ['nesting-hw'], platform: defaultPlatform(), want: ['pgtable'] },
        {
          features: ['nesting-sw', 'nesting-hw'],
          platform: platform((p) => (p.iommu.nestingHw = false)),
          want: ['kernel'],
        },
        {
          features: ['nesting-sw', 'nesting-hw', 'pasid-table-user'],
          platform: platform((p) => (p.iommu.pasidTableFormats = ['smmuv3-cd'])),
          want: ['kernel', 'pgtable', 'pasid-table'],
        },
        { features: ['nesting-sw'], platform: platform((p) => (p.iommu.nestingSw = false)), want: [] },
        { features: [], platform: defaultPlatform(), want: [] },
      ];
      for (const c of cases) {
        const m = bare(v.profile, c.features, c.platform);
        ok(m, rfcReady);
        const r = m.step(info(1));
        expectResult(r, 'ok');
        assert.ok(r.clauses.includes('INFO-005'));
        assert.deepEqual(r.outcome.out?.nesting, c.want, c.features.join(','));
        // What it reports, CREATE_NESTING accepts.
        for (const kind of c.want) {
          const table = kind === 'pgtable' ? 'vtd-s1-4lvl' : kind === 'pasid-table' ? 'smmuv3-cd' : undefined;
          const cmd: Command = { op: 'IOASID_CREATE_NESTING', parent: 1, format: kind };
          expectResult(m.step(table === undefined ? cmd : { ...cmd, table_format: table }), 'ok', kind);
        }
      }
      // A child cannot be a parent: it reports none.
      const m = bare(v.profile, ['nesting-sw', 'nesting-hw']);
      ok(m, [...rfcReady, { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'kernel' }]);
      ok(m, [{ op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 }]);
      assert.deepEqual(out(m, info(2)).nesting, []);
      expectResult(m.step({ op: 'IOASID_CREATE_NESTING', parent: 2, format: 'kernel' }), 'EINVAL');
    },
  }));

describe('INFO-010 GET_INFO reports the user table formats that BIND accepts', () =>
  clauseCases('INFO-010', {
    rfc: (v, ft) => {
      for (const table of ['vtd-s1-4lvl', 'vtd-s1-5lvl']) {
        const m = bare(v.profile, ft);
        ok(m, [
          ...rfcReady,
          { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pgtable', table_format: table },
          { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 },
        ]);
        const r = m.step(info(2));
        expectResult(r, 'ok');
        assert.ok(r.clauses.includes('INFO-010'));
        const formats = r.outcome.out?.table_formats as string[];
        assert.deepEqual(formats, [table]);
        assert.ok(
          formats.every((f) => defaultPlatform().iommu.pgtableFormats.includes(f)),
          'the IOMMU walks it',
        );
        // Every reported format is accepted by BIND; the other one is not.
        for (const f of formats)
          expectResult(m.step({ op: 'IOASID_BIND_PGTABLE', ioasid: 2, table_format: f, root: 0x1000n }), 'ok', f);
        const other = table === 'vtd-s1-4lvl' ? 'vtd-s1-5lvl' : 'vtd-s1-4lvl';
        expectResult(m.step({ op: 'IOASID_BIND_PGTABLE', ioasid: 2, table_format: other, root: 0x1000n }), 'EINVAL');
        // A kernel-managed IOASID has no user table format.
        assert.equal(out(m, info(1)).table_formats, undefined);
      }
      // A PASID-table IOASID reports its PASID-table format, which BIND_PASID_TABLE accepts.
      const m = bare(
        v.profile,
        [...ft, 'pasid-table-user'],
        platform((p) => (p.iommu.pasidTableFormats = ['smmuv3-cd'])),
      );
      ok(m, [
        ...rfcReady,
        { op: 'IOASID_CREATE_NESTING', parent: 1, format: 'pasid-table', table_format: 'smmuv3-cd' },
        { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: 2 },
      ]);
      assert.deepEqual(out(m, info(2)).table_formats, ['smmuv3-cd']);
      ok(m, [{ op: 'IOASID_BIND_PASID_TABLE', ioasid: 2, table_format: 'smmuv3-cd', base: 0x2000n }]);
    },
  }));

describe('INFO-012 A too small range array gives EMSGSIZE with the count written back', () =>
  clauseCases('INFO-012', {
    rfc: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, rfcReady);
      // dev0 reserves the MSI window inside the aperture: two permitted ranges.
      const full = out(m, info(1));
      const ranges = full.permitted as { start: bigint; last: bigint }[];
      assert.equal(ranges.length, 2);
      assert.equal(full.num_ranges, 2);
      for (const n of [0, 1]) {
        const r = m.step(info(1, n));
        expectResult(r, 'EMSGSIZE', `room for ${n}`);
        assert.equal(r.decidedBy, 'INFO-012');
        assert.equal(r.outcome.out?.num_ranges, 2, 'the total is written back');
        assert.deepEqual(r.outcome.out?.permitted, ranges.slice(0, n), 'the entries that fit');
      }
      for (const n of [2, 5]) assert.deepEqual(out(m, info(1, n)).permitted, ranges, `room for ${n}`);
    },
  }));

describe('MAP-010 iommufd: the allowed list does not restrict fixed mappings', () =>
  clauseCases('MAP-010', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      const allowed = { start: 0x100_0000n, last: 0x1ff_ffffn };
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOW_IOVAS', ioas_id: 1, iovas: [allowed] }]);
      const map = (flags: number, iova: bigint): Command => ({
        op: 'IOMMU_IOAS_MAP',
        ioas_id: 1,
        flags,
        user_va: { buf: 0, off: 0n },
        length: 4n * P,
        iova,
      });
      // A fixed IOVA outside every allowed range is mapped (the allowed list binds only automatic placement).
      const r = m.step(map(7, BASE));
      expectResult(r, 'ok', 'fixed, outside the allowed list');
      assert.ok(r.clauses.includes('MAP-010'));
      assert.ok(m.view.areaAtOrAfter(1, 0n)?.iova === BASE);
      // An automatic one lands inside it.
      const iova = out(m, map(6, 0n)).iova as bigint;
      assert.ok(iova >= allowed.start && iova + 4n * P - 1n <= allowed.last, `automatic IOVA 0x${iova.toString(16)}`);
    },
  }));

describe('DEV-025 A replace needs an attached device', () =>
  clauseCases('DEV-025', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, { op: 'IOMMU_IOAS_ALLOC' }, bind(0), attach(0, 1)]);
      // Attached: a second call is a replace, and "attached" is checked before the no-op of DEV-023.
      const same = m.step(attach(0, 1));
      expectResult(same, 'ok', 'replace with the same IOAS');
      const c = same.clauses;
      assert.ok(c.includes('DEV-025') && c.indexOf('DEV-025') < c.indexOf('DEV-023'), c.join(' '));
      // Detached, the device is no longer attached: VFIO attaches (a new auto domain), never a replace.
      ok(m, [{ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT', dev: 0 }]);
      const again = m.step(attach(0, 2));
      expectResult(again, 'ok', 'attach after detach');
      assert.ok(!again.clauses.includes('DEV-025') && !again.clauses.includes('DEV-024'), 'not a replace');
      assert.deepEqual(m.view.device(0).attachedTo, [
        { pt: again.outcome.ok ? (again.outcome.out?.pt_id as number) : 0 },
      ]);
    },
  }));

describe('PASID-032 iommufd in Linux 6.12 has no user PASID attach', () =>
  clauseCases('PASID-032', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, ft);
      ok(m, [{ op: 'IOMMU_IOAS_ALLOC' }, bind(0)]);
      // VFIO_DEVICE_ATTACH_PASID (bit 0 of later kernels) and any other flag: EINVAL, nothing attached.
      for (const flags of [1, 2, 0x8000_0000]) {
        const r = m.step(attach(0, 1, flags));
        expectResult(r, 'EINVAL', `flags ${flags}`);
        assert.equal(r.decidedBy, 'PASID-032');
        assert.deepEqual(m.view.device(0).attachedTo, []);
      }
      // Flags are checked first, before the device is looked up (an unbound device, a bad pt_id).
      expectResult(m.step(attach(1, 99, 1)), 'EINVAL');
      assert.equal(m.step(attach(1, 99, 1)).decidedBy, 'PASID-032');
      ok(m, [attach(0, 1)]);
    },
  }));

describe('PASID-033 In iommufd a device\u2019s PASID-tagged DMA reaches no user address space', () =>
  clauseCases('PASID-033', {
    iommufd: (v, ft) => {
      const m = bare(v.profile, [...ft, 'nesting-hw']);
      ok(m, [
        { op: 'IOMMU_IOAS_ALLOC' },
        bind(0),
        attach(0, 1),
        { op: 'IOMMU_IOAS_MAP', ioas_id: 1, flags: 7, user_va: { buf: 0, off: 0n }, length: 4n * P, iova: BASE },
      ]);
      const dma = (pasid?: number): Command =>
        pasid === undefined
          ? { op: 'DEVICE_DMA', dev: 0, iova: BASE, length: 8n, write: false }
          : { op: 'DEVICE_DMA', dev: 0, iova: BASE, length: 8n, write: false, pasid };
      assert.ok(m.step(dma()).outcome.ok, 'the RID is translated');
      for (const pasid of [0, 1, 0xfffff]) {
        const r = m.step(dma(pasid));
        assert.deepEqual(r.outcome, { ok: false, errno: 'fault', out: { reason: 'blocked' } }, `PASID ${pasid}`);
        assert.ok(r.clauses.includes('PASID-033'));
      }
      // Nor through a nested HWPT on the RID.
      ok(m, [
        { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: 2, pt_id: 1, data_type: 0 },
        { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 4, data_type: 1, data: S1 },
        attach(0, 5),
      ]);
      assert.deepEqual(m.step(dma(1)).outcome, { ok: false, errno: 'fault', out: { reason: 'blocked' } });
    },
  }));

describe('FAULT-028 A virtual function cannot use a fault-capable HWPT', () =>
  clauseCases('FAULT-028', {
    iommufd: (v, ft) => {
      // dev1 is a VF (with PRI and ATS, so only FAULT-028 can refuse it).
      const m = bare(
        v.profile,
        ft,
        platform((p) => (p.devices[1] = { ...p.devices[1]!, vf: true })),
      );
      ok(m, [
        { op: 'IOMMU_IOAS_ALLOC' },
        bind(0),
        bind(1),
        { op: 'IOMMU_HWPT_ALLOC', flags: 1, dev_id: 2, pt_id: 1, data_type: 0 },
        { op: 'IOMMU_FAULT_QUEUE_ALLOC' },
        { op: 'IOMMU_HWPT_ALLOC', flags: 4, dev_id: 2, pt_id: 4, data_type: 1, data: S1, fault_id: 5 },
        { op: 'IOMMU_HWPT_ALLOC', flags: 0, dev_id: 2, pt_id: 4, data_type: 1, data: S1 },
      ]);
      // First attach: refused, nothing attached.
      const first = m.step(attach(1, 6));
      expectResult(first, 'EINVAL', 'VF to a fault-capable HWPT');
      assert.equal(first.decidedBy, 'FAULT-028');
      assert.deepEqual(m.view.device(1).attachedTo, []);
      // As a replace: refused, the attachment unchanged.
      ok(m, [attach(1, 7)]);
      const replace = m.step(attach(1, 6));
      expectResult(replace, 'EINVAL', 'replace');
      assert.equal(replace.decidedBy, 'FAULT-028');
      assert.deepEqual(m.view.device(1).attachedTo, [{ pt: 7 }]);
      // The PF may.
      ok(m, [attach(0, 6)]);
    },
  }));

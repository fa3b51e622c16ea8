/**
 * An arbitrary of platforms: IOMMU page sizes and aperture, devices and their IOMMU groups and reserved regions,
 * user buffers, limits. A default run uses the platform the adapter declares (an implementation cannot change the
 * machine it runs on); this arbitrary serves configurable implementations (the reference model) and tests that must
 * hold on every platform.
 *
 * @module
 */
import fc from 'fast-check';
import type { Device, Platform, ReservedRegion } from '../src/reference/platform.ts';

const MSI: ReservedRegion = { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' };

/** Arbitrary IOMMU page-size bitmaps: a base granule (4 KiB, 16 KiB or 64 KiB) with or without larger pages. */
export const pageSizesArbitrary: fc.Arbitrary<bigint> = fc
  .tuple(fc.constantFrom(12n, 14n, 16n), fc.boolean(), fc.boolean())
  .map(([base, huge, giant]) => (1n << base) | (huge ? 1n << 21n : 0n) | (giant ? 1n << 30n : 0n));

/** Arbitrary devices: 1–4 physical devices over 1–3 IOMMU groups, optionally a mediated device on the first. */
export const devicesArbitrary: fc.Arbitrary<Device[]> = fc
  .tuple(
    fc.array(
      fc.record({
        group: fc.integer({ min: 1, max: 3 }),
        msi: fc.boolean(),
        pasid: fc.boolean(),
        pri: fc.boolean(),
        ats: fc.boolean(),
      }),
      {
        minLength: 1,
        maxLength: 4,
      },
    ),
    fc.boolean(),
  )
  .map(([phys, mdev]) => {
    const devices: Device[] = phys.map((d, i) => ({
      name: `dev${i}`,
      rid: 0x100 * (i + 1),
      group: d.group,
      kind: 'physical',
      parent: -1,
      pasid: d.pasid,
      pri: d.pri,
      ats: d.ats,
      enqcmd: d.pasid,
      reserved: d.msi ? [MSI] : [],
    }));
    if (mdev)
      devices.push({
        name: 'mdev0',
        rid: devices[0]!.rid,
        group: devices[0]!.group,
        kind: 'mediated',
        parent: 0,
        pasid: true,
        pri: false,
        ats: false,
        enqcmd: false,
        reserved: [],
      });
    return devices;
  });

/** Arbitrary platforms, valid for the `Platform` codec. */
export const platformArbitrary: fc.Arbitrary<Platform> = fc
  .record({
    pageSizes: pageSizesArbitrary,
    apertureBits: fc.constantFrom(39n, 48n, 57n),
    apertureStart: fc.constantFrom(0n, 1n << 20n),
    devices: devicesArbitrary,
    buffers: fc.array(fc.integer({ min: 1, max: 2048 }), { minLength: 1, maxLength: 3 }),
    memlock: fc.option(fc.integer({ min: 16, max: 1 << 20 }), { nil: null }),
    dmaEntryLimit: fc.constantFrom(65535, 64, 8),
    nesting: fc.boolean(),
    pasidBits: fc.constantFrom(0, 20),
  })
  .map((r): Platform => ({
    name: 'generated',
    iommu: {
      pageSizes: r.pageSizes,
      aperture: { start: r.apertureStart, last: (1n << r.apertureBits) - 1n },
      pgtableFormats: r.nesting ? ['vtd-s1-4lvl'] : [],
      pasidTableFormats: [],
      nestingHw: r.nesting,
      nestingSw: r.nesting,
      pasidBits: r.pasidBits,
      enqcmd: r.pasidBits > 0,
      iopf: r.pasidBits > 0,
      dirtyTracking: r.nesting,
    },
    devices: r.devices,
    // Buffers are whole 2 MiB units so that large mappings fit.
    buffers: r.buffers.map((mb2) => ({ size: BigInt(mb2) << 21n })),
    limits: { memlockPages: r.memlock, dmaEntryLimit: r.dmaEntryLimit, pageSize: 4096 },
  }));

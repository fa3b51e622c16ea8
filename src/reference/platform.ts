/**
 * Platforms: the IOMMU's capabilities and the devices around one fd, as data. A platform is validated by an io-ts
 * codec so generators can draw platforms and implementations can declare the one they run.
 *
 * @module
 */
import * as t from 'io-ts';
import { U64 } from './u64.ts';

/** An inclusive IOVA range. */
export const Range = t.type({ start: U64, last: U64 }, 'Range');
export type Range = t.TypeOf<typeof Range>;

/** A reserved region that arrives with a device (MSI window, RMRR...). `relaxable` regions are not enforced. */
export const ReservedRegion = t.intersection(
  [Range, t.partial({ kind: t.keyof({ msi: null, direct: null, relaxable: null }) })],
  'ReservedRegion',
);
export type ReservedRegion = t.TypeOf<typeof ReservedRegion>;

/** A device behind the IOMMU. */
export const Device = t.intersection(
  [
    t.type({
      /** Name used in traces and reports (`dev0`). */
      name: t.string,
      /** PCI requester ID (bus << 8 | devfn). */
      rid: t.number,
      /** IOMMU group number: devices of one group share one translation. */
      group: t.number,
      /** `physical` (PF/VF, RID-routed) or `mediated` (mdev/SIOV: reached through a PASID of its parent). */
      kind: t.keyof({ physical: null, mediated: null }),
      /** Index of the parent device for a mediated device; -1 for none. */
      parent: t.number,
      pasid: t.boolean,
      pri: t.boolean,
      ats: t.boolean,
      enqcmd: t.boolean,
      reserved: t.array(ReservedRegion),
    }),
    t.partial({
      /** A PCI SR-IOV virtual function (`pci_dev->is_virtfn`); absent: false. Its PRI is shared with its PF. */
      vf: t.boolean,
    }),
  ],
  'Device',
);
export type Device = t.TypeOf<typeof Device>;

/** One region of user memory that traces refer to by index (never by a host virtual address). */
export const Buffer = t.type({ size: U64 }, 'Buffer');
export type Buffer = t.TypeOf<typeof Buffer>;

/**
 * The IOMMU's optional capabilities: a platform may omit them, and every reader applies the documented default (see
 * {@link enforcesCoherency}). Not for anything a generator or an implementation must always state.
 */
export const IommuOptional = t.partial(
  {
    /**
     * Whether a fresh IOMMU domain blocks PCIe no-snoop, i.e. `iommu_domain_ops.enforce_cache_coherency` succeeds.
     * On VT-d this is ECAP.SC (snoop control) on every unit (intel/iommu.c:intel_iommu_enforce_cache_coherency,
     * domain_support_force_snooping); QEMU's intel-iommu reports no SC unless `snoop-control=on`. Absent: true.
     */
    enforceCoherency: t.boolean,
  },
  'IommuOptional',
);

/** The IOMMU's capabilities. */
export const Iommu = t.intersection(
  [
    t.type({
      /** Bitmap of supported page sizes (bit n set: 2^n bytes). The smallest is the IOVA granule. */
      pageSizes: U64,
      /** The aperture of a domain: IOVAs outside it cannot be translated. */
      aperture: Range,
      /** User page-table formats the IOMMU can walk as the first stage (e.g. `vtd-s1-4lvl`). */
      pgtableFormats: t.array(t.string),
      /** User PASID-table formats (e.g. `smmuv3-cd`); empty when PASID tables live in host memory (VT-d). */
      pasidTableFormats: t.array(t.string),
      nestingHw: t.boolean,
      nestingSw: t.boolean,
      /** PASID width in bits (20 on VT-d); 0 without PASID support. */
      pasidBits: t.number,
      enqcmd: t.boolean,
      iopf: t.boolean,
      dirtyTracking: t.boolean,
    }),
    IommuOptional,
  ],
  'Iommu',
);
export type Iommu = t.TypeOf<typeof Iommu>;

/**
 * Whether the platform's IOMMU domains enforce cache coherency (`enforceCoherency`, default true: a VT-d with snoop
 * control). It says nothing about a domain that already has mappings; the uAPI model asks it only for VFIO_DMA_CC_IOMMU.
 */
export function enforcesCoherency(p: Platform): boolean {
  return p.iommu.enforceCoherency ?? true;
}

/** Limits of the process. */
export const Limits = t.type(
  {
    /** RLIMIT_MEMLOCK in pages; null for unlimited (CAP_IPC_LOCK). */
    memlockPages: t.union([t.number, t.null]),
    /** VFIO type1 dma_entry_limit (default 65535). */
    dmaEntryLimit: t.number,
    /** CPU page size (PAGE_SIZE). */
    pageSize: t.number,
  },
  'Limits',
);
export type Limits = t.TypeOf<typeof Limits>;

/** A platform: the IOMMU, its devices, the user memory, the limits. */
export const Platform = t.type(
  { name: t.string, iommu: Iommu, devices: t.array(Device), buffers: t.array(Buffer), limits: Limits },
  'Platform',
);
export type Platform = t.TypeOf<typeof Platform>;

const GiB = 1n << 30n;

/**
 * The default platform: a VT-d-like IOMMU (4 KiB / 2 MiB / 1 GiB pages, 48-bit aperture, an MSI window
 * reserved by every physical device, 20-bit PASIDs, ENQCMD, IOPF), two physical devices in separate groups, a
 * third sharing a group with the second, a mediated device on the first, and two user buffers.
 */
export function defaultPlatform(): Platform {
  const msi: ReservedRegion = { start: 0xfee0_0000n, last: 0xfeef_ffffn, kind: 'msi' };
  const dev = (name: string, rid: number, group: number, extra: Partial<Device> = {}): Device => ({
    name,
    rid,
    group,
    kind: 'physical',
    parent: -1,
    pasid: true,
    pri: true,
    ats: true,
    enqcmd: true,
    reserved: [msi],
    ...extra,
  });
  return {
    name: 'vtd-default',
    iommu: {
      pageSizes: 0x4020_1000n,
      aperture: { start: 0n, last: (1n << 48n) - 1n },
      pgtableFormats: ['vtd-s1-4lvl', 'vtd-s1-5lvl'],
      pasidTableFormats: [],
      nestingHw: true,
      nestingSw: true,
      pasidBits: 20,
      enqcmd: true,
      iopf: true,
      dirtyTracking: true,
    },
    devices: [
      dev('dev0', 0x0100, 1),
      dev('dev1', 0x0200, 2),
      dev('dev2', 0x0201, 2, { enqcmd: false, pri: false }),
      dev('mdev0', 0x0100, 1, { kind: 'mediated', parent: 0, reserved: [] }),
    ],
    buffers: [{ size: 4n * GiB }, { size: 64n << 20n }],
    limits: { memlockPages: null, dmaEntryLimit: 65535, pageSize: 4096 },
  };
}

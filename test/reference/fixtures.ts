// Fixtures shared by the model tests: a model per profile with one ready address space, and profile-neutral
// MAP / UNMAP / DMA helpers, so one table of expectations runs in every profile (the iommufd selftests' variants).
import type { Command, Outcome, Profile } from '../../src/reference/commands.ts';
import { Model } from '../../src/reference/model.ts';
import { defaultPlatform } from '../../src/reference/platform.ts';

export const P = 4096n;
export const BASE = 0x10_0000n;

/** A variant of the fixture matrix: a profile, and for vfio-type1 the IOMMU type. */
export interface Variant {
  readonly name: string;
  readonly profile: Profile;
  readonly type1?: 1 | 3;
}
export const VARIANTS: readonly Variant[] = [
  { name: 'rfc', profile: 'rfc' },
  { name: 'iommufd', profile: 'iommufd' },
  { name: 'vfio-type1 v2', profile: 'vfio-type1', type1: 3 },
  { name: 'vfio-type1 v1', profile: 'vfio-type1', type1: 1 },
];

/** A model with one address space that accepts MAP, device 0 attached to it. */
export class Fixture {
  readonly model: Model;
  constructor(
    readonly v: Variant,
    features: string[] = ['copy', 'auto-iova', 'type1-v1'],
  ) {
    this.model = new Model({ profile: v.profile, features: new Set(features), platform: defaultPlatform() });
    const setup: Command[] =
      v.profile === 'iommufd'
        ? [
            { op: 'IOMMU_IOAS_ALLOC' },
            { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
            { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 0 } },
          ]
        : v.profile === 'rfc'
          ? [
              { op: 'IOASID_ALLOC' },
              { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
              { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
            ]
          : [
              { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
              { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
            ];
    for (const c of setup) {
      const r = this.step(c);
      if (!r.ok) throw new Error(`fixture setup failed at ${c.op}: ${r.errno}`);
    }
  }
  step(c: Command): Outcome {
    return this.model.step(c).outcome;
  }
  clauses(c: Command): readonly string[] {
    return this.model.step(c).clauses;
  }
  mapCmd(iova: bigint, size: bigint, opts: { off?: bigint; read?: boolean; write?: boolean } = {}): Command {
    const r = opts.read ?? true;
    const w = opts.write ?? true;
    const off = opts.off ?? iova;
    switch (this.v.profile) {
      case 'iommufd':
        return {
          op: 'IOMMU_IOAS_MAP',
          ioas_id: { ref: 0 },
          flags: 1 | (w ? 2 : 0) | (r ? 4 : 0),
          user_va: { buf: 0, off },
          length: size,
          iova,
        };
      case 'rfc':
        return {
          op: 'IOASID_MAP_DMA',
          ioasid: { ref: 0 },
          flags: (r ? 1 : 0) | (w ? 2 : 0),
          vaddr: { buf: 0, off },
          iova,
          size,
        };
      case 'vfio-type1':
        return { op: 'VFIO_IOMMU_MAP_DMA', flags: (r ? 1 : 0) | (w ? 2 : 0), vaddr: { buf: 0, off }, iova, size };
    }
  }
  map(iova: bigint, size: bigint, opts: { off?: bigint; read?: boolean; write?: boolean } = {}): Outcome {
    return this.step(this.mapCmd(iova, size, opts));
  }
  unmapCmd(iova: bigint, size: bigint): Command {
    switch (this.v.profile) {
      case 'iommufd':
        return { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova, length: size };
      case 'rfc':
        return { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova, size };
      case 'vfio-type1':
        return { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova, size };
    }
  }
  unmap(iova: bigint, size: bigint): Outcome {
    return this.step(this.unmapCmd(iova, size));
  }
  unmapAll(): Outcome {
    switch (this.v.profile) {
      case 'iommufd':
        return this.step({ op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0n, length: (1n << 64n) - 1n });
      case 'rfc':
        return this.step({ op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 2, iova: 0n, size: 0n });
      case 'vfio-type1':
        return this.step({ op: 'VFIO_IOMMU_UNMAP_DMA', flags: 2, iova: 0n, size: 0n });
    }
  }
  /** Whether a one-byte read DMA from device 0 at `iova` is translated. */
  reaches(iova: bigint): boolean {
    return this.step({ op: 'DEVICE_DMA', dev: 0, iova, length: 1n, write: false }).ok;
  }
}

/** The size an UNMAP reported, whatever the profile calls it. */
export function unmapped(o: Outcome): bigint | undefined {
  if (!o.ok) return undefined;
  const v = o.out?.size ?? o.out?.length;
  return typeof v === 'bigint' ? v : undefined;
}

/** The errno of an outcome, or 'ok'. */
export function result(o: Outcome): string {
  return o.ok ? 'ok' : o.errno;
}

/**
 * The CPU side of ENQCMD (HW-031): each virtual machine (CPU context) has a PASID translation table, local → global,
 * that KVM programs and that is either enabled (guest: the MSR holds a local PASID) or disabled (the MSR value goes
 * to the device as it is).
 *
 * Not for: the IOMMU's PASID tables; a PASID delivered here still has to be routed by the IOMMU.
 *
 * @module
 */

/** One CPU context's PASID translation state. */
interface VmXlate {
  enabled: boolean;
  readonly table: Map<number, number>;
}

/** The CPUs' PASID translation tables. */
export class CpuPasid {
  private readonly vms = new Map<number, VmXlate>();

  private vm(id: number): VmXlate {
    let v = this.vms.get(id);
    if (v === undefined) this.vms.set(id, (v = { enabled: false, table: new Map() }));
    return v;
  }

  /** HW_SET_PASID_XLATE: enables or disables translation, and sets (`global` a number) or clears (null) one entry. */
  set(vm: number, change: { enabled?: boolean; local?: number; global?: number | null }): void {
    const v = this.vm(vm);
    if (change.enabled !== undefined) v.enabled = change.enabled;
    if (change.local !== undefined) {
      if (change.global === null || change.global === undefined) v.table.delete(change.local);
      else v.table.set(change.local, change.global);
    }
  }

  /**
   * HW-031: the PASID an ENQCMD with MSR value `msr` reaches the device with — the MSR itself when translation is
   * disabled, the table's entry when enabled — or undefined (the submission faults) when the table has none.
   */
  submit(vm: number, msr: number): number | undefined {
    const v = this.vm(vm);
    return v.enabled ? v.table.get(msr) : msr;
  }

  /** Test-only introspection: the translation of `local` in `vm`, if any. */
  entry(vm: number, local: number): number | undefined {
    return this.vms.get(vm)?.table.get(local);
  }
}

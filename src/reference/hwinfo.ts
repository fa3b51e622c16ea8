/**
 * Chapter INFO — IOMMU_GET_HW_INFO (spec/chapters/INFO.md, INFO-020..023): what the IOMMU behind a bound device
 * reports, for a VMM to build its virtual IOMMU from.
 *
 * The driver's information is abstract: the model reports its type and length and how many bytes were copied and
 * zero-filled, not the VT-d capability register values (the platform does not carry them).
 *
 * @module
 */
import type { Outcome, Outputs } from './commands.ts';
import { HW_INFO } from './commands.ts';
import type { StepContext } from './core/context.ts';
import type { IommuGetHwInfoCmd } from './resolved.ts';
import type { State } from './state.ts';

/** sizeof(struct iommu_hw_info_vtd): flags, __reserved, cap_reg, ecap_reg. */
export const VTD_HW_INFO_SIZE = 24;
/** offsetofend(struct iommu_hw_info, out_capabilities): a smaller `size` leaves it unwritten (FD-031). */
export const HW_INFO_FULL_SIZE = 40;

/** IOMMU_GET_HW_INFO (device.c:iommufd_get_hw_info, intel/iommu.c:intel_iommu_hw_info). */
export function iommufdGetHwInfo(st: State, ctx: StepContext, c: IommuGetHwInfoCmd): Outcome {
  // flags and __reserved before the device (INFO-020).
  if ((c.flags ?? 0) !== 0 || c.reserved_nonzero === true) return ctx.reject('FD-030', 'EOPNOTSUPP');
  ctx.hit('INFO-020');
  const dev = st.get(c.dev_id, 'device');
  // An emulated device's ACCESS is not a DEVICE (iommufd_get_device): ENOENT as for any other object.
  if (dev === undefined || dev.access === true) return ctx.reject('INFO-020', 'ENOENT');
  if (c.data_len < 0) return ctx.reject('INFO-021', 'EINVAL');
  const pd = st.platform.devices[dev.dev]!;
  const io = st.platform.iommu;
  // VT-d reports its registers (INFO-023); copy what fits, zero the rest, report the full length (INFO-021).
  const len = VTD_HW_INFO_SIZE;
  const copied = Math.min(c.data_len, len);
  ctx.hit('INFO-021');
  ctx.hit('INFO-023');
  const pasidOn = pd.pasid && io.pasidBits > 0;
  const out: Outputs = {
    data_len: len,
    out_data_type: HW_INFO.TYPE_INTEL_VTD,
    copied,
    zeroed: c.data_len - copied,
    out_max_pasid_log2: pasidOn ? io.pasidBits : 0,
  };
  ctx.hit('INFO-022');
  // out_capabilities lies past a 32-byte structure: not written within a short size (FD-031).
  const size = c.abi?.size ?? HW_INFO_FULL_SIZE;
  if (size >= HW_INFO_FULL_SIZE) out.out_capabilities = io.dirtyTracking ? HW_INFO.CAP_DIRTY_TRACKING : 0;
  else ctx.hit('FD-031');
  return ctx.ok(out);
}

/**
 * Command types after reference resolution: every `IdArg` is a plain number. The model's handlers take these.
 *
 * @module
 */
import type * as C from './commands.ts';

/** `T` with `{ ref }` ID arguments replaced by numbers. */
export type Resolved<T> = { [K in keyof T]: Exclude<T[K], { ref: number }> };

type Of<Op extends C.Op> = Resolved<Extract<C.Command, { op: Op }>>;

export type IommuDestroyCmd = Of<'IOMMU_DESTROY'>;
export type IommuIoasAllocCmd = Of<'IOMMU_IOAS_ALLOC'>;
export type IommuIoasIovaRangesCmd = Of<'IOMMU_IOAS_IOVA_RANGES'>;
export type IommuIoasAllowIovasCmd = Of<'IOMMU_IOAS_ALLOW_IOVAS'>;
export type IommuIoasMapCmd = Of<'IOMMU_IOAS_MAP'>;
export type IommuIoasCopyCmd = Of<'IOMMU_IOAS_COPY'>;
export type IommuIoasUnmapCmd = Of<'IOMMU_IOAS_UNMAP'>;
export type IommuOptionCmd = Of<'IOMMU_OPTION'>;
export type IommuVfioIoasCmd = Of<'IOMMU_VFIO_IOAS'>;
export type IommuHwptAllocCmd = Of<'IOMMU_HWPT_ALLOC'>;
export type VfioDeviceBindIommufdCmd = Of<'VFIO_DEVICE_BIND_IOMMUFD'>;
export type VfioDeviceAttachIommufdPtCmd = Of<'VFIO_DEVICE_ATTACH_IOMMUFD_PT'>;
export type VfioDeviceDetachIommufdPtCmd = Of<'VFIO_DEVICE_DETACH_IOMMUFD_PT'>;
export type VfioDeviceCloseCmd = Of<'VFIO_DEVICE_CLOSE'>;
export type VfioCheckExtensionCmd = Of<'VFIO_CHECK_EXTENSION'>;
export type VfioGroupSetContainerCmd = Of<'VFIO_GROUP_SET_CONTAINER'>;
export type VfioGroupUnsetContainerCmd = Of<'VFIO_GROUP_UNSET_CONTAINER'>;
export type VfioSetIommuCmd = Of<'VFIO_SET_IOMMU'>;
export type VfioIommuGetInfoCmd = Of<'VFIO_IOMMU_GET_INFO'>;
export type VfioIommuMapDmaCmd = Of<'VFIO_IOMMU_MAP_DMA'>;
export type VfioIommuUnmapDmaCmd = Of<'VFIO_IOMMU_UNMAP_DMA'>;
export type IoasidCheckExtensionCmd = Of<'IOASID_CHECK_EXTENSION'>;
export type IoasidGetInfoCmd = Of<'IOASID_GET_INFO'>;
export type IoasidAllocCmd = Of<'IOASID_ALLOC'>;
export type IoasidFreeCmd = Of<'IOASID_FREE'>;
export type IoasidMapDmaCmd = Of<'IOASID_MAP_DMA'>;
export type IoasidUnmapDmaCmd = Of<'IOASID_UNMAP_DMA'>;
export type VfioBindIoasidFdCmd = Of<'VFIO_BIND_IOASID_FD'>;
export type VfioUnbindIoasidFdCmd = Of<'VFIO_UNBIND_IOASID_FD'>;
export type VfioAttachIoasidCmd = Of<'VFIO_ATTACH_IOASID'>;
export type VfioDetachIoasidCmd = Of<'VFIO_DETACH_IOASID'>;
export type DeviceDmaCmd = Of<'DEVICE_DMA'>;

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
export type IommuHwptInvalidateCmd = Of<'IOMMU_HWPT_INVALIDATE'>;
export type IommuGetHwInfoCmd = Of<'IOMMU_GET_HW_INFO'>;
export type IommuHwptSetDirtyTrackingCmd = Of<'IOMMU_HWPT_SET_DIRTY_TRACKING'>;
export type IommuHwptGetDirtyBitmapCmd = Of<'IOMMU_HWPT_GET_DIRTY_BITMAP'>;
export type IommuFaultQueueAllocCmd = Of<'IOMMU_FAULT_QUEUE_ALLOC'>;
export type IommuFaultReadCmd = Of<'IOMMU_FAULT_READ'>;
export type IommuFaultRespondCmd = Of<'IOMMU_FAULT_RESPOND'>;
export type IommuFaultCloseCmd = Of<'IOMMU_FAULT_CLOSE'>;
export type IoasidFaultReadCmd = Of<'IOASID_FAULT_READ'>;
export type IoasidFaultRespondCmd = Of<'IOASID_FAULT_RESPOND'>;
export type DevicePageRequestCmd = Of<'DEVICE_PAGE_REQUEST'>;
export type IoasidRegisterMemoryCmd = Of<'IOASID_REGISTER_MEMORY'>;
export type IoasidUnregisterMemoryCmd = Of<'IOASID_UNREGISTER_MEMORY'>;
export type IoasidCreateNestingCmd = Of<'IOASID_CREATE_NESTING'>;
export type IoasidBindPgtableCmd = Of<'IOASID_BIND_PGTABLE'>;
export type IoasidBindPasidTableCmd = Of<'IOASID_BIND_PASID_TABLE'>;
export type IoasidInvalidateCacheCmd = Of<'IOASID_INVALIDATE_CACHE'>;
export type IoasidSetHwidModeCmd = Of<'IOASID_SET_HWID_MODE'>;
export type IoasidHwidSetGlobalMinCmd = Of<'IOASID_HWID_SET_GLOBAL_MIN'>;
export type IoasidPasidStateSaveCmd = Of<'IOASID_PASID_STATE_SAVE'>;
export type IoasidPasidStateRestoreCmd = Of<'IOASID_PASID_STATE_RESTORE'>;
export type KvmMapPasidCmd = Of<'KVM_MAP_PASID'>;
export type KvmUnmapPasidCmd = Of<'KVM_UNMAP_PASID'>;
export type CpuEnqcmdCmd = Of<'CPU_ENQCMD'>;
export type MigrateCmd = Of<'MIGRATE'>;

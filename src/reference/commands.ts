/**
 * The commands of every profile, and their outcomes, as io-ts codecs: the single source of the command and outcome
 * types of the models, the trace format and the adapter protocol. A command is an object tagged by `op`, the
 * ioctl's name (`spec/commands.txt` is the vocabulary).
 *
 * Numeric flag fields are raw bitmasks, so adversarial traces can set unknown bits.
 *
 * @module
 */
import * as t from 'io-ts';
import { Abi, DevArg, IdArg, IovaRange, UserPtr } from './args.ts';
import { U64 } from './u64.ts';

/** Builds the codec of one command: `op` plus required and optional fields. */
function cmd<O extends string, R extends t.Props, P extends t.Props>(op: O, required: R, optional: P) {
  return t.intersection([t.type({ op: t.literal(op), ...required }), t.partial({ abi: Abi, ...optional })], op);
}
const none = {};

// ---------------------------------------------------------------------------------------------------------------
// iommufd (Linux 6.12). Flag values are the uapi header's.

/** IOMMU_IOAS_MAP flags (include/uapi/linux/iommufd.h `enum iommufd_ioas_map_flags`). */
export const IOAS_MAP = { FIXED_IOVA: 1, WRITEABLE: 2, READABLE: 4 } as const;
/** IOMMU_HWPT_ALLOC flags. */
export const HWPT_ALLOC = { NEST_PARENT: 1, DIRTY_TRACKING: 2, FAULT_ID_VALID: 4 } as const;
/** IOMMU_HWPT_DATA_* types. */
export const HWPT_DATA = { NONE: 0, VTD_S1: 1, ARM_SMMUV3: 2, SELFTEST: 0xdead } as const;
/** IOMMU_OPTION ids and ops (the struct's `op` field is called `operation` in traces: `op` is the command tag). */
export const OPTION = { RLIMIT_MODE: 0, HUGE_PAGES: 1, OP_SET: 0, OP_GET: 1 } as const;
/** IOMMU_VFIO_IOAS ops (the struct's `op` field is `operation` in traces). */
export const VFIO_IOAS_OP = { GET: 0, SET: 1, CLEAR: 2 } as const;

/** User data of a VT-d stage-1 nested HWPT (`struct iommu_hwpt_vtd_s1`), abstracted. */
export const VtdS1 = t.type({ flags: t.number, pgtbl_addr: U64, addr_width: t.number }, 'VtdS1');

export const IommuDestroy = cmd('IOMMU_DESTROY', { id: IdArg }, none);
export const IommuIoasAlloc = cmd('IOMMU_IOAS_ALLOC', {}, { flags: t.number });
export const IommuIoasIovaRanges = cmd(
  'IOMMU_IOAS_IOVA_RANGES',
  { ioas_id: IdArg, num_iovas: t.number },
  { __reserved: t.number },
);
export const IommuIoasAllowIovas = cmd(
  'IOMMU_IOAS_ALLOW_IOVAS',
  { ioas_id: IdArg, iovas: t.array(IovaRange) },
  { __reserved: t.number },
);
export const IommuIoasMap = cmd(
  'IOMMU_IOAS_MAP',
  { ioas_id: IdArg, flags: t.number, user_va: UserPtr, length: U64, iova: U64 },
  { __reserved: t.number },
);
export const IommuIoasCopy = cmd(
  'IOMMU_IOAS_COPY',
  { dst_ioas_id: IdArg, src_ioas_id: IdArg, flags: t.number, length: U64, dst_iova: U64, src_iova: U64 },
  none,
);
export const IommuIoasUnmap = cmd('IOMMU_IOAS_UNMAP', { ioas_id: IdArg, iova: U64, length: U64 }, none);
export const IommuOption = cmd(
  'IOMMU_OPTION',
  { option_id: t.number, operation: t.number, object_id: IdArg, val64: U64 },
  { __reserved: t.number },
);
export const IommuVfioIoas = cmd('IOMMU_VFIO_IOAS', { operation: t.number, ioas_id: IdArg }, { __reserved: t.number });
export const IommuHwptAlloc = cmd(
  'IOMMU_HWPT_ALLOC',
  { flags: t.number, dev_id: IdArg, pt_id: IdArg, data_type: t.number },
  { data: VtdS1, data_len: t.number, fault_id: IdArg, __reserved: t.number },
);
/** IOMMU_HWPT_INVALIDATE data types (`enum iommu_hwpt_invalidate_data_type`). */
export const HWPT_INVALIDATE_DATA = { VTD_S1: 0 } as const;
/** `struct iommu_hwpt_vtd_s1_invalidate` flags. */
export const VTD_INV_FLAGS = { LEAF: 1 } as const;
/** One VT-d stage-1 invalidation entry (`struct iommu_hwpt_vtd_s1_invalidate`, 24 bytes). */
export const VtdS1Invalidate = t.type({ addr: U64, npages: U64, flags: t.number }, 'VtdS1Invalidate');
/**
 * IOMMU_HWPT_INVALIDATE. `entries` are the readable entries at data_uptr (entry_num beyond them are unreadable);
 * `null_array` passes data_uptr 0.
 */
export const IommuHwptInvalidate = cmd(
  'IOMMU_HWPT_INVALIDATE',
  { hwpt_id: IdArg, data_type: t.number, entry_len: t.number, entry_num: t.number },
  { entries: t.array(VtdS1Invalidate), null_array: t.boolean, __reserved: t.number },
);
/** IOMMU_HW_INFO types and capabilities. */
export const HW_INFO = {
  TYPE_NONE: 0,
  TYPE_INTEL_VTD: 1,
  CAP_DIRTY_TRACKING: 1,
  CAP_PCI_PASID_EXEC: 2,
  CAP_PCI_PASID_PRIV: 4,
} as const;
/** IOMMU_GET_HW_INFO: `data_len` is the caller's buffer size; `reserved_nonzero` sets a byte of `__reserved[3]`. */
export const IommuGetHwInfo = cmd(
  'IOMMU_GET_HW_INFO',
  { dev_id: IdArg, data_len: t.number },
  { flags: t.number, reserved_nonzero: t.boolean },
);
/** IOMMU_HWPT_SET_DIRTY_TRACKING flags. */
export const DIRTY_TRACKING = { ENABLE: 1 } as const;
/** IOMMU_HWPT_GET_DIRTY_BITMAP flags. */
export const DIRTY_BITMAP = { NO_CLEAR: 1 } as const;
export const IommuHwptSetDirtyTracking = cmd(
  'IOMMU_HWPT_SET_DIRTY_TRACKING',
  { hwpt_id: IdArg, flags: t.number },
  { __reserved: t.number },
);
export const IommuHwptGetDirtyBitmap = cmd(
  'IOMMU_HWPT_GET_DIRTY_BITMAP',
  { hwpt_id: IdArg, flags: t.number, iova: U64, length: U64, page_size: U64 },
  { __reserved: t.number },
);
/** IOMMU_FAULT_QUEUE_ALLOC: creates a FAULT object; its fault fd is named by the FAULT ID in later commands. */
export const IommuFaultQueueAlloc = cmd('IOMMU_FAULT_QUEUE_ALLOC', {}, { flags: t.number });
/** read() on the fault fd of FAULT `fault_id`: `count` bytes (records are 40 bytes), at file position `pos`. */
export const IommuFaultRead = cmd('IOMMU_FAULT_READ', { fault_id: IdArg, count: t.number }, { pos: t.number });
/** `enum iommufd_page_response_code`, and the rfc codes (which keep FAILURE). */
export const PAGE_RESP = { SUCCESS: 0, INVALID: 1, FAILURE: 2 } as const;
/**
 * write() on the fault fd of FAULT `fault_id`: the response {cookie, code}, then the `more` responses (literal
 * cookies) in order; `count` overrides the byte count (default 8 per response), `pos` the file position.
 */
export const IommuFaultRespond = cmd(
  'IOMMU_FAULT_RESPOND',
  { fault_id: IdArg, cookie: IdArg, code: t.number },
  { more: t.array(t.type({ cookie: t.number, code: t.number })), count: t.number, pos: t.number },
);
/** close() of the fault fd of FAULT `fault_id`: drops the fd's hold on the FAULT object. */
export const IommuFaultClose = cmd('IOMMU_FAULT_CLOSE', { fault_id: IdArg }, none);
export const VfioDeviceBindIommufd = cmd('VFIO_DEVICE_BIND_IOMMUFD', { dev: DevArg }, { flags: t.number });
export const VfioDeviceAttachIommufdPt = cmd(
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  { dev: DevArg, pt_id: IdArg },
  { flags: t.number },
);
export const VfioDeviceDetachIommufdPt = cmd('VFIO_DEVICE_DETACH_IOMMUFD_PT', { dev: DevArg }, { flags: t.number });
export const VfioDeviceClose = cmd('VFIO_DEVICE_CLOSE', { dev: DevArg }, none);

/** The commands of the `iommufd` profile. */
export const IommufdCommand = t.union([
  IommuDestroy,
  IommuIoasAlloc,
  IommuIoasIovaRanges,
  IommuIoasAllowIovas,
  IommuIoasMap,
  IommuIoasCopy,
  IommuIoasUnmap,
  IommuOption,
  IommuVfioIoas,
  IommuHwptAlloc,
  IommuHwptInvalidate,
  IommuGetHwInfo,
  IommuHwptSetDirtyTracking,
  IommuHwptGetDirtyBitmap,
  IommuFaultQueueAlloc,
  IommuFaultRead,
  IommuFaultRespond,
  IommuFaultClose,
  VfioDeviceBindIommufd,
  VfioDeviceAttachIommufdPt,
  VfioDeviceDetachIommufdPt,
  VfioDeviceClose,
]);
export type IommufdCommand = t.TypeOf<typeof IommufdCommand>;

// ---------------------------------------------------------------------------------------------------------------
// vfio-type1. Values from include/uapi/linux/vfio.h.

/** VFIO IOMMU types and extensions (`VFIO_TYPE1_IOMMU` …). */
export const VFIO = {
  TYPE1_IOMMU: 1,
  TYPE1v2_IOMMU: 3,
  DMA_CC_IOMMU: 4,
  TYPE1_NESTING_IOMMU: 6,
  UNMAP_ALL: 9,
  UPDATE_VADDR: 10,
} as const;
/** VFIO_IOMMU_MAP_DMA flags. */
export const VFIO_DMA_MAP = { READ: 1, WRITE: 2, VADDR: 4 } as const;
/** VFIO_IOMMU_UNMAP_DMA flags. */
export const VFIO_DMA_UNMAP = { GET_DIRTY_BITMAP: 1, ALL: 2, VADDR: 4 } as const;

export const VfioGetApiVersion = cmd('VFIO_GET_API_VERSION', {}, none);
export const VfioCheckExtension = cmd('VFIO_CHECK_EXTENSION', { extension: t.number }, none);
export const VfioGroupSetContainer = cmd('VFIO_GROUP_SET_CONTAINER', { group: t.number }, none);
export const VfioGroupUnsetContainer = cmd('VFIO_GROUP_UNSET_CONTAINER', { group: t.number }, none);
export const VfioSetIommu = cmd('VFIO_SET_IOMMU', { type: t.number }, none);
export const VfioIommuGetInfo = cmd('VFIO_IOMMU_GET_INFO', { argsz: t.number }, none);
export const VfioIommuMapDma = cmd(
  'VFIO_IOMMU_MAP_DMA',
  { flags: t.number, vaddr: UserPtr, iova: U64, size: U64 },
  { argsz: t.number },
);
export const VfioIommuUnmapDma = cmd(
  'VFIO_IOMMU_UNMAP_DMA',
  { flags: t.number, iova: U64, size: U64 },
  { argsz: t.number },
);

/** The commands of the `vfio-type1` profile. */
export const VfioType1Command = t.union([
  VfioGetApiVersion,
  VfioCheckExtension,
  VfioGroupSetContainer,
  VfioGroupUnsetContainer,
  VfioSetIommu,
  VfioIommuGetInfo,
  VfioIommuMapDma,
  VfioIommuUnmapDma,
]);
export type VfioType1Command = t.TypeOf<typeof VfioType1Command>;

// ---------------------------------------------------------------------------------------------------------------
// rfc: the /dev/ioasid design. Numbers are ours (the RFC leaves them open), see spec/PROFILES.md.

/** IOASID formats declared at creation. */
export const IoasidFormat = t.keyof({ kernel: null, pgtable: null, 'pasid-table': null }, 'IoasidFormat');
/** IOASID_CHECK_EXTENSION extensions. */
export const RFC_EXT = {
  TYPE1_MAP: 1,
  PGTABLE_BIND: 2,
  PASID_TABLE_BIND: 3,
  NESTING_HW: 4,
  NESTING_SW: 5,
  PREREG: 6,
  IOPF: 7,
  PASID_GLOBAL: 8,
} as const;
/** IOASID_MAP_DMA flags (type1's). */
export const RFC_MAP = { READ: 1, WRITE: 2 } as const;
/** IOASID_UNMAP_DMA flags. */
export const RFC_UNMAP = { ALL: 2 } as const;

export const IoasidCheckExtension = cmd('IOASID_CHECK_EXTENSION', { extension: t.number }, none);
/**
 * IOASID_GET_INFO: `num_ranges`, when given, is the number of entries the caller's permitted-range array holds
 * (INFO-012); absent, the array is large enough.
 */
export const IoasidGetInfo = cmd('IOASID_GET_INFO', { ioasid: IdArg }, { num_ranges: t.number });
export const IoasidAlloc = cmd('IOASID_ALLOC', {}, { flags: t.number });
export const IoasidFree = cmd('IOASID_FREE', { ioasid: IdArg }, none);
/**
 * The `vaddr` of IOASID_MAP_DMA on a software-nesting child (NEST-007): an IOVA of the parent, not a process
 * address. On any other IOASID it stands for the process address of that value.
 */
export const ParentIova = t.type({ iova: U64 }, 'ParentIova');
export type ParentIova = t.TypeOf<typeof ParentIova>;
export const IoasidMapDma = cmd(
  'IOASID_MAP_DMA',
  { ioasid: IdArg, flags: t.number, vaddr: t.union([UserPtr, ParentIova]), iova: U64, size: U64 },
  none,
);
export const IoasidUnmapDma = cmd('IOASID_UNMAP_DMA', { ioasid: IdArg, flags: t.number, iova: U64, size: U64 }, none);
export const VfioBindIoasidFd = cmd('VFIO_BIND_IOASID_FD', { dev: DevArg }, none);
export const VfioUnbindIoasidFd = cmd('VFIO_UNBIND_IOASID_FD', { dev: DevArg }, none);
export const VfioAttachIoasid = cmd('VFIO_ATTACH_IOASID', { dev: DevArg, ioasid: IdArg }, { pasid: t.number });
export const VfioDetachIoasid = cmd('VFIO_DETACH_IOASID', { dev: DevArg, ioasid: IdArg }, { pasid: t.number });

/** IOASID_INVALIDATE_CACHE granularities (INV-001). */
export const RFC_INV = { ALL: 0, RANGE: 1 } as const;
/** IOASID_SET_HWID_MODE modes (PASID-009). */
export const RFC_HWID = { PER_RID: 0, GLOBAL: 1 } as const;

export const IoasidRegisterMemory = cmd('IOASID_REGISTER_MEMORY', { vaddr: UserPtr, size: U64 }, none);
export const IoasidUnregisterMemory = cmd('IOASID_UNREGISTER_MEMORY', { vaddr: UserPtr, size: U64 }, none);
/**
 * IOASID_CREATE_NESTING: a child of `parent` with format kind `format` (`kernel`, `pgtable`, `pasid-table`; any
 * other string is malformed, NEST-002) and, for `pgtable` / `pasid-table`, the vendor table format it declares
 * (`table_format`, one of the platform's `pgtableFormats` / `pasidTableFormats`). Returns `id`.
 */
export const IoasidCreateNesting = cmd(
  'IOASID_CREATE_NESTING',
  { parent: IdArg, format: t.string },
  { table_format: t.string },
);
/** IOASID_BIND_PGTABLE: the root (a parent IOVA) of a user page table of the declared format. */
export const IoasidBindPgtable = cmd('IOASID_BIND_PGTABLE', { ioasid: IdArg, table_format: t.string, root: U64 }, none);
/** IOASID_BIND_PASID_TABLE: the base (a parent IOVA) of a user PASID table of the declared format. */
export const IoasidBindPasidTable = cmd(
  'IOASID_BIND_PASID_TABLE',
  { ioasid: IdArg, table_format: t.string, base: U64 },
  none,
);
/** IOASID_INVALIDATE_CACHE: `granularity` {@link RFC_INV}; `start` / `size` for a range. */
export const IoasidInvalidateCache = cmd(
  'IOASID_INVALIDATE_CACHE',
  { ioasid: IdArg, granularity: t.number },
  { start: U64, size: U64 },
);
export const IoasidSetHwidMode = cmd('IOASID_SET_HWID_MODE', { mode: t.number }, none);
export const IoasidHwidSetGlobalMin = cmd('IOASID_HWID_SET_GLOBAL_MIN', { min: t.number }, none);
/** The PASID state that migrates (PASID-026): the scheme, the split and each PASID attachment by its user PASID. */
export const PasidState = t.type(
  {
    mode: t.number,
    min: t.number,
    attachments: t.array(t.type({ dev: DevArg, pasid: t.number, ioasid: t.number })),
  },
  'PasidState',
);
export type PasidState = t.TypeOf<typeof PasidState>;
/** IOASID_PASID_STATE_SAVE: returns `state` ({@link PasidState}). */
export const IoasidPasidStateSave = cmd('IOASID_PASID_STATE_SAVE', {}, none);
/** IOASID_PASID_STATE_RESTORE: re-creates a saved {@link PasidState} on this fd. */
export const IoasidPasidStateRestore = cmd('IOASID_PASID_STATE_RESTORE', { state: PasidState }, none);
/** KVM_MAP_PASID{user_pasid, ioasid_fd, ioasid}: the CPU translation of `user_pasid` (the fd is this one). */
export const KvmMapPasid = cmd('KVM_MAP_PASID', { user_pasid: t.number, ioasid: IdArg }, none);
export const KvmUnmapPasid = cmd('KVM_UNMAP_PASID', { user_pasid: t.number }, none);
/** Harness step (rfc): a CPU thread with `pasid` in its PASID MSR submits work to device `dev` with ENQCMD. */
export const CpuEnqcmd = cmd('CPU_ENQCMD', { dev: DevArg, pasid: t.number }, none);
/** Harness step (rfc): save the PASID state, move to a fresh fd on the destination, restore it there. */
export const Migrate = cmd('MIGRATE', {}, none);
/** IOASID_FAULT_READ: up to `count` records (IOASID, address, access, cookie) from the fd's fault queue. */
export const IoasidFaultRead = cmd('IOASID_FAULT_READ', { count: t.number }, none);
/** IOASID_FAULT_RESPOND: completes the page group `cookie` reported under `ioasid` with `code` (PAGE_RESP). */
export const IoasidFaultRespond = cmd('IOASID_FAULT_RESPOND', { ioasid: IdArg, cookie: IdArg, code: t.number }, none);

/** The commands of the `rfc` profile. */
export const RfcCommand = t.union([
  IoasidCheckExtension,
  IoasidGetInfo,
  IoasidAlloc,
  IoasidFree,
  IoasidMapDma,
  IoasidUnmapDma,
  VfioBindIoasidFd,
  VfioUnbindIoasidFd,
  VfioAttachIoasid,
  VfioDetachIoasid,
  IoasidRegisterMemory,
  IoasidUnregisterMemory,
  IoasidCreateNesting,
  IoasidBindPgtable,
  IoasidBindPasidTable,
  IoasidInvalidateCache,
  IoasidSetHwidMode,
  IoasidHwidSetGlobalMin,
  IoasidPasidStateSave,
  IoasidPasidStateRestore,
  KvmMapPasid,
  KvmUnmapPasid,
  CpuEnqcmd,
  Migrate,
  IoasidFaultRead,
  IoasidFaultRespond,
]);
export type RfcCommand = t.TypeOf<typeof RfcCommand>;

// ---------------------------------------------------------------------------------------------------------------
// Harness steps, in every profile: what a device does.

/** A device issues DMA: translated, or faults. `pasid` absent means a request without PASID (RID only). */
export const DeviceDma = cmd(
  'DEVICE_DMA',
  { dev: DevArg, iova: U64, length: U64, write: t.boolean },
  { pasid: t.number },
);

/** PCIe page request permissions (`IOMMU_PGFAULT_PERM_*`). */
export const PGFAULT_PERM = { READ: 1, WRITE: 2, EXEC: 4, PRIV: 8 } as const;
/**
 * A device's page request (PRI) reaches the IOMMU: one request of page group `grpid`; `last` is "Last Request in
 * PRG"; `pasid` absent means a request without PASID. The outcome's `response` is what the device receives at
 * once (`SUCCESS`, `INVALID`, `FAILURE`), `queued` when the group went to a user queue, or `none` for a request
 * that is not the last of its group.
 */
export const DevicePageRequest = cmd(
  'DEVICE_PAGE_REQUEST',
  { dev: DevArg, addr: U64, grpid: t.number, perm: t.number, last: t.boolean },
  { pasid: t.number },
);

/**
 * The user closes the fd (iommufd, /dev/ioasid, the container): its ioctls then fail with EBADF (FD-036), while bound
 * devices, groups and fault fds keep its context alive (FD-021, DEV-018). Once nothing holds the context it is
 * released, every object destroyed (FD-020), and the harness opens a fresh fd, as RESET does.
 */
export const FdClose = cmd('FD_CLOSE', {}, none);

/** The harness steps. */
export const HarnessCommand = t.union([DeviceDma, DevicePageRequest, FdClose]);
export type HarnessCommand = t.TypeOf<typeof HarnessCommand>;

/** Any command of any profile. */
export const Command = t.union([IommufdCommand, VfioType1Command, RfcCommand, HarnessCommand], 'Command');
export type Command = t.TypeOf<typeof Command>;
/** The `op` names of all commands. */
export type Op = Command['op'];

/** The codec of the commands a profile accepts (its own and the harness steps). */
export const PROFILE_COMMANDS = {
  rfc: t.union([RfcCommand, HarnessCommand]),
  iommufd: t.union([IommufdCommand, HarnessCommand]),
  'vfio-type1': t.union([VfioType1Command, HarnessCommand]),
} as const;
/** A profile name. */
export type Profile = keyof typeof PROFILE_COMMANDS;
/** The profiles, in the order of spec/profiles.txt. */
export const PROFILES: readonly Profile[] = ['rfc', 'iommufd', 'vfio-type1'];

/** The `op` of each member of a union of {@link cmd} codecs. */
function opsOf(u: t.UnionType<t.Mixed[]>): string[] {
  return u.types.map(
    (c) => (c as t.IntersectionType<[t.InterfaceType<{ op: t.LiteralType<string> }>]>).types[0].props.op.value,
  );
}

/**
 * The profiles each command belongs to (FD-022: a command of another profile is ENOTTY), derived from the codecs:
 * a profile's own commands, and the harness steps in every profile. The model and the protocol both read this table.
 */
export const OP_PROFILES: ReadonlyMap<string, readonly Profile[]> = new Map<string, readonly Profile[]>([
  ...opsOf(IommufdCommand).map((op): [string, readonly Profile[]] => [op, ['iommufd']]),
  ...opsOf(VfioType1Command).map((op): [string, readonly Profile[]] => [op, ['vfio-type1']]),
  ...opsOf(RfcCommand).map((op): [string, readonly Profile[]] => [op, ['rfc']]),
  ...opsOf(HarnessCommand).map((op): [string, readonly Profile[]] => [op, PROFILES]),
]);

// ---------------------------------------------------------------------------------------------------------------
// Outcomes.

/** Output values of a step: numbers (IDs, counts), u64s (in JSON: "0x…" strings, which no other output uses), strings, lists, records. */
export const OutValue: t.Type<OutValue, unknown> = t.recursion('OutValue', () =>
  t.union([t.number, t.boolean, U64, t.string, t.array(OutValue), t.record(t.string, OutValue)]),
);
export type OutValue = number | boolean | string | bigint | OutValue[] | { [k: string]: OutValue };

/** The outputs of a step, by the field names of the uAPI struct (`out_ioas_id`, `iova`, `length`…). */
export const Outputs = t.record(t.string, OutValue);
export type Outputs = { [k: string]: OutValue };

/**
 * What a step did: success with its outputs, or an errno (with the outputs some errors still write back, such as
 * `num_iovas` with EMSGSIZE). A DMA step's outcome is `ok` with `{ pa }` or `fault` with its reason.
 */
export const Outcome = t.union([
  t.intersection([t.type({ ok: t.literal(true) }), t.partial({ out: Outputs })]),
  t.intersection([t.type({ ok: t.literal(false), errno: t.string }), t.partial({ out: Outputs })]),
]);
export type Outcome = { ok: true; out?: Outputs } | { ok: false; errno: string; out?: Outputs };

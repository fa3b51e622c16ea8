/**
 * The executable uAPI reference model: a deterministic state machine of one open fd (and the devices and container
 * around it) in one profile. Each command is handled by the module of the spec chapter that defines it; every
 * handler records the clauses it evaluates.
 *
 * ```ts
 * const model = new Model({ profile: 'iommufd', features: new Set(['copy']), platform: defaultPlatform() });
 * const { outcome, clauses } = model.step({ op: 'IOMMU_IOAS_ALLOC' });
 * ```
 *
 * Not for: driving real hardware, or judging timing; it says what the specification requires of each step.
 *
 * @module
 */
import { OP_PROFILES, type Command, type Outcome, type Profile } from './commands.ts';
import { StepContext, type StepResult } from './core/context.ts';
import { deviceDma } from './dma.ts';
import {
  iommufdAttach,
  iommufdBind,
  iommufdClose,
  iommufdDetach,
  ModelLimit,
  rfcAttach,
  rfcBind,
  rfcDetach,
  rfcUnbind,
  type1SetContainer,
  type1SetIommu,
  type1UnsetContainer,
} from './dev.ts';
import { closedFd, closedFdRefuses, fdClose, iommufdDestroy } from './fd.ts';
import { rfcCheckExtension, rfcGetInfo, vfioApiVersion, vfioCheckExtension, vfioGetInfo } from './info.ts';
import {
  iommufdAllowIovas,
  iommufdIoasAlloc,
  iommufdIovaRanges,
  iommufdOption,
  iommufdVfioIoas,
  rfcAlloc,
  rfcFree,
} from './ioas.ts';
import { iommufdCopy, iommufdMap, iommufdUnmap, rfcMap, rfcUnmap, type1Map, type1Unmap } from './map.ts';
import { iommufdHwptAlloc, iommufdHwptInvalidate } from './nest.ts';
import { abortsOnWriteBackFault, applyAbi, writeBackFault, writeBackFaults } from './abi.ts';
import { iommufdGetDirtyBitmap, iommufdSetDirtyTracking } from './dirty.ts';
import {
  devicePageRequest,
  iommufdFaultClose,
  iommufdFaultQueueAlloc,
  iommufdFaultRead,
  iommufdFaultRespond,
  rfcFaultRead,
  rfcFaultRespond,
} from './fault.ts';
import { iommufdGetHwInfo } from './hwinfo.ts';
import { rfcBindPasidTable, rfcBindPgtable } from './bind.ts';
import { rfcInvalidateCache } from './inv.ts';
import { rfcRegisterMemory, rfcUnregisterMemory } from './mem.ts';
import { rfcMigrate, rfcPasidStateRestore, rfcPasidStateSave } from './migrate.ts';
import { rfcCreateNesting } from './nesting.ts';
import { rfcCpuEnqcmd, rfcKvmMapPasid, rfcKvmUnmapPasid, rfcSetGlobalMin, rfcSetHwidMode } from './pasid.ts';
import type { Platform } from './platform.ts';
import { resolveCommand } from './refs.ts';
import type { Resolved } from './resolved.ts';
import { State } from './state.ts';
import { createView } from './view-impl.ts';
import { InvariantChecker } from './invariants.ts';
import type { ModelView } from './view.ts';

export { ModelLimit } from './dev.ts';
export type { StepResult, Violation } from './core/context.ts';

/** The handler of command `K`: the function of the spec chapter's module that applies it. */
type Handler<K extends Command['op']> = (
  st: State,
  ctx: StepContext,
  c: Extract<Resolved<Command>, { op: K }>,
) => Outcome;

/**
 * Which module applies which command: one handler per op, exhaustive by type (a new command without a handler does
 * not compile). A table rather than a `match` chain: a step's dispatch is one property read.
 */
const HANDLERS: { readonly [K in Command['op']]: Handler<K> } = {
  IOMMU_DESTROY: iommufdDestroy,
  IOMMU_IOAS_ALLOC: iommufdIoasAlloc,
  IOMMU_IOAS_IOVA_RANGES: iommufdIovaRanges,
  IOMMU_IOAS_ALLOW_IOVAS: iommufdAllowIovas,
  IOMMU_IOAS_MAP: iommufdMap,
  IOMMU_IOAS_COPY: iommufdCopy,
  IOMMU_IOAS_UNMAP: iommufdUnmap,
  IOMMU_OPTION: iommufdOption,
  IOMMU_VFIO_IOAS: iommufdVfioIoas,
  IOMMU_HWPT_ALLOC: iommufdHwptAlloc,
  VFIO_DEVICE_BIND_IOMMUFD: iommufdBind,
  VFIO_DEVICE_ATTACH_IOMMUFD_PT: iommufdAttach,
  VFIO_DEVICE_DETACH_IOMMUFD_PT: iommufdDetach,
  VFIO_DEVICE_CLOSE: iommufdClose,
  VFIO_GET_API_VERSION: vfioApiVersion,
  VFIO_CHECK_EXTENSION: vfioCheckExtension,
  VFIO_GROUP_SET_CONTAINER: type1SetContainer,
  VFIO_GROUP_UNSET_CONTAINER: type1UnsetContainer,
  VFIO_SET_IOMMU: type1SetIommu,
  VFIO_IOMMU_GET_INFO: vfioGetInfo,
  VFIO_IOMMU_MAP_DMA: type1Map,
  VFIO_IOMMU_UNMAP_DMA: type1Unmap,
  IOASID_CHECK_EXTENSION: rfcCheckExtension,
  IOASID_GET_INFO: rfcGetInfo,
  IOASID_ALLOC: rfcAlloc,
  IOASID_FREE: rfcFree,
  IOASID_MAP_DMA: rfcMap,
  IOASID_UNMAP_DMA: rfcUnmap,
  VFIO_BIND_IOASID_FD: rfcBind,
  VFIO_UNBIND_IOASID_FD: rfcUnbind,
  VFIO_ATTACH_IOASID: rfcAttach,
  VFIO_DETACH_IOASID: rfcDetach,
  IOASID_REGISTER_MEMORY: rfcRegisterMemory,
  IOASID_UNREGISTER_MEMORY: rfcUnregisterMemory,
  IOASID_CREATE_NESTING: rfcCreateNesting,
  IOASID_BIND_PGTABLE: rfcBindPgtable,
  IOASID_BIND_PASID_TABLE: rfcBindPasidTable,
  IOASID_INVALIDATE_CACHE: rfcInvalidateCache,
  IOASID_SET_HWID_MODE: rfcSetHwidMode,
  IOASID_HWID_SET_GLOBAL_MIN: rfcSetGlobalMin,
  IOASID_PASID_STATE_SAVE: rfcPasidStateSave,
  IOASID_PASID_STATE_RESTORE: rfcPasidStateRestore,
  KVM_MAP_PASID: rfcKvmMapPasid,
  KVM_UNMAP_PASID: rfcKvmUnmapPasid,
  CPU_ENQCMD: rfcCpuEnqcmd,
  MIGRATE: rfcMigrate,
  IOMMU_HWPT_INVALIDATE: iommufdHwptInvalidate,
  IOMMU_GET_HW_INFO: iommufdGetHwInfo,
  IOMMU_HWPT_SET_DIRTY_TRACKING: iommufdSetDirtyTracking,
  IOMMU_HWPT_GET_DIRTY_BITMAP: iommufdGetDirtyBitmap,
  IOMMU_FAULT_QUEUE_ALLOC: iommufdFaultQueueAlloc,
  IOMMU_FAULT_READ: iommufdFaultRead,
  IOMMU_FAULT_RESPOND: iommufdFaultRespond,
  IOMMU_FAULT_CLOSE: iommufdFaultClose,
  IOASID_FAULT_READ: rfcFaultRead,
  IOASID_FAULT_RESPOND: rfcFaultRespond,
  DEVICE_PAGE_REQUEST: devicePageRequest,
  DEVICE_DMA: deviceDma,
  FD_CLOSE: fdClose,
};

/** How a model is configured: the implementation's declared profile, features and platform. */
export interface ModelConfig {
  readonly profile: Profile;
  readonly features: ReadonlySet<string>;
  readonly platform: Platform;
  /** Check the invariants (src/reference/invariants.ts) after every step; default true. */
  readonly invariants?: boolean;
}

/** The reference model of one fd. */
export class Model {
  private state: State;
  private readonly outcomes: Outcome[] = [];
  /** Changes whenever the state may change (each step, each restore): the view's caches key on it. */
  private version = 0;
  /** The read-only view generators use. */
  readonly view: ModelView;
  /** The incremental invariant checker (undefined when `config.invariants` is false). */
  readonly invariants: InvariantChecker | undefined;

  constructor(readonly config: ModelConfig) {
    this.invariants = config.invariants === false ? undefined : new InvariantChecker();
    this.state = new State(config.profile, config.platform, config.features);
    this.view = createView(
      () => this.state,
      () => this.version,
    );
  }

  /** Number of steps taken. */
  get steps(): number {
    return this.outcomes.length;
  }

  /**
   * Applies one command. `{ ref }` ID arguments are resolved against the outcomes of earlier steps. `observed`, the
   * implementation's outcome for the same step, lets the model adopt implementation-chosen values (new IDs,
   * automatic IOVAs) after validating them; broken rules come back as violations.
   *
   * A command of another profile gives ENOTTY (FD-022). A situation the model does not cover throws
   * {@link ModelLimit}.
   */
  step(cmd: Command, observed?: Outcome): StepResult {
    const ctx = new StepContext(observed);
    const c = resolveCommand(cmd, this.outcomes) as Resolved<Command>;
    this.state.stepIndex = this.outcomes.length;
    let outcome: Outcome;
    try {
      // An ioctl on the fd the user closed fails with EBADF before anything else (FD-036).
      outcome = closedFdRefuses(this.state, c.op)
        ? closedFd(ctx)
        : !OP_PROFILES.get(c.op)?.includes(this.config.profile)
          ? this.unknownIoctl(ctx)
          : this.invariants
            ? this.invariants.around(this.state, c, ctx, () => this.abiThenDispatch(c, ctx))
            : this.abiThenDispatch(c, ctx);
    } finally {
      this.version++;
    }
    this.outcomes.push(outcome);
    const decidedBy = !outcome.ok && ctx.decidedBy !== undefined ? { decidedBy: ctx.decidedBy } : {};
    return { outcome, clauses: ctx.clauses, violations: ctx.violations, ...decidedBy };
  }

  /** A snapshot of the state (cheap: mapping trees are copy-on-write). */
  snapshot(): { state: State; steps: number } {
    return { state: this.state.clone(), steps: this.outcomes.length };
  }

  /** Restores a snapshot taken from this model. */
  restore(s: { state: State; steps: number }): void {
    this.state = s.state.clone();
    this.outcomes.length = s.steps;
    this.version++;
  }

  /**
   * A command the fd does not know: ENOTTY (FD-022); a VFIO container passes it to its IOMMU driver only once
   * VFIO_SET_IOMMU chose one, refusing it with EINVAL before (DEV-029) and type1 with ENOTTY after (FD-034).
   */
  private unknownIoctl(ctx: StepContext): Outcome {
    if (this.config.profile !== 'vfio-type1') return ctx.reject('FD-022', 'ENOTTY');
    return this.state.container.iommuType === 0 ? ctx.reject('DEV-029', 'EINVAL') : ctx.reject('FD-034', 'ENOTTY');
  }

  /** The generic ioctl-ABI checks (abi.ts, FD-025..029), then the command's handler. */
  private abiThenDispatch(c: Resolved<Command>, ctx: StepContext): Outcome {
    const a = applyAbi(this.state, ctx, c);
    if ('reject' in a) return a.reject;
    if (!writeBackFaults(this.state, a.cmd)) return this.dispatch(a.cmd, ctx, this.state);
    // A creation whose new ID cannot be written back is aborted (FD-033): run it on a copy, keep nothing.
    if (abortsOnWriteBackFault(a.cmd.op)) {
      const out = this.dispatch(a.cmd, ctx, this.state.clone());
      return writeBackFault(ctx, a.cmd.op, out);
    }
    return writeBackFault(ctx, a.cmd.op, this.dispatch(a.cmd, ctx, this.state));
  }

  /** The command's handler, from the table of the spec chapters' modules ({@link HANDLERS}). */
  private dispatch(c: Resolved<Command>, ctx: StepContext, st: State): Outcome {
    return (HANDLERS[c.op] as Handler<Command['op']>)(st, ctx, c);
  }
}

/** Whether an error is the model saying it does not cover a situation (rather than a bug). */
export function isModelLimit(e: unknown): e is ModelLimit {
  return e instanceof ModelLimit;
}

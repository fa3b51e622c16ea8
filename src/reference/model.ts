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
import { match } from 'ts-pattern';
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
import { iommufdDestroy } from './fd.ts';
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
  /** The read-only view generators use. */
  readonly view: ModelView;
  /** The incremental invariant checker (undefined when `config.invariants` is false). */
  readonly invariants: InvariantChecker | undefined;

  constructor(readonly config: ModelConfig) {
    this.invariants = config.invariants === false ? undefined : new InvariantChecker();
    this.state = new State(config.profile, config.platform, config.features);
    this.view = createView(() => this.state);
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
    const outcome = !OP_PROFILES.get(c.op)?.includes(this.config.profile)
      ? this.unknownIoctl(ctx)
      : this.invariants
        ? this.invariants.around(this.state, c, ctx, () => this.abiThenDispatch(c, ctx))
        : this.abiThenDispatch(c, ctx);
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

  private dispatch(c: Resolved<Command>, ctx: StepContext, st: State): Outcome {
    return match(c)
      .with({ op: 'IOMMU_DESTROY' }, (x) => iommufdDestroy(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_ALLOC' }, (x) => iommufdIoasAlloc(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_IOVA_RANGES' }, (x) => iommufdIovaRanges(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_ALLOW_IOVAS' }, (x) => iommufdAllowIovas(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_MAP' }, (x) => iommufdMap(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_COPY' }, (x) => iommufdCopy(st, ctx, x))
      .with({ op: 'IOMMU_IOAS_UNMAP' }, (x) => iommufdUnmap(st, ctx, x))
      .with({ op: 'IOMMU_OPTION' }, (x) => iommufdOption(st, ctx, x))
      .with({ op: 'IOMMU_VFIO_IOAS' }, (x) => iommufdVfioIoas(st, ctx, x))
      .with({ op: 'IOMMU_HWPT_ALLOC' }, (x) => iommufdHwptAlloc(st, ctx, x))
      .with({ op: 'VFIO_DEVICE_BIND_IOMMUFD' }, (x) => iommufdBind(st, ctx, x))
      .with({ op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT' }, (x) => iommufdAttach(st, ctx, x))
      .with({ op: 'VFIO_DEVICE_DETACH_IOMMUFD_PT' }, (x) => iommufdDetach(st, ctx, x))
      .with({ op: 'VFIO_DEVICE_CLOSE' }, (x) => iommufdClose(st, ctx, x))
      .with({ op: 'VFIO_GET_API_VERSION' }, () => vfioApiVersion(st, ctx))
      .with({ op: 'VFIO_CHECK_EXTENSION' }, (x) => vfioCheckExtension(st, ctx, x))
      .with({ op: 'VFIO_GROUP_SET_CONTAINER' }, (x) => type1SetContainer(st, ctx, x))
      .with({ op: 'VFIO_GROUP_UNSET_CONTAINER' }, (x) => type1UnsetContainer(st, ctx, x))
      .with({ op: 'VFIO_SET_IOMMU' }, (x) => type1SetIommu(st, ctx, x))
      .with({ op: 'VFIO_IOMMU_GET_INFO' }, (x) => vfioGetInfo(st, ctx, x))
      .with({ op: 'VFIO_IOMMU_MAP_DMA' }, (x) => type1Map(st, ctx, x))
      .with({ op: 'VFIO_IOMMU_UNMAP_DMA' }, (x) => type1Unmap(st, ctx, x))
      .with({ op: 'IOASID_CHECK_EXTENSION' }, (x) => rfcCheckExtension(st, ctx, x))
      .with({ op: 'IOASID_GET_INFO' }, (x) => rfcGetInfo(st, ctx, x))
      .with({ op: 'IOASID_ALLOC' }, (x) => rfcAlloc(st, ctx, x))
      .with({ op: 'IOASID_FREE' }, (x) => rfcFree(st, ctx, x))
      .with({ op: 'IOASID_MAP_DMA' }, (x) => rfcMap(st, ctx, x))
      .with({ op: 'IOASID_UNMAP_DMA' }, (x) => rfcUnmap(st, ctx, x))
      .with({ op: 'VFIO_BIND_IOASID_FD' }, (x) => rfcBind(st, ctx, x))
      .with({ op: 'VFIO_UNBIND_IOASID_FD' }, (x) => rfcUnbind(st, ctx, x))
      .with({ op: 'VFIO_ATTACH_IOASID' }, (x) => rfcAttach(st, ctx, x))
      .with({ op: 'VFIO_DETACH_IOASID' }, (x) => rfcDetach(st, ctx, x))
      .with({ op: 'IOASID_REGISTER_MEMORY' }, (x) => rfcRegisterMemory(st, ctx, x))
      .with({ op: 'IOASID_UNREGISTER_MEMORY' }, (x) => rfcUnregisterMemory(st, ctx, x))
      .with({ op: 'IOASID_CREATE_NESTING' }, (x) => rfcCreateNesting(st, ctx, x))
      .with({ op: 'IOASID_BIND_PGTABLE' }, (x) => rfcBindPgtable(st, ctx, x))
      .with({ op: 'IOASID_BIND_PASID_TABLE' }, (x) => rfcBindPasidTable(st, ctx, x))
      .with({ op: 'IOASID_INVALIDATE_CACHE' }, (x) => rfcInvalidateCache(st, ctx, x))
      .with({ op: 'IOASID_SET_HWID_MODE' }, (x) => rfcSetHwidMode(st, ctx, x))
      .with({ op: 'IOASID_HWID_SET_GLOBAL_MIN' }, (x) => rfcSetGlobalMin(st, ctx, x))
      .with({ op: 'IOASID_PASID_STATE_SAVE' }, () => rfcPasidStateSave(st, ctx))
      .with({ op: 'IOASID_PASID_STATE_RESTORE' }, (x) => rfcPasidStateRestore(st, ctx, x))
      .with({ op: 'KVM_MAP_PASID' }, (x) => rfcKvmMapPasid(st, ctx, x))
      .with({ op: 'KVM_UNMAP_PASID' }, (x) => rfcKvmUnmapPasid(st, ctx, x))
      .with({ op: 'CPU_ENQCMD' }, (x) => rfcCpuEnqcmd(st, ctx, x))
      .with({ op: 'MIGRATE' }, (x) => rfcMigrate(st, ctx, x))
      .with({ op: 'IOMMU_HWPT_INVALIDATE' }, (x) => iommufdHwptInvalidate(st, ctx, x))
      .with({ op: 'IOMMU_GET_HW_INFO' }, (x) => iommufdGetHwInfo(st, ctx, x))
      .with({ op: 'IOMMU_HWPT_SET_DIRTY_TRACKING' }, (x) => iommufdSetDirtyTracking(st, ctx, x))
      .with({ op: 'IOMMU_HWPT_GET_DIRTY_BITMAP' }, (x) => iommufdGetDirtyBitmap(st, ctx, x))
      .with({ op: 'IOMMU_FAULT_QUEUE_ALLOC' }, (x) => iommufdFaultQueueAlloc(st, ctx, x))
      .with({ op: 'IOMMU_FAULT_READ' }, (x) => iommufdFaultRead(st, ctx, x))
      .with({ op: 'IOMMU_FAULT_RESPOND' }, (x) => iommufdFaultRespond(st, ctx, x))
      .with({ op: 'IOMMU_FAULT_CLOSE' }, (x) => iommufdFaultClose(st, ctx, x))
      .with({ op: 'IOASID_FAULT_READ' }, (x) => rfcFaultRead(st, ctx, x))
      .with({ op: 'IOASID_FAULT_RESPOND' }, (x) => rfcFaultRespond(st, ctx, x))
      .with({ op: 'DEVICE_PAGE_REQUEST' }, (x) => devicePageRequest(st, ctx, x))
      .with({ op: 'DEVICE_DMA' }, (x) => deviceDma(st, ctx, x))
      .exhaustive();
  }
}

/** Whether an error is the model saying it does not cover a situation (rather than a bug). */
export function isModelLimit(e: unknown): e is ModelLimit {
  return e instanceof ModelLimit;
}

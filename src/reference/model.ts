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
import type { Command, Outcome, Profile } from './commands.ts';
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
import { iommufdHwptAlloc } from './nest.ts';
import type { Platform } from './platform.ts';
import { resolveCommand } from './refs.ts';
import type { Resolved } from './resolved.ts';
import { State } from './state.ts';
import { createView } from './view-impl.ts';
import type { ModelView } from './view.ts';

export { ModelLimit } from './dev.ts';
export type { StepResult, Violation } from './core/context.ts';

/** How a model is configured: the implementation's declared profile, features and platform. */
export interface ModelConfig {
  readonly profile: Profile;
  readonly features: ReadonlySet<string>;
  readonly platform: Platform;
}

/** Which profile owns each command (harness steps belong to all). */
const OWNER: Record<string, Profile | 'all'> = {};
for (const op of [
  'IOMMU_DESTROY',
  'IOMMU_IOAS_ALLOC',
  'IOMMU_IOAS_IOVA_RANGES',
  'IOMMU_IOAS_ALLOW_IOVAS',
  'IOMMU_IOAS_MAP',
  'IOMMU_IOAS_COPY',
  'IOMMU_IOAS_UNMAP',
  'IOMMU_OPTION',
  'IOMMU_VFIO_IOAS',
  'IOMMU_HWPT_ALLOC',
  'VFIO_DEVICE_BIND_IOMMUFD',
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  'VFIO_DEVICE_DETACH_IOMMUFD_PT',
  'VFIO_DEVICE_CLOSE',
])
  OWNER[op] = 'iommufd';
for (const op of [
  'VFIO_GET_API_VERSION',
  'VFIO_CHECK_EXTENSION',
  'VFIO_GROUP_SET_CONTAINER',
  'VFIO_GROUP_UNSET_CONTAINER',
  'VFIO_SET_IOMMU',
  'VFIO_IOMMU_GET_INFO',
  'VFIO_IOMMU_MAP_DMA',
  'VFIO_IOMMU_UNMAP_DMA',
])
  OWNER[op] = 'vfio-type1';
for (const op of [
  'IOASID_CHECK_EXTENSION',
  'IOASID_GET_INFO',
  'IOASID_ALLOC',
  'IOASID_FREE',
  'IOASID_MAP_DMA',
  'IOASID_UNMAP_DMA',
  'VFIO_BIND_IOASID_FD',
  'VFIO_UNBIND_IOASID_FD',
  'VFIO_ATTACH_IOASID',
  'VFIO_DETACH_IOASID',
])
  OWNER[op] = 'rfc';
OWNER.DEVICE_DMA = 'all';

/** The reference model of one fd. */
export class Model {
  private state: State;
  private readonly outcomes: Outcome[] = [];
  /** The read-only view generators use. */
  readonly view: ModelView;

  constructor(readonly config: ModelConfig) {
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
    const owner = OWNER[c.op];
    const outcome =
      owner !== 'all' && owner !== this.config.profile ? ctx.reject('FD-022', 'ENOTTY') : this.dispatch(c, ctx);
    this.outcomes.push(outcome);
    return { outcome, clauses: ctx.clauses, violations: ctx.violations };
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

  private dispatch(c: Resolved<Command>, ctx: StepContext): Outcome {
    const st = this.state;
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
      .with({ op: 'DEVICE_DMA' }, (x) => deviceDma(st, ctx, x))
      .exhaustive();
  }
}

/** Whether an error is the model saying it does not cover a situation (rather than a bug). */
export function isModelLimit(e: unknown): e is ModelLimit {
  return e instanceof ModelLimit;
}

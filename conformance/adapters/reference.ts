/**
 * The in-process reference adapter: the reference model itself, driven through the {@link Adapter} interface, and
 * the family of *buggy* references that tests use to check that the suite catches a known defect (a reference with
 * one bug injected: it accepts bisecting unmaps, hands out non-lowest IDs, crashes on the third unmap…).
 *
 * The same executor backs `conformance/reference-stdio.ts`, so the in-process and out-of-process references behave
 * identically, bugs included.
 *
 * @module
 */
import type { Adapter, Capabilities, StepReply, TraceReply } from '../adapter.ts';
import type { Command, Outcome, Profile } from '../../src/reference/commands.ts';
import type { Area } from '../../src/reference/core/areas.ts';
import { Model, isModelLimit } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { resolveCommand } from '../../src/reference/refs.ts';
import { U64_MAX } from '../../src/reference/u64.ts';
import type { ModelView } from '../../src/reference/view.ts';

/** The features the reference model covers, per profile: what the `reference` adapter declares by default. */
export const REFERENCE_FEATURES: Readonly<Record<Profile, readonly string[]>> = {
  iommufd: ['auto-iova', 'copy', 'dma-probe', 'huge-pages', 'ioctl-abi', 'nesting-hw'],
  'vfio-type1': ['dma-probe', 'ioctl-abi', 'type1-v1'],
  rfc: ['dma-probe', 'ioctl-abi'],
};

/** The profile the `reference` adapter speaks when none is asked for. */
export const DEFAULT_PROFILE: Profile = 'iommufd';

/** How a reference adapter is configured. */
export interface ReferenceOptions {
  readonly profile?: Profile;
  readonly features?: readonly string[];
  readonly platform?: Platform;
  /** A bug to inject (a key of {@link BUGS}). */
  readonly bug?: string;
  /** The name capabilities declare (default `reference`, or `reference+<bug>`). */
  readonly declaredName?: string;
}

/** What a bug sees of one step: the command (IDs resolved), the model's outcome, the state before the step. */
export interface BugContext {
  readonly cmd: Command;
  readonly outcome: Outcome;
  /** The model's view *before* the step ran (areas, objects). */
  readonly before: BeforeStep;
  /** How many steps of this op the trace has run so far, this one included. */
  readonly nth: number;
}

/** The parts of the pre-step state bugs look at. */
export interface BeforeStep {
  /** The area containing `iova` in address space `as`, if any. */
  containing(as: number, iova: bigint): Area | undefined;
}

/** What a bug does to a step: a different outcome, or a crash of the implementation. */
export type BugEffect = { outcome: Outcome } | { crash: string } | undefined;

/** A defect injected into the reference. */
export interface Bug {
  readonly description: string;
  apply(b: BugContext): BugEffect;
}

/** The address space and range of an unmap command, or undefined for other commands and unmap-all. */
function unmapRange(cmd: Command): { as: number; iova: bigint; last: bigint } | undefined {
  let as: number;
  let iova: bigint;
  let length: bigint;
  if (cmd.op === 'IOMMU_IOAS_UNMAP') {
    if (cmd.iova === 0n && cmd.length === U64_MAX) return undefined;
    [as, iova, length] = [cmd.ioas_id as number, cmd.iova, cmd.length];
  } else if (cmd.op === 'VFIO_IOMMU_UNMAP_DMA' && cmd.flags === 0) [as, iova, length] = [0, cmd.iova, cmd.size];
  else if (cmd.op === 'IOASID_UNMAP_DMA' && cmd.flags === 0)
    [as, iova, length] = [cmd.ioasid as number, cmd.iova, cmd.size];
  else return undefined;
  if (length === 0n || iova + length - 1n > U64_MAX) return undefined;
  return { as, iova, last: iova + length - 1n };
}

/** The injectable bugs, by name (`buggy-<name>` adapters, `reference-stdio.ts --bug <name>`). */
export const BUGS: Readonly<Record<string, Bug>> = {
  'unmap-bisect': {
    description: 'accepts an unmap whose range starts or ends strictly inside a mapping (MAP-026/MAP-027)',
    apply({ cmd, outcome, before }) {
      const r = unmapRange(cmd);
      if (r === undefined || outcome.ok) return undefined;
      const first = before.containing(r.as, r.iova);
      const end = before.containing(r.as, r.last);
      const bisects = (first !== undefined && first.iova < r.iova) || (end !== undefined && end.last > r.last);
      if (!bisects) return undefined;
      const field = cmd.op === 'IOMMU_IOAS_UNMAP' ? 'length' : 'size';
      return { outcome: { ok: true, out: { [field]: r.last - r.iova + 1n } } };
    },
  },
  'map-overlap': {
    description: 'accepts a map that overlaps an existing mapping (MAP-002)',
    apply({ cmd, outcome }) {
      const isMap = cmd.op === 'IOMMU_IOAS_MAP' || cmd.op === 'VFIO_IOMMU_MAP_DMA' || cmd.op === 'IOASID_MAP_DMA';
      if (isMap && !outcome.ok && outcome.errno === 'EEXIST')
        return { outcome: cmd.op === 'IOMMU_IOAS_MAP' ? { ok: true, out: { iova: cmd.iova } } : { ok: true } };
      return undefined;
    },
  },
  'destroy-errno': {
    description: 'answers IOMMU_DESTROY of an unknown ID with EINVAL instead of ENOENT (FD-002)',
    apply({ cmd, outcome }) {
      if (cmd.op === 'IOMMU_DESTROY' && !outcome.ok && outcome.errno === 'ENOENT')
        return { outcome: { ok: false, errno: 'EINVAL' } };
      return undefined;
    },
  },
  'id-skip': {
    description: 'reports every new object ID one higher than the lowest free one (FD-004)',
    apply({ cmd, outcome }) {
      if (
        (cmd.op === 'IOMMU_IOAS_ALLOC' || cmd.op === 'IOASID_ALLOC') &&
        outcome.ok &&
        typeof outcome.out?.id === 'number'
      )
        return { outcome: { ok: true, out: { ...outcome.out, id: outcome.out.id + 1 } } };
      return undefined;
    },
  },
  'crash-third-unmap': {
    description: 'crashes on the third unmap of a trace',
    apply({ cmd, nth }) {
      if (
        (cmd.op === 'IOMMU_IOAS_UNMAP' || cmd.op === 'VFIO_IOMMU_UNMAP_DMA' || cmd.op === 'IOASID_UNMAP_DMA') &&
        nth === 3
      )
        return { crash: 'injected crash on the third unmap' };
      return undefined;
    },
  },
};

/** The capabilities a reference adapter declares for `opts`. */
export function referenceCapabilities(opts: ReferenceOptions = {}): Capabilities {
  const profile = opts.profile ?? DEFAULT_PROFILE;
  return {
    name: opts.declaredName ?? (opts.bug === undefined ? 'reference' : `reference+${opts.bug}`),
    profile,
    features: [...(opts.features ?? REFERENCE_FEATURES[profile])].sort(),
    platform: opts.platform ?? defaultPlatform(),
    description:
      opts.bug === undefined
        ? 'the executable reference model'
        : `the reference model with a bug: ${BUGS[opts.bug]?.description ?? opts.bug}`,
  };
}

function beforeOf(view: ModelView): BeforeStep {
  return {
    containing(as, iova) {
      const a = view.areaAtOrAfter(as, iova);
      if (a !== undefined && a.iova <= iova && iova <= a.last) return a;
      // areaAtOrAfter finds the area at or after `iova`; one that starts below it is found by scanning from 0.
      for (let x = view.areaAtOrAfter(as, 0n), guard = 0; x !== undefined && guard < 1_000_000; guard++) {
        if (x.iova <= iova && iova <= x.last) return x;
        if (x.iova > iova || x.last >= U64_MAX) return undefined;
        const next = view.areaAtOrAfter(as, x.last + 1n);
        if (next === undefined || next.iova <= x.iova) return undefined;
        x = next;
      }
      return undefined;
    },
  };
}

/**
 * Runs one trace on a fresh reference model (with the bug, if any) and returns one reply per step. Stops at a
 * crash of the bug or a situation the model does not cover (reported as a crash, with the step).
 */
export function executeTrace(caps: Capabilities, steps: readonly Command[], bug?: Bug): TraceReply {
  const model = new Model({ profile: caps.profile, features: new Set(caps.features), platform: caps.platform });
  const replies: StepReply[] = [];
  // What the implementation reported: references resolve against these (they differ from the model's own outcomes
  // when a bug changes an output).
  const reported: Outcome[] = [];
  const counts = new Map<string, number>();
  for (let i = 0; i < steps.length; i++) {
    const raw = steps[i]!;
    const nth = (counts.get(raw.op) ?? 0) + 1;
    counts.set(raw.op, nth);
    try {
      const before = bug === undefined ? undefined : beforeOf(model.view);
      const r = model.step(raw);
      let outcome = r.outcome;
      if (bug !== undefined) {
        const effect = bug.apply({ cmd: resolveCommand(raw, reported), outcome, before: before!, nth });
        if (effect !== undefined && 'crash' in effect)
          return { replies, error: { kind: 'crash', message: effect.crash, step: i } };
        if (effect !== undefined) outcome = effect.outcome;
      }
      reported.push(outcome);
      replies.push({ outcome });
    } catch (e) {
      const what = isModelLimit(e) ? 'the reference model does not cover this step' : 'the reference model failed';
      return { replies, error: { kind: 'crash', message: `${what}: ${(e as Error).message}`, step: i } };
    }
  }
  return { replies };
}

/** The in-process reference adapter (optionally with a bug). */
export class ReferenceAdapter implements Adapter {
  readonly name: string;
  private readonly caps: Capabilities;
  private readonly bug: Bug | undefined;

  constructor(name: string, opts: ReferenceOptions = {}) {
    this.name = name;
    this.caps = referenceCapabilities(opts);
    this.bug = opts.bug === undefined ? undefined : BUGS[opts.bug];
    if (opts.bug !== undefined && this.bug === undefined)
      throw new Error(`unknown bug "${opts.bug}" (known: ${Object.keys(BUGS).join(', ')})`);
  }

  open(): Promise<Capabilities> {
    return Promise.resolve(this.caps);
  }

  runTrace(steps: readonly Command[]): Promise<TraceReply> {
    return Promise.resolve(executeTrace(this.caps, steps, this.bug));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

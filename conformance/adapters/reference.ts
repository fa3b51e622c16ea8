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
import { Model, isModelLimit } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import { resolveCommand } from '../../src/reference/refs.ts';
import { CATALOGUE, HARNESS_BUGS, touches } from '../bugs/catalogue.ts';
import { ModelBugStep, type Bug } from '../bugs/kit.ts';

/** The features the reference model covers, per profile: what the `reference` adapter declares by default. */
export const REFERENCE_FEATURES: Readonly<Record<Profile, readonly string[]>> = {
  iommufd: [
    'auto-iova',
    'copy',
    'dirty-tracking',
    'dma-probe',
    'fd-close',
    'huge-pages',
    'ioctl-abi',
    'iopf',
    'nesting-hw',
  ],
  'vfio-type1': ['dma-probe', 'fd-close', 'ioctl-abi', 'type1-v1'],
  rfc: [
    'dma-probe',
    'enqcmd',
    'fd-close',
    'iopf',
    'ioctl-abi',
    'mdev',
    'migration',
    'nesting-hw',
    'nesting-sw',
    'pasid',
    'pasid-global',
    'pasid-virt',
    'prereg',
  ],
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
  /**
   * The name capabilities declare: by default `reference` in the default profile, `reference/<profile>` in another
   * (so that runs of the three profiles merge into one report), or `reference+<bug>`.
   */
  readonly declaredName?: string;
}

export type { Bug } from '../bugs/kit.ts';

/**
 * The injectable bugs, by name (`buggy-<name>` adapters, `reference-stdio.ts --bug <name>`): the bug catalogue of
 * `conformance/bugs/` (plausible implementation bugs, each tied to clauses) and the harness's crash bug.
 */
export const BUGS: Readonly<Record<string, Bug>> = { ...CATALOGUE, ...HARNESS_BUGS };
/** The features a bug's implementation declares besides the reference's (none for another profile's request). */
function bugFeatures(name: string | undefined, profile: Profile): readonly string[] {
  const b = name === undefined ? undefined : BUGS[name];
  return b === undefined || b.profile !== profile ? [] : (b.features ?? []);
}

/** The capabilities a reference adapter declares for `opts`. */
export function referenceCapabilities(opts: ReferenceOptions = {}): Capabilities {
  const profile = opts.profile ?? (opts.bug === undefined ? undefined : BUGS[opts.bug]?.profile) ?? DEFAULT_PROFILE;
  return {
    name:
      opts.declaredName ??
      (opts.bug !== undefined
        ? `reference+${opts.bug}`
        : profile === DEFAULT_PROFILE
          ? 'reference'
          : `reference/${profile}`),
    profile,
    features: [...new Set(opts.features ?? [...REFERENCE_FEATURES[profile], ...bugFeatures(opts.bug, profile)])].sort(),
    platform: opts.platform ?? defaultPlatform(),
    description:
      opts.bug === undefined
        ? 'the executable reference model'
        : `the reference model with a bug: ${BUGS[opts.bug]?.description ?? opts.bug}`,
  };
}

/**
 * Runs one trace on a fresh reference model (with the bug, if any) and returns one reply per step. Stops at a
 * crash of the bug or a situation the model does not cover (reported as a crash, with the step).
 */
export function executeTrace(caps: Capabilities, steps: readonly Command[], bug?: Bug): TraceReply {
  // The implementation does not check the reference's invariants: the checker's own model does (and a buggy
  // implementation's state is allowed to break them: that is the bug).
  const model = new Model({
    profile: caps.profile,
    features: new Set(caps.features),
    platform: caps.platform,
    invariants: false,
  });
  const replies: StepReply[] = [];
  // What the implementation reported: a buggy implementation resolves references against these (they differ from
  // the model's own outcomes when a bug changes an output).
  const reported: Outcome[] = [];
  const counts = new Map<string, number>();
  const memo = new Map<string, unknown>();
  for (let i = 0; i < steps.length; i++) {
    const raw = steps[i]!;
    const nth = (counts.get(raw.op) ?? 0) + 1;
    counts.set(raw.op, nth);
    try {
      let outcome: Outcome;
      if (bug === undefined) outcome = model.step(raw).outcome;
      else {
        const cmd = resolveCommand(raw, reported);
        if (!touches(bug, cmd)) outcome = model.step(cmd).outcome;
        else {
          const effect = bug.step(new ModelBugStep(model, cmd, nth, memo));
          if ('crash' in effect) return { replies, error: { kind: 'crash', message: effect.crash, step: i } };
          outcome = effect;
        }
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

/**
 * The mechanism of the bug catalogue: a *buggy implementation* is the reference model driven by one small
 * interposer, the {@link Bug}, that sits between the adapter and the model and changes one behaviour. The reference
 * code under `src/reference` stays untouched — no `if (bug)` anywhere in it: a bug runs the correct step
 * ({@link BugStep.run}), then changes what it reports or what the implementation's state holds afterwards
 * ({@link BugStep.mutate}), exactly as a developer's slip changes one check or one update in a real handler.
 *
 * The buggy implementation keeps its own model (its own state) and resolves `{ ref }` arguments against its own
 * replies, as any implementation must; so a bug that changes state (an unmap that keeps the last area, an
 * ALLOW_IOVAS that is half applied) shows up later in the trace, the way a real one would, not just at the step
 * that caused it.
 *
 * Not for: testing the model (the bugs assume it is right), or hardware-level defects (those live with the
 * hardware model's drivers).
 *
 * @module
 */
import type { Command, Op, Outcome, Outputs, Profile } from '../../src/reference/commands.ts';
import type { Area } from '../../src/reference/core/areas.ts';
import { addArea, makeArea, removeArea } from '../../src/reference/core/placement.ts';
import type { Model } from '../../src/reference/model.ts';
import type { Space, State } from '../../src/reference/state.ts';
import { U64_MAX } from '../../src/reference/u64.ts';

/** What one run of the correct behaviour gave. */
export interface Ran {
  readonly outcome: Outcome;
  /** The clauses the model evaluated. */
  readonly clauses: readonly string[];
  /** For a rejection: the clause that rejected (the last one evaluated); undefined on success. */
  readonly rejectedBy: string | undefined;
}

/** One step of a buggy implementation, as its bug sees it. */
export interface BugStep {
  /** The command, with every `{ ref }` resolved against the implementation's own earlier replies. */
  readonly cmd: Command;
  /** How many steps of this op the trace has run, this one included. */
  readonly nth: number;
  /** Memory the bug keeps for the length of one trace (a stale cache, a high-water mark). */
  readonly memo: Map<string, unknown>;
  /** A copy of the implementation's current state, to read (changing it changes nothing). */
  view(): State;
  /** Runs the correct behaviour of `cmd` (default: this step's) on the implementation's state. */
  run(cmd?: Command): Ran;
  /** What the correct behaviour of `cmd` would give, leaving the state as it is. */
  dryRun(cmd?: Command): Ran;
  /** Changes the implementation's state (the bug's own effect) and returns what `fn` returns. */
  mutate<T>(fn: (st: State) => T): T;
}

/** What a bug makes of a step: the outcome the implementation reports, or a crash of the implementation. */
export type BugResult = Outcome | { readonly crash: string };

/** The chapters of the specification (spec/chapters.txt). */
export type Chapter =
  'FD' | 'IOAS' | 'FMT' | 'MAP' | 'DEV' | 'INFO' | 'NEST' | 'BIND' | 'PASID' | 'INV' | 'FAULT' | 'MEM' | 'REF' | 'HW';

/** One deliberately broken implementation: the reference with one plausible developer's slip. */
export interface Bug {
  /** The profile whose implementation has the bug (the `buggy-<name>` adapter speaks it by default). */
  readonly profile: Profile;
  /**
   * Features the buggy implementation declares besides the reference's defaults for its profile (so that the
   * default run draws the commands the bug lives in).
   */
  readonly features?: readonly string[];
  /** The chapter of the clauses it breaks. */
  readonly chapter: Chapter;
  /** The clauses it violates (IDs of spec/chapters). */
  readonly clauses: readonly string[];
  /** One line: what it does wrong. */
  readonly description: string;
  /** Where in a real implementation such a bug would live, and how it gets written. */
  readonly rationale: string;
  /** The commands it touches; every other command runs the reference untouched. Absent: all. */
  readonly ops?: readonly Op[];
  /** Runs one step (calling {@link BugStep.run} for the correct behaviour). */
  step(s: BugStep): BugResult;
}

/** A bug definition (identity function: it only checks the shape). */
export function bug(b: Bug): Bug {
  return b;
}

/** The step handle over a model. Internal to the executor. */
export class ModelBugStep implements BugStep {
  constructor(
    private readonly model: Model,
    readonly cmd: Command,
    readonly nth: number,
    readonly memo: Map<string, unknown>,
  ) {}

  view(): State {
    return this.model.snapshot().state;
  }

  run(cmd: Command = this.cmd): Ran {
    const r = this.model.step(cmd);
    return {
      outcome: r.outcome,
      clauses: r.clauses,
      rejectedBy: r.outcome.ok ? undefined : r.clauses[r.clauses.length - 1],
    };
  }

  dryRun(cmd: Command = this.cmd): Ran {
    const snap = this.model.snapshot();
    try {
      return this.run(cmd);
    } finally {
      this.model.restore(snap);
    }
  }

  mutate<T>(fn: (st: State) => T): T {
    const snap = this.model.snapshot();
    const out = fn(snap.state);
    this.model.restore(snap);
    return out;
  }
}

// ------------------------------------------------------------------------------------------------ helpers

/** An error outcome. */
export function fail(errno: string): Outcome {
  return { ok: false, errno };
}

/** The numeric ID field `field` of a command (after resolution every ID is a number). */
export function idOf(cmd: Command, field: string): number {
  const v = (cmd as unknown as Record<string, unknown>)[field];
  return typeof v === 'number' ? v : 0;
}

/**
 * The address space a MAP/UNMAP/COPY command works on in `st`: the IOAS (iommufd), the kernel-managed IOASID
 * (rfc) or the container (vfio-type1).
 */
export function spaceOf(st: State, cmd: Command, field?: string): Space | undefined {
  if (cmd.op.startsWith('VFIO_IOMMU_')) return st.container.space;
  if (cmd.op.startsWith('IOASID_')) return st.get(idOf(cmd, field ?? 'ioasid'), 'ioasid')?.space;
  return st.get(idOf(cmd, field ?? 'ioas_id'), 'ioas')?.space;
}

/** The range of a plain (not unmap-all) unmap of any profile, or undefined. */
export function unmapRange(cmd: Command): { iova: bigint; last: bigint; field: 'length' | 'size' } | undefined {
  let iova: bigint;
  let length: bigint;
  let field: 'length' | 'size' = 'size';
  if (cmd.op === 'IOMMU_IOAS_UNMAP') {
    if (cmd.iova === 0n && cmd.length === U64_MAX) return undefined;
    [iova, length, field] = [cmd.iova, cmd.length, 'length'];
  } else if ((cmd.op === 'VFIO_IOMMU_UNMAP_DMA' || cmd.op === 'IOASID_UNMAP_DMA') && cmd.flags === 0)
    [iova, length] = [cmd.iova, cmd.size];
  else return undefined;
  if (length === 0n || iova + length - 1n > U64_MAX) return undefined;
  return { iova, last: iova + length - 1n, field };
}

/** The unmap ops of every profile. */
export const UNMAP_OPS: readonly Op[] = ['IOMMU_IOAS_UNMAP', 'VFIO_IOMMU_UNMAP_DMA', 'IOASID_UNMAP_DMA'];
/** The map ops of every profile. */
export const MAP_OPS: readonly Op[] = ['IOMMU_IOAS_MAP', 'VFIO_IOMMU_MAP_DMA', 'IOASID_MAP_DMA'];
/** The ops that allocate an object ID. */
export const ALLOC_OPS: readonly Op[] = [
  'IOMMU_IOAS_ALLOC',
  'IOMMU_HWPT_ALLOC',
  'VFIO_DEVICE_BIND_IOMMUFD',
  'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
  'IOASID_ALLOC',
];

/** The part of `a` from `iova` to `last` (inside it), as a new area with the same memory and permissions. */
export function slice(a: Area, iova: bigint, last: bigint): Area {
  const d = iova - a.iova;
  return makeArea(iova, last - iova + 1n, a.va + d, a.buf, a.off + d, a.prot, a.pages);
}

/** Moves area `a` of `space` to start at `to` (same memory, length and permissions). */
export function moveArea(st: State, space: Space, a: Area, to: bigint): void {
  removeArea(space, st.platform, a);
  addArea(space, st.platform, { ...a, iova: to, last: to + (a.last - a.iova) });
}

/** A copy of `out` with `changes`, for an ok outcome (other outcomes come back as they are). */
export function withOut(o: Outcome, changes: Outputs): Outcome {
  return o.ok ? { ok: true, out: { ...(o.out ?? {}), ...changes } } : o;
}

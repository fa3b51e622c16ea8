/**
 * Templates: the shape of a generated step before it is made concrete. A template names a command kind and carries
 * *picks* — small integers that a realisation pass turns into arguments by reading the reference model's view of
 * what exists now ("the 3rd live IOAS", "the area after IOVA x, one page past its end"). Because picks are
 * relative, removing templates while shrinking keeps the trace valid: the remaining picks re-resolve against the
 * new state.
 *
 * Adding a command is adding one {@link TemplateDef}: its kind, the profiles and features it needs, a weight, the
 * number of picks, the adversarial variants it knows, and `realise`.
 *
 * @module
 */
import type { IdArg } from '../src/reference/args.ts';
import type { Command, Op, Profile } from '../src/reference/commands.ts';
import type { Area } from '../src/reference/core/areas.ts';
import type { Platform } from '../src/reference/platform.ts';
import type { ModelView, ObjectInfo, ObjectKind } from '../src/reference/view.ts';

/** How many removed areas per address space {@link RealiseCtx.unmapped} remembers. */
export const UNMAPPED_KEEP = 8;

/** The largest pick value + 1: picks are integers in `[0, PICK_RANGE)`. */
export const PICK_RANGE = 0x1_0000;

/** One generated template, as fast-check produces and shrinks it (plain data, printable, serialisable). */
export interface Template {
  /** The {@link TemplateDef.kind}. */
  readonly k: string;
  /** The picks, `[0, PICK_RANGE)`; shrinking moves them towards 0 ("the first", "the smallest"). */
  readonly p: readonly number[];
  /** The adversarial variant, or `''` for a well-formed step. */
  readonly a: string;
}

/** An adversarial variant of a template, with the features an implementation needs for it to apply. */
export interface Variant {
  readonly name: string;
  readonly features?: readonly string[];
  /**
   * Relative frequency among the template's variants (default 1): a variant that combines two faults (the order
   * of checks) weighs more, since each of its faults is also drawn alone and it has several combinations to cover.
   */
  readonly weight?: number;
}

/** A command kind the generators know. */
export interface TemplateDef {
  /** Unique name, `profile.what` (`iommufd.map`). */
  readonly kind: string;
  /** The command it (mostly) produces: coverage-aware weighting and `--clause` filters match clauses by command. */
  readonly op: Op;
  readonly profiles: readonly Profile[];
  /** Features the implementation must declare for the template to be drawn at all. */
  readonly features?: readonly string[];
  /** Relative frequency among the templates of a run. */
  readonly weight: number;
  /** How many picks `realise` reads. */
  readonly picks: number;
  readonly variants: readonly Variant[];
  /**
   * Makes the command for the current state, or `undefined` to drop the template (nothing sensible to do). A
   * template whose prerequisite is missing may realise as the command that creates it (a MAP with no IOAS yet
   * realises as IOAS_ALLOC), which keeps short and shrunk traces deep.
   */
  realise(ctx: RealiseCtx, p: Picks, variant: string): Command | undefined;
}

/** Reads picks as choices. Reading past the end gives 0. */
export class Picks {
  constructor(private readonly p: readonly number[]) {}

  /** Raw pick `i`. */
  raw(i: number): number {
    return this.p[i] ?? 0;
  }
  /** An index in `[0, n)` (0 when n ≤ 0). */
  int(i: number, n: number): number {
    return n <= 0 ? 0 : this.raw(i) % n;
  }
  /** A fraction in `[0, 1)`. */
  frac(i: number): number {
    return this.raw(i) / PICK_RANGE;
  }
  /** True with probability `prob` (shrinks to false when prob < 1). */
  chance(i: number, prob: number): boolean {
    return this.raw(i) >= PICK_RANGE * (1 - prob);
  }
  /** One element of a non-empty list. */
  of<T>(i: number, xs: readonly T[]): T {
    return xs[this.int(i, xs.length)]!;
  }
  /** A bigint in `[0, n)` spread over the pick's range (0 when n ≤ 0). */
  big(i: number, n: bigint): bigint {
    return n <= 0n ? 0n : (BigInt(this.raw(i)) * n) / BigInt(PICK_RANGE);
  }
}

/** What a template's `realise` may read and ask for. */
export interface RealiseCtx {
  readonly view: ModelView;
  readonly profile: Profile;
  readonly platform: Platform;
  readonly features: ReadonlySet<string>;
  /** Index the command will have in the trace. */
  readonly step: number;
  /** The ID argument naming live object `id`: a reference to the step that created it. */
  ref(id: number): IdArg;
  /** Live objects of the given kinds (all when none given), ascending by ID. */
  live(...kinds: ObjectKind[]): readonly ObjectInfo[];
  /** References to objects that existed earlier in the trace and are gone (their IDs are stale). */
  stale(...kinds: ObjectKind[]): readonly IdArg[];
  /** The areas of address space `as`, ascending. */
  areas(as: number): readonly Area[];
  /** The free usable ranges of `as`: usable ranges minus the areas, ascending. */
  gaps(as: number): readonly { start: bigint; last: bigint }[];
  /** The page granule generators use for `as`: the larger of the address space's alignment and the CPU page size. */
  granule(as: number): bigint;
  /**
   * The areas of address space `as` that unmaps earlier in this trace removed, oldest first (at most
   * {@link UNMAPPED_KEEP}): where a probe tells whether the unmap really took the translation away (REF-003,
   * REF-004). Optional: a context that does not track history gives none.
   */
  unmapped?(as: number): readonly Area[];
}

/** An ID argument for the adversarial ID variants: 0, a stale reference, a wrong-type object, never allocated. */
export function adversarialId(
  ctx: RealiseCtx,
  p: Picks,
  i: number,
  variant: string,
  want: readonly ObjectKind[],
): IdArg | undefined {
  switch (variant) {
    case 'id-zero':
      return 0;
    case 'id-stale': {
      const s = ctx.stale(...want);
      return s.length > 0 ? p.of(i, s) : 0x7fff_fff0;
    }
    case 'id-wrong-type': {
      const others = ctx.live().filter((o) => !want.includes(o.kind));
      return others.length > 0 ? ctx.ref(p.of(i, others).id) : 0x7fff_fff1;
    }
    case 'id-unallocated':
      return 0x7fff_fff2;
    default:
      return undefined;
  }
}

/** The ID variants every object-taking template offers. */
export const ID_VARIANTS: readonly Variant[] = [
  { name: 'id-zero' },
  { name: 'id-stale' },
  { name: 'id-wrong-type' },
  { name: 'id-unallocated' },
];

/** The well-formed pick of a live object of `kinds`, or undefined when there is none. */
export function pickLive(ctx: RealiseCtx, p: Picks, i: number, ...kinds: ObjectKind[]): ObjectInfo | undefined {
  const xs = ctx.live(...kinds);
  return xs.length > 0 ? p.of(i, xs) : undefined;
}

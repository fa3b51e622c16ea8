/**
 * Trace generation: a fast-check arbitrary of template arrays (seeded, shrinkable) and the deterministic
 * *realisation* pass that turns templates into concrete commands by stepping a private reference model and reading
 * its view.
 *
 * ```ts
 * const gen = new TraceGenerator({ profile: 'iommufd', features: ['copy'], platform: defaultPlatform() });
 * fc.assert(fc.property(gen.arbitrary(), (templates) => check(gen.realise(templates).trace)));
 * ```
 *
 * Realisation never fails on the generator's side: a template with nothing to act on is dropped, and a command the
 * model does not cover (it throws `ModelLimit`) is dropped too. The references it writes (`{ ref: n }`) name the
 * step that created an object, so a trace means the same on an implementation that numbers objects differently.
 *
 * @module
 */
import fc from 'fast-check';
import type { IdArg } from '../src/reference/args.ts';
import type { Command, Profile } from '../src/reference/commands.ts';
import type { Area } from '../src/reference/core/areas.ts';
import { Model, isModelLimit } from '../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../src/reference/platform.ts';
import { TRACE_FORMAT, TRACE_VERSION, type Trace } from '../src/reference/trace.ts';
import { U64_MAX } from '../src/reference/u64.ts';
import { listAreas, type ObjectKind } from '../src/reference/view.ts';
import { HARNESS_TEMPLATES } from './harness.ts';
import { IOMMUFD_TEMPLATES } from './iommufd.ts';
import { RFC_TEMPLATES } from './rfc.ts';
import { PICK_RANGE, Picks, UNMAPPED_KEEP, type RealiseCtx, type Template, type TemplateDef } from './template.ts';
import { VFIO_TYPE1_TEMPLATES } from './vfio-type1.ts';

/** Every template the generators know, all profiles. */
export const ALL_TEMPLATES: readonly TemplateDef[] = [
  ...IOMMUFD_TEMPLATES,
  ...VFIO_TYPE1_TEMPLATES,
  ...RFC_TEMPLATES,
  ...HARNESS_TEMPLATES,
];

/** The default number of templates a trace may hold (`--max-steps`). */
export const DEFAULT_MAX_STEPS = 200;
/** The default share of adversarial templates. */
export const DEFAULT_ADVERSARIAL = 0.2;

/** What a generator is configured with: the implementation's declaration and the knobs of a run. */
export interface GenConfig {
  readonly profile: Profile;
  readonly features: readonly string[];
  readonly platform: Platform;
  /** Most templates per trace (default {@link DEFAULT_MAX_STEPS}). */
  readonly maxSteps?: number;
  /** Share of adversarial templates in `[0, 1]` (default {@link DEFAULT_ADVERSARIAL}). */
  readonly adversarial?: number;
  /** Weight multipliers by template kind (coverage-aware weighting, `--clause` focus). */
  readonly weights?: Readonly<Record<string, number>>;
}

/** The templates an implementation can be given: its profile's, gated by its features. */
export function templatesFor(profile: Profile, features: readonly string[]): TemplateDef[] {
  const have = new Set(features);
  return ALL_TEMPLATES.filter((d) => d.profiles.includes(profile) && (d.features ?? []).every((f) => have.has(f)));
}

/** The result of realising templates. */
export interface Realised {
  readonly trace: Trace;
  /** For each step, the index of the template it came from. */
  readonly origin: readonly number[];
  /** Templates dropped (nothing to act on, or a command the model does not cover). */
  readonly dropped: number;
  /**
   * Set when the reference model itself failed (an exception other than `ModelLimit`: a model bug). The trace then
   * ends with the step that made it fail, so replaying the trace reproduces the failure.
   */
  readonly error?: { readonly step: number; readonly message: string; readonly source: 'model' | 'generator' };
}

interface Creator {
  readonly id: number;
  readonly kind: ObjectKind;
  readonly ref: IdArg;
}

/**
 * Wraps every bigint of a command into the u64 range (mod 2^64), the way C arithmetic on a u64 field would: an
 * adversarial "one below 0" becomes U64_MAX. Keeps every generated trace valid for the trace codec.
 */
export function wrapU64<T>(v: T): T {
  if (typeof v === 'bigint') return (v >= 0n && v <= U64_MAX ? v : v & U64_MAX) as T;
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      const w = wrapU64(x);
      if (w !== x) (copy ??= [...(v as unknown[])])[i] = w;
    }
    return (copy ?? v) as T;
  }
  if (typeof v === 'object' && v !== null) {
    let copy: Record<string, unknown> | undefined;
    const rec = v as Record<string, unknown>;
    for (const k in rec) {
      const x = rec[k];
      const w = wrapU64(x);
      if (w !== x) (copy ??= { ...rec })[k] = w;
    }
    return (copy ?? v) as T;
  }
  return v;
}

const abiSupport = new Map<Profile, boolean>();

/**
 * Whether the reference model judges the raw `abi` size of a command (FD-025: a size below the minimum is EINVAL).
 * Until it does, the generator draws no `abi-*` variant: the model would expect such a step to succeed, and a
 * correct implementation would then fail for the model's gap.
 */
export function modelHonoursAbi(profile: Profile): boolean {
  let v = abiSupport.get(profile);
  if (v === undefined) {
    const probe: Command =
      profile === 'iommufd'
        ? { op: 'IOMMU_IOAS_ALLOC', abi: { size: 4 } }
        : profile === 'rfc'
          ? { op: 'IOASID_ALLOC', abi: { size: 4 } }
          : { op: 'VFIO_GET_API_VERSION', abi: { size: 4 } };
    try {
      const m = new Model({ profile, features: new Set(['ioctl-abi']), platform: defaultPlatform() });
      v = !m.step(probe).outcome.ok;
    } catch {
      v = false;
    }
    abiSupport.set(profile, v);
  }
  return v;
}

/** Lists the areas of an address space through the view, ascending (the view's own helper). */
export { listAreas } from '../src/reference/view.ts';

/** `ranges` minus `areas` (both ascending, areas disjoint). */
export function subtractAreas(
  ranges: readonly { start: bigint; last: bigint }[],
  areas: readonly Area[],
): { start: bigint; last: bigint }[] {
  const out: { start: bigint; last: bigint }[] = [];
  for (const r of ranges) {
    let cursor = r.start;
    let open = true;
    for (const a of areas) {
      if (a.last < cursor || a.iova > r.last) continue;
      if (a.iova > cursor) out.push({ start: cursor, last: a.iova - 1n });
      if (a.last >= r.last) {
        open = false;
        break;
      }
      cursor = a.last + 1n;
    }
    if (open && cursor <= r.last) out.push({ start: cursor, last: r.last });
  }
  return out;
}

/** The unmap commands of every profile (whose removed areas RealiseCtx.unmapped remembers). */
const UNMAP_OPS: ReadonlySet<string> = new Set(['IOMMU_IOAS_UNMAP', 'VFIO_IOMMU_UNMAP_DMA', 'IOASID_UNMAP_DMA']);

/** Generates traces for one implementation declaration. */
export class TraceGenerator {
  readonly defs: readonly TemplateDef[];
  private readonly byKind: ReadonlyMap<string, TemplateDef>;
  readonly maxSteps: number;
  readonly adversarial: number;

  constructor(readonly config: GenConfig) {
    this.defs = templatesFor(config.profile, config.features);
    this.byKind = new Map(this.defs.map((d) => [d.kind, d]));
    this.maxSteps = config.maxSteps ?? DEFAULT_MAX_STEPS;
    this.adversarial = Math.min(1, Math.max(0, config.adversarial ?? DEFAULT_ADVERSARIAL));
    if (this.defs.length === 0)
      throw new Error(`no template applies to profile ${config.profile} with features [${config.features.join(', ')}]`);
  }

  /** The arbitrary of one template of `def`: its picks and, with the adversarial share, one of its variants. */
  templateArbitrary(def: TemplateDef): fc.Arbitrary<Template> {
    const have = new Set(this.config.features);
    const abi = modelHonoursAbi(this.config.profile);
    const kept = def.variants.filter(
      (v) => (v.features ?? []).every((f) => have.has(f)) && (abi || !v.name.startsWith('abi-')),
    );
    const variants = kept.map((v) => v.name);
    // Uniform unless a variant says otherwise (Variant.weight).
    const w = Math.round(this.adversarial * 1000);
    const oneVariant = (): fc.Arbitrary<string> =>
      kept.every((v) => (v.weight ?? 1) === 1)
        ? fc.constantFrom(...variants)
        : fc.oneof(...kept.map((v) => ({ weight: v.weight ?? 1, arbitrary: fc.constant(v.name) })));
    const variant =
      variants.length === 0 || w === 0
        ? fc.constant('')
        : w >= 1000
          ? oneVariant()
          : fc.oneof({ weight: 1000 - w, arbitrary: fc.constant('') }, { weight: w, arbitrary: oneVariant() });
    const picks = fc.array(fc.nat({ max: PICK_RANGE - 1 }), { minLength: def.picks, maxLength: def.picks });
    return fc.tuple(picks, variant).map(([p, a]): Template => ({ k: def.kind, p, a }));
  }

  /** The arbitrary of a trace: 1 … maxSteps templates, drawn by weight. */
  arbitrary(): fc.Arbitrary<Template[]> {
    const weights = this.config.weights ?? {};
    const one = fc.oneof(
      ...this.defs
        .map((d) => ({
          weight: Math.max(0, Math.round(d.weight * (weights[d.kind] ?? 1) * 10)),
          arbitrary: this.templateArbitrary(d),
        }))
        .filter((x) => x.weight > 0),
    );
    return fc.array(one, { minLength: 1, maxLength: this.maxSteps, size: 'max' });
  }

  /** The generator's own model: it only tells what exists now (the checker's model checks the invariants). */
  private newModel(): Model {
    return new Model({
      profile: this.config.profile,
      features: new Set(this.config.features),
      platform: this.config.platform,
      invariants: false,
    });
  }

  /**
   * Realises templates into a trace. Deterministic: the same templates give the same trace.
   *
   * A model failure other than `ModelLimit` (a model bug) ends the trace at the failing step and is returned in
   * `error`.
   */
  realise(templates: readonly Template[], extra: { seed?: string; origin?: string } = {}): Realised {
    let model = this.newModel();
    const steps: Command[] = [];
    const origin: number[] = [];
    let dropped = 0;
    let error: Realised['error'];
    const live = new Map<number, Creator>();
    const dead: Creator[] = [];
    let areaCache = new Map<number, Area[]>();
    let gapCache = new Map<number, { start: bigint; last: bigint }[]>();
    const features = new Set(this.config.features);
    const ctx: RealiseCtx & { step: number } = {
      get view() {
        return model.view;
      },
      profile: this.config.profile,
      platform: this.config.platform,
      features,
      step: 0,
      ref: (id) => live.get(id)?.ref ?? id,
      live: (...kinds) => model.view.objects().filter((o) => kinds.length === 0 || kinds.includes(o.kind)),
      stale: (...kinds) => dead.filter((c) => kinds.length === 0 || kinds.includes(c.kind)).map((c) => c.ref),
      areas: (as) => {
        let a = areaCache.get(as);
        if (a === undefined) areaCache.set(as, (a = listAreas(model.view, as)));
        return a;
      },
      gaps: (as) => {
        let g = gapCache.get(as);
        if (g === undefined) gapCache.set(as, (g = subtractAreas(model.view.usableRanges(as), ctx.areas(as))));
        return g;
      },
      granule: (as) => {
        const a = model.view.alignment(as);
        const page = BigInt(this.config.platform.limits.pageSize);
        return a > page ? a : page;
      },
      unmapped: (as) => removed.get(as) ?? [],
    };
    // The areas unmaps removed, per address space (RealiseCtx.unmapped).
    const removed = new Map<number, Area[]>();
    for (let t = 0; t < templates.length; t++) {
      const tpl = templates[t]!;
      const def = this.byKind.get(tpl.k);
      if (def === undefined) {
        dropped++;
        continue;
      }
      ctx.step = steps.length;
      let made: Command | undefined;
      try {
        made = def.realise(ctx, new Picks(tpl.p), tpl.a);
      } catch (e) {
        // A bug of the template itself: end the trace here and say so.
        error = {
          step: steps.length,
          message: `template ${tpl.k} (${tpl.a || 'well-formed'}) failed: ${(e as Error).message}`,
          source: 'generator',
        };
        break;
      }
      const cmd = made === undefined ? undefined : wrapU64(made);
      if (cmd === undefined) {
        dropped++;
        continue;
      }
      const before = model.view.objects();
      const areasBefore = UNMAP_OPS.has(cmd.op)
        ? model.view.addressSpaces().map((as) => [as, ctx.areas(as)] as const)
        : undefined;
      let out;
      try {
        out = model.step(cmd);
      } catch (e) {
        if (!isModelLimit(e)) {
          error = {
            step: steps.length,
            message: `the reference model failed on ${cmd.op}: ${(e as Error).message}`,
            source: 'model',
          };
          steps.push(cmd);
          origin.push(t);
          break;
        }
        // The model does not cover this command: drop it, and rebuild the model from the steps kept.
        dropped++;
        model = this.newModel();
        for (const s of steps) model.step(s);
        continue;
      }
      const index = steps.length;
      steps.push(cmd);
      origin.push(t);
      areaCache = new Map();
      gapCache = new Map();
      if (areasBefore !== undefined && out.outcome.ok)
        for (const [as, was] of areasBefore) {
          const now = new Set(ctx.areas(as).map((a) => `${a.iova}:${a.last}`));
          const gone = was.filter((a) => !now.has(`${a.iova}:${a.last}`));
          if (gone.length > 0) removed.set(as, [...(removed.get(as) ?? []), ...gone].slice(-UNMAPPED_KEEP));
        }
      // Track which step created each live object, and which objects died: a merge of the two lists (both
      // ascending by ID) — an object is the same when its ID and kind are.
      const after = model.view.objects();
      const outs = out.outcome.ok ? (out.outcome.out ?? {}) : {};
      for (let i = 0, j = 0; i < before.length || j < after.length;) {
        const b = before[i];
        const a = after[j];
        if (b !== undefined && a !== undefined && b.id === a.id && b.kind === a.kind) {
          i++;
          j++;
        } else if (b !== undefined && (a === undefined || b.id <= a.id)) {
          const c = live.get(b.id);
          if (c !== undefined) dead.push(c);
          live.delete(b.id);
          removed.delete(b.id); // its ID may be reused by an address space with no such history
          i++;
        } else {
          const o = a!;
          const field = outs.id === o.id ? 'id' : Object.keys(outs).find((k) => outs[k] === o.id);
          const ref: IdArg = field === undefined ? o.id : field === 'id' ? { ref: index } : { ref: index, field };
          live.set(o.id, { id: o.id, kind: o.kind, ref });
          j++;
        }
      }
    }
    const trace: Trace = {
      format: TRACE_FORMAT,
      version: TRACE_VERSION,
      profile: this.config.profile,
      features: [...this.config.features],
      platform: this.config.platform,
      steps,
      ...(extra.seed === undefined ? {} : { seed: extra.seed }),
      ...(extra.origin === undefined ? {} : { origin: extra.origin }),
    };
    return error === undefined ? { trace, origin, dropped } : { trace, origin, dropped, error };
  }
}

/** Buckets of the trace-length histogram (upper bounds, inclusive). */
export const LENGTH_BUCKETS = [0, 9, 49, 99, 149, 199, 299, Infinity] as const;

/** The histogram key of a trace length: `"0"`, `"1-9"`, `"10-49"` … `"300+"`. */
export function lengthBucket(n: number): string {
  let lo = 0;
  for (const hi of LENGTH_BUCKETS) {
    if (n <= hi) return hi === Infinity ? `${lo}+` : lo === hi ? `${hi}` : `${lo}-${hi}`;
    lo = hi + 1;
  }
  return `${lo}+`;
}

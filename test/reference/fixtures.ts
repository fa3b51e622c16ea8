// Fixtures shared by the model tests: a model per profile with one ready address space, and profile-neutral
// MAP / UNMAP / DMA helpers, so one table of expectations runs in every profile (the iommufd selftests' variants).
import { strict as assert } from 'node:assert';
import fc from 'fast-check';
import { clauseApplies as specClauseApplies, loadSpec, type Clause } from '../../src/spec/spec.ts';
import { REFERENCE_FEATURES } from '../../conformance/adapters/reference.ts';
import { Picks, type RealiseCtx, type Template } from '../../generators/template.ts';
import { listAreas, subtractAreas, TraceGenerator, wrapU64 } from '../../generators/trace.ts';
import type { Command, Outcome, Profile } from '../../src/reference/commands.ts';
import type { Area } from '../../src/reference/core/areas.ts';
import { isModelLimit, Model, type StepResult } from '../../src/reference/model.ts';
import { defaultPlatform, type Platform } from '../../src/reference/platform.ts';
import type { ObjectInfo, ObjectKind } from '../../src/reference/view.ts';

export const P = 4096n;
export const BASE = 0x10_0000n;

/** A variant of the fixture matrix: a profile, and for vfio-type1 the IOMMU type. */
export interface Variant {
  readonly name: string;
  readonly profile: Profile;
  readonly type1?: 1 | 3;
}
export const VARIANTS: readonly Variant[] = [
  { name: 'rfc', profile: 'rfc' },
  { name: 'iommufd', profile: 'iommufd' },
  { name: 'vfio-type1 v2', profile: 'vfio-type1', type1: 3 },
  { name: 'vfio-type1 v1', profile: 'vfio-type1', type1: 1 },
];

/** A model with one address space that accepts MAP, device 0 attached to it. */
export class Fixture {
  readonly model: Model;
  constructor(
    readonly v: Variant,
    features: string[] = ['copy', 'auto-iova', 'type1-v1'],
    platform: Platform = defaultPlatform(),
  ) {
    this.model = new Model({ profile: v.profile, features: new Set(features), platform });
    const setup: Command[] =
      v.profile === 'iommufd'
        ? [
            { op: 'IOMMU_IOAS_ALLOC' },
            { op: 'VFIO_DEVICE_BIND_IOMMUFD', dev: 0 },
            { op: 'VFIO_DEVICE_ATTACH_IOMMUFD_PT', dev: 0, pt_id: { ref: 0 } },
          ]
        : v.profile === 'rfc'
          ? [
              { op: 'IOASID_ALLOC' },
              { op: 'VFIO_BIND_IOASID_FD', dev: 0 },
              { op: 'VFIO_ATTACH_IOASID', dev: 0, ioasid: { ref: 0 } },
            ]
          : [
              { op: 'VFIO_GROUP_SET_CONTAINER', group: 1 },
              { op: 'VFIO_SET_IOMMU', type: v.type1 ?? 3 },
            ];
    for (const c of setup) {
      const r = this.step(c);
      if (!r.ok) throw new Error(`fixture setup failed at ${c.op}: ${r.errno}`);
    }
  }
  step(c: Command): Outcome {
    return this.model.step(c).outcome;
  }
  /** Steps `c` and returns the whole result (outcome, clauses, violations). */
  run(c: Command): StepResult {
    return this.model.step(c);
  }
  /** The fixture's address space as the view names it: the first object (ID 1), or the type1 container (0). */
  get as(): number {
    return this.v.profile === 'vfio-type1' ? 0 : 1;
  }
  /** The number of mappings of the fixture's address space. */
  get areas(): number {
    return this.model.view.areaCount(this.as);
  }
  clauses(c: Command): readonly string[] {
    return this.model.step(c).clauses;
  }
  mapCmd(iova: bigint, size: bigint, opts: { off?: bigint; read?: boolean; write?: boolean } = {}): Command {
    const r = opts.read ?? true;
    const w = opts.write ?? true;
    const off = opts.off ?? iova;
    switch (this.v.profile) {
      case 'iommufd':
        return {
          op: 'IOMMU_IOAS_MAP',
          ioas_id: { ref: 0 },
          flags: 1 | (w ? 2 : 0) | (r ? 4 : 0),
          user_va: { buf: 0, off },
          length: size,
          iova,
        };
      case 'rfc':
        return {
          op: 'IOASID_MAP_DMA',
          ioasid: { ref: 0 },
          flags: (r ? 1 : 0) | (w ? 2 : 0),
          vaddr: { buf: 0, off },
          iova,
          size,
        };
      case 'vfio-type1':
        return { op: 'VFIO_IOMMU_MAP_DMA', flags: (r ? 1 : 0) | (w ? 2 : 0), vaddr: { buf: 0, off }, iova, size };
    }
  }
  map(iova: bigint, size: bigint, opts: { off?: bigint; read?: boolean; write?: boolean } = {}): Outcome {
    return this.step(this.mapCmd(iova, size, opts));
  }
  unmapCmd(iova: bigint, size: bigint): Command {
    switch (this.v.profile) {
      case 'iommufd':
        return { op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova, length: size };
      case 'rfc':
        return { op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 0, iova, size };
      case 'vfio-type1':
        return { op: 'VFIO_IOMMU_UNMAP_DMA', flags: 0, iova, size };
    }
  }
  unmap(iova: bigint, size: bigint): Outcome {
    return this.step(this.unmapCmd(iova, size));
  }
  unmapAll(): Outcome {
    switch (this.v.profile) {
      case 'iommufd':
        return this.step({ op: 'IOMMU_IOAS_UNMAP', ioas_id: { ref: 0 }, iova: 0n, length: (1n << 64n) - 1n });
      case 'rfc':
        return this.step({ op: 'IOASID_UNMAP_DMA', ioasid: { ref: 0 }, flags: 2, iova: 0n, size: 0n });
      case 'vfio-type1':
        return this.step({ op: 'VFIO_IOMMU_UNMAP_DMA', flags: 2, iova: 0n, size: 0n });
    }
  }
  /** Whether a one-byte read DMA from device 0 at `iova` is translated. */
  reaches(iova: bigint): boolean {
    return this.step({ op: 'DEVICE_DMA', dev: 0, iova, length: 1n, write: false }).ok;
  }
}

/** The size an UNMAP reported, whatever the profile calls it. */
export function unmapped(o: Outcome): bigint | undefined {
  if (!o.ok) return undefined;
  const v = o.out?.size ?? o.out?.length;
  return typeof v === 'bigint' ? v : undefined;
}

/** The errno of an outcome, or 'ok'. */
export function result(o: Outcome): string {
  return o.ok ? 'ok' : o.errno;
}

// ------------------------------------------------------------------------------------------------ random walks

/**
 * A random walk of one model: templates of the project's generators (generators/trace.ts, the ones the runner
 * draws) realised one at a time against the live model, as `TraceGenerator.realise` does, but without keeping the
 * trace — so a walk of 100,000 steps reaches deep states at a cost linear in its length. A step the model does not
 * cover (ModelLimit) is undone with a snapshot and not counted.
 */
const CHECKPOINT_EVERY = 256;

export class RandomWalk {
  readonly model: Model;
  /** Steps taken (ModelLimit steps excluded). */
  steps = 0;
  /** Templates with nothing to act on, and commands the model does not cover. */
  dropped = 0;
  private readonly gen: TraceGenerator;
  private readonly dead: { kind: ObjectKind; id: number }[] = [];
  /** A snapshot and the steps taken since: a ModelLimit step is undone by restoring and replaying (snapshots copy
   * per-mapping accounting, so taking one per step would make a long walk quadratic). */
  private checkpoint: { snap: ReturnType<Model['snapshot']>; since: Command[] };

  constructor(
    readonly profile: Profile,
    features: readonly string[] = REFERENCE_FEATURES[profile],
    readonly platform: Platform = defaultPlatform(),
    invariants = true,
  ) {
    this.gen = new TraceGenerator({ profile, features: [...features], platform });
    this.model = new Model({ profile, features: new Set(features), platform, invariants });
    this.checkpoint = { snap: this.model.snapshot(), since: [] };
  }

  /** One template, drawn with the generators' weights and adversarial share (as `TraceGenerator.arbitrary`). */
  template(): fc.Arbitrary<Template> {
    return fc.oneof(
      ...this.gen.defs.map((d) => ({ weight: Math.round(d.weight * 10), arbitrary: this.gen.templateArbitrary(d) })),
    );
  }

  /** `n` templates, drawn from `seed`. */
  templates(n: number, seed: number): Template[] {
    return fc.sample(this.template(), { numRuns: n, seed });
  }

  /**
   * Realises and steps each template, calling `onStep` after every step the model covered. Returns the number of
   * steps taken.
   */
  run(templates: readonly Template[], onStep?: (cmd: Command, r: StepResult) => void): number {
    const byKind = new Map(this.gen.defs.map((d) => [d.kind, d]));
    const features = new Set(this.gen.config.features);
    const page = BigInt(this.platform.limits.pageSize);
    let areaCache = new Map<number, Area[]>();
    let gapCache = new Map<number, { start: bigint; last: bigint }[]>();
    const model = this.model;
    let objCache: readonly ObjectInfo[] | undefined;
    const objects = (): readonly ObjectInfo[] => (objCache ??= model.view.objects());
    const ctx: RealiseCtx = {
      get view() {
        return model.view;
      },
      profile: this.profile,
      platform: this.platform,
      features,
      step: 0,
      ref: (id) => id,
      live: (...kinds) => objects().filter((o) => kinds.length === 0 || kinds.includes(o.kind)),
      stale: (...kinds) => this.dead.filter((o) => kinds.length === 0 || kinds.includes(o.kind)).map((o) => o.id),
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
        return a > page ? a : page;
      },
    };
    let taken = 0;
    for (const t of templates) {
      const made = byKind.get(t.k)?.realise(ctx, new Picks(t.p), t.a);
      if (made === undefined) {
        this.dropped++;
        continue;
      }
      const cmd = wrapU64(made);
      const before = objects();
      let r: StepResult;
      try {
        r = model.step(cmd);
      } catch (e) {
        if (!isModelLimit(e)) throw e;
        // Undo the step: back to the last checkpoint, then replay the steps taken since.
        model.restore(this.checkpoint.snap);
        for (const c of this.checkpoint.since) model.step(c);
        areaCache = new Map();
        gapCache = new Map();
        objCache = undefined;
        this.dropped++;
        continue;
      }
      this.checkpoint.since.push(cmd);
      if (this.checkpoint.since.length >= CHECKPOINT_EVERY) this.checkpoint = { snap: model.snapshot(), since: [] };
      areaCache = new Map();
      gapCache = new Map();
      objCache = undefined;
      const after = new Set(objects().map((o) => `${o.id}:${o.kind}`));
      for (const o of before) if (!after.has(`${o.id}:${o.kind}`)) this.dead.push({ kind: o.kind, id: o.id });
      if (this.dead.length > 64) this.dead.splice(0, this.dead.length - 64);
      this.steps++;
      taken++;
      onStep?.(cmd, r);
    }
    return taken;
  }
}

// ------------------------------------------------------------------------------------------------ per-clause tests

const SPEC = loadSpec().spec;

/** The clause `id` of the specification (throws for an unknown ID, so a typo fails the test file). */
export function specClause(id: string): Clause {
  const c = SPEC.clauses.find((x) => x.id === id);
  if (c === undefined) throw new Error(`no clause ${id} in spec/chapters`);
  return c;
}

/** The fixture variants of the profiles where `id` applies (both vfio-type1 IOMMU types when type1 is one). */
export function variantsOf(id: string): Variant[] {
  const c = specClause(id);
  return VARIANTS.filter((v) => c.profiles.includes(v.profile));
}

/** The reference features plus the ones clause `id` needs, so the clause applies to the fixture's model. */
export function featuresFor(id: string, profile: Profile): string[] {
  return [...new Set([...REFERENCE_FEATURES[profile], ...specClause(id).features, 'copy', 'auto-iova', 'type1-v1'])];
}

/**
 * The `it`s of one clause, to call inside the clause's `describe` (whose title names the clause, so that
 * `spec coverage` sees it): one per fixture variant of every profile the clause applies to (spec Profiles field).
 * `cases` must give an example for every such profile: a missing one fails, so a clause is never reported tested in
 * a profile it is not.
 */
export function clauseCases(
  id: string,
  cases: Partial<Record<Profile, (v: Variant, features: string[]) => void>>,
): void {
  const c = specClause(id);
  for (const v of variantsOf(id)) {
    const applies = specClauseApplies(c, v.profile, new Set(featuresFor(id, v.profile)));
    it(`${id} in ${v.name}`, () => {
      assert.ok(applies, `${id} applies to ${v.profile} with the fixture's features`);
      const f = cases[v.profile];
      assert.ok(f !== undefined, `${id}: no example for profile ${v.profile}`);
      f(v, featuresFor(id, v.profile));
    });
  }
}

/** A model of `profile` with `features` (no setup). */
export function bare(profile: Profile, features: readonly string[], platform = defaultPlatform()): Model {
  return new Model({ profile, features: new Set(features), platform });
}

/** Steps `cmds` in order and returns their results. */
export function steps(m: Model, cmds: readonly Command[]): StepResult[] {
  return cmds.map((c) => m.step(c));
}

/** Asserts the outcome is the errno (or 'ok'), and that the step broke no invariant. */
export function expectResult(r: StepResult, want: string, what = ''): void {
  assert.equal(
    result(r.outcome),
    want,
    `${what} ${JSON.stringify(r.outcome, (_k, x: unknown) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x))}`,
  );
  assert.deepEqual(r.violations, [], `${what}: invariants`);
}

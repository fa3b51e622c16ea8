/**
 * Resolution of `{ ref: n, field? }` object-ID arguments against the outputs of earlier steps. The adapter protocol
 * requires every implementation to resolve references this way; the reference model and the in-process adapters
 * use this function.
 *
 * @module
 */
import type { IdArg } from './args.ts';
import type { Command, Outcome } from './commands.ts';

/** The output field a reference names when it names none. */
export const DEFAULT_REF_FIELD = 'id';

/**
 * Resolves one ID argument: a literal stays as it is; `{ ref: n, field }` is output `field` (default `id`) of step
 * `n`, or 0 when step `n` does not exist, failed, or has no such numeric output.
 */
export function resolveId(arg: IdArg, outcomes: readonly (Outcome | undefined)[]): number {
  if (typeof arg === 'number') return arg;
  const o = outcomes[arg.ref];
  if (o === undefined || !o.ok || o.out === undefined) return 0;
  const v = o.out[arg.field ?? DEFAULT_REF_FIELD];
  return typeof v === 'number' ? v : 0;
}

const ID_FIELDS = new Set([
  'id',
  'ioas_id',
  'dst_ioas_id',
  'src_ioas_id',
  'object_id',
  'dev_id',
  'pt_id',
  'fault_id',
  'hwpt_id',
  'ioasid',
  'parent',
  'cookie',
]);

/** Returns `cmd` with every ID argument resolved to a number (a new object only when something changed). */
export function resolveCommand<C extends Command>(cmd: C, outcomes: readonly (Outcome | undefined)[]): C {
  let copy: Record<string, unknown> | undefined;
  const rec = cmd as Record<string, unknown>;
  // A `for…in` over own data properties (commands are plain objects): no entry arrays on this per-step path.
  for (const k in rec) {
    const v = rec[k];
    if (typeof v === 'object' && v !== null && ID_FIELDS.has(k)) {
      copy ??= { ...rec };
      copy[k] = resolveId(v as IdArg, outcomes);
    }
  }
  return (copy ?? cmd) as C;
}

/**
 * The context of one model step: it records every clause the step evaluates (so coverage is measured from what
 * really executed), the violations found when adopting an implementation's choices, and builds the outcome.
 *
 * Handlers read like their clauses: `if (length === 0n) return ctx.reject('MAP-007', 'EINVAL')`, and
 * `ctx.hit('MAP-009')` when a rule was checked and held.
 *
 * @module
 */
import type { Outcome, Outputs } from '../commands.ts';

/** A clause broken by an implementation's choice (a new ID that is not free, an IOVA in a reserved range…). */
export interface Violation {
  readonly clause: string;
  readonly message: string;
}

/** The result of one model step. */
export interface StepResult {
  /** What the specification says the step does. */
  readonly outcome: Outcome;
  /** The clauses the step evaluated, in evaluation order. */
  readonly clauses: readonly string[];
  /** Clauses the implementation's observed choices broke (empty when no observation was given). */
  readonly violations: readonly Violation[];
  /**
   * The clause whose check gave an error outcome (the last {@link StepContext.reject}); absent on success. Reports
   * blame a divergence on it rather than on every clause the step evaluated.
   */
  readonly decidedBy?: string;
}

/** Records clauses and violations for one step. */
export class StepContext {
  readonly clauses: string[] = [];
  readonly violations: Violation[] = [];
  /** The clause of the last {@link StepContext.reject}. */
  decidedBy: string | undefined;

  /**
   * @param observed the implementation's outcome of this step, when the model runs in lockstep with one; handlers
   *   read implementation-chosen outputs (new IDs, automatic IOVAs, allocated PASIDs) from it.
   */
  constructor(readonly observed?: Outcome) {}

  /** Records that `clause` was evaluated and held. */
  hit(clause: string): void {
    this.clauses.push(clause);
  }

  /** Records `clause` and returns its error outcome. */
  reject(clause: string, errno: string, out?: Outputs): Outcome {
    this.clauses.push(clause);
    this.decidedBy = clause;
    return out === undefined ? { ok: false, errno } : { ok: false, errno, out };
  }

  /** A success outcome. */
  ok(out?: Outputs): Outcome {
    return out === undefined ? { ok: true } : { ok: true, out };
  }

  /** Records a violation of `clause` by the implementation's observed outcome. */
  violate(clause: string, message: string): void {
    this.clauses.push(clause);
    this.violations.push({ clause, message });
  }

  /** The observed numeric output `field`, when the implementation succeeded and reported one. */
  observedNumber(field: string): number | undefined {
    const o = this.observed;
    if (o === undefined || !o.ok) return undefined;
    const v = o.out?.[field];
    return typeof v === 'number' ? v : undefined;
  }

  /** The observed u64 output `field`, when the implementation succeeded and reported one. */
  observedU64(field: string): bigint | undefined {
    const o = this.observed;
    if (o === undefined || !o.ok) return undefined;
    const v = o.out?.[field];
    return typeof v === 'bigint' ? v : undefined;
  }
}

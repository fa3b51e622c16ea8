/**
 * The adapter interface: how the runner drives an implementation. An adapter is either in-process TypeScript (an
 * object implementing {@link Adapter}) or an out-of-process program speaking the JSON-lines protocol of
 * `conformance/INTERPRETING.md`, wrapped by the stdio adapter into this same interface.
 *
 * The runner talks to an implementation only through this interface: it never reaches into its state.
 *
 * @module
 */
import type { Command, Outcome, Profile } from '../src/reference/commands.ts';
import type { Platform } from '../src/reference/platform.ts';

/**
 * What an implementation declares about itself (its capability profile, as in RISCOF): this single declaration
 * selects which clauses apply, what the generators may draw, and how the reference model is configured.
 */
export interface Capabilities {
  /** The adapter's name, as reports show it (`reference`, `linux-iommufd`). */
  readonly name: string;
  /** The profile the implementation speaks. */
  readonly profile: Profile;
  /** The features it offers (closed list: spec/features.txt). */
  readonly features: readonly string[];
  /** The platform it runs: IOMMU capabilities, devices, user buffers, limits. */
  readonly platform: Platform;
  /** Free-form description (kernel version, emulator build). */
  readonly description?: string;
}

/** The outcome of one step as the implementation reports it. */
export interface StepReply {
  readonly outcome: Outcome;
}

/**
 * The result of running a trace on an implementation: the replies of the steps it ran, in order. When the
 * implementation failed to answer (it crashed, hung past its timeout, or spoke garbage), `error` says what happened
 * and `replies` holds what came before.
 */
export interface TraceReply {
  readonly replies: readonly StepReply[];
  readonly error?: AdapterError;
  /** What the implementation wrote to stderr while running the trace (out-of-process adapters). */
  readonly stderr?: string;
}

/** How an adapter failed, as opposed to a step's errno (which is a normal outcome). */
export interface AdapterError {
  readonly kind: 'crash' | 'timeout' | 'protocol' | 'version';
  /** One line saying what happened, naming the adapter and the request. */
  readonly message: string;
  /** The step being run, when known. */
  readonly step?: number;
}

/**
 * An implementation under test.
 *
 * The runner calls {@link Adapter.open} once, then {@link Adapter.runTrace} for each trace (every trace starts from a
 * fresh fd: the adapter resets between traces), then {@link Adapter.close}.
 */
export interface Adapter {
  /** The name reports use. */
  readonly name: string;
  /** Starts the implementation (spawns it, boots it) and returns its declared capabilities (the handshake). */
  open(): Promise<Capabilities>;
  /**
   * Runs the steps of one trace from a fresh state (all fds closed and reopened) and returns one reply per step.
   *
   * Object-ID arguments of the form `{ ref: n, field? }` name the output of an earlier step (`id` unless `field` is
   * given); the adapter resolves them against its own outputs, and resolves a reference to a step that failed or
   * has no such output to 0. Traces are handed over whole so that out-of-process adapters can pipeline them.
   */
  runTrace(steps: readonly Command[]): Promise<TraceReply>;
  /** Stops the implementation. Safe to call twice. */
  close(): Promise<void>;
}

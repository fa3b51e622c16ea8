/**
 * The watchdog of in-process adapters: an in-process implementation that hangs is reported like one that crashed
 * (a `timeout` of the trace it was running, the trace kept), and the run goes on.
 *
 * An out-of-process implementation is killed by the stdio adapter when a request passes its time limit; an
 * in-process one runs on the runner's own thread, where no timer can fire while it loops. Two guards cover it:
 *
 * - a **synchronous loop** inside `open` or `runTrace` (a bug's `step` that never returns): the call runs through a
 *   `node:vm` script with a `timeout`, whose watchdog thread terminates the JavaScript running on this thread when
 *   the limit passes — whatever function is running, the adapter's included — and the call throws instead of
 *   hanging;
 * - a **promise that never settles**: it is raced against a timer for what is left of the limit.
 *
 * After either, the adapter is restarted (closed and opened again, under the same guards) before its next trace; it
 * must declare the same capabilities, as a restarted stdio program must.
 *
 * Cost: the loop interruption starts one short-lived watchdog thread per call, about 0.3 ms (5–10 % of a default
 * run's time per trace); the promise timer costs nothing measurable. The guarded adapter is otherwise the adapter
 * itself, on the same thread. {@link guardAdapter} leaves the loop interruption out for the reference family, whose
 * code is the checker's own (see there), so the default run keeps its speed.
 *
 * Not for: a loop that starts *after* the adapter's first `await` (in a promise continuation or a timer callback):
 * it blocks the event loop outside any guarded call, so neither guard can interrupt it — such an implementation must
 * run out of process (`stdio:`), where the runner kills it. Not for out-of-process adapters either (they have their
 * own time limits and are passed through unchanged, see {@link isOutOfProcess}).
 *
 * @module
 */
import { Script } from 'node:vm';
import type { Adapter, AdapterError, Capabilities, TraceReply } from '../adapter.ts';
import type { Command } from '../../src/reference/commands.ts';
import { toWireJson } from '../protocol.ts';
import { LinuxAdapter } from './linux.ts';
import { ReferenceAdapter } from './reference.ts';
import { AdapterOpenError, StdioAdapter } from './stdio.ts';

/** The default time limit of one request, in milliseconds (the same as the stdio adapter's). */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Where the guarded call waits for the vm script to call it (a symbol: nothing else can collide with it). */
const SLOT = Symbol.for('ioasid-conformance.watchdog.call');
/** The script that calls the function in {@link SLOT}: running it with `timeout` puts the call under a watchdog. */
const CALLER = new Script(`globalThis[Symbol.for('ioasid-conformance.watchdog.call')]()`, {
  filename: 'ioasid-conformance-watchdog.js',
});
/** The largest timeout `vm` accepts (a 32-bit count of milliseconds). */
const VM_MAX_MS = 0x7fff_ffff;

/** What a guarded synchronous call gave: its value, or that it was interrupted at the time limit. */
export type Guarded<T> = { readonly value: T } | { readonly interrupted: true };

/**
 * Calls `fn` synchronously, interrupting it when it runs longer than `ms` milliseconds. An exception `fn` throws
 * propagates; an interruption returns `{ interrupted: true }`. Whatever `fn` was doing when interrupted is abandoned
 * mid-way (no `finally` of it runs): its state must be thrown away.
 */
export function callWithin<T>(fn: () => T, ms: number): Guarded<T> {
  const g = globalThis as unknown as Record<symbol, unknown>;
  const prev = g[SLOT];
  g[SLOT] = fn;
  try {
    return { value: CALLER.runInThisContext({ timeout: Math.min(VM_MAX_MS, Math.max(1, Math.ceil(ms))) }) as T };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_SCRIPT_EXECUTION_TIMEOUT') return { interrupted: true };
    throw e;
  } finally {
    g[SLOT] = prev;
  }
}

/** What a guarded asynchronous call gave. */
export type GuardedAsync<T> =
  { readonly value: T } | { readonly interrupted: true } | { readonly unsettled: true; readonly waitedMs: number };

/**
 * Calls `fn` (which returns a promise) within `ms` milliseconds: its synchronous part under {@link callWithin} (unless
 * `interruptLoops` is false), its promise raced against a timer for the rest of the limit. A rejection propagates.
 */
export async function settleWithin<T>(
  fn: () => Promise<T>,
  ms: number,
  interruptLoops = true,
): Promise<GuardedAsync<T>> {
  const t0 = performance.now();
  const started = interruptLoops ? callWithin(fn, ms) : { value: fn() };
  if ('interrupted' in started) return started;
  const left = Math.max(1, ms - (performance.now() - t0));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<{ unsettled: true; waitedMs: number }>((resolve) => {
    timer = setTimeout(() => resolve({ unsettled: true, waitedMs: Math.round(performance.now() - t0) }), left);
  });
  try {
    return await Promise.race([started.value.then((value) => ({ value })), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether an adapter runs its implementation in another process (and so enforces time limits itself). */
export function isOutOfProcess(adapter: Adapter): boolean {
  return adapter instanceof StdioAdapter || adapter instanceof LinuxAdapter;
}

/**
 * An in-process adapter under the watchdog: the same adapter, whose `open`, `runTrace` and `close` fail with a
 * `timeout` instead of hanging past `timeoutMs`. Build it with {@link guardAdapter}.
 */
export class WatchdogAdapter implements Adapter {
  readonly name: string;
  /** Requests made so far (the number messages name). */
  private requests = 0;
  /** The capabilities the first open declared (JSON), which a restart must declare again. */
  private capsJson: string | undefined;
  /** Set after a hang: the adapter must be restarted before its next trace. */
  private stale = false;

  /**
   * @param inner the in-process adapter
   * @param timeoutMs the time limit of each call, in milliseconds
   * @param interruptLoops whether synchronous loops are interrupted (the `vm` watchdog, about 0.3 ms per call);
   *   without it only promises that never settle are caught
   */
  constructor(
    readonly inner: Adapter,
    readonly timeoutMs: number = DEFAULT_TIMEOUT_MS,
    readonly interruptLoops = true,
  ) {
    this.name = inner.name;
  }

  /** Opens the inner adapter; a hang raises an {@link AdapterOpenError} of kind `timeout`. */
  async open(): Promise<Capabilities> {
    const r = await settleWithin(() => this.inner.open(), this.timeoutMs, this.interruptLoops);
    if (!('value' in r))
      throw new AdapterOpenError(
        'timeout',
        `in-process adapter "${this.name}" did not finish opening within ${this.timeoutMs} ms (${hang(r)})`,
      );
    this.capsJson = toWireJson(r.value);
    return r.value;
  }

  async runTrace(steps: readonly Command[]): Promise<TraceReply> {
    if (this.stale) {
      const failed = await this.restart();
      if (failed !== undefined) return { replies: [], error: failed };
    }
    const id = ++this.requests;
    const r = await settleWithin(() => this.inner.runTrace(steps), this.timeoutMs, this.interruptLoops);
    if ('value' in r) return r.value;
    this.stale = true;
    return {
      replies: [],
      error: {
        kind: 'timeout',
        message: `in-process adapter "${this.name}" did not answer request ${id} (${steps.length} steps) within ${this.timeoutMs} ms (${hang(r)}); it is restarted for the next trace`,
      },
    };
  }

  async close(): Promise<void> {
    // A close that hangs is abandoned: the run is over for this adapter either way.
    await settleWithin(() => this.inner.close(), this.timeoutMs, this.interruptLoops);
  }

  /** Closes and reopens the inner adapter after a hang; returns why that failed, or undefined. */
  private async restart(): Promise<AdapterError | undefined> {
    const why = `in-process adapter "${this.name}" could not be restarted after a hang`;
    await settleWithin(() => this.inner.close(), this.timeoutMs, this.interruptLoops).catch(() => undefined);
    let r: GuardedAsync<Capabilities>;
    try {
      r = await settleWithin(() => this.inner.open(), this.timeoutMs, this.interruptLoops);
    } catch (e) {
      return { kind: 'crash', message: `${why}: open threw: ${(e as Error).message}` };
    }
    if (!('value' in r))
      return { kind: 'timeout', message: `${why}: open did not finish within ${this.timeoutMs} ms (${hang(r)})` };
    if (toWireJson(r.value) !== this.capsJson)
      return { kind: 'protocol', message: `${why}: it declared different capabilities` };
    this.stale = false;
    return undefined;
  }
}

/** How a call hung, in words. */
function hang(r: { interrupted: true } | { unsettled: true; waitedMs: number }): string {
  return 'interrupted' in r
    ? 'it ran a synchronous loop, interrupted by the watchdog'
    : `its promise had not settled after ${r.waitedMs} ms`;
}

/**
 * The adapter under the watchdog when it is in process (`timeoutMs` per call, default {@link DEFAULT_TIMEOUT_MS});
 * an out-of-process adapter, or one already guarded, comes back as it is.
 *
 * The reference family (`reference`, `buggy-<bug>`: {@link ReferenceAdapter}) gets only the promise timer, not the
 * loop interruption: it runs the reference model — the same code the runner's checker runs in lockstep, which no
 * guard of the adapter could interrupt — plus at most one catalogued bug of the suite's own, so the `vm` watchdog's
 * cost per trace would buy nothing there, and the default run keeps its speed. Every other in-process adapter (those
 * registered by tests or by an embedding program) gets both guards.
 */
export function guardAdapter(adapter: Adapter, timeoutMs: number = DEFAULT_TIMEOUT_MS): Adapter {
  if (adapter instanceof WatchdogAdapter || isOutOfProcess(adapter)) return adapter;
  return new WatchdogAdapter(adapter, timeoutMs, !(adapter instanceof ReferenceAdapter));
}

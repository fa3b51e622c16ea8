/**
 * The stdio adapter: drives an out-of-process implementation that speaks the JSON-lines protocol of
 * `conformance/protocol.ts` (normative text: `conformance/INTERPRETING.md`) on its stdin/stdout.
 *
 * Robustness is the point of this module: an implementation that crashes, hangs past the per-request timeout,
 * writes garbage or answers the handshake with another protocol version is reported as an {@link AdapterError} of
 * the trace it was running (with the replies it gave before and its stderr), the child is killed, and the next
 * trace starts a fresh child (whose capabilities must be the same as the first one's).
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isLeft } from 'fp-ts/lib/Either.js';
import type * as t from 'io-ts';
import type { Adapter, AdapterError, Capabilities, StepReply, TraceReply } from '../adapter.ts';
import type { Command, Outcome } from '../../src/reference/commands.ts';
import {
  CapabilitiesCodec,
  LineSplitter,
  PROTOCOL_VERSION,
  describeErrors,
  outcomeFromWire,
  parseResponse,
  toWireJson,
  type Response,
} from '../protocol.ts';

/** Raised by {@link Adapter.open} when an implementation cannot be started or refuses the handshake. */
export class AdapterOpenError extends Error {
  override readonly name = 'AdapterOpenError';
  constructor(
    readonly kind: AdapterError['kind'],
    message: string,
    readonly stderr = '',
  ) {
    super(message);
  }
}

/** Options of the stdio adapter. */
export interface StdioOptions {
  /** Per-request timeout in milliseconds, counted from when the request is written (default 30 s). */
  readonly timeoutMs?: number;
  /** How long the handshake may take, including the program's start-up (default 60 s). */
  readonly helloTimeoutMs?: number;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Another protocol over this transport (the hardware one, `conformance/hw-protocol.ts`); default: the uAPI one. */
  readonly dialect?: StdioDialect;
}

/** A parsed message of any dialect: the uAPI protocol's, with the capabilities left to the dialect's codec. */
export type WireResponse =
  | Exclude<Response, { type: 'capabilities' }>
  | { readonly type: 'capabilities'; readonly protocol: number; readonly capabilities: unknown };

/**
 * What another protocol over this transport changes: the extra fields of `hello`, how a line is parsed, and the codec
 * of the declared capabilities. Framing, request IDs, `step` / `result` / `error`, time limits and crash handling
 * stay the same.
 */
export interface StdioDialect {
  readonly hello: Readonly<Record<string, unknown>>;
  readonly parseResponse: (line: string) => { ok: true; msg: WireResponse } | { ok: false; reason: string };
  readonly capabilities: t.Decoder<unknown, unknown>;
}

/** Most stderr kept per request in a report. */
const STDERR_KEEP = 16 << 10;
/** Most stderr buffered per child. */
const STDERR_BUFFER = 1 << 20;

interface Pending {
  readonly id: number;
  readonly nsteps: number;
  readonly streamed: Outcome[];
  readonly stderrFrom: number;
  readonly resolve: (r: TraceReply) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Splits a command line into words: whitespace separates, single and double quotes group, a backslash escapes the
 * next character outside single quotes. No variables, no globbing: the program is started without a shell.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) cur += line[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new Error(`unterminated ${quote} quote in command line`);
  if (inWord) words.push(cur);
  return words;
}

/** One running child process and the requests in flight on it. */
class Child {
  readonly proc: ChildProcess;
  readonly pending = new Map<number, Pending>();
  stderr = '';
  /** Characters of stderr dropped from the front of `stderr`. */
  stderrBase = 0;
  dead = false;
  deathReason = '';
  private helloWaiter: ((m: WireResponse | { garbage: string } | { exit: string }) => void) | undefined;
  private readonly splitter: LineSplitter;
  private readonly parse: StdioDialect['parseResponse'];

  constructor(
    private readonly adapterName: string,
    argv: readonly string[],
    opts: StdioOptions,
  ) {
    this.parse = opts.dialect?.parseResponse ?? parseResponse;
    this.splitter = new LineSplitter(
      (line) => this.onLine(line),
      () => this.fail('protocol', `adapter "${adapterName}" wrote a line longer than the protocol allows`),
    );
    this.proc = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      cwd: opts.cwd,
      env: opts.env ?? process.env,
    });
    this.proc.stdout!.setEncoding('utf8');
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stdout!.on('data', (d: string) => this.splitter.push(d));
    this.proc.stderr!.on('data', (d: string) => {
      this.stderr += d;
      if (this.stderr.length > STDERR_BUFFER) {
        const drop = this.stderr.length - STDERR_BUFFER / 2;
        this.stderr = this.stderr.slice(drop);
        this.stderrBase += drop;
      }
    });
    this.proc.stdin!.on('error', () => undefined); // EPIPE after a crash: the exit handler reports it
    this.proc.on('error', (e) => this.onExit(`could not be started: ${e.message}`));
    this.proc.on('exit', (code, signal) =>
      this.onExit(signal !== null ? `was killed by ${signal}` : `exited with code ${String(code)}`),
    );
  }

  get stderrEnd(): number {
    return this.stderrBase + this.stderr.length;
  }

  stderrSince(from: number): string {
    const s = this.stderr.slice(Math.max(0, from - this.stderrBase));
    return s.length > STDERR_KEEP ? `…${s.slice(-STDERR_KEEP)}` : s;
  }

  send(msg: unknown): void {
    if (!this.dead) this.proc.stdin!.write(`${toWireJson(msg)}\n`);
  }

  /** Waits for the first message (the handshake answer). */
  nextMessage(timeoutMs: number): Promise<WireResponse | { garbage: string } | { exit: string } | { timeout: true }> {
    return new Promise((resolve) => {
      if (this.dead) return resolve({ exit: this.deathReason });
      const timer = setTimeout(() => {
        this.helloWaiter = undefined;
        resolve({ timeout: true });
      }, timeoutMs);
      this.helloWaiter = (m) => {
        clearTimeout(timer);
        this.helloWaiter = undefined;
        resolve(m);
      };
    });
  }

  private onLine(line: string): void {
    const parsed = this.parse(line);
    if (this.helloWaiter) return this.helloWaiter(parsed.ok ? parsed.msg : { garbage: parsed.reason });
    if (!parsed.ok) return this.fail('protocol', `adapter "${this.adapterName}" sent garbage: ${parsed.reason}`);
    const msg = parsed.msg;
    switch (msg.type) {
      case 'capabilities':
        return this.fail('protocol', `adapter "${this.adapterName}" sent an unexpected capabilities message`);
      case 'error': {
        const p = msg.id === undefined ? this.pending.values().next().value : this.pending.get(msg.id);
        if (p === undefined)
          return this.fail('protocol', `adapter "${this.adapterName}" reported an error: ${msg.message}`);
        return this.finish(p, {
          kind: 'protocol',
          message: `adapter "${this.adapterName}" could not run request ${p.id}: ${msg.message}`,
        });
      }
      case 'step': {
        const p = this.pending.get(msg.id);
        if (p === undefined)
          return this.fail('protocol', `adapter "${this.adapterName}" sent a step of unknown request ${msg.id}`);
        if (msg.index !== p.streamed.length)
          return this.fail(
            'protocol',
            `adapter "${this.adapterName}" sent step ${msg.index} of request ${msg.id} out of order (expected ${p.streamed.length})`,
          );
        p.streamed.push(outcomeFromWire(msg.outcome));
        return;
      }
      case 'result': {
        const p = this.pending.get(msg.id);
        if (p === undefined)
          return this.fail('protocol', `adapter "${this.adapterName}" answered unknown request ${msg.id}`);
        if (msg.replies.length !== p.nsteps)
          return this.fail(
            'protocol',
            `adapter "${this.adapterName}" answered request ${msg.id} with ${msg.replies.length} replies for ${p.nsteps} steps`,
          );
        const replies: StepReply[] = msg.replies.map((r) => ({ outcome: outcomeFromWire(r.outcome) }));
        return this.finish(p, undefined, replies);
      }
    }
  }

  /** Completes a request; on an error, the child is killed (the next trace restarts it). */
  finish(p: Pending, error: AdapterError | undefined, replies?: StepReply[]): void {
    if (!this.pending.delete(p.id)) return;
    if (p.timer) clearTimeout(p.timer);
    const stderr = this.stderrSince(p.stderrFrom);
    const reply: TraceReply = {
      replies: replies ?? p.streamed.map((outcome) => ({ outcome })),
      ...(error === undefined
        ? {}
        : { error: p.streamed.length > 0 && error.step === undefined ? { ...error, step: p.streamed.length } : error }),
      ...(stderr === '' ? {} : { stderr }),
    };
    p.resolve(reply);
    if (error !== undefined) this.kill(error.message);
  }

  /** Fails every request in flight with `kind` and kills the child. */
  fail(kind: AdapterError['kind'], message: string): void {
    for (const p of [...this.pending.values()]) this.finish(p, { kind, message });
    this.kill(message);
  }

  kill(reason: string): void {
    if (!this.dead) {
      this.dead = true;
      this.deathReason = reason;
      this.proc.kill('SIGKILL');
    }
  }

  private onExit(how: string): void {
    const wasDead = this.dead;
    this.dead = true;
    if (!wasDead) this.deathReason = `adapter "${this.adapterName}" ${how}`;
    if (this.helloWaiter) this.helloWaiter({ exit: this.deathReason });
    for (const p of [...this.pending.values()])
      this.finish(p, { kind: 'crash', message: `adapter "${this.adapterName}" ${how} while running request ${p.id}` });
  }

  /** Resolves when the process has exited (or after `ms`). */
  exited(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return resolve();
      const timer = setTimeout(resolve, ms);
      this.proc.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** An {@link Adapter} over a child process speaking the protocol. */
export class StdioAdapter implements Adapter {
  private child: Child | undefined;
  private caps: Capabilities | undefined;
  private capsJson = '';
  private nextId = 1;
  private readonly timeoutMs: number;
  private readonly helloTimeoutMs: number;

  /**
   * @param name the name reports use
   * @param argv the program and its arguments (started without a shell)
   */
  constructor(
    readonly name: string,
    private readonly argv: readonly string[],
    private readonly opts: StdioOptions = {},
  ) {
    if (argv.length === 0) throw new Error('the stdio adapter needs a command line');
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 60_000;
  }

  /** The process ID of the current child (for tests), or undefined. */
  get pid(): number | undefined {
    return this.child?.dead === false ? this.child.proc.pid : undefined;
  }

  async open(): Promise<Capabilities> {
    this.caps = await this.start();
    this.capsJson = toWireJson(this.caps);
    return this.caps;
  }

  /** Spawns a child and performs the handshake. */
  private async start(): Promise<Capabilities> {
    const child = new Child(this.name, this.argv, this.opts);
    this.child = child;
    child.send({ type: 'hello', protocol: PROTOCOL_VERSION, ...this.opts.dialect?.hello });
    const m = await child.nextMessage(this.helloTimeoutMs);
    const fail = (kind: AdapterError['kind'], message: string): never => {
      const stderr = child.stderrSince(0);
      child.kill(message);
      throw new AdapterOpenError(kind, message, stderr);
    };
    if ('timeout' in m)
      return fail('timeout', `adapter "${this.name}" did not answer the handshake within ${this.helloTimeoutMs} ms`);
    if ('exit' in m)
      return fail(
        'crash',
        `adapter "${this.name}" ${m.exit.replace(`adapter "${this.name}" `, '')} before the handshake`,
      );
    if ('garbage' in m)
      return fail('protocol', `adapter "${this.name}" answered the handshake with garbage: ${m.garbage}`);
    if (m.type === 'error') return fail('version', `adapter "${this.name}" refused the handshake: ${m.message}`);
    if (m.type !== 'capabilities')
      return fail('protocol', `adapter "${this.name}" answered the handshake with a "${m.type}" message`);
    if (m.protocol !== PROTOCOL_VERSION)
      return fail(
        'version',
        `adapter "${this.name}" speaks protocol ${m.protocol}; this runner speaks protocol ${PROTOCOL_VERSION}`,
      );
    const caps = (this.opts.dialect?.capabilities ?? CapabilitiesCodec).decode(m.capabilities);
    if (isLeft(caps))
      return fail('protocol', `adapter "${this.name}" declared invalid capabilities: ${describeErrors(caps.left)}`);
    // Decoded by CapabilitiesCodec, or by another dialect's codec (whose adapter reads it as its own type).
    return caps.right as Capabilities;
  }

  runTrace(steps: readonly Command[]): Promise<TraceReply> {
    return this.request({ steps });
  }

  /** Sends one `run` request with `fields` (its steps and, in another dialect, more) and waits for its replies. */
  async request(
    fields: { readonly steps: readonly unknown[] } & Readonly<Record<string, unknown>>,
  ): Promise<TraceReply> {
    const steps = fields.steps;
    if (this.caps === undefined) throw new Error(`adapter "${this.name}" is not open`);
    if (this.child === undefined || this.child.dead) {
      try {
        const caps = await this.start();
        if (toWireJson(caps) !== this.capsJson)
          return {
            replies: [],
            error: {
              kind: 'protocol',
              message: `adapter "${this.name}" declared different capabilities after a restart`,
            },
          };
      } catch (e) {
        const err = e as AdapterOpenError;
        return {
          replies: [],
          error: { kind: err.kind ?? 'crash', message: `could not restart: ${err.message}` },
          ...(err.stderr ? { stderr: err.stderr } : {}),
        };
      }
    }
    const child = this.child!;
    const id = this.nextId++;
    return new Promise<TraceReply>((resolve) => {
      const p: Pending = {
        id,
        nsteps: steps.length,
        streamed: [],
        stderrFrom: child.stderrEnd,
        resolve,
        timer: undefined,
      };
      child.pending.set(id, p);
      p.timer = setTimeout(
        () =>
          child.finish(p, {
            kind: 'timeout',
            message: `adapter "${this.name}" did not answer request ${id} (${steps.length} steps) within ${this.timeoutMs} ms`,
          }),
        this.timeoutMs,
      );
      child.send({ type: 'run', id, ...fields });
    });
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.dead) return;
    child.send({ type: 'bye' });
    child.proc.stdin!.end();
    await child.exited(2000);
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.kill('did not exit after bye');
    await child.exited(2000);
  }
}

/**
 * The serving loop of the built-in out-of-process programs (`reference-stdio.ts` for uAPI traces,
 * `hw-reference-stdio.ts` for hardware traces): read JSON-lines requests on stdin, answer a malformed one with an
 * `error`, `hello` with the capabilities (or an `error` for another protocol version), `bye` and end of input by
 * exiting, and hand each `run` to the program. It also carries the transport faults the runner's robustness tests
 * ask for with `--misbehave`: `version` (answer the handshake with the next protocol), `hang:N` (never answer the
 * Nth run), `garbage:N` (answer it with a line that is not JSON); `crash` and `short` depend on how the program
 * runs a trace, so the program does them (it gets the misbehaviour due for each run).
 *
 * Not for: implementers' own programs, which need not be written in TypeScript; INTERPRETING.md is their contract.
 *
 * @module
 */
import { LineSplitter, toWireJson } from './protocol.ts';

/** A transport fault asked for with `--misbehave KIND[:N]`: on the Nth run request (or the handshake). */
export interface Misbehave {
  readonly kind: string;
  readonly n: number;
}

/** A parsed request line: a message, or why it is not one (with its request id when that could be read). */
export type Parsed<M> = { ok: true; msg: M } | { ok: false; id?: number | undefined; reason: string };

/** The requests every protocol has; each protocol's `run` carries its own trace. */
type Request = { type: 'hello'; protocol: number } | { type: 'bye' } | { type: 'run'; id: number };

/** What a program supplies to {@link serveStdio}. */
export interface StdioProgram<M extends Request> {
  /** The program's name, for its stderr lines. */
  readonly name: string;
  readonly protocol: number;
  readonly capabilities: unknown;
  readonly misbehave?: Misbehave | undefined;
  readonly parse: (line: string) => Parsed<M>;
  /** Runs one request and answers it through `send`; `mis` is the misbehaviour due for this request, if any. */
  readonly run: (msg: Extract<M, { type: 'run' }>, send: (m: unknown) => void, mis: string | undefined) => void;
}

/** Writes one message as a line on stdout. */
export function sendLine(m: unknown): void {
  process.stdout.write(`${toWireJson(m)}\n`);
}

/** Serves requests on stdin/stdout until `bye` or end of input. */
export function serveStdio<M extends Request>(p: StdioProgram<M>): void {
  const mis = p.misbehave;
  let runs = 0;
  const onLine = (line: string): void => {
    const parsed = p.parse(line);
    if (!parsed.ok)
      return sendLine({ type: 'error', ...(parsed.id === undefined ? {} : { id: parsed.id }), message: parsed.reason });
    const msg = parsed.msg;
    if (msg.type === 'hello') {
      if (msg.protocol !== p.protocol)
        return sendLine({
          type: 'error',
          message: `unsupported protocol ${msg.protocol}; this program speaks ${p.protocol}`,
        });
      return sendLine({
        type: 'capabilities',
        protocol: mis?.kind === 'version' ? p.protocol + 1 : p.protocol,
        capabilities: p.capabilities,
      });
    }
    if (msg.type === 'bye') process.exit(0);
    runs++;
    const due = mis !== undefined && runs === mis.n ? mis.kind : undefined;
    if (due === 'hang') return;
    if (due === 'garbage') return void process.stdout.write('this is not JSON\n');
    p.run(msg as Extract<M, { type: 'run' }>, sendLine, due);
  };
  const splitter = new LineSplitter(onLine, () => {
    process.stderr.write(`${p.name}: request line too long\n`);
    process.exit(2);
  });
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => splitter.push(d));
  process.stdin.on('end', () => process.exit(0));
}

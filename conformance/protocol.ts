/**
 * The adapter protocol: how the runner talks to an out-of-process implementation. JSON lines over the program's
 * stdin/stdout (one JSON object per `\n`-terminated line), versioned by a handshake. `conformance/INTERPRETING.md`
 * is the normative description; the io-ts codecs here are its single source, and
 * `conformance/schema/protocol.schema.json` is exported from them.
 *
 * Runner → implementation:
 * - `{"type":"hello","protocol":1}` — first message; the implementation answers `capabilities`.
 * - `{"type":"run","id":N,"steps":[…]}` — run one trace from a fresh state; the answer is `result` with the same id.
 *   Several `run` requests may be in flight (pipelining); the implementation answers them in order.
 * - `{"type":"bye"}` — exit.
 *
 * Implementation → runner:
 * - `{"type":"capabilities","protocol":1,"capabilities":{…}}`.
 * - `{"type":"step","id":N,"index":i,"outcome":{…}}` — optional, one per step as it completes (lets the runner say
 *   which step a crash interrupted).
 * - `{"type":"result","id":N,"replies":[{"outcome":{…}}, …]}` — one reply per step.
 * - `{"type":"error","id":N?,"message":"…"}` — the implementation could not run the request (the runner reports it
 *   as a protocol failure of that trace).
 *
 * Every u64 travels as a `"0x…"` lowercase hex string, in both directions; in outcomes, a string of that form is a
 * u64 and is compared as a number.
 *
 * @module
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import {
  Command,
  Outcome,
  OP_PROFILES,
  PROFILES,
  type Command as CommandT,
  type Outcome as OutcomeT,
  type OutValue,
  type Profile,
} from '../src/reference/commands.ts';
import { Platform } from '../src/reference/platform.ts';
import { contextPath } from '../src/reference/trace.ts';
import { hex } from '../src/reference/u64.ts';
import type { Capabilities } from './adapter.ts';

/** The protocol version this runner speaks. An implementation answering another version is refused. */
export const PROTOCOL_VERSION = 1;

/** The longest line either side may send (a trace of thousands of steps fits easily). */
export const MAX_LINE_BYTES = 64 << 20;

const ProfileCodec = t.keyof({ rfc: null, iommufd: null, 'vfio-type1': null }, 'Profile');

/** The capability profile an implementation declares (see {@link Capabilities}). */
export const CapabilitiesCodec = t.intersection(
  [
    t.type({ name: t.string, profile: ProfileCodec, features: t.array(t.string), platform: Platform }),
    t.partial({ description: t.string }),
  ],
  'Capabilities',
);

export const HelloRequest = t.type({ type: t.literal('hello'), protocol: t.number }, 'HelloRequest');
export const RunRequest = t.type({ type: t.literal('run'), id: t.number, steps: t.array(Command) }, 'RunRequest');
export const ByeRequest = t.type({ type: t.literal('bye') }, 'ByeRequest');
/** A message from the runner to an implementation. */
export const Request = t.union([HelloRequest, RunRequest, ByeRequest], 'Request');
export type Request = t.TypeOf<typeof Request>;

export const StepReplyCodec = t.type({ outcome: Outcome }, 'StepReply');
export const CapabilitiesMessage = t.type(
  { type: t.literal('capabilities'), protocol: t.number, capabilities: CapabilitiesCodec },
  'CapabilitiesMessage',
);
export const StepMessage = t.type(
  { type: t.literal('step'), id: t.number, index: t.number, outcome: Outcome },
  'StepMessage',
);
export const ResultMessage = t.type(
  { type: t.literal('result'), id: t.number, replies: t.array(StepReplyCodec) },
  'ResultMessage',
);
export const ErrorMessage = t.intersection(
  [t.type({ type: t.literal('error'), message: t.string }), t.partial({ id: t.number })],
  'ErrorMessage',
);
/** A message from an implementation to the runner. */
export const Response = t.union([CapabilitiesMessage, StepMessage, ResultMessage, ErrorMessage], 'Response');
export type Response = t.TypeOf<typeof Response>;

/** JSON.stringify with every bigint written as a `"0x…"` string: the wire form of commands, outcomes, platforms. */
export function toWireJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? hex(v) : v));
}

const HEX = /^0x[0-9a-f]{1,16}$/;

/** An output value as it came over the wire, with `"0x…"` strings turned back into bigints. */
export function outValueFromWire(v: OutValue): OutValue {
  if (typeof v === 'string') return HEX.test(v) ? BigInt(v) : v;
  if (Array.isArray(v)) return v.map(outValueFromWire);
  if (typeof v === 'object' && v !== null && typeof v !== 'bigint') {
    const o: { [k: string]: OutValue } = {};
    for (const [k, x] of Object.entries(v)) o[k] = outValueFromWire(x);
    return o;
  }
  return v;
}

/** An outcome as it came over the wire (already shape-checked), with u64 outputs as bigints. */
export function outcomeFromWire(o: OutcomeT): OutcomeT {
  if (o.out === undefined) return o;
  return { ...o, out: outValueFromWire(o.out) as { [k: string]: OutValue } };
}

/** Describes the first few io-ts errors as `path: expected X, got Y` (deduplicated). */
export function describeErrors(errors: t.Errors, max = 3): string {
  const lines = errors.map((e) => {
    const last = e.context[e.context.length - 1];
    return `${contextPath(e.context) || '(root)'}: ${e.message ?? `expected ${last?.type.name ?? '?'}, got ${JSON.stringify(e.value)?.slice(0, 80)}`}`;
  });
  return [...new Set(lines)].slice(0, max).join('; ');
}

/** Parses one line from an implementation. Never throws: garbage gives `{ ok: false }` with a short reason. */
export function parseResponse(line: string): { ok: true; msg: Response } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(line.slice(0, 120))}` };
  }
  const r = Response.decode(json);
  if (isLeft(r)) {
    const type = typeof json === 'object' && json !== null ? (json as { type?: unknown }).type : undefined;
    const known = ['capabilities', 'step', 'result', 'error'];
    if (typeof type !== 'string' || !known.includes(type))
      return {
        ok: false,
        reason: `unknown message type ${JSON.stringify(type)} (expected one of ${known.join(', ')})`,
      };
    const codec = { capabilities: CapabilitiesMessage, step: StepMessage, result: ResultMessage, error: ErrorMessage }[
      type as 'step'
    ];
    const rr = codec.decode(json);
    return { ok: false, reason: `malformed "${type}" message: ${isLeft(rr) ? describeErrors(rr.left) : 'invalid'}` };
  }
  return { ok: true, msg: r.right };
}

/** Parses one line from the runner (the implementation side; used by `reference-stdio.ts`). */
export function parseRequest(
  line: string,
  profile?: Profile,
): { ok: true; msg: Request } | { ok: false; reason: string; id?: number } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(line.slice(0, 120))}` };
  }
  const r = Request.decode(json);
  const id =
    typeof json === 'object' && json !== null && typeof (json as { id?: unknown }).id === 'number'
      ? (json as { id: number }).id
      : undefined;
  if (isLeft(r))
    return { ok: false, reason: `malformed request: ${describeErrors(r.left)}`, ...(id === undefined ? {} : { id }) };
  if (r.right.type === 'run' && profile !== undefined) {
    const codec = PROFILE_STEP_CODECS[profile];
    for (let i = 0; i < r.right.steps.length; i++) {
      if (!codec.is(r.right.steps[i]))
        return {
          ok: false,
          reason: `steps[${i}] is not a command of the ${profile} profile`,
          ...(id === undefined ? {} : { id }),
        };
    }
  }
  return { ok: true, msg: r.right };
}

const PROFILE_STEP_CODECS = Object.fromEntries(
  PROFILES.map((p) => [p, { is: (c: CommandT | undefined) => c !== undefined && commandProfiles(c.op).includes(p) }]),
) as Record<Profile, { is(c: CommandT | undefined): boolean }>;

/** The profiles a command belongs to (harness steps belong to every profile): the model's own table. */
export function commandProfiles(op: CommandT['op']): readonly Profile[] {
  return OP_PROFILES.get(op) ?? [];
}

/** Validates a decoded capabilities object: known profile, features from the closed list. Returns problems. */
export function checkCapabilities(c: Capabilities, knownFeatures: readonly string[]): string[] {
  const problems: string[] = [];
  if (!PROFILES.includes(c.profile)) problems.push(`unknown profile "${String(c.profile)}"`);
  for (const f of c.features)
    if (!knownFeatures.includes(f)) problems.push(`unknown feature "${f}" (spec/features.txt)`);
  return problems;
}

/**
 * Splits a byte stream into lines. Feed it chunks; it calls `onLine` for each complete line (without the `\n`,
 * a trailing `\r` removed, empty lines skipped) and `onOverflow` when a line grows past `maxBytes`.
 */
export class LineSplitter {
  private buf = '';

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void = () => undefined,
    private readonly maxBytes = MAX_LINE_BYTES,
  ) {}

  push(chunk: string): void {
    this.buf += chunk;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      let line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.trim() !== '') this.onLine(line);
    }
    if (this.buf.length > this.maxBytes) {
      this.buf = '';
      this.onOverflow();
    }
  }

  /** What is left without a newline (a partial line at end of stream). */
  rest(): string {
    return this.buf;
  }
}

/**
 * The hardware adapter protocol: how the hardware runner (`ioasid-conformance hw run`) talks to an out-of-process
 * IOMMU implementation — an emulator behind a harness — with hardware traces (`src/hw-reference/trace.ts`). It is
 * the uAPI protocol of `conformance/protocol.ts` with other payloads, over the same transport (JSON lines on
 * stdin/stdout, `"0x…"` u64s, the stdio adapter's framing, time limits and crash handling): only the `hello`
 * request, the declared capabilities and the `run` request differ. `conformance/INTERPRETING.md` §7 is the normative
 * description; the io-ts codecs here are its single source, and `conformance/schema/hw-protocol.schema.json` is
 * exported from them.
 *
 * Runner → implementation:
 * - `{"type":"hello","protocol":1,"traces":"hw"}` — first message; the implementation answers `capabilities`.
 * - `{"type":"run","id":N,"devices":[{sid,ats,pri},…],"steps":[…]}` — reset the IOMMU and memory, build the
 *   devices, run the steps; the answer is `result` with the same id.
 * - `{"type":"bye"}` — exit.
 *
 * Implementation → runner: as in the uAPI protocol (`step`, `result`, `error`), with
 * `{"type":"capabilities","protocol":1,"capabilities":{"name":…,"arch":"vt-d","description"?:…}}`.
 *
 * Not for: uAPI traces (`conformance/protocol.ts`).
 *
 * @module
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import { HwStep } from '../src/hw-reference/trace.ts';
import type { StdioDialect } from './adapters/stdio.ts';
import {
  ByeRequest,
  ErrorMessage,
  HelloRequest,
  PROTOCOL_VERSION,
  ResultMessage,
  StepMessage,
  describeErrors,
} from './protocol.ts';

/** The hardware protocol's version: the transport's, so one program can speak both (told apart by `hello.traces`). */
export const HW_PROTOCOL_VERSION = PROTOCOL_VERSION;

/** What a hardware implementation declares: its name, the architecture it models, free text. */
export const HwCapabilitiesCodec = t.intersection(
  [t.type({ name: t.string, arch: t.literal('vt-d') }), t.partial({ description: t.string })],
  'HwCapabilities',
);
/** The capabilities of a hardware implementation (see {@link HwCapabilitiesCodec}). */
export type HwCapabilities = t.TypeOf<typeof HwCapabilitiesCodec>;

/** A device behind the IOMMU in a `run` request: its requester ID and whether it has ATS and PRI. */
export const HwDeviceCodec = t.type({ sid: t.number, ats: t.boolean, pri: t.boolean }, 'HwDevice');

/** `hello` of the hardware protocol: the uAPI hello with `traces: "hw"`. */
export const HwHelloRequest = t.intersection([HelloRequest, t.type({ traces: t.literal('hw') })], 'HwHelloRequest');
/** `run` of the hardware protocol: one hardware trace, its devices and steps. */
export const HwRunRequest = t.type(
  { type: t.literal('run'), id: t.number, devices: t.array(HwDeviceCodec), steps: t.array(HwStep) },
  'HwRunRequest',
);
/** A message from the hardware runner to an implementation. */
export const HwRequest = t.union([HwHelloRequest, HwRunRequest, ByeRequest], 'HwRequest');
/** A decoded message from the hardware runner. */
export type HwRequest = t.TypeOf<typeof HwRequest>;

/** `capabilities` of the hardware protocol. */
export const HwCapabilitiesMessage = t.type(
  { type: t.literal('capabilities'), protocol: t.number, capabilities: HwCapabilitiesCodec },
  'HwCapabilitiesMessage',
);
/** A message from a hardware implementation to the runner (`step`, `result` and `error` are the uAPI ones). */
export const HwResponse = t.union([HwCapabilitiesMessage, StepMessage, ResultMessage, ErrorMessage], 'HwResponse');
/** A decoded message from a hardware implementation. */
export type HwResponse = t.TypeOf<typeof HwResponse>;

const RESPONSE_CODECS = {
  capabilities: HwCapabilitiesMessage,
  step: StepMessage,
  result: ResultMessage,
  error: ErrorMessage,
} as const;

/** Parses one line from a hardware implementation. Never throws: garbage gives `{ ok: false }` with a short reason. */
export function parseHwResponse(line: string): { ok: true; msg: HwResponse } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(line.slice(0, 120))}` };
  }
  const r = HwResponse.decode(json);
  if (!isLeft(r)) return { ok: true, msg: r.right };
  const type = typeof json === 'object' && json !== null ? (json as { type?: unknown }).type : undefined;
  const known = Object.keys(RESPONSE_CODECS);
  if (typeof type !== 'string' || !known.includes(type))
    return { ok: false, reason: `unknown message type ${JSON.stringify(type)} (expected one of ${known.join(', ')})` };
  const rr = RESPONSE_CODECS[type as keyof typeof RESPONSE_CODECS].decode(json);
  return { ok: false, reason: `malformed "${type}" message: ${isLeft(rr) ? describeErrors(rr.left) : 'invalid'}` };
}

/** Parses one line from the hardware runner (the implementation side; used by `hw-reference-stdio.ts`). */
export function parseHwRequest(
  line: string,
): { ok: true; msg: HwRequest } | { ok: false; reason: string; id?: number } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(line.slice(0, 120))}` };
  }
  const id =
    typeof json === 'object' && json !== null && typeof (json as { id?: unknown }).id === 'number'
      ? (json as { id: number }).id
      : undefined;
  const r = HwRequest.decode(json);
  if (isLeft(r))
    return {
      ok: false,
      reason: `malformed hardware request: ${describeErrors(r.left)}`,
      ...(id === undefined ? {} : { id }),
    };
  return { ok: true, msg: r.right };
}

/** The hardware protocol as a dialect of the stdio adapter's transport (`conformance/adapters/stdio.ts`). */
export const HW_DIALECT: StdioDialect = {
  hello: { traces: 'hw' },
  parseResponse: parseHwResponse,
  capabilities: HwCapabilitiesCodec,
};

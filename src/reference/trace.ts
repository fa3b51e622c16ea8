/**
 * The trace format: a versioned JSON document holding a profile, the features and platform it assumes, and a list of
 * steps (commands). The io-ts codec here is the source of the format; `conformance/schema/trace.schema.json` is
 * exported from it for implementers in other languages.
 *
 * @module
 */
import * as t from 'io-ts';
import { isLeft } from 'fp-ts/lib/Either.js';
import { Command, type Command as CommandT, PROFILE_COMMANDS, type Profile } from './commands.ts';
import { Platform } from './platform.ts';

/** The `format` tag of a trace file. */
export const TRACE_FORMAT = 'ioasid-conformance-trace';
/** The current trace format version. A reader refuses other versions. */
export const TRACE_VERSION = 1;

/** A trace document. */
export const Trace = t.intersection(
  [
    t.type({
      format: t.literal(TRACE_FORMAT),
      version: t.literal(TRACE_VERSION),
      profile: t.keyof({ rfc: null, iommufd: null, 'vfio-type1': null }),
      features: t.array(t.string),
      platform: Platform,
      steps: t.array(Command),
    }),
    t.partial({
      /** The seed and path that generated the trace, for the record. */
      seed: t.string,
      /** Free text: where the trace came from (a run, a shrink, a hand-written regression). */
      origin: t.string,
      /** Clause IDs the trace is known to exercise or to have failed on. */
      clauses: t.array(t.string),
    }),
  ],
  'Trace',
);
export type Trace = {
  format: typeof TRACE_FORMAT;
  version: typeof TRACE_VERSION;
  profile: Profile;
  features: string[];
  platform: Platform;
  steps: CommandT[];
  seed?: string;
  origin?: string;
  clauses?: string[];
};

/** A problem decoding a trace: the JSON path and, for a step, its index. */
export interface TraceError {
  /** `steps[3].iova` style path into the document. */
  readonly path: string;
  /** Index of the step, when the problem is inside one. */
  readonly step: number | undefined;
  readonly message: string;
}

/** The `a.b[2].c` path of an io-ts error context (union and intersection members add nothing). */
export function contextPath(context: t.Context): string {
  let path = '';
  for (let i = 1; i < context.length; i++) {
    const parent = context[i - 1]!.type;
    const key = context[i]!.key;
    if (parent instanceof t.ArrayType) path += `[${key}]`;
    else if (parent instanceof t.InterfaceType || parent instanceof t.PartialType || parent instanceof t.DictionaryType)
      path += path === '' ? key : `.${key}`;
  }
  return path;
}

/**
 * Decodes a parsed JSON value as a trace. On failure returns the first few errors with their paths; a step that
 * matches no command of the trace's profile is reported once, with its `op`.
 */
export function decodeTrace(json: unknown): { ok: true; trace: Trace } | { ok: false; errors: TraceError[] } {
  if (typeof json !== 'object' || json === null)
    return { ok: false, errors: [{ path: '', step: undefined, message: 'a trace is a JSON object' }] };
  const doc = json as Record<string, unknown>;
  if (doc.format !== TRACE_FORMAT)
    return {
      ok: false,
      errors: [
        { path: 'format', step: undefined, message: `expected "${TRACE_FORMAT}", got ${JSON.stringify(doc.format)}` },
      ],
    };
  if (doc.version !== TRACE_VERSION)
    return {
      ok: false,
      errors: [
        {
          path: 'version',
          step: undefined,
          message: `unsupported trace version ${JSON.stringify(doc.version)} (this tool reads version ${TRACE_VERSION})`,
        },
      ],
    };
  const errors: TraceError[] = [];
  // Decode the steps one by one against the profile's commands, so the message names the step and its op.
  const profile = doc.profile as Profile;
  const codec = PROFILE_COMMANDS[profile];
  if (codec !== undefined && Array.isArray(doc.steps)) {
    doc.steps.forEach((s, i) => {
      if (errors.length >= 5) return;
      const r = codec.decode(s);
      if (isLeft(r)) {
        const op = typeof s === 'object' && s !== null ? (s as { op?: unknown }).op : undefined;
        const known = typeof op === 'string' && r.left.some((e) => e.context.some((c) => c.type.name === op));
        const fieldErrs = known
          ? r.left
              .filter((e) => e.context.some((c) => c.type.name === op))
              .map(
                (e) =>
                  `${contextPath(e.context) || '(step)'}: ${e.message ?? `expected ${e.context[e.context.length - 1]?.type.name ?? '?'}, got ${JSON.stringify(e.value)}`}`,
              )
          : [`"${String(op)}" is not a command of the ${profile} profile`];
        errors.push({ path: `steps[${i}]`, step: i, message: [...new Set(fieldErrs)].slice(0, 3).join('; ') });
      }
    });
  }
  if (errors.length > 0) return { ok: false, errors };
  const r = Trace.decode(json);
  if (isLeft(r))
    return {
      ok: false,
      errors: r.left.slice(0, 5).map((e) => ({
        path: contextPath(e.context),
        step: undefined,
        message:
          e.message ?? `expected ${e.context[e.context.length - 1]?.type.name ?? '?'}, got ${JSON.stringify(e.value)}`,
      })),
    };
  return { ok: true, trace: r.right };
}

/** Encodes a trace to its JSON form (u64s as hex strings), pretty-printed with one step per line. */
export function encodeTrace(trace: Trace): string {
  const enc = Trace.encode(trace) as unknown as Record<string, unknown>;
  const { steps, ...head } = enc as { steps: unknown[] } & Record<string, unknown>;
  const headJson = JSON.stringify(head, null, 2);
  const stepsJson = steps.map((s) => `    ${JSON.stringify(s)}`).join(',\n');
  return `${headJson.slice(0, -2)},\n  "steps": [\n${stepsJson}\n  ]\n}\n`;
}

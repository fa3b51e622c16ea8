/**
 * Exports the JSON Schemas of the trace format, the adapter protocol and the results file from their io-ts codecs
 * (the single source), for implementers in other languages:
 *
 * - `conformance/schema/trace.schema.json` — a trace file (`src/reference/trace.ts`);
 * - `conformance/schema/protocol.schema.json` — one protocol message, either direction (`conformance/protocol.ts`);
 * - `conformance/schema/results.schema.json` — a `results.json` written by `run` (`conformance/runner.ts`);
 * - `conformance/schema/hw-trace.schema.json` — a hardware trace file (`src/hw-reference/trace.ts`);
 * - `conformance/schema/hw-protocol.schema.json` — one hardware protocol message (`conformance/hw-protocol.ts`).
 *
 * `npx tsx conformance/schema/export.ts` rewrites them; `--check` exits 1 when a committed file is stale (a test
 * runs the same check). Draft-07, because it is the draft every validator supports.
 *
 * @module
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as t from 'io-ts';
import * as prettier from 'prettier';
import { Trace, TRACE_FORMAT, TRACE_VERSION } from '../../src/reference/trace.ts';
import { PROTOCOL_VERSION, Request, Response } from '../protocol.ts';
import { Results, RESULTS_FORMAT, RESULTS_VERSION } from '../runner.ts';
import { HwTrace, HW_TRACE_FORMAT } from '../../src/hw-reference/trace.ts';
import { HW_PROTOCOL_VERSION, HwRequest, HwResponse } from '../hw-protocol.ts';

/** A JSON Schema (draft-07) node. */
export type Schema = { [k: string]: unknown };

/** The directory the schemas are written to. */
export const SCHEMA_DIR = fileURLToPath(new URL('.', import.meta.url));

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Custom codecs (not built from io-ts combinators) by name. */
const CUSTOM: Record<string, Schema> = {
  U64: {
    description:
      'An unsigned 64-bit integer: a "0x…" hex string (the canonical form), a decimal string, or a safe non-negative integer.',
    anyOf: [
      { type: 'string', pattern: '^(0x[0-9a-fA-F]{1,16}|[0-9]{1,20})$' },
      { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    ],
  },
};

/** Converts io-ts codecs to one JSON Schema, with named codecs as `definitions`. */
class Converter {
  readonly definitions: Record<string, Schema> = {};
  private readonly inProgress = new Set<string>();

  convert(codec: t.Mixed): Schema {
    const name = codec.name;
    if (CUSTOM[name] !== undefined) return this.named(name, () => CUSTOM[name]!);
    if (IDENT.test(name) && !isPrimitive(codec)) return this.named(name, () => this.structure(codec));
    return this.structure(codec);
  }

  private named(name: string, build: () => Schema): Schema {
    const ref = { $ref: `#/definitions/${name}` };
    if (this.definitions[name] !== undefined || this.inProgress.has(name)) return ref;
    this.inProgress.add(name);
    const s = build();
    this.inProgress.delete(name);
    this.definitions[name] = s;
    return ref;
  }

  private structure(codec: t.Mixed): Schema {
    if (codec instanceof t.StringType) return { type: 'string' };
    if (codec instanceof t.NumberType) return { type: 'number' };
    if (codec instanceof t.BooleanType) return { type: 'boolean' };
    if (codec instanceof t.NullType) return { type: 'null' };
    if (codec instanceof t.UnknownType) return {};
    if (codec instanceof t.LiteralType) return { const: (codec as t.LiteralType<string | number | boolean>).value };
    if (codec instanceof t.KeyofType)
      return { type: 'string', enum: Object.keys((codec as t.KeyofType<Record<string, unknown>>).keys) };
    if (codec instanceof t.RefinementType) return this.convert((codec as t.RefinementType<t.Mixed>).type);
    if (codec instanceof t.ReadonlyType || codec instanceof t.ExactType)
      return this.convert((codec as t.ExactType<t.Mixed>).type);
    if (codec instanceof t.ArrayType || codec instanceof t.ReadonlyArrayType)
      return { type: 'array', items: this.convert((codec as t.ArrayType<t.Mixed>).type) };
    if (codec instanceof t.DictionaryType)
      return {
        type: 'object',
        additionalProperties: this.convert((codec as t.DictionaryType<t.Mixed, t.Mixed>).codomain),
      };
    if (codec instanceof t.InterfaceType || codec instanceof t.PartialType) {
      const props = (codec as t.InterfaceType<t.Props>).props;
      const properties: Record<string, Schema> = {};
      for (const [k, v] of Object.entries(props)) properties[k] = this.convert(v);
      const required = codec instanceof t.InterfaceType ? Object.keys(props) : [];
      return { type: 'object', properties, ...(required.length > 0 ? { required } : {}) };
    }
    if (codec instanceof t.IntersectionType) {
      // Merge the object members into one object schema when possible (readable, and equivalent).
      const parts = (codec as t.IntersectionType<t.Mixed[]>).types.map((c) => this.convert(c));
      return mergeObjects(parts) ?? { allOf: parts };
    }
    if (codec instanceof t.UnionType) {
      const members: Schema[] = [];
      for (const c of (codec as t.UnionType<t.Mixed[]>).types) {
        const s = this.convert(c);
        // Flatten unnamed nested unions.
        if (Array.isArray(s.anyOf) && Object.keys(s).length === 1) members.push(...(s.anyOf as Schema[]));
        else members.push(s);
      }
      return { anyOf: members };
    }
    // io-ts gives the body of a recursive codec the codec's own name: convert its structure, not a reference.
    if (codec instanceof t.RecursiveType) return this.structure((codec as t.RecursiveType<t.Mixed>).type);
    throw new Error(`schema export: no JSON Schema for codec "${codec.name}"`);
  }
}

function isPrimitive(c: t.Mixed): boolean {
  return (
    c instanceof t.StringType ||
    c instanceof t.NumberType ||
    c instanceof t.BooleanType ||
    c instanceof t.NullType ||
    c instanceof t.LiteralType
  );
}

function mergeObjects(parts: Schema[]): Schema | undefined {
  if (!parts.every((p) => p.type === 'object' && p.properties !== undefined && p.additionalProperties === undefined))
    return undefined;
  const properties: Record<string, Schema> = {};
  const required: string[] = [];
  for (const p of parts) {
    for (const [k, v] of Object.entries(p.properties as Record<string, Schema>)) {
      if (properties[k] !== undefined) return undefined;
      properties[k] = v;
    }
    required.push(...((p.required as string[] | undefined) ?? []));
  }
  return { type: 'object', properties, ...(required.length > 0 ? { required } : {}) };
}

function sortKeys(o: Record<string, Schema>): Record<string, Schema> {
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, o[k]!]),
  );
}

/** Builds one schema document whose root is `root` (or `anyOf` the roots). */
export function schemaOf(roots: readonly t.Mixed[], meta: { id: string; title: string; description: string }): Schema {
  const conv = new Converter();
  const rootSchemas = roots.map((r) => conv.convert(r));
  // draft-07 ignores the siblings of a `$ref`, so a root reference is wrapped.
  const root =
    rootSchemas.length === 1
      ? rootSchemas[0]!.$ref !== undefined
        ? { allOf: rootSchemas }
        : rootSchemas[0]!
      : { anyOf: rootSchemas };
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: meta.id,
    title: meta.title,
    description: meta.description,
    ...root,
    definitions: sortKeys(conv.definitions),
  };
}

/** Formats JSON text the way the repository's prettier configuration does (so `npm run lint` accepts it). */
export async function formatJson(text: string, path: string): Promise<string> {
  const config = (await prettier.resolveConfig(path)) ?? {};
  return prettier.format(text, { ...config, parser: 'json', filepath: path });
}

/** The schema files: file name → content (stable, formatted, ends with a newline). */
export async function exportSchemas(): Promise<Record<string, string>> {
  const note = 'Generated by conformance/schema/export.ts from the io-ts codecs; do not edit.';
  const docs: Record<string, Schema> = {
    'trace.schema.json': schemaOf([Trace], {
      id: 'https://ioasid-conformance.invalid/schema/trace.schema.json',
      title: `${TRACE_FORMAT} version ${TRACE_VERSION}`,
      description: `A conformance trace: profile, features, platform and steps. u64 values are "0x…" strings. ${note}`,
    }),
    'protocol.schema.json': schemaOf([Request, Response], {
      id: 'https://ioasid-conformance.invalid/schema/protocol.schema.json',
      title: `ioasid-conformance adapter protocol version ${PROTOCOL_VERSION}`,
      description: `One JSON line of the adapter protocol, in either direction (see conformance/INTERPRETING.md). ${note}`,
    }),
    'results.schema.json': schemaOf([Results], {
      id: 'https://ioasid-conformance.invalid/schema/results.schema.json',
      title: `${RESULTS_FORMAT} version ${RESULTS_VERSION}`,
      description: `The results.json of a conformance run: per adapter, its capabilities, traces and per-clause counts. ${note}`,
    }),
    'hw-trace.schema.json': schemaOf([HwTrace], {
      id: 'https://ioasid-conformance.invalid/schema/hw-trace.schema.json',
      title: `${HW_TRACE_FORMAT} version 1`,
      description: `A hardware trace: the devices behind the IOMMU and the steps (conformance/INTERPRETING.md §7). u64 values are "0x…" strings. ${note}`,
    }),
    'hw-protocol.schema.json': schemaOf([HwRequest, HwResponse], {
      id: 'https://ioasid-conformance.invalid/schema/hw-protocol.schema.json',
      title: `ioasid-conformance hardware adapter protocol version ${HW_PROTOCOL_VERSION}`,
      description: `One JSON line of the hardware adapter protocol, in either direction (conformance/INTERPRETING.md §7). ${note}`,
    }),
  };
  const out: Record<string, string> = {};
  for (const [f, s] of Object.entries(docs)) out[f] = await formatJson(JSON.stringify(s, null, 2), join(SCHEMA_DIR, f));
  return out;
}

/** The names of committed schema files that differ from what the codecs export now. */
export async function staleSchemas(dir = SCHEMA_DIR): Promise<string[]> {
  const stale: string[] = [];
  for (const [file, text] of Object.entries(await exportSchemas())) {
    let current = '';
    try {
      current = readFileSync(join(dir, file), 'utf8');
    } catch {
      /* missing: stale */
    }
    if (current !== text) stale.push(file);
  }
  return stale;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--check')) {
    const stale = await staleSchemas();
    for (const f of stale) console.error(`stale: conformance/schema/${f} (run: npx tsx conformance/schema/export.ts)`);
    process.exitCode = stale.length > 0 ? 1 : 0;
  } else {
    for (const [file, text] of Object.entries(await exportSchemas())) {
      const path = join(SCHEMA_DIR, file);
      writeFileSync(`${path}.tmp`, text);
      renameSync(`${path}.tmp`, path);
      console.log(`wrote conformance/schema/${file}`);
    }
  }
}

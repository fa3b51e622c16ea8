/**
 * A JSON Schema validator for the draft-07 subset conformance/schema/export.ts emits ($ref to definitions, allOf,
 * anyOf, const, enum, type with integer, pattern, minimum, maximum, items, required, properties,
 * additionalProperties), shared by the tests of the exported schemas and of the report schema, so they need no
 * JSON Schema library. test/conformance/schema.test.ts checks the schemas use no other keyword.
 *
 * Not for: schemas from elsewhere (unknown keywords are ignored, not refused).
 */
import type { Schema } from '../conformance/schema/export.ts';

export type { Schema };

/**
 * A validator for the draft-07 subset the exporter emits (the test checks the schemas use nothing else), so the
 * test needs no JSON Schema library. Returns the first error as `path: message`, or undefined.
 */
export function validate(root: Schema, schema: Schema, v: unknown, path = '$'): string | undefined {
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.replace('#/definitions/', '');
    const def = (root.definitions as Record<string, Schema>)[name];
    if (def === undefined) return `${path}: dangling $ref ${schema.$ref}`;
    return validate(root, def, v, path);
  }
  for (const s of (schema.allOf as Schema[] | undefined) ?? []) {
    const e = validate(root, s, v, path);
    if (e) return e;
  }
  if (Array.isArray(schema.anyOf)) {
    const errs = (schema.anyOf as Schema[]).map((s) => validate(root, s, v, path));
    if (errs.every((e) => e !== undefined)) return `${path}: matches no alternative (${errs[0]})`;
  }
  if ('const' in schema && v !== schema.const) return `${path}: expected ${JSON.stringify(schema.const)}`;
  if (Array.isArray(schema.enum) && !schema.enum.includes(v)) return `${path}: not one of ${schema.enum.join(', ')}`;
  const type = schema.type as string | undefined;
  const actual = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  if (
    type === 'integer' ? !Number.isInteger(v) : type !== undefined && type !== (actual === 'number' ? 'number' : actual)
  )
    return `${path}: expected ${type}, got ${actual}`;
  if (typeof v === 'string' && typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(v))
    return `${path}: does not match ${schema.pattern}`;
  if (typeof v === 'number' && typeof schema.minimum === 'number' && v < schema.minimum)
    return `${path}: below minimum`;
  if (typeof v === 'number' && typeof schema.maximum === 'number' && v > schema.maximum)
    return `${path}: above maximum`;
  if (actual === 'array' && schema.items !== undefined)
    for (const [i, x] of (v as unknown[]).entries()) {
      const e = validate(root, schema.items as Schema, x, `${path}[${i}]`);
      if (e) return e;
    }
  if (actual === 'object') {
    const o = v as Record<string, unknown>;
    for (const k of (schema.required as string[] | undefined) ?? []) if (!(k in o)) return `${path}: missing ${k}`;
    const props = (schema.properties as Record<string, Schema> | undefined) ?? {};
    for (const [k, x] of Object.entries(o)) {
      const s = props[k] ?? (schema.additionalProperties as Schema | undefined);
      if (s === undefined) continue;
      const e = validate(root, s, x, `${path}.${k}`);
      if (e) return e;
    }
  }
  return undefined;
}

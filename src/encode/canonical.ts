/**
 * Canonical JSON, the one byte form of every record and signed payload rtev writes.
 *
 * The form is RFC 8785 (JCS) restricted to what evidence needs: object keys sorted by
 * UTF-16 code units, no insignificant whitespace, strings escaped exactly as ECMAScript
 * JSON.stringify escapes them (which JCS adopts), and numbers limited to integers.
 * Integers may be bigint and are written as exact decimal literals, so u64 kernel values
 * (ts_ns, cgroup_id) are never rounded. Non-integer numbers are rejected: nothing in the
 * evidence format needs them and their canonical form is a source of disagreement.
 */

export type CanonicalValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly CanonicalValue[]
  | { readonly [key: string]: CanonicalValue | undefined };

/** canonicalize is the reference serializer; encodeRecord must agree with it byte for byte. */
export function canonicalize(value: CanonicalValue): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString(10);
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw new TypeError(`canonical JSON allows only safe integers, got ${value}`);
      }
      return Object.is(value, -0) ? '0' : String(value);
    case 'string':
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new TypeError(`cannot canonicalize a ${typeof value}`);
  }
  if (Array.isArray(value)) {
    return '[' + value.map((item: CanonicalValue) => canonicalize(item)).join(',') + ']';
  }
  const object = value as { readonly [key: string]: CanonicalValue | undefined };
  const keys = Object.keys(object).filter((k) => object[k] !== undefined).sort(compareUtf16);
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + canonicalize(object[k] as CanonicalValue)).join(',') + '}';
}

/** compareUtf16 orders strings by UTF-16 code units, as RFC 8785 section 3.2.3 requires. */
export function compareUtf16(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

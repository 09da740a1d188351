import * as fs from 'node:fs';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { ValidateFunction } from 'ajv';
import { canonicalize, type CanonicalValue } from '../encode/canonical';
import { isObj, parseStrict, type StrictObject } from '../encode/strict-json';
import { schemaPath } from '../platform/paths';
import { errorMessage } from '../errors';

/**
 * Checks of one evidence line: strict JSON, canonical bytes, and the record schema
 * (schema/runtime-evidence.v1.json). ts_ns is taken from the bigint-exact parse, never
 * from a JS number.
 */

let validator: ValidateFunction | undefined;

function schemaValidator(): ValidateFunction {
  if (validator === undefined) {
    const file = schemaPath();
    const ajv = new Ajv2020({ allErrors: false, strict: false });
    addFormats(ajv);
    validator = ajv.compile(JSON.parse(fs.readFileSync(file, 'utf8')));
  }
  return validator;
}

export type LineCheck = { ok: true; type: string; tsNs: bigint; value: StrictObject } | { ok: false; reason: string };

/** checkLine validates one line (without its "\n"). */
export function checkLine(line: string): LineCheck {
  let value;
  try {
    value = parseStrict(line);
  } catch (err) {
    return { ok: false, reason: `not valid JSON (${errorMessage(err)})` };
  }
  if (!isObj(value)) return { ok: false, reason: 'not a JSON object' };
  if (canonicalize(value as CanonicalValue) !== line) return { ok: false, reason: 'not in canonical JSON form' };
  const validate = schemaValidator();
  if (!validate(JSON.parse(line))) {
    const e = validate.errors?.[0];
    return { ok: false, reason: `fails the record schema: ${e?.instancePath || '/'} ${e?.message ?? ''}`.trim() };
  }
  const ts = value['ts_ns'];
  const event = value['event'];
  if (typeof ts !== 'bigint' || !isObj(event) || typeof event['type'] !== 'string') return { ok: false, reason: 'lacks ts_ns or event.type' };
  return { ok: true, type: event['type'], tsNs: ts, value };
}

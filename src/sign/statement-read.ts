import * as crypto from 'node:crypto';
import { canonicalize, type CanonicalValue } from '../encode/canonical';
import { isObj, parseStrict, type StrictObject, type StrictValue } from '../encode/strict-json';
import { parseEnvelope, type Envelope } from './envelope';
import { IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE } from './statement';
import { errorMessage } from '../errors';

/**
 * Reading a signed statement back: the inverse of statement.ts and signEnvelope, pure (bytes
 * in, values out). Shared by the writer's start-up recovery (store/) and the verifier (verify/).
 */

/** Envelopes are small (a few KiB); anything beyond this is refused as hostile. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

/** OpenedStatement is an envelope whose payload is a well-formed in-toto Statement. */
export interface OpenedStatement {
  envelope: Envelope;
  payload: Buffer;
  subjectName: string;
  subjectSha256: string;
  predicateType: string;
  predicate: StrictObject;
}

/**
 * openStatement checks the shape of an envelope and its statement (not the signature):
 * payloadType, canonical payload, one subject with a sha256 digest. Never throws.
 */
export function openStatement(bytes: Buffer): { ok: true; value: OpenedStatement } | { ok: false; reason: string } {
  const parsed = parseEnvelope(bytes);
  if (!parsed.ok) return parsed;
  if (parsed.envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    return { ok: false, reason: `payloadType is "${parsed.envelope.payloadType.slice(0, 80)}", expected ${IN_TOTO_PAYLOAD_TYPE}` };
  }
  const text = parsed.payload.toString('utf8');
  let statement: StrictValue;
  try {
    statement = parseStrict(text);
  } catch (err) {
    return { ok: false, reason: `payload is not valid JSON: ${errorMessage(err)}` };
  }
  if (canonicalize(statement as CanonicalValue) !== text) return { ok: false, reason: 'payload is not canonical JSON' };
  if (!isObj(statement) || statement['_type'] !== STATEMENT_TYPE) return { ok: false, reason: `payload is not an in-toto Statement v1` };
  const subject = statement['subject'];
  if (!Array.isArray(subject) || subject.length !== 1 || !isObj(subject[0])) return { ok: false, reason: 'statement must have exactly one subject' };
  const name = subject[0]['name'];
  const digest = subject[0]['digest'];
  if (typeof name !== 'string' || !isObj(digest) || typeof digest['sha256'] !== 'string' || !/^[0-9a-f]{64}$/.test(digest['sha256'])) {
    return { ok: false, reason: 'statement subject lacks a name or sha256 digest' };
  }
  const predicateType = statement['predicateType'];
  const predicate = statement['predicate'];
  if (typeof predicateType !== 'string' || !isObj(predicate)) return { ok: false, reason: 'statement lacks predicateType or predicate' };
  return { ok: true, value: { envelope: parsed.envelope, payload: parsed.payload, subjectName: name, subjectSha256: digest['sha256'], predicateType, predicate } };
}

/** sha256Hex hashes bytes. */
export function sha256Hex(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

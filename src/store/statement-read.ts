import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { canonicalize, type CanonicalValue } from '../encode/canonical';
import { parseEnvelope, type Envelope } from '../sign/envelope';
import { IN_TOTO_PAYLOAD_TYPE, STATEMENT_TYPE } from '../sign/statement';
import { openNoFollow } from './fsio';
import { parseStrict, type StrictValue } from './strict-json';

/** Envelopes are small (a few KiB); anything beyond this is refused as hostile. */
export const MAX_ENVELOPE_BYTES = 4 * 1024 * 1024;

export type StrictObject = { [key: string]: StrictValue };

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
    return { ok: false, reason: `payload is not valid JSON: ${(err as Error).message}` };
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

/** isObj tells a JSON object from arrays and scalars. */
export function isObj(v: StrictValue | undefined): v is StrictObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface FileDigest {
  sha256: string;
  bytes: number;
  /** complete ("\n"-terminated) lines */
  lines: number;
}

/** digestFile streams a regular file (no symlinks) through sha256 and counts its lines. */
export function digestFile(file: string): FileDigest {
  const fd = openNoFollow(file);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file`);
    const hash = crypto.createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let bytes = 0;
    let lines = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, bytes);
      if (n === 0) break;
      const part = buf.subarray(0, n);
      hash.update(part);
      for (let i = part.indexOf(10); i >= 0; i = part.indexOf(10, i + 1)) lines++;
      bytes += n;
    }
    return { sha256: hash.digest('hex'), bytes, lines };
  } finally {
    fs.closeSync(fd);
  }
}

/** sha256Hex hashes bytes. */
export function sha256Hex(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

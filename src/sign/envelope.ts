import { canonicalize } from '../encode/canonical';
import { preAuthEncoding } from './pae';
import { signEd25519, verifyEd25519, type SigningKey, type VerifyKey } from './keys';

/**
 * DSSE envelopes (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md).
 * rtev writes them as canonical JSON plus "\n"; payload and sig are standard base64.
 */

export interface Signature {
  keyid: string;
  sig: string;
}

export interface Envelope {
  payload: string;
  payloadType: string;
  signatures: Signature[];
}

/** signEnvelope signs PAE(payloadType, payload) with one key. */
export function signEnvelope(payloadType: string, payload: Buffer, key: SigningKey): Envelope {
  const sig = signEd25519(key, preAuthEncoding(payloadType, payload));
  return { payload: payload.toString('base64'), payloadType, signatures: [{ keyid: key.keyid, sig: sig.toString('base64') }] };
}

/** serializeEnvelope gives the file bytes of an envelope. */
export function serializeEnvelope(envelope: Envelope): Buffer {
  return Buffer.from(canonicalize({ payload: envelope.payload, payloadType: envelope.payloadType, signatures: envelope.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })) }) + '\n');
}

/** ParsedEnvelope is an envelope whose fields have the right shapes, with its payload decoded. */
export type ParseResult = { ok: true; envelope: Envelope; payload: Buffer } | { ok: false; reason: string };

/** parseEnvelope checks the shape of untrusted envelope bytes; it never throws. */
export function parseEnvelope(bytes: Buffer): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { ok: false, reason: 'envelope is not JSON' };
  }
  if (!isObject(value)) return { ok: false, reason: 'envelope is not a JSON object' };
  const { payload, payloadType, signatures } = value;
  if (typeof payload !== 'string' || typeof payloadType !== 'string' || !Array.isArray(signatures)) {
    return { ok: false, reason: 'envelope lacks payload, payloadType or signatures' };
  }
  const decoded = decodeBase64(payload);
  if (decoded === undefined) return { ok: false, reason: 'envelope payload is not base64' };
  const sigs: Signature[] = [];
  for (const s of signatures) {
    if (!isObject(s) || typeof s['sig'] !== 'string') return { ok: false, reason: 'envelope signature entry is malformed' };
    sigs.push({ keyid: typeof s['keyid'] === 'string' ? s['keyid'] : '', sig: s['sig'] });
  }
  if (sigs.length === 0) return { ok: false, reason: 'envelope has no signatures' };
  return { ok: true, envelope: { payload, payloadType, signatures: sigs }, payload: decoded };
}

/**
 * verifyEnvelope returns the keyid of a trusted key with a valid signature, or undefined.
 * Each signature is tried against every key: keyid is only a hint (DSSE); the key it names is
 * tried first, so that a fleet's trust directory of many keys costs one verification per
 * chunk, not one per key.
 */
export function verifyEnvelope(envelope: Envelope, payload: Buffer, keys: readonly VerifyKey[]): string | undefined {
  const pae = preAuthEncoding(envelope.payloadType, payload);
  for (const s of envelope.signatures) {
    const sig = decodeBase64(s.sig);
    if (sig === undefined) continue;
    const hinted = s.keyid === '' ? undefined : keys.find((k) => k.keyid === s.keyid);
    if (hinted !== undefined && verifyEd25519(hinted, pae, sig)) return hinted.keyid;
    for (const key of keys) {
      if (key !== hinted && verifyEd25519(key, pae, sig)) return key.keyid;
    }
  }
  return undefined;
}

/** decodeBase64 accepts standard or URL-safe base64 and rejects anything else. */
export function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) return undefined;
  const std = text.replace(/-/g, '+').replace(/_/g, '/');
  const buf = Buffer.from(std, 'base64');
  if (buf.toString('base64').replace(/=+$/, '') !== std.replace(/=+$/, '')) return undefined;
  return buf;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

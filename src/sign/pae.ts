/**
 * DSSE pre-authentication encoding, the exact bytes a DSSE signature covers.
 *
 *   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
 *
 * LEN is the ASCII decimal *byte* length (UTF-8), not the string length.
 * Spec: https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
 */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  const head = Buffer.from(`DSSEv1 ${type.length} `, 'ascii');
  const mid = Buffer.from(` ${payload.length} `, 'ascii');
  return Buffer.concat([head, type, mid, payload]);
}

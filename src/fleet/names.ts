/**
 * Names shared by `rtev ship` and `rtev ingest` on the fleet transport (docs/fleet.md):
 * one JetStream stream of signed envelopes, one subject per host, one Object Store bucket
 * of chunk bodies.
 */

/** the stream of chunk envelopes; subject `rtev.env.<host id>` */
export const ENVELOPE_STREAM = 'RTEV_ENV';
export const ENVELOPE_SUBJECT_PREFIX = 'rtev.env.';
/** the Object Store bucket holding chunk bodies (the stream behind it is OBJ_rtev-chunks) */
export const CHUNK_BUCKET = 'rtev-chunks';
/** the durable consumer every ingest process shares */
export const INGEST_CONSUMER = 'rtev-ingest';
/** how long JetStream remembers a Nats-Msg-Id (a repeat inside it is a duplicate) */
export const DUPLICATE_WINDOW_NS = 24 * 3600 * 1e9;
/** how long envelopes stay in the stream (longer than the duplicate window) */
export const ENVELOPE_MAX_AGE_NS = 7 * 24 * 3600 * 1e9;

/** message headers set by ship */
export const HDR_OBJECT = 'Rtev-Object';
export const HDR_KIND = 'Rtev-Kind';
/**
 * the Object Store nuid of the chunk's body as ship stored it: ingest reads the body's parts
 * straight by it (no object info request); only a hint: a stale or wrong one falls back to the
 * object's info, and the body is checked against the signed digest whichever way it was read
 */
export const HDR_OBJECT_NUID = 'Rtev-Object-Nuid';

/** host ids are subject tokens: the machine id (32 hex) or a sanitized hostname */
const HOST_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function isHostId(text: string): boolean {
  return HOST_ID.test(text);
}

/** hostIdFor picks the subject token of a host from its signed host facts. */
export function hostIdFor(machineId: string, hostname: string): string | undefined {
  if (machineId !== '') return isHostId(machineId) ? machineId : undefined;
  const h = hostname.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return isHostId(h) ? h : undefined;
}

export function envelopeSubject(hostId: string): string {
  return ENVELOPE_SUBJECT_PREFIX + hostId;
}

/** hostOfSubject returns the host id of an envelope subject, undefined for anything else. */
export function hostOfSubject(subject: string): string | undefined {
  if (!subject.startsWith(ENVELOPE_SUBJECT_PREFIX)) return undefined;
  const id = subject.slice(ENVELOPE_SUBJECT_PREFIX.length);
  return isHostId(id) ? id : undefined;
}

/** objectName is deterministic per chunk, so a repeated upload replaces the same object. */
export function objectName(hostId: string, chainId: string, seq: number): string {
  return `${hostId}/${chainId}/${String(seq).padStart(12, '0')}.ndjson`;
}

/** the Object Store digest of bytes whose sha256 is `hex` ("SHA-256=" + base64url) */
export function objectDigest(sha256Hex: string): string {
  return 'SHA-256=' + Buffer.from(sha256Hex, 'hex').toString('base64url');
}

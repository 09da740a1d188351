import * as crypto from 'node:crypto';
import { canonicalize, type CanonicalValue } from '../encode/canonical';
import { isObj, type StrictObject } from '../encode/strict-json';
import { verifyEnvelope } from '../sign/envelope';
import type { VerifyKey } from '../sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, CHUNK_PREDICATE_TYPE } from '../sign/statement';
import { MAX_ENVELOPE_BYTES, openStatement } from '../sign/statement-read';
import { checkContentAgainstPredicate, checkFunctionCalls, checkLedgerIdentity, parsePredicate, probeField, PROBE_FIELDS, type ChunkContent, type SignedPredicate } from '../verify';
import { checkAttribution } from '../packages/evidence';
import { CHUNK_HARD_LIMIT_BYTES } from '../store/layout';
import { hostIdFor } from './names';

/**
 * What the central ingest checks of one shipped chunk before anything is indexed, as pure
 * functions over untrusted bytes: the envelope (shape, signature by a trusted key, the
 * chunk predicate, the ledger identity, the host it claims) and then the body (its sha256
 * is the signed digest, and its lines agree with the signed record summary). Chain
 * continuity against the head kept centrally is decided by the ingest transaction.
 */

export type RejectCode =
  | 'bad-envelope' | 'untrusted-key' | 'bad-predicate' | 'host-mismatch' | 'missing-body' | 'digest-mismatch'
  | 'content-mismatch' | 'too-large' | 'replay' | 'fork' | 'chain-replaced' | 'broken-link' | 'stale';

export const REJECT_HINTS: Record<RejectCode, string> = {
  'bad-envelope': 'the message is not a well-formed DSSE envelope of an in-toto statement',
  'untrusted-key': 'signed by a key that is not in the --trust directory',
  'bad-predicate': 'the signed predicate is not a valid rtev chunk predicate',
  'host-mismatch': 'the chunk names another host than the subject it was published on',
  'missing-body': 'the chunk body is not in the object store',
  'digest-mismatch': 'the body does not match the signed sha256 (modified in transit or on the host)',
  'content-mismatch': 'the body does not agree with the signed record summary',
  'too-large': 'the chunk exceeds the fleet size limit',
  replay: 'an already indexed chunk was published again',
  fork: 'a different chunk for a position of the chain that is already indexed (rewritten history)',
  'chain-replaced': 'the host started a new chain while its indexed chain continues (history deleted and rewritten)',
  'broken-link': 'prev_envelope_sha256 does not link the indexed head (chunks removed, reordered or rewritten)',
  stale: 'older than the indexed head of its chain',
};

export interface ProbeLedger {
  probe: string;
  values: Record<(typeof PROBE_FIELDS)[number], bigint>;
}

/** ChunkFacts is what a verified envelope says about its chunk. */
export interface ChunkFacts {
  hostId: string;
  envelopeSha256: string;
  chunkSha256: string;
  chunkName: string;
  keyid: string;
  chainId: string;
  seq: bigint;
  prevEnvelopeSha256: string | null;
  runId: string;
  runChunkIndex: bigint;
  final: boolean;
  hostname: string;
  machineId: string;
  bootId: string;
  count: bigint;
  bytes: bigint;
  lost: bigint;
  complete: boolean;
  minTs: bigint | null;
  maxTs: bigint | null;
  openedWallNs: bigint;
  openedMonoNs: bigint;
  sealedWallNs: bigint;
  sealedMonoNs: bigint;
  probes: ProbeLedger[];
  /** restart record, when the run restarted after finding a previous one */
  restart: StrictObject | null;
  ledgerJson: string;
  functionCallsJson: string | null;
  restartJson: string | null;
}

export type EnvelopeVerdict = { ok: true; facts: ChunkFacts; predicate: SignedPredicate } | { ok: false; code: RejectCode; reason: string; partial: Partial<ChunkFacts> };

function reject(code: RejectCode, reason: string, partial: Partial<ChunkFacts> = {}): EnvelopeVerdict {
  return { ok: false, code, reason, partial };
}

/** checkEnvelope verifies a shipped envelope against the trusted keys and the subject's host id. */
export function checkEnvelope(bytes: Uint8Array, subjectHost: string, keys: readonly VerifyKey[]): EnvelopeVerdict {
  if (bytes.length > MAX_ENVELOPE_BYTES) return reject('too-large', `envelope of ${bytes.length} bytes`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const envelopeSha256 = crypto.createHash('sha256').update(buf).digest('hex');
  const opened = openStatement(buf);
  if (!opened.ok) return reject('bad-envelope', opened.reason, { envelopeSha256 });
  const st = opened.value;
  const keyid = verifyEnvelope(st.envelope, st.payload, keys);
  const claimed = st.envelope.signatures.map((s) => s.keyid).filter((k) => /^[0-9a-f]{64}$/.test(k))[0] ?? '';
  const raw = st.predicate;
  const chainRaw = raw['chain'];
  const seqV = isObj(chainRaw) ? chainRaw['seq'] : undefined;
  const chainV = isObj(chainRaw) ? chainRaw['chain_id'] : undefined;
  const partial: Partial<ChunkFacts> = { envelopeSha256, keyid: keyid ?? claimed, ...(typeof seqV === 'bigint' ? { seq: seqV } : {}), ...(typeof chainV === 'string' ? { chainId: chainV.slice(0, 64) } : {}) };
  if (keyid === undefined) return reject('untrusted-key', `no trusted key verifies the signature (envelope keyid ${claimed.slice(0, 16) || '?'}...)`, partial);
  if (st.predicateType !== CHUNK_PREDICATE_TYPE) return reject('bad-predicate', `predicateType ${st.predicateType.slice(0, 100)}`, partial);
  const parsed = parsePredicate(raw);
  if (!parsed.ok) return reject('bad-predicate', `predicate fields missing or malformed: ${parsed.bad.slice(0, 6).join(', ')}`, partial);
  const p = parsed.predicate;
  const ledger = checkLedgerIdentity(p);
  const fc = checkFunctionCalls(raw);
  if (ledger.length > 0 || fc.problems.length > 0) return reject('bad-predicate', [...ledger, ...fc.problems].slice(0, 3).join('; '), partial);
  const hostId = hostIdFor(p.host.machine_id, p.host.hostname);
  if (hostId !== subjectHost) return reject('host-mismatch', `the chunk is from host ${String(hostId ?? p.host.machine_id).slice(0, 64)} but was published for ${subjectHost}`, partial);
  const seq = p.chain.seq;
  if (seq < 1n || seq > 999_999_999_999n) return reject('bad-predicate', `chain.seq ${seq} is out of range`, partial);
  const chunkName = `chunk-${String(seq).padStart(12, '0')}.ndjson`;
  if (st.subjectName !== chunkName) return reject('bad-predicate', `the statement is for ${st.subjectName.slice(0, 100)}, not ${chunkName}`, partial);
  const probes: ProbeLedger[] = [];
  for (const name of [...p.ledger.probes.keys()].sort()) {
    const w = p.ledger.probes.get(name)!;
    const values = {} as ProbeLedger['values'];
    for (const f of PROBE_FIELDS) values[f] = probeField(w, f);
    probes.push({ probe: name.slice(0, 64), values });
  }
  const fcV = Object.prototype.hasOwnProperty.call(raw, 'function_calls') ? raw['function_calls'] : undefined;
  const facts: ChunkFacts = {
    hostId, envelopeSha256, chunkSha256: st.subjectSha256, chunkName, keyid, chainId: p.chain.chain_id, seq,
    prevEnvelopeSha256: p.chain.prev_envelope_sha256, runId: p.chain.run_id, runChunkIndex: p.chain.run_chunk_index, final: p.chain.final,
    hostname: p.host.hostname, machineId: p.host.machine_id, bootId: p.host.boot_id,
    count: p.records.count, bytes: p.records.bytes, lost: p.ledger.lost, complete: p.ledger.complete,
    minTs: p.records.min_ts_ns, maxTs: p.records.max_ts_ns,
    openedWallNs: p.clock.opened.wall_ns, openedMonoNs: p.clock.opened.mono_ns, sealedWallNs: p.clock.sealed.wall_ns, sealedMonoNs: p.clock.sealed.mono_ns,
    probes, restart: p.restart,
    ledgerJson: canonicalize(raw['ledger'] as CanonicalValue),
    functionCallsJson: fcV === undefined ? null : canonicalize(fcV as CanonicalValue),
    restartJson: p.restart !== null ? canonicalize(p.restart as CanonicalValue) : null,
  };
  if (facts.bytes > BigInt(CHUNK_HARD_LIMIT_BYTES)) return reject('too-large', `the chunk claims ${facts.bytes} bytes`, partial);
  return { ok: true, facts, predicate: p };
}

/** checkDigest compares a chunk body with the signed sha256. */
export function checkDigest(body: Buffer, facts: ChunkFacts): { code: RejectCode; reason: string } | undefined {
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  if (sha !== facts.chunkSha256) return { code: 'digest-mismatch', reason: `body sha256 ${sha.slice(0, 16)}... is not the signed ${facts.chunkSha256.slice(0, 16)}...` };
  return undefined;
}

/** checkContent compares what the rows pass counted with the signed record summary. */
export function checkContent(content: ChunkContent, predicate: SignedPredicate): { code: RejectCode; reason: string } | undefined {
  const problems = [...checkContentAgainstPredicate(content, predicate), ...content.lineProblems];
  if (Object.prototype.hasOwnProperty.call(predicate.raw, 'attribution')) problems.push(...checkAttribution(predicate.raw['attribution'], content.subjects));
  if (problems.length > 0) return { code: 'content-mismatch', reason: problems.slice(0, 3).join('; ') };
  return undefined;
}

/** A retention checkpoint as ingest reads it: which chunks the host removed, and which of them were never shipped. */
export interface CheckpointFacts {
  envelopeSha256: string;
  keyid: string;
  chainId: string;
  firstSeq: bigint;
  removedFrom: bigint;
  removedThrough: bigint;
  unshipped: { from: bigint; through: bigint } | null;
  /** the statement's subject: the sha256 of chunk first_seq's envelope, which the checkpoint vouches for */
  firstEnvelopeSha256: string;
}

export type CheckpointVerdict = { ok: true; facts: CheckpointFacts } | { ok: false; code: RejectCode; reason: string; partial: Partial<ChunkFacts> };

/**
 * checkCheckpoint verifies a shipped retention checkpoint (src/store/retention.ts): a DSSE
 * envelope signed by a trusted key, of the checkpoint predicate, with seq ranges in bounds and
 * in order (removed ends right before first_seq, and so does or before it unshipped).
 */
export function checkCheckpoint(bytes: Uint8Array, keys: readonly VerifyKey[]): CheckpointVerdict {
  const no = (code: RejectCode, reason: string, partial: Partial<ChunkFacts> = {}): CheckpointVerdict => ({ ok: false, code, reason, partial });
  if (bytes.length > MAX_ENVELOPE_BYTES) return no('too-large', `checkpoint envelope of ${bytes.length} bytes`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const envelopeSha256 = crypto.createHash('sha256').update(buf).digest('hex');
  const opened = openStatement(buf);
  if (!opened.ok) return no('bad-envelope', opened.reason, { envelopeSha256 });
  const st = opened.value;
  const keyid = verifyEnvelope(st.envelope, st.payload, keys);
  const claimed = st.envelope.signatures.map((x) => x.keyid).filter((k) => /^[0-9a-f]{64}$/.test(k))[0] ?? '';
  const p = st.predicate;
  const chainId = typeof p['chain_id'] === 'string' ? p['chain_id'].slice(0, 64) : undefined;
  const partial: Partial<ChunkFacts> = { envelopeSha256, keyid: keyid ?? claimed, ...(chainId !== undefined ? { chainId } : {}) };
  if (keyid === undefined) return no('untrusted-key', `no trusted key verifies the checkpoint (envelope keyid ${claimed.slice(0, 16) || '?'}...)`, partial);
  if (st.predicateType !== CHECKPOINT_PREDICATE_TYPE) return no('bad-predicate', `checkpoint predicateType ${st.predicateType.slice(0, 100)}`, partial);
  const seqOf = (v: unknown): bigint | undefined => (typeof v === 'bigint' && v >= 1n && v <= 999_999_999_999n ? v : undefined);
  const removed = isObj(p['removed']) ? p['removed'] : undefined;
  const unshipped = isObj(p['unshipped']) ? p['unshipped'] : undefined;
  const firstSeq = seqOf(p['first_seq']);
  const removedFrom = seqOf(removed?.['from_seq']);
  const removedThrough = seqOf(removed?.['through_seq']);
  const uFrom = seqOf(unshipped?.['from_seq']);
  const uThrough = seqOf(unshipped?.['through_seq']);
  if (chainId === undefined || firstSeq === undefined || removedFrom === undefined || removedThrough === undefined || removedFrom > removedThrough || removedThrough !== firstSeq - 1n) {
    return no('bad-predicate', 'checkpoint fields missing or out of order (chain_id, first_seq, removed.from_seq..through_seq = first_seq - 1)', partial);
  }
  // the checkpoint pins the envelope of its first chunk (as rtev verify checks it on the host)
  const firstName = `chunk-${String(firstSeq).padStart(12, '0')}.dsse.json`;
  if (st.subjectName !== firstName) return no('bad-predicate', `the checkpoint's subject is ${st.subjectName.slice(0, 100)}, not ${firstName}`, partial);
  // unshipped accumulates over the removals (src/store/chain-sealer.ts), removed is the last one
  if (unshipped !== undefined && (uFrom === undefined || uThrough === undefined || uFrom > uThrough || uThrough > removedThrough)) {
    return no('bad-predicate', 'checkpoint unshipped range is not before first_seq', partial);
  }
  return { ok: true, facts: { envelopeSha256, keyid, chainId, firstSeq, removedFrom, removedThrough, unshipped: uFrom !== undefined && uThrough !== undefined ? { from: uFrom, through: uThrough } : null, firstEnvelopeSha256: st.subjectSha256 } };
}

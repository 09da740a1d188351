import * as path from 'node:path';
import { isObj, type StrictValue } from '../encode/strict-json';
import { lstatMaybe, readBounded } from '../platform/fsio';
import { verifyEnvelope } from '../sign/envelope';
import type { VerifyKey } from '../sign/keys';
import { CHECKPOINT_PREDICATE_TYPE } from '../sign/statement';
import { MAX_ENVELOPE_BYTES, openStatement, sha256Hex } from '../sign/statement-read';
import { CHECKPOINT_NAME, envelopeName } from '../store/layout';

/**
 * Retention checkpoints as the summary and the report read them (docs/format.md "Retention"):
 * the signed statement an evidence directory keeps when retention removed its oldest chunks.
 * A chain whose chunks start at seq K > 1 is accounted for by a checkpoint of that chain whose
 * first_seq is K and whose subject digest is the envelope of the indexed chunk K; the seqs
 * before K are then "deleted by retention (checkpointed)", not unaccounted for. The fleet index
 * keeps the checkpoints the hosts shipped (src/fleet/summary.ts reads them the same way).
 */

export interface RetentionCheckpoint {
  chainId: string;
  /** the first chunk of the chain after the removal (the statement's subject) */
  firstSeq: bigint;
  /** sha256 of the envelope of chunk firstSeq the checkpoint vouches for */
  firstEnvelopeSha256: string;
  /** the removal that wrote this checkpoint (earlier removals are before it) */
  removedFrom: bigint;
  removedThrough: bigint;
  /** removed chunks that were never shipped (fleet), if any */
  unshipped: { from: bigint; through: bigint } | null;
  /** sha256 of the checkpoint envelope: which checkpoint records it */
  sha256: string;
}

const seqOf = (v: StrictValue | undefined): bigint | undefined => (typeof v === 'bigint' && v >= 1n && v <= 1_000_000_000_000n ? v : undefined);

/**
 * parseCheckpoint verifies a checkpoint envelope (shape, signature by a trusted key, predicate
 * type, subject `chunk-<first_seq>.dsse.json`, ranges in order) and reads it; undefined if it is
 * not a valid checkpoint. Never throws.
 */
export function parseCheckpoint(bytes: Buffer, keys: readonly VerifyKey[]): RetentionCheckpoint | undefined {
  const opened = openStatement(bytes);
  if (!opened.ok) return undefined;
  const st = opened.value;
  if (st.predicateType !== CHECKPOINT_PREDICATE_TYPE) return undefined;
  if (verifyEnvelope(st.envelope, st.payload, keys) === undefined) return undefined;
  const p = st.predicate;
  const chainId = p['chain_id'];
  const firstSeq = seqOf(p['first_seq']);
  const removed = p['removed'];
  if (typeof chainId !== 'string' || chainId.length === 0 || chainId.length > 200 || firstSeq === undefined || !isObj(removed)) return undefined;
  if (st.subjectName !== envelopeName(Number(firstSeq)) || !/^[0-9a-f]{64}$/.test(st.subjectSha256)) return undefined;
  const removedFrom = seqOf(removed['from_seq']);
  if (removedFrom === undefined || removedFrom >= firstSeq || removed['through_seq'] !== firstSeq - 1n) return undefined;
  let unshipped: RetentionCheckpoint['unshipped'] = null;
  const u = p['unshipped'];
  if (u !== undefined) {
    if (!isObj(u)) return undefined;
    const from = seqOf(u['from_seq']);
    const through = seqOf(u['through_seq']);
    if (from === undefined || through === undefined || from > through || through >= firstSeq) return undefined;
    unshipped = { from, through };
  }
  return { chainId, firstSeq, firstEnvelopeSha256: st.subjectSha256, removedFrom, removedThrough: firstSeq - 1n, unshipped, sha256: sha256Hex(bytes) };
}

/** readDirCheckpoint reads `checkpoint.dsse.json` of the evidence directory root/dir (bounded, no symlink), if valid. */
export function readDirCheckpoint(root: string, dir: string, keys: readonly VerifyKey[]): RetentionCheckpoint | undefined {
  const file = path.join(root, dir, CHECKPOINT_NAME);
  const st = lstatMaybe(file);
  if (st === undefined || !st.isFile()) return undefined;
  try {
    return parseCheckpoint(readBounded(file, MAX_ENVELOPE_BYTES), keys);
  } catch {
    return undefined;
  }
}

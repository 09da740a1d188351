import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeEnvelope, signEnvelope } from '../sign/envelope';
import type { SigningKey } from '../sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, statementBytes } from '../sign/statement';
import { fsyncDir, readBounded, writeFileAtomic } from './fsio';
import { CHECKPOINT_NAME, chunkName, envelopeName } from './layout';
import type { SealedChunk } from './recovery';
import { MAX_ENVELOPE_BYTES, sha256Hex } from '../sign/statement-read';
import type { TimeAnchor } from './host-facts';

/**
 * Retention removes the oldest sealed chunks beyond a total size or age, always keeping the
 * newest. Before anything is removed, a signed checkpoint (checkpoint.dsse.json) names the
 * new first chunk and the digest of its envelope, so the remainder verifies on its own.
 */

export interface RetentionLimits {
  maxBytes?: number | undefined;
  maxAgeMs?: number | undefined;
  /**
   * In a shipped directory (one with a ship cursor), retention keeps every chunk the fleet
   * transport has not acknowledged, unless this is set; then the checkpoint records which
   * removed chunks were never shipped.
   */
  removeUnshipped?: boolean | undefined;
}

/**
 * chooseRemovals returns how many of the oldest chunks (sorted by seq) to remove; a chunk
 * with seq >= keepFromSeq (the first unshipped one) is never removed.
 */
export function chooseRemovals(sealed: readonly SealedChunk[], limits: RetentionLimits, nowMs: number, keepFromSeq = Infinity): number {
  let total = sealed.reduce((n, c) => n + c.bytes, 0);
  let remove = 0;
  while (remove < sealed.length - 1) {
    const oldest = sealed[remove]!;
    if (oldest.seq >= keepFromSeq) break;
    const tooBig = limits.maxBytes !== undefined && total > limits.maxBytes;
    const tooOld = limits.maxAgeMs !== undefined && nowMs - oldest.sealedAtMs > limits.maxAgeMs;
    if (!tooBig && !tooOld) break;
    total -= oldest.bytes;
    remove++;
  }
  return remove;
}

export interface CheckpointInput {
  dir: string;
  key: SigningKey;
  chainId: string;
  firstSeq: number;
  removedFromSeq: number;
  removedBytes: number;
  anchor: TimeAnchor;
  /** removed chunks the fleet transport never acknowledged (retention told to remove them) */
  unshipped?: { fromSeq: number; throughSeq: number } | undefined;
}

/** writeCheckpoint signs and atomically (re)writes the retention checkpoint. */
export function writeCheckpoint(c: CheckpointInput): void {
  const envName = envelopeName(c.firstSeq);
  const digest = sha256Hex(readBounded(path.join(c.dir, envName), MAX_ENVELOPE_BYTES));
  const payload = statementBytes({ name: envName, digest: { sha256: digest } }, CHECKPOINT_PREDICATE_TYPE, {
    chain_id: c.chainId,
    first_seq: c.firstSeq,
    removed: { from_seq: c.removedFromSeq, through_seq: c.firstSeq - 1, bytes: c.removedBytes },
    created: { wall_ns: c.anchor.wall_ns, mono_ns: c.anchor.mono_ns, uncertainty_ns: c.anchor.uncertainty_ns },
    ...(c.unshipped !== undefined ? { unshipped: { from_seq: c.unshipped.fromSeq, through_seq: c.unshipped.throughSeq } } : {}),
  });
  writeFileAtomic(c.dir, CHECKPOINT_NAME, serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, c.key)), true);
}

/** removeChunks deletes sealed chunks (data first, then envelope) and makes it durable. */
export function removeChunks(dir: string, seqs: readonly number[]): void {
  for (const seq of seqs) {
    for (const name of [chunkName(seq), envelopeName(seq)]) {
      try {
        fs.unlinkSync(path.join(dir, name));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  fsyncDir(dir);
}

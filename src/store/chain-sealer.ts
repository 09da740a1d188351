import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeEnvelope, signEnvelope } from '../sign/envelope';
import type { SigningKey } from '../sign/keys';
import { CHUNK_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, statementBytes } from '../sign/statement';
import { fsyncDir, readBounded, renameNew, writeFileAtomic } from './fsio';
import { CHECKPOINT_NAME, chunkName, envelopeName, UNRECORDED_SUFFIX } from './layout';
import { predicateValue, type ChunkPredicate } from './predicate';
import type { SealedChunk } from './recovery';
import { chooseRemovals, removeChunks, writeCheckpoint, type RetentionLimits } from './retention';
import { MAX_ENVELOPE_BYTES, sha256Hex } from '../sign/statement-read';
import { readShipCursor, shippedThrough } from './ship-cursor';

/** SealJob is one complete chunk handed over for sealing, in sequence order. */
export interface SealJob {
  tmpPath: string;
  seq: number;
  bytes: number;
  /** sha256 (hex) of the chunk's bytes, taken by the writer as it wrote them */
  sha256: string;
  /** the predicate without its chain link (prev_envelope_sha256 is filled in here) */
  predicate: ChunkPredicate;
  sealedAtMs: number;
}

export interface SealerState {
  dir: string;
  key: SigningKey;
  chainId: string;
  prevEnvelopeSha256: string | null;
  sealed: SealedChunk[];
  unrecorded: string[];
  retention: RetentionLimits;
}

/**
 * ChainSealer makes chunks durable and signs them, strictly in sequence order:
 * fsync the data, rename it to its final name, fsync the directory, sign the statement
 * (which links the previous envelope's digest), write the envelope the same careful way,
 * then apply retention. It runs in the seal worker (seal-worker.ts), off the ingest thread.
 */
export class ChainSealer {
  #s: SealerState;
  /** unshipped chunks retention removed (null: none; undefined: not read from the checkpoint yet) */
  #unshipped: { fromSeq: number; throughSeq: number } | null | undefined;

  constructor(state: SealerState) {
    this.#s = state;
  }

  /** seal runs one job; a failure leaves the chunk unsealed for the next run to record. */
  seal(job: SealJob): void {
    const dir = this.#s.dir;
    const sha256 = job.sha256;
    const fd = fs.openSync(job.tmpPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      if (fs.fstatSync(fd).size !== job.bytes) throw new Error(`${job.tmpPath} changed size while it was written`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    renameNew(job.tmpPath, path.join(dir, chunkName(job.seq)));
    fsyncDir(dir);
    job.predicate.chain.prev_envelope_sha256 = this.#s.prevEnvelopeSha256;
    const payload = statementBytes({ name: chunkName(job.seq), digest: { sha256 } }, CHUNK_PREDICATE_TYPE, predicateValue(job.predicate));
    const envelope = serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, this.#s.key));
    writeFileAtomic(dir, envelopeName(job.seq), envelope);
    this.#s.prevEnvelopeSha256 = sha256Hex(envelope);
    this.#s.sealed.push({ seq: job.seq, bytes: job.bytes + envelope.length, sealedAtMs: job.sealedAtMs });
    this.#finalizeUnrecorded();
    this.#applyRetention(job);
  }

  /** abandon forgets a job that will not be sealed (its file stays for the next run). */
  abandon(_job: SealJob): void {
    // nothing is kept per job: its file stays for the next run to record
  }

  /** Unsealed data named by a sealed restart record loses its ".unrecorded" suffix. */
  #finalizeUnrecorded(): void {
    const dir = this.#s.dir;
    for (const name of this.#s.unrecorded) fs.renameSync(path.join(dir, name), path.join(dir, name.slice(0, -UNRECORDED_SUFFIX.length)));
    if (this.#s.unrecorded.length > 0) fsyncDir(dir);
    this.#s.unrecorded = [];
  }

  #applyRetention(job: SealJob): void {
    const limits = this.#s.retention;
    if (limits.maxBytes === undefined && limits.maxAgeMs === undefined) return;
    const cursor = readShipCursor(this.#s.dir);
    const firstUnshipped = cursor === undefined ? Infinity : shippedThrough(cursor, this.#s.chainId) + 1;
    const n = chooseRemovals(this.#s.sealed, limits, job.sealedAtMs, limits.removeUnshipped === true ? Infinity : firstUnshipped);
    if (n === 0) return;
    const removed = this.#s.sealed.splice(0, n);
    const lastRemoved = removed[removed.length - 1]!.seq;
    // a directory without a ship cursor was never shipped: everything it removes is unshipped
    const unshippedFrom = Math.max(cursor === undefined ? 1 : firstUnshipped, removed[0]!.seq);
    // the checkpoint is rewritten at each removal: it keeps every unshipped removal so far
    this.#unshipped ??= previousUnshipped(this.#s.dir);
    if (unshippedFrom <= lastRemoved) {
      this.#unshipped = { fromSeq: Math.min(this.#unshipped?.fromSeq ?? unshippedFrom, unshippedFrom), throughSeq: lastRemoved };
    }
    writeCheckpoint({
      dir: this.#s.dir, key: this.#s.key, chainId: this.#s.chainId, firstSeq: this.#s.sealed[0]!.seq,
      removedFromSeq: removed[0]!.seq, removedBytes: removed.reduce((s, r) => s + r.bytes, 0), anchor: job.predicate.clock.sealed,
      unshipped: this.#unshipped ?? undefined,
    });
    removeChunks(this.#s.dir, removed.map((r) => r.seq));
  }
}

/** previousUnshipped reads the unshipped range of the checkpoint this sealer wrote before (null if none). */
function previousUnshipped(dir: string): { fromSeq: number; throughSeq: number } | null {
  try {
    const env = JSON.parse(readBounded(path.join(dir, CHECKPOINT_NAME), MAX_ENVELOPE_BYTES).toString('utf8')) as { payload: string };
    const u = (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate?: { unshipped?: { from_seq?: unknown; through_seq?: unknown } } }).predicate?.unshipped;
    if (typeof u?.from_seq === 'number' && typeof u.through_seq === 'number') return { fromSeq: u.from_seq, throughSeq: u.through_seq };
  } catch {
    // no checkpoint yet, or not readable: nothing recorded before
  }
  return null;
}

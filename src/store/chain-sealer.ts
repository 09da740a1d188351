import * as fs from 'node:fs';
import * as path from 'node:path';
import { serializeEnvelope, signEnvelope } from '../sign/envelope';
import type { SigningKey } from '../sign/keys';
import { CHUNK_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, statementBytes } from '../sign/statement';
import { createExclusive, fsyncDir, lstatMaybe, readBounded, renameNew, writeAll } from './fsio';
import { CHECKPOINT_NAME, chunkName, envelopeName, PARTIAL_SUFFIX, UNRECORDED_SUFFIX } from './layout';
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

/** SealFailure: a group stopped at job `seq`; the jobs before it are sealed. */
export class SealFailure extends Error {
  constructor(readonly seq: number, readonly error: unknown) {
    super(`cannot seal seq ${seq}`);
  }
}

/** at most this many jobs are made durable together (each holds two descriptors while it is fsynced) */
export const MAX_GROUP = 64;

/**
 * ChainSealer makes chunks durable and signs them, strictly in sequence order. Jobs that
 * queued up while the sealer was busy are sealed as one group (group commit), in four steps
 * whose order is the crash guarantee (docs/format.md, "Writing and crash safety"):
 *   1. each chunk's data and each envelope's bytes (written to chunk-S.dsse.json.partial,
 *      signed in memory, each linking the previous envelope's digest) are fsynced, all in
 *      flight at once, so the file system commits them together;
 *   2. every chunk is renamed to chunk-S.ndjson, in sequence order;
 *   3. the directory is fsynced: every chunk of the group is now durable under its name;
 *   4. every envelope is renamed to chunk-S.dsse.json, in sequence order, and the directory
 *      is fsynced again.
 * An envelope's final name therefore never exists before its chunk is durable and renamed.
 * Then retention runs once. It runs in the seal worker (seal-worker.ts), off the ingest thread.
 * Per chunk that is 2 data fsyncs in parallel and 2 directory fsyncs per group, against
 * 4 fsyncs in strict sequence per chunk before (docs/benchmarks.md, "Session 6 (h31)").
 */
export class ChainSealer {
  #s: SealerState;
  /** unshipped chunks retention removed (null: none; undefined: not read from the checkpoint yet) */
  #unshipped: { fromSeq: number; throughSeq: number } | null | undefined;

  constructor(state: SealerState) {
    this.#s = state;
  }

  /** seal runs one job (a group of one). */
  async seal(job: SealJob): Promise<void> {
    await this.sealGroup([job]);
  }

  /**
   * sealGroup seals consecutive jobs together. A failure throws SealFailure naming the first
   * job not sealed; the jobs before it whose steps all succeeded are sealed (a failed
   * directory fsync fails every job it covered).
   */
  async sealGroup(jobs: readonly SealJob[]): Promise<void> {
    const dir = this.#s.dir;
    let failure: SealFailure | undefined;
    const fail = (i: number, err: unknown): void => {
      if (failure === undefined || jobs[i]!.seq < failure.seq) failure = new SealFailure(jobs[i]!.seq, err);
    };
    // step 1: open each chunk, sign its envelope in memory and write it to its .partial
    const open: Array<{ job: SealJob; dataFd: number; envFd: number; envTmp: string; envelope: Buffer }> = [];
    let prev = this.#s.prevEnvelopeSha256;
    let usable = Infinity;
    try {
      for (let i = 0; i < jobs.length; i++) {
        const job = jobs[i]!;
        let dataFd = -1;
        let envFd = -1;
        try {
          dataFd = fs.openSync(job.tmpPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
          if (fs.fstatSync(dataFd).size !== job.bytes) throw new Error(`${job.tmpPath} changed size while it was written`);
          job.predicate.chain.prev_envelope_sha256 = prev;
          const payload = statementBytes({ name: chunkName(job.seq), digest: { sha256: job.sha256 } }, CHUNK_PREDICATE_TYPE, predicateValue(job.predicate));
          const envelope = serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, this.#s.key));
          const envTmp = path.join(dir, envelopeName(job.seq) + PARTIAL_SUFFIX);
          if (lstatMaybe(envTmp) !== undefined) fs.unlinkSync(envTmp);
          envFd = createExclusive(envTmp);
          writeAll(envFd, envelope, envelopeName(job.seq));
          open.push({ job, dataFd, envFd, envTmp, envelope });
          prev = sha256Hex(envelope);
        } catch (err) {
          if (dataFd >= 0) fs.closeSync(dataFd);
          if (envFd >= 0) fs.closeSync(envFd);
          fail(i, err);
          break;
        }
      }
      // ...and fsync all of them at once (the file system joins them in one commit)
      // (every fsync has ended before a descriptor is closed)
      const synced = await fsyncAll(open.map((o) => [o.dataFd, o.envFd]));
      const bad = synced.findIndex((e) => e !== undefined);
      if (bad >= 0) {
        fail(bad, synced[bad]);
        usable = bad;
      }
    } finally {
      for (const o of open) {
        fs.closeSync(o.dataFd);
        fs.closeSync(o.envFd);
      }
    }
    open.length = Math.min(open.length, usable);
    // step 2: the chunks take their final names, in order
    let renamed = 0;
    for (; renamed < open.length; renamed++) {
      try {
        renameNew(open[renamed]!.job.tmpPath, path.join(dir, chunkName(open[renamed]!.job.seq)));
      } catch (err) {
        fail(renamed, err);
        break;
      }
    }
    if (renamed > 0) {
      // step 3: the chunks are durable under their names
      try {
        fsyncDir(dir);
      } catch (err) {
        throw new SealFailure(jobs[0]!.seq, err);
      }
      // step 4: then, and only then, the envelopes, in order
      let named = 0;
      for (; named < renamed; named++) {
        try {
          renameNew(open[named]!.envTmp, path.join(dir, envelopeName(open[named]!.job.seq)));
        } catch (err) {
          fail(named, err);
          break;
        }
      }
      if (named > 0) {
        try {
          fsyncDir(dir);
        } catch (err) {
          throw new SealFailure(jobs[0]!.seq, err);
        }
        for (let i = 0; i < named; i++) {
          const o = open[i]!;
          this.#s.prevEnvelopeSha256 = sha256Hex(o.envelope);
          this.#s.sealed.push({ seq: o.job.seq, bytes: o.job.bytes + o.envelope.length, sealedAtMs: o.job.sealedAtMs });
        }
        this.#finalizeUnrecorded();
        this.#applyRetention(open[named - 1]!.job);
      }
    }
    if (failure !== undefined) throw failure;
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

/**
 * fsyncAll fsyncs each job's descriptors, FSYNC_IN_FLIGHT at a time on the libuv thread pool
 * (fsyncs in flight together share the file system's journal commits; the pool's other threads
 * stay free for the ingest thread's file reads); gives each job's first error, or undefined.
 */
async function fsyncAll(jobs: number[][]): Promise<unknown[]> {
  const errors: unknown[] = jobs.map(() => undefined);
  const work = jobs.flatMap((fds, i) => fds.map((fd) => ({ fd, i })));
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < work.length) {
      const w = work[next++]!;
      try {
        await fsyncFd(w.fd);
      } catch (err) {
        errors[w.i] ??= err ?? new Error('fsync failed');
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(FSYNC_IN_FLIGHT, work.length) }, lane));
  return errors;
}

/** fsyncs in flight at once (the libuv pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise) */
const FSYNC_IN_FLIGHT = 3;

/** fsyncFd flushes a descriptor on the libuv thread pool. */
function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

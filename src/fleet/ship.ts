import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { headers, type NatsConnection } from '@nats-io/nats-core';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { Objm, type ObjectStore } from '@nats-io/obj';
import { RtevError } from '../errors';
import { lstatMaybe, readBounded } from '../store/fsio';
import { CHECKPOINT_NAME, chunkName, classify, envelopeName } from '../store/layout';
import { readShipCursor, writeShipCursor, type ShipCursor } from '../store/ship-cursor';
import { isObj } from '../encode/strict-json';
import { MAX_ENVELOPE_BYTES, openStatement } from '../sign/statement-read';
import { backoffMs, closeNats, connectNats, isNotFound, sleep, withTimeout, type NatsOptions } from './nats';
import { CHUNK_BUCKET, envelopeSubject, HDR_KIND, HDR_OBJECT, HDR_OBJECT_NUID, hostIdFor, objectDigest, objectName } from './names';

/**
 * `rtev ship`: sends every sealed chunk of an evidence directory that the fleet transport
 * has not acknowledged yet, in sequence order. The body goes to the JetStream Object Store
 * (chunks are up to 16 MiB, far above a message's max_payload), the signed envelope goes
 * to the host's subject with Nats-Msg-Id = sha256 of the envelope, so a repeat is a
 * duplicate the server drops. The evidence directory is the spool: the collector writes
 * it whatever the network does, and the cursor (.rtev-ship.json) records the progress.
 */

/** chunks larger than this are refused on both sides (the collector's default is 16 MiB) */
export const MAX_CHUNK_BYTES = 64 * 1024 * 1024;

export interface ShipHooks {
  /** sealed chunks not yet acknowledged */
  pending?(n: number): void;
  /** one chunk acknowledged (duplicate: the server had it already) */
  shipped?(bytes: number, duplicate: boolean): void;
  /** a failed attempt that will be retried */
  retry?(reason: string): void;
}

export interface ShipOptions {
  dir: string;
  nats: NatsOptions;
  follow: boolean;
  /** how often --follow looks for newly sealed chunks */
  pollMs?: number;
  /**
   * ship the sealed chunks from this seq on again, under message ids of this run (the server
   * would drop a plain repeat as a duplicate for 24 h): after an operator accepted the
   * directory's new chain, or to fill gaps a simultaneous crash of every NATS node left
   */
  resendFrom?: number;
  signal?: AbortSignal;
  log: (line: string) => void;
  hooks?: ShipHooks;
}

export interface ShipResult {
  shipped: number;
  duplicates: number;
  bytes: number;
  ackedSeq: number;
}

interface Sealed {
  seq: number;
}

/** listSealed returns the sealed chunks (envelope present) of DIR in seq order. */
export function listSealed(dir: string): Sealed[] {
  const out: Sealed[] = [];
  for (const name of fs.readdirSync(dir)) {
    const e = classify(name);
    if (e?.kind === 'envelope') out.push({ seq: e.seq });
  }
  return out.sort((a, b) => a.seq - b.seq);
}

interface EnvelopeFacts {
  bytes: Buffer;
  sha256: string;
  chainId: string | null;
  hostId: string | undefined;
  chunkSha256: string | null;
}

function readEnvelopeFacts(dir: string, name: string): EnvelopeFacts {
  const bytes = readBounded(path.join(dir, name), MAX_ENVELOPE_BYTES);
  const sha256 = crypto.createHash('sha256').update(bytes).digest('hex');
  const st = openStatement(bytes);
  if (!st.ok) return { bytes, sha256, chainId: null, hostId: undefined, chunkSha256: null };
  const p = st.value.predicate;
  const chainObj = p['chain'];
  const chain = isObj(chainObj) ? chainObj['chain_id'] : undefined;
  const host = p['host'];
  const hostId = isObj(host) ? hostIdFor(String(host['machine_id'] ?? ''), String(host['hostname'] ?? '')) : undefined;
  return { bytes, sha256, chainId: typeof chain === 'string' ? chain : null, hostId, chunkSha256: st.value.subjectSha256 };
}

export class Shipper {
  readonly #o: ShipOptions;
  #nc: NatsConnection | undefined;
  #js: JetStreamClient | undefined;
  #bucket: ObjectStore | undefined;
  #hostId: string | undefined;
  readonly #result: ShipResult = { shipped: 0, duplicates: 0, bytes: 0, ackedSeq: 0 };
  /** with resendFrom: the seqs up to this one go under this run's message ids */
  #resendThrough = 0;
  readonly #resendNonce = crypto.randomBytes(8).toString('hex');

  constructor(o: ShipOptions) {
    this.#o = o;
  }

  /** run ships until everything sealed is acknowledged (or, with follow, until aborted). */
  async run(): Promise<ShipResult> {
    const { dir, signal } = this.#o;
    const st = lstatMaybe(dir);
    if (st === undefined || !st.isDirectory()) throw new RtevError('USAGE', `${dir} is not an evidence directory`);
    // the cursor's presence tells retention that this directory is shipped
    if (readShipCursor(dir) === undefined) writeShipCursor(dir, { chain_id: null, acked_seq: 0, acked_envelope_sha256: null });
    if (this.#o.resendFrom !== undefined) {
      const sealed = listSealed(dir);
      const cursor = readShipCursor(dir)!;
      this.#resendThrough = sealed[sealed.length - 1]?.seq ?? 0;
      if (cursor.acked_seq >= this.#o.resendFrom) writeShipCursor(dir, { chain_id: cursor.chain_id, acked_seq: this.#o.resendFrom - 1, acked_envelope_sha256: null });
    }
    try {
      for (;;) {
        const pending = this.#pending();
        this.#o.hooks?.pending?.(pending.length);
        for (const seq of pending) {
          if (signal?.aborted) return this.#result;
          // before every chunk: retention may have rewritten the checkpoint (and removed the
          // chunks before this one) since the last; ingest must have it before this chunk
          await this.#shipCheckpoint();
          await this.#shipWithRetry(seq);
          this.#o.hooks?.pending?.(this.#pending().length);
        }
        if (signal?.aborted) return this.#result;
        await this.#shipCheckpoint();
        if (pending.length === 0 && !this.#o.follow) return this.#result;
        if (pending.length === 0) await sleep(this.#o.pollMs ?? 500, signal);
      }
    } finally {
      await closeNats(this.#nc);
    }
  }

  /** the seqs to ship now: sealed, after the cursor (a new chain in the directory restarts at its first chunk) */
  #pending(): number[] {
    const dir = this.#o.dir;
    const sealed = listSealed(dir);
    if (sealed.length === 0) return [];
    let cursor = readShipCursor(dir) ?? { chain_id: null, acked_seq: 0, acked_envelope_sha256: null };
    const last = readEnvelopeFacts(dir, envelopeName(sealed[sealed.length - 1]!.seq));
    if (last.chainId !== null && cursor.chain_id !== null && last.chainId !== cursor.chain_id) {
      this.#o.log(`ship: ${dir} holds a new chain ${last.chainId} (was ${cursor.chain_id}); shipping it from its first chunk`);
      cursor = { chain_id: last.chainId, acked_seq: 0, acked_envelope_sha256: null };
      writeShipCursor(dir, cursor);
    }
    this.#result.ackedSeq = cursor.acked_seq;
    return sealed.map((s) => s.seq).filter((s) => s > cursor.acked_seq);
  }

  /** the retention checkpoint last shipped by this process (sha256 of its envelope) */
  #checkpointShipped: string | undefined;
  /** the file it was read from (inode, size, mtime): an unchanged file is not read again */
  #checkpointStat = '';

  /**
   * #shipCheckpoint ships the directory's retention checkpoint when it changed, before the
   * chunks after it: ingest then knows which chunks the host removed, and which of them were
   * never shipped (a signed account instead of a gap with no reason). Its message id is
   * its digest, so a repeat after a restart is a duplicate.
   */
  async #shipCheckpoint(): Promise<void> {
    const file = path.join(this.#o.dir, CHECKPOINT_NAME);
    const st = lstatMaybe(file);
    if (st === undefined || !st.isFile()) return;
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (stamp === this.#checkpointStat && this.#checkpointShipped !== undefined) return;
    let bytes: Buffer;
    try {
      bytes = readBounded(file, MAX_ENVELOPE_BYTES);
    } catch {
      return;
    }
    const sha = crypto.createHash('sha256').update(bytes).digest('hex');
    if (sha === this.#checkpointShipped) {
      this.#checkpointStat = stamp;
      return;
    }
    const first = listSealed(this.#o.dir)[0];
    const hostId = this.#hostId ?? (first !== undefined ? readEnvelopeFacts(this.#o.dir, envelopeName(first.seq)).hostId : undefined);
    if (hostId === undefined) return;
    this.#hostId ??= hostId;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#connect();
        const h = headers();
        h.set(HDR_KIND, 'checkpoint');
        await this.#js!.publish(envelopeSubject(hostId), bytes, { msgID: `checkpoint:${sha}`, headers: h, timeout: 10_000 });
        this.#checkpointShipped = sha;
        this.#checkpointStat = stamp;
        return;
      } catch (err) {
        if (this.#o.signal?.aborted) return;
        this.#o.hooks?.retry?.((err as Error).message);
        const wait = backoffMs(attempt);
        if (attempt === 0 || attempt % 10 === 9) this.#o.log(`ship: ${CHECKPOINT_NAME} not acknowledged (${(err as Error).message}); retrying in ${wait} ms`);
        await sleep(wait, this.#o.signal);
      }
    }
  }

  async #shipWithRetry(seq: number): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      // removed by retention (told to remove unshipped chunks) since the directory was listed:
      // the checkpoint accounts for it
      if (lstatMaybe(path.join(this.#o.dir, envelopeName(seq))) === undefined) return;
      try {
        await this.#connect();
        await this.#shipOne(seq);
        return;
      } catch (err) {
        if (err instanceof RtevError && err.code === 'USAGE') throw err;
        if (this.#o.signal?.aborted) return;
        const reason = (err as Error).message;
        this.#o.hooks?.retry?.(reason);
        const wait = backoffMs(attempt);
        if (attempt === 0 || attempt % 10 === 9) this.#o.log(`ship: ${chunkName(seq)} not acknowledged (${reason}); retrying in ${wait} ms`);
        await sleep(wait, this.#o.signal);
      }
    }
  }

  async #connect(): Promise<void> {
    if (this.#nc !== undefined && !this.#nc.isClosed()) {
      if (this.#bucket !== undefined) return;
    } else {
      this.#nc = await connectNats(this.#o.nats, this.#o.signal, this.#o.log);
      this.#js = jetstream(this.#nc, { timeout: 10_000 });
      this.#bucket = undefined;
    }
    try {
      this.#bucket = await new Objm(this.#js!).open(CHUNK_BUCKET);
    } catch (err) {
      if (isNotFound(err)) throw new Error(`the object store bucket ${CHUNK_BUCKET} does not exist yet (start 'rtev ingest' or run 'rtev fleet init')`);
      throw err;
    }
  }

  async #shipOne(seq: number): Promise<void> {
    const dir = this.#o.dir;
    const env = readEnvelopeFacts(dir, envelopeName(seq));
    const hostId = env.hostId ?? this.#hostId;
    if (hostId === undefined) throw new RtevError('USAGE', `${envelopeName(seq)}: cannot tell the host id (no machine id or hostname in a readable envelope)`);
    this.#hostId ??= hostId;
    const h = headers();
    h.set(HDR_KIND, 'chunk');
    let bytes = 0;
    if (env.chainId !== null && env.chunkSha256 !== null) {
      const name = objectName(hostId, env.chainId, seq);
      const file = path.join(dir, chunkName(seq));
      let st = lstatMaybe(file);
      // retention removes the data, then the envelope: a chunk whose data went while its
      // envelope was read, and whose envelope goes too, was removed (the checkpoint names it)
      if (st === undefined) {
        await sleep(200, this.#o.signal);
        if (lstatMaybe(path.join(dir, envelopeName(seq))) === undefined) return;
        st = lstatMaybe(file);
      }
      if (st !== undefined && st.isFile()) {
        if (st.size > MAX_CHUNK_BYTES) throw new RtevError('USAGE', `${chunkName(seq)} is ${st.size} bytes, more than the fleet limit of ${MAX_CHUNK_BYTES}`);
        let have = await withTimeout(this.#bucket!.info(name), 15_000, 'object store info');
        if (have === null || have.deleted || have.digest !== objectDigest(env.chunkSha256) || have.size !== st.size) {
          const stream = Readable.toWeb(fs.createReadStream(file, { highWaterMark: 128 * 1024 })) as unknown as ReadableStream<Uint8Array>;
          // parts of up to 4 MiB (the client caps them at the server's max_payload):
          // fewer messages to store and for ingest to read than the client's default of 128 KiB
          have = await withTimeout(this.#bucket!.put({ name, description: `chunk ${seq} of chain ${env.chainId}`, options: { max_chunk_size: OBJECT_PART_BYTES } }, stream), 120_000, 'object store write');
        }
        bytes = st.size;
        h.set(HDR_OBJECT, name);
        if (typeof have.nuid === 'string' && /^[A-Za-z0-9]{1,64}$/.test(have.nuid)) h.set(HDR_OBJECT_NUID, have.nuid);
      }
      // a missing chunk file is shipped as an envelope without a body: ingest records it
    }
    const msgID = seq <= this.#resendThrough ? `${env.sha256}:resend:${this.#resendNonce}` : env.sha256;
    const ack = await this.#js!.publish(envelopeSubject(hostId), env.bytes, { msgID, headers: h, timeout: 10_000 });
    const cursor: ShipCursor = { chain_id: env.chainId, acked_seq: seq, acked_envelope_sha256: env.sha256 };
    writeShipCursor(dir, cursor);
    this.#result.ackedSeq = seq;
    if (ack.duplicate) this.#result.duplicates++;
    else this.#result.shipped++;
    this.#result.bytes += bytes;
    this.#o.hooks?.shipped?.(bytes, ack.duplicate);
  }
}

export { CHECKPOINT_NAME };

/** the largest Object Store part ship writes (well inside the sensible max_payload ceiling of 8 MB; the client caps it at the server's) */
export const OBJECT_PART_BYTES = 4 * 1024 * 1024;

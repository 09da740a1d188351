import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstream, type Consumer, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import { Client } from 'pg';
import { UsageError } from '../errors';
import { loadVerifyKeyFile } from '../sign/key-files';
import type { VerifyKey } from '../sign/keys';
import { checkCheckpoint, checkContent, checkDigest, checkEnvelope, type ChunkFacts, type EnvelopeVerdict, type RejectCode } from './chunk-check';
import { closeByChunk, DeferredChunks, LATE_OPEN_SQL, recordCheckpoint, recordSkipped, skippedCover, type SkippedCover } from './gaps';
import { backoffMs, closeNats, clusterSize, connectNats, ensureTopology, sleep, withTimeout, type NatsOptions } from './nats';
import { CHUNK_BUCKET, ENVELOPE_STREAM, HDR_KIND, HDR_OBJECT, HDR_OBJECT_NUID, hostOfSubject, INGEST_CONSUMER, isHostId, objectName } from './names';
import { attributionRows } from './attribution-rows';
import { chunkBatch } from './chunk-rows';
import { checkSchema, COPY_ATTRIBUTION, COPY_CONTAINERS, COPY_IMAGES, COPY_RECORDS, copyPieces } from './pg-schema';
import { encodeRows } from './rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary, releaseRows, type BinaryRows } from './rows-binary';
import { checkNoPassword } from './secrets';
import { MAX_CHUNK_BYTES } from './ship';

/**
 * `rtev ingest`: the central verifier and indexer. Several processes share one durable
 * JetStream consumer. Per chunk, in one PostgreSQL transaction: verify the envelope with
 * the trusted keys, check the chain against the host's head kept here (so reordering,
 * replay, removal and rewritten history show), fetch the body and check it against the
 * signed digest and record summary, COPY the records with their original lines, move the
 * head, commit; acknowledge only after the commit. A redelivery after a crash finds the
 * chunk's envelope digest already committed and only acknowledges: at-least-once delivery
 * gives exactly-once records.
 */

export type IngestResult = 'indexed' | 'duplicate' | 'rejected' | 'deferred' | 'error' | 'checkpoint';

export interface IngestHooks {
  chunk?(result: IngestResult, records: number): void;
  lagSeconds?(s: number): void;
  /** how a chunk's rows went to the database: binary COPY, or text COPY for a body the binary path does not take */
  rowsBuiltBy?(by: 'binary' | 'text'): void;
  /** lines of a binary-built chunk the canonical-line scanner did not read exactly (read with JSON.parse) */
  linesParsed?(n: number): void;
}

export interface IngestOptions {
  nats: NatsOptions;
  /** postgresql:// URL without a password (PGPASSWORD or ~/.pgpass supply it) */
  db: string;
  trustDir: string;
  once: boolean;
  replicas?: number | undefined;
  ackWaitMs: number;
  /** how long a chunk that arrives ahead of its predecessor waits before the gap is recorded */
  gapWaitMs: number;
  /** database sessions: chunks of different hosts are indexed at the same time on them (default 1) */
  dbSessions?: number;
  signal?: AbortSignal;
  log: (line: string) => void;
  hooks?: IngestHooks;
  /** a timeline of each chunk's steps (the bench's RTEV_INGEST_TRACE): event, stream seq (0: none), session slot (-1: none) */
  trace?: (event: string, seq: number, slot: number) => void;
}

export interface IngestStats {
  indexed: number;
  duplicates: number;
  rejected: number;
  deferred: number;
  records: number;
}

/** loadTrust reads every DIR/*.pub as a trusted Ed25519 public key. */
export function loadTrust(dir: string): VerifyKey[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.pub')).sort();
  } catch (err) {
    throw new UsageError(`--trust: cannot read ${dir}: ${(err as Error).message}`);
  }
  const keys = names.map((n) => loadVerifyKeyFile(path.join(dir, n)));
  if (keys.length === 0) throw new UsageError(`--trust: ${dir} holds no *.pub key`, 'copy each host\'s signing.key.pub there (one file per key)');
  return keys;
}

interface Head {
  chain_id: string;
  head_seq: string;
  head_envelope_sha256: string;
}

/** what the index holds around a chunk that arrives behind the head (seq <= head) */
export interface LateSlot {
  /** an open, single-seq 'missing' gap covers this seq */
  open: boolean;
  /** envelope sha256 of the indexed chunk seq-1, if indexed */
  prevEnvelope: string | null;
  /** prev_envelope_sha256 of the indexed chunk seq+1, if indexed */
  nextLinks: string | null;
}

type Decision =
  | { kind: 'index'; gap?: { from: bigint; through: bigint; kind?: 'retention' }; late?: boolean }
  | { kind: 'reject'; code: RejectCode; reason: string }
  | { kind: 'defer'; reason: string }
  | { kind: 'duplicate' };

/**
 * decide applies the chain rules to a verified chunk and the host's head (pure). `retained`:
 * a signed retention checkpoint of this chain names the chunks before this one that are not
 * indexed (from the head, or from seq 1) as removed on the host before they were shipped; the
 * chunk is indexed at once, with a `retention` gap instead of a `missing` one.
 */
export function decide(f: ChunkFacts, head: Head | undefined, waitedEnough: boolean, late?: LateSlot, retained = false): Decision {
  if (head === undefined) {
    if (f.seq !== 1n && retained) return { kind: 'index', gap: { from: 1n, through: f.seq - 1n, kind: 'retention' } };
    if (f.seq === 1n || waitedEnough) return f.seq === 1n ? { kind: 'index' } : { kind: 'index', gap: { from: 1n, through: f.seq - 1n } };
    return { kind: 'defer', reason: `first chunk seen of this host is seq ${f.seq}` };
  }
  const headSeq = BigInt(head.head_seq);
  if (f.chainId !== head.chain_id) {
    return { kind: 'reject', code: 'chain-replaced', reason: `chain ${f.chainId} seq ${f.seq} arrived while the host's indexed chain ${head.chain_id} is at seq ${headSeq}: history deleted and rewritten` };
  }
  if (f.seq <= headSeq) {
    if (late === undefined || !late.open) return { kind: 'reject', code: 'fork', reason: `seq ${f.seq} is already indexed with another envelope (head ${headSeq}): rewritten history` };
    // a late chunk fills the gap recorded when its successor was indexed without it
    if (late.prevEnvelope !== null && f.prevEnvelopeSha256 !== late.prevEnvelope) return { kind: 'reject', code: 'broken-link', reason: `late seq ${f.seq} does not link the indexed seq ${f.seq - 1n}` };
    if (late.nextLinks !== null && late.nextLinks !== f.envelopeSha256) return { kind: 'reject', code: 'broken-link', reason: `the indexed seq ${f.seq + 1n} does not link late seq ${f.seq}: not the chunk that was missing` };
    return { kind: 'index', late: true };
  }
  if (f.seq === headSeq + 1n) {
    if (f.prevEnvelopeSha256 !== head.head_envelope_sha256) {
      return { kind: 'reject', code: 'broken-link', reason: `seq ${f.seq} links ${String(f.prevEnvelopeSha256).slice(0, 16)}..., the indexed seq ${headSeq} is ${head.head_envelope_sha256.slice(0, 16)}...` };
    }
    return { kind: 'index' };
  }
  if (retained) return { kind: 'index', gap: { from: headSeq + 1n, through: f.seq - 1n, kind: 'retention' } };
  if (!waitedEnough) return { kind: 'defer', reason: `seq ${f.seq} arrived before seq ${headSeq + 1n}` };
  return { kind: 'index', gap: { from: headSeq + 1n, through: f.seq - 1n } };
}

export class Ingester {
  readonly #o: IngestOptions;
  readonly #keys: VerifyKey[];
  readonly #dbs: Client[] = [];
  #nc: NatsConnection | undefined;
  #bucket: ObjectStore | undefined;
  #jsm: JetStreamManager | undefined;
  readonly stats: IngestStats = { indexed: 0, duplicates: 0, rejected: 0, deferred: 0, records: 0 };
  /** chunks deferred lately, so that a chunk is not indexed past a lower one about to be redelivered */
  readonly #deferred = new DeferredChunks();

  constructor(o: IngestOptions) {
    checkNoPassword(o.db, 'db', 'put the password in PGPASSWORD or ~/.pgpass (or use peer/cert authentication)');
    this.#o = o;
    this.#keys = loadTrust(o.trustDir);
  }

  async run(): Promise<IngestStats> {
    const { signal } = this.#o;
    const sessions = Math.max(1, this.#o.dbSessions ?? 1);
    for (let i = 0; i < sessions; i++) this.#dbs.push(await this.#connectDb());
    this.#nc = await connectNats(this.#o.nats, signal, this.#o.log);
    try {
      const topo = await ensureTopology(this.#nc, this.#o.replicas ?? clusterSize(this.#nc), this.#o.ackWaitMs);
      this.#bucket = topo.bucket;
      this.#jsm = topo.jsm;
      const js = jetstream(this.#nc, { timeout: 10_000 });
      const consumer = await js.consumers.get(ENVELOPE_STREAM, INGEST_CONSUMER);
      await this.#pipeline(consumer);
    } finally {
      if (this.#bucket !== undefined) await this.#flushDeletes();
      await Promise.all(this.#deletes);
      await this.#idDb?.end().catch(() => undefined);
      await closeNats(this.#nc);
      await Promise.all(this.#dbs.map((db) => db.end().catch(() => undefined)));
    }
    return this.stats;
  }

  async #connectDb(): Promise<Client> {
    for (let attempt = 0; ; attempt++) {
      const db = new Client({ connectionString: this.#o.db, application_name: 'rtev-ingest' });
      db.on('error', () => undefined);
      try {
        await db.connect();
        await checkSchema(db);
        return db;
      } catch (err) {
        await db.end().catch(() => undefined);
        if (err instanceof UsageError || attempt >= 20 || this.#o.signal?.aborted) throw err;
        this.#o.log(`ingest: database not reachable (${(err as Error).message}); retrying`);
        await sleep(backoffMs(attempt), this.#o.signal);
      }
    }
  }

  /**
   * #pipeline indexes the stream as a pipeline without batch barriers: a fetch loop keeps up to
   * `maxInFlight` envelopes fetched and not finished; each database session takes the oldest
   * fetched chunk of a host no other session has in hand (so a host's chunks go in stream
   * order, one at a time; the host's row lock orders them against other ingest processes); and
   * the next chunks in line are prepared ahead while the sessions are in the database: their
   * envelope checked, body read, its digest checked and their COPY rows built (#prepare),
   * bounded by count and bytes. Nothing of a prepared chunk is used unless the chain rules
   * decide to index it (#handle), in the same order of checks as without preparation.
   */
  async #pipeline(consumer: Consumer): Promise<void> {
    const { signal, trace } = this.#o;
    const sessions = this.#dbs.length;
    const maxInFlight = 8 * sessions;
    const fetchBatch = Math.max(1, maxInFlight >> 2);
    const inbox: Pending[] = [];
    const active = new Set<string>();
    let inFlight = 0;
    let done = false;
    let waiters: (() => void)[] = [];
    const wake = (): void => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    };
    const wait = (): Promise<void> => new Promise((r) => waiters.push(r));
    signal?.addEventListener('abort', wake, { once: true });
    const ahead = (): void => {
      let preparing = 0;
      for (const p of inbox) {
        if (p.prep !== undefined) preparing++;
        else if (preparing < this.#prepAhead && (this.#aheadBytes < PREP_BYTES || preparing === 0)) {
          p.prep = this.#prepare(p).catch((): Prepared => ({}));
          preparing++;
        }
        if (preparing >= this.#prepAhead) break;
      }
    };
    const fetcher = async (): Promise<void> => {
      for (let failures = 0; !signal?.aborted;) {
        // fetched in batches of a quarter of the window or more (not one message per pull
        // request as each chunk finishes), unless nothing is in hand
        if (inFlight > 0 && inFlight > maxInFlight - fetchBatch) {
          await wait();
          continue;
        }
        try {
          trace?.('fetch', 0, -1);
          const msgs = await withTimeout(consumer.fetch({ max_messages: maxInFlight - inFlight, expires: 1000 }), 15_000, 'fetch');
          let n = 0;
          for await (const m of msgs) {
            n++;
            trace?.('got', m.seq, -1);
            inbox.push({ m, host: hostOfSubject(m.subject) ?? '?', v: undefined, prep: undefined, bytes: 0, touched: performance.now() });
            inFlight++;
            ahead();
            wake();
          }
          failures = 0;
          if (n === 0 && this.#o.once && inFlight === 0) {
            const info = await consumer.info();
            if (info.num_pending === 0 && info.num_ack_pending === 0) break;
          }
        } catch (err) {
          if (signal?.aborted) break;
          this.#o.log(`ingest: ${(err as Error).message}; retrying`);
          await sleep(backoffMs(failures++), signal);
        }
      }
      done = true;
      wake();
    };
    const session = async (slot: number): Promise<void> => {
      for (;;) {
        if (signal?.aborted) return;
        const i = inbox.findIndex((p) => !active.has(p.m.subject));
        if (i < 0) {
          if (done && inbox.length === 0) return;
          if (done && active.size === 0) return;
          await wait();
          continue;
        }
        const p = inbox.splice(i, 1)[0]!;
        active.add(p.m.subject);
        ahead();
        try {
          await this.#one(slot, p);
        } finally {
          if (p.prep !== undefined) await p.prep;
          this.#aheadBytes -= p.bytes;
          active.delete(p.m.subject);
          inFlight--;
          ahead();
          wake();
        }
      }
    };
    await Promise.all([fetcher(), ...this.#dbs.map((_, slot) => session(slot))]);
    // stopped: the chunks fetched and not started go back at once (to another ingest process)
    for (const p of inbox.splice(0)) p.m.nak();
    await Promise.all([...this.#acks]);
  }

  /** how many fetched chunks are prepared ahead of the sessions (sessions + 2) */
  get #prepAhead(): number {
    return this.#dbs.length + 2;
  }

  /** body bytes of chunks prepared ahead and not finished */
  #aheadBytes = 0;

  /**
   * #prepare checks a fetched chunk's envelope, reads its body, checks the digest and builds
   * its COPY rows, ahead of its session. A failure leaves the step to #handle (undefined parts).
   */
  async #prepare(p: Pending): Promise<Prepared> {
    const m = p.m;
    if (m.headers?.get(HDR_KIND) === 'checkpoint') return {};
    const v = (p.v ??= checkEnvelope(m.data, p.host, this.#keys));
    if (!v.ok) return {};
    const f = v.facts;
    const expected = objectName(p.host, f.chainId, Number(f.seq));
    if ((m.headers?.get(HDR_OBJECT) ?? '') !== expected) return {};
    this.#o.trace?.('body', m.seq, -1);
    const got = await this.#readBody(expected, m, f).catch(() => undefined);
    this.#o.trace?.('body-end', m.seq, -1);
    if (got === undefined) return {};
    if (got.body === undefined) return { got };
    p.bytes = got.body.length;
    this.#aheadBytes += p.bytes;
    this.#o.trace?.('rows-ahead', m.seq, -1);
    try {
      const chunkId = await this.#takeId().catch(() => undefined);
      const digestBad = got.digestOk === true ? undefined : checkDigest(got.body, f);
      if (digestBad !== undefined) return { got, digestBad };
      if (chunkId === undefined) return { got, digestOk: true };
      return { got, digestOk: true, rows: this.#buildHere(got.body, v, chunkId) };
    } finally {
      this.#o.trace?.('rows-ahead-end', m.seq, -1);
    }
  }

  /** chunk ids taken from the sequence ahead (nextval is not transactional; an id not used is given back) */
  readonly #ids: bigint[] = [];
  #idsComing: Promise<void> | undefined;

  async #takeId(): Promise<bigint> {
    while (this.#ids.length === 0) {
      this.#idsComing ??= (async () => {
        try {
          this.#idDb ??= await this.#connectDb();
          const r = await this.#idDb.query<{ id: string }>(`SELECT nextval('chunks_chunk_id_seq') AS id FROM generate_series(1, 32)`);
          this.#ids.push(...r.rows.map((x) => BigInt(x.id)));
        } catch (err) {
          await this.#idDb?.end().catch(() => undefined);
          this.#idDb = undefined;
          throw err;
        } finally {
          this.#idsComing = undefined;
        }
      })();
      await this.#idsComing;
    }
    return this.#ids.shift()!;
  }


  /** the database session chunk ids are taken on (outside the sessions' transactions) */
  #idDb: Client | undefined;

  /** #buildHere builds a chunk's COPY rows (binary, else text) on this thread and checks them against the signed summary */
  #buildHere(body: Buffer, v: Extract<EnvelopeVerdict, { ok: true }>, chunkId: bigint): Built {
    const f = v.facts;
    const hasAttribution = Object.prototype.hasOwnProperty.call(v.predicate.raw, 'attribution');
    // the typed columns are built here and go straight into records with a binary COPY
    // (src/fleet/rows-binary.ts); a body that path does not take goes as text COPY rows
    // (encodeRows: the same columns, and the diagnosis of lines that are not records)
    const bin = encodeRowsBinary(body, f, chunkId, hasAttribution);
    const rows = bin === undefined ? encodeRows(body, f, chunkId) : undefined;
    return {
      chunkId, by: bin === undefined ? 'text' : 'binary', pieces: bin?.pieces ?? rows!.pieces, parsed: bin?.parsed ?? 0, ...(bin !== undefined ? { bin } : {}),
      bad: checkContent(bin?.content ?? rows!.content, v.predicate),
    };
  }

  /**
   * the object, if stored and not over the limit (size tells which); a read error throws. The
   * parts are read by direct gets of the bucket's stream (one request per part, no consumer per
   * object and no second SHA-256 of the body: the caller checks it against the signed digest).
   * With the object's nuid from ship's header, the parts are read straight away, exactly the
   * signed size of them (no info request); a hint that does not give that (stale, wrong, an
   * object of another size) falls back to the object's info. An object the direct read cannot
   * take whole (a link, parts missing) goes through the Object Store client.
   */
  async #readBody(name: string, m: JsMsg, f: ChunkFacts): Promise<Got> {
    const hint = m.headers?.get(HDR_OBJECT_NUID) ?? '';
    if (hint !== '' && f.bytes > 0n && f.bytes <= BigInt(MAX_CHUNK_BYTES)) {
      const size = Number(f.bytes);
      const direct = await this.#readParts(hint, size, MAX_HINTED_PARTS).catch(() => undefined);
      // taken only if it is the signed body: anything else is for the object's info to decide
      if (direct !== undefined && checkDigest(direct, f) === undefined) return { name, body: direct, size, digestOk: true };
    }
    const info = await withTimeout(this.#bucket!.info(name), 15_000, 'object store info');
    if (info === null || info.deleted) return { name, body: undefined, size: 0 };
    if (info.size > MAX_CHUNK_BYTES) return { name, body: undefined, size: info.size };
    // a direct read that fails (a replica behind, a server or bucket without direct gets) is not final: the client's read follows
    const direct = info.options?.link === undefined ? await this.#readParts(info.nuid, info.size, info.chunks).catch(() => undefined) : undefined;
    if (direct !== undefined) return { name, body: direct, size: info.size };
    const blob = await withTimeout(this.#bucket!.getBlob(name), 60_000, 'object store read');
    return { name, body: blob === null ? undefined : Buffer.from(blob.buffer, blob.byteOffset, blob.length), size: info.size };
  }

  /** the parts of object `nuid` in stream order, exactly `size` bytes in at most `chunks` parts, or undefined */
  async #readParts(nuid: string, size: number, chunks: number): Promise<Buffer | undefined> {
    if (size === 0) return Buffer.alloc(0);
    if (!/^[A-Za-z0-9]{1,64}$/.test(nuid) || !Number.isSafeInteger(chunks) || chunks < 1) return undefined;
    const subject = `$O.${CHUNK_BUCKET}.C.${nuid}`;
    const parts: Uint8Array[] = [];
    let total = 0;
    let seq = 1;
    for (let i = 0; i < chunks && total < size; i++) {
      const m = await withTimeout(this.#jsm!.direct.getMessage(`OBJ_${CHUNK_BUCKET}`, { seq, next_by_subj: subject }), 15_000, 'object store read');
      if (m === null) return undefined;
      total += m.data.length;
      if (total > size) return undefined;
      parts.push(m.data);
      seq = m.seq + 1;
    }
    if (total !== size) return undefined;
    const one = parts[0]!;
    return parts.length === 1 ? Buffer.from(one.buffer, one.byteOffset, one.byteLength) : Buffer.concat(parts, total);
  }

  async #one(slot: number, p: Pending): Promise<void> {
    const m = p.m;
    let result: IngestResult;
    let records = 0;
    this.#o.trace?.('start', m.seq, slot);
    try {
      [result, records] = await this.#handle(this.#dbs[slot]!, p);
    } catch (err) {
      result = 'error';
      this.#o.log(`ingest: ${m.subject} #${m.seq}: ${(err as Error).message}; will retry`);
      await this.#dbs[slot]!.query('ROLLBACK').catch(() => undefined);
      m.nak(1000);
      if ((err as { code?: string }).code === undefined) await this.#reconnectDbIfBroken(slot);
    }
    this.#o.trace?.(`end-${result}`, m.seq, slot);
    this.#o.hooks?.chunk?.(result, records);
  }

  async #reconnectDbIfBroken(slot: number): Promise<void> {
    try {
      await this.#dbs[slot]!.query('SELECT 1');
    } catch {
      await this.#dbs[slot]!.end().catch(() => undefined);
      this.#dbs[slot] = await this.#connectDb();
    }
  }

  async #handle(db: Client, p: Pending): Promise<[IngestResult, number]> {
    const { m, host } = p;
    if (m.headers?.get(HDR_KIND) === 'checkpoint') return this.#checkpoint(db, m, host);
    const v = (p.v ??= checkEnvelope(m.data, host, this.#keys));
    if (!v.ok) {
      await this.#reject(db, m, host, v.code, v.reason, v.partial);
      return ['rejected', 0];
    }
    const f = v.facts;
    // what was prepared ahead is waited for before the transaction, so that the host's row is
    // not locked while its body is read or its rows are built
    this.#o.trace?.('wait-prep', m.seq, -1);
    const prepared = p.prep !== undefined ? await p.prep : undefined;
    this.#o.trace?.('begin', m.seq, -1);
    // the host's row locked, then: indexed already? (one round trip: BEGIN and both reads as one
    // simple-protocol batch; the two values are a host id token and a hex digest this process made)
    let seen: { rowCount: number | null; rows: { host_id: string; stream_seq: string }[] };
    let headRows: { rows: Head[] };
    if (isHostId(host) && /^[0-9a-f]{64}$/.test(f.envelopeSha256)) {
      const r = await db.query(`BEGIN; SELECT chain_id, head_seq, head_envelope_sha256 FROM hosts WHERE host_id = '${host}' FOR UPDATE;
        SELECT host_id, stream_seq FROM chunks WHERE envelope_sha256 = '${f.envelopeSha256}'`) as unknown as [unknown, { rows: Head[] }, { rowCount: number | null; rows: { host_id: string; stream_seq: string }[] }];
      [, headRows, seen] = r;
    } else {
      await db.query('BEGIN');
      headRows = await db.query<Head>('SELECT chain_id, head_seq, head_envelope_sha256 FROM hosts WHERE host_id = $1 FOR UPDATE', [host]);
      seen = await db.query<{ host_id: string; stream_seq: string }>('SELECT host_id, stream_seq FROM chunks WHERE envelope_sha256 = $1', [f.envelopeSha256]);
    }
    if (seen.rowCount !== 0) {
      await db.query('COMMIT');
      if (seen.rows[0]!.stream_seq === String(m.seq)) {
        await this.#ack(m, host, f);
        this.stats.duplicates++;
        return ['duplicate', 0];
      }
      await this.#reject(db, m, host, 'replay', `seq ${f.seq} of chain ${f.chainId} was indexed from message #${seen.rows[0]!.stream_seq} and was published again as #${m.seq}`, f);
      return ['rejected', 0];
    }
    let head: Head | undefined = headRows.rows[0];
    // a new chain an operator accepted (rtev fleet accept-chain) starts over as a first chain
    let replaces: Head | undefined;
    if (head !== undefined && f.chainId !== head.chain_id) {
      const accepted = await db.query('SELECT 1 FROM chain_accepts WHERE host_id = $1 AND old_chain_id = $2 AND new_chain_id = $3', [host, head.chain_id, f.chainId]);
      if (accepted.rowCount !== 0) [replaces, head] = [head, undefined];
    }
    const ageMs = Date.now() - Number(BigInt(m.info.timestampNanos) / 1_000_000n);
    const late = head !== undefined && f.chainId === head.chain_id && f.seq <= BigInt(head.head_seq) ? await this.#lateSlot(db, f) : undefined;
    // the chunks this one skips (from the head, or from seq 1): named by a signed checkpoint? (src/fleet/gaps.ts)
    const skipFrom = head === undefined ? 1n : BigInt(head.head_seq) + 1n;
    const cover = (head === undefined || f.chainId === head.chain_id) && f.seq > skipFrom ? await skippedCover(db, f, skipFrom) : undefined;
    if (cover?.contradicted != null) {
      await db.query('ROLLBACK');
      await this.#reject(db, m, host, 'fork', `seq ${f.seq} is not the chunk the host's signed retention checkpoint ${cover.contradicted.slice(0, 16)}... vouches for: two signed histories`, f);
      return ['rejected', 0];
    }
    let d = decide(f, head, ageMs >= this.#o.gapWaitMs && m.info.deliveryCount >= 2, late, cover?.covered === true);
    // not past a lower chunk of the chain that is waiting for its redelivery here (src/fleet/gaps.ts)
    const lower = d.kind === 'index' && d.gap !== undefined && cover?.covered !== true ? this.#deferred.lowerWaiting(f, d.gap.from) : undefined;
    if (lower !== undefined) d = { kind: 'defer', reason: `seq ${lower} is waiting for its redelivery` };
    if (d.kind === 'defer') this.#deferred.note(f);
    else this.#deferred.forget(f);
    if (d.kind === 'defer') {
      await db.query('ROLLBACK');
      m.nak(Math.min(1000, Math.max(100, this.#o.gapWaitMs / 4)));
      this.stats.deferred++;
      return ['deferred', 0];
    }
    if (d.kind === 'reject') {
      await db.query('ROLLBACK');
      await this.#reject(db, m, host, d.code, d.reason, f);
      return ['rejected', 0];
    }
    if (d.kind === 'duplicate') throw new Error('unreachable');
    // the body: from the object store, bounded, checked against the signed digest
    const expected = objectName(host, f.chainId, Number(f.seq));
    const named = m.headers?.get(HDR_OBJECT) ?? '';
    let body: Buffer | undefined;
    let pre: Prepared | undefined;
    let gotDigestOk = false;
    if (named === expected) {
      this.#stillWorking(p);
      this.#o.trace?.('wait-body', m.seq, -1);
      // prepared ahead (#pipeline) or now; a read that failed ahead is tried again here
      pre = prepared?.got !== undefined ? prepared : undefined;
      const got = pre?.got ?? await this.#readBody(expected, m, f);
      gotDigestOk = got.digestOk === true;
      if (got.size > MAX_CHUNK_BYTES) {
        await db.query('ROLLBACK');
        await this.#reject(db, m, host, 'too-large', `body of ${got.size} bytes`, f);
        return ['rejected', 0];
      }
      body = got.body;
    }
    if (body === undefined && m.info.deliveryCount < 3) {
      // the store may still be recovering (a restarted cluster): try again before rejecting
      await db.query('ROLLBACK');
      m.nak(1000);
      this.stats.deferred++;
      return ['deferred', 0];
    }
    const bad = body === undefined
      ? { code: 'missing-body' as const, reason: named === '' ? 'shipped without a body (chunk file missing on the host?)' : `no object ${named.slice(0, 200)} in the store` }
      : pre?.digestOk === true || gotDigestOk ? undefined : pre?.digestBad ?? checkDigest(body, f);
    if (bad !== undefined) {
      await db.query('ROLLBACK');
      await this.#reject(db, m, host, bad.code, bad.reason, f);
      return ['rejected', 0];
    }
    this.#o.trace?.('digest-ok', m.seq, -1);
    this.#stillWorking(p);
    // the rows built ahead, or now (with a chunk id taken in this transaction)
    this.#o.trace?.('rows', m.seq, -1);
    const built = pre?.rows ?? this.#buildHere(body!, v, BigInt((await db.query<{ id: string }>(`SELECT nextval('chunks_chunk_id_seq') AS id`)).rows[0]!.id));
    const chunkId = built.chunkId;
    this.#o.hooks?.rowsBuiltBy?.(built.by);
    if (built.parsed > 0) this.#o.hooks?.linesParsed?.(built.parsed);
    if (built.bad !== undefined) {
      await db.query('ROLLBACK');
      await this.#reject(db, m, host, built.bad.code, built.bad.reason, f);
      return ['rejected', 0];
    }
    this.#stillWorking(p);
    this.#o.trace?.('copy', m.seq, -1);
    // a value the database refuses (a data error: a NUL in a string, a number out of range) is
    // a property of the signed body: redelivering it would fail the same way forever
    try {
      await copyPieces(db, built.by === 'binary' ? COPY_RECORDS_BINARY : COPY_RECORDS, built.pieces);
      // the COPY is done: its buffers serve the next chunk's rows
      if (built.bin !== undefined) releaseRows(built.bin);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (typeof code !== 'string' || !/^2[23]/.test(code)) throw err;
      await db.query('ROLLBACK');
      await this.#reject(db, m, host, 'content-mismatch', `the database refused its records: ${(err as Error).message}`, f);
      return ['rejected', 0];
    }
    this.#o.trace?.('copy-end', m.seq, -1);
    const attr = attributionRows(chunkId, v.predicate.raw['attribution']);
    await copyPieces(db, COPY_CONTAINERS, attr.containers);
    await copyPieces(db, COPY_IMAGES, attr.images);
    await copyPieces(db, COPY_ATTRIBUTION, attr.files);
    await this.#insertChunk(db, m, f, chunkId, body!, head, d.gap, d.late === true, replaces !== undefined, cover);
    this.#o.trace?.('commit', m.seq, -1);
    await db.query('COMMIT');
    this.#o.trace?.('ack', m.seq, -1);
    // acknowledged after the commit, without holding up the session's next chunk
    this.#ackLater(m, host, f);
    this.stats.indexed++;
    this.stats.records += Number(f.count);
    this.#o.hooks?.lagSeconds?.(Math.max(0, Date.now() / 1000 - Number(f.sealedWallNs / 1_000_000n) / 1000));
    return ['indexed', Number(f.count)];
  }

  /**
   * #stillWorking tells the server a chunk is still in hand (a working ack: its ack wait starts
   * again) once it has been held for a third of the ack wait since it was fetched or last told:
   * a chunk done in well under that (the usual 0.1-2 s against 30 s) costs no message.
   */
  #stillWorking(p: Pending): void {
    const now = performance.now();
    if (now - p.touched < this.#o.ackWaitMs / 3) return;
    p.m.working();
    p.touched = now;
  }

  async #lateSlot(db: Client, f: ChunkFacts): Promise<LateSlot> {
    const r = await db.query<{ open: boolean; prev: string | null; next: string | null }>(`SELECT
        ${LATE_OPEN_SQL} AS open,
        (SELECT envelope_sha256 FROM chunks WHERE host_id = $1 AND chain_id = $2 AND seq = $3 - 1) AS prev,
        (SELECT prev_envelope_sha256 FROM chunks WHERE host_id = $1 AND chain_id = $2 AND seq = $3 + 1) AS next`, [f.hostId, f.chainId, String(f.seq)]);
    const row = r.rows[0]!;
    return { open: row.open, prevEnvelope: row.prev, nextLinks: row.next };
  }

  /** #insertChunk writes the chunk's rows and moves the host's head (the chunk's own rows in one round trip: src/fleet/chunk-rows.ts) */
  async #insertChunk(db: Client, m: JsMsg, f: ChunkFacts, chunkId: bigint, _body: Buffer, head: Head | undefined, gap: { from: bigint; through: bigint } | undefined, late = false, replacing = false, cover?: SkippedCover): Promise<void> {
    const publishedMs = Number(BigInt(m.info.timestampNanos) / 1_000_000n);
    // the rare rows first (gaps), then the chunk's rows and its head as one batch of literals
    const batch = chunkBatch({ f, chunkId, streamSeq: m.seq, envelope: Buffer.from(m.data).toString('utf8'), publishedMs, host: late ? 'late' : head === undefined ? (replacing ? 'replace' : 'new') : 'head' });
    if (batch !== undefined) {
      if (late) await closeByChunk(db, f);
      await this.#gapRows(db, f, gap, cover);
      await db.query(batch);
      return;
    }
    const s = (v: bigint | null): string | null => (v === null ? null : String(v));
    await db.query(
      `INSERT INTO chunks (chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, prev_envelope_sha256, run_id, run_chunk_index, final,
        hostname, machine_id, boot_id, opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, min_ts_ns, max_ts_ns, count, bytes,
        lost, complete, probes, ledger_json, function_calls_json, restart_json, keyid, stream_seq, envelope, published_at)
       VALUES ($30,$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,to_timestamp($31::double precision / 1000))`,
      [f.hostId, f.chainId, s(f.seq), f.chunkSha256, f.envelopeSha256, f.prevEnvelopeSha256, f.runId, s(f.runChunkIndex), f.final,
        f.hostname, f.machineId, f.bootId, s(f.openedWallNs), s(f.openedMonoNs), s(f.sealedWallNs), s(f.sealedMonoNs), s(f.minTs), s(f.maxTs),
        s(f.count), s(f.bytes), s(f.lost), f.complete, f.probes.map((p) => p.probe).join(','), f.ledgerJson, f.functionCallsJson, f.restartJson,
        f.keyid, m.seq, Buffer.from(m.data).toString('utf8'), String(chunkId), String(Number(BigInt(m.info.timestampNanos) / 1_000_000n))],
    );
    if (f.probes.length > 0) {
      const vals: string[] = [];
      const params: unknown[] = [];
      for (const p of f.probes) {
        const v = p.values;
        const row = [f.hostId, f.chainId, s(f.seq), p.probe, v['kernel.submitted'], v['kernel.filtered'], v['kernel.ring_full'], v['kernel.skipped'],
          v['kernel.truncated'], v['user.received'], v['user.written'], v['user.filtered'], v['user.rejected'], v['user.shed'], v.in_chunk,
          v.in_flight_start, v.in_flight_end, v.lost].map((x) => (typeof x === 'bigint' ? String(x) : x));
        vals.push(`(${row.map((_, i) => `$${params.length + i + 1}`).join(',')})`);
        params.push(...row);
      }
      await db.query(`INSERT INTO chunk_ledger (host_id, chain_id, seq, probe, submitted, k_filtered, ring_full, skipped, truncated, received,
        written, u_filtered, rejected, shed, in_chunk, in_flight_start, in_flight_end, lost) VALUES ${vals.join(',')}`, params);
    }
    if (late) {
      await db.query(`UPDATE hosts SET last_indexed_at = now(), chunks = chunks + 1, records = records + $2, lost = lost + $3 WHERE host_id = $1`, [f.hostId, s(f.count), s(f.lost)]);
      await closeByChunk(db, f);
    } else if (head === undefined && replacing) {
      // the first chunk of an accepted new chain: the head moves to it, the host's totals go on
      await db.query(`UPDATE hosts SET hostname = $2, chain_id = $3, head_seq = $4, head_envelope_sha256 = $5, head_sealed_wall_ns = $6, last_indexed_at = now(),
        chunks = chunks + 1, records = records + $7, lost = lost + $8 WHERE host_id = $1`,
      [f.hostId, f.hostname, f.chainId, s(f.seq), f.envelopeSha256, s(f.sealedWallNs), s(f.count), s(f.lost)]);
    } else if (head === undefined) {
      await db.query(`INSERT INTO hosts (host_id, hostname, machine_id, chain_id, head_seq, head_envelope_sha256, head_sealed_wall_ns, chunks, records, lost)
        VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8,$9)`, [f.hostId, f.hostname, f.machineId, f.chainId, s(f.seq), f.envelopeSha256, s(f.sealedWallNs), s(f.count), s(f.lost)]);
    } else {
      await db.query(`UPDATE hosts SET hostname = $2, head_seq = $3, head_envelope_sha256 = $4, head_sealed_wall_ns = $5, last_indexed_at = now(),
        chunks = chunks + 1, records = records + $6, lost = lost + $7 WHERE host_id = $1`,
      [f.hostId, f.hostname, s(f.seq), f.envelopeSha256, s(f.sealedWallNs), s(f.count), s(f.lost)]);
    }
    await db.query(`INSERT INTO host_keys (host_id, keyid, chunks) VALUES ($1, $2, 1)
      ON CONFLICT (host_id, keyid) DO UPDATE SET last_seen = now(), chunks = host_keys.chunks + 1`, [f.hostId, f.keyid]);
    await this.#gapRows(db, f, gap, cover);
  }

  /** the gap rows of an indexed chunk: the seqs it skipped, an unclean restart it reports */
  async #gapRows(db: Client, f: ChunkFacts, gap: { from: bigint; through: bigint } | undefined, cover: SkippedCover | undefined): Promise<void> {
    const s = (v: bigint | null): string | null => (v === null ? null : String(v));
    // open gap rows for the seqs this chunk skipped; the ones a signed checkpoint names are checkpointed (src/fleet/gaps.ts)
    if (gap !== undefined) await recordSkipped(db, f, gap.from, gap.through, cover?.ranges ?? [], cover?.vouched === true);
    const r = f.restart;
    if (r !== null && (r['previous_run_closed'] !== true || (Array.isArray(r['unsealed']) && r['unsealed'].length > 0))) {
      await db.query(`INSERT INTO gaps (host_id, chain_id, kind, from_seq, through_seq, detail) VALUES ($1,$2,'unclean-restart',$3,$3,$4) ON CONFLICT DO NOTHING`,
        [f.hostId, f.chainId, s(f.seq), `the collector restarted after an unclean stop of run ${String(r['previous_run_id']).slice(0, 64)} (after seq ${String(r['previous_seq'])}); records between that seal and the stop are missing${f.restartJson !== null ? `; restart record ${f.restartJson.slice(0, 500)}` : ''}`]);
    }
  }

  /**
   * A retention checkpoint: verified (signature, shape), checked against the host's chain and
   * recorded; the open gaps it names as removed before shipping become checkpointed (src/fleet/gaps.ts).
   */
  async #checkpoint(db: Client, m: JsMsg, host: string): Promise<[IngestResult, number]> {
    const v = checkCheckpoint(m.data, this.#keys);
    if (!v.ok) {
      await this.#reject(db, m, host, v.code, v.reason, v.partial);
      return ['rejected', 0];
    }
    const c = v.facts;
    await db.query('BEGIN');
    const out = await recordCheckpoint(db, host, c, m.seq, Buffer.from(m.data).toString('utf8'));
    if (!out.ok) {
      await db.query('ROLLBACK');
      // (no seq: the rejection must not delete the body of the chunk the checkpoint names)
      await this.#reject(db, m, host, out.code, out.reason, { envelopeSha256: c.envelopeSha256, keyid: c.keyid, chainId: c.chainId });
      return ['rejected', 0];
    }
    await db.query('COMMIT');
    await withTimeout(m.ackAck(), 15_000, 'ack');
    this.#o.log(`ingest: ${m.subject.slice(0, 80)} #${m.seq}: retention checkpoint of chain ${c.chainId}: chunks before seq ${c.firstSeq} removed${c.unshipped !== null ? `, seq ${c.unshipped.from}..${c.unshipped.through} never shipped (${out.closed} open gap(s) checkpointed)` : ''}`);
    return ['checkpoint', 0];
  }

  async #reject(db: Client, m: JsMsg, host: string, code: RejectCode, reason: string, f: Partial<ChunkFacts>): Promise<void> {
    await db.query(`INSERT INTO rejections (host_id, subject, stream_seq, code, reason, chain_id, seq, keyid, envelope_sha256)
      VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) ON CONFLICT DO NOTHING`,
    [host, m.subject.slice(0, 200), m.seq, code, reason.slice(0, 1000), f.chainId ?? null, f.seq === undefined ? null : String(f.seq), f.keyid ?? null, f.envelopeSha256 ?? null]);
    this.#o.log(`ingest: rejected ${m.subject.slice(0, 80)} #${m.seq}${f.seq !== undefined ? ` seq ${f.seq}` : ''}: ${code}: ${reason.slice(0, 300)}`);
    this.stats.rejected++;
    await withTimeout(m.ackAck(), 15_000, 'ack').catch(() => m.ack());
    if (f.chainId !== undefined && f.seq !== undefined && host !== '?') await withTimeout(this.#bucket!.delete(objectName(host, f.chainId, Number(f.seq))), 15_000, 'object delete').catch(() => undefined);
  }

  async #ack(m: JsMsg, host: string, f: ChunkFacts): Promise<void> {
    await withTimeout(m.ackAck(), 15_000, 'ack');
    // the body is in PostgreSQL now; the object store only buffers. The delete does not hold
    // up the next chunk: deletes go out together (#flushDeletes), a few chunks' at a time
    this.#toDelete.push(objectName(host, f.chainId, Number(f.seq)));
    if (this.#toDelete.length >= DELETE_BATCH) await this.#flushDeletes();
    else this.#deleteTimer ??= setTimeout(() => void this.#flushDeletes(), DELETE_DELAY_MS);
  }

  readonly #deletes = new Set<Promise<void>>();
  /** bodies of acknowledged chunks not deleted yet (#flushDeletes) */
  #toDelete: string[] = [];
  #deleteTimer: NodeJS.Timeout | undefined;

  /**
   * #flushDeletes starts the deletes of the bodies queued, all in the same tick, so that each
   * step of them (the object's info, its delete marker, the purge of its parts: one request
   * each) goes to the server in one write for all, not in one per chunk. At most 32 deletes are
   * outstanding; run() flushes the queue and waits for them before it returns.
   */
  async #flushDeletes(): Promise<void> {
    clearTimeout(this.#deleteTimer);
    this.#deleteTimer = undefined;
    const names = this.#toDelete;
    this.#toDelete = [];
    while (this.#deletes.size > 0 && this.#deletes.size + names.length > 32) await Promise.race(this.#deletes);
    for (const name of names) {
      const done: Promise<void> = withTimeout(this.#bucket!.delete(name), 15_000, 'object delete')
        .then(() => undefined, () => undefined).finally(() => this.#deletes.delete(done));
      this.#deletes.add(done);
    }
  }

  /** acknowledgements of committed chunks still in flight (at most 64; #pipeline waits for them) */
  readonly #acks = new Set<Promise<void>>();

  #ackLater(m: JsMsg, host: string, f: ChunkFacts): void {
    const done: Promise<void> = (async () => {
      if (this.#acks.size >= 64) await Promise.race(this.#acks);
      try {
        await this.#ack(m, host, f);
      } catch (err) {
        // committed: a redelivery finds it indexed from this message and only acknowledges
        this.#o.log(`ingest: ${m.subject.slice(0, 80)} #${m.seq}: ${(err as Error).message} (committed; a redelivery is acknowledged as a duplicate)`);
      }
    })().finally(() => this.#acks.delete(done));
    this.#acks.add(done);
  }
}

/** a fetched chunk on its way through #pipeline */
interface Pending {
  m: JsMsg;
  host: string;
  /** the envelope verdict, computed once (#prepare or #handle) */
  v: EnvelopeVerdict | undefined;
  /** its body read, digest checked and rows built ahead (#prepare) */
  prep: Promise<Prepared> | undefined;
  /** body bytes held by the preparation */
  bytes: number;
  /** when it was fetched, or last told to the server as still in hand (performance.now(), #stillWorking) */
  touched: number;
}

/** a body read from the bucket (undefined: not there) and its size */
interface Got {
  name: string;
  body: Buffer | undefined;
  size: number;
  /** checked against the signed digest already (the hinted read) */
  digestOk?: boolean;
}

/** the most parts read for a body by ship's nuid hint (ship writes parts of up to 4 MiB; more goes the info way) */
const MAX_HINTED_PARTS = 1024;

interface Prepared {
  got?: Got;
  digestOk?: boolean;
  digestBad?: { code: RejectCode; reason: string };
  rows?: Built;
}

/** a chunk's COPY rows and the check of what they counted against the signed summary */
interface Built {
  chunkId: bigint;
  by: 'binary' | 'text';
  pieces: Buffer[];
  parsed: number;
  bad: { code: RejectCode; reason: string } | undefined;
  /** the binary rows built on this thread, whose buffers go back to the row writer after their COPY (releaseRows) */
  bin?: BinaryRows;
}

/** how many acknowledged chunks' bodies are deleted together, and how long the first of them waits at most */
const DELETE_BATCH = 8;
const DELETE_DELAY_MS = 250;

/** bytes of bodies prepared ahead beyond which no further chunk is prepared (one always is) */
const PREP_BYTES = 48 * 1024 * 1024;

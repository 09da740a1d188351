import { connect } from '@nats-io/transport-node';
import { credsAuthenticator, nkeyAuthenticator, type Authenticator, type NatsConnection } from '@nats-io/nats-core';
import type * as NatsInternal from '@nats-io/nats-core/lib/internal_mod';
import { AckPolicy, DiscardPolicy, jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { Objm, setSha256Backend, type ObjectStore } from '@nats-io/obj';
import { UsageError } from '../errors';
import { CHUNK_BUCKET, DUPLICATE_WINDOW_NS, ENVELOPE_MAX_AGE_NS, ENVELOPE_STREAM, ENVELOPE_SUBJECT_PREFIX, INGEST_CONSUMER } from './names';
import { checkNoPassword, readSecretFile } from './secrets';

/**
 * The NATS side of the fleet: connecting (with optional credentials, and reconnects that
 * back off), and the JetStream topology (envelope stream, chunk bucket, ingest consumer).
 * Only the official @nats-io clients are used.
 */

export interface NatsOptions {
  /** comma-separated server URLs as given to --nats */
  servers: string;
  /** --nats-creds: a NATS user credentials file (JWT + seed) or an nkey seed file */
  credsFile?: string | undefined;
  /** client name shown by the server (no secret) */
  name: string;
}

/** parseServers splits --nats and refuses passwords in it. */
export function parseServers(text: string): string[] {
  const list = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (list.length === 0) throw new UsageError('--nats needs at least one server URL', 'e.g. --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222');
  for (const s of list) checkNoPassword(s, 'nats', 'put the credentials in a file and pass --nats-creds FILE');
  return list;
}

/** authenticatorFor reads a credentials file: a .creds file (JWT) or an nkey seed ("SU..."). */
export function authenticatorFor(file: string): Authenticator {
  const bytes = readSecretFile(file, 'nats-creds');
  const text = bytes.toString('utf8');
  if (text.includes('-----BEGIN NATS USER JWT-----')) return credsAuthenticator(new Uint8Array(bytes));
  const seed = text.split('\n').map((l) => l.trim()).find((l) => /^SU[A-Z2-7]{50,}$/.test(l));
  if (seed !== undefined) return nkeyAuthenticator(new TextEncoder().encode(seed));
  throw new UsageError(`--nats-creds: ${file} is neither a NATS credentials file nor an nkey user seed`, "create a seed with 'rtev fleet nkey --out FILE'");
}

/** backoffMs is the reconnect delay after `attempt` failures: 250 ms doubling to 5 s, with jitter. */
export function backoffMs(attempt: number, capMs = 5000): number {
  const base = Math.min(capMs, 250 * 2 ** Math.min(attempt, 16));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * connectNats connects, retrying with backoff until `signal` aborts; once connected the
 * client reconnects forever, also with backoff.
 */
export async function connectNats(o: NatsOptions, signal: AbortSignal | undefined, log: (m: string) => void): Promise<NatsConnection> {
  // the Object Store client hashes every body it puts and gets; its default is a pure
  // JavaScript SHA-256, which took a quarter of ingest's busy CPU (node:crypto instead)
  setSha256Backend('native');
  presizeSplitMessages();
  const servers = parseServers(o.servers);
  const authenticator = o.credsFile !== undefined ? authenticatorFor(o.credsFile) : undefined;
  let reconnects = 0;
  for (let attempt = 0; ; attempt++) {
    try {
      const nc = await connect({
        servers, name: o.name, maxReconnectAttempts: -1, reconnect: true,
        reconnectDelayHandler: () => backoffMs(reconnects++), pingInterval: 10_000, maxPingOut: 3,
        ...(authenticator !== undefined ? { authenticator } : {}),
      });
      void (async () => {
        for await (const s of nc.status()) {
          if (s.type === 'reconnect') reconnects = 0;
          if (s.type === 'disconnect' || s.type === 'reconnect') log(`nats: ${s.type} ${'server' in s ? String(s.server) : ''}`.trim());
        }
      })();
      return nc;
    } catch (err) {
      const msg = (err as Error).message;
      if (/authoriz|authentic|permission/i.test(msg)) throw new UsageError(`nats: ${msg}`, 'check --nats-creds and the server account configuration');
      if (signal?.aborted) throw err;
      const wait = backoffMs(attempt);
      if (attempt === 0 || attempt % 10 === 0) log(`nats: cannot connect (${msg}); retrying in ${wait} ms`);
      await sleep(wait, signal);
    }
  }
}

/** the parser's state while a message is split over socket reads (fields of nats-core's Parser) */
interface SplitParser {
  state: number;
  ma?: { size: number };
  msgBuf?: NatsInternal.DenoBuffer;
}

let presized = false;

/**
 * presizeSplitMessages makes the client's protocol parser keep a message that arrives in
 * several socket reads (an Object Store part of 1-4 MiB comes in reads of at most 64 KiB) in
 * one buffer of the message's size, allocated once. nats-core's parser keeps it in a
 * DenoBuffer that grows by doubling (2 x capacity + n, zero-filled, the bytes so far copied
 * each time: for a 1 MiB part about 3.5 MiB allocated and 1.7 MiB copied besides the 1 MiB,
 * the allocations driving V8's external-memory GC). The size is known from the MSG/HMSG line
 * before the payload starts (the parser bounds it to 64 MiB), so right after a parse that
 * leaves a payload unfinished, its bytes so far move into a buffer of exactly that size
 * (not zero-filled: every byte is written before the message is dispatched, and the
 * dispatched bytes are that buffer), and the parser's further writes fill it without
 * growing. Nothing else of the parser changes: it reads and dispatches the same bytes. If
 * the client's internals are not what this expects (another version), it does nothing.
 */
export function presizeSplitMessages(): void {
  if (presized) return;
  presized = true;
  // the package's "./internal" export (the path TypeScript's node resolution cannot map; its types are lib/internal_mod)
  const { DenoBuffer, Parser, State } = require('@nats-io/nats-core/internal') as typeof NatsInternal;
  const proto = Parser.prototype as unknown as { parse?: unknown };
  const parse = proto.parse;
  if (typeof parse !== 'function' || typeof State.MSG_PAYLOAD !== 'number' || typeof DenoBuffer !== 'function') return;
  const original = parse as (this: SplitParser, buf: Uint8Array) => void;
  proto.parse = function (this: SplitParser, buf: Uint8Array): void {
    original.call(this, buf);
    const mb = this.msgBuf;
    const size = this.ma?.size;
    if (this.state === State.MSG_PAYLOAD && mb instanceof DenoBuffer && typeof size === 'number' && size > mb.capacity && size <= 64 * 1024 * 1024) {
      const exact = new DenoBuffer(Buffer.allocUnsafeSlow(size).buffer);
      exact.reset();
      exact.write(mb.bytes({ copy: false }));
      this.msgBuf = exact;
    }
  };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export interface Topology {
  jsm: JetStreamManager;
  bucket: ObjectStore;
}

/** clusterSize guesses the replica count: the servers the client was told about, at most 3. */
export function clusterSize(nc: NatsConnection): number {
  const info = (nc as unknown as { info?: { connect_urls?: string[] } }).info;
  return Math.max(1, Math.min(3, info?.connect_urls?.length ?? 1));
}

/**
 * ensureTopology creates (or opens) the envelope stream, the chunk bucket and the shared
 * durable ingest consumer. Envelopes stay for ENVELOPE_MAX_AGE_NS (small: KiBs each); bodies
 * leave the bucket once ingest has committed them.
 */
export async function ensureTopology(nc: NatsConnection, replicas: number, ackWaitMs: number): Promise<Topology> {
  const jsm = await jetstreamManager(nc);
  try {
    await jsm.streams.info(ENVELOPE_STREAM);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add({
      name: ENVELOPE_STREAM, subjects: [ENVELOPE_SUBJECT_PREFIX + '*'], storage: StorageType.File, num_replicas: replicas,
      // limits, not a work queue: the server rebuilds its Nats-Msg-Id table from the messages
      // it still holds after a restart, so envelopes must outlive the duplicate window
      retention: RetentionPolicy.Limits, discard: DiscardPolicy.Old, duplicate_window: DUPLICATE_WINDOW_NS,
      max_age: ENVELOPE_MAX_AGE_NS, max_msg_size: 1 << 20,
    });
  }
  const objm = new Objm(nc);
  let bucket: ObjectStore;
  try {
    bucket = await objm.open(CHUNK_BUCKET);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    bucket = await objm.create(CHUNK_BUCKET, { storage: StorageType.File, replicas, description: 'rtev chunk bodies' });
  }
  try {
    await jsm.consumers.info(ENVELOPE_STREAM, INGEST_CONSUMER);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(ENVELOPE_STREAM, {
      durable_name: INGEST_CONSUMER, ack_policy: AckPolicy.Explicit, ack_wait: ackWaitMs * 1e6, max_deliver: -1, max_ack_pending: 256,
    });
  }
  return { jsm, bucket };
}

export function isNotFound(err: unknown): boolean {
  const e = err as { message?: string; code?: unknown; api_error?: { err_code?: number } };
  return /not found/i.test(e?.message ?? '') || e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014;
}

/**
 * withTimeout bounds a client call: an Object Store read or an ack interrupted by a reconnect
 * can stay pending forever. The call is abandoned (it may still finish), the caller retries.
 */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * closeNats drains the connection (pending publishes and acks go out) for at most 5 s, then
 * closes it: with the servers gone a drain waits for a reconnect that never comes, and a
 * process told to stop must stop.
 */
export async function closeNats(nc: NatsConnection | undefined): Promise<void> {
  if (nc === undefined || nc.isClosed()) return;
  await withTimeout(nc.drain(), 5000, 'drain').catch(async () => {
    await nc.close().catch(() => undefined);
  });
}

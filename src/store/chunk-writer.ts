import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../errors';
import type { Ledger } from '../model/ledger';
import type { EventType } from '../model/record';
import { Worker } from 'node:worker_threads';
import type { SigningKey } from '../sign/keys';
import type { SealJob } from './chain-sealer';
import { createExclusive, outputError, writeAll } from './fsio';
import type { Environment, TimeAnchor } from './host-facts';
import { CHUNK_CUT_LIMIT_BYTES, chunkName, PARTIAL_SUFFIX } from './layout';
import { addNotObserved, emptyByType, functionCallsWindow, functionTotalsOf, ledgerWindow, producerFacts, RECORD_SCHEMA_ID, tlsCoverageWindow, totalsOf, type ChunkPredicate, type FunctionCallTotals, type ProbeTotals, type RestartRecord, type SealReason } from './predicate';
import type { ChainState } from './recovery';
import type { RetentionLimits } from './retention';
import { LineBuffer } from './line-buffer';
import { LINE_SAME_KEY, SegmentLine, segmentFileKey, segmentLineOffset, segmentRangeProbes, segmentRangeTs, segmentRecord, type Segment } from '../decode/segment';
import { PROBE_NAMES } from '../decode/layout';
import { newFailureCell, readFailure, type FailureCell } from './seal-failure';
import type { AttributionSource, FunctionCallTotal, LineInfo, ProducerInfo, RecordSink, TlsCoverageTotals } from './sink';

/** Default rotation: a chunk is sealed at 16 MiB or after 60 s, whichever comes first. */
export const DEFAULT_CHUNK_MAX_BYTES = 16 * 1024 * 1024;
export const DEFAULT_CHUNK_MAX_AGE_MS = 60_000;
/** Lines are joined and written to the open chunk in batches of about this many bytes. */
const FLUSH_BYTES = 1 << 20;
/**
 * A collector (store/output.ts openOutput) lets at most this many rotated chunks wait for the
 * seal worker (or for their attributions): past it, a size or age rotation waits and the open
 * chunk grows past --chunk-size until the worker catches up, so the unsealed backlog on disk
 * stays bounded by a count whatever the disk's speed (test/reliability/seal-backlog.test.ts).
 * A full attribution window, shutdown and CHUNK_CUT_LIMIT_BYTES (layout.ts) still seal.
 */
export const MAX_PENDING_SEALS = 16;

export interface ChunkSinkConfig {
  dir: string;
  key: SigningKey;
  env: Environment;
  producer: ProducerInfo;
  ledger: () => Ledger;
  /** cumulative function call counts (OutputContext.functionCalls); absent: no function_calls field */
  functionCalls?: () => FunctionCallTotal[];
  /** package attribution (OutputContext.attribution); absent: no attribution field */
  attribution?: AttributionSource;
  /** ssl_op coverage (OutputContext.tlsCoverage); absent: no tls_coverage field */
  tlsCoverage?: () => TlsCoverageTotals;
  /** how long a seal waits for its window's attributions (ms); default 5000, 10000 at shutdown */
  attributionWaitMs?: number;
  /** called once per sealed chunk, right after its facts are taken (OutputContext.onSeal) */
  onSeal?: () => void;
  chunkMaxBytes: number;
  chunkMaxAgeMs: number;
  /** at most this many rotated chunks wait to be sealed (MAX_PENDING_SEALS); absent: no bound,
   * chunks are cut by size alone (deterministic, for tests that feed faster than a disk seals) */
  maxPendingSeals?: number;
  retention: RetentionLimits;
  /** check the age limit on a timer (tests call rotateIfDue() themselves) */
  ageTimer: boolean;
  /** called once when close() finishes, e.g. to release the directory lock */
  release?: () => void;
}

/** The open (unsealed) chunk: counters are plain numbers until the chunk is sealed. */
interface OpenChunk {
  seq: number;
  fd: number;
  tmpPath: string;
  flushedBytes: number;
  /** sha256 of every byte written so far, updated at each write (no second pass, no copy) */
  hash: crypto.Hash;
  count: number;
  byType: Record<EventType, number>;
  byProbe: Map<string, number>;
  firstTs: bigint | null;
  lastTs: bigint | null;
  minTs: bigint | null;
  maxTs: bigint | null;
  opened: TimeAnchor;
  openedAtMs: number;
}

/**
 * ChunkSink writes records into chunk-SEQ.ndjson.partial, and on rotation fsyncs, renames
 * and signs it (DSSE over an in-toto statement), then writes chunk-SEQ.dsse.json the same
 * careful way. write() only appends to a bounded in-memory batch; each batch is hashed as it is written;
 * the fsync/rename/sign steps run asynchronously, in sequence order, off the write path.
 */
export class ChunkSink implements RecordSink {
  readonly #c: ChunkSinkConfig;
  readonly #chainId: string;
  readonly #runId: string;
  #runIndex = 0;
  #nextSeq: number;
  #restart: RestartRecord | null;
  readonly #worker: Worker;
  readonly #cell: FailureCell;
  readonly #host;
  readonly #producer;
  #chunk: OpenChunk | undefined;
  #lines = new LineBuffer(FLUSH_BYTES);
  /** the buffer of the last write, filled again by the next batch (writes are synchronous) */
  #spare: Buffer | undefined;
  #totalBytes = 0;
  readonly #cumulative = new Map<string, bigint>();
  #windowStart: Map<string, ProbeTotals> = new Map();
  #functionStart: FunctionCallTotals = new Map();
  /** TLS coverage pairs already reported in sealed chunks */
  #tlsStart = 0;
  #failure: RtevError | undefined;
  #failureThrown = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  /** file keys of the fast path's lines noted for attribution in the open window (segmentFileKey) */
  readonly #windowFiles = new Set<number>();
  /** the file key of the last line noted into #windowFiles (-1: none since the window began): a run
   * of lines of one file (an open storm) skips the Set lookup (docs/benchmarks.md, "Session 3") */
  #lastFileKey = -1;
  /** seals waiting for their attributions, in sequence order */
  #sealQueue: Promise<void> = Promise.resolve();
  /** [0]: jobs the seal worker finished (sealed or failed), added by the worker */
  readonly #progress = new Int32Array(new SharedArrayBuffer(4));
  /** jobs made by #rotate in this run */
  #rotations = 0;

  constructor(config: ChunkSinkConfig, state: ChainState) {
    this.#c = config;
    this.#chainId = state.chainId ?? config.env.newId();
    this.#runId = config.env.newId();
    this.#nextSeq = state.nextSeq;
    this.#restart = state.restart;
    this.#cell = newFailureCell();
    this.#worker = new Worker(path.join(__dirname, 'seal-worker.js'), {
      workerData: {
        state: {
          dir: config.dir, privateKey: config.key.privateKey, chainId: this.#chainId, prevEnvelopeSha256: state.prevEnvelopeSha256,
          sealed: state.sealed, unrecorded: state.unrecorded, retention: config.retention,
        },
        cell: this.#cell,
        progress: this.#progress.buffer,
      },
    });
    this.#worker.on('error', (err) => {
      this.#failure ??= outputError(err, `the seal worker failed in ${config.dir}`);
    });
    this.#worker.unref();
    this.#host = config.env.hostFacts();
    this.#producer = producerFacts(config.producer);
    this.#chunk = this.#openChunk(config.env.timeAnchor());
    if (config.ageTimer) {
      this.#timer = setInterval(() => this.rotateIfDue(), Math.max(50, Math.min(1000, Math.floor(config.chunkMaxAgeMs / 10))));
      this.#timer.unref();
    }
  }

  get backlogBytes(): number {
    return this.#lines.length;
  }

  get bytesWritten(): number {
    return this.#totalBytes + this.#lines.length;
  }

  /** runId identifies this collector run in every predicate it seals. */
  get runId(): string {
    return this.#runId;
  }

  write(line: string, info: LineInfo): void {
    if (this.#failure !== undefined) this.#throwFailure();
    const attribution = this.#c.attribution;
    if (attribution !== undefined) {
      // a full attribution window seals the chunk first, so the predicate stays bounded
      if (attribution.windowFull && this.#chunk!.count > 0) this.#guard(() => this.#rotate('size', undefined));
      if (info.record !== undefined) attribution.note(info.record);
    }
    if (!this.#lines.fits(line)) this.#guard(() => this.#flush());
    this.#lines.append(line);
    this.#counted(info.type, info.probe, info.tsNs);
  }

  /**
   * writeSegment: fast-path lines, already encoded, taken as ranges: the line at which a size
   * seal falls is found from the index (a binary search over the line ends), and each range is
   * appended and counted at once (counts per probe from the header, ts from the range's ends when
   * the segment is in order), with no object or BigInt per line (docs/benchmarks.md, "Session 4
   * (h21)"). Chunks are cut after exactly the same line as with write(), in write()'s order per
   * line: a full attribution window seals first, then the line is noted, appended, and a chunk
   * that reached its size limit is sealed.
   */
  writeSegment(seg: Segment, first: number, last: number): void {
    if (this.#failure !== undefined) this.#throwFailure();
    const attribution = this.#c.attribution;
    let from = first;
    while (from < last) {
      const c = this.#chunk!;
      // write() seals after the line that makes the chunk reach its size limit
      const base = seg.linesStart + segmentLineOffset(seg, from);
      const reach = base + (this.#sizeLimit() - c.flushedBytes - this.#lines.length);
      let end = last;
      let sizeSeal = false;
      if (seg.linesStart + segmentLineOffset(seg, last) >= reach) {
        end = lineReaching(seg, from, last, reach - seg.linesStart) + 1;
        sizeSeal = true;
      }
      if (attribution !== undefined) {
        // package attribution notes each line's file as write() notes each record, but only at the
        // first line of a (cgroup, path) in the window: note() does nothing more for the others
        // (its own window holds the same keys); the record is parsed back from its line then
        const full = this.#noteLines(seg, from, end, attribution);
        if (full < end) {
          // a full attribution window seals the chunk before line `full`, as in write()
          this.#appendRange(seg, from, full);
          this.#guard(() => this.#rotate('size', undefined));
          from = full;
          continue;
        }
      }
      this.#appendRange(seg, from, end);
      if (sizeSeal) this.#guard(() => this.#rotate('size', undefined));
      from = end;
    }
  }

  /** #noteLines notes the files of lines [from, end); gives the line before which a full window must seal (end: none) */
  #noteLines(seg: Segment, from: number, end: number, attribution: AttributionSource): number {
    // only note() fills the window: windowFull is read before the first line and after each note(),
    // not per line (a line of a run of one file costs one flag byte: docs/benchmarks.md, "Session 5 (h27)")
    if (attribution.windowFull && this.#chunk!.count > 0) return from;
    const batch = seg.batch;
    const flags = seg.indexStart + SegmentLine.flags;
    for (let i = from; i < end; i++) {
      // the same file as the line before, taken just now: #lastFileKey is its key already
      // (the consumer thread marked it: no key read per line of a run of one file)
      if (i > from && (batch[flags + i * SegmentLine.SIZE]! & LINE_SAME_KEY) !== 0) continue;
      const key = segmentFileKey(seg, i);
      if (key === this.#lastFileKey) continue;
      this.#lastFileKey = key;
      if (this.#windowFiles.has(key)) continue;
      this.#windowFiles.add(key);
      attribution.note(segmentRecord(seg, i));
      // a full window seals the chunk before the next line (which follows this one in the chunk)
      if (attribution.windowFull && i + 1 < end) return i + 1;
    }
    return end;
  }

  /** #appendRange appends lines [first, last) of a segment and counts them at once (no size check: the caller's) */
  #appendRange(seg: Segment, first: number, last: number): void {
    if (last <= first) return;
    const c = this.#chunk!;
    const start = seg.linesStart + segmentLineOffset(seg, first);
    const end = seg.linesStart + segmentLineOffset(seg, last);
    if (!this.#lines.fitsBytes(end - start)) this.#guard(() => this.#flush());
    this.#lines.appendBytes(seg.batch, start, end);
    c.count += last - first;
    // the fast path's probes (file_open, process_exec, tcp_state) give records of their own name
    if (seg.soleProbe >= 0) {
      this.#countProbe(c, seg.soleProbe, last - first);
    } else {
      const n = PROBE_NAMES.map(() => 0);
      segmentRangeProbes(seg, first, last, n);
      for (let i = 0; i < n.length; i++) if (n[i]! > 0) this.#countProbe(c, i, n[i]!);
    }
    const ts = segmentRangeTs(seg, first, last);
    if (c.firstTs === null) {
      c.firstTs = ts.first;
      c.minTs = ts.min;
      c.maxTs = ts.max;
    } else {
      if (ts.min < c.minTs!) c.minTs = ts.min;
      if (ts.max > c.maxTs!) c.maxTs = ts.max;
    }
    c.lastTs = ts.last;
  }

  #countProbe(c: OpenChunk, index: number, n: number): void {
    const probe = PROBE_NAMES[index]!;
    c.byType[probe as EventType] += n;
    c.byProbe.set(probe, (c.byProbe.get(probe) ?? 0) + n);
  }

  /** #counted accounts for one line just appended, and rotates at the size limit. */
  #counted(type: EventType, probe: string, ts: bigint): void {
    const c = this.#chunk!;
    c.count++;
    c.byType[type]++;
    c.byProbe.set(probe, (c.byProbe.get(probe) ?? 0) + 1);
    if (c.firstTs === null) {
      c.firstTs = c.minTs = c.maxTs = ts;
    } else {
      if (ts < c.minTs!) c.minTs = ts;
      if (ts > c.maxTs!) c.maxTs = ts;
    }
    c.lastTs = ts;
    const size = c.flushedBytes + this.#lines.length;
    if (size >= this.#c.chunkMaxBytes && size >= this.#sizeLimit()) this.#guard(() => this.#rotate('size', undefined));
  }

  /** #sizeLimit: where the open chunk is cut, --chunk-size, or while the seal backlog is full, CHUNK_CUT_LIMIT_BYTES */
  #sizeLimit(): number {
    return this.#sealBacklogFull() ? Math.max(this.#c.chunkMaxBytes, CHUNK_CUT_LIMIT_BYTES) : this.#c.chunkMaxBytes;
  }

  /** #sealBacklogFull: MAX_PENDING_SEALS rotated chunks are not sealed yet (size and age rotations wait) */
  #sealBacklogFull(): boolean {
    const max = this.#c.maxPendingSeals;
    return max !== undefined && ((this.#rotations - Atomics.load(this.#progress, 0)) | 0) >= max;
  }

  /**
   * rotateIfDue seals the open chunk when it is older than the age limit and holds news
   * (records or ledger changes); otherwise it writes out buffered lines. Runs on a timer.
   */
  rotateIfDue(): void {
    const c = this.#chunk;
    if (c === undefined || this.#closed || this.#failure !== undefined) return;
    if (this.#c.env.nowMs() - c.openedAtMs < this.#c.chunkMaxAgeMs) {
      // an idle pipeline must not leave records in memory: a crash then loses only what
      // arrived since the last tick (the file itself is durable once sealed)
      try {
        this.#flush();
      } catch (err) {
        this.#failure ??= outputError(err, `cannot write chunk in ${this.#c.dir}`);
      }
      return;
    }
    if ((c.count === 0 && !this.#ledgerMoved()) || this.#sealBacklogFull()) {
      try {
        this.#flush();
      } catch (err) {
        this.#failure ??= outputError(err, `cannot write chunk in ${this.#c.dir}`);
      }
      return;
    }
    try {
      this.#rotate('age', undefined);
    } catch {
      // recorded in #failure; surfaced by the next write() or close()
    }
  }

  async close(finalLedger: Ledger): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    if (this.#failure === undefined) {
      try {
        this.#rotate('shutdown', finalLedger);
      } catch {
        // recorded in #failure
      }
    }
    if (this.#chunk !== undefined) fs.closeSync(this.#chunk.fd);
    this.#chunk = undefined;
    await this.#sealQueue;
    await this.#drainWorker();
    this.#c.release?.();
    this.#failure ??= readFailure(this.#cell);
    if (this.#failure !== undefined && !this.#failureThrown) this.#throwFailure();
  }

  /** #drainWorker waits until every queued seal is done, then stops the worker. */
  async #drainWorker(): Promise<void> {
    this.#worker.ref();
    await new Promise<void>((resolve) => {
      const done = (): void => resolve();
      this.#worker.once('message', done);
      this.#worker.once('exit', done);
      this.#worker.postMessage({ close: true });
    });
    await this.#worker.terminate();
  }

  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#failure ??= outputError(err, `cannot write chunk in ${this.#c.dir}`);
      this.#throwFailure();
    }
  }

  #throwFailure(): never {
    this.#failureThrown = true;
    throw this.#failure!;
  }

  #openChunk(anchor: TimeAnchor): OpenChunk {
    const seq = this.#nextSeq++;
    const tmpPath = path.join(this.#c.dir, chunkName(seq) + PARTIAL_SUFFIX);
    return {
      seq, fd: createExclusive(tmpPath), tmpPath, flushedBytes: 0, hash: crypto.createHash('sha256'),
      count: 0, byType: emptyByType(), byProbe: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null,
      opened: anchor, openedAtMs: this.#c.env.nowMs(),
    };
  }

  #flush(): void {
    this.#failure ??= readFailure(this.#cell);
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#lines.length === 0) return;
    const data = this.#lines.take(this.#spare);
    const c = this.#chunk!;
    // the chunk's digest is taken from the very bytes written, as they are written: one pass
    // over memory that is still in cache, no copy, and the buffer is filled again at once
    // (hashing in the seal worker moved 1 MiB buffers to a second V8 heap, which grew by
    // about 90 MB under the storm: docs/benchmarks.md, "Signed path")
    writeAll(c.fd, data, path.basename(c.tmpPath));
    c.hash.update(data);
    c.flushedBytes += data.length;
    this.#totalBytes += data.length;
    this.#spare = data.byteOffset === 0 && data.buffer.byteLength >= this.#lines.capacity ? Buffer.from(data.buffer, 0, data.buffer.byteLength) : undefined;
  }

  #ledgerMoved(): boolean {
    const now = totalsOf(this.#c.ledger(), this.#cumulative);
    for (const [probe, t] of now) {
      const s = this.#windowStart.get(probe);
      if (s === undefined) return true;
      for (const k of Object.keys(t) as Array<keyof ProbeTotals>) if (t[k] !== s[k]) return true;
    }
    if (this.#c.functionCalls !== undefined) {
      for (const [key, t] of functionTotalsOf(this.#c.functionCalls())) if (this.#functionStart.get(key)?.calls !== t.calls) return true;
    }
    if (this.#c.tlsCoverage !== undefined && this.#c.tlsCoverage().total !== this.#tlsStart) return true;
    return false;
  }

  /** #rotate snapshots the open chunk's facts synchronously and queues its sealing. */
  #rotate(reason: SealReason, finalLedger: Ledger | undefined): void {
    try {
      this.#flush();
    } catch (err) {
      this.#failure ??= outputError(err, `cannot write chunk in ${this.#c.dir}`);
      throw this.#failure;
    }
    const c = this.#chunk!;
    for (const [probe, n] of c.byProbe) this.#cumulative.set(probe, (this.#cumulative.get(probe) ?? 0n) + BigInt(n));
    const ledger = finalLedger ?? this.#c.ledger();
    const end = totalsOf(ledger, this.#cumulative);
    const window = ledgerWindow(this.#windowStart, end);
    addNotObserved(window, ledger); // classes of events the run does not observe (docs/format.md)
    this.#windowStart = end;
    // function calls counted up to now belong to this chunk; the first-seen window rotates
    // at this very point (synchronously: no record is decoded in between), so a record
    // emitted in window N is written before this seal, into chunk N (docs/function-calls.md)
    let functionCalls: ChunkPredicate['function_calls'];
    if (this.#c.functionCalls !== undefined) {
      const fnEnd = functionTotalsOf(this.#c.functionCalls());
      functionCalls = functionCallsWindow(this.#functionStart, fnEnd);
      this.#functionStart = fnEnd;
    }
    let tlsCoverage: ChunkPredicate['tls_coverage'];
    if (this.#c.tlsCoverage !== undefined) {
      const totals = this.#c.tlsCoverage();
      tlsCoverage = tlsCoverageWindow(this.#tlsStart, totals);
      this.#tlsStart = totals.total;
    }
    this.#c.onSeal?.();
    const sealedAnchor = this.#c.env.timeAnchor();
    const final = reason === 'shutdown';
    const predicate: ChunkPredicate = {
      chain: { chain_id: this.#chainId, seq: c.seq, prev_envelope_sha256: null, run_id: this.#runId, run_chunk_index: this.#runIndex++, final, seal_reason: reason },
      records: {
        count: c.count, bytes: c.flushedBytes, by_type: c.byType,
        first_ts_ns: c.firstTs, last_ts_ns: c.lastTs, min_ts_ns: c.minTs, max_ts_ns: c.maxTs, schema: RECORD_SCHEMA_ID,
      },
      ledger: window,
      restart: this.#restart,
      host: this.#host,
      clock: { ts_clock: 'CLOCK_MONOTONIC', opened: c.opened, sealed: sealedAnchor },
      producer: this.#producer,
      ...(functionCalls !== undefined ? { function_calls: functionCalls } : {}),
      ...(tlsCoverage !== undefined ? { tls_coverage: tlsCoverage } : {}),
    };
    this.#restart = null;
    fs.closeSync(c.fd);
    this.#chunk = undefined;
    if (!final) {
      try {
        this.#chunk = this.#openChunk(sealedAnchor);
      } catch (err) {
        this.#failure ??= outputError(err, `cannot open the next chunk in ${this.#c.dir}`);
      }
    }
    this.#rotations++;
    const job: SealJob = { tmpPath: c.tmpPath, seq: c.seq, bytes: c.flushedBytes, sha256: c.hash.digest('hex'), predicate, sealedAtMs: this.#c.env.nowMs() };
    const attribution = this.#c.attribution;
    if (attribution === undefined) {
      this.#worker.postMessage({ job });
    } else {
      // the window is taken now (synchronously: it holds exactly this chunk's records); its
      // answers are awaited, bounded, and seals stay in sequence order behind one another
      const ticket = attribution.takeWindow();
      this.#windowFiles.clear();
      this.#lastFileKey = -1;
      const waitMs = this.#c.attributionWaitMs ?? (final ? 10_000 : 5000);
      this.#sealQueue = this.#sealQueue.then(async () => {
        try {
          predicate.attribution = await attribution.finish(ticket, waitMs);
        } catch (err) {
          this.#failure ??= outputError(err, `cannot attribute the packages of chunk ${c.seq}`);
        }
        this.#worker.postMessage({ job });
      });
    }
    if (this.#failure !== undefined) throw this.#failure;
  }
}

/** lineReaching: the first line k in [from, last) whose end (from the start of the lines) is at least `offset` (last - 1 when none) */
function lineReaching(seg: Segment, from: number, last: number, offset: number): number {
  let lo = from;
  let hi = last - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (segmentLineOffset(seg, mid + 1) >= offset) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

import { SegmentHeader, SegmentLine, segmentLine, segmentLineOffset, segmentLowerBound, segmentTs, segmentUpperBound, type Segment } from '../decode/segment';
import type { Ledger } from '../model/ledger';
import type { LineInfo, RecordSink } from '../store/sink';

/**
 * Time order of the output (docs/format.md, "Record order"). The two kernel rings (file opens;
 * everything else) are consumed by two threads, and the records of one ring come in the order
 * they were reserved, which is nearly but not exactly ts_ns order. OrderedSink sits between the
 * pipeline and the sink: it holds records for a bounded time and hands them on in ts_ns order,
 * so a chunk's records (and the --stdout stream) are in time order.
 *
 * A record is released once no ring can still deliver an older one. A ring's next records are
 * at least as new as its newest one less `slackMs` (a ring gives its records in the order they
 * were reserved, a little apart from ts_ns order). A ring that is not backlogged (its last batch
 * did not fill a slot) has also delivered everything older than what the other ring delivered
 * less `lagMs` (its consumer polls every 10 ms; batches of both rings queued before a batch reach
 * JS in the same turn of the event loop, so a ring's progress is used from the next turn on).
 * When no ring delivered for `quietMs`, everything older than `quietMs` may go. And no record is
 * held past `maxHoldMs` (in ts_ns terms), nor beyond `maxRecords` or `maxBytes` held. Records waiting for container attribution in the
 * pipeline hold the release back too (`floor`), within the same maxHoldMs. A record that
 * arrives after a newer one was released (a ring or an attribution late by more than these
 * bounds) is written at once and counted in `stats.late`.
 *
 * Fast-path segments (src/decode/segment.ts) keep their form: they are split into their
 * non-decreasing runs and passed on as `writeSegment(seg, first, last)` ranges; a segment
 * that must wait is copied (its slot goes back to the ring consumer after the batch).
 */
/** The default window of the merge (`rtev collect --order-window`). */
export const DEFAULT_ORDER_WINDOW_MS = 250;

/**
 * orderBounds: the merge's bounds from its window W (docs/format.md, "Record order"): both rings
 * silent for W, records older than W may go; one ring's records come at most W/5 out of order;
 * a ring that is not backlogged is at most 2W/5 behind the other; no record waits more than 3W.
 * Under load the consumer threads and the event loop run late by tens of ms: W covers that.
 */
export function orderBounds(windowMs: number): Required<Pick<OrderOptions, 'quietMs' | 'slackMs' | 'lagMs' | 'maxHoldMs'>> {
  return { quietMs: windowMs, slackMs: windowMs / 5, lagMs: (2 * windowMs) / 5, maxHoldMs: 3 * windowMs };
}

export interface OrderOptions {
  /** both rings silent this long: records older than this may go */
  quietMs?: number;
  /** records of one ring may come this much out of ts order */
  slackMs?: number;
  /** a ring that is not backlogged is at most this far behind the other */
  lagMs?: number;
  /** no record waits longer than this */
  maxHoldMs?: number;
  /** at most this many records and bytes wait (default 262,144 and 32 MiB); past them the oldest go */
  maxRecords?: number;
  maxBytes?: number;
  /** the oldest ts_ns still held elsewhere (records waiting for attribution), if any */
  floor?: () => bigint | undefined;
  /** CLOCK_MONOTONIC in ns, the kernel's bpf_ktime_get_ns (injectable for tests) */
  now?: () => bigint;
  /** the first error of a write the merge made on its own (after the batch; e.g. the reader of --stdout went away) */
  onError?: (err: unknown) => void;
}

export interface OrderStats {
  /** records released out of order: they came after a newer one was written */
  late: number;
  /** records released early because maxRecords or maxBytes was reached */
  forced: number;
  maxRecords: number;
  maxBytes: number;
}

export type RingName = 'bulk' | 'rare';

/** A sorted run of records: a range of a segment, or lines from write(). */
type Run =
  | { kind: 'seg'; seg: Segment; pos: number; end: number; head: bigint; bytes: number; block: ArenaBlock | undefined }
  | { kind: 'lines'; lines: string[]; infos: LineInfo[]; pos: number; head: bigint; bytes: number };



export class OrderedSink implements RecordSink {
  readonly #sink: RecordSink;
  readonly #quiet: bigint;
  readonly #slack: bigint;
  readonly #lag: bigint;
  readonly #maxHold: bigint;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #floor: (() => bigint | undefined) | undefined;
  readonly #now: () => bigint;
  readonly #onError: ((err: unknown) => void) | undefined;
  #failure: unknown;
  readonly stats: OrderStats = { late: 0, forced: 0, maxRecords: 0, maxBytes: 0 };
  /** runs by head ts (a binary heap) */
  readonly #heap: Run[] = [];
  #records = 0;
  #bytes = 0;
  /** the newest ts released */
  #released = -1n;
  /** the line run write() appends to while ts does not decrease */
  #open: (Run & { kind: 'lines' }) | undefined;
  #openTail = -1n;
  /** per ring: the newest ts it delivered (usable from the next turn of the event loop on), and whether it is backlogged */
  readonly #rings: Record<RingName, { seen: bigint; next: bigint; backlogged: boolean }> = {
    bulk: { seen: -1n, next: -1n, backlogged: false }, rare: { seen: -1n, next: -1n, backlogged: false },
  };
  /** when the last batch with records came (our clock) */
  #lastBatchAt = -1n;
  #turn: NodeJS.Immediate | undefined;
  #current: RingName | undefined;
  #currentMax = -1n;
  #timer: NodeJS.Timeout | undefined;
  /** where held segments are copied to */
  readonly #arena = new SegmentArena();

  constructor(sink: RecordSink, options: OrderOptions = {}) {
    this.#sink = sink;
    const d = orderBounds(DEFAULT_ORDER_WINDOW_MS);
    const ns = (ms: number): bigint => BigInt(Math.round(ms * 1e6));
    this.#quiet = ns(options.quietMs ?? d.quietMs);
    this.#slack = ns(options.slackMs ?? d.slackMs);
    this.#lag = ns(options.lagMs ?? d.lagMs);
    this.#maxHold = ns(options.maxHoldMs ?? d.maxHoldMs);
    this.#maxRecords = options.maxRecords ?? 262_144;
    this.#maxBytes = options.maxBytes ?? 32 << 20;
    this.#floor = options.floor;
    this.#now = options.now ?? process.hrtime.bigint;
    this.#onError = options.onError;
  }

  get backlogBytes(): number {
    return this.#sink.backlogBytes + this.#bytes;
  }

  get bytesWritten(): number {
    return this.#sink.bytesWritten;
  }

  /** records held now */
  get held(): number {
    return this.#records;
  }

  unwritten(): Map<string, bigint> {
    return this.#sink.unwritten?.() ?? new Map();
  }

  /** beginBatch: what is written until endBatch came from this ring */
  beginBatch(ring: RingName): void {
    this.#current = ring;
    this.#currentMax = -1n;
  }

  /**
   * endBatch: the ring's progress is noted (if it delivered records; used from the next turn of
   * the event loop), and what may go, goes. backlogged: the batch filled its slot (the ring has more).
   */
  endBatch(backlogged = false): void {
    const ring = this.#current;
    this.#current = undefined;
    if (ring !== undefined) {
      const r = this.#rings[ring];
      r.backlogged = backlogged;
      if (this.#currentMax >= 0n) {
        if (this.#currentMax > r.next) r.next = this.#currentMax;
        this.#lastBatchAt = this.#now();
      }
    }
    this.#schedule();
  }

  /**
   * schedule: release once the event loop reaches its check phase (setImmediate). By then every
   * batch the consumer threads queued before this turn was handled (they are handled in the poll
   * phase before it), also after the event loop was blocked for a while (a slow detach): a timer
   * that fired first must not take the silence of a blocked loop for quiet rings.
   */
  #schedule(): void {
    this.#turn ??= setImmediate(() => {
      this.#turn = undefined;
      for (const x of Object.values(this.#rings)) x.seen = x.next;
      if (this.#failure !== undefined) return;
      try {
        this.release();
      } catch (err) {
        this.#failure = err;
        this.#onError?.(err);
      }
    });
  }

  write(line: string, info: LineInfo): void {
    const ts = info.tsNs;
    if (this.#current !== undefined && ts > this.#currentMax) this.#currentMax = ts;
    let run = this.#open;
    if (run === undefined || ts < this.#openTail) {
      run = { kind: 'lines', lines: [], infos: [], pos: 0, head: ts, bytes: 0 };
      this.#open = run;
      this.#push(run);
    }
    run.lines.push(line);
    run.infos.push(info);
    run.bytes += line.length + 1;
    this.#openTail = ts;
    this.#count(1, line.length + 1);
    if (this.#current === undefined) this.#schedule();
  }

  writeSegment(seg: Segment, first: number, last: number): void {
    if (last <= first) return;
    this.#open = undefined;
    if (this.#current !== undefined && seg.maxTs > this.#currentMax) this.#currentMax = seg.maxTs;
    // the starts of its non-decreasing runs (ts read as two u32: no bigint per line); a segment
    // the consumer thread found in order (no descents) is one run without looking
    const starts = [first];
    let prevHi = -1;
    let prevLo = -1;
    for (let i = seg.descents === 0 ? last : first; i < last; i++) {
      const at = seg.indexStart + i * SegmentLine.SIZE + SegmentLine.ts;
      const lo = seg.batch.readUInt32LE(at);
      const hi = seg.batch.readUInt32LE(at + 4);
      if (hi < prevHi || (hi === prevHi && lo < prevLo)) starts.push(i);
      prevHi = hi;
      prevLo = lo;
    }
    // in order, older than what the rings delivered and than everything held: straight through (a backlog catching up)
    if (starts.length === 1 && tsAt(seg, first) >= this.#released) {
      const tail = tsAt(seg, last - 1);
      // (the rings' progress only: the time rules wait for the check phase, see #schedule)
      if ((this.#heap.length === 0 || tail < this.#heap[0]!.head) && tail <= this.#watermark(false)) {
        this.#released = tail;
        this.#writeRange(seg, first, last);
        return;
      }
    }
    // a copy: the batch's slot goes back to the consumer thread once the batch was handled
    const { seg: held, block } = this.#arena.copy(seg);
    starts.push(last);
    for (let k = 0; k + 1 < starts.length; k++) this.#pushSeg(held, starts[k]!, starts[k + 1]!, block);
    if (this.#current === undefined) this.#schedule();
  }

  #pushSeg(seg: Segment, pos: number, end: number, block: ArenaBlock | undefined): void {
    const bytes = lineOffset(seg, end) - lineOffset(seg, pos);
    if (block !== undefined) block.live++;
    this.#push({ kind: 'seg', seg, pos, end, head: tsAt(seg, pos), bytes, block });
    this.#count(end - pos, bytes);
  }

  #count(records: number, bytes: number): void {
    this.#records += records;
    this.#bytes += bytes;
    if (this.#records > this.stats.maxRecords) this.stats.maxRecords = this.#records;
    if (this.#bytes > this.stats.maxBytes) this.stats.maxBytes = this.#bytes;
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#schedule(), 20);
      this.#timer.unref();
    }
  }

  /** the ts up to which records may go now (timeRules: also by silence and by maxHoldMs) */
  #watermark(timeRules = true): bigint {
    const now = this.#now();
    const { bulk, rare } = this.#rings;
    // what each ring can still deliver is at least this new
    const bound = (r: typeof bulk, other: typeof bulk): bigint => {
      const own = r.seen < 0n ? -1n : r.seen - this.#slack;
      const cross = r.backlogged || other.seen < 0n ? -1n : other.seen - this.#lag;
      return own > cross ? own : cross;
    };
    const b = bound(bulk, rare);
    const r = bound(rare, bulk);
    let wm = b < r ? b : r;
    if (timeRules && now - this.#lastBatchAt >= this.#quiet && now - this.#quiet > wm) wm = now - this.#quiet;
    const floor = this.#floor?.();
    if (floor !== undefined && floor - 1n < wm) wm = floor - 1n;
    if (!timeRules) return wm;
    const oldest = now - this.#maxHold;
    return wm < oldest ? oldest : wm;
  }

  /** release writes, in ts order, every held record the watermark (or the size bounds) lets go. */
  release(all = false): void {
    const heap = this.#heap;
    if (heap.length === 0) return;
    const wm = all ? -1n : this.#watermark();
    while (heap.length > 0) {
      const top = heap[0]!;
      const forced = !all && top.head > wm;
      if (forced && this.#records <= this.#maxRecords && this.#bytes <= this.#maxBytes) break;
      // up to the watermark (forced: the oldest records only), and not past the next run's head
      let limit = all ? 1n << 64n : forced ? top.head : wm;
      const second = heap.length > 1 ? secondHead(heap) : undefined;
      if (second !== undefined && second < limit) limit = second;
      const n = this.#emit(top, limit);
      if (forced) this.stats.forced += n;
      if (top.kind === 'seg' ? top.pos >= top.end : top.pos >= top.lines.length) this.#pop();
      else siftDown(heap, 0);
    }
    if (heap.length === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** emit writes the run's records with ts <= limit (at least one, its head); gives how many */
  #emit(run: Run, limit: bigint): number {
    const late = run.head < this.#released;
    if (run.kind === 'lines') {
      let i = run.pos;
      const n = run.lines.length;
      do {
        const info = run.infos[i]!;
        if (info.tsNs < this.#released) this.stats.late++;
        else this.#released = info.tsNs;
        this.#sink.write(run.lines[i]!, info);
        const size = run.lines[i]!.length + 1;
        run.bytes -= size;
        this.#bytes -= size;
        this.#records--;
        run.lines[i] = '';
        i++;
      } while (i < n && run.infos[i]!.tsNs <= limit);
      const emitted = i - run.pos;
      run.pos = i;
      if (i < n) {
        run.head = run.infos[i]!.tsNs;
      } else {
        if (this.#open === run) this.#open = undefined;
        run.lines.length = 0;
        run.infos.length = 0;
      }
      return emitted;
    }
    const { seg } = run;
    // a run's ts do not decrease: binary searches, not a BigInt per line (docs/benchmarks.md, "Session 4 (h21)")
    const j = segmentUpperBound(seg, run.pos + 1, run.end, limit);
    if (late) this.stats.late += segmentLowerBound(seg, run.pos, j, this.#released) - run.pos;
    const last = tsAt(seg, j - 1);
    if (last > this.#released) this.#released = last;
    this.#writeRange(seg, run.pos, j);
    const bytes = lineOffset(seg, j) - lineOffset(seg, run.pos);
    this.#bytes -= bytes;
    run.bytes -= bytes;
    const emitted = j - run.pos;
    this.#records -= emitted;
    run.pos = j;
    if (j < run.end) run.head = tsAt(seg, j);
    else if (run.block !== undefined) this.#arena.release(run.block);
    return emitted;
  }

  /** writeRange hands lines [first, last) of a segment to the sink (line by line for a sink without writeSegment) */
  #writeRange(seg: Segment, first: number, last: number): void {
    if (this.#sink.writeSegment !== undefined) {
      this.#sink.writeSegment(seg, first, last);
      return;
    }
    for (let i = first; i < last; i++) {
      const l = segmentLine(seg, i);
      this.#sink.write(seg.batch.toString('utf8', l.start, l.end - 1), { type: l.probe as LineInfo['type'], tsNs: l.tsNs, probe: l.probe });
    }
  }

  #push(run: Run): void {
    const heap = this.#heap;
    heap.push(run);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.head <= heap[i]!.head) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      siftDown(heap, 0);
    }
  }

  /** close writes everything held, in order, then closes the sink. */
  async close(finalLedger: Ledger | (() => Ledger)): Promise<void> {
    if (this.#turn !== undefined) clearImmediate(this.#turn);
    this.#turn = undefined;
    if (this.#failure !== undefined) throw this.#failure;
    this.release(true);
    // a function: the ledger is taken once everything held was released (what a stage after the
    // merge counts at release, FirstSeenOpens, is in it)
    await this.#sink.close(typeof finalLedger === 'function' ? finalLedger() : finalLedger);
  }
}

function secondHead(heap: Run[]): bigint {
  const a = heap[1]!.head;
  return heap.length > 2 && heap[2]!.head < a ? heap[2]!.head : a;
}

function siftDown(heap: Run[], i: number): void {
  const n = heap.length;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < n && heap[l]!.head < heap[m]!.head) m = l;
    if (r < n && heap[r]!.head < heap[m]!.head) m = r;
    if (m === i) return;
    [heap[m], heap[i]] = [heap[i]!, heap[m]!];
    i = m;
  }
}

const tsAt = segmentTs;
const lineOffset = segmentLineOffset;

/** A block of SegmentArena: copies of held segments, one after the other. */
interface ArenaBlock {
  buf: Buffer;
  used: number;
  /** runs still held that point into it */
  live: number;
}

/**
 * SegmentArena: where held segments are copied (header, lines, index), packed into 2 MiB blocks
 * that are filled again once every run in them was written. A new Buffer per held segment (most
 * segments of a storm wait for the watermark) made V8 run a mark-compact every few hundred
 * thousand records for the external memory (`--trace-gc`, signed 1M-open storm: 13 against 1 on
 * --stdout; docs/benchmarks.md, "Session 4 (h21)").
 */
class SegmentArena {
  static readonly BLOCK = 2 << 20;
  /** free blocks kept for reuse */
  static readonly SPARE = 2;
  #current: ArenaBlock | undefined;
  readonly #spare: ArenaBlock[] = [];

  copy(seg: Segment): { seg: Segment; block: ArenaBlock | undefined } {
    const from = seg.linesStart - SegmentHeader.SIZE;
    const to = seg.indexStart + seg.count * SegmentLine.SIZE;
    const n = to - from;
    if (n > SegmentArena.BLOCK) {
      // (larger than a slot: cannot come from the addon; a buffer of its own)
      const batch = Buffer.from(seg.batch.subarray(from, to));
      return { seg: { ...seg, batch, linesStart: seg.linesStart - from, linesEnd: seg.linesEnd - from, indexStart: seg.indexStart - from }, block: undefined };
    }
    let b = this.#current;
    if (b === undefined || b.used + n > b.buf.length) {
      b = this.#spare.pop() ?? { buf: Buffer.allocUnsafeSlow(SegmentArena.BLOCK), used: 0, live: 0 };
      this.#current = b;
    }
    // (8-aligned: the index's u64 fields stay aligned)
    const at = b.used;
    seg.batch.copy(b.buf, at, from, to);
    b.used = (at + n + 7) & ~7;
    const delta = at - from;
    return { seg: { ...seg, batch: b.buf, linesStart: seg.linesStart + delta, linesEnd: seg.linesEnd + delta, indexStart: seg.indexStart + delta }, block: b };
  }

  /** release: a run in the block was written; a block nothing points into is filled again */
  release(b: ArenaBlock): void {
    if (--b.live > 0) return;
    b.used = 0;
    if (b !== this.#current && this.#spare.length < SegmentArena.SPARE) this.#spare.push(b);
  }
}

import * as fs from 'node:fs';
import { segmentLine, segmentLineOffset, type Segment } from '../decode/segment';
import { PROBE_NAMES } from '../decode/layout';
import type { Ledger } from '../model/ledger';
import { outputError } from './fsio';
import { LineBuffer } from './line-buffer';
import type { LineInfo, RecordSink } from './sink';

/** Defaults of the --stdout writer (docs/cli.md, "Live output"; docs/format.md, "SIGKILL"). */
export const DEFAULT_FLUSH_INTERVAL_MS = 200;
export const DEFAULT_MAX_BACKLOG_BYTES = 64 << 20;
export const DEFAULT_CLOSE_TIMEOUT_MS = 3000;

export interface StreamSinkOptions {
  /** a record waits at most this long in the buffer before it is written (--flush-interval) */
  flushIntervalMs?: number;
  /** bytes waiting for a slow reader beyond which new records are counted lost, not queued */
  maxBacklogBytes?: number;
  /** close() waits at most this long for the reader; what is left is counted lost */
  closeTimeoutMs?: number;
  /** the first write error (EPIPE: the reader went away) once it happened */
  onError?: (err: unknown) => void;
  /** fs.write, injectable for tests */
  write?: (fd: number, data: Buffer, offset: number, length: number, callback: (err: NodeJS.ErrnoException | null, written: number) => void) => void;
}

/** Why records of --stdout were not written. */
export type StreamLossReason = 'reader_stalled' | 'reader_closed';

interface Pending {
  data: Buffer;
  offset: number;
  /** the probe of each line in data, in order */
  probes: ProbeRuns;
}

/**
 * ProbeRuns: the probe of each line of a buffer, run-length encoded: a fast-path segment adds one
 * run for its thousands of lines, not one array element per line (docs/benchmarks.md, "Signed path").
 */
class ProbeRuns {
  readonly probes: string[] = [];
  readonly counts: number[] = [];
  total = 0;

  push(probe: string, n = 1): void {
    if (n <= 0) return;
    const last = this.probes.length - 1;
    if (last >= 0 && this.probes[last] === probe) this.counts[last]! += n;
    else {
      this.probes.push(probe);
      this.counts.push(n);
    }
    this.total += n;
  }

  /** after: the runs of the lines from line `skip` on */
  after(skip: number): Array<[string, number]> {
    const out: Array<[string, number]> = [];
    for (let i = 0; i < this.probes.length; i++) {
      const n = this.counts[i]!;
      if (skip >= n) {
        skip -= n;
        continue;
      }
      out.push([this.probes[i]!, n - skip]);
      skip = 0;
    }
    return out;
  }
}

/**
 * StreamSink writes plain (unsigned) NDJSON to a file descriptor (--stdout): whole lines only,
 * in large writes under load (a full 1 MiB buffer) and at most `flushIntervalMs` after a record
 * arrived when it is quiet. Writes never block the event loop: a reader that stalls fills a
 * bounded backlog, after which records are counted as lost (`unwritten()`, reason `reader_stalled`),
 * and close() gives up after `closeTimeoutMs`, counting what is left, so SIGTERM ends the run
 * in bounded time whatever the reader does.
 */
export class StreamSink implements RecordSink {
  readonly #fd: number;
  readonly #o: Required<Omit<StreamSinkOptions, 'onError'>> & Pick<StreamSinkOptions, 'onError'>;
  #lines = new LineBuffer();
  #lineProbes = new ProbeRuns();
  readonly #queue: Pending[] = [];
  #queuedBytes = 0;
  #written = 0;
  #writing = false;
  #timer: NodeJS.Timeout | undefined;
  #retry: NodeJS.Timeout | undefined;
  #failure: unknown;
  #idle: (() => void)[] = [];
  readonly #lost = new Map<string, bigint>();
  /** buffers whose bytes were written, for the line buffer to fill again (at most 2 kept) */
  readonly #spare: Buffer[] = [];
  readonly #lostReasons = new Map<StreamLossReason, bigint>();

  constructor(fd: number, options: StreamSinkOptions = {}) {
    this.#fd = fd;
    this.#o = {
      flushIntervalMs: DEFAULT_FLUSH_INTERVAL_MS, maxBacklogBytes: DEFAULT_MAX_BACKLOG_BYTES, closeTimeoutMs: DEFAULT_CLOSE_TIMEOUT_MS,
      write: (f, d, o, l, cb) => fs.write(f, d, o, l, null, cb), ...options,
    };
  }

  get backlogBytes(): number {
    return this.#lines.length + this.#queuedBytes;
  }

  get bytesWritten(): number {
    return this.#written;
  }

  /** records that could not be written, per probe */
  unwritten(): Map<string, bigint> {
    return new Map(this.#lost);
  }

  /** records that could not be written, per reason */
  lostReasons(): Map<StreamLossReason, bigint> {
    return new Map(this.#lostReasons);
  }

  write(line: string, info: LineInfo): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (!this.#lines.fits(line)) this.#flush();
    this.#lines.append(line);
    this.#lineProbes.push(info.probe);
    this.#arm();
  }

  /** writeSegment writes lines [first, last) of a fast-path segment, like write() per line. */
  writeSegment(seg: Segment, first: number, last: number): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (last <= first) return;
    const start = seg.linesStart + segmentLineOffset(seg, first);
    const end = seg.linesStart + segmentLineOffset(seg, last);
    if (!this.#lines.fitsBytes(end - start)) this.#flush();
    this.#lines.appendBytes(seg.batch, start, end);
    if (seg.soleProbe >= 0) this.#lineProbes.push(PROBE_NAMES[seg.soleProbe]!, last - first);
    else for (let i = first; i < last; i++) this.#lineProbes.push(segmentLine(seg, i).probe);
    this.#arm();
  }

  #arm(): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = undefined;
      this.#flush();
    }, this.#o.flushIntervalMs);
  }

  async close(_ledger: Ledger): Promise<void> {
    this.#flush();
    if (this.#queue.length > 0) {
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#idle.push(resolve)),
        new Promise<void>((resolve) => { timeout = setTimeout(resolve, this.#o.closeTimeoutMs); }),
      ]);
      clearTimeout(timeout);
    }
    if (this.#retry !== undefined) clearTimeout(this.#retry);
    // a write still in flight (a blocking reader) cannot be taken back: its records are counted
    // lines of a partly written buffer that did go out count as written
    for (const p of this.#queue.splice(0)) {
      this.#count(p.probes.after(p.offset > 0 ? linesIn(p.data, p.offset) : 0), this.#failure !== undefined ? 'reader_closed' : 'reader_stalled');
    }
    this.#queuedBytes = 0;
    if (this.#failure !== undefined && !isClosedPipe(this.#failure)) throw this.#failure;
    if (this.#fd > 2) fs.closeSync(this.#fd);
  }

  #flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#lines.length === 0) return;
    // a buffer whose write completed is reused: no 1 MiB of new memory per flush under load
    const data = this.#lines.take(this.#spare.pop());
    const records = this.#lineProbes;
    this.#lineProbes = new ProbeRuns();
    if (this.#failure !== undefined) {
      this.#count(records, 'reader_closed');
      return;
    }
    if (this.#queuedBytes + data.length > this.#o.maxBacklogBytes && this.#queue.length > 0) {
      this.#count(records, 'reader_stalled');
      return;
    }
    this.#queue.push({ data, offset: 0, probes: records });
    this.#queuedBytes += data.length;
    this.#pump();
  }

  #pump(): void {
    if (this.#writing || this.#retry !== undefined) return;
    const head = this.#queue[0];
    if (head === undefined) {
      for (const resolve of this.#idle.splice(0)) resolve();
      return;
    }
    this.#writing = true;
    this.#o.write(this.#fd, head.data, head.offset, head.data.length - head.offset, (err, n) => {
      this.#writing = false;
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          // a non-blocking pipe whose reader is behind: try again shortly, without blocking
          this.#retry = setTimeout(() => {
            this.#retry = undefined;
            this.#pump();
          }, 5);
          return;
        }
        this.#fail(outputError(err, 'cannot write standard output'));
        return;
      }
      head.offset += n;
      this.#written += n;
      this.#queuedBytes -= n;
      if (head.offset >= head.data.length) {
        this.#queue.shift();
        // the line buffer's memory behind this view can be filled again
        const whole = Buffer.from(head.data.buffer, head.data.byteOffset, head.data.buffer.byteLength - head.data.byteOffset);
        if (this.#spare.length < 2 && head.data.byteOffset === 0 && whole.length >= this.#lines.capacity) this.#spare.push(whole);
      }
      this.#pump();
    });
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    for (const p of this.#queue.splice(0)) this.#count(p.probes.after(p.offset > 0 ? linesIn(p.data, p.offset) : 0), 'reader_closed');
    this.#queuedBytes = 0;
    for (const resolve of this.#idle.splice(0)) resolve();
    this.#o.onError?.(err);
  }

  #count(runs: ProbeRuns | Array<[string, number]>, reason: StreamLossReason): void {
    let total = 0;
    for (const [probe, n] of runs instanceof ProbeRuns ? runs.after(0) : runs) {
      this.#lost.set(probe, (this.#lost.get(probe) ?? 0n) + BigInt(n));
      total += n;
    }
    this.#lostReasons.set(reason, (this.#lostReasons.get(reason) ?? 0n) + BigInt(total));
  }
}

/** linesIn counts the whole lines in data[0, end). */
function linesIn(data: Buffer, end: number): number {
  let n = 0;
  for (let i = data.indexOf(0x0a, 0); i !== -1 && i < end; i = data.indexOf(0x0a, i + 1)) n++;
  return n;
}

function isClosedPipe(err: unknown): boolean {
  return (err as { code?: unknown }).code === 'OUTPUT_CLOSED';
}

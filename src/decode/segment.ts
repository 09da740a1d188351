import { PROBE_NAMES, type ProbeName } from './layout';

/**
 * Segments: the fast path's output (native/encode.h). The addon's consumer thread encodes
 * file_open records straight into canonical NDJSON lines and hands them over in segment
 * frames, next to the raw record frames of everything it left to the reference path:
 *
 *   frame   [u32 len][u32 kind][len bytes][pad to 8]      kind 0: a raw record, 1: a segment
 *   segment header (80 bytes) | lines (each ending in '\n') | pad to 8 | index (32 bytes per line)
 *
 * The bytes come from our own addon, not from the kernel; they are still checked before use,
 * and a malformed segment is an internal error.
 */
export const FrameKind = { RECORD: 0, SEGMENT: 1 } as const;

export const SegmentHeader = {
  count: 0, lines_bytes: 4, index_offset: 8, invalid_utf8: 12, unresolved_relative_paths: 16, descents: 20, by_probe: 24,
  first_ts: 48, last_ts: 56, min_ts: 64, max_ts: 72, SIZE: 80,
} as const;
export const SegmentLine = { end: 0, probe: 4, v1: 5, flags: 6, ts: 8, cgroup: 16, key: 24, SIZE: 32 } as const;
/** SegmentLine.flags: the line's file key equals the previous line's in the same segment */
export const LINE_SAME_KEY = 0x1;

/** segmentSameKey: line i names the same file (cgroup and path) as line i - 1 of the segment (i > 0) */
export function segmentSameKey(seg: Segment, i: number): boolean {
  return (seg.batch[seg.indexStart + i * SegmentLine.SIZE + SegmentLine.flags]! & LINE_SAME_KEY) !== 0;
}

/** One segment of encoded lines, as offsets into the batch it arrived in. */
export interface Segment {
  readonly batch: Buffer;
  readonly count: number;
  /** the lines: batch[linesStart, linesEnd) */
  readonly linesStart: number;
  readonly linesEnd: number;
  readonly indexStart: number;
  readonly invalidUtf8: number;
  readonly unresolvedRelativePaths: number;
  /** lines per probe, in PROBE_NAMES order */
  readonly byProbe: readonly number[];
  /** the probe of every line when there is only one (PROBE_NAMES index), else -1 */
  readonly soleProbe: number;
  /** lines whose ts is below the previous line's (0: the lines are in ts order, any range of them too) */
  readonly descents: number;
  readonly firstTs: bigint;
  readonly lastTs: bigint;
  readonly minTs: bigint;
  readonly maxTs: bigint;
}

/** readSegment checks and reads the segment frame body at batch[start, start + len). */
export function readSegment(batch: Buffer, start: number, len: number): Segment {
  if (len < SegmentHeader.SIZE) throw new Error('fast path: short segment');
  const count = batch.readUInt32LE(start + SegmentHeader.count);
  const linesBytes = batch.readUInt32LE(start + SegmentHeader.lines_bytes);
  const indexOffset = batch.readUInt32LE(start + SegmentHeader.index_offset);
  if (count === 0 || indexOffset < SegmentHeader.SIZE + linesBytes || indexOffset + count * SegmentLine.SIZE !== len) {
    throw new Error('fast path: malformed segment');
  }
  const byProbe: number[] = [];
  let sum = 0;
  let soleProbe = -1;
  for (let i = 0; i < PROBE_NAMES.length; i++) {
    const n = batch.readUInt32LE(start + SegmentHeader.by_probe + 4 * i);
    byProbe.push(n);
    sum += n;
    if (n === count) soleProbe = i;
  }
  const descents = batch.readUInt32LE(start + SegmentHeader.descents);
  const linesStart = start + SegmentHeader.SIZE;
  const indexStart = start + indexOffset;
  if (sum !== count || descents >= count || batch.readUInt32LE(indexStart + (count - 1) * SegmentLine.SIZE) !== linesBytes) {
    throw new Error('fast path: segment counts disagree');
  }
  return {
    batch, count, linesStart, linesEnd: linesStart + linesBytes, indexStart,
    invalidUtf8: batch.readUInt32LE(start + SegmentHeader.invalid_utf8),
    unresolvedRelativePaths: batch.readUInt32LE(start + SegmentHeader.unresolved_relative_paths),
    byProbe, soleProbe, descents,
    firstTs: batch.readBigUInt64LE(start + SegmentHeader.first_ts),
    lastTs: batch.readBigUInt64LE(start + SegmentHeader.last_ts),
    minTs: batch.readBigUInt64LE(start + SegmentHeader.min_ts),
    maxTs: batch.readBigUInt64LE(start + SegmentHeader.max_ts),
  };
}

/** The i-th line of a segment: its bytes (with the '\n') and what the sink and attribution need. */
export interface SegmentLineInfo {
  start: number;
  end: number;
  probe: ProbeName;
  tsNs: bigint;
  cgroup: bigint;
  v1: boolean;
}

export function segmentLine(seg: Segment, i: number): SegmentLineInfo {
  const at = seg.indexStart + i * SegmentLine.SIZE;
  const start = i === 0 ? seg.linesStart : seg.linesStart + seg.batch.readUInt32LE(at - SegmentLine.SIZE + SegmentLine.end);
  const end = seg.linesStart + seg.batch.readUInt32LE(at + SegmentLine.end);
  const probe = PROBE_NAMES[seg.batch[at + SegmentLine.probe]!];
  if (probe === undefined || end <= start || end > seg.linesEnd) throw new Error('fast path: malformed segment line');
  return {
    start, end, probe,
    tsNs: seg.batch.readBigUInt64LE(at + SegmentLine.ts),
    cgroup: seg.batch.readBigUInt64LE(at + SegmentLine.cgroup),
    v1: seg.batch[at + SegmentLine.v1] === 1,
  };
}

/**
 * forEachFrameOf walks a batch from the addon like forEachFrame, handing raw records and
 * segments to their own callbacks, in order.
 */
export function forEachFrameOf(batch: Buffer, used: number, onRecord: (record: Buffer) => void, onSegment: (seg: Segment) => void): void {
  let offset = 0;
  while (offset + 8 <= used) {
    const len = batch.readUInt32LE(offset);
    if (offset + 8 + len > used) break;
    if (batch.readUInt32LE(offset + 4) === FrameKind.SEGMENT) onSegment(readSegment(batch, offset + 8, len));
    else onRecord(batch.subarray(offset + 8, offset + 8 + len));
    offset += 8 + ((len + 7) & ~7);
  }
}

/**
 * segmentFileKey: 53 bits of the line's file key (a hash of its cgroup and path, native/encode.c),
 * as a number, so a window of files seen can be a Set without a string per line.
 */
export function segmentFileKey(seg: Segment, i: number): number {
  const at = seg.indexStart + i * SegmentLine.SIZE + SegmentLine.key;
  return (seg.batch.readUInt32LE(at + 4) >>> 11) * 0x100000000 + seg.batch.readUInt32LE(at);
}

/** segmentRecord parses one line back into the fields package attribution needs. */
export function segmentRecord(seg: Segment, i: number): { pid: number; container_id?: string; image_digest?: string; event: { type: string; path?: string } } {
  const l = segmentLine(seg, i);
  return JSON.parse(seg.batch.toString('utf8', l.start, l.end - 1)) as { pid: number; event: { type: string; path?: string } };
}

/*
 * Ranges of a segment without a per-line object or BigInt (docs/benchmarks.md, "Session 4 (h21)"):
 * the order merge and the chunk writer take ranges [first, last) of lines, cut by timestamps and
 * by a chunk's size limit; they read the index as u32 words and make a BigInt only per range.
 */

/** the offset of line i's first byte from the start of the lines (i = count: their end) */
export function segmentLineOffset(seg: Segment, i: number): number {
  return i === 0 ? 0 : seg.batch.readUInt32LE(seg.indexStart + (i - 1) * SegmentLine.SIZE + SegmentLine.end);
}

/** the ts of line i */
export function segmentTs(seg: Segment, i: number): bigint {
  return seg.batch.readBigUInt64LE(seg.indexStart + i * SegmentLine.SIZE + SegmentLine.ts);
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * segmentUpperBound: in a range [from, to) whose ts do not decrease, the first line whose ts is
 * above `limit` (`to` when none is). One BigInt split, then a binary search over u32 words.
 */
export function segmentUpperBound(seg: Segment, from: number, to: number, limit: bigint): number {
  if (limit < 0n) return from;
  if (limit >= U64_MAX) return to;
  return bound(seg, from, to, Number(limit >> 32n), Number(limit & 0xffffffffn), true);
}

/** segmentLowerBound: in a range whose ts do not decrease, the first line whose ts is at least `min` */
export function segmentLowerBound(seg: Segment, from: number, to: number, min: bigint): number {
  if (min <= 0n) return from;
  if (min > U64_MAX) return to;
  return bound(seg, from, to, Number(min >> 32n), Number(min & 0xffffffffn), false);
}

/** the first line in [lo, hi) whose ts is above (strict) or at least (!strict) (hi32, lo32) */
function bound(seg: Segment, lo: number, hi: number, hi32: number, lo32: number, strict: boolean): number {
  const b = seg.batch;
  const base = seg.indexStart + SegmentLine.ts;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const at = base + mid * SegmentLine.SIZE;
    const h = b.readUInt32LE(at + 4);
    const l = b.readUInt32LE(at);
    const past = h > hi32 || (h === hi32 && (strict ? l > lo32 : l >= lo32));
    if (past) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** segmentRangeTs: the first, last, smallest and largest ts of lines [first, last) (last > first) */
export function segmentRangeTs(seg: Segment, first: number, last: number): { first: bigint; last: bigint; min: bigint; max: bigint } {
  const firstTs = first === 0 ? seg.firstTs : segmentTs(seg, first);
  const lastTs = last === seg.count ? seg.lastTs : segmentTs(seg, last - 1);
  if (seg.descents === 0) return { first: firstTs, last: lastTs, min: firstTs, max: lastTs };
  if (first === 0 && last === seg.count) return { first: firstTs, last: lastTs, min: seg.minTs, max: seg.maxTs };
  // out of order somewhere: the smallest and largest by their u32 words
  const b = seg.batch;
  const base = seg.indexStart + SegmentLine.ts;
  let minAt = first;
  let maxAt = first;
  let minHi = b.readUInt32LE(base + first * SegmentLine.SIZE + 4);
  let minLo = b.readUInt32LE(base + first * SegmentLine.SIZE);
  let maxHi = minHi;
  let maxLo = minLo;
  for (let i = first + 1; i < last; i++) {
    const at = base + i * SegmentLine.SIZE;
    const h = b.readUInt32LE(at + 4);
    const l = b.readUInt32LE(at);
    if (h < minHi || (h === minHi && l < minLo)) {
      minHi = h;
      minLo = l;
      minAt = i;
    }
    if (h > maxHi || (h === maxHi && l > maxLo)) {
      maxHi = h;
      maxLo = l;
      maxAt = i;
    }
  }
  return { first: firstTs, last: lastTs, min: segmentTs(seg, minAt), max: segmentTs(seg, maxAt) };
}

/** segmentRangeProbes adds the lines of [first, last) per probe (PROBE_NAMES index) to `into` */
export function segmentRangeProbes(seg: Segment, first: number, last: number, into: number[]): void {
  if (seg.soleProbe >= 0) {
    into[seg.soleProbe]! += last - first;
    return;
  }
  const b = seg.batch;
  for (let i = first; i < last; i++) {
    const p = b[seg.indexStart + i * SegmentLine.SIZE + SegmentLine.probe]!;
    if (PROBE_NAMES[p] === undefined) throw new Error('fast path: malformed segment line');
    into[p]! += 1;
  }
}

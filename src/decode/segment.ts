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
  count: 0, lines_bytes: 4, index_offset: 8, invalid_utf8: 12, unresolved_relative_paths: 16, by_probe: 24,
  first_ts: 48, last_ts: 56, min_ts: 64, max_ts: 72, SIZE: 80,
} as const;
export const SegmentLine = { end: 0, probe: 4, v1: 5, ts: 8, cgroup: 16, key: 24, SIZE: 32 } as const;

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
  for (let i = 0; i < PROBE_NAMES.length; i++) {
    const n = batch.readUInt32LE(start + SegmentHeader.by_probe + 4 * i);
    byProbe.push(n);
    sum += n;
  }
  const linesStart = start + SegmentHeader.SIZE;
  const indexStart = start + indexOffset;
  if (sum !== count || batch.readUInt32LE(indexStart + (count - 1) * SegmentLine.SIZE) !== linesBytes) {
    throw new Error('fast path: segment counts disagree');
  }
  return {
    batch, count, linesStart, linesEnd: linesStart + linesBytes, indexStart,
    invalidUtf8: batch.readUInt32LE(start + SegmentHeader.invalid_utf8),
    unresolvedRelativePaths: batch.readUInt32LE(start + SegmentHeader.unresolved_relative_paths),
    byProbe,
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

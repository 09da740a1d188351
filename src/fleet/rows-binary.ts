import { isUtf8 } from 'node:buffer';
import { AttributionSubjects, subjectsOf } from '../packages/evidence';
import type { ChunkContent } from '../verify';
import type { ChunkFacts } from './chunk-check';
import { E_ACCESS, E_ADDR, E_BYTES, E_DADDR, E_DPORT, E_FILENAME, E_LIBRARY, E_NODE_HASH, E_OPERATION, E_PATH, E_PORT, E_RUNTIME, E_SADDR, E_SPORT, E_SYMBOL, E_TYPE,
  F_COMM, F_CONTAINER_ID, F_EVENT, F_IMAGE_DIGEST, F_PID, F_SRC, F_TID, K_ESC, K_NUM, K_OBJ, K_STR, LineScan } from './line-scan';
import { RECORD_COLUMNS } from './rows';

/**
 * Chunk body -> the rows of `records` in PostgreSQL's binary COPY format, built in one pass in
 * JavaScript and copied straight into the table (no staging, no per-row parsing in the
 * server). The columns are encodeRows' (src/fleet/rows.ts) rule for rule, value for value;
 * only the wire format differs: integers are binary (int4, int8), u64 values (ts_ns,
 * cgroup_id) are int8s biased by -2^63 (schema v5: ts_ns_biased, cgroup_id_biased; exact and
 * in the same order) read from the line's digits into two 32-bit halves (no BigInt and no
 * rounding through one JS number; wall_ns is computed on the halves too), text
 * values are the line's bytes where a string has no escapes (the body is checked to be UTF-8
 * first). The line itself is the row's last column (bytea, schema v6), with its (line_off,
 * line_len) in the body; the body is not stored apart (TOAST of a body cost PostgreSQL more than
 * the lines in their rows: docs/benchmarks.md "Session 5 (h29)").
 * Each line is read by the canonical-line scanner (src/fleet/line-scan.ts); a line it does not
 * read exactly goes through JSON.parse, with the same result (test/unit/fleet-line-scan.test.ts).
 * A body this path does not take (not UTF-8, a line that is not a record, a value out of its
 * column's range) returns undefined: the caller builds it with encodeRows, which gives the
 * diagnosis (line problems) or the same database error it always did.
 * test/e2e/fleet-rows.e2e.test.ts compares the columns of both builders on every event type.
 */

export const COPY_RECORDS_BINARY = `COPY records (${RECORD_COLUMNS.join(', ')}) FROM STDIN WITH (FORMAT binary)`;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const NCOLS = RECORD_COLUMNS.length;
const INT4_MIN = -2147483648;
const INT4_MAX = 2147483647;
const TWO32 = 4294967296;

/** the size of a COPY piece */
const PIECE_BYTES = 1 << 20;
/**
 * Piece buffers handed back after their COPY (releaseRows), for the next chunk: a chunk's rows
 * take a few MiB, and allocating them anew for every chunk made V8 collect garbage for the
 * external memory alone (GC was 14 % of ingest's busy time). At most this many are kept.
 */
const POOL_MAX = 8;
const POOL: Buffer[] = [];

function pieceBuffer(size: number): Buffer {
  return size === PIECE_BYTES && POOL.length > 0 ? POOL.pop()! : Buffer.allocUnsafe(size);
}

/** A growing output buffer, cut into pieces of about 1 MiB for the COPY stream. */
class Out {
  pieces: Buffer[] = [];
  /** the buffers under the pieces */
  owned: Buffer[] = [];
  buf: Buffer;
  at = 0;
  constructor(private readonly size: number) {
    this.buf = pieceBuffer(size);
  }
  /** room for n more bytes in the current piece (a row never spans two pieces) */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.size));
  }
  flush(last = false): void {
    if (this.at > 0) {
      this.pieces.push(this.buf.subarray(0, this.at));
      this.owned.push(this.buf);
      // the last piece keeps its buffer: no new one for nothing (big buffers are what GC pays for here)
      if (!last) this.buf = pieceBuffer(this.size);
    }
    this.at = 0;
  }
}

/**
 * releaseRows hands the buffers of rows whose COPY has completed (the server answered it, so
 * the socket holds none of them any more) back for the next chunk's rows. Not after a failed
 * COPY: the socket may still be writing them.
 */
export function releaseRows(rows: BinaryRows): void {
  for (const b of rows.owned) if (b.length === PIECE_BYTES && POOL.length < POOL_MAX) POOL.push(b);
  rows.owned = [];
}

/** a big-endian int32 without the bounds checks of writeInt32BE (the caller made room) */
function put32(b: Buffer, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

function put16(b: Buffer, at: number, v: number): void {
  b[at] = v >>> 8;
  b[at + 1] = v;
}

function int4(o: Out, v: number | null): void {
  if (v === null) {
    put32(o.buf, o.at, -1);
    o.at += 4;
    return;
  }
  put32(o.buf, o.at, 4);
  put32(o.buf, o.at + 4, v);
  o.at += 8;
}

/** int8 of hi * 2^32 + lo (hi a signed 32-bit value, lo in [0, 2^32)): two big-endian words, no BigInt */
function int8hl(o: Out, hi: number, lo: number): void {
  const b = o.buf;
  const at = o.at;
  put32(b, at, 8);
  put32(b, at + 4, hi);
  put32(b, at + 8, lo);
  o.at = at + 12;
}

/** int8 of a safe integer */
function int8n(o: Out, v: number): void {
  const hi = Math.floor(v / TWO32);
  int8hl(o, hi, v - hi * TWO32);
}

/**
 * A u64 read from ASCII digits into two exact 32-bit halves (U64_HI, U64_LO), without BigInt:
 * decimal digits accumulate in doubles and carry into the high half every 4 digits (every value
 * stays below 2^46, exact); false when the digits are beyond 2^64 - 1.
 */
let U64_HI = 0;
let U64_LO = 0;
function u64(b: Buffer, s: number, e: number): boolean {
  let hi = 0;
  let lo = 0;
  let k = 0;
  for (let i = s; i < e; i++) {
    lo = lo * 10 + (b[i]! - 0x30);
    hi *= 10;
    if (++k === 4 || i === e - 1) {
      k = 0;
      if (lo >= TWO32) {
        const c = Math.floor(lo / TWO32);
        lo -= c * TWO32;
        hi += c;
      }
      if (hi >= TWO32) return false;
    }
  }
  U64_HI = hi;
  U64_LO = lo;
  return true;
}

/** the two halves of a bigint (hi signed, floor division; exact for |v| < 2^84) */
function halves(v: bigint): [number, number] {
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

function text(o: Out, v: string | null): void {
  const b = o.buf;
  if (v === null) {
    put32(b, o.at, -1);
    o.at += 4;
    return;
  }
  // short ASCII strings (most values) byte by byte; anything else through the UTF-8 encoder
  const at = o.at + 4;
  let i = 0;
  if (v.length <= 64) {
    for (; i < v.length; i++) {
      const c = v.charCodeAt(i);
      if (c >= 0x80) break;
      b[at + i] = c;
    }
  }
  const n = i === v.length ? i : b.write(v, at, 'utf8');
  put32(b, o.at, n);
  o.at = at + n;
}

function str(v: unknown, max = 4096): string | null {
  return typeof v === 'string' ? v.slice(0, max) : null;
}

/** int(): encodeRows' rule (a safe integer, else NULL), undefined when PostgreSQL's int4 cannot hold it */
function int(v: unknown): number | null | undefined {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) return null;
  return v >= INT4_MIN && v <= INT4_MAX ? v : undefined;
}

export interface BinaryRows {
  /** the COPY data (header, rows, trailer) in pieces of about 1 MiB */
  pieces: Buffer[];
  content: ChunkContent;
  /** lines the canonical-line scanner did not read exactly, read with JSON.parse instead (counted by ingest) */
  parsed: number;
  /** the buffers under the pieces (releaseRows) */
  owned: Buffer[];
}

const TS_KEY = Buffer.from('"ts_ns":', 'latin1');
const CGROUP_PREFIX = Buffer.from('{"cgroup_id":', 'latin1');

/** the start of the digits of ..."ts_ns":<1-20 digits>} at the end of b[s..e), or -1 (the digits end at e - 1) */
function tsDigitsAt(b: Buffer, s: number, e: number): number {
  const end = e - 1;
  if (end < s || b[end] !== 0x7d) return -1;
  let i = end;
  while (i > s && end - i < 21) {
    const c = b[i - 1]!;
    if (c < 0x30 || c > 0x39) break;
    i--;
  }
  const n = end - i;
  const k = i - TS_KEY.length;
  if (n < 1 || n > 20 || k < s) return -1;
  for (let j = 0; j < TS_KEY.length; j++) if (b[k + j] !== TS_KEY[j]) return -1;
  return i;
}

/** the end of the digits of a leading {"cgroup_id":<1-20 digits>, in b[s..e), or -1 (they start at s + 13) */
function cgroupDigitsEnd(b: Buffer, s: number, e: number): number {
  if (e - s < CGROUP_PREFIX.length) return -1;
  for (let j = 0; j < CGROUP_PREFIX.length; j++) if (b[s + j] !== CGROUP_PREFIX[j]) return -1;
  const from = s + CGROUP_PREFIX.length;
  let i = from;
  while (i < e && i - from < 21) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  const n = i - from;
  return n >= 1 && n <= 20 && i < e && b[i] === 0x2c ? i : -1;
}

/** numeric from the ASCII digits b[s..e) (1-20 of them): base-10000 groups, most significant first */
function numeric(o: Out, b: Buffer, s: number, e: number): void {
  const ob = o.buf;
  const len = e - s;
  const groups = (len + 3) >> 2;
  put32(ob, o.at, 8 + 2 * groups);
  put16(ob, o.at + 4, groups); // ndigits
  put16(ob, o.at + 6, groups - 1); // weight: the first group holds the highest power of 10000
  put16(ob, o.at + 8, 0); // sign +
  put16(ob, o.at + 10, 0); // dscale
  let at = o.at + 12;
  // the first group takes the digits beyond a multiple of 4; leading zeros (groups of 0) the server strips
  let i = s;
  for (let g = 0, n = len - (groups - 1) * 4; g < groups; g++, n = 4, at += 2) {
    let v = 0;
    for (let k = 0; k < n; k++) v = v * 10 + (b[i++]! - 0x30);
    put16(ob, at, v);
  }
  o.at = at;
}

/** schema v4's numeric(20) u64 columns (bench comparison only), else v5's biased int8 */
let NUMERIC_U64 = false;

/** the cgroup_id column of the line b[s..e): NULL, or its u64 biased to int8; false when beyond u64 (not the binary path's) */
function cgroup(o: Out, b: Buffer, s: number, e: number): boolean {
  const cgEnd = cgroupDigitsEnd(b, s, e);
  if (cgEnd < 0) {
    nul(o);
    return true;
  }
  const from = s + CGROUP_PREFIX.length;
  if (NUMERIC_U64) {
    numeric(o, b, from, cgEnd);
    return true;
  }
  if (!u64(b, from, cgEnd)) return false;
  int8hl(o, U64_HI ^ 0x80000000, U64_LO);
  return true;
}

/** a plain Uint8Array over the body being built (its subarray is cheaper than a Buffer's) */
let BODY_U8: Uint8Array = new Uint8Array(0);
let BODY_OF: Buffer | undefined;

/**
 * n bytes of b (the body) from s to ob at `at`: a byte loop for a few bytes, else
 * Uint8Array.set of a subarray (a memcpy; measured 5x faster than a byte loop for a line, and
 * faster than Buffer.copy, whose JavaScript wrapper costs more than the copy)
 */
function copyBytes(ob: Buffer, at: number, b: Buffer, s: number, n: number): void {
  if (n <= 16) {
    for (let i = 0; i < n; i++) ob[at + i] = b[s + i]!;
    return;
  }
  if (BODY_OF !== b) {
    BODY_U8 = new Uint8Array(b.buffer, b.byteOffset, b.length);
    BODY_OF = b;
  }
  ob.set(BODY_U8.subarray(s, s + n), at);
}

function nul(o: Out): void {
  put32(o.buf, o.at, -1);
  o.at += 4;
}

/** the event types, interned (the type column and the per-type columns) */
const TYPES = ['file_open', 'process_exec', 'net_connect', 'tcp_state', 'ssl_op', 'function_call'] as const;
const TYPE_BYTES = TYPES.map((t) => Buffer.from(t, 'latin1'));
const TYPE_INDEX = new Map<string, number>(TYPES.map((t, i) => [t, i]));
/** the TYPES index of the row just written (-1: another type), counted without a Map lookup per row */
let ROW_TYPE = -1;

/**
 * The columns that depend on the event type, per type: the event field each one takes (-1: NULL)
 * and its length limit; encodeRows' switch, as a table.
 * path, access, peer_addr, peer_port, local_addr, local_port, symbol, library, node_hash, runtime, ssl_bytes, ssl_op
 */
const NONE = [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1];
const PER_TYPE: number[][] = [
  [E_PATH, E_ACCESS, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
  [E_FILENAME, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1],
  [-1, -1, E_ADDR, E_PORT, -1, -1, -1, -1, -1, -1, -1, -1],
  [-1, -1, E_DADDR, E_DPORT, E_SADDR, E_SPORT, -1, -1, -1, -1, -1, -1],
  [-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, E_BYTES, E_OPERATION],
  [-1, -1, -1, -1, -1, -1, E_SYMBOL, E_LIBRARY, E_NODE_HASH, E_RUNTIME, -1, -1],
];

/** a scanned field as text (str(v, max) of the JSON.parse path), or NULL */
function textField(o: Out, b: Buffer, sc: LineScan, slot: number, max: number): void {
  if (slot < 0) return nul(o);
  const k = sc.kind[slot];
  if (k === K_STR) {
    const s = sc.start[slot]!;
    const n = sc.end[slot]! - s;
    // n bytes of valid UTF-8 are at most n UTF-16 units: within max, the string is not cut and
    // its UTF-8 is these bytes
    if (n <= max) {
      const ob = o.buf;
      const at = o.at + 4;
      put32(ob, o.at, n);
      copyBytes(ob, at, b, s, n);
      o.at = at + n;
      return;
    }
    return text(o, b.toString('utf8', s, s + n).slice(0, max));
  }
  if (k === K_ESC) return text(o, (JSON.parse(b.toString('utf8', sc.start[slot]! - 1, sc.end[slot]! + 1)) as string).slice(0, max));
  return nul(o);
}

/** a scanned field as a string, whole (undefined when not a string): what subjectsOf reads */
function fullString(b: Buffer, sc: LineScan, slot: number): string | undefined {
  const k = sc.kind[slot];
  if (k === K_STR) return b.toString('utf8', sc.start[slot]!, sc.end[slot]!);
  if (k === K_ESC) return JSON.parse(b.toString('utf8', sc.start[slot]! - 1, sc.end[slot]! + 1)) as string;
  return undefined;
}

/** int() of a scanned field: the integer, null, or undefined when int4 cannot hold it */
function intField(sc: LineScan, slot: number): number | null | undefined {
  if (slot < 0 || sc.kind[slot] !== K_NUM) return null;
  const v = sc.num[slot]!;
  return v >= INT4_MIN && v <= INT4_MAX ? v : undefined;
}

export interface BuildOptions {
  /** read canonical lines with the byte scanner (default); false: JSON.parse every line (the reference the scanner is tested against) */
  scan?: boolean;
  /**
   * u64 columns as schema v4's numeric(20) (ts_ns, cgroup_id), for bench/fleet-rows.bench.ts's
   * comparison by column; default: schema v5's biased int8 (ts_ns_biased, cgroup_id_biased)
   */
  numericU64?: boolean;
  /** false: rows without the line column (schema v5's layout, the body stored in chunks.body instead; bench comparison only) */
  line?: boolean;
}

/**
 * encodeRowsBinary builds the binary COPY of a verified chunk body and the summary the
 * predicate is checked against (attribution subjects only when `subjects`), or undefined.
 * Each line is read by the canonical-line scanner (src/fleet/line-scan.ts) or, when the scanner
 * does not take it, by JSON.parse: the same row either way.
 */
export function encodeRowsBinary(body: Buffer, f: ChunkFacts, chunkId: bigint, subjects: boolean, opts: BuildOptions = {}): BinaryRows | undefined {
  if (!isUtf8(body)) return undefined;
  const useScan = opts.scan !== false;
  NUMERIC_U64 = opts.numericU64 === true;
  const withLine = opts.line !== false;
  const ncols = withLine ? NCOLS : NCOLS - 1;
  const content: ChunkContent = { sha256: f.chunkSha256, bytes: body.length, count: 0, byType: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null, tailBytes: 0, lineProblems: [], subjects: new AttributionSubjects() };
  // wall = ts + the delta of the nearer anchor (encodeRows' rule), in 32-bit halves: no BigInt per row
  const [midHi, midLo] = halves((f.openedMonoNs + f.sealedMonoNs) / 2n);
  const [openHi, openLo] = halves(f.openedWallNs - f.openedMonoNs);
  const [sealHi, sealLo] = halves(f.sealedWallNs - f.sealedMonoNs);
  // first/min/max/last ts as halves, made bigints once at the end
  let firstHi = -1, firstLo = 0, minHi = 0, minLo = 0, maxHi = 0, maxLo = 0, lastHi = 0, lastLo = 0;
  const byType = new Float64Array(TYPES.length);
  const o = new Out(PIECE_BYTES);
  o.room(SIGNATURE.length + 8);
  SIGNATURE.copy(o.buf, 0);
  o.buf.writeInt32BE(0, SIGNATURE.length);
  o.buf.writeInt32BE(0, SIGNATURE.length + 4);
  o.at = SIGNATURE.length + 8;
  // the chunk id of every row, encoded once
  const prefix = new Out(64);
  prefix.room(64);
  const [idHi, idLo] = halves(chunkId);
  int8hl(prefix, idHi, idLo);
  const constants = prefix.buf.subarray(0, prefix.at);
  const counts = new Map<string, number>();
  const sc = new LineScan();
  let start = 0;
  let no = 0;
  let parsed = 0;
  for (let nl = body.indexOf(10); nl >= 0; nl = body.indexOf(10, start)) {
    no++;
    const tsAt = tsDigitsAt(body, start, nl);
    if (tsAt < 0) return undefined;
    const lineBytes = nl - start;
    // every text column is a part of the line, at most 3 bytes of UTF-8 per byte of it (a
    // string cut at its limit, a lone surrogate as U+FFFD)
    // (and the line itself, once more)
    o.room(256 + constants.length + 4 * lineBytes);
    put16(o.buf, o.at, ncols);
    o.at += 2;
    // (a loop: Buffer.copy's JavaScript wrapper costs more than these 12 bytes)
    for (let i = 0; i < constants.length; i++) o.buf[o.at + i] = constants[i]!;
    o.at += constants.length;
    int4(o, no);
    int4(o, start);
    int4(o, lineBytes);
    if (!u64(body, tsAt, nl - 1)) return undefined;
    const tsHi = U64_HI;
    const tsLo = U64_LO;
    const early = tsHi < midHi || (tsHi === midHi && tsLo <= midLo);
    let wallLo = tsLo + (early ? openLo : sealLo);
    let wallHi = tsHi + (early ? openHi : sealHi);
    if (wallLo >= TWO32) {
      wallLo -= TWO32;
      wallHi++;
    }
    // beyond int8: not the binary path's (the text rows get the database's error)
    if (wallHi < -2147483648 || wallHi > 2147483647) return undefined;
    // ts_ns - 2^63 as int8 is the u64's bits with the top one flipped (order kept)
    if (NUMERIC_U64) numeric(o, body, tsAt, nl - 1);
    else int8hl(o, tsHi ^ 0x80000000, tsLo);
    int8hl(o, wallHi, wallLo);
    const scanned = useScan && sc.scan(body, start, nl);
    if (!scanned) parsed++;
    const type = scanned ? scannedRow(o, body, start, nl, sc, subjects ? content : undefined) : parsedRow(o, body, start, nl, subjects ? content : undefined);
    if (type === undefined) return undefined;
    // the line, byte for byte (bytea): the body is the rows' lines in line_no order, each with its newline
    if (withLine) {
      const at = o.at + 4;
      put32(o.buf, o.at, lineBytes);
      copyBytes(o.buf, at, body, start, lineBytes);
      o.at = at + lineBytes;
    }
    content.count++;
    if (ROW_TYPE >= 0) byType[ROW_TYPE]!++;
    else counts.set(type, (counts.get(type) ?? 0) + 1);
    if (firstHi < 0) {
      firstHi = minHi = maxHi = tsHi;
      firstLo = minLo = maxLo = tsLo;
    } else if (tsHi < minHi || (tsHi === minHi && tsLo < minLo)) {
      minHi = tsHi;
      minLo = tsLo;
    } else if (tsHi > maxHi || (tsHi === maxHi && tsLo > maxLo)) {
      maxHi = tsHi;
      maxLo = tsLo;
    }
    lastHi = tsHi;
    lastLo = tsLo;
    start = nl + 1;
  }
  for (let t = 0; t < TYPES.length; t++) if (byType[t]! > 0) counts.set(TYPES[t]!, (counts.get(TYPES[t]!) ?? 0) + byType[t]!);
  content.byType = counts;
  BODY_OF = undefined;
  BODY_U8 = new Uint8Array(0);
  if (firstHi >= 0) {
    const big = (hi: number, lo: number): bigint => (BigInt(hi) << 32n) | BigInt(lo);
    content.firstTs = big(firstHi, firstLo);
    content.minTs = big(minHi, minLo);
    content.maxTs = big(maxHi, maxLo);
    content.lastTs = big(lastHi, lastLo);
  }
  content.tailBytes = body.length - start;
  o.room(2);
  o.buf.writeInt16BE(-1, o.at);
  o.at += 2;
  o.flush(true);
  return { pieces: o.pieces, content, parsed, owned: o.owned };
}

/**
 * The columns from type to ssl_op (after wall_ns) of a line the scanner read;
 * returns the type, or undefined when the body is not the binary path's.
 */
function scannedRow(o: Out, b: Buffer, s: number, e: number, sc: LineScan, content: ChunkContent | undefined): string | undefined {
  const kind = sc.kind;
  if (kind[F_EVENT] !== K_OBJ) return undefined;
  const tk = kind[E_TYPE];
  let type: string;
  let ti = -1;
  if (tk === K_STR) {
    const ts = sc.start[E_TYPE]!;
    const tn = sc.end[E_TYPE]! - ts;
    for (let t = 0; t < TYPE_BYTES.length && ti < 0; t++) {
      const want = TYPE_BYTES[t]!;
      if (want.length !== tn) continue;
      let i = 0;
      while (i < tn && b[ts + i] === want[i]) i++;
      if (i === tn) ti = t;
    }
    type = ti >= 0 ? TYPES[ti]! : b.toString('utf8', ts, ts + tn).slice(0, 32);
  } else if (tk === K_ESC) {
    type = (JSON.parse(b.toString('utf8', sc.start[E_TYPE]! - 1, sc.end[E_TYPE]! + 1)) as string).slice(0, 32);
  } else {
    return undefined;
  }
  if (ti < 0) ti = TYPE_INDEX.get(type) ?? -1;
  ROW_TYPE = ti;
  const ck = kind[F_COMM];
  const sk = kind[F_SRC];
  if (kind[F_PID] !== K_NUM || (ck !== K_STR && ck !== K_ESC) || (sk !== K_STR && sk !== K_ESC)) return undefined;
  const pid = intField(sc, F_PID);
  const tid = intField(sc, F_TID);
  if (pid === undefined || pid === null || tid === undefined) return undefined;
  const cols = ti >= 0 ? PER_TYPE[ti]! : NONE;
  const peerPort = intField(sc, cols[3]!);
  const localPort = intField(sc, cols[5]!);
  if (peerPort === undefined || localPort === undefined) return undefined;
  text(o, type);
  textField(o, b, sc, F_SRC, 128);
  int4(o, pid);
  int4(o, tid);
  textField(o, b, sc, F_COMM, 64);
  if (!cgroup(o, b, s, e)) return undefined;
  textField(o, b, sc, F_CONTAINER_ID, 128);
  textField(o, b, sc, F_IMAGE_DIGEST, 128);
  textField(o, b, sc, cols[0]!, 4096);
  textField(o, b, sc, cols[1]!, 32);
  textField(o, b, sc, cols[2]!, 64);
  int4(o, peerPort);
  textField(o, b, sc, cols[4]!, 64);
  int4(o, localPort);
  textField(o, b, sc, cols[6]!, 4096);
  textField(o, b, sc, cols[7]!, 4096);
  textField(o, b, sc, cols[8]!, 128);
  textField(o, b, sc, cols[9]!, 32);
  const bytesSlot = cols[10]!;
  if (bytesSlot >= 0 && kind[bytesSlot] === K_NUM) int8n(o, sc.num[bytesSlot]!);
  else nul(o);
  textField(o, b, sc, cols[11]!, 32);
  if (content !== undefined) {
    const containerId = fullString(b, sc, F_CONTAINER_ID);
    const imageDigest = fullString(b, sc, F_IMAGE_DIGEST);
    const path = fullString(b, sc, E_PATH);
    const filename = fullString(b, sc, E_FILENAME);
    const library = fullString(b, sc, E_LIBRARY);
    content.subjects.add(subjectsOf({
      ...(containerId !== undefined ? { container_id: containerId } : {}), ...(imageDigest !== undefined ? { image_digest: imageDigest } : {}),
      event: { type: fullString(b, sc, E_TYPE), ...(path !== undefined ? { path } : {}), ...(filename !== undefined ? { filename } : {}), ...(library !== undefined ? { library } : {}) },
    }));
  }
  return type;
}

/** the same columns of a line read by JSON.parse (a line the scanner does not take, or every line with scan: false) */
function parsedRow(o: Out, b: Buffer, s: number, e: number, content: ChunkContent | undefined): string | undefined {
  const line = b.toString('utf8', s, e);
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof r !== 'object' || r === null) return undefined;
  const ev = r['event'] as Record<string, unknown> | undefined;
  const type = typeof ev === 'object' && ev !== null ? str(ev['type'], 32) : null;
  if (type === null || typeof r['pid'] !== 'number' || typeof r['comm'] !== 'string' || typeof r['src'] !== 'string') return undefined;
  const pid = int(r['pid']);
  const tid = int(r['tid']);
  if (pid === undefined || pid === null || tid === undefined) return undefined;
  const e2 = ev!;
  let path: string | null = null, access: string | null = null, peerAddr: string | null = null, localAddr: string | null = null;
  let peerPort: number | null | undefined = null, localPort: number | null | undefined = null;
  let symbol: string | null = null, library: string | null = null, nodeHash: string | null = null, runtime: string | null = null;
  let sslBytes: number | null = null, sslOp: string | null = null;
  switch (type) {
    case 'file_open': path = str(e2['path']); access = str(e2['access'], 32); break;
    case 'process_exec': path = str(e2['filename']); break;
    case 'net_connect': peerAddr = str(e2['addr'], 64); peerPort = int(e2['port']); break;
    case 'tcp_state': peerAddr = str(e2['daddr'], 64); peerPort = int(e2['dport']); localAddr = str(e2['saddr'], 64); localPort = int(e2['sport']); break;
    case 'ssl_op': {
      const v = e2['bytes'];
      sslBytes = typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
      sslOp = str(e2['operation'], 32);
      break;
    }
    case 'function_call': symbol = str(e2['symbol']); library = str(e2['library']); nodeHash = str(e2['node_hash'], 128); runtime = str(e2['runtime'], 32); break;
    default: break;
  }
  if (peerPort === undefined || localPort === undefined) return undefined;
  ROW_TYPE = TYPE_INDEX.get(type) ?? -1;
  text(o, type);
  text(o, str(r['src'], 128));
  int4(o, pid);
  int4(o, tid);
  text(o, str(r['comm'], 64));
  if (!cgroup(o, b, s, e)) return undefined;
  text(o, str(r['container_id'], 128));
  text(o, str(r['image_digest'], 128));
  text(o, path);
  text(o, access);
  text(o, peerAddr);
  int4(o, peerPort);
  text(o, localAddr);
  int4(o, localPort);
  text(o, symbol);
  text(o, library);
  text(o, nodeHash);
  text(o, runtime);
  if (sslBytes === null) nul(o);
  else int8n(o, sslBytes);
  text(o, sslOp);
  if (content !== undefined) content.subjects.add(subjectsOf(r));
  return type;
}

import { isUtf8 } from 'node:buffer';
import { AttributionSubjects, subjectsOf } from '../src/packages/evidence';
import type { ChunkContent } from '../src/verify';
import type { ChunkFacts } from '../src/fleet/chunk-check';

/**
 * The ingest row builder of fleet schema v3 (session 3), kept for bench/fleet-rows.bench.ts
 * to compare with the current one in the same run: JSON.parse of every line, wide rows with
 * the per-chunk constants (host_id, chain_id, seq, chunk_sha256) and the line in every row,
 * into a table with v3's columns and indexes (RECORDS_V3_DDL).
 */

export const RECORD_COLUMNS_V3 = [
  'chunk_id', 'host_id', 'chain_id', 'seq', 'chunk_sha256', 'line_no', 'ts_ns', 'wall_ns', 'type', 'src', 'pid', 'tid', 'comm',
  'cgroup_id', 'container_id', 'image_digest', 'path', 'access', 'peer_addr', 'peer_port', 'local_addr', 'local_port',
  'symbol', 'library', 'node_hash', 'runtime', 'ssl_bytes', 'ssl_op', 'line',
] as const;
const RECORD_COLUMNS = RECORD_COLUMNS_V3;

export const RECORDS_V3_DDL = `CREATE TABLE records_v3 (
  chunk_id bigint NOT NULL, host_id text NOT NULL, chain_id text NOT NULL, seq bigint NOT NULL, chunk_sha256 text NOT NULL, line_no integer NOT NULL,
  ts_ns numeric(20) NOT NULL, wall_ns bigint NOT NULL, type text NOT NULL, src text NOT NULL, pid integer NOT NULL, tid integer,
  comm text NOT NULL, cgroup_id numeric(20), container_id text, image_digest text, path text, access text,
  peer_addr text, peer_port integer, local_addr text, local_port integer, symbol text, library text, node_hash text,
  runtime text, ssl_bytes bigint, ssl_op text, line text NOT NULL, verified boolean NOT NULL DEFAULT true);
CREATE INDEX records_v3_chunk_line ON records_v3 (chunk_id, line_no);
CREATE INDEX records_v3_wall ON records_v3 USING brin (wall_ns);`;

/**
 * Chunk body -> the rows of `records` in PostgreSQL's binary COPY format, built in one pass in
 * JavaScript and copied straight into the table (no staging, no per-row parsing in the
 * server). The columns are encodeRows' (src/fleet/rows.ts) rule for rule, value for value;
 * only the wire format differs:
 * - the original line goes as its bytes, sliced from the body (no string round trip, no
 *   escaping): the body is checked to be UTF-8 first, so these are the bytes encodeRows'
 *   text stores;
 * - integers are binary (int4, int8), u64 values (ts_ns, cgroup_id) are numeric written from
 *   the line's digits (never through a JS number).
 * A body this path does not take (not UTF-8, a line that is not a record, a value out of its
 * column's range) returns undefined: the caller builds it with encodeRows, which gives the
 * diagnosis (line problems) or the same database error it always did.
 * test/e2e/fleet-rows.e2e.test.ts compares the columns of both builders on every event type.
 */

export const COPY_RECORDS_V3 = `COPY records_v3 (${RECORD_COLUMNS.join(', ')}) FROM STDIN WITH (FORMAT binary)`;

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const NCOLS = RECORD_COLUMNS.length;
const INT4_MIN = -2147483648;
const INT4_MAX = 2147483647;
const INT8_MIN = -(1n << 63n);
const INT8_MAX = (1n << 63n) - 1n;

/** A growing output buffer, cut into pieces of about 1 MiB for the COPY stream. */
class Out {
  pieces: Buffer[] = [];
  buf: Buffer;
  at = 0;
  constructor(private readonly size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  /** room for n more bytes in the current piece (a row never spans two pieces) */
  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    this.flush();
    if (n > this.buf.length) this.buf = Buffer.allocUnsafe(Math.max(n, this.size));
  }
  flush(): void {
    if (this.at > 0) this.pieces.push(this.buf.subarray(0, this.at));
    this.buf = Buffer.allocUnsafe(this.buf.length);
    this.at = 0;
  }
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

function int8(o: Out, v: bigint): void {
  o.buf.writeInt32BE(8, o.at);
  o.buf.writeBigInt64BE(v, o.at + 4);
  o.at += 12;
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

/** worst-case bytes of a text field */
const textRoom = (v: string | null): number => 4 + (v === null ? 0 : 3 * v.length);

/** numeric from 1-20 ASCII digits (a non-negative integer): base-10000 groups, most significant first */
function numeric(o: Out, digits: string): void {
  const b = o.buf;
  const len = digits.length;
  const groups = (len + 3) >> 2;
  put32(b, o.at, 8 + 2 * groups);
  put16(b, o.at + 4, groups); // ndigits
  put16(b, o.at + 6, groups - 1); // weight: the first group holds the highest power of 10000
  put16(b, o.at + 8, 0); // sign +
  put16(b, o.at + 10, 0); // dscale
  let at = o.at + 12;
  // the first group takes the digits beyond a multiple of 4; leading zeros (groups of 0) the server strips
  let i = 0;
  for (let g = 0, n = len - (groups - 1) * 4; g < groups; g++, n = 4, at += 2) {
    let v = 0;
    for (let k = 0; k < n; k++) v = v * 10 + (digits.charCodeAt(i++) - 0x30);
    put16(b, at, v);
  }
  o.at = at;
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
}

const TS_KEY = '"ts_ns":';
const CGROUP_PREFIX = '{"cgroup_id":';

/** the digits of ..."ts_ns":<1-20 digits>} at the end of the line, or undefined */
function tsDigits(line: string): string | undefined {
  const end = line.length - 1;
  if (line.charCodeAt(end) !== 0x7d) return undefined;
  let i = end;
  while (i > 0 && end - i < 21) {
    const c = line.charCodeAt(i - 1);
    if (c < 0x30 || c > 0x39) break;
    i--;
  }
  const n = end - i;
  if (n < 1 || n > 20 || !line.startsWith(TS_KEY, i - TS_KEY.length)) return undefined;
  return line.slice(i, end);
}

/** the digits of a leading {"cgroup_id":<1-20 digits>, or null */
function cgroupDigits(line: string): string | null {
  if (!line.startsWith(CGROUP_PREFIX)) return null;
  let i = CGROUP_PREFIX.length;
  while (i < line.length && i - CGROUP_PREFIX.length < 21) {
    const c = line.charCodeAt(i);
    if (c < 0x30 || c > 0x39) break;
    i++;
  }
  const n = i - CGROUP_PREFIX.length;
  return n >= 1 && n <= 20 && line.charCodeAt(i) === 0x2c ? line.slice(CGROUP_PREFIX.length, i) : null;
}

/**
 * encodeRowsBinary builds the binary COPY of a verified chunk body and the summary the
 * predicate is checked against (attribution subjects only when `subjects`), or undefined.
 */
export function encodeRowsBinaryV3(body: Buffer, f: ChunkFacts, chunkId: bigint, subjects: boolean): BinaryRows | undefined {
  if (!isUtf8(body)) return undefined;
  const content: ChunkContent = { sha256: f.chunkSha256, bytes: body.length, count: 0, byType: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null, tailBytes: 0, lineProblems: [], subjects: new AttributionSubjects() };
  const mid = (f.openedMonoNs + f.sealedMonoNs) / 2n;
  const openDelta = f.openedWallNs - f.openedMonoNs;
  const sealDelta = f.sealedWallNs - f.sealedMonoNs;
  const o = new Out(1 << 20);
  o.room(SIGNATURE.length + 8);
  SIGNATURE.copy(o.buf, 0);
  o.buf.writeInt32BE(0, SIGNATURE.length);
  o.buf.writeInt32BE(0, SIGNATURE.length + 4);
  o.at = SIGNATURE.length + 8;
  // the per-chunk constants of every row, encoded once
  const prefix = new Out(1024);
  prefix.room(1024);
  int8(prefix, chunkId);
  text(prefix, f.hostId.slice(0, 300));
  text(prefix, f.chainId.slice(0, 300));
  int8(prefix, f.seq);
  text(prefix, f.chunkSha256.slice(0, 300));
  const constants = prefix.buf.subarray(0, prefix.at);
  const counts = new Map<string, number>();
  let start = 0;
  let no = 0;
  for (let nl = body.indexOf(10); nl >= 0; nl = body.indexOf(10, start)) {
    no++;
    const line = body.toString('utf8', start, nl);
    const tsD = tsDigits(line);
    if (tsD === undefined) return undefined;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (typeof r !== 'object' || r === null) return undefined;
    const e = r['event'] as Record<string, unknown> | undefined;
    const type = typeof e === 'object' && e !== null ? str(e['type'], 32) : null;
    if (type === null || typeof r['pid'] !== 'number' || typeof r['comm'] !== 'string' || typeof r['src'] !== 'string') return undefined;
    const pid = int(r['pid']);
    const tid = int(r['tid']);
    if (pid === undefined || pid === null || tid === undefined) return undefined;
    const ts = BigInt(tsD);
    const wall = ts + (ts <= mid ? openDelta : sealDelta);
    if (wall < INT8_MIN || wall > INT8_MAX) return undefined;
    const ev = e!;
    let path: string | null = null, access: string | null = null, peerAddr: string | null = null, localAddr: string | null = null;
    let peerPort: number | null | undefined = null, localPort: number | null | undefined = null;
    let symbol: string | null = null, library: string | null = null, nodeHash: string | null = null, runtime: string | null = null;
    let sslBytes: number | null = null, sslOp: string | null = null;
    switch (type) {
      case 'file_open': path = str(ev['path']); access = str(ev['access'], 32); break;
      case 'process_exec': path = str(ev['filename']); break;
      case 'net_connect': peerAddr = str(ev['addr'], 64); peerPort = int(ev['port']); break;
      case 'tcp_state': peerAddr = str(ev['daddr'], 64); peerPort = int(ev['dport']); localAddr = str(ev['saddr'], 64); localPort = int(ev['sport']); break;
      case 'ssl_op': {
        const b = ev['bytes'];
        sslBytes = typeof b === 'number' && Number.isSafeInteger(b) ? b : null;
        sslOp = str(ev['operation'], 32);
        break;
      }
      case 'function_call': symbol = str(ev['symbol']); library = str(ev['library']); nodeHash = str(ev['node_hash'], 128); runtime = str(ev['runtime'], 32); break;
      default: break;
    }
    if (peerPort === undefined || localPort === undefined) return undefined;
    const src = str(r['src'], 128);
    const comm = str(r['comm'], 64);
    const cgroup = cgroupDigits(line);
    const containerId = str(r['container_id'], 128);
    const imageDigest = str(r['image_digest'], 128);
    const lineBytes = nl - start;
    o.room(2 + constants.length + 4 + 4 + 4 + 24 + 12 + textRoom(type) + textRoom(src) + 16 + textRoom(comm) + 4 + 24 + textRoom(containerId) + textRoom(imageDigest)
      + textRoom(path) + textRoom(access) + textRoom(peerAddr) + 8 + textRoom(localAddr) + 8 + textRoom(symbol) + textRoom(library) + textRoom(nodeHash)
      + textRoom(runtime) + 12 + textRoom(sslOp) + 4 + lineBytes);
    put16(o.buf, o.at, NCOLS);
    o.at += 2;
    constants.copy(o.buf, o.at);
    o.at += constants.length;
    int4(o, no);
    numeric(o, tsD);
    int8(o, wall);
    text(o, type);
    text(o, src);
    int4(o, pid);
    int4(o, tid);
    text(o, comm);
    if (cgroup === null) int4(o, null);
    else numeric(o, cgroup);
    text(o, containerId);
    text(o, imageDigest);
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
    if (sslBytes === null) int4(o, null);
    else int8(o, BigInt(sslBytes));
    text(o, sslOp);
    put32(o.buf, o.at, lineBytes);
    body.copy(o.buf, o.at + 4, start, nl);
    o.at += 4 + lineBytes;
    if (subjects) content.subjects.add(subjectsOf(r));
    content.count++;
    counts.set(type, (counts.get(type) ?? 0) + 1);
    if (content.firstTs === null) content.firstTs = content.minTs = content.maxTs = ts;
    if (ts < content.minTs!) content.minTs = ts;
    if (ts > content.maxTs!) content.maxTs = ts;
    content.lastTs = ts;
    start = nl + 1;
  }
  content.byType = counts;
  content.tailBytes = body.length - start;
  o.room(2);
  o.buf.writeInt16BE(-1, o.at);
  o.at += 2;
  o.flush();
  return { pieces: o.pieces, content };
}

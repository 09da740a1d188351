import { AttributionSubjects, subjectsOf } from '../packages/evidence';
import type { ChunkContent } from '../verify';
import type { ChunkFacts } from './chunk-check';

/**
 * Chunk body -> rows of the fleet `records` table in PostgreSQL COPY text format, one pass.
 * The columns mirror the local index (src/index, docs/fleet.md); what is the same for every
 * record of a chunk (host, chain, seq, digest) is in `chunks`; each row holds its original line
 * (bytea, schema v6) and its (line_off, line_len) in the chunk's body, which is the rows' lines in
 * line_no order, each with its newline. u64
 * values (ts_ns, cgroup_id) are taken from the line's text, never through a JS number, and
 * stored biased (schema v5): the int8 x - 2^63, exact and order-preserving (u64ToBiased,
 * biasedToU64; readers map them back).
 */

/** the COPY column list (the order rows are written in; the table's own order packs them) */
export const RECORD_COLUMNS = [
  'chunk_id', 'line_no', 'line_off', 'line_len', 'ts_ns_biased', 'wall_ns', 'type', 'src', 'pid', 'tid', 'comm',
  'cgroup_id_biased', 'container_id', 'image_digest', 'path', 'access', 'peer_addr', 'peer_port', 'local_addr', 'local_port',
  'symbol', 'library', 'node_hash', 'runtime', 'ssl_bytes', 'ssl_op', 'line',
] as const;

const BIAS = 1n << 63n;

/** a u64 as stored in a biased int8 column (ts_ns_biased, cgroup_id_biased): x - 2^63, order kept */
export function u64ToBiased(x: bigint): bigint {
  return x - BIAS;
}

/** the u64 of a biased int8 column's value (node-postgres gives int8 as a decimal string) */
export function biasedToU64(v: string | number | bigint): bigint {
  return BigInt(v) + BIAS;
}

/** SQL: the u64 of a biased int8 column, as numeric (e.g. for text output) */
export function sqlU64(column: string): string {
  return `(${column}::numeric + 9223372036854775808)`;
}

/** forEachLine calls fn for every "\n"-terminated line (with its byte offset and length); returns the bytes after the last newline. */
export function forEachLine(body: Buffer, fn: (line: string, lineNo: number, off: number, len: number) => void): number {
  let start = 0;
  let no = 0;
  for (let nl = body.indexOf(10); nl >= 0; nl = body.indexOf(10, start)) {
    fn(body.toString('utf8', start, nl), ++no, start, nl - start);
    start = nl + 1;
  }
  return body.length - start;
}

const TS = /"ts_ns":(\d{1,20})}$/;
const CGROUP = /^\{"cgroup_id":(\d{1,20}),/;
const NEEDS_ESCAPE = /[\\\t\n\r]/;

/** copyText escapes a value for COPY text format; null is \N. */
export function copyText(v: string | number | bigint | null | undefined): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v !== 'string') return String(v);
  if (!NEEDS_ESCAPE.test(v)) return v;
  return v.replace(/[\\\t\n\r]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
}

/** the biased cgroup_id of a line, or \N (beyond u64: a value the int8 column refuses, as the database should) */
function cgroupBiased(line: string): string {
  const m = CGROUP.exec(line);
  return m === null ? '\\N' : String(BigInt(m[1]!) - BIAS);
}

function str(v: unknown, max = 4096): string | null {
  return typeof v === 'string' ? v.slice(0, max) : null;
}

function int(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

export interface EncodedRows {
  /** COPY text, in pieces of about 1 MiB */
  pieces: Buffer[];
  content: ChunkContent;
}

/** encodeRows turns a verified chunk body into COPY rows and the summary the predicate is checked against. */
export function encodeRows(body: Buffer, f: ChunkFacts, chunkId: bigint): EncodedRows {
  const content: ChunkContent = { sha256: f.chunkSha256, bytes: body.length, count: 0, byType: new Map(), firstTs: null, lastTs: null, minTs: null, maxTs: null, tailBytes: 0, lineProblems: [], subjects: new AttributionSubjects() };
  const pieces: Buffer[] = [];
  let batch: string[] = [];
  let batchLen = 0;
  // the anchor nearest a record converts its monotonic time to wall time: the opened anchor up
  // to the midpoint of the two, the sealed one after it (one comparison and one addition per row)
  const mid = (f.openedMonoNs + f.sealedMonoNs) / 2n;
  const openDelta = f.openedWallNs - f.openedMonoNs;
  const sealDelta = f.sealedWallNs - f.sealedMonoNs;
  const prefix = `${chunkId}\t`;
  content.tailBytes = forEachLine(body, (line, no, off, len) => {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      if (content.lineProblems.length < 5) content.lineProblems.push(`line ${no}: not JSON`);
      return;
    }
    const tsM = TS.exec(line);
    const e = r['event'] as Record<string, unknown> | undefined;
    const type = typeof e === 'object' && e !== null ? str(e['type'], 32) : null;
    if (tsM === null || type === null || typeof r['pid'] !== 'number' || typeof r['comm'] !== 'string' || typeof r['src'] !== 'string') {
      if (content.lineProblems.length < 5) content.lineProblems.push(`line ${no}: not a record (ts_ns, src, pid, comm, event.type)`);
      return;
    }
    const ts = BigInt(tsM[1]!);
    content.subjects.add(subjectsOf(r));
    content.count++;
    content.byType.set(type, (content.byType.get(type) ?? 0) + 1);
    if (content.firstTs === null) content.firstTs = content.minTs = content.maxTs = ts;
    if (ts < content.minTs!) content.minTs = ts;
    if (ts > content.maxTs!) content.maxTs = ts;
    content.lastTs = ts;
    const ev = e!;
    const wall = ts + (ts <= mid ? openDelta : sealDelta);
    let path: string | null = null, access: string | null = null, peerAddr: string | null = null, peerPort: number | null = null;
    let localAddr: string | null = null, localPort: number | null = null, symbol: string | null = null, library: string | null = null;
    let nodeHash: string | null = null, runtime: string | null = null, sslBytes: number | null = null, sslOp: string | null = null;
    switch (type) {
      case 'file_open': path = str(ev['path']); access = str(ev['access'], 32); break;
      case 'process_exec': path = str(ev['filename']); break;
      case 'net_connect': peerAddr = str(ev['addr'], 64); peerPort = int(ev['port']); break;
      case 'tcp_state': peerAddr = str(ev['daddr'], 64); peerPort = int(ev['dport']); localAddr = str(ev['saddr'], 64); localPort = int(ev['sport']); break;
      case 'ssl_op': sslBytes = int(ev['bytes']); sslOp = str(ev['operation'], 32); break;
      case 'function_call': symbol = str(ev['symbol']); library = str(ev['library']); nodeHash = str(ev['node_hash'], 128); runtime = str(ev['runtime'], 32); break;
      default: break;
    }
    const row = prefix + [
      no, off, len, ts - BIAS, wall, type, copyText(str(r['src'], 128)), int(r['pid']) ?? '\\N', int(r['tid']) ?? '\\N', copyText(str(r['comm'], 64)),
      cgroupBiased(line), copyText(str(r['container_id'], 128)), copyText(str(r['image_digest'], 128)),
      copyText(path), copyText(access), copyText(peerAddr), peerPort ?? '\\N', copyText(localAddr), localPort ?? '\\N',
      copyText(symbol), copyText(library), copyText(nodeHash), copyText(runtime), sslBytes ?? '\\N', copyText(sslOp),
      // the line as bytea in COPY text: \\x and its hex (the backslash doubled by COPY's escaping)
      '\\\\x' + body.toString('hex', off, off + len),
    ].join('\t') + '\n';
    batch.push(row);
    batchLen += row.length;
    if (batchLen >= 1 << 20) {
      pieces.push(Buffer.from(batch.join('')));
      batch = [];
      batchLen = 0;
    }
  });
  if (batch.length > 0) pieces.push(Buffer.from(batch.join('')));
  return { pieces, content };
}

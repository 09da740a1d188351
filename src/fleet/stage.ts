import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { AttributionSubjects, HOST_SCOPE, subjectsOf } from '../packages/evidence';
import type { ChunkContent } from '../verify';
import type { ChunkFacts } from './chunk-check';
import { forEachLine, RECORD_COLUMNS } from './rows';

/**
 * Not ingest's path since session 3: ingest COPYs binary rows built in JavaScript
 * (src/fleet/rows-binary.ts, 1.7x the records per CPU-second in bench/fleet-rows.bench.ts). Kept
 * as the measured alternative there and in test/e2e/fleet-rows.e2e.test.ts.
 *
 * Row building inside PostgreSQL. The verified chunk body goes to the server as it is, one
 * COPY of its lines into a per-session staging table (CSV with a delimiter and quote that a
 * canonical line cannot contain, so not one byte is rewritten); a single INSERT ... SELECT
 * then parses each line once as jsonb and derives the columns of `records` server-side, in
 * the chunk's transaction, and returns the summary the signed predicate is checked against.
 * u64 values are jsonb numerics (exact, never a JS number); the original line is stored as
 * COPY received it, byte for byte.
 *
 * The columns follow encodeRows (src/fleet/rows.ts) rule for rule: that JavaScript builder
 * stays as the fallback for a body this path does not take (a line that is not a record,
 * bytes a canonical line never holds), so that such a chunk gets exactly the diagnosis it got
 * before (test/e2e/fleet-rows.e2e.test.ts compares both builders column by column).
 */

/** run once per session, outside a transaction */
export const STAGE_DDL = `CREATE TEMP SEQUENCE IF NOT EXISTS rtev_stage_no;
CREATE TEMP TABLE IF NOT EXISTS rtev_stage (line_no bigint NOT NULL DEFAULT nextval('rtev_stage_no'), line text NOT NULL) ON COMMIT DELETE ROWS`;

/** per session: the staged rows and the derived ones stay in memory */
export const STAGE_SETTINGS = `SET work_mem = '64MB'`;

const COPY_STAGE = `COPY rtev_stage (line) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\x01', QUOTE E'\\x02', ESCAPE E'\\x02')`;

const TS_KEY = Buffer.from('"ts_ns":');
const CGROUP_KEY = Buffer.from('{"cgroup_id":');

/** digitsBefore: the number of ASCII digits ending at body[end - 1] (at most 21 looked at) */
function digitsBefore(body: Buffer, end: number, start: number): number {
  let n = 0;
  while (n < 21 && end - n - 1 >= start && body[end - n - 1]! >= 0x30 && body[end - n - 1]! <= 0x39) n++;
  return n;
}

/**
 * stageable tells whether a body can go to the server as is: its number of lines and the
 * bytes after the last newline, or why not. Besides the framing it checks the two textual
 * rules of encodeRows, so that the server can read both u64s as jsonb numerics: every line
 * ends with "ts_ns":<1-20 digits>}, and a line that starts with {"cgroup_id": has 1-20
 * digits and a comma there.
 */
export function stageable(body: Buffer): { lines: number; tail: number } | { why: string } {
  // bytes a canonical line never holds raw (control characters are escaped in JSON strings);
  // the CSV framing of the COPY needs 0x01, 0x02 and CR absent, PostgreSQL text needs no NUL
  for (const b of [0, 1, 2, 13]) if (body.indexOf(b) >= 0) return { why: `byte 0x${b.toString(16).padStart(2, '0')}` };
  let lines = 0;
  let start = 0;
  for (let nl = body.indexOf(10); nl >= 0; nl = body.indexOf(10, start)) {
    lines++;
    if (nl === start) return { why: `line ${lines} is empty` };
    // ..."ts_ns":<digits>}
    const d = body[nl - 1] === 0x7d ? digitsBefore(body, nl - 1, start) : 0;
    const at = nl - 1 - d - TS_KEY.length;
    if (d < 1 || d > 20 || at < start || body.compare(TS_KEY, 0, TS_KEY.length, at, at + TS_KEY.length) !== 0) return { why: `line ${lines} does not end with its ts_ns` };
    if (body.compare(CGROUP_KEY, 0, CGROUP_KEY.length, start, Math.min(nl, start + CGROUP_KEY.length)) === 0) {
      let n = 0;
      const from = start + CGROUP_KEY.length;
      while (n < 21 && from + n < nl && body[from + n]! >= 0x30 && body[from + n]! <= 0x39) n++;
      if (n < 1 || n > 20 || body[from + n] !== 0x2c) return { why: `line ${lines}: cgroup_id is not 1-20 digits` };
    }
    start = nl + 1;
  }
  // (a line "\\." would end the COPY data, but it does not end with a ts_ns)
  return { lines, tail: body.length - start };
}

const when = (type: string, expr: string): string => `CASE WHEN e.type = '${type}' THEN ${expr} END`;
const whenIn = (types: [string, string][]): string => `CASE ${types.map(([t, x]) => `WHEN e.type = '${t}' THEN ${x}`).join(' ')} END`;

/**
 * The derivation. $1 chunk_id, $2 host_id, $3 chain_id, $4 seq, $5 chunk_sha256, $6 the
 * monotonic midpoint of the two clock anchors, $7 and $8 the wall-minus-mono offsets of the
 * opening and the sealing anchor.
 * - Each line is parsed once (jsonb) and its fields are read by jsonb_to_record, typed as the
 *   columns are; a value that does not convert (a pid of 2.5, an event that is no object) is
 *   an error, and the caller falls back to encodeRows. The fields a record must have (event.type,
 *   pid, comm, src) are checked for their JSON type as encodeRows does; an optional field of
 *   another JSON type than the schema's is stored as its text where encodeRows stores NULL
 *   (canonical records never hold one).
 * - Lone surrogate escapes (rtev's encoding of non-UTF-8 bytes) are not jsonb: the parsed copy
 *   has them as \ufffd, which is what encodeRows stores too. The line itself stays as shipped.
 * - The summary for the predicate check comes back in the same statement, and the attribution
 *   subjects (container, image, path) of the lines without escapes; the few lines with escapes
 *   are read by JavaScript (exact lone surrogates), and so are all lines if a value may have
 *   been cut to its column's length.
 */
export const INSERT_SQL = `WITH x AS (
    SELECT s.line_no, s.line, s.j, r.*, e.*,
      jsonb_typeof(s.j->'event'->'type') = 'string' AND jsonb_typeof(s.j->'pid') = 'number' AND jsonb_typeof(s.j->'comm') = 'string' AND jsonb_typeof(s.j->'src') = 'string' AS ok
    FROM (SELECT line_no, line, (CASE WHEN strpos(line, '\\u') > 0 THEN regexp_replace(line, '\\\\u[dD][0-9a-fA-F]{3}', '\\\\ufffd', 'g') ELSE line END)::jsonb AS j
      FROM rtev_stage OFFSET 0) s
    CROSS JOIN LATERAL jsonb_to_record(s.j) AS r(cgroup_id numeric, comm text, container_id text, event jsonb, image_digest text, pid int, src text, tid int, ts_ns numeric)
    CROSS JOIN LATERAL jsonb_to_record(r.event) AS e(type text, path text, filename text, access text, addr text, port int, saddr text, sport int, daddr text, dport int,
      symbol text, library text, node_hash text, runtime text, bytes bigint, operation text)),
  ins AS (
    INSERT INTO records (${RECORD_COLUMNS.join(', ')})
    SELECT $1::bigint, $2::text, $3::text, $4::bigint, $5::text, e.line_no, e.ts_ns,
      (e.ts_ns + CASE WHEN e.ts_ns <= $6::numeric THEN $7::numeric ELSE $8::numeric END)::bigint, left(e.type, 32), left(e.src, 128), e.pid, e.tid, left(e.comm, 64),
      CASE WHEN starts_with(e.line, '{"cgroup_id":') THEN e.cgroup_id END, left(e.container_id, 128), left(e.image_digest, 128),
      ${whenIn([['file_open', 'left(e.path, 4096)'], ['process_exec', 'left(e.filename, 4096)']])}, ${when('file_open', 'left(e.access, 32)')},
      ${whenIn([['net_connect', 'left(e.addr, 64)'], ['tcp_state', 'left(e.daddr, 64)']])}, ${whenIn([['net_connect', 'e.port'], ['tcp_state', 'e.dport']])},
      ${when('tcp_state', 'left(e.saddr, 64)')}, ${when('tcp_state', 'e.sport')},
      ${when('function_call', 'left(e.symbol, 4096)')}, ${when('function_call', 'left(e.library, 4096)')}, ${when('function_call', 'left(e.node_hash, 128)')}, ${when('function_call', 'left(e.runtime, 32)')},
      ${when('ssl_op', 'e.bytes')}, ${when('ssl_op', 'left(e.operation, 32)')}, e.line
    FROM x e WHERE e.ok
    RETURNING line_no, ts_ns, type, container_id, image_digest, CASE type WHEN 'function_call' THEN library WHEN 'file_open' THEN path WHEN 'process_exec' THEN path END AS p,
      strpos(line, '\\u') = 0 AS plain)
  SELECT (SELECT count(*) FROM ins) AS inserted,
    (SELECT json_object_agg(type, n) FROM (SELECT type, count(*) AS n FROM ins GROUP BY type) g)::text AS by_type,
    (SELECT min(ts_ns)::text FROM ins) AS min_ts, (SELECT max(ts_ns)::text FROM ins) AS max_ts,
    (SELECT ts_ns::text FROM ins ORDER BY line_no LIMIT 1) AS first_ts, (SELECT ts_ns::text FROM ins ORDER BY line_no DESC LIMIT 1) AS last_ts,
    (SELECT count(*) FROM ins WHERE length(container_id) >= 128 OR length(image_digest) >= 128 OR length(p) >= 4096) AS cut,
    CASE WHEN $9::boolean THEN (SELECT json_agg(json_build_array(container_id, image_digest, p))::text
      FROM (SELECT DISTINCT container_id, image_digest, NULLIF(p, '') AS p FROM ins WHERE plain) b) END AS subjects`;

export interface StageResult {
  content: ChunkContent;
  records: number;
}

/**
 * buildRowsInDb stages the body and inserts its records (inside the caller's transaction and
 * a savepoint of its own). undefined: this path does not take the body (the savepoint is
 * rolled back; the caller builds the rows with encodeRows instead).
 */
export async function buildRowsInDb(db: Client, body: Buffer, f: ChunkFacts, chunkId: bigint, attribution: boolean): Promise<StageResult | undefined> {
  const shape = stageable(body);
  if ('why' in shape) return undefined;
  const lines = body.subarray(0, body.length - shape.tail);
  await db.query('SAVEPOINT rtev_rows');
  try {
    await db.query(`SELECT setval('rtev_stage_no', 1, false)`);
    const staged = await copyBuffer(db, COPY_STAGE, lines);
    if (staged !== shape.lines) throw new StageRefused(`staged ${staged} of ${shape.lines} lines`);
    const mid = (f.openedMonoNs + f.sealedMonoNs) / 2n;
    const r = await db.query<{ inserted: string; by_type: string | null; min_ts: string | null; max_ts: string | null; first_ts: string | null; last_ts: string | null; cut: string; subjects: string | null }>(
      INSERT_SQL, [String(chunkId), f.hostId, f.chainId, String(f.seq), f.chunkSha256, String(mid), String(f.openedWallNs - f.openedMonoNs), String(f.sealedWallNs - f.sealedMonoNs), attribution]);
    const row = r.rows[0]!;
    if (Number(row.inserted) !== shape.lines) throw new StageRefused(`${shape.lines - Number(row.inserted)} line(s) are not records`);
    const byType = new Map<string, number>(Object.entries(JSON.parse(row.by_type ?? '{}') as Record<string, number>));
    const big = (v: string | null): bigint | null => (v === null ? null : BigInt(v));
    const content: ChunkContent = {
      sha256: f.chunkSha256, bytes: body.length, count: shape.lines, byType, firstTs: big(row.first_ts), lastTs: big(row.last_ts), minTs: big(row.min_ts), maxTs: big(row.max_ts),
      tailBytes: shape.tail, lineProblems: [], subjects: new AttributionSubjects(),
    };
    if (attribution && row.cut === '0') subjects(row.subjects, lines, content.subjects);
    else if (attribution) forEachLine(lines, (line) => content.subjects.add(subjectsOf(JSON.parse(line) as Record<string, unknown>)));
    await db.query('RELEASE SAVEPOINT rtev_rows');
    return { content, records: shape.lines };
  } catch (err) {
    const code = (err as { code?: string }).code;
    // data errors (a line that is not JSON, a value out of range, bad bytes): the JS builder decides
    if (err instanceof StageRefused || (typeof code === 'string' && /^2[23]/.test(code))) {
      await db.query('ROLLBACK TO SAVEPOINT rtev_rows');
      return undefined;
    }
    throw err;
  }
}

class StageRefused extends Error {}

/** subjects: from the server for lines without escapes, in JavaScript (exact lone surrogates) for the others */
function subjects(fromDb: string | null, lines: Buffer, out: AttributionSubjects): void {
  for (const [c, d, p] of JSON.parse(fromDb ?? '[]') as [string | null, string | null, string | null][]) {
    out.add({ scope: c ?? HOST_SCOPE, paths: p === null ? [] : [p], ...(c !== null ? { containerId: c } : {}), ...(d !== null ? { imageDigest: d } : {}) });
  }
  let done = -1;
  for (let at = lines.indexOf('\\u'); at >= 0; at = lines.indexOf('\\u', at + 1)) {
    if (at <= done) continue;
    const start = lines.lastIndexOf(10, at) + 1;
    const end = lines.indexOf(10, at);
    out.add(subjectsOf(JSON.parse(lines.toString('utf8', start, end)) as Record<string, unknown>));
    done = end;
  }
}

async function copyBuffer(db: Client, sql: string, data: Buffer): Promise<number> {
  const stream = db.query(copyFrom(sql));
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    stream.on('finish', resolve);
    let at = 0;
    const pump = (): void => {
      while (at < data.length) {
        const piece = data.subarray(at, at + (1 << 20));
        at += piece.length;
        if (!stream.write(piece)) {
          stream.once('drain', pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
  return stream.rowCount;
}

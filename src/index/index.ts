import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { errorMessage, RtevError } from '../errors';
import type { EventType } from '../model/record';
import type { VerifyKey } from '../sign/keys';
import { lstatMaybe, mkdirp, openNoFollow } from '../platform/fsio';
import { AttributionSubjects } from '../packages/evidence';
import { checkContentAgainstPredicate, MAX_LINE_BYTES, type ChunkContent } from '../verify';
import { isObj, type StrictObject, type StrictValue } from '../encode/strict-json';
import { compileFilter, purlKey, type EvidenceFilter } from './filter';
import { discoverChunks, readChunkEnvelope, type ChunkFacts, type SealedChunk } from './ingest';
import { AGGREGATE_TABLES, INDEX_FORMAT, INDEX_VERSION, RECORD_JSON_COLUMNS, recordSelect, SCHEMA_SQL } from './schema';

/**
 * The evidence index: an embedded DuckDB file derived from the sealed chunks of an evidence
 * directory (or of several below it). Opening it brings it up to date: new sealed chunks are
 * verified and added, chunks that are gone (retention) or changed leave it. A row enters only
 * after its chunk's envelope signature, predicate and digest verified; each row keeps its
 * chunk's seq and digest and the original line.
 */

type Duck = typeof import('@duckdb/node-api');
type Connection = import('@duckdb/node-api').DuckDBConnection;
type Instance = import('@duckdb/node-api').DuckDBInstance;

export interface OpenIndexOptions {
  /** an evidence directory (evidence directories below it are found too) */
  source: string;
  /** the index file; default defaultIndexPath(source) */
  indexPath?: string;
  /** trusted public keys */
  keys: readonly VerifyKey[];
  /** also index chunks that fail verification, their rows marked verified=false */
  allowUnverified?: boolean;
  /** one-line notices (index rebuilt, chunks added or removed) */
  onNotice?: (line: string) => void;
  /** drop the index and build it again from the chunks */
  rebuild?: boolean;
}

export interface ChunkFailure {
  /** path relative to the source */
  file: string;
  reason: string;
}

export interface SyncReport {
  added: number;
  removed: number;
  /** records added by this sync */
  records: bigint;
  /** chunks that failed verification (now or when they were first seen) */
  failed: ChunkFailure[];
  /** chunks present in the index after the sync */
  chunks: number;
  rebuilt: boolean;
}

export interface IndexRow {
  chainId: string;
  seq: bigint;
  chunkSha256: string;
  lineNo: number;
  tsNs: bigint;
  wallNs: bigint;
  type: EventType;
  pid: number;
  comm: string;
  containerId: string | null;
  imageDigest: string | null;
  /** the original canonical line, without "\n" */
  line: string;
  verified: boolean;
}

/** defaultIndexPath: $RTEV_INDEX_DIR, else /var/cache/rtev/index (root) or $XDG_CACHE_HOME/rtev/index, one file per source. */
export function defaultIndexPath(source: string, env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  let dir = env['RTEV_INDEX_DIR'];
  if (dir === undefined || dir === '') {
    const cache = env['XDG_CACHE_HOME'];
    dir = uid === 0 ? '/var/cache/rtev/index' : path.join(cache !== undefined && cache !== '' ? cache : path.join(os.homedir(), '.cache'), 'rtev', 'index');
  }
  let real: string;
  try {
    real = fs.realpathSync(source);
  } catch {
    real = path.resolve(source);
  }
  return path.join(dir, `${crypto.createHash('sha256').update(real).digest('hex').slice(0, 16)}.duckdb`);
}

let duck: Duck | undefined;
function loadDuck(): Duck {
  if (duck === undefined) {
    try {
      duck = require('@duckdb/node-api') as Duck;
    } catch (err) {
      throw new RtevError('INDEX_LOAD', 'cannot load DuckDB (@duckdb/node-api), needed by the evidence index', { cause: err, hint: 'run npm ci (or make build)' });
    }
  }
  return duck;
}

// insertion order is kept: the positional join of the parsed and the raw lines relies on file order
// checkpoints are explicit (refresh(): every CHECKPOINT_RECORDS and at the end): DuckDB's default, one
// whenever the WAL passes 16 MB (about every 2 chunks), costs more the larger the table already is,
// which made a 10M-record build grow quadratically (bench/report-ingest.sh, docs/benchmarks.md)
const DB_OPTIONS = { threads: '2', memory_limit: '256MB', preserve_insertion_order: 'true', checkpoint_threshold: '1GB' };
/** an index build checkpoints after this many records (bounds the WAL and the unflushed rows in memory) */
const CHECKPOINT_RECORDS = 500_000n;

/** openEvidenceIndex opens (creating or rebuilding when needed) and synchronizes the index of a source. */
export async function openEvidenceIndex(o: OpenIndexOptions): Promise<EvidenceIndex> {
  let st: fs.Stats;
  try {
    st = fs.statSync(o.source);
  } catch (err) {
    throw new RtevError('USAGE', `cannot read ${o.source}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new RtevError('NOT_EVIDENCE', `${o.source} is not an evidence directory`);
  const file = o.indexPath ?? defaultIndexPath(o.source);
  const notice = o.onNotice ?? (() => undefined);
  try {
    mkdirp(path.dirname(file), 0o700);
  } catch (err) {
    throw new RtevError('INDEX', `cannot create the index directory ${path.dirname(file)}`, { cause: err, hint: 'choose a writable place with --index PATH' });
  }
  const real = fs.realpathSync(o.source);
  let rebuilt = false;
  if (o.rebuild === true) {
    removeIndex(file);
    rebuilt = true;
  }
  let opened = await tryOpen(file, real);
  if (typeof opened === 'string') {
    notice(`rtev: the index ${file} ${opened}; rebuilding it from the chunks`);
    removeIndex(file);
    rebuilt = true;
    opened = await tryOpen(file, real);
    if (typeof opened === 'string') throw new RtevError('INDEX', `cannot create the index ${file}: ${opened}`, { hint: 'choose a writable place with --index PATH' });
  }
  const index = new EvidenceIndex(opened.instance, opened.conn, file, real, o.keys, o.allowUnverified === true);
  index.sync = await index.refresh(notice);
  index.sync.rebuilt = rebuilt;
  return index;
}

function removeIndex(file: string): void {
  for (const f of [file, `${file}.wal`]) {
    try {
      fs.unlinkSync(f);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new RtevError('INDEX', `cannot remove the index ${f}`, { cause: err });
    }
  }
}

/** tryOpen opens an index file for the source, or says what is wrong with it. */
async function tryOpen(file: string, source: string): Promise<{ instance: Instance; conn: Connection } | string> {
  const { DuckDBInstance } = loadDuck();
  const existed = fs.existsSync(file);
  if (existed) {
    const lst = fs.lstatSync(file);
    if (!lst.isFile()) return 'is not a regular file';
  }
  let instance: Instance;
  for (let attempt = 0; ; attempt++) {
    try {
      instance = await DuckDBInstance.create(file, DB_OPTIONS);
      break;
    } catch (err) {
      const m = (err as Error).message;
      // another rtev holds the file: wait a little for it
      if (/lock/i.test(m) && attempt < 50) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (/lock/i.test(m)) throw new RtevError('INDEX', `the index ${file} is in use by another process`, { hint: 'wait for it, or pass another --index PATH' });
      return `cannot be opened (${m.split('\n')[0]!.slice(0, 160)})`;
    }
  }
  const conn = await instance.connect();
  try {
    if (!existed) {
      for (const sql of SCHEMA_SQL) await conn.run(sql);
      await conn.run('INSERT INTO meta VALUES ($1, $2), ($3, $4), ($5, $6)', ['format', INDEX_FORMAT, 'version', INDEX_VERSION, 'source', source]);
      return { instance, conn };
    }
    const rows = (await (await conn.runAndReadAll('SELECT key, value FROM meta')).getRowObjectsJS()) as { key: string; value: string }[];
    const meta = new Map(rows.map((r) => [r.key, r.value]));
    let why: string | undefined;
    if (meta.get('format') !== INDEX_FORMAT) why = 'is not an rtev index';
    else if (meta.get('version') !== INDEX_VERSION) why = `is of index version ${meta.get('version')}, not ${INDEX_VERSION}`;
    else if (meta.get('source') !== source) why = `indexes another directory (${String(meta.get('source')).slice(0, 200)})`;
    if (why === undefined) return { instance, conn };
    closeQuietly(conn, instance);
    return why;
  } catch (err) {
    closeQuietly(conn, instance);
    return `is not a usable rtev index (${(err as Error).message.split('\n')[0]!.slice(0, 160)})`;
  }
}

function closeQuietly(conn: Connection, instance: Instance): void {
  try {
    conn.closeSync();
    instance.closeSync();
  } catch {
    // already broken
  }
}

interface IndexedChunk {
  chunk_id: number;
  dir: string;
  seq: bigint;
  file: string;
  stat_key: string;
  status: string;
  reason: string | null;
  rows_indexed: boolean;
}

/** EvidenceIndex answers queries over the verified records of one source. */
export class EvidenceIndex {
  sync!: SyncReport;
  constructor(
    private readonly instance: Instance,
    readonly conn: Connection,
    readonly file: string,
    readonly source: string,
    readonly keys: readonly VerifyKey[],
    readonly allowUnverified: boolean,
  ) {}

  /** refresh brings the index up to date with the sealed chunks on disk. */
  async refresh(notice: (line: string) => void = () => undefined): Promise<SyncReport> {
    const report: SyncReport = { added: 0, removed: 0, records: 0n, failed: [], chunks: 0, rebuilt: false };
    const found = discoverChunks(this.source);
    for (const r of found.refused) report.failed.push(r);
    const have = (await this.objects('SELECT chunk_id, dir, seq, file, stat_key, status, reason, rows_indexed FROM chunks')) as unknown as IndexedChunk[];
    const byKey = new Map(have.map((c) => [`${c.dir}\u0000${c.seq}`, c]));
    const onDisk = new Set(found.chunks.map((c) => `${c.dir}\u0000${c.seq}`));
    const drop: number[] = [];
    for (const c of have) if (!onDisk.has(`${c.dir}\u0000${c.seq}`)) drop.push(c.chunk_id);
    const todo: SealedChunk[] = [];
    for (const c of found.chunks) {
      const old = byKey.get(`${c.dir}\u0000${c.seq}`);
      if (old !== undefined && old.stat_key === c.statKey && (old.rows_indexed || !this.allowUnverified || old.status === 'ok')) {
        if (old.status !== 'ok') report.failed.push({ file: old.file, reason: old.reason ?? 'failed verification' });
        continue;
      }
      if (old !== undefined) drop.push(old.chunk_id);
      todo.push(c);
    }
    if (drop.length > 0) {
      await this.deleteChunks(drop);
      report.removed = have.filter((c) => drop.includes(c.chunk_id) && !onDisk.has(`${c.dir}\u0000${c.seq}`)).length;
    }
    // rows of a chunk whose ingest was interrupted (no chunks row) are removed
    for (const t of ['records', ...AGGREGATE_TABLES]) await this.conn.run(`DELETE FROM ${t} WHERE chunk_id NOT IN (SELECT chunk_id FROM chunks)`);
    let nextId = Number((await this.scalar('SELECT COALESCE(MAX(chunk_id), 0) + 1 FROM chunks')) as bigint | number);
    let failedNow = 0;
    let sinceCheckpoint = 0n;
    for (const c of todo) {
      const r = await this.ingest(c, nextId++);
      if (r.failure !== undefined) {
        report.failed.push(r.failure);
        failedNow++;
      }
      report.records += r.records;
      report.added++;
      sinceCheckpoint += r.records;
      if (sinceCheckpoint >= CHECKPOINT_RECORDS) {
        await this.conn.run('CHECKPOINT');
        sinceCheckpoint = 0n;
      }
    }
    report.chunks = Number(await this.scalar('SELECT COUNT(*) FROM chunks'));
    if (report.added > 0 || report.removed > 0) {
      await this.conn.run('CHECKPOINT');
      notice(`rtev: index: ${report.added} chunk(s) added (${report.records} records${failedNow > 0 ? `; ${failedNow} failed verification` : ''}), ${report.removed} removed`);
    }
    return report;
  }

  private async deleteChunks(ids: number[]): Promise<void> {
    const list = ids.join(',');
    for (const t of ['records', ...AGGREGATE_TABLES, 'containers', 'images', 'attribution', 'chunks']) await this.conn.run(`DELETE FROM ${t} WHERE chunk_id IN (${list})`);
  }

  /** ingest verifies one chunk and adds its rows; a failing chunk keeps no rows unless allowUnverified. */
  private async ingest(c: SealedChunk, id: number): Promise<{ records: bigint; failure?: ChunkFailure }> {
    const env = readChunkEnvelope(this.source, c, this.keys);
    if (!env.ok) {
      await this.insertChunk(id, c, undefined, 'failed', env.reason, false);
      return { records: 0n, failure: { file: c.file, reason: env.reason } };
    }
    const facts = env.value;
    let problems: string[] = [];
    let bytes: Buffer | undefined;
    try {
      bytes = readChunkBytes(path.join(this.source, c.file));
    } catch (err) {
      problems = [`cannot read the chunk: ${(err as Error).message}`];
    }
    let n = 0n;
    if (bytes !== undefined) {
      const digest = crypto.createHash('sha256').update(bytes).digest('hex');
      if (digest !== facts.chunkSha256) problems.push(`sha256 ${digest.slice(0, 16)}... does not match the signed digest ${facts.chunkSha256.slice(0, 16)}...: the chunk was modified`);
      if (problems.length === 0 || this.allowUnverified) {
        try {
          n = await this.load(id, facts, bytes, problems.length === 0);
          if (problems.length === 0) problems.push(...(await this.checkLoaded(id, facts, bytes)));
        } catch (err) {
          problems.push(`cannot index the chunk's lines: ${(err as Error).message.split('\n')[0]!.slice(0, 200)}`);
        }
      }
    }
    if (problems.length > 0) {
      if (this.allowUnverified) {
        await this.conn.run(`UPDATE records SET verified = false WHERE chunk_id = ${id}`);
        if (n > 0n) await this.aggregateChunk(id, false);
      } else {
        await this.conn.run(`DELETE FROM records WHERE chunk_id = ${id}`);
        n = 0n;
      }
      await this.insertChunk(id, c, facts, 'failed', problems[0]!, this.allowUnverified && n > 0n);
      return { records: n, failure: { file: c.file, reason: problems[0]! } };
    }
    await this.loadAttribution(id, facts.attribution);
    if (n > 0n) await this.aggregateChunk(id, true);
    await this.insertChunk(id, c, facts, 'ok', null, true);
    return { records: n };
  }

  /**
   * load hands the verified bytes to DuckDB through a private copy (never the chunk file
   * itself, which could change after it was hashed): read_json parses the lines and read_csv
   * (one column, no quoting) gives each raw line, joined by position. DuckDB's JSON reader
   * refuses lone surrogates (\udXXX escapes, rtev's encoding of non-UTF-8 kernel bytes), so
   * the parsed copy has them replaced by \ufffd, same length; the raw line stays exact.
   */
  private async load(id: number, f: ChunkFacts, bytes: Buffer, verified: boolean): Promise<bigint> {
    if (bytes.length === 0) return 0n;
    const dir = this.tmpDir();
    const raw = path.join(dir, `chunk-${id}.ndjson`);
    const parsed = path.join(dir, `chunk-${id}.parse.ndjson`);
    writePrivate(raw, bytes);
    let at = bytes.indexOf('\\ud');
    let parseFile = raw;
    if (at >= 0) {
      const copy = Buffer.from(bytes);
      for (; at >= 0; at = copy.indexOf('\\ud', at + 6)) copy.write('\\ufffd', at, 'latin1');
      writePrivate(parsed, copy);
      parseFile = parsed;
    }
    try {
      // the nearer anchor (wallClock() in ingest.ts): below the midpoint of the two mono readings, the opening one
      const mid = (f.opened.mono + f.sealed.mono) / 2n + 1n;
      const offOpened = f.opened.wall - f.opened.mono;
      const offSealed = f.sealed.wall - f.sealed.mono;
      const wall = `(CASE WHEN j.ts_ns < ${mid}::UBIGINT THEN j.ts_ns::BIGINT + (${offOpened})::BIGINT ELSE j.ts_ns::BIGINT + (${offSealed})::BIGINT END)`;
      const r = await this.conn.run(
        `INSERT INTO records SELECT ${id}, ${f.seq}, ${recordSelect(wall)}, ${verified}
         FROM read_json(${sqlString(parseFile)}, format = 'newline_delimited', records = true, maximum_object_size = ${MAX_LINE_BYTES * 2}, columns = ${RECORD_JSON_COLUMNS}) j
         POSITIONAL JOIN (SELECT row_number() OVER () AS line_no, strlen(line) AS line_len,
             (SUM(strlen(line) + 1) OVER (ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - strlen(line) - 1)::UBIGINT AS line_offset,
             ('0x' || substr(sha256(line), 1, 16))::UBIGINT AS line_sha
           FROM read_csv(${sqlString(raw)}, columns = {'line': 'VARCHAR'}, delim = chr(1), quote = '', escape = '',
           header = false, auto_detect = false, max_line_size = ${MAX_LINE_BYTES * 2}, new_line = '\\n', strict_mode = true)) l`,
      );
      return BigInt(r.rowsChanged);
    } finally {
      fs.rmSync(raw, { force: true });
      fs.rmSync(parsed, { force: true });
    }
  }

  /**
   * aggregateChunk writes the per-chunk aggregates (schema.ts AGGREGATE_SQL) of a chunk's rows,
   * after its container facts are loaded (the product of a record without its own image
   * digest is its container's image in those facts). Exactly the groups of the records: the
   * report over the aggregates equals the report over the records (test/unit/index-aggregates.test.ts).
   */
  private async aggregateChunk(id: number, verified: boolean): Promise<void> {
    const v = verified ? 'TRUE' : 'FALSE';
    const rows = `(SELECT r.*, CASE WHEN r.container_id IS NULL THEN 'host' ELSE COALESCE(r.image_digest, ci.image_digest) END AS product
      FROM records r LEFT JOIN (SELECT container_id, min(image_digest) AS image_digest FROM containers WHERE chunk_id = ${id} AND image_digest IS NOT NULL GROUP BY 1) ci
        ON ci.container_id = r.container_id
      WHERE r.chunk_id = ${id})`;
    await this.conn.run(`INSERT INTO agg_products SELECT ${id}, ${v}, product, container_id, COUNT(*) FROM ${rows} r GROUP BY product, container_id`);
    await this.conn.run(
      `INSERT INTO agg_files SELECT ${id}, ${v}, product, scope, path, n, m.w, last, m.line, m.ts, m.w, m.pid, m.comm, m.cont, m.img FROM (
         -- the earliest record: the smallest (wall_ns, line_no, ...) struct
         SELECT product, COALESCE(container_id, 'host') AS scope, COALESCE(path, library) AS path, COUNT(*) AS n, MAX(wall_ns) AS last,
           MIN({w: wall_ns, line: line_no, ts: ts_ns, pid: pid, comm: comm, cont: container_id, img: image_digest}) AS m
         FROM ${rows} r WHERE product IS NOT NULL AND type IN ('file_open', 'process_exec', 'function_call') AND COALESCE(path, library) IS NOT NULL
         GROUP BY 1, 2, 3)`,
    );
    await this.conn.run(
      `INSERT INTO agg_hits SELECT ${id}, ${v}, product, library, symbol, node_hash, MIN(runtime), COUNT(*), MIN(wall_ns), MAX(wall_ns),
         arg_min({line_no: line_no, ts_ns: ts_ns, wall_ns: wall_ns, pid: pid, comm: comm, container_id: container_id, image_digest: image_digest}, (wall_ns, line_no), 5)
       FROM ${rows} r WHERE product IS NOT NULL AND type = 'function_call' AND symbol IS NOT NULL AND library IS NOT NULL
       GROUP BY product, library, symbol, node_hash`,
    );
    await this.conn.run(
      `INSERT INTO agg_activity SELECT ${id}, ${v}, product, type, ${SECOND_SQL('wall_ns')} AS sec, COUNT(*)
       FROM ${rows} r WHERE product IS NOT NULL GROUP BY product, type, sec`,
    );
  }

  /** checkLoaded compares what DuckDB parsed with the chunk bytes and its signed record summary. */
  private async checkLoaded(id: number, f: ChunkFacts, bytes: Buffer): Promise<string[]> {
    let lines = 0;
    for (let i = bytes.indexOf(10); i >= 0; i = bytes.indexOf(10, i + 1)) lines++;
    const tail = bytes.length === 0 || bytes[bytes.length - 1] === 10 ? 0 : bytes.length - bytes.lastIndexOf(10) - 1;
    const stats = (await this.objects(
      `SELECT COUNT(*) AS n, MIN(ts_ns) AS min_ts, MAX(ts_ns) AS max_ts, arg_min(ts_ns, line_no) AS first_ts, arg_max(ts_ns, line_no) AS last_ts,
        COUNT(*) FILTER (WHERE type IS NULL OR pid IS NULL OR comm IS NULL OR src IS NULL) AS misaligned,
        COUNT(DISTINCT line_no) AS distinct_lines, MAX(line_no) AS max_line
       FROM records WHERE chunk_id = ${id}`,
    ))[0]!;
    // each row's place: lines back to back, each ending with its own ts_ns (the positional join held)
    const places = await this.conn.runAndReadAll(`SELECT line_offset, line_len, ts_ns, line_sha FROM records WHERE chunk_id = ${id} ORDER BY line_no`);
    let expect = 0;
    let misplaced = 0;
    for (const [off, len, ts, sha] of places.getRowsJS() as [bigint, number, bigint, bigint][]) {
      const o = Number(off);
      const end = o + Number(len);
      const suffix = `"ts_ns":${ts}}`;
      if (o !== expect || bytes[end] !== 10 || bytes.toString('latin1', end - suffix.length, end) !== suffix || (o === 0 && lineSha(bytes.subarray(o, end)) !== sha)) misplaced++;
      expect = end + 1;
    }
    if (misplaced > 0) stats['misaligned'] = BigInt(stats['misaligned'] as bigint) + BigInt(misplaced);
    const byType = (await this.objects(`SELECT type, COUNT(*) AS n FROM records WHERE chunk_id = ${id} GROUP BY type`)) as { type: string; n: bigint }[];
    const count = Number(stats['n'] as bigint);
    const out: string[] = [];
    if (Number(stats['misaligned'] as bigint) > 0) out.push(`${stats['misaligned']} line(s) are not well-formed records`);
    if (count !== lines || Number(stats['distinct_lines'] as bigint) !== count || (count > 0 && Number(stats['max_line']) !== count)) {
      out.push(`holds ${lines} lines, ${count} of them parsed as records`);
    }
    const content: ChunkContent = {
      sha256: f.chunkSha256, bytes: bytes.length, count, byType: new Map(byType.map((t) => [t.type, Number(t.n)])),
      firstTs: (stats['first_ts'] as bigint | null) ?? null, lastTs: (stats['last_ts'] as bigint | null) ?? null,
      minTs: (stats['min_ts'] as bigint | null) ?? null, maxTs: (stats['max_ts'] as bigint | null) ?? null, tailBytes: tail, lineProblems: [],
      // the attribution subjects are verify's check (rtev verify); the index takes the signed attribution as it is
      subjects: new AttributionSubjects(),
    };
    out.push(...checkContentAgainstPredicate(content, f.predicate));
    return out;
  }

  private tmpDir(): string {
    const dir = `${this.file}.tmp`;
    if (lstatMaybe(dir) === undefined) fs.mkdirSync(dir, { mode: 0o700 });
    const st = fs.lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) throw new Error(`${dir} is not a private directory`);
    return dir;
  }

  private async insertChunk(id: number, c: SealedChunk, f: ChunkFacts | undefined, status: string, reason: string | null, rowsIndexed: boolean): Promise<void> {
    const u = (v: bigint | null | undefined): string => (v === null || v === undefined ? 'NULL' : `${v}::UBIGINT`);
    const i = (v: bigint | null | undefined): string => (v === null || v === undefined ? 'NULL' : `${v}::BIGINT`);
    await this.conn.run(
      `INSERT INTO chunks VALUES ($1, $2, ${c.seq}::UBIGINT, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, ${u(f?.runChunkIndex)}, $13, $14, $15, $16,
        ${i(f?.opened.wall)}, ${u(f?.opened.mono)}, ${i(f?.sealed.wall)}, ${u(f?.sealed.mono)}, ${u(f?.minTs)}, ${u(f?.maxTs)}, ${u(f?.count)}, ${u(f?.lost)},
        $17, $18, $19, $20, $21, $22)`,
      [id, c.dir, c.file, c.statKey, status, reason, rowsIndexed, f?.chainId ?? null, f?.chunkSha256 ?? null, f?.envelopeSha256 ?? null,
        f?.prevEnvelopeSha256 ?? null, f?.runId ?? null, f?.final ?? null, f?.hostname ?? null, f?.machineId ?? null, f?.bootId ?? null,
        f?.complete ?? null, f?.probes.join(',') ?? null, f?.ledgerJson ?? null, f?.functionCallsJson ?? null, f?.restartJson ?? null, status === 'ok'],
    );
  }

  /**
   * rows streams the matching records in ts_ns order (then chain, seq, line). The line comes
   * from its sealed chunk, at the place the index recorded, and must hash to the line digest
   * taken when the chunk verified: a chunk changed since is refused (VERIFY_INVALID).
   */
  async *rows(f: EvidenceFilter, o: { limit?: number } = {}): AsyncIterable<IndexRow> {
    const { where, params } = compileFilter(f, 'duckdb');
    const verified = this.allowUnverified ? 'TRUE' : 'r.verified';
    const limit = o.limit !== undefined ? ` LIMIT ${Math.max(0, Math.floor(o.limit))}` : '';
    const sql = `SELECT r.chunk_id, r.seq, r.line_no, r.ts_ns, r.wall_ns, r.type, r.pid, r.comm, r.container_id, r.image_digest,
        r.line_offset, r.line_len, r.line_sha, r.verified
      FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id WHERE ${verified} AND ${where} ORDER BY r.ts_ns, k.chain_id, r.seq, r.line_no${limit}`;
    // chunk facts once, not per row
    const chunks = new Map<number, { chainId: string; sha: string; file: string }>();
    for (const k of await this.objects('SELECT chunk_id, chain_id, chunk_sha256, file FROM chunks')) {
      chunks.set(Number(k['chunk_id']), { chainId: (k['chain_id'] as string | null) ?? '', sha: (k['chunk_sha256'] as string | null) ?? '', file: k['file'] as string });
    }
    const result = await this.conn.stream(sql, params as never);
    const reader = new LineReader(this.source);
    try {
      for (;;) {
        const chunk = await result.fetchChunk();
        if (chunk === null || chunk.rowCount === 0) break;
        for (const v of chunk.getRows()) {
          const k = chunks.get(Number(v[0]))!;
          const line = reader.read(k.file, v[10] as bigint, Number(v[11]), v[12] as bigint, v[13] as boolean);
          yield {
            chainId: k.chainId, seq: v[1] as bigint, chunkSha256: k.sha, lineNo: Number(v[2]), tsNs: v[3] as bigint, wallNs: v[4] as bigint,
            type: v[5] as EventType, pid: Number(v[6]), comm: v[7] as string, containerId: v[8] as string | null, imageDigest: v[9] as string | null,
            line, verified: v[13] as boolean,
          };
        }
      }
    } finally {
      reader.close();
    }
  }

  /**
   * lineAt gives the original line of one indexed record (chunk_id, line_no), read from its
   * sealed chunk and checked against the line digest like rows(); undefined if no such row.
   */
  async lineAt(chunkId: number, lineNo: number): Promise<string | undefined> {
    const r = (await this.objects(
      `SELECT k.file, r.line_offset, r.line_len, r.line_sha, r.verified FROM records r JOIN chunks k ON k.chunk_id = r.chunk_id
       WHERE r.chunk_id = $1 AND r.line_no = $2`, [chunkId, lineNo],
    ))[0];
    if (r === undefined || (!this.allowUnverified && r['verified'] !== true)) return undefined;
    const reader = new LineReader(this.source);
    try {
      return reader.read(r['file'] as string, r['line_offset'] as bigint, Number(r['line_len']), r['line_sha'] as bigint, r['verified'] as boolean);
    } finally {
      reader.close();
    }
  }

  /** count gives the number of matching records. */
  async count(f: EvidenceFilter): Promise<bigint> {
    const { where, params } = compileFilter(f, 'duckdb');
    const verified = this.allowUnverified ? 'TRUE' : 'r.verified';
    return BigInt((await this.scalar(`SELECT COUNT(*) FROM records r WHERE ${verified} AND ${where}`, params)) as bigint);
  }

  /** objects runs a read query and gives rows as JS objects (bigint for 64-bit integers). */
  async objects(sql: string, params: unknown[] = []): Promise<Record<string, unknown>[]> {
    const reader = await this.conn.runAndReadAll(sql, params as never);
    return reader.getRowObjectsJS() as Record<string, unknown>[];
  }

  async scalar(sql: string, params: unknown[] = []): Promise<unknown> {
    const reader = await this.conn.runAndReadAll(sql, params as never);
    return reader.getRowsJS()[0]?.[0];
  }

  /**
   * loadAttribution copies the chunk predicate's signed attribution (h14p: container facts and
   * package attribution per path) into the containers, images and attribution tables. Entries
   * of the wrong shape are skipped and counted; at most MAX_ATTRIBUTION entries per chunk.
   */
  private async loadAttribution(id: number, a: StrictObject | null): Promise<number> {
    if (a === null) return 0;
    let skipped = 0;
    const containers = Array.isArray(a['containers']) ? a['containers'].slice(0, MAX_ATTRIBUTION) : [];
    const files = Array.isArray(a['files']) ? a['files'].slice(0, MAX_ATTRIBUTION) : [];
    const s = (v: StrictValue | undefined): string | null => (typeof v === 'string' ? v : null);
    if (containers.length > 0) {
      const ca = await this.conn.createAppender('containers');
      const ia = await this.conn.createAppender('images');
      try {
        for (const c of containers) {
          if (!isObj(c) || typeof c['container_id'] !== 'string') {
            skipped++;
            continue;
          }
          const image = isObj(c['image']) ? c['image'] : undefined;
          const digest = s(image?.['digest']);
          const names = Array.isArray(c['names']) ? c['names'].filter((n): n is string => typeof n === 'string') : [];
          for (const name of names.length > 0 ? names : [null]) {
            appendStrings(ca, [String(id), c['container_id'], s(c['runtime']), name, digest, s(image?.['id']), s(c['reason'])], true);
          }
          const imageNames = Array.isArray(image?.['names']) ? (image!['names'] as StrictValue[]).filter((n): n is string => typeof n === 'string') : [];
          if (digest !== null) for (const n of imageNames) appendStrings(ia, [String(id), digest, n], true);
        }
        ca.flushSync();
        ia.flushSync();
      } finally {
        ca.closeSync();
        ia.closeSync();
      }
    }
    if (files.length > 0) {
      const fa = await this.conn.createAppender('attribution');
      try {
        for (const e of files) {
          if (!isObj(e) || typeof e['scope'] !== 'string' || typeof e['path'] !== 'string') {
            skipped++;
            continue;
          }
          const purl = s(e['purl']);
          const key = purl === null ? undefined : purlKey(purl);
          const comps = Array.isArray(e['components']) ? JSON.stringify(e['components'].filter((x) => typeof x === 'string')) : '[]';
          appendStrings(fa, [String(id), e['scope'], e['path'], purl, key?.base ?? null, key?.version ?? null, s(e['via']), s(e['root']), s(e['reason']), comps], true);
        }
        fa.flushSync();
      } finally {
        fa.closeSync();
      }
    }
    return skipped;
  }

  async close(): Promise<void> {
    closeQuietly(this.conn, this.instance);
  }
}

/** lineSha is the first 64 bits of a line's sha256, as the index stores it. */
export function lineSha(line: Buffer): bigint {
  return crypto.createHash('sha256').update(line).digest().readBigUInt64BE(0);
}

/**
 * LineReader reads indexed lines back from their chunks: one open file at a time (results
 * come nearly in chunk order), a read-ahead window, and the digest check of every line.
 */
class LineReader {
  #file: string | undefined;
  #fd: number | undefined;
  // a small window: matches are often sparse within a chunk
  #buf = Buffer.allocUnsafe(64 * 1024);
  #bufStart = 0;
  #bufLen = 0;
  constructor(private readonly source: string) {}

  read(file: string, offset: bigint, len: number, sha: bigint, verified: boolean): string {
    if (file !== this.#file) {
      this.close();
      try {
        this.#fd = openNoFollow(path.join(this.source, file));
      } catch (err) {
        throw new RtevError('VERIFY_INVALID', `${file} was indexed but cannot be read now (${errorMessage(err)}): run the command again to re-index`);
      }
      this.#file = file;
      this.#bufLen = 0;
    }
    const off = Number(offset);
    let bytes: Buffer;
    if (len <= this.#buf.length && off >= this.#bufStart && off + len <= this.#bufStart + this.#bufLen) {
      bytes = this.#buf.subarray(off - this.#bufStart, off - this.#bufStart + len);
    } else if (len <= this.#buf.length) {
      this.#bufStart = off;
      this.#bufLen = fs.readSync(this.#fd!, this.#buf, 0, this.#buf.length, off);
      bytes = this.#buf.subarray(0, Math.min(len, this.#bufLen));
    } else {
      bytes = Buffer.allocUnsafe(len);
      const n = fs.readSync(this.#fd!, bytes, 0, len, off);
      bytes = bytes.subarray(0, n);
    }
    if (bytes.length !== len || (verified && lineSha(bytes) !== sha)) {
      throw new RtevError('VERIFY_INVALID', `${file} changed since it was verified and indexed (line at byte ${off}): nothing more is served from it; run the command again to re-verify`);
    }
    return bytes.toString('utf8');
  }

  close(): void {
    if (this.#fd !== undefined) fs.closeSync(this.#fd);
    this.#fd = undefined;
    this.#file = undefined;
  }
}

/** At most this many container or file entries of one chunk's attribution are indexed. */
const MAX_ATTRIBUTION = 200_000;

/** appendStrings appends one row; the first value is the chunk id (UINTEGER). */
function appendStrings(a: Appender, values: (string | null)[], firstIsId: boolean): void {
  values.forEach((v, i) => {
    if (i === 0 && firstIsId) a.appendUInteger(Number(v));
    else if (v === null) a.appendNull();
    else a.appendVarchar(v);
  });
  a.endRow();
}

type Appender = import('@duckdb/node-api').DuckDBAppender;

/** Chunks larger than this are not indexed (the collector's default is 16 MiB). */
export const MAX_CHUNK_BYTES = 512 * 1024 * 1024;

/** readChunkBytes reads a whole chunk (no symlink, regular file, bounded). */
function readChunkBytes(file: string): Buffer {
  const fd = openNoFollow(file);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > MAX_CHUNK_BYTES) throw new Error(`larger than ${MAX_CHUNK_BYTES} bytes`);
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < buf.length) {
      const n = fs.readSync(fd, buf, off, buf.length - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== st.size || fs.readSync(fd, Buffer.alloc(1), 0, 1, off) !== 0) throw new Error('changed while being read');
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

function writePrivate(file: string, data: Buffer): void {
  fs.rmSync(file, { force: true });
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    let off = 0;
    while (off < data.length) off += fs.writeSync(fd, data, off);
  } finally {
    fs.closeSync(fd);
  }
}

/** SECOND_SQL: floor(col / 1e9) for a BIGINT column (DuckDB's // truncates toward zero). */
export const SECOND_SQL = (col: string): string => `(CASE WHEN ${col} >= 0 THEN ${col} // 1000000000 ELSE -((-${col} - 1) // 1000000000) - 1 END)`;

/** sqlString quotes a string literal for SQL (file names the index chose itself). */
export function sqlString(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

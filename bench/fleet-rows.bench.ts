/**
 * Row building of `rtev ingest` and what its rows cost PostgreSQL, side by side in one run:
 * each chunk built and copied by every variant (order rotating, one transaction per chunk as
 * ingest does), against a throwaway PostgreSQL 15 (test/helpers/fleet-servers.ts):
 * - v6: the ingest path (canonical-line scanner, binary COPY, u64 columns as biased int8, the
 *   line as the row's bytea, BRIN on chunk_id and wall_ns), schema v6;
 * - v5: the same rows without the line, and the body inserted once into a bytea STORAGE
 *   EXTERNAL column (schema v5's chunks.body), in the same transaction;
 * - v6-noindex: v6 rows into a copy of records without its two BRIN indexes (their cost);
 * - parse: v6 rows with JSON.parse for every line (scan: false: node's side of the scanner);
 * - text: encodeRows + text COPY (the fallback), schema v6.
 * CPU of this process and of the PostgreSQL backend per variant; signed synthetic chunks
 * (test/helpers/synthetic-evidence.ts). Against older builds, compare whole builds with
 * bench/fleet.bench.ts `--rtev OLD/bin/rtev,bin/rtev`.
 *
 * --against DIR also times this build's row builder and line scanner against DIR's (another
 * built checkout, e.g. main's before a change: DIR/dist/src/fleet/{rows-binary,line-scan}.js) in
 * this one process, node only, alternating, 13 timed rounds after 2 warm-up ones (the minimum).
 *
 *   node dist/bench/fleet-rows.bench.js [--records 200000] [--chunk-size 4194304]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { checkContent, checkEnvelope, type ChunkFacts } from '../src/fleet/chunk-check';
import { LineScan } from '../src/fleet/line-scan';
import { COPY_RECORDS, copyPieces, initSchema } from '../src/fleet/pg-schema';
import { encodeRows } from '../src/fleet/rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary, releaseRows, type BinaryRows } from '../src/fleet/rows-binary';
import { loadVerifyKeyFile } from '../src/sign/key-files';
import { startPostgres } from '../test/helpers/fleet-servers';
import { newKey, writeSynthetic } from '../test/helpers/synthetic-evidence';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

async function main(): Promise<void> {
  const records = arg('records', 200_000);
  const chunkSize = arg('chunk-size', 4 * 1024 * 1024);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bench-rows-'));
  const { keyFile } = newKey(path.join(base, 'keys'));
  const dir = path.join(base, 'evidence');
  const machineId = 'cd'.repeat(16);
  await writeSynthetic(dir, keyFile, records, { chunkMaxBytes: chunkSize, hostname: 'bench-rows', machineId });
  const key = loadVerifyKeyFile(keyFile + '.pub');
  const chunks = fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).sort().map((name) => {
    const v = checkEnvelope(fs.readFileSync(path.join(dir, name)), machineId, [key]);
    if (!v.ok) throw new Error(v.reason);
    return { body: fs.readFileSync(path.join(dir, name.replace('.dsse.json', '.ndjson'))), facts: v.facts, predicate: v.predicate };
  });
  const against = process.argv.indexOf('--against');
  if (against >= 0) builderAB(path.resolve(process.argv[against + 1]!), chunks);
  const pg = await startPostgres();
  try {
    const db = new Client({ connectionString: pg.url() });
    await db.connect();
    await initSchema(db, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    // schema v5's records (no line; the body in a column of its own) and v6's without indexes, beside the real one
    await db.query(`CREATE TABLE records_v5 (LIKE records INCLUDING DEFAULTS); ALTER TABLE records_v5 DROP COLUMN line;
      CREATE INDEX records_v5_chunk ON records_v5 USING brin (chunk_id) WITH (pages_per_range = 32);
      CREATE INDEX records_v5_wall ON records_v5 USING brin (wall_ns);
      CREATE TABLE records_noidx (LIKE records INCLUDING DEFAULTS);
      CREATE TABLE bodies (chunk_id bigint NOT NULL, body bytea NOT NULL); ALTER TABLE bodies ALTER COLUMN body SET STORAGE EXTERNAL`);
    const v5Copy = COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_v5 ').replace(', line)', ')');
    console.log(`# fleet row building: ${chunks.length} chunks of <= ${chunkSize} bytes, ${records} records, PostgreSQL 15 (fsync off), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const backend = Number((await db.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    // CPU seconds of the PostgreSQL backend serving this session (utime + stime, clock ticks of 10 ms)
    const backendCpuMs = (): number => {
      const f = fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const kinds = ['v6', 'v5', 'v6-noindex', 'parse', 'text'] as const;
    type Kind = (typeof kinds)[number];
    const total = Object.fromEntries([...kinds].map((k) => [k, { ms: 0, n: 0, cpu: 0, pg: 0 }])) as Record<Kind, { ms: number; n: number; cpu: number; pg: number }>;
    const measure = async (kind: Kind, n: number, fn: () => Promise<void>): Promise<void> => {
      const t0 = performance.now();
      const u0 = process.cpuUsage();
      const b0 = backendCpuMs();
      await fn();
      const u = process.cpuUsage(u0);
      total[kind].ms += performance.now() - t0;
      total[kind].cpu += (u.user + u.system) / 1000;
      total[kind].pg += backendCpuMs() - b0;
      total[kind].n += n;
    };
    const copy = (sql: string, pieces: Buffer[]): Promise<void> => copyPieces(db, sql, pieces);
    let id = 1n;
    for (const [i, c] of chunks.entries()) {
      const order = kinds.map((_, j) => kinds[(i + j) % kinds.length]!);
      const n = Number(c.facts.count);
      for (const kind of order) {
        await measure(kind, n, async () => {
          const chunkId = id++;
          await db.query('BEGIN');
          const rows = kind === 'text' ? encodeRows(c.body, c.facts, chunkId) : encodeRowsBinary(c.body, c.facts, chunkId, false, { scan: kind !== 'parse', line: kind !== 'v5' });
          if (rows === undefined || checkContent(rows.content, c.predicate) !== undefined) throw new Error(`${kind} refused a synthetic chunk`);
          const sql = kind === 'text' ? COPY_RECORDS : kind === 'v5' ? v5Copy : kind === 'v6-noindex' ? COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_noidx ') : COPY_RECORDS_BINARY;
          await copy(sql, rows.pieces);
          if (kind !== 'text') releaseRows(rows as BinaryRows);
          if (kind === 'v5') await db.query('INSERT INTO bodies (chunk_id, body) VALUES ($1, $2)', [String(chunkId), c.body]);
          await db.query('COMMIT');
        });
      }
    }
    await db.end();
    const us = (ms: number, n: number): string => ((ms * 1000) / n).toFixed(2);
    for (const kind of kinds) {
      const t = total[kind];
      console.log(`${kind.padEnd(10)}: ${t.n} records in ${(t.ms / 1000).toFixed(2)} s = ${(t.n / (t.ms / 1000)).toFixed(0)} records/s; CPU per record: node ${us(t.cpu, t.n)} us + PostgreSQL backend ${us(t.pg, t.n)} us = ${us(t.cpu + t.pg, t.n)} us (${(t.n / ((t.cpu + t.pg) / 1000)).toFixed(0)} records per CPU-second)`);
    }
    const per = (k: Kind): number => (total[k].cpu + total[k].pg) / total[k].n;
    const pgPer = (k: Kind): number => total[k].pg / total[k].n;
    console.log(`CPU per record relative to v6: ${kinds.map((k) => `${k} ${(per(k) / per('v6')).toFixed(2)}`).join(', ')}; PostgreSQL only: ${kinds.map((k) => `${k} ${(pgPer(k) / pgPer('v6')).toFixed(2)}`).join(', ')}; load now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    pg.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** the row builder and the scanner of this build against another build's, in this process (CPU per record, minimum of 13 rounds) */
function builderAB(dir: string, chunks: { body: Buffer; facts: ChunkFacts }[]): void {
  type Rows = { encodeRowsBinary: typeof encodeRowsBinary; releaseRows?: typeof releaseRows };
  type Scan = { LineScan: typeof LineScan };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const other = require(path.join(dir, 'dist/src/fleet/rows-binary.js')) as Rows;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const otherScan = require(path.join(dir, 'dist/src/fleet/line-scan.js')) as Scan;
  const n = chunks.reduce((a, c) => a + Number(c.facts.count), 0);
  const scanAll = (S: Scan): void => {
    const sc = new S.LineScan();
    for (const c of chunks) {
      const b = c.body;
      let s = 0;
      for (let nl = b.indexOf(10); nl >= 0; nl = b.indexOf(10, s)) {
        sc.scan(b, s, nl);
        s = nl + 1;
      }
    }
  };
  const build = (R: Rows): void => {
    for (const c of chunks) {
      const r = R.encodeRowsBinary(c.body, c.facts, 5n, false);
      if (r === undefined) throw new Error('a build refused a synthetic chunk');
      R.releaseRows?.(r);
    }
  };
  const runs: [string, () => void][] = [
    ['builder, other build', () => build(other)], ['builder, this build', () => build({ encodeRowsBinary, releaseRows })],
    ['scanner, other build', () => scanAll(otherScan)], ['scanner, this build', () => scanAll({ LineScan })],
  ];
  const min = new Map<string, number>();
  for (let round = 0; round < 15; round++) {
    for (const [k, f] of runs) {
      const u0 = process.cpuUsage();
      f();
      const u = process.cpuUsage(u0);
      if (round >= 2) min.set(k, Math.min(min.get(k) ?? Infinity, (u.user + u.system) / n));
    }
  }
  console.log(`# builder A/B in one process against ${dir}: ${n} records, node CPU per record, minimum of 13 rounds, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  for (const [k, v] of min) console.log(`${k.padEnd(22)}: ${v.toFixed(2)} us`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

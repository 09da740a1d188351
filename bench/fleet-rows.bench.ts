/**
 * Row building of `rtev ingest` and what its rows cost PostgreSQL, side by side in one run:
 * each chunk built and copied by every variant (order rotating, one transaction per chunk as
 * ingest does), against a throwaway PostgreSQL 15 (test/helpers/fleet-servers.ts):
 * - v5: the ingest path (canonical-line scanner, binary COPY, u64 columns as biased int8,
 *   BRIN on chunk_id and wall_ns), schema v5;
 * - v4: the same builder writing schema v4's numeric(20) ts_ns and cgroup_id into a copy of
 *   v4's records table (the u64 columns' cost, by column);
 * - v5-noindex: v5 rows into a copy of records without its two BRIN indexes (their cost);
 * - parse: v5 rows with JSON.parse for every line (scan: false: node's side of the scanner);
 * - text: encodeRows + text COPY (the fallback), schema v5.
 * The verified body (chunks.body, bytea STORAGE EXTERNAL) is inserted once per chunk on its
 * own and reported as `body`. CPU of this process and of the PostgreSQL backend per variant;
 * signed synthetic chunks (test/helpers/synthetic-evidence.ts). Against older builds, compare
 * whole builds with bench/fleet.bench.ts `--rtev OLD/bin/rtev,bin/rtev`.
 *
 *   node dist/bench/fleet-rows.bench.js [--records 200000] [--chunk-size 4194304]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { checkContent, checkEnvelope } from '../src/fleet/chunk-check';
import { COPY_RECORDS, copyPieces, initSchema } from '../src/fleet/pg-schema';
import { encodeRows } from '../src/fleet/rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary } from '../src/fleet/rows-binary';
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
  const pg = await startPostgres();
  try {
    const db = new Client({ connectionString: pg.url() });
    await db.connect();
    await initSchema(db, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    // schema v4's records (numeric(20) u64 columns) and v5's without indexes, beside the real one
    await db.query(`CREATE TABLE records_v4 (
        chunk_id bigint NOT NULL, wall_ns bigint NOT NULL, ssl_bytes bigint, line_no integer NOT NULL, line_off integer NOT NULL, line_len integer NOT NULL,
        pid integer NOT NULL, tid integer, peer_port integer, local_port integer, ts_ns numeric(20) NOT NULL, cgroup_id numeric(20),
        type text NOT NULL, src text NOT NULL, comm text NOT NULL, container_id text, image_digest text, path text, access text,
        peer_addr text, local_addr text, symbol text, library text, node_hash text, runtime text, ssl_op text);
      CREATE INDEX records_v4_chunk ON records_v4 USING brin (chunk_id) WITH (pages_per_range = 32);
      CREATE INDEX records_v4_wall ON records_v4 USING brin (wall_ns);
      CREATE TABLE records_noidx (LIKE records INCLUDING DEFAULTS);
      CREATE TABLE bodies (chunk_id bigint NOT NULL, body bytea NOT NULL); ALTER TABLE bodies ALTER COLUMN body SET STORAGE EXTERNAL`);
    const v4Copy = COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_v4 ').replace('ts_ns_biased', 'ts_ns').replace('cgroup_id_biased', 'cgroup_id');
    console.log(`# fleet row building: ${chunks.length} chunks of <= ${chunkSize} bytes, ${records} records, PostgreSQL 15 (fsync off), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const backend = Number((await db.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    // CPU seconds of the PostgreSQL backend serving this session (utime + stime, clock ticks of 10 ms)
    const backendCpuMs = (): number => {
      const f = fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const kinds = ['v5', 'v4', 'v5-noindex', 'parse', 'text'] as const;
    type Kind = (typeof kinds)[number] | 'body';
    const total = Object.fromEntries([...kinds, 'body'].map((k) => [k, { ms: 0, n: 0, cpu: 0, pg: 0 }])) as Record<Kind, { ms: number; n: number; cpu: number; pg: number }>;
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
          const rows = kind === 'text' ? encodeRows(c.body, c.facts, chunkId) : encodeRowsBinary(c.body, c.facts, chunkId, false, { scan: kind !== 'parse', numericU64: kind === 'v4' });
          if (rows === undefined || checkContent(rows.content, c.predicate) !== undefined) throw new Error(`${kind} refused a synthetic chunk`);
          const sql = kind === 'text' ? COPY_RECORDS : kind === 'v4' ? v4Copy : kind === 'v5-noindex' ? COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_noidx ') : COPY_RECORDS_BINARY;
          await copy(sql, rows.pieces);
          await db.query('COMMIT');
        });
      }
      await measure('body', n, async () => {
        await db.query('INSERT INTO bodies (chunk_id, body) VALUES ($1, $2)', [String(id++), c.body]);
      });
    }
    await db.end();
    const us = (ms: number, n: number): string => ((ms * 1000) / n).toFixed(2);
    for (const kind of [...kinds, 'body'] as const) {
      const t = total[kind];
      console.log(`${kind.padEnd(10)}: ${t.n} records in ${(t.ms / 1000).toFixed(2)} s = ${(t.n / (t.ms / 1000)).toFixed(0)} records/s; CPU per record: node ${us(t.cpu, t.n)} us + PostgreSQL backend ${us(t.pg, t.n)} us = ${us(t.cpu + t.pg, t.n)} us (${(t.n / ((t.cpu + t.pg) / 1000)).toFixed(0)} records per CPU-second)`);
    }
    const per = (k: Kind): number => (total[k].cpu + total[k].pg) / total[k].n;
    const pgPer = (k: Kind): number => total[k].pg / total[k].n;
    console.log(`CPU per record relative to v5: ${kinds.map((k) => `${k} ${(per(k) / per('v5')).toFixed(2)}`).join(', ')}; PostgreSQL only: ${kinds.map((k) => `${k} ${(pgPer(k) / pgPer('v5')).toFixed(2)}`).join(', ')}; load now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    pg.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

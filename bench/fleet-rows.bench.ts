/**
 * Row building of `rtev ingest` and what its rows cost PostgreSQL, side by side in one run:
 * each chunk built and copied by every variant (order rotating, one transaction per chunk as
 * ingest does), against a throwaway PostgreSQL 15 (test/helpers/fleet-servers.ts):
 * - v7: the ingest path (canonical-line scanner, binary COPY, u64 columns as biased int8, the
 *   line as the row's bytea, one BRIN on chunk_id), schema v7;
 * - v6: the same rows into a copy of records with schema v6's second BRIN (wall_ns): its cost;
 * - noindex: the same rows into a copy of records without any index;
 * - parse: v7 rows with JSON.parse for every line (scan: false: node's side of the scanner);
 * - text: encodeRows + text COPY (the fallback), schema v7.
 * CPU of this process and of the PostgreSQL backend per variant; signed synthetic chunks
 * (test/helpers/synthetic-evidence.ts). Then, per chunk, the chunk's own rows (chunks,
 * chunk_ledger, hosts, host_keys) and the COMMIT: `meta-batch` as ingest writes them (one batch of
 * literals, src/fleet/chunk-rows.ts, then COMMIT), `meta-separate` as five parameterized
 * statements (ingest before session 6). Against older builds, compare whole builds with
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
import { chunkBatch } from '../src/fleet/chunk-rows';
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
    return { body: fs.readFileSync(path.join(dir, name.replace('.dsse.json', '.ndjson'))), facts: v.facts, predicate: v.predicate, envelope: fs.readFileSync(path.join(dir, name), 'utf8') };
  });
  const against = process.argv.indexOf('--against');
  if (against >= 0) builderAB(path.resolve(process.argv[against + 1]!), chunks);
  const pg = await startPostgres();
  try {
    const db = new Client({ connectionString: pg.url() });
    await db.connect();
    await initSchema(db, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    // schema v6's records (a second BRIN, on wall_ns) and records without indexes, beside the real one
    await db.query(`CREATE TABLE records_v6 (LIKE records INCLUDING DEFAULTS);
      CREATE INDEX records_v6_chunk ON records_v6 USING brin (chunk_id) WITH (pages_per_range = 32);
      CREATE INDEX records_v6_wall ON records_v6 USING brin (wall_ns);
      CREATE TABLE records_noidx (LIKE records INCLUDING DEFAULTS)`);
    console.log(`# fleet row building: ${chunks.length} chunks of <= ${chunkSize} bytes, ${records} records, PostgreSQL 15 (fsync off), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const backend = Number((await db.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    // CPU seconds of the PostgreSQL backend serving this session (utime + stime, clock ticks of 10 ms)
    const backendCpuMs = (): number => {
      const f = fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const kinds = ['v7', 'v6', 'noindex', 'parse', 'text'] as const;
    type Kind = (typeof kinds)[number];
    const metas = ['meta-batch', 'meta-separate'] as const;
    type Meta = (typeof metas)[number];
    const total = Object.fromEntries([...kinds, ...metas].map((k) => [k, { ms: 0, n: 0, cpu: 0, pg: 0, chunks: 0 }])) as Record<Kind | Meta, { ms: number; n: number; cpu: number; pg: number; chunks: number }>;
    const measure = async (kind: Kind | Meta, n: number, fn: () => Promise<void>): Promise<void> => {
      const t0 = performance.now();
      const u0 = process.cpuUsage();
      const b0 = backendCpuMs();
      await fn();
      const u = process.cpuUsage(u0);
      total[kind].ms += performance.now() - t0;
      total[kind].cpu += (u.user + u.system) / 1000;
      total[kind].pg += backendCpuMs() - b0;
      total[kind].n += n;
      total[kind].chunks++;
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
          const rows = kind === 'text' ? encodeRows(c.body, c.facts, chunkId) : encodeRowsBinary(c.body, c.facts, chunkId, false, { scan: kind !== 'parse' });
          if (rows === undefined || checkContent(rows.content, c.predicate) !== undefined) throw new Error(`${kind} refused a synthetic chunk`);
          const sql = kind === 'text' ? COPY_RECORDS : kind === 'v6' ? COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_v6 ')
            : kind === 'noindex' ? COPY_RECORDS_BINARY.replace('COPY records ', 'COPY records_noidx ') : COPY_RECORDS_BINARY;
          await copy(sql, rows.pieces);
          if (kind !== 'text') releaseRows(rows as BinaryRows);
          await db.query('COMMIT');
        });
      }
    }
    // the chunk's own rows, per form, in blocks of 20 chunks alternating (a chunk's rows cost about a
    // millisecond: measured over many, the CPU clock ticks are 10 ms), each form on a host of its own
    const metaChunks = arg('meta-chunks', 400);
    let seq = 0;
    for (let block = 0; block < metaChunks / 20; block++) {
      for (const meta of block % 2 === 0 ? metas : [...metas].reverse()) {
        await measure(meta, 0, async () => {
          for (let j = 0; j < 20; j++) {
            const c = chunks[(block * 20 + j) % chunks.length]!;
            const f: ChunkFacts = { ...c.facts, hostId: meta, seq: BigInt(++seq), envelopeSha256: `${meta}-${seq}` };
            const row = { f, chunkId: id++, streamSeq: seq, envelope: c.envelope, publishedMs: Date.now(), host: block === 0 && j === 0 ? 'new' as const : 'head' as const };
            await db.query('BEGIN');
            if (meta === 'meta-batch') await db.query(chunkBatch(row)!);
            else await separateStatements(db, row);
            await db.query('COMMIT');
          }
        });
        total[meta].chunks += 19;
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
    console.log(`CPU per record relative to v7: ${kinds.map((k) => `${k} ${(per(k) / per('v7')).toFixed(2)}`).join(', ')}; PostgreSQL only: ${kinds.map((k) => `${k} ${(pgPer(k) / pgPer('v7')).toFixed(2)}`).join(', ')}`);
    const perChunk = Number(total.v7.n) / Math.max(1, total.v7.chunks);
    for (const m of metas) {
      const t = total[m];
      console.log(`${m.padEnd(13)}: per chunk ${(t.ms / t.chunks).toFixed(2)} ms wall, node ${(t.cpu / t.chunks).toFixed(2)} ms + PostgreSQL backend ${(t.pg / t.chunks).toFixed(2)} ms CPU (= ${((t.pg * 1000) / t.chunks / perChunk).toFixed(2)} us per record at ${perChunk.toFixed(0)} records per chunk)`);
    }
    console.log(`load now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
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

/** the chunk's own rows as ingest wrote them before session 6: five parameterized statements (the comparison of meta-batch) */
async function separateStatements(db: Client, r: { f: ChunkFacts; chunkId: bigint; streamSeq: number; envelope: string; publishedMs: number; host: 'new' | 'head' }): Promise<void> {
  const f = r.f;
  const s = (v: bigint | null): string | null => (v === null ? null : String(v));
  await db.query(
    `INSERT INTO chunks (chunk_id, host_id, chain_id, seq, chunk_sha256, envelope_sha256, prev_envelope_sha256, run_id, run_chunk_index, final,
      hostname, machine_id, boot_id, opened_wall_ns, opened_mono_ns, sealed_wall_ns, sealed_mono_ns, min_ts_ns, max_ts_ns, count, bytes,
      lost, complete, probes, ledger_json, function_calls_json, restart_json, keyid, stream_seq, envelope, published_at)
     VALUES ($30,$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$23,$24,$25,$26,$27,$28,$29,to_timestamp($31::double precision / 1000))`,
    [f.hostId, f.chainId, s(f.seq), f.chunkSha256, f.envelopeSha256, f.prevEnvelopeSha256, f.runId, s(f.runChunkIndex), f.final,
      f.hostname, f.machineId, f.bootId, s(f.openedWallNs), s(f.openedMonoNs), s(f.sealedWallNs), s(f.sealedMonoNs), s(f.minTs), s(f.maxTs),
      s(f.count), s(f.bytes), s(f.lost), f.complete, f.probes.map((p) => p.probe).join(','), f.ledgerJson, f.functionCallsJson, f.restartJson,
      f.keyid, r.streamSeq, r.envelope, String(r.chunkId), String(r.publishedMs)],
  );
  const vals: string[] = [];
  const params: unknown[] = [];
  for (const p of f.probes) {
    const v = p.values;
    const row = [f.hostId, f.chainId, s(f.seq), p.probe, v['kernel.submitted'], v['kernel.filtered'], v['kernel.ring_full'], v['kernel.skipped'],
      v['kernel.truncated'], v['user.received'], v['user.written'], v['user.filtered'], v['user.rejected'], v['user.shed'], v.in_chunk,
      v.in_flight_start, v.in_flight_end, v.lost].map((x) => (typeof x === 'bigint' ? String(x) : x));
    vals.push(`(${row.map((_, i) => `$${params.length + i + 1}`).join(',')})`);
    params.push(...row);
  }
  if (vals.length > 0) {
    await db.query(`INSERT INTO chunk_ledger (host_id, chain_id, seq, probe, submitted, k_filtered, ring_full, skipped, truncated, received,
      written, u_filtered, rejected, shed, in_chunk, in_flight_start, in_flight_end, lost) VALUES ${vals.join(',')}`, params);
  }
  if (r.host === 'new') {
    await db.query(`INSERT INTO hosts (host_id, hostname, machine_id, chain_id, head_seq, head_envelope_sha256, head_sealed_wall_ns, chunks, records, lost)
      VALUES ($1,$2,$3,$4,$5,$6,$7,1,$8,$9)`, [f.hostId, f.hostname, f.machineId, f.chainId, s(f.seq), f.envelopeSha256, s(f.sealedWallNs), s(f.count), s(f.lost)]);
  } else {
    await db.query(`UPDATE hosts SET hostname = $2, head_seq = $3, head_envelope_sha256 = $4, head_sealed_wall_ns = $5, last_indexed_at = now(),
      chunks = chunks + 1, records = records + $6, lost = lost + $7 WHERE host_id = $1`,
    [f.hostId, f.hostname, s(f.seq), f.envelopeSha256, s(f.sealedWallNs), s(f.count), s(f.lost)]);
  }
  await db.query(`INSERT INTO host_keys (host_id, keyid, chunks) VALUES ($1, $2, 1)
    ON CONFLICT (host_id, keyid) DO UPDATE SET last_seen = now(), chunks = host_keys.chunks + 1`, [f.hostId, f.keyid]);
}

/**
 * Evidence index benchmark: DuckDB (the index rtev uses) against SQLite (better-sqlite3, the
 * alternative the issue names), on the same synthetic signed chunks written by the real chunk
 * writer and signer (test/helpers/synthetic-evidence.ts).
 *
 *   node dist/bench/index-store.bench.js [--records 10000000] [--dir /tmp/rtev-bench-index]
 *        [--sqlite /path/to/node_modules/better-sqlite3] [--only duckdb|sqlite] [--reps 7]
 *
 * Each store runs in its own child process so that its peak RSS (getrusage maxrss) is its own.
 * Ingest includes verification: envelope signature, predicate, sha256 of the chunk bytes.
 * better-sqlite3 is not a dependency of rtev: install it anywhere (npm install better-sqlite3@12,
 * about 90 s to compile) and pass --sqlite. Not run in CI. Results go to docs/benchmarks.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EvidenceFilter } from '../src/index/filter';
import { openEvidenceIndex } from '../src/index/index';
import { readChunkEnvelope, discoverChunks } from '../src/index/ingest';
import { summarize } from '../src/index/summary';
import { loadVerifyKeyFile } from '../src/sign/key-files';
import { cachedSyntheticEvidence, SYNTH_CONTAINERS } from '../test/helpers/synthetic-evidence';

interface Args { records: number; dir: string; sqlite?: string; only?: string; reps: number; phase?: string }

function args(): Args {
  const a: Args = { records: 10_000_000, dir: path.join(os.tmpdir(), 'rtev-bench-index'), reps: 7 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i]!;
    const next = (): string => v[++i] ?? '';
    if (k === '--records') a.records = Number(next());
    else if (k === '--dir') a.dir = next();
    else if (k === '--sqlite') a.sqlite = next();
    else if (k === '--only') a.only = next();
    else if (k === '--reps') a.reps = Number(next());
    else if (k === '--phase') a.phase = next();
  }
  return a;
}

/** The filtered queries timed for both stores (same semantics; the SQLite SQL is written by hand below). */
const QUERIES: { name: string; filter: EvidenceFilter; sqlite: string }[] = [
  { name: 'pid + type', filter: { pids: [1005], types: ['ssl_op'] }, sqlite: `pid = 1005 AND type = 'ssl_op'` },
  { name: 'path glob', filter: { paths: ['/usr/bin/tool1*'] }, sqlite: `type IN ('file_open','process_exec') AND path GLOB '/usr/bin/tool1*'` },
  { name: 'peer addr:port', filter: { peers: [{ addr: '127.0.0.2', port: 8005 }] }, sqlite: `((peer_addr = '127.0.0.2' AND peer_port = 8005) OR (local_addr = '127.0.0.2' AND local_port = 8005))` },
  { name: 'container + symbol', filter: { containers: [SYNTH_CONTAINERS[0]!], symbols: ['vuln_func'] }, sqlite: `container_id = '${SYNTH_CONTAINERS[0]}' AND type = 'function_call' AND symbol = 'vuln_func'` },
  { name: 'time window 1 s', filter: { sinceWallNs: 1_764_576_000_000_000_000n + 5_000_000_000n, untilWallNs: 1_764_576_000_000_000_000n + 6_000_000_000n }, sqlite: `wall_ns >= 1764576005000000000 AND wall_ns < 1764576006000000000` },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function generate(a: Args): Promise<{ evidence: string; pub: string }> {
  const { evidence, pub, generatedMs } = await cachedSyntheticEvidence(a.dir, a.records);
  if (generatedMs !== undefined) console.error(`generated ${a.records} records in ${(generatedMs / 1000).toFixed(1)} s`);
  return { evidence, pub };
}

async function duckPhase(a: Args, evidence: string, pub: string): Promise<Record<string, unknown>> {
  const indexPath = path.join(a.dir, `duck-${a.records}.duckdb`);
  fs.rmSync(indexPath, { force: true });
  fs.rmSync(`${indexPath}.wal`, { force: true });
  const keys = [loadVerifyKeyFile(pub)];
  let t = Date.now();
  let c = cpuMs();
  const idx = await openEvidenceIndex({ source: evidence, indexPath, keys });
  const ingestMs = Date.now() - t;
  const ingestCpu = cpuMs() - c;
  const records = Number(await idx.count({}));
  const queries: Record<string, unknown> = {};
  for (const q of QUERIES) {
    const times: number[] = [];
    let n = 0;
    for (let i = 0; i < a.reps; i++) {
      t = performance.now();
      n = 0;
      for await (const r of idx.rows(q.filter)) n += r.line.length > 0 ? 1 : 0;
      times.push(performance.now() - t);
    }
    queries[q.name] = { rows: n, p50_ms: Math.round(median(times)), min_ms: Math.round(Math.min(...times)) };
  }
  const sTimes: number[] = [];
  for (let i = 0; i < Math.min(a.reps, 3); i++) {
    t = performance.now();
    await summarize(idx, {});
    sTimes.push(performance.now() - t);
  }
  await idx.close();
  // the incremental path: nothing new, then one new run of 10k records
  t = Date.now();
  const again = await openEvidenceIndex({ source: evidence, indexPath, keys });
  const noopMs = Date.now() - t;
  await again.close();
  c = cpuMs();
  const size = fs.statSync(indexPath).size;
  return {
    store: 'duckdb', records, ingest_ms: ingestMs, ingest_cpu_ms: Math.round(ingestCpu), records_per_s: Math.round(records / (ingestMs / 1000)),
    queries, summary_p50_ms: Math.round(median(sTimes)), reopen_no_change_ms: noopMs, index_bytes: size, peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

/** SQLite with the same verification, the same columns and the original line, indexes on the filtered columns. */
async function sqlitePhase(a: Args, evidence: string, pub: string): Promise<Record<string, unknown>> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Database = require(a.sqlite!);
  const file = path.join(a.dir, `sqlite-${a.records}.db`);
  for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(`CREATE TABLE records (chunk_id INTEGER, seq INTEGER, line_no INTEGER, ts_ns TEXT, wall_ns INTEGER, type TEXT, src TEXT, pid INTEGER, tid INTEGER, comm TEXT,
    cgroup_id TEXT, container_id TEXT, image_digest TEXT, path TEXT, access TEXT, peer_addr TEXT, peer_port INTEGER, local_addr TEXT, local_port INTEGER,
    symbol TEXT, library TEXT, node_hash TEXT, runtime TEXT, ssl_bytes INTEGER, ssl_op TEXT, line TEXT)`);
  const ins = db.prepare(`INSERT INTO records VALUES (${new Array(26).fill('?').join(',')})`);
  const keys = [loadVerifyKeyFile(pub)];
  let t = Date.now();
  let c = cpuMs();
  let id = 0;
  let records = 0;
  for (const ch of discoverChunks(evidence).chunks) {
    const env = readChunkEnvelope(evidence, ch, keys);
    if (!env.ok) throw new Error(env.reason);
    const bytes = fs.readFileSync(path.join(evidence, ch.file));
    if (crypto.createHash('sha256').update(bytes).digest('hex') !== env.value.chunkSha256) throw new Error('digest');
    id++;
    const { opened } = env.value;
    const tx = db.transaction(() => {
      let lineNo = 0;
      for (const line of bytes.toString('utf8').split('\n')) {
        if (line === '') continue;
        lineNo++;
        const o = JSON.parse(line);
        const e = o.event;
        const ts = BigInt(/"ts_ns":(\d+)\}$/.exec(line)![1]!);
        const isNet = e.type === 'net_connect';
        const isTcp = e.type === 'tcp_state';
        ins.run(id, ch.seq, lineNo, ts.toString(), ts - opened.mono + opened.wall, e.type, o.src, o.pid, o.tid ?? null, o.comm, /"cgroup_id":(\d+)/.exec(line)?.[1] ?? null,
          o.container_id ?? null, o.image_digest ?? null, e.type === 'file_open' ? e.path : e.type === 'process_exec' ? e.filename : null, e.access ?? null,
          isNet ? e.addr : isTcp ? e.daddr : null, isNet ? e.port : isTcp ? e.dport : null, isTcp ? e.saddr : null, isTcp ? e.sport : null,
          e.symbol ?? null, e.library ?? null, e.node_hash ?? null, e.runtime ?? null, e.bytes ?? null, e.operation ?? null, line);
        records++;
      }
    });
    tx();
  }
  const loadMs = Date.now() - t;
  t = Date.now();
  for (const col of ['pid', 'type', 'wall_ns', 'container_id', 'peer_addr', 'path']) db.exec(`CREATE INDEX records_${col} ON records(${col})`);
  const indexMs = Date.now() - t;
  const ingestCpu = cpuMs() - c;
  const queries: Record<string, unknown> = {};
  for (const q of QUERIES) {
    const stmt = db.prepare(`SELECT line FROM records WHERE ${q.sqlite} ORDER BY CAST(ts_ns AS INTEGER)`);
    const times: number[] = [];
    let n = 0;
    for (let i = 0; i < a.reps; i++) {
      t = performance.now();
      n = stmt.all().length;
      times.push(performance.now() - t);
    }
    queries[q.name] = { rows: n, p50_ms: Math.round(median(times)), min_ms: Math.round(Math.min(...times)) };
  }
  // the summary's heaviest parts: per scope group-bys over all records
  const sTimes: number[] = [];
  for (let i = 0; i < Math.min(a.reps, 3); i++) {
    t = performance.now();
    const scope = `COALESCE(image_digest, container_id, 'host')`;
    db.prepare(`SELECT ${scope}, path, COUNT(*), MIN(wall_ns), MAX(wall_ns) FROM records WHERE type = 'process_exec' GROUP BY 1, 2`).all();
    db.prepare(`SELECT ${scope}, path, COUNT(*), MIN(wall_ns), MAX(wall_ns) FROM records WHERE type = 'file_open' AND (path LIKE '%.so' OR path LIKE '%.so.%') GROUP BY 1, 2`).all();
    db.prepare(`SELECT ${scope}, path, COUNT(*), MIN(wall_ns), MAX(wall_ns) FROM records WHERE type = 'file_open' AND access IN ('write','read_write') GROUP BY 1, 2`).all();
    db.prepare(`SELECT ${scope}, peer_addr, peer_port, COUNT(*) FROM records WHERE type IN ('net_connect','tcp_state') GROUP BY 1, 2, 3`).all();
    db.prepare(`SELECT ${scope}, pid, comm, SUM(ssl_bytes) FROM records WHERE type = 'ssl_op' GROUP BY 1, 2, 3`).all();
    db.prepare(`SELECT ${scope}, symbol, library, node_hash, COUNT(*) FROM records WHERE type = 'function_call' GROUP BY 1, 2, 3, 4`).all();
    sTimes.push(performance.now() - t);
  }
  db.close();
  c = cpuMs();
  const size = fs.statSync(file).size;
  return {
    store: 'sqlite', records, ingest_ms: loadMs + indexMs, load_ms: loadMs, create_index_ms: indexMs, ingest_cpu_ms: Math.round(ingestCpu),
    records_per_s: Math.round(records / ((loadMs + indexMs) / 1000)), queries, summary_p50_ms: Math.round(median(sTimes)), index_bytes: size,
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
  };
}

async function main(): Promise<void> {
  const a = args();
  fs.mkdirSync(a.dir, { recursive: true });
  if (a.phase !== undefined) {
    const { evidence, pub } = await generate(a);
    const r = a.phase === 'duckdb' ? await duckPhase(a, evidence, pub) : await sqlitePhase(a, evidence, pub);
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const { evidence } = await generate(a);
  const du = execFileSync('du', ['-sb', evidence], { encoding: 'utf8' }).split('\t')[0];
  const results: unknown[] = [];
  for (const store of ['duckdb', 'sqlite']) {
    if (a.only !== undefined && a.only !== store) continue;
    if (store === 'sqlite' && a.sqlite === undefined) {
      console.error('sqlite: skipped (pass --sqlite PATH to better-sqlite3)');
      continue;
    }
    const load = os.loadavg()[0]!.toFixed(1);
    const child = spawnSync(process.execPath, [__filename, ...process.argv.slice(2), '--phase', store], { encoding: 'utf8', maxBuffer: 1 << 24 });
    if (child.status !== 0) throw new Error(`${store}: ${child.stderr}`);
    const r = { ...JSON.parse(child.stdout.trim().split('\n').pop()!), load_average_at_start: load };
    results.push(r);
    console.log(JSON.stringify(r, null, 1));
  }
  console.log(JSON.stringify({ machine: `${os.cpus().length} x ${os.cpus()[0]?.model}, ${Math.round(os.totalmem() / 2 ** 30)} GiB`, node: process.version, records: a.records, evidence_bytes: Number(du), load_average_end: os.loadavg() }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

/**
 * What the fleet index's rows cost the readers: `rtev query --db`, `rtev summary --db` against
 * the same commands on the host's own directory (its local DuckDB index, built before timing),
 * on signed synthetic evidence of --hosts hosts x --records records (1 MiB chunks) put into a
 * throwaway PostgreSQL 15 as ingest puts them (binary COPY rows with each line as bytea, schema
 * v7, the chunk's rows as one batch). Per command: wall time, CPU of the rtev process and CPU of
 * every PostgreSQL process; the median of --repeat runs.
 *
 *   node dist/bench/fleet-rows-query.bench.js [--hosts 4] [--records 100000] [--repeat 3]
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { checkEnvelope } from '../src/fleet/chunk-check';
import { chunkBatch } from '../src/fleet/chunk-rows';
import { copyPieces, initSchema } from '../src/fleet/pg-schema';
import { COPY_RECORDS_BINARY, encodeRowsBinary, releaseRows } from '../src/fleet/rows-binary';
import { loadVerifyKeyFile } from '../src/sign/key-files';
import { startPostgres } from '../test/helpers/fleet-servers';
import { newKey, writeSynthetic } from '../test/helpers/synthetic-evidence';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

const RTEV = path.join(__dirname, '..', '..', 'bin', 'rtev');

/** CPU ms of every process whose command line holds `needle`, with its children (live, and ended ones it waited for) */
function cpuMsOfAll(needle: string): number {
  let ms = 0;
  const stats = new Map<number, string[]>();
  const tops: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number)) {
    try {
      stats.set(pid, fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '));
      if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) tops.push(pid);
    } catch {
      // gone
    }
  }
  for (const top of tops) {
    const f = stats.get(top)!;
    ms += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * 10;
    for (const [, c] of stats) if (Number(c[1]) === top) ms += (Number(c[11]) + Number(c[12])) * 10;
  }
  return ms;
}

/** CPU ms of this process's ended children (the rtev runs) */
function childrenCpuMs(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[13]) + Number(f[14])) * 10;
}

async function main(): Promise<void> {
  const hosts = arg('hosts', 4);
  const records = arg('records', 100_000);
  const repeat = arg('repeat', 3);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bench-rowsq-'));
  const pg = await startPostgres();
  try {
    const db = new Client({ connectionString: pg.url() });
    await db.connect();
    await initSchema(db, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    let id = 1n;
    const dirs: { dir: string; pub: string }[] = [];
    for (let h = 0; h < hosts; h++) {
      const { keyFile } = newKey(path.join(base, `keys${h}`));
      const dir = path.join(base, `host${h}`);
      const machineId = (h + 1).toString(16).padStart(32, '0');
      await writeSynthetic(dir, keyFile, records, { chunkMaxBytes: 1 << 20, hostname: `bench-${h}`, machineId });
      dirs.push({ dir, pub: keyFile + '.pub' });
      const key = loadVerifyKeyFile(keyFile + '.pub');
      const names = fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).sort();
      for (const [i, name] of names.entries()) {
        const env = fs.readFileSync(path.join(dir, name));
        const v = checkEnvelope(env, machineId, [key]);
        if (!v.ok) throw new Error(v.reason);
        const chunkId = id++;
        const rows = encodeRowsBinary(fs.readFileSync(path.join(dir, name.replace('.dsse.json', '.ndjson'))), v.facts, chunkId, false);
        if (rows === undefined) throw new Error('the binary path refused a synthetic chunk');
        await db.query('BEGIN');
        await copyPieces(db, COPY_RECORDS_BINARY, rows.pieces);
        releaseRows(rows);
        await db.query(chunkBatch({ f: v.facts, chunkId, streamSeq: Number(chunkId), envelope: env.toString('utf8'), publishedMs: Date.now(), host: i === 0 ? 'new' : 'head' })!);
        await db.query('COMMIT');
      }
    }
    await db.query('VACUUM ANALYZE');
    const size = (await db.query<{ t: string; i: string }>(`SELECT pg_table_size('records') AS t, pg_indexes_size('records') AS i`)).rows[0]!;
    const wall = (await db.query<{ a: string; b: string }>(`SELECT min(wall_ns) AS a, max(wall_ns) AS b FROM records r JOIN chunks k USING (chunk_id) WHERE k.hostname = 'bench-0'`)).rows[0]!;
    await db.end();
    const [w0, w1] = [BigInt(wall.a), BigInt(wall.b)];
    // a tenth of host 0's time, in its middle
    const since = w0 + ((w1 - w0) * 45n) / 100n;
    const until = w0 + ((w1 - w0) * 55n) / 100n;
    const h0 = dirs[0]!;
    const index = path.join(base, 'host0.duckdb');
    const local = (cmd: string, extra: string[]): string[] => [cmd, h0.dir, '--pubkey', h0.pub, '--index', index, ...extra];
    const fleet = (cmd: string, extra: string[]): string[] => [cmd, '--db', pg.url('rtev_reader'), '--host', 'bench-0', ...extra];
    const window = ['--since', new Date(Number(since / 1_000_000n)).toISOString(), '--until', new Date(Number(until / 1_000_000n)).toISOString()];
    // the local index is built once, untimed
    const built = spawnSync(process.execPath, [RTEV, ...local('query', ['--format', 'ndjson', '--limit', '1'])], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (built.status !== 0) throw new Error(built.stderr);
    console.log(`# fleet rows, readers: ${hosts} hosts x ${records} records (records ${(Number(size.t) / 1048576).toFixed(0)} MiB, its index ${(Number(size.i) / 1048576).toFixed(2)} MiB), PostgreSQL 15, node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const cases: [string, string[]][] = [
      ['query ndjson, directory', local('query', ['--format', 'ndjson'])],
      ['query ndjson, --db --host', fleet('query', ['--format', 'ndjson'])],
      ['query a tenth by time, directory', local('query', ['--format', 'ndjson', ...window])],
      ['query a tenth by time, --db', fleet('query', ['--format', 'ndjson', ...window])],
      ['summary json, directory', local('summary', ['--format', 'json'])],
      ['summary json, --db --host', fleet('summary', ['--format', 'json'])],
    ];
    const out = new Map<string, string>();
    for (const [name, args] of cases) {
      const runs: { ms: number; cpu: number; pg: number }[] = [];
      for (let r = 0; r < repeat; r++) {
        const c0 = childrenCpuMs();
        const p0 = cpuMsOfAll(pg.dir);
        const t0 = performance.now();
        const res = spawnSync(process.execPath, [RTEV, ...args], { encoding: 'utf8', maxBuffer: 1 << 30 });
        const ms = performance.now() - t0;
        if (res.status !== 0) throw new Error(`${name}: ${res.stderr}`);
        runs.push({ ms, cpu: childrenCpuMs() - c0, pg: cpuMsOfAll(pg.dir) - p0 });
        out.set(name, res.stdout);
      }
      const med = (k: 'ms' | 'cpu' | 'pg'): number => [...runs].sort((a, b) => a[k] - b[k])[Math.floor(runs.length / 2)]![k];
      const lines = out.get(name)!.split('\n').filter((l) => l !== '').length;
      console.log(`${name.padEnd(34)}: ${(med('ms') / 1000).toFixed(2)} s wall, CPU rtev ${(med('cpu') / 1000).toFixed(2)} s + PostgreSQL ${(med('pg') / 1000).toFixed(2)} s (${lines} lines out)`);
    }
    for (const [a, b] of [['query ndjson, directory', 'query ndjson, --db --host'], ['query a tenth by time, directory', 'query a tenth by time, --db']]) {
      if (out.get(a) !== out.get(b)) throw new Error(`${b}: not the directory's lines`);
    }
    console.log(`load now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    pg.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

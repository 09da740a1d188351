/**
 * Row building of `rtev ingest`, the two builders side by side in one run: encodeRows in
 * JavaScript + COPY of the built rows (the fallback), and PostgreSQL deriving the columns
 * from the staged lines (src/fleet/stage.ts, the normal path). Signed synthetic chunks
 * (test/helpers/synthetic-evidence.ts), one transaction per chunk as ingest does, against a
 * throwaway PostgreSQL 15 (test/helpers/fleet-servers.ts). Alternates the builders chunk by
 * chunk so that a change in machine load hits both.
 *
 *   node dist/bench/fleet-rows.bench.js [--records 200000] [--chunk-size 4194304]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { checkContent, checkEnvelope } from '../src/fleet/chunk-check';
import { COPY_RECORDS, initSchema } from '../src/fleet/pg-schema';
import { encodeRows } from '../src/fleet/rows';
import { COPY_RECORDS_BINARY, encodeRowsBinary } from '../src/fleet/rows-binary';
import { buildRowsInDb, STAGE_DDL, STAGE_SETTINGS } from '../src/fleet/stage';
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
    const owner = new Client({ connectionString: pg.url() });
    await owner.connect();
    await initSchema(owner, { ingest: 'rtev_ingest', reader: 'rtev_reader' });
    await owner.end();
    const db = new Client({ connectionString: pg.url('rtev_ingest') });
    await db.connect();
    await db.query(STAGE_DDL);
    await db.query(STAGE_SETTINGS);
    console.log(`# fleet row building: ${chunks.length} chunks of <= ${chunkSize} bytes, ${records} records, PostgreSQL 15 (fsync off), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const backend = Number((await db.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    // CPU seconds of the PostgreSQL backend serving this session (utime + stime, clock ticks of 10 ms)
    const backendCpuMs = (): number => {
      const f = fs.readFileSync(`/proc/${backend}/stat`, 'utf8').split(') ')[1]!.split(' ');
      return (Number(f[11]) + Number(f[12])) * 10;
    };
    const total = { js: { ms: 0, n: 0, cpu: 0, pg: 0 }, bin: { ms: 0, n: 0, cpu: 0, pg: 0 }, sql: { ms: 0, n: 0, cpu: 0, pg: 0 } };
    let id = 1n;
    // both builders on every chunk, the order alternating (each chunk is indexed twice, under two ids)
    for (const [i, c] of chunks.entries()) {
      for (const kind of ([['js', 'bin', 'sql'], ['bin', 'sql', 'js'], ['sql', 'js', 'bin']] as const)[i % 3]!) {
        const t0 = performance.now();
        const u0 = process.cpuUsage();
        const b0 = backendCpuMs();
        await db.query('BEGIN');
        if (kind === 'sql') {
          const r = await buildRowsInDb(db, c.body, c.facts, id++, false);
          if (r === undefined || checkContent(r.content, c.predicate) !== undefined) throw new Error('the server path refused a synthetic chunk');
        } else {
          const rows = kind === 'bin' ? encodeRowsBinary(c.body, c.facts, id++, false) : encodeRows(c.body, c.facts, id++);
          if (rows === undefined) throw new Error('the binary builder refused a synthetic chunk');
          if (checkContent(rows.content, c.predicate) !== undefined) throw new Error('content');
          const stream = db.query(copyFrom(kind === 'bin' ? COPY_RECORDS_BINARY : COPY_RECORDS));
          await new Promise<void>((resolve, reject) => {
            stream.on('error', reject);
            stream.on('finish', resolve);
            for (const p of rows.pieces) stream.write(p);
            stream.end();
          });
        }
        await db.query('COMMIT');
        const u = process.cpuUsage(u0);
        total[kind].ms += performance.now() - t0;
        total[kind].cpu += (u.user + u.system) / 1000;
        total[kind].pg += backendCpuMs() - b0;
        total[kind].n += Number(c.facts.count);
      }
    }
    await db.end();
    const label = { js: 'encodeRows + text COPY of rows      ', bin: 'encodeRowsBinary + binary COPY      ', sql: 'COPY of lines + INSERT..SELECT (jsonb)' };
    for (const kind of ['js', 'bin', 'sql'] as const) {
      const t = total[kind];
      console.log(`${label[kind]}: ${t.n} records in ${(t.ms / 1000).toFixed(2)} s = ${(t.n / (t.ms / 1000)).toFixed(0)} records/s; CPU: node ${(t.cpu / 1000).toFixed(2)} s + PostgreSQL backend ${(t.pg / 1000).toFixed(2)} s = ${(t.n / ((t.cpu + t.pg) / 1000)).toFixed(0)} records per CPU-second`);
    }
    console.log(`wall time ratios: text ${(total.js.ms / total.bin.ms).toFixed(2)}x, server ${(total.sql.ms / total.bin.ms).toFixed(2)}x the binary builder; load now ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    pg.stop();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

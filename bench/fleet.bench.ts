/**
 * Fleet load benchmark: N simulated hosts (default 20) replay recorded chunks (signed
 * synthetic evidence written by the real chunk writer and signer,
 * test/helpers/synthetic-evidence.ts) through `rtev ship` into NATS JetStream, and `rtev
 * ingest` indexes them into PostgreSQL, first with one ingest process, then with two.
 *
 *   node dist/bench/fleet.bench.js [--hosts 20] [--records 50000] [--chunk-size 4194304] [--nodes 1|3] [--db-sessions 2]
 *       [--phases 1,2,live] [--rtev BIN[%NODE-ARGS][#INGEST-ARGS][,BIN...]] [--repeat N]
 *
 * --rtev runs each phase with each build in turn (bin/rtev of another checkout, e.g. main's:
 * an A/B within one run, each on fresh servers; BIN%NODE-ARGS#INGEST-ARGS adds node options and
 * ingest options for that build's ingest, e.g. "bin/rtev%--max-semi-space-size=8#--db-sessions 3"), --repeat N does the one-ingest drain N times
 * per build, alternating builds. RTEV_BENCH_PROF=DIR writes a CPU profile of each ingest there,
 * RTEV_BENCH_NODE_ARGS="..." passes more node options to each ingest.
 *
 * Per ingest count: the stream is pre-filled by all hosts shipping at once (ship throughput,
 * ship peak RSS), then ingest drains it (--once): records/s into PostgreSQL = records /
 * drain time; per chunk lag = commit time - JetStream publish time; ingest peak RSS. A
 * third phase runs ship and one ingest at the same time (end-to-end lag while live).
 * Servers are real and throwaway (test/helpers/fleet-servers.ts). Not run in CI; results go
 * to docs/benchmarks.md.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RTEV } from '../test/helpers/collector';
import { startNatsCluster, startPostgres, type NatsCluster, type Postgres } from '../test/helpers/fleet-servers';
import { newKey, writeSynthetic } from '../test/helpers/synthetic-evidence';

interface Args { hosts: number; records: number; chunkSize: number; nodes: number; dbSessions: number; phases: string[]; builds: string[]; repeat: number }

function args(): Args {
  const a: Args = { hosts: 20, records: 50_000, chunkSize: 4 * 1024 * 1024, nodes: 1, dbSessions: 2, phases: ['1', '2', 'live'], builds: [RTEV], repeat: 1 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const n = Number(v[i + 1]);
    if (v[i] === '--phases') a.phases = v[i + 1]!.split(',');
    else if (v[i] === '--rtev') a.builds = v[i + 1]!.split(',').map((b) => { const at = b.search(/[#%]/); return at >= 0 ? `${path.resolve(b.slice(0, at))}${b.slice(at)}` : path.resolve(b); });
    else if (v[i] === '--repeat') a.repeat = n;
    else if (v[i] === '--hosts') a.hosts = n;
    else if (v[i] === '--records') a.records = n;
    else if (v[i] === '--chunk-size') a.chunkSize = n;
    else if (v[i] === '--nodes') a.nodes = n;
    else if (v[i] === '--db-sessions') a.dbSessions = n;
    else throw new Error(`unknown option ${v[i]}`);
  }
  return a;
}

interface Run { code: number; ms: number; peakRssKiB: number; cpuMs: number; stderr: string }

/** run spawns bin/rtev (of `bin`) and samples its VmRSS every 50 ms (peak resident memory). */
function run(bin: string, argv: string[], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [...nodeArgs, bin, ...argv], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peak = 0;
    let cpu = 0;
    const sample = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m !== null) peak = Math.max(peak, Number(m[1]));
        cpu = cpuMsOf(child.pid!);
      } catch {
        // exited
      }
    }, 50);
    child.on('close', (code) => {
      clearInterval(sample);
      resolve({ code: code ?? -1, ms: performance.now() - t0, peakRssKiB: peak, cpuMs: cpu, stderr });
    });
  });
}

/** user + system CPU of a process, ms (clock ticks of 10 ms) */
function cpuMsOf(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * the CPU of the servers, ms: every process whose command line contains `needle` (nats-server,
 * the postmaster), with the CPU of its children that ended (the backends of closed sessions) and
 * of its children still running (PostgreSQL backends do not name the data directory)
 */
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

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

let traceSeq = 0;

/**
 * timeline summarizes an ingest trace (RTEV_INGEST_TRACE lines `ms event streamSeq slot`):
 * per database session the share of the drain it had a chunk in hand, and per step of a chunk
 * the mean time and the sum (the main thread is blocked during `rows`, the row build).
 */
function timeline(text: string): string {
  const lines = text.trim().split('\n').map((l) => l.split(' '));
  const starts = new Map<string, number>();
  const busy = new Map<number, number>();
  const at = new Map<string, Map<string, number>>();
  let t0 = Infinity;
  let t1 = 0;
  let elu = '';
  let fetchAt = -1;
  let fetchWait = 0;
  let fetches = 0;
  for (const [ms, ev, seq, slot] of lines) {
    const t = Number(ms);
    if (ev === 'elu') {
      elu = `event loop busy ${(Number(seq) / 1000).toFixed(2)} s, idle ${(Number(slot) / 1000).toFixed(2)} s`;
      continue;
    }
    if (ev === 'fetch') fetchAt = t;
    if (ev === 'got' && fetchAt >= 0) {
      fetchWait += t - fetchAt;
      fetches++;
      fetchAt = -1;
    }
    if (ev === 'start') {
      starts.set(`${seq}/${slot}`, t);
      t0 = Math.min(t0, t);
    }
    if (ev!.startsWith('end-')) {
      const s = starts.get(`${seq}/${slot}`);
      if (s !== undefined) busy.set(Number(slot), (busy.get(Number(slot)) ?? 0) + t - s);
      t1 = Math.max(t1, t);
    }
    let m = at.get(seq!);
    if (m === undefined) at.set(seq!, (m = new Map()));
    if (!m.has(ev!)) m.set(ev!, t);
  }
  const span = t1 - t0;
  const steps: [string, string, string][] = [['got', 'start', 'fetched to taken by a session'], ['body', 'body-end', 'body read (ahead)'], ['rows-ahead', 'rows-ahead-end', 'rows built ahead'],
    ['start', 'begin', 'envelope check (+ wait for the preparation)'], ['wait-prep', 'begin', 'wait for the preparation'], ['begin', 'wait-body', 'chain checks (db)'],
    ['wait-body', 'digest-ok', 'body wait + sha256'], ['digest-ok', 'rows', 'nextval (db)'], ['rows', 'copy', 'rows (built now, or taken)'], ['copy', 'copy-end', 'COPY records'],
    ['copy-end', 'commit', 'attribution + chunk row + heads (db)'], ['commit', 'ack', 'COMMIT'], ['ack', 'end-indexed', 'ack (or its start)'], ['start', 'end-indexed', 'whole chunk in its session']];
  const out = [`timeline: drain ${(span / 1000).toFixed(2)} s; sessions busy ${[...busy].sort((a, b) => a[0] - b[0]).map(([s, b]) => `#${s} ${((100 * b) / span).toFixed(0)}%`).join(', ')}; ${elu}; fetch waits ${fetches} x ${(fetchWait / Math.max(1, fetches)).toFixed(1)} ms = ${(fetchWait / 1000).toFixed(2)} s`];
  for (const [a, b, name] of steps) {
    const ds = [...at.values()].filter((m) => m.has(a) && m.has(b)).map((m) => m.get(b)! - m.get(a)!);
    if (ds.length > 0) out.push(`  ${name}: ${ds.length} x mean ${(ds.reduce((x, y) => x + y, 0) / ds.length).toFixed(1)} ms (p50 ${pct(ds, 50).toFixed(1)}, max ${pct(ds, 100).toFixed(1)}) = ${(ds.reduce((x, y) => x + y, 0) / 1000).toFixed(2)} s`);
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const a = args();
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-bench-fleet-'));
  const trust = path.join(base, 'trust');
  fs.mkdirSync(trust);
  console.log(`# fleet bench: ${a.hosts} hosts x ${a.records} records, chunks of ${a.chunkSize} bytes, ${a.nodes} NATS node(s), ingest --db-sessions ${a.dbSessions}, ${os.cpus().length} CPUs, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  const t0 = performance.now();
  const hosts: { dir: string }[] = [];
  for (let i = 0; i < a.hosts; i++) {
    const root = path.join(base, `host${i}`);
    const { keyFile } = newKey(path.join(root, 'keys'));
    fs.copyFileSync(keyFile + '.pub', path.join(trust, `host${i}.pub`));
    const dir = path.join(root, 'evidence');
    await writeSynthetic(dir, keyFile, a.records, { chunkMaxBytes: a.chunkSize, hostname: `bench-${i}`, machineId: (i + 1).toString(16).padStart(32, '0') });
    hosts.push({ dir });
  }
  const bytes = hosts.reduce((n, h) => n + fs.readdirSync(h.dir).filter((f) => f.endsWith('.ndjson')).reduce((m, f) => m + fs.statSync(path.join(h.dir, f)).size, 0), 0);
  const chunks = hosts.reduce((n, h) => n + fs.readdirSync(h.dir).filter((f) => f.endsWith('.dsse.json')).length, 0);
  console.log(`evidence: ${chunks} chunks, ${(bytes / 1048576).toFixed(1)} MiB, ${a.hosts * a.records} records (written in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);

  const runs: { bin: string; ingests: number }[] = [];
  for (const phase of a.phases) {
    const ingests = phase === 'live' ? 0 : Number(phase);
    for (let rep = 0; rep < (ingests === 1 ? a.repeat : 1); rep++) for (const bin of a.builds) runs.push({ bin, ingests });
  }
  const prof = process.env['RTEV_BENCH_PROF'];
  // RTEV_BENCH_NODE_ARGS: more node options for each ingest (e.g. --trace-gc, --require FILE)
  const nodeArgs = (process.env['RTEV_BENCH_NODE_ARGS'] ?? '').split(' ').filter((x) => x !== '');
  const profArgs = [...(prof !== undefined && prof !== '' ? ['--cpu-prof', '--cpu-prof-dir', prof] : []), ...nodeArgs];
  for (const { bin: spec, ingests } of runs) {
    // BIN#ARGS: extra ingest options for this build (e.g. bin/rtev#--db-sessions 3)
    // BIN%NODE-ARGS: node options for this build's ingest (e.g. bin/rtev%--max-semi-space-size=8)
    const hash = spec.includes('#') ? spec.indexOf('#') : spec.length;
    const nodeAt = spec.slice(0, hash).includes('%') ? spec.indexOf('%') : hash;
    const bin = spec.slice(0, nodeAt);
    const extra = spec.slice(hash + 1).split(' ').filter((x) => x !== '');
    const buildNodeArgs = spec.slice(nodeAt + 1, hash).split(' ').filter((x) => x !== '');
    const build = a.builds.length > 1 ? ` [build ${path.relative(process.cwd(), bin) || bin}${buildNodeArgs.length > 0 ? ` (node ${buildNodeArgs.join(' ')})` : ''}${extra.length > 0 ? ` ${extra.join(' ')}` : ''}]` : '';
    const nats: NatsCluster = await startNatsCluster(a.nodes);
    const pg: Postgres = await startPostgres();
    try {
      for (const h of hosts) fs.rmSync(path.join(h.dir, '.rtev-ship.json'), { force: true });
      const init = await run(bin, ['fleet', 'init', '--db', pg.url(), '--nats', nats.urls]);
      if (init.code !== 0) throw new Error(init.stderr);
      const ingestArgs = ['ingest', '--nats', nats.urls, '--db', pg.url('rtev_ingest'), '--trust', trust, '--once', '--quiet', '--db-sessions', String(a.dbSessions), ...extra];
      const ship = () => Promise.all(hosts.map((h) => run(bin, ['ship', h.dir, '--nats', nats.urls, '--quiet'])));
      if (ingests > 0) {
        const tShip = performance.now();
        const ships = await ship();
        const shipMs = performance.now() - tShip;
        if (ships.some((s) => s.code !== 0)) throw new Error(ships.find((s) => s.code !== 0)!.stderr);
        const servers0 = { nats: cpuMsOfAll(nats.root), pg: cpuMsOfAll(pg.dir) };
        const traceDir = process.env['RTEV_BENCH_TRACE'];
        const traces = Array.from({ length: ingests }, (_, i) => (traceDir !== undefined && traceDir !== '' ? path.join(traceDir, `ingest-${traceSeq}-${i}.txt`) : undefined));
        traceSeq++;
        const drained = await Promise.all(traces.map((tf) => run(bin, ingestArgs, [...profArgs, ...buildNodeArgs], tf !== undefined ? { ...process.env, RTEV_INGEST_TRACE: tf } : process.env)));
        const servers = { nats: cpuMsOfAll(nats.root) - servers0.nats, pg: cpuMsOfAll(pg.dir) - servers0.pg };
        if (drained.some((d) => d.code !== 0)) throw new Error(drained.find((d) => d.code !== 0)!.stderr);
        const records = Number(pg.psql('SELECT count(*) FROM records'));
        const window = pg.psql(`SELECT extract(epoch FROM max(ingested_at) - min(ingested_at)) * 1000, extract(epoch FROM min(ingested_at)) * 1000 FROM chunks`).split('|').map(Number);
        const drainMs = Math.max(...drained.map((d) => d.ms));
        const lags = pg.psql(`SELECT extract(epoch FROM ingested_at - published_at) * 1000 FROM chunks`).split('\n').map(Number);
        console.log(`\n## ${ingests} ingest process(es), stream pre-filled${build} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
        console.log(`ship: ${a.hosts} processes at once, ${(shipMs / 1000).toFixed(1)} s for ${(bytes / 1048576).toFixed(1)} MiB = ${(bytes / 1048576 / (shipMs / 1000)).toFixed(1)} MiB/s, ${((a.hosts * a.records) / (shipMs / 1000)).toFixed(0)} records/s; peak RSS per ship ${pct(ships.map((s) => s.peakRssKiB), 50) / 1024 | 0}-${Math.max(...ships.map((s) => s.peakRssKiB)) / 1024 | 0} MiB`);
        console.log(`ingest: ${records} records in ${(drainMs / 1000).toFixed(1)} s (process start to exit) = ${(records / (drainMs / 1000)).toFixed(0)} records/s; first-to-last commit ${(window[0]! / 1000).toFixed(1)} s = ${(records / (window[0]! / 1000)).toFixed(0)} records/s; peak RSS ${drained.map((d) => (d.peakRssKiB / 1024) | 0).join(', ')} MiB`);
        console.log(`lag publish->commit (backlog): p50 ${(pct(lags, 50) / 1000).toFixed(1)} s, max ${(pct(lags, 100) / 1000).toFixed(1)} s`);
        const ingestCpu = drained.reduce((n, d) => n + d.cpuMs, 0);
        const us = (ms: number): string => ((ms * 1000) / records).toFixed(1);
        for (const tf of traces) if (tf !== undefined && fs.existsSync(tf)) console.log(timeline(fs.readFileSync(tf, 'utf8')));
        console.log(`CPU per record during the drain: ingest ${us(ingestCpu)} us, PostgreSQL (all its processes) ${us(servers.pg)} us, nats-server ${us(servers.nats)} us = ${us(ingestCpu + servers.pg + servers.nats)} us; `
          + `at that cost 2 idle cores would give ${((2e6 * records) / ((ingestCpu + servers.pg + servers.nats) * 1000)).toFixed(0)} records/s`);
      } else {
        // live: ingest follows while all hosts ship
        const live = spawn(process.execPath, [bin, 'ingest', '--nats', nats.urls, '--db', pg.url('rtev_ingest'), '--trust', trust, '--quiet', '--db-sessions', String(a.dbSessions), ...extra], { stdio: 'ignore' });
        await new Promise((r) => setTimeout(r, 1500));
        const tShip = performance.now();
        const ships = await ship();
        if (ships.some((s) => s.code !== 0)) throw new Error(ships.find((s) => s.code !== 0)!.stderr);
        const want = a.hosts * a.records;
        while (Number(pg.psql('SELECT count(*) FROM chunks')) < chunks) await new Promise((r) => setTimeout(r, 200));
        const totalMs = performance.now() - tShip;
        const ended = new Promise((r) => live.once('close', r));
        live.kill('SIGTERM');
        await ended;
        const lags = pg.psql(`SELECT extract(epoch FROM ingested_at - published_at) * 1000 FROM chunks`).split('\n').map(Number);
        console.log(`\n## live: ${a.hosts} ships and 1 ingest at once${build} (load ${os.loadavg().map((l) => l.toFixed(2)).join(' ')})`);
        console.log(`end to end: ${want} records shipped and committed in ${(totalMs / 1000).toFixed(1)} s = ${(want / (totalMs / 1000)).toFixed(0)} records/s`);
        console.log(`lag publish->commit: p50 ${pct(lags, 50).toFixed(0)} ms, p95 ${pct(lags, 95).toFixed(0)} ms, max ${pct(lags, 100).toFixed(0)} ms`);
      }
    } finally {
      await nats.stopAll();
      pg.stop();
    }
  }
  fs.rmSync(base, { recursive: true, force: true });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

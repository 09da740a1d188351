/**
 * TLS request loop on loopback, in one run, for each uprobe attach mode rtev has
 * (src/ingest/probes.ts, UprobeMode). Two workloads:
 *   curl       curl -> openssl s_server -WWW, REQUESTS requests, each on a new connection (a TLS
 *              handshake per request: the probes run with cold caches, and connect/accept dominate)
 *   keepalive  python ssl, one connection, REQUESTS round trips of 100 bytes (bench/tls_keepalive.py:
 *              SSL_write_ex/SSL_read_ex on both sides, the steady state of a long-lived connection)
 *   connect    python, REQUESTS blocking loopback connects, each accepted (bench/connect_loop.py:
 *              the net_connect probes alone)
 * In each mode:
 *   baseline without probes; an empty program attached the way rtev attaches its own, to the
 *   same functions; rtev collect (--probes net_connect,ssl_op) in that mode.
 * Prints the per-request slowdown (end to end) and, with kernel.bpf_stats_enabled=1 for the run
 * (restored at the end), the BPF programs' own run time (run_time_ns) per probed call next to the
 * empty program's. Programs are found by the process that holds them (/proc/PID/fdinfo prog_id),
 * so other rtev instances on the host do not count. Also times the teardown: the empty links'
 * detachMany and rtev's SIGTERM-to-exit. Run as root after `make build`:
 *   node dist/bench/tls.bench.js [REQUESTS] [ROUNDS] [curl|keepalive|connect]   (RTEV_BENCH_MODES=session: one mode only)
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding, type NativeBinding, type ObjectHandle } from '../src/ingest/native';
import { programStats, type ProgStat } from './bpf-stats';
import type { UprobeMode } from '../src/ingest/probes';
import { LIBC_TARGETS, SSL_TARGETS, resolveTargets } from '../src/ingest/uprobes/libraries';

const REPO = path.resolve(__dirname, '..', '..');
const REQUESTS = Number(process.argv[2] ?? 300);
const ROUNDS = Number(process.argv[3] ?? 1);
const WORKLOAD = process.argv[4] ?? 'curl';
if (!['curl', 'keepalive', 'connect'].includes(WORKLOAD)) throw new Error('workload: curl, keepalive or connect');
let certDir = '';
const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';

/** rtev's uprobe programs per mode (bpf/net_connect.h, bpf/ssl_op.h), and the empty ones */
const PROGRAMS: Record<UprobeMode, { rtev: string[]; rtevEntry: string[]; empty: string[]; emptyEntry: string[] }> = {
  session: { rtev: ['rtev_libc_session', 'rtev_ssl_session'], rtevEntry: [], empty: ['rtev_empty_session'], emptyEntry: [] },
  classic: {
    rtev: ['rtev_libc_connect', 'rtev_libc_accept', 'rtev_libc_accept4', 'rtev_ssl_read', 'rtev_ssl_write', 'rtev_ssl_read_ex',
      'rtev_ssl_write_ex', 'rtev_libc_net_ret', 'rtev_ssl_ret'],
    rtevEntry: ['rtev_libc_connect', 'rtev_libc_accept', 'rtev_libc_accept4', 'rtev_ssl_read', 'rtev_ssl_write', 'rtev_ssl_read_ex',
      'rtev_ssl_write_ex'],
    empty: ['rtev_empty_uprobe', 'rtev_empty_uretprobe'],
    emptyEntry: ['rtev_empty_uprobe'],
  },
};
/** net_connect's syscall and TCP tracepoint programs: they run on every connect/accept whatever the mode */
const TRACEPOINT_PROGRAMS = ['handle_connect_enter', 'handle_connect_exit', 'handle_accept_enter', 'handle_accept_exit',
  'handle_accept4_enter', 'handle_accept4_exit', 'handle_connect_done'];

/** RTEV_BENCH_CPU=N runs curl and s_server on CPU N (taskset): no cross-CPU traffic between them */
const PIN = process.env.RTEV_BENCH_CPU;
const pinned = (argv: string[]): [string, string[]] => (PIN === undefined ? [argv[0]!, argv.slice(1)] : ['taskset', ['-c', PIN, ...argv]]);

function loop(port: number): number {
  if (WORKLOAD === 'keepalive') {
    const r = spawnSync(...pinned(['python3', path.join(REPO, 'bench', 'tls_keepalive.py'), `${certDir}/c.pem`, `${certDir}/k.pem`,
      String(REQUESTS), '100']), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tls_keepalive.py failed (${r.status}): ${r.stderr}`);
    return Number(r.stdout.trim()); // µs per round trip
  }
  if (WORKLOAD === 'connect') {
    const r = spawnSync(...pinned(['python3', path.join(REPO, 'bench', 'connect_loop.py'), String(REQUESTS)]), { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`connect_loop.py failed (${r.status}): ${r.stderr}`);
    return Number(r.stdout.trim()); // µs per connection
  }
  const t0 = process.hrtime.bigint();
  const r = spawnSync(...pinned(['curl', '-sk', '--http1.1', '-o', '/dev/null', `https://127.0.0.1:${port}/f.txt?[1-${REQUESTS}]`]));
  if (r.status !== 0) throw new Error(`curl failed (${r.status}): ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e3 / REQUESTS; // µs per request
}

/** holdsLibsslUprobe: process `pid` has uprobes on a libssl (an uprobe_multi link or a perf-event uprobe) */
function holdsLibsslUprobe(pid: number): boolean {
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
      const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
      if (/^link_type:\s*uprobe_multi$/m.test(info) && /^path:.*libssl/m.test(info)) return true;
    }
    return (JSON.parse(execFileSync('bpftool', ['perf', 'show', '-j'], { encoding: 'utf8' })) as { pid: number; filename?: string }[])
      .some((l) => l.pid === pid && /libssl/.test(l.filename ?? ''));
  } catch {
    return false;
  }
}

/** delta of run time and count between two snapshots, summed over the named programs */
function delta(before: Map<string, ProgStat>, after: Map<string, ProgStat>, names: string[]): { ns: number; cnt: number } {
  let ns = 0;
  let cnt = 0;
  for (const name of names) {
    const a = after.get(name);
    if (a === undefined) continue;
    const b = before.get(name);
    ns += a.runTimeNs - (b?.runTimeNs ?? 0);
    cnt += a.runCnt - (b?.runCnt ?? 0);
  }
  return { ns, cnt };
}

/** probedCalls: calls of the probed functions seen by a program set (session programs run twice per call) */
function probedCalls(mode: UprobeMode, all: { cnt: number }, entry: { cnt: number }): number {
  return mode === 'session' ? all.cnt / 2 : entry.cnt;
}

function attachEmpty(native: NativeBinding, h: ObjectHandle, mode: UprobeMode): number[] {
  const links: number[] = [];
  for (const [file, targets] of [[LIBSSL, SSL_TARGETS], [LIBC, LIBC_TARGETS]] as const) {
    const offsets = resolveTargets(file, targets);
    const found = targets.filter((t) => offsets.has(t.symbol));
    if (mode === 'session') {
      links.push(native.attachUprobeMulti(h, 'rtev_empty_session', 'uprobe_session', file, found.map((t) => offsets.get(t.symbol)!),
        found.map((t) => t.cookie), -1));
    } else {
      for (const t of found) {
        links.push(native.attachUprobe(h, 'rtev_empty_uprobe', false, -1, file, offsets.get(t.symbol)!, 0n));
        links.push(native.attachUprobe(h, 'rtev_empty_uretprobe', true, -1, file, offsets.get(t.symbol)!, 0n));
      }
    }
  }
  return links;
}

const ms = (t0: bigint): number => +(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1);
const r2 = (x: number): number => +x.toFixed(2);
const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));

/** the empty program in `mode`, loaded and attached from this process: BPF time and end-to-end time */
async function emptyPhase(mode: UprobeMode, port: number) {
  const native = loadBinding();
  const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
  for (const p of native.programs(h)) native.setAutoload(h, p.name, PROGRAMS[mode].empty.includes(p.name));
  if (mode === 'session') native.setExpectedAttachType(h, 'rtev_empty_session', 'uprobe_session');
  native.load(h, false);
  const links = attachEmpty(native, h, mode);
  const before = programStats(process.pid);
  const usPerRequest = loop(port);
  const after = programStats(process.pid);
  const all = delta(before, after, PROGRAMS[mode].empty);
  const calls = probedCalls(mode, all, delta(before, after, PROGRAMS[mode].emptyEntry));
  const t0 = process.hrtime.bigint();
  native.detachMany(h, links);
  return { usPerRequest, bpfNsPerCall: all.ns / Math.max(1, calls), calls, links: links.length, detachMs: ms(t0) };
}

/** rtev collect in `mode`: BPF time of its uprobe programs and of its net_connect tracepoint programs */
async function rtevPhase(mode: UprobeMode, port: number, dir: string) {
  const out = path.join(dir, `rtev-${mode}.ndjson`);
  const fd = fs.openSync(out, 'w');
  const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--verbose', '--probes', 'net_connect,ssl_op'],
    { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, RTEV_UPROBE_MODE: mode } });
  let stderr = '';
  rtev.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise((r) => rtev.on('exit', r));
  // ready once it holds its libssl uprobes; then let the start-up /proc scan finish
  for (let i = 0; i < 200 && !holdsLibsslUprobe(rtev.pid!); i++) await sleep(100);
  await sleep(500);
  const before = programStats(rtev.pid!);
  const usPerRequest = loop(port);
  const after = programStats(rtev.pid!);
  const all = delta(before, after, PROGRAMS[mode].rtev);
  const calls = probedCalls(mode, all, delta(before, after, PROGRAMS[mode].rtevEntry));
  const tracepoints = delta(before, after, TRACEPOINT_PROGRAMS);
  const t0 = process.hrtime.bigint();
  rtev.kill('SIGTERM');
  await exited;
  const stopMs = ms(t0);
  fs.closeSync(fd);
  const uprobeLine = /rtev: uprobes: (\{.*\})/.exec(stderr);
  const stats = uprobeLine ? JSON.parse(uprobeLine[1]!) as { mode: string; links: number } : undefined;
  if (stats?.mode !== mode) throw new Error(`rtev ran in mode ${stats?.mode}, not ${mode}: ${stderr}`);
  const records = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.startsWith('{')).length;
  const perProgram = Object.fromEntries([...PROGRAMS[mode].rtev, ...TRACEPOINT_PROGRAMS].map((n) => {
    const d = delta(before, after, [n]);
    return [n, { runs: d.cnt, ns_per_run: r2(d.ns / Math.max(1, d.cnt)) }];
  }).filter(([, v]) => (v as { runs: number }).runs > 0));
  return {
    usPerRequest, bpfNsPerCall: all.ns / Math.max(1, calls), calls, records, links: stats.links, stopMs, perProgram,
    tracepointNsPerRequest: tracepoints.ns / REQUESTS,
  };
}

let stopping = false;

async function main(): Promise<void> {
  const native = loadBinding();
  // RTEV_BENCH_MODES=session (or classic) measures one mode only
  const modes = (native.uprobeSessionSupported() ? ['session', 'classic'] as UprobeMode[] : ['classic'] as UprobeMode[])
    .filter((m) => (process.env.RTEV_BENCH_MODES ?? m).split(',').includes(m));
  const statsBefore = fs.readFileSync(STATS_SYSCTL, 'utf8').trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-tlsbench-'));
  certDir = dir;
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/k.pem`, '-out', `${dir}/c.pem`,
    '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  fs.writeFileSync(`${dir}/f.txt`, Buffer.alloc(1024, 'x'));
  const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range (32768-60999)
  const serverLog = fs.openSync(`${dir}/s_server.log`, 'w');
  const server = spawn(...pinned(['openssl', 's_server', '-accept', String(port), '-cert', 'c.pem', '-key', 'k.pem', '-WWW', '-quiet']),
    { cwd: dir, stdio: ['pipe', serverLog, serverLog] });
  server.on('exit', (code, signal) => {
    if (!stopping) console.error(`s_server exited (${code ?? signal}): ${fs.readFileSync(`${dir}/s_server.log`, 'utf8').slice(-500)}`);
  });
  for (let i = 0; i < 100; i++) {
    if (spawnSync('curl', ['-sk', '-o', '/dev/null', `https://127.0.0.1:${port}/f.txt`]).status === 0) break;
    await sleep(100);
  }
  const rounds: unknown[] = [];
  try {
    fs.writeFileSync(STATS_SYSCTL, '1');
    loop(port); // warm-up
    for (let round = 1; round <= ROUNDS; round++) {
      const result: Record<string, unknown> = { round, baseline_us_per_request: r2(loop(port)) };
      for (const mode of modes) {
        const empty = await emptyPhase(mode, port);
        const rtev = await rtevPhase(mode, port, dir);
        const base = result.baseline_us_per_request as number;
        result[mode] = {
          us_per_request: { empty: r2(empty.usPerRequest), rtev: r2(rtev.usPerRequest) },
          slowdown_per_request_us: { empty: r2(empty.usPerRequest - base), rtev: r2(rtev.usPerRequest - base) },
          probed_calls_per_request: { empty: r2(empty.calls / REQUESTS), rtev: r2(rtev.calls / REQUESTS) },
          records_per_request: r2(rtev.records / REQUESTS),
          bpf_ns_per_call: { empty: r2(empty.bpfNsPerCall), rtev: r2(rtev.bpfNsPerCall),
            rtev_above_empty: r2(rtev.bpfNsPerCall - empty.bpfNsPerCall) },
          target_1us_met: rtev.bpfNsPerCall - empty.bpfNsPerCall <= 1000,
          per_program: rtev.perProgram,
          tracepoint_programs_ns_per_request: r2(rtev.tracepointNsPerRequest),
          teardown_ms: { empty_links: empty.links, empty_detach_many: empty.detachMs, rtev_links: rtev.links,
            rtev_sigterm_to_exit: rtev.stopMs },
        };
      }
      rounds.push(result);
    }
    console.log(JSON.stringify({ workload: WORKLOAD, requests: REQUESTS, pinned_cpu: PIN ?? null, cpus: os.cpus().length, kernel: os.release(), loadavg: os.loadavg().map(r2), rounds },
      null, 2));
  } finally {
    stopping = true;
    fs.writeFileSync(STATS_SYSCTL, statsBefore);
    server.kill();
  }
}

void main().catch((err) => { console.error(err); process.exit(1); });

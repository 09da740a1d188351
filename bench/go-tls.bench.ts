/**
 * Cost per Go crypto/tls call of the ssl_op Go probes (bpf/ssl_op.h, rtev_go_tls*), in one run:
 *   baseline  the Go program alone (test/progs/tls/gotls `bench`: N round trips on one loopback TLS
 *             connection in one process: client Write + Read, server Read + Write = 4 calls each)
 *   empty     an empty BPF program attached the same way, from this process: at the entry and at
 *             every RET of (*Conn).Read and (*Conn).Write, with the same uprobe_multi links (session
 *             mode) or perf-event uprobes (classic), same offsets and cookies
 *   rtev      rtev collect --probes ssl_op,process_exec in that mode, which finds the executable after
 *             its exec and attaches its own programs
 * Prints µs per round trip (end to end) and, with kernel.bpf_stats_enabled=1 for the run (restored at
 * the end), the programs' own run time per probed call (each call runs the program twice: entry and RET).
 * Run as root after `make build`:  node dist/bench/go-tls.bench.js [ROUND_TRIPS] [ROUNDS]
 * (RTEV_BENCH_MODES=session or classic: one mode only)
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding, type NativeBinding, type ObjectHandle } from '../src/ingest/native';
import type { UprobeMode } from '../src/ingest/probes';
import { resolveGoTls } from '../src/ingest/uprobes/go';
import { buildGoTls } from '../test/progs/tls/build';
import { programStats, type ProgStat } from './bpf-stats';

const REPO = path.resolve(__dirname, '..', '..');
const N = Number(process.argv[2] ?? 20000);
const ROUNDS = Number(process.argv[3] ?? 3);
const SIZE = 100;
const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
const RTEV_PROGRAM: Record<UprobeMode, string> = { session: 'rtev_go_tls_multi', classic: 'rtev_go_tls' };

const sleep = (t: number): Promise<void> => new Promise((r) => setTimeout(r, t));
const r2 = (x: number): number => +x.toFixed(2);

function delta(before: Map<string, ProgStat>, after: Map<string, ProgStat>, name: string): { ns: number; cnt: number } {
  const a = after.get(name);
  const b = before.get(name);
  return { ns: (a?.runTimeNs ?? 0) - (b?.runTimeNs ?? 0), cnt: (a?.runCnt ?? 0) - (b?.runCnt ?? 0) };
}

/** one run of the Go program: ns per round trip as it measured itself */
async function goRun(bin: string, certDir: string, delayMs: number): Promise<number> {
  const child = spawn(bin, ['bench', `${certDir}/c.pem`, `${certDir}/k.pem`, String(N), String(SIZE), String(delayMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`gotls bench failed (${code}): ${err}`);
  return Number(out.trim());
}

function attachEmpty(native: NativeBinding, h: ObjectHandle, mode: UprobeMode, bin: string): number[] {
  const res = resolveGoTls(bin);
  if (res.kind !== 'probe') throw new Error(`${bin}: ${res.kind}`);
  const { offsets, cookies } = res.probe;
  const links: number[] = [];
  if (mode === 'session') {
    for (let i = 0; i < offsets.length; i += 64) {
      links.push(native.attachUprobeMulti(h, 'rtev_empty_uprobe', 'uprobe_multi', bin, offsets.slice(i, i + 64), cookies.slice(i, i + 64), -1));
    }
  } else {
    offsets.forEach((o, i) => links.push(native.attachUprobe(h, 'rtev_empty_uprobe', false, -1, bin, o, cookies[i]!)));
  }
  return links;
}

async function emptyPhase(mode: UprobeMode, bin: string, certDir: string) {
  const native = loadBinding();
  const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
  for (const p of native.programs(h)) native.setAutoload(h, p.name, p.name === 'rtev_empty_uprobe');
  if (mode === 'session') native.setExpectedAttachType(h, 'rtev_empty_uprobe', 'uprobe_multi');
  native.load(h, false);
  const links = attachEmpty(native, h, mode, bin);
  const before = programStats(process.pid);
  const ns = await goRun(bin, certDir, 0);
  const after = programStats(process.pid);
  native.detachMany(h, links);
  return { ns, bpf: delta(before, after, 'rtev_empty_uprobe') };
}

async function rtevPhase(mode: UprobeMode, bin: string, certDir: string, dir: string) {
  const out = path.join(dir, `rtev-${mode}.ndjson`);
  const fd = fs.openSync(out, 'w');
  const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--verbose', '--probes', 'ssl_op,process_exec'],
    { stdio: ['ignore', fd, 'pipe'], env: { ...process.env, RTEV_UPROBE_MODE: mode } });
  let stderr = '';
  rtev.stderr?.on('data', (b: Buffer) => { stderr += b.toString(); });
  const exited = new Promise((r) => rtev.on('exit', r));
  for (let i = 0; i < 100 && fs.statSync(out).size === 0 && !/uprobes|error/.test(stderr); i++) await sleep(100);
  await sleep(1500); // the start-up /proc scan
  const before = programStats(rtev.pid!);
  const ns = await goRun(bin, certDir, 1500); // probed 5-100 ms after its exec; the loop starts 1.5 s later
  const after = programStats(rtev.pid!);
  rtev.kill('SIGTERM');
  await exited;
  fs.closeSync(fd);
  const records = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.includes('"ssl_op"') && l.includes('crypto/tls')).length;
  if (!new RegExp(`"mode":"${mode}"`).test(stderr)) throw new Error(`rtev did not run in mode ${mode}: ${stderr}`);
  return { ns, bpf: delta(before, after, RTEV_PROGRAM[mode]), records };
}

async function main(): Promise<void> {
  const native = loadBinding();
  const modes = (native.uprobeSessionSupported() ? ['session', 'classic'] as UprobeMode[] : ['classic'] as UprobeMode[])
    .filter((m) => (process.env.RTEV_BENCH_MODES ?? m).split(',').includes(m));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-gotlsbench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/k.pem`, '-out', `${dir}/c.pem`,
    '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const built = buildGoTls();
  const bin = built.stripped;
  const statsBefore = fs.readFileSync(STATS_SYSCTL, 'utf8').trim();
  const rounds: unknown[] = [];
  try {
    fs.writeFileSync(STATS_SYSCTL, '1');
    await goRun(bin, dir, 0); // warm-up
    for (let round = 1; round <= ROUNDS; round++) {
      for (const mode of modes) {
        const base = await goRun(bin, dir, 0);
        const empty = await emptyPhase(mode, bin, dir);
        const rtev = await rtevPhase(mode, bin, dir, dir);
        // 4 calls per round trip (more when a Read returns part of a record); the program runs at entry and RET
        const callsEmpty = empty.bpf.cnt / 2;
        const callsRtev = rtev.bpf.cnt / 2;
        const row = {
          round, mode, round_trips: N, go: built.goVersion, loadavg: os.loadavg().map((x) => +x.toFixed(2)),
          us_per_round_trip: { baseline: r2(base / 1e3), empty: r2(empty.ns / 1e3), rtev: r2(rtev.ns / 1e3) },
          us_per_call_above_baseline: { empty: r2((empty.ns - base) / 1e3 / 4), rtev: r2((rtev.ns - base) / 1e3 / 4) },
          us_per_call_rtev_above_empty: r2((rtev.ns - empty.ns) / 1e3 / 4),
          probed_calls: { empty: callsEmpty, rtev: callsRtev },
          bpf_ns_per_call: { empty: r2(empty.bpf.ns / Math.max(1, callsEmpty)), rtev: r2(rtev.bpf.ns / Math.max(1, callsRtev)) },
          records: rtev.records,
        };
        rounds.push(row);
        console.log(JSON.stringify(row));
      }
    }
  } finally {
    fs.writeFileSync(STATS_SYSCTL, statsBefore);
    fs.rmSync(path.dirname(built.normal), { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

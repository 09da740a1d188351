/**
 * TLS request loop on loopback (curl -> openssl s_server -WWW, REQUESTS new connections) in one run:
 *  1. baseline, 2. empty uprobe+uretprobe on the same functions rtev probes, 3. rtev collect
 *  (--probes net_connect,ssl_op). Prints the per-request slowdown (end to end) and, with
 *  kernel.bpf_stats_enabled=1 for the run (restored at the end), the BPF programs' own run time per
 *  call (run_time_ns / run_cnt) of rtev's uprobe/uretprobe programs next to the empty ones'.
 *  Programs are found by the process that holds them (/proc/PID/fdinfo prog_id), so other rtev
 *  instances on the host do not count. Also times the teardown of the empty links: detach() one
 *  after another vs detachMany(), and rtev's SIGTERM-to-exit. Run as root after `make build`:
 *    node dist/bench/tls.bench.js [REQUESTS]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding, type NativeBinding, type ObjectHandle } from '../src/ingest/native';
import { LIBC_TARGETS, SSL_TARGETS, resolveTargets } from '../src/ingest/uprobes/libraries';

const REPO = path.resolve(__dirname, '..', '..');
const REQUESTS = Number(process.argv[2] ?? 300);
const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
/** rtev's uprobe programs (bpf/net_connect.h, bpf/ssl_op.h): entry programs, then return programs */
const RTEV_ENTRY = ['rtev_libc_connect', 'rtev_libc_accept', 'rtev_libc_accept4', 'rtev_ssl_read', 'rtev_ssl_write',
  'rtev_ssl_read_ex', 'rtev_ssl_write_ex'];
const RTEV_RET = ['rtev_libc_net_ret', 'rtev_ssl_ret'];
const EMPTY_ENTRY = ['rtev_empty_uprobe'];
const EMPTY_RET = ['rtev_empty_uretprobe'];

function loop(port: number): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('curl', ['-sk', '--http1.1', '-o', '/dev/null', `https://127.0.0.1:${port}/f.txt?[1-${REQUESTS}]`]);
  if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e3 / REQUESTS; // µs per request
}

interface ProgStat { id: number; name: string; runTimeNs: number; runCnt: number }

/** progStats: the BPF programs whose fds process `pid` holds, with their kernel run statistics. */
function progStats(pid: number): Map<string, ProgStat> {
  const ids = new Set<number>();
  for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== 'anon_inode:bpf-prog') continue;
      const m = /prog_id:\s*(\d+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) ids.add(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  const out = new Map<string, ProgStat>();
  const all = JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as
    { id: number; name: string; run_time_ns?: number; run_cnt?: number }[];
  for (const p of all) {
    if (!ids.has(p.id)) continue;
    const s = out.get(p.name) ?? { id: p.id, name: p.name, runTimeNs: 0, runCnt: 0 };
    s.runTimeNs += p.run_time_ns ?? 0;
    s.runCnt += p.run_cnt ?? 0;
    out.set(p.name, s);
  }
  return out;
}

/** delta of run time and count, summed over the named programs (bpftool prints full names from BTF) */
function delta(before: Map<string, ProgStat>, after: Map<string, ProgStat>, names: string[]): { ns: number; cnt: number } {
  let ns = 0;
  let cnt = 0;
  for (const [name, a] of after) {
    if (!names.includes(name)) continue;
    const b = before.get(name);
    ns += a.runTimeNs - (b?.runTimeNs ?? 0);
    cnt += a.runCnt - (b?.runCnt ?? 0);
  }
  return { ns, cnt };
}

function attachEmpty(native: NativeBinding, h: ObjectHandle): number[] {
  const links: number[] = [];
  for (const [file, targets] of [[LIBSSL, SSL_TARGETS], [LIBC, LIBC_TARGETS]] as const) {
    for (const [, off] of resolveTargets(file, targets)) {
      links.push(native.attachUprobe(h, 'rtev_empty_uprobe', false, -1, file, off, 0n));
      links.push(native.attachUprobe(h, 'rtev_empty_uretprobe', true, -1, file, off, 0n));
    }
  }
  return links;
}

const ms = (t0: bigint): number => +(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1);
const r2 = (x: number): number => +x.toFixed(2);

async function main(): Promise<void> {
  const statsBefore = fs.readFileSync(STATS_SYSCTL, 'utf8').trim();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-tlsbench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/k.pem`, '-out', `${dir}/c.pem`,
    '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  fs.writeFileSync(`${dir}/f.txt`, Buffer.alloc(1024, 'x'));
  const port = 30000 + Math.floor(Math.random() * 10000);
  const server = spawn('openssl', ['s_server', '-accept', String(port), '-cert', 'c.pem', '-key', 'k.pem', '-WWW', '-quiet'],
    { cwd: dir, stdio: ['pipe', 'ignore', 'ignore'] });
  await new Promise((r) => setTimeout(r, 500));
  try {
    fs.writeFileSync(STATS_SYSCTL, '1');
    loop(port); // warm-up
    const base = loop(port);

    // empty uprobes, attached from this process with the addon
    const native = loadBinding();
    const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
    for (const p of native.programs(h)) native.setAutoload(h, p.name, p.name === 'rtev_empty_uprobe' || p.name === 'rtev_empty_uretprobe');
    native.load(h, false);
    let links = attachEmpty(native, h);
    const emptyBefore = progStats(process.pid);
    const empty = loop(port);
    const emptyAfter = progStats(process.pid);
    const emptyEntry = delta(emptyBefore, emptyAfter, EMPTY_ENTRY);
    const emptyRet = delta(emptyBefore, emptyAfter, EMPTY_RET);
    // teardown: one detach() after another, then the same links again with detachMany()
    const linkCount = links.length;
    let t0 = process.hrtime.bigint();
    for (const l of links) native.detach(h, l);
    const detachSequentialMs = ms(t0);
    links = attachEmpty(native, h);
    t0 = process.hrtime.bigint();
    native.detachMany(h, links);
    const detachManyMs = ms(t0);

    // rtev collect
    const out = path.join(dir, 'rtev.ndjson');
    const fd = fs.openSync(out, 'w');
    const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--probes', 'net_connect,ssl_op'],
      { stdio: ['ignore', fd, 'pipe'] });
    let rtevStderr = '';
    rtev.stderr?.on('data', (b: Buffer) => { rtevStderr += b.toString(); });
    const ready = (): boolean => {
      try {
        return (JSON.parse(execFileSync('bpftool', ['perf', 'show', '-j'], { encoding: 'utf8' })) as any[])
          .some((l) => l.pid === rtev.pid && /uprobe/.test(l.fd_type) && /libssl/.test(l.filename ?? ''));
      } catch { return false; }
    };
    while (!ready()) await new Promise((r) => setTimeout(r, 200));
    await new Promise((r) => setTimeout(r, 300)); // let the start-up /proc scan finish
    const rtevBefore = progStats(rtev.pid!);
    const withRtev = loop(port);
    const rtevAfter = progStats(rtev.pid!);
    const rtevEntry = delta(rtevBefore, rtevAfter, RTEV_ENTRY);
    const rtevRet = delta(rtevBefore, rtevAfter, RTEV_RET);
    t0 = process.hrtime.bigint();
    rtev.kill('SIGTERM');
    await new Promise((r) => rtev.on('exit', r));
    const rtevStopMs = ms(t0);
    const uprobeLine = /rtev: uprobes: (\{.*\})/.exec(rtevStderr);
    const rtevLinks = uprobeLine ? (JSON.parse(uprobeLine[1]) as { links: number }).links : undefined;

    const recs = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const curlCalls = recs.filter((r) => r.comm === 'curl').length;
    const serverCalls = recs.filter((r) => r.pid === server.pid).length;
    // probed calls per request, from rtev's entry programs' run count (all calls, also those moving no bytes;
    // calls of other processes on the host during the loop are included)
    const calls = Math.max(1, rtevEntry.cnt / REQUESTS);
    const perCall = (e: { ns: number; cnt: number }, r: { ns: number; cnt: number }): number => (e.ns + r.ns) / Math.max(1, e.cnt);
    const emptyNsPerCall = perCall(emptyEntry, emptyRet);
    const rtevNsPerCall = perCall(rtevEntry, rtevRet);
    const res = {
      requests: REQUESTS,
      cpus: os.cpus().length,
      kernel: os.release(),
      us_per_request: { baseline: +base.toFixed(1), empty_uprobes: +empty.toFixed(1), rtev: +withRtev.toFixed(1) },
      slowdown_per_request_us: { empty_uprobes: r2(empty - base), rtev: r2(withRtev - base) },
      probed_calls_per_request: r2(calls),
      records_per_request: r2((curlCalls + serverCalls) / REQUESTS),
      end_to_end_cost_per_call_us: { empty_uprobe: r2((empty - base) / calls), rtev: r2((withRtev - base) / calls) },
      // bpf_stats: run_time_ns / run_cnt of the programs themselves (entry + return program per call)
      bpf_run_time: {
        empty: { entry_calls: emptyEntry.cnt, ret_calls: emptyRet.cnt, entry_ns: r2(emptyEntry.ns / Math.max(1, emptyEntry.cnt)),
          ret_ns: r2(emptyRet.ns / Math.max(1, emptyRet.cnt)), ns_per_call: r2(emptyNsPerCall) },
        rtev: { entry_calls: rtevEntry.cnt, ret_calls: rtevRet.cnt, entry_ns: r2(rtevEntry.ns / Math.max(1, rtevEntry.cnt)),
          ret_ns: r2(rtevRet.ns / Math.max(1, rtevRet.cnt)), ns_per_call: r2(rtevNsPerCall) },
        rtev_above_empty_ns_per_call: r2(rtevNsPerCall - emptyNsPerCall),
        target_1us_met: rtevNsPerCall - emptyNsPerCall <= 1000,
        per_program: Object.fromEntries([...rtevAfter].filter(([n]) => [...RTEV_ENTRY, ...RTEV_RET].includes(n))
          .map(([n]) => {
            const d = delta(rtevBefore, rtevAfter, [n]);
            return [n, { calls: d.cnt, ns_per_run: r2(d.ns / Math.max(1, d.cnt)) }];
          })),
      },
      teardown_ms: {
        empty_links: linkCount, detach_sequential: detachSequentialMs, detach_many: detachManyMs,
        rtev_links: rtevLinks, rtev_sigterm_to_exit: rtevStopMs,
      },
    };
    console.log(JSON.stringify(res, null, 2));
  } finally {
    fs.writeFileSync(STATS_SYSCTL, statsBefore);
    server.kill();
  }
}

void main().catch((err) => { console.error(err); process.exit(1); });

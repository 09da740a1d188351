/**
 * TLS request loop on loopback (curl -> openssl s_server -WWW, REQUESTS new connections) in one run:
 *  1. baseline, 2. empty uprobe+uretprobe on the same functions rtev probes, 3. rtev collect
 *  (--probes net_connect,ssl_op). Prints the per-request slowdown and the per-probed-call cost
 *  of rtev next to that of the empty uprobe. Run as root after `make build`:
 *    node dist/bench/tls.bench.js [REQUESTS]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding } from '../src/ingest/native';
import { LIBC_TARGETS, SSL_TARGETS, resolveTargets } from '../src/ingest/uprobes/libraries';

const REPO = path.resolve(__dirname, '..', '..');
const REQUESTS = Number(process.argv[2] ?? 300);
const LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';

function loop(port: number): number {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('curl', ['-sk', '--http1.1', '-o', '/dev/null', `https://127.0.0.1:${port}/f.txt?[1-${REQUESTS}]`]);
  if (r.status !== 0) throw new Error(`curl failed: ${r.stderr}`);
  return Number(process.hrtime.bigint() - t0) / 1e3 / REQUESTS; // µs per request
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-tlsbench-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${dir}/k.pem`, '-out', `${dir}/c.pem`,
    '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  fs.writeFileSync(`${dir}/f.txt`, Buffer.alloc(1024, 'x'));
  const port = 30000 + Math.floor(Math.random() * 10000);
  const server = spawn('openssl', ['s_server', '-accept', String(port), '-cert', 'c.pem', '-key', 'k.pem', '-WWW', '-quiet'],
    { cwd: dir, stdio: ['pipe', 'ignore', 'ignore'] });
  await new Promise((r) => setTimeout(r, 500));
  try {
    loop(port); // warm-up
    const base = loop(port);

    // empty uprobes, attached from this process with the addon
    const native = loadBinding();
    const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
    for (const p of native.programs(h)) native.setAutoload(h, p.name, p.name === 'rtev_empty_uprobe' || p.name === 'rtev_empty_uretprobe');
    native.load(h, false);
    const links: number[] = [];
    for (const [file, targets] of [[LIBSSL, SSL_TARGETS], [LIBC, LIBC_TARGETS]] as const) {
      for (const [, off] of resolveTargets(file, targets)) {
        links.push(native.attachUprobe(h, 'rtev_empty_uprobe', false, -1, file, off, 0n));
        links.push(native.attachUprobe(h, 'rtev_empty_uretprobe', true, -1, file, off, 0n));
      }
    }
    const empty = loop(port);
    for (const l of links) native.detach(h, l);

    // rtev collect
    const out = path.join(dir, 'rtev.ndjson');
    const fd = fs.openSync(out, 'w');
    const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--quiet', '--probes', 'net_connect,ssl_op'],
      { stdio: ['ignore', fd, 'inherit'] });
    const ready = (): boolean => {
      try {
        return (JSON.parse(execFileSync('bpftool', ['perf', 'show', '-j'], { encoding: 'utf8' })) as any[])
          .some((l) => l.pid === rtev.pid && /uprobe/.test(l.fd_type) && /libssl/.test(l.filename ?? ''));
      } catch { return false; }
    };
    while (!ready()) await new Promise((r) => setTimeout(r, 200));
    const withRtev = loop(port);
    rtev.kill('SIGTERM');
    await new Promise((r) => rtev.on('exit', r));
    const recs = fs.readFileSync(out, 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const curlCalls = recs.filter((r) => r.comm === 'curl').length;
    const serverCalls = recs.filter((r) => r.pid === server.pid).length;
    // probed calls per request: records of curl and the server (calls that moved no bytes are not counted here,
    // so the per-call figures are upper bounds)
    const calls = Math.max(1, (curlCalls + serverCalls) / REQUESTS);
    const res = {
      requests: REQUESTS,
      us_per_request: { baseline: +base.toFixed(1), empty_uprobes: +empty.toFixed(1), rtev: +withRtev.toFixed(1) },
      slowdown_per_request_us: { empty_uprobes: +(empty - base).toFixed(2), rtev: +(withRtev - base).toFixed(2) },
      recorded_calls_per_request: +calls.toFixed(2),
      cost_per_call_us: { empty_uprobe: +((empty - base) / calls).toFixed(2), rtev: +((withRtev - base) / calls).toFixed(2) },
      rtev_above_empty_per_call_us: +((withRtev - empty) / calls).toFixed(2),
    };
    console.log(JSON.stringify(res, null, 2));
  } finally {
    server.kill();
  }
}

void main().catch((err) => { console.error(err); process.exit(1); });

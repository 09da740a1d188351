/**
 * Soak run shared by test/reliability/soak.test.ts (CI: 60 s) and bench/soak.bench.ts (10 min):
 * `rtev collect --out DIR --probes file_open,process_exec,tcp_state,net_connect,ssl_op -- bash load.sh S`
 * where the load mixes file opens and loopback TCP connects (python), fork+exec of /bin/true, and
 * TLS requests (curl -> openssl s_server -WWW on loopback). The collector's VmRSS and
 * utime+stime are sampled from /proc every SAMPLE_MS. Results in docs/benchmarks.md ("Soak") and
 * docs/reliability.md.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { finalLedger, ledgerProblems } from '../test/reliability/helpers';

const REPO = path.resolve(__dirname, '..', '..');
const RTEV = path.join(REPO, 'bin', 'rtev');
export const SOAK_PROBES = 'file_open,process_exec,tcp_state,net_connect,ssl_op';
export const SAMPLE_MS = 5_000;
/** flat memory: median VmRSS of the last quarter minus that of the second quarter of the run */
export const RSS_FLAT_BOUND_KB = 32 * 1024;

/** Load rates (per second, approximate; each loop sleeps between rounds). */
const PY_LOAD = String.raw`
import os, socket, sys, time
deadline = time.monotonic() + float(sys.argv[1])
work = sys.argv[2]
files = []
for i in range(32):
    p = os.path.join(work, "f%02d" % i)
    with open(p, "w") as f:
        f.write("x" * 64)
    files.append(p)
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
port = srv.getsockname()[1]
opens = connects = 0
while time.monotonic() < deadline:
    for p in files:                      # 32 opens per round
        with open(p, "rb") as f:
            f.read()
        opens += 1
    for _ in range(4):                   # 4 loopback connects per round; RST close, no TIME_WAIT
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.connect(("127.0.0.1", port))
        a, _ = srv.accept()
        a.close()
        c.close()
        connects += 1
    time.sleep(0.01)
print("opens %d connects %d" % (opens, connects), flush=True)
`;

const LOAD_SH = `#!/bin/bash
# load.sh SECONDS WORK PORT: mixed load for the soak (bench/soak.ts)
set -u
S=$1 W=$2 PORT=$3
cd "$W"
sleep 2   # probes attach; first RSS samples are taken with the collector idle
openssl s_server -accept "$PORT" -cert c.pem -key k.pem -WWW -quiet </dev/null >/dev/null 2>srverr &
SRV=$!
for _ in $(seq 200); do ss -Hltn "sport = :$PORT" | grep -q LISTEN && break; sleep 0.05; done
/usr/bin/python3 load.py "$S" "$W" >pyout 2>pyerr &
PY=$!
end=$((SECONDS + S))
execs=0 tls=0 tlsfail=0
while [ $SECONDS -lt $end ]; do
  for _ in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done
  execs=$((execs + 10))
  if curl -sk --http1.1 -o /dev/null "https://127.0.0.1:$PORT/f.txt?[1-4]"; then tls=$((tls + 4)); else tlsfail=$((tlsfail + 1)); fi
  sleep 0.2
done
wait $PY; pyrc=$?
kill $SRV 2>/dev/null; wait $SRV 2>/dev/null
echo "execs $execs tls $tls tlsfail $tlsfail pyrc $pyrc $(cat pyout)" >load.out
[ $pyrc -eq 0 ] && [ $tlsfail -eq 0 ]
`;

export interface Sample { t: number; rssKb: number; cpuTicks: number }

export interface SoakResult {
  seconds: number;
  code: number;
  stderr: string;
  verifyCode: number;
  verifyOut: string;
  dir: string;
  samples: Sample[];
  clkTck: number;
  loadSummary: string;
  ledger: ReturnType<typeof finalLedger> | undefined;
  ledgerProblems: string[];
  records: number;
  rss: { startKb: number; endKb: number; maxKb: number; q2MedianKb: number; q4MedianKb: number };
  cpuPercent: number;
  wallS: number;
}

function procSample(pid: number): { rssKb: number; cpuTicks: number } | undefined {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields after "(comm) ": state=0 ... utime=11 stime=12
    if (m === null) return undefined;
    return { rssKb: Number(m[1]), cpuTicks: Number(f[11]) + Number(f[12]) };
  } catch {
    return undefined;
  }
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const h = s.length >> 1;
  return s.length % 2 === 1 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/** quarterMedians: medians of VmRSS over the samples in the 2nd and the 4th quarter of the run. */
export function quarterMedians(samples: Sample[], wallS: number): { q2: number; q4: number } {
  const inQ = (q: number): number[] => samples.filter((s) => s.t >= (q - 1) * wallS / 4 && s.t < q * wallS / 4 + (q === 4 ? 1e9 : 0)).map((s) => s.rssKb);
  return { q2: median(inQ(2)), q4: median(inQ(4)) };
}

/** lineCount counts the records (lines) of the sealed chunk files of DIR without parsing them. */
export function lineCount(dir: string): number {
  let n = 0;
  for (const name of fs.readdirSync(dir).filter((x) => /^chunk-\d{12}\.ndjson$/.test(x))) {
    const buf = fs.readFileSync(path.join(dir, name));
    for (let i = buf.indexOf(10); i !== -1; i = buf.indexOf(10, i + 1)) n++;
  }
  return n;
}

export async function runSoak(seconds: number, opts: { log?: (s: string) => void } = {}): Promise<SoakResult> {
  const log = opts.log ?? (() => {});
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-soak-'));
  const dir = path.join(work, 'evidence');
  const load = path.join(work, 'load');
  fs.mkdirSync(load);
  fs.writeFileSync(path.join(load, 'load.py'), PY_LOAD);
  fs.writeFileSync(path.join(load, 'load.sh'), LOAD_SH, { mode: 0o755 });
  fs.writeFileSync(path.join(load, 'f.txt'), Buffer.alloc(1024, 'x'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(load, 'k.pem'), '-out', path.join(load, 'c.pem'),
    '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  const key = path.join(work, 'signing.key');
  execFileSync(process.execPath, [RTEV, 'keygen', '--out', key], { env, stdio: 'ignore' });
  const port = 20000 + Math.floor(Math.random() * 12000); // below the ephemeral range
  const clkTck = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

  const child = spawn(process.execPath, [RTEV, 'collect', '--out', dir, '--key', key, '--probes', SOAK_PROBES, '--quiet',
    '--', 'bash', path.join(load, 'load.sh'), String(seconds), load, String(port)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const t0 = Date.now();
  const exit = new Promise<number>((r) => child.on('close', (code, sig) => r(code ?? (sig ? 128 + (os.constants.signals as any)[sig] : 1))));
  let done = false;
  void exit.then(() => (done = true));
  const samples: Sample[] = [];
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 120) * 1000);
  // first sample 1 s after the start (probes attaching), then every SAMPLE_MS
  for (let next = 1000; !done; next += SAMPLE_MS) {
    while (!done && Date.now() - t0 < next) await new Promise((r) => setTimeout(r, 100));
    if (done) break;
    const s = procSample(child.pid!);
    if (s !== undefined) {
      samples.push({ t: (Date.now() - t0) / 1000, ...s });
      log(`t=${samples[samples.length - 1]!.t.toFixed(1)}s rss=${s.rssKb} kB cpu=${s.cpuTicks} ticks`);
    }
  }
  const code = await exit;
  clearTimeout(timer);
  const wallS = (Date.now() - t0) / 1000;
  const verify = spawnSync(process.execPath, [RTEV, 'verify', dir, '--pubkey', key + '.pub'], { env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const loadSummary = fs.existsSync(path.join(load, 'load.out')) ? fs.readFileSync(path.join(load, 'load.out'), 'utf8').trim() : '(no load.out)';
  const ledger = fs.existsSync(dir) ? finalLedger(dir) : undefined;
  const lastT = samples.length > 0 ? samples[samples.length - 1]!.t : wallS;
  const { q2, q4 } = quarterMedians(samples, lastT);
  const rssKb = samples.map((s) => s.rssKb);
  const first = samples[0];
  const last = samples[samples.length - 1];
  const cpuPercent = first && last && last.t > first.t ? ((last.cpuTicks - first.cpuTicks) / clkTck) / (last.t - first.t) * 100 : NaN;
  return {
    seconds, code, stderr, verifyCode: verify.status ?? -1, verifyOut: (verify.stdout ?? '') + (verify.stderr ?? ''), dir, samples, clkTck,
    loadSummary, ledger, ledgerProblems: ledger ? ledgerProblems(ledger) : ['no evidence directory'], records: fs.existsSync(dir) ? lineCount(dir) : 0,
    rss: { startKb: rssKb[0] ?? NaN, endKb: rssKb[rssKb.length - 1] ?? NaN, maxKb: Math.max(...rssKb), q2MedianKb: q2, q4MedianKb: q4 },
    cpuPercent, wallS,
  };
}

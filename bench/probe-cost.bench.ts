/**
 * BPF run time per open of the file_open programs, A/B between builds of the BPF object, in one run:
 * for each round and each object, `rtev collect --stdout --probes file_open` (to /dev/null) with
 * RTEV_BPF_OBJECT set, an open storm of N opens (bench/openstorm.c), and the run_time_ns of the
 * collector's own programs (kernel.bpf_stats_enabled=1 for the run, restored after) divided by N.
 * Run as root after `make build`:
 *   node dist/bench/probe-cost.bench.js [N] [ROUNDS] [OBJECT...]     (default object: build/rtev.bpf.o)
 * An OBJECT may carry collect options after a '+': build/rtev.bpf.o+--ring-size=1M (for A/B of options).
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { programStats } from './bpf-stats';

const REPO = path.resolve(__dirname, '..', '..');
const N = Number(process.argv[2] ?? 300_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const OBJECTS = process.argv.length > 4 ? process.argv.slice(4) : [path.join(REPO, 'build', 'rtev.bpf.o')];
const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** run time and count of the BPF programs process `pid` holds */
function heldPrograms(pid: number): { ns: number; runs: number; count: number } {
  const stats = [...programStats(pid).values()];
  return { ns: stats.reduce((a, p) => a + p.runTimeNs, 0), runs: stats.reduce((a, p) => a + p.runCnt, 0), count: stats.length };
}

async function measure(variant: string, storm: string, target: string): Promise<{ nsPerOpen: number; runsPerOpen: number }> {
  const [object, ...options] = variant.split('+');
  const args = options.flatMap((o) => o.split('=')); // --ring-size=1M -> --ring-size 1M
  const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--quiet', '--probes', 'file_open', ...args],
    { stdio: ['ignore', fs.openSync('/dev/null', 'w'), 'inherit'], env: { ...process.env, RTEV_BPF_OBJECT: object } });
  const exited = new Promise((r) => rtev.on('exit', r));
  for (let i = 0; i < 200 && heldPrograms(rtev.pid!).count === 0; i++) await sleep(50);
  await sleep(500);
  const before = heldPrograms(rtev.pid!);
  execFileSync(storm, [String(N), target]);
  const after = heldPrograms(rtev.pid!);
  rtev.kill('SIGTERM');
  await exited;
  return { nsPerOpen: (after.ns - before.ns) / N, runsPerOpen: (after.runs - before.runs) / N };
}

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-probecost-'));
  const storm = path.join(work, 'openstorm');
  execFileSync('gcc', ['-O2', '-o', storm, path.join(REPO, 'bench', 'openstorm.c')]);
  const target = path.join(work, 'target');
  fs.writeFileSync(target, 'x');
  const statsBefore = fs.readFileSync(STATS_SYSCTL, 'utf8').trim();
  const results: Record<string, number[]> = Object.fromEntries(OBJECTS.map((o) => [o, []]));
  try {
    fs.writeFileSync(STATS_SYSCTL, '1');
    for (let round = 0; round < ROUNDS; round++) {
      for (const object of OBJECTS) {
        const r = await measure(object, storm, target);
        results[object]!.push(+r.nsPerOpen.toFixed(1));
        console.error(`round ${round + 1} ${object}: ${r.nsPerOpen.toFixed(1)} ns per open (${r.runsPerOpen.toFixed(2)} program runs per open)`);
      }
    }
  } finally {
    fs.writeFileSync(STATS_SYSCTL, statsBefore);
  }
  console.log(JSON.stringify({ opens: N, rounds: ROUNDS, kernel: os.release(), loadavg: os.loadavg().map((x) => +x.toFixed(2)), ns_per_open: results }, null, 2));
}

void main().catch((err) => { console.error(err); process.exit(1); });

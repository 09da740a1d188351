/**
 * io_uring opens (bpf/io_uring.h), in one run, ROUNDS times each phase:
 *   baseline   no programs: an io_uring open storm (bench/uring_storm.c: N IORING_OP_OPENAT, each
 *              waited for and closed) and the syscall open storm (bench/openstorm.c, N opens)
 *   empty      programs that do nothing on the same two tracepoints (tp_btf io_uring_submit_req and
 *              io_uring_complete), loaded and attached from this process: the uring storm
 *   rtev       `rtev collect --stdout --probes file_open` (to /dev/null): both storms
 *   rtev-noiou the same with an object built without the io_uring programs (-DRTEV_NO_IO_URING, through
 *              RTEV_BPF_OBJECT): both storms, so the syscall path is compared with and without them
 * Prints µs per open end to end and, with kernel.bpf_stats_enabled=1 for the run (restored at the
 * end), the BPF run time per open of the programs that ran (the collector's own, found through its
 * /proc/PID/fdinfo prog_id). Run as root after `make build`:
 *   node dist/bench/io-uring.bench.js [N] [ROUNDS]
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding } from '../src/ingest/native';
import { programStats, type ProgStat } from './bpf-stats';

const REPO = path.resolve(__dirname, '..', '..');
const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
const IOU_PROGRAMS = ['handle_iou_open_submit', 'handle_iou_open_failed', 'handle_iou_open_complete'];
const EMPTY_PROGRAMS = ['rtev_iou_empty_submit', 'rtev_iou_empty_complete'];
const SYSCALL_PROGRAMS = ['handle_openat_enter', 'handle_openat_exit']; // enter: objects before session 4
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const r2 = (x: number): number => +x.toFixed(2);

function bpfNs(before: Map<string, ProgStat>, after: Map<string, ProgStat>, names: string[]): { ns: number; runs: number } {
  let ns = 0;
  let runs = 0;
  for (const n of names) {
    const a = after.get(n);
    if (a === undefined) continue;
    ns += a.runTimeNs - (before.get(n)?.runTimeNs ?? 0);
    runs += a.runCnt - (before.get(n)?.runCnt ?? 0);
  }
  return { ns, runs };
}

/** statsValid is false when the storm ran while kernel.bpf_stats_enabled was off: another benchmark on
 * the shared host restored it meanwhile; the run time of such a sample is not used */
let statsValid = true;

/** µs per open of one storm (both print "<N> <elapsed_ns> ..."), with bpf_stats_enabled set around it */
function storm(bin: string, target: string): number {
  fs.writeFileSync(STATS_SYSCTL, '1');
  const [n, ns] = execFileSync(bin, [String(N), target], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  statsValid = fs.readFileSync(STATS_SYSCTL, 'utf8').trim() === '1';
  return ns! / n! / 1e3;
}

interface Sample { us: number; bpfNs?: number; runsPerOpen?: number }
type Results = Record<string, { uring: Sample[]; syscall: Sample[] }>;

async function main(): Promise<void> {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-ioubench-'));
  const uring = path.join(work, 'uring_storm');
  const sys = path.join(work, 'openstorm');
  execFileSync('gcc', ['-O2', '-o', uring, path.join(REPO, 'bench', 'uring_storm.c'), '-luring']);
  execFileSync('gcc', ['-O2', '-o', sys, path.join(REPO, 'bench', 'openstorm.c')]);
  const noIou = path.join(work, 'rtev-noiou.bpf.o');
  execFileSync('clang', ['-target', 'bpf', '-D__TARGET_ARCH_x86', '-DRTEV_NO_IO_URING', '-g', '-O2', '-Wall', `-I${path.join(REPO, 'build')}`,
    `-I${path.join(REPO, 'bpf')}`, '-c', path.join(REPO, 'bpf', 'rtev.bpf.c'), '-o', noIou]);
  const target = path.join(work, 'target');
  fs.writeFileSync(target, 'x');
  const statsBefore = fs.readFileSync(STATS_SYSCTL, 'utf8').trim();
  const results: Results = {};
  const push = (phase: string, kind: 'uring' | 'syscall', s: Sample) => {
    results[phase] ??= { uring: [], syscall: [] };
    results[phase]![kind].push(s);
    const bpf = s.runsPerOpen === undefined ? '' : s.bpfNs === undefined ? ', BPF stats turned off meanwhile' : `, BPF ${s.bpfNs.toFixed(0)} ns/open (${s.runsPerOpen.toFixed(2)} runs/open)`;
    console.error(`${phase} ${kind}: ${s.us.toFixed(2)} µs/open${bpf}`);
  };
  const uptime = [execFileSync('uptime', { encoding: 'utf8' }).trim()];
  // the empty programs: loaded once, attached for the empty phase of each round
  const native = loadBinding();
  const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
  for (const p of native.programs(h)) native.setAutoload(h, p.name, EMPTY_PROGRAMS.includes(p.name));
  native.load(h, false);
  try {
    fs.writeFileSync(STATS_SYSCTL, '1');
    for (let round = 0; round < ROUNDS; round++) {
      push('baseline', 'uring', { us: storm(uring, target) });
      push('baseline', 'syscall', { us: storm(sys, target) });

      const links = EMPTY_PROGRAMS.map((p) => native.attach(h, p));
      let before = programStats(process.pid);
      let us = storm(uring, target);
      let after = programStats(process.pid);
      let d = bpfNs(before, after, EMPTY_PROGRAMS);
      push('empty', 'uring', { us, bpfNs: d.ns / N, runsPerOpen: d.runs / N });
      native.detachMany(h, links);

      for (const [phase, object] of [['rtev', path.join(REPO, 'build', 'rtev.bpf.o')], ['rtev-noiou', noIou]] as const) {
        const rtev = spawn(process.execPath, [path.join(REPO, 'bin', 'rtev'), 'collect', '--stdout', '--quiet', '--probes', 'file_open'],
          { stdio: ['ignore', fs.openSync('/dev/null', 'w'), 'inherit'], env: { ...process.env, RTEV_BPF_OBJECT: object } });
        const exited = new Promise((r) => rtev.on('exit', r));
        // ready when its programs run: a few opens of each kind until their run counts move
        const ready = phase === 'rtev' ? ['handle_openat_exit', 'handle_iou_open_complete'] : ['handle_openat_exit'];
        for (let i = 0; i < 300; i++) {
          execFileSync(uring, ['10', target]);
          execFileSync(sys, ['10', target]);
          const st = programStats(rtev.pid!);
          if (ready.every((n) => (st.get(n)?.runCnt ?? 0) > 0)) break;
          await sleep(100);
        }
        await sleep(1000);
        before = programStats(rtev.pid!);
        us = storm(uring, target);
        after = programStats(rtev.pid!);
        d = bpfNs(before, after, IOU_PROGRAMS);
        push(phase, 'uring', { us, bpfNs: statsValid ? d.ns / N : undefined, runsPerOpen: d.runs / N });
        before = programStats(rtev.pid!);
        us = storm(sys, target);
        after = programStats(rtev.pid!);
        d = bpfNs(before, after, SYSCALL_PROGRAMS);
        push(phase, 'syscall', { us, bpfNs: statsValid ? d.ns / N : undefined, runsPerOpen: d.runs / N });
        rtev.kill('SIGTERM');
        await exited;
      }
      uptime.push(execFileSync('uptime', { encoding: 'utf8' }).trim());
    }
  } finally {
    fs.writeFileSync(STATS_SYSCTL, statsBefore);
  }
  const median = (all: number[]): number => {
    const xs = all.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
    return xs.length === 0 ? NaN : xs[Math.floor(xs.length / 2)]!;
  };
  const summary = Object.fromEntries(Object.entries(results).map(([phase, r]) => [phase, {
    uring_us: r.uring.map((s) => r2(s.us)), uring_bpf_ns: r.uring.map((s) => (s.bpfNs === undefined ? null : r2(s.bpfNs))),
    syscall_us: r.syscall.map((s) => r2(s.us)), syscall_bpf_ns: r.syscall.map((s) => (s.bpfNs === undefined ? null : r2(s.bpfNs))),
  }]));
  const m = (phase: string, kind: 'uring' | 'syscall', f: (s: Sample) => number | undefined) =>
    median((results[phase]?.[kind] ?? []).map((s) => f(s) ?? NaN));
  console.log(JSON.stringify({
    opens: N, rounds: ROUNDS, kernel: os.release(), uptime, phases: summary,
    medians: {
      uring_us_per_open: { baseline: r2(m('baseline', 'uring', (s) => s.us)), empty: r2(m('empty', 'uring', (s) => s.us)), rtev: r2(m('rtev', 'uring', (s) => s.us)) },
      uring_bpf_ns_per_open: { empty: r2(m('empty', 'uring', (s) => s.bpfNs)), rtev: r2(m('rtev', 'uring', (s) => s.bpfNs)) },
      syscall_us_per_open: { baseline: r2(m('baseline', 'syscall', (s) => s.us)), rtev: r2(m('rtev', 'syscall', (s) => s.us)), rtev_without_io_uring: r2(m('rtev-noiou', 'syscall', (s) => s.us)) },
      syscall_bpf_ns_per_open: { rtev: r2(m('rtev', 'syscall', (s) => s.bpfNs)), rtev_without_io_uring: r2(m('rtev-noiou', 'syscall', (s) => s.bpfNs)) },
    },
  }, null, 2));
}

void main().catch((err) => { console.error(err); process.exit(1); });

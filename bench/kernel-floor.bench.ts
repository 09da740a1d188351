/**
 * What a syscall hook costs on this kernel, and what rtev's own kernel side adds to it: the storm's
 * own system time per open (getrusage of bench/openstorm.c: the open()+close() syscalls plus what
 * the attached programs and the tracepoint machinery add), variants alternating in one run, order
 * rotated per round, medians (docs/benchmarks.md, "BPF cost per open", session 4).
 *
 *   node dist/bench/kernel-floor.bench.js [N] [ROUNDS] [VARIANT...]      (root, after `make build`)
 *
 * Variants (default: the floor set and `rtev`):
 *   none           nothing attached by this bench
 *   tp_other       empty programs on sys_enter/sys_exit_getppid: the syscall-tracepoint slow path every task
 *                  then takes, and perf_syscall_enter/_exit returning at their bitmap test, for open and close
 *   tp_enter       an empty program on sys_enter_openat (perf record of the arguments built per hit)
 *   tp_exit        an empty program on sys_exit_openat
 *   tp_pair        both
 *   tp_pair_pid    both, the enter program a pid hash lookup that misses (rtev's filtered-out open, minimal)
 *   raw_pair       raw_tp sys_enter + sys_exit, a syscall-number check (every syscall of the host runs them)
 *   raw_exit       raw_tp sys_exit only
 *   btf_pair       tp_btf sys_enter + sys_exit, a syscall-number check
 *   btf_exit       tp_btf sys_exit only
 *   btf_exit_pid   tp_btf sys_exit, the number check then a pid hash lookup that misses
 *   tp_exit_pid    sys_exit_openat only, a pid hash lookup that misses (arguments from bpf_task_pt_regs)
 *   A+B            the programs of both floor variants at once
 *   rtev[=OBJ]     rtev's file_open syscall programs (before session 4: 5 programs on 8 tracepoints; now one on
 *                  the 4 sys_exit tracepoints, as src/ingest/probes.ts
 *                  attaches them) from build/rtev.bpf.o or OBJ, cfg.filter_pids with no pid listed: every open
 *                  filtered out
 *   rtevrec[=OBJ]  the same programs recording every open (no filter), their bulk ring drained by the addon's
 *                  consumer thread in this process (copied into slots, no encoding): rtev's kernel side per recorded open
 *   collect[=OBJ]  `rtev collect --stdout --pid 1` (every probe; every storm open filtered out)
 *   stdout[=OBJ]   `rtev collect --stdout --probes file_open` to /dev/null (every storm open recorded)
 *   collect@DIR, stdout@DIR   the same with the build in DIR (another worktree after `make build`)
 *   ring           the ring set: ring_default, ring_current, ring_cross, ring_percpu, ring_never (a 128-byte record
 *                  copied from per-CPU scratch with bpf_ringbuf_output on sys_exit_openat under each wake-up
 *                  policy, bench/kernel-floor.bpf.c), ring_nowrite (the same program without the write) and
 *                  ring_reserve_cross (written in place), consumed by the
 *                  addon's consumer thread in this process (startRing, batches handed to JS and given back);
 *                  ring_POLICY@SIZE: the same with a record of SIZE bytes (8..1023; the ring adds an 8-byte header)
 * Per sample: storm sys µs/open, wall µs/open, IRQ-work interrupts per open (/proc/interrupts IWI: the
 * self-IPIs a forced ring wake-up costs), for ring variants records lost and this process's CPU per record.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadBinding, type NativeBinding, type ObjectHandle, type RingHandle } from '../src/ingest/native';
import { encodeKernelConfig } from '../src/ingest/session';
import { programStats } from './bpf-stats';

const REPO = path.resolve(__dirname, '..', '..');
const N = Number(process.argv[2] ?? 500_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const FLOOR = ['none', 'tp_other', 'tp_enter', 'tp_exit', 'tp_pair', 'tp_pair_pid', 'raw_pair', 'raw_exit', 'btf_pair', 'btf_exit',
  'btf_exit_pid', 'tp_exit_pid', 'rtev'];
const RING = ['none', 'tp_exit', 'ring_nowrite', 'ring_default', 'ring_current', 'ring_cross', 'ring_percpu', 'ring_never', 'ring_reserve_cross'];
const FLOOR_PROGRAMS: Record<string, string[]> = {
  none: [],
  tp_other: ['floor_other_enter', 'floor_other_exit'],
  tp_enter: ['floor_tp_enter'],
  tp_exit: ['floor_tp_exit'],
  tp_pair: ['floor_tp_enter', 'floor_tp_exit'],
  tp_pair_pid: ['floor_tp_enter_pid', 'floor_tp_exit'],
  raw_pair: ['floor_raw_enter', 'floor_raw_exit'],
  raw_exit: ['floor_raw_exit'],
  btf_pair: ['floor_btf_enter', 'floor_btf_exit'],
  btf_exit: ['floor_btf_exit'],
  btf_exit_pid: ['floor_btf_exit_pid'],
  tp_exit_pid: ['floor_tp_exit_pid'],
};
/** ring variants: program, policy (knobs[2], bench/kernel-floor.bpf.c) */
const RING_VARIANTS: Record<string, { program: string; policy: number }> = {
  ring_default: { program: 'floor_ring_output', policy: 0 },
  ring_current: { program: 'floor_ring_output', policy: 1 },
  ring_cross: { program: 'floor_ring_output', policy: 2 },
  ring_never: { program: 'floor_ring_output', policy: 3 },
  ring_percpu: { program: 'floor_ring_output', policy: 4 },
  ring_nowrite: { program: 'floor_ring_output', policy: 5 },
  ring_reserve_cross: { program: 'floor_ring_reserve', policy: 2 },
};
const RING_RECORD = 128;
const RING_THRESHOLD = 256 << 10; // rtev's for its 16 MiB bulk ring (src/ingest/session.ts)
/** rtev's file_open syscall programs and where src/ingest/probes.ts attaches them (the enter
 * programs: objects before session 4; those an object lacks are left out) */
const RTEV_FILE_OPEN: [string, string][] = [
  ['handle_openat_enter', 'syscalls/sys_enter_openat'], ['handle_openat_exit', 'syscalls/sys_exit_openat'],
  ['handle_openat2_enter', 'syscalls/sys_enter_openat2'], ['handle_openat_exit', 'syscalls/sys_exit_openat2'],
  ['handle_open_enter', 'syscalls/sys_enter_open'], ['handle_openat_exit', 'syscalls/sys_exit_open'],
  ['handle_creat_enter', 'syscalls/sys_enter_creat'], ['handle_openat_exit', 'syscalls/sys_exit_creat'],
];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function irqWork(): number {
  const line = fs.readFileSync('/proc/interrupts', 'utf8').split('\n').find((l) => l.trimStart().startsWith('IWI:'));
  return line === undefined ? 0 : line.trim().split(/\s+/).slice(1).filter((x) => /^\d+$/.test(x)).reduce((a, x) => a + Number(x), 0);
}

/** syscall tracepoint programs other processes hold (they put every task on the slow path too) */
const ownPids = new Set<number>([process.pid]);
function foreignSyscallHooks(): number {
  try {
    const perf = JSON.parse(execFileSync('bpftool', ['perf', '-j'], { encoding: 'utf8' })) as { pid: number; tracepoint?: string }[];
    const links = JSON.parse(execFileSync('bpftool', ['link', '-j'], { encoding: 'utf8' })) as { type: string; tp_name?: string; pids?: { pid: number }[] }[];
    return perf.filter((p) => !ownPids.has(p.pid) && /^sys_(enter|exit)/.test(p.tracepoint ?? '')).length +
      links.filter((l) => /^sys_(enter|exit)$/.test(l.tp_name ?? '') && !(l.pids ?? []).some((p) => ownPids.has(p.pid))).length;
  } catch {
    return -1;
  }
}

interface Storm { sysUs: number; totalUs: number; wallUs: number; iwi: number; cpuUs: number; otherUs?: number }

/** the storm process (bench/storm-blocks.c): one block of N opens per request, so every variant is
 * measured in the same process, and this process stays free to give its ring consumer's batches back */
class Stormer {
  #lines: string[] = [];
  #waiting: ((l: string) => void) | undefined;
  readonly #p;
 constructor(bin: string, target: string, mode?: 'getppid') {
    this.#p = spawn(bin, mode === undefined ? [target] : [target, mode], { stdio: ['pipe', 'pipe', 'inherit'] });
    let buf = '';
    this.#p.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const l = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (this.#waiting !== undefined) {
          const w = this.#waiting;
          this.#waiting = undefined;
          w(l);
        } else {
          this.#lines.push(l);
        }
      }
    });
  }
  async block(n: number): Promise<Storm> {
    const iwi0 = irqWork();
    const cpu0 = process.cpuUsage();
    const line = await new Promise<string>((resolve) => {
      this.#waiting = resolve;
      this.#p.stdin!.write(`${n}\n`);
    });
    const cpu = process.cpuUsage(cpu0);
    const [cpuNs, wallNs, sysUs] = line.trim().split(/\s+/).map(Number);
    return { sysUs: sysUs! / n, totalUs: cpuNs! / 1e3 / n, wallUs: wallNs! / 1e3 / n, iwi: (irqWork() - iwi0) / n, cpuUs: (cpu.user + cpu.system) / n };
  }
  end(): void {
    this.#p.stdin!.end('0\n');
  }
}

function knob(native: NativeBinding, h: ObjectHandle, map: string, k: number, v: number): void {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(k);
  const val = Buffer.alloc(8);
  val.writeBigUInt64LE(BigInt(v));
  native.mapUpdate(h, map, key, val);
}
function counter(native: NativeBinding, h: ObjectHandle, k: number): number {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(k);
  return Number(native.mapLookup(h, 'counters', key)?.readBigUInt64LE(0) ?? 0n);
}

function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

async function main(): Promise<void> {
  const asked = process.argv.slice(4);
  const variants = (asked.length === 0 ? FLOOR : asked.flatMap((v) => (v === 'ring' ? RING : v === 'floor' ? FLOOR : [v])))
    .filter((v, i, all) => all.indexOf(v) === i);
  if (!variants.includes('none')) variants.unshift('none');
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-kfloor-'));
  const stormBin = path.join(work, 'storm-blocks');
  execFileSync('gcc', ['-O2', '-o', stormBin, path.join(REPO, 'bench', 'storm-blocks.c')]);
  const target = path.join(work, 'target');
  fs.writeFileSync(target, 'x');
  const stormer = new Stormer(stormBin, target);
  const other = process.env.OTHER === '1' ? new Stormer(stormBin, target, 'getppid') : undefined;
  const storm = async (_bin: string, _target: string): Promise<Storm> => {
    const s = await stormer.block(N);
    if (other !== undefined) s.otherUs = (await other.block(N)).totalUs;
    return s;
  };
  const floorObj = path.join(work, 'kernel-floor.bpf.o');
  execFileSync('clang', ['-target', 'bpf', '-D__TARGET_ARCH_x86', '-g', '-O2', '-Wall', `-I${path.join(REPO, 'build')}`,
    `-I${path.join(REPO, 'bpf')}`, '-c', path.join(REPO, 'bench', 'kernel-floor.bpf.c'), '-o', floorObj]);

  const native = loadBinding();
  const floor = native.openObject(floorObj);
  native.load(floor, false);
  knob(native, floor, 'knobs', 0, RING_RECORD);
  knob(native, floor, 'knobs', 1, RING_THRESHOLD);
  let ring: RingHandle | undefined;
  if (variants.some((v) => v.split('@')[0]! in RING_VARIANTS)) {
    ring = native.startRing(floor, 'ring', (_b, _u, slot) => { if (slot !== null) native.releaseSlot(ring!, slot); });
  }
  // rtev objects: loaded once each, the file_open syscall programs only, every pid filtered out
  const rtevObjects = new Map<string, { h: ObjectHandle; programs: [string, string][] }>();
  const rings: RingHandle[] = [];
  for (const v of variants.filter((x) => /^rtev(rec)?(=|$)/.test(x))) {
    const record = v.startsWith('rtevrec');
    const obj = v.includes('=') ? v.slice(v.indexOf('=') + 1) : path.join(REPO, 'build', 'rtev.bpf.o');
    const h = native.openObject(obj);
    native.setGlobal(h, 'cfg', encodeKernelConfig({ selfTgid: process.pid, filterPids: !record, cgroupFilter: 'off', recordFailedOpens: false,
      bulkRingBytes: 16 << 20, rareRingBytes: 4 << 20 }));
    const wanted = new Set(RTEV_FILE_OPEN.map(([p]) => p));
    for (const p of native.programs(h)) native.setAutoload(h, p.name, wanted.has(p.name));
    native.load(h, false);
    rtevObjects.set(v, { h, programs: RTEV_FILE_OPEN.filter(([p]) => native.programs(h).some((q) => q.name === p)) });
    if (record) {
      const r: RingHandle = native.startRing(h, 'events_bulk', (_b, _u, slot) => { if (slot !== null) native.releaseSlot(r, slot); });
      rings.push(r);
    }
  }

  const rows: { round: number; variant: string; s: Storm; lost?: number; foreign: number }[] = [];
  console.log(`kernel floor: N=${N} rounds=${ROUNDS} date=${new Date().toISOString()} kernel=${os.release()} load at start: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log('round\tvariant\tstorm_sys_us_per_open\tstorm_thread_cpu_us_per_open\tstorm_wall_us_per_open\tirq_work_per_open\tbench_cpu_us_per_open\tlost\tforeign_syscall_hooks\tgetppid_cpu_us_per_call');
  await storm(stormBin, target); // warm the page cache and the dentry
  for (let round = 1; round <= ROUNDS; round++) {
    const order = variants.map((_, i) => variants[(i + round - 1) % variants.length]!);
    for (const v of order) {
      let foreign = foreignSyscallHooks();
      let s: Storm;
      let lost: number | undefined;
      if (v.split('+').every((x) => x in FLOOR_PROGRAMS)) {
        const links = v.split('+').flatMap((x) => FLOOR_PROGRAMS[x]!).map((p) => native.attach(floor, p));
        s = await storm(stormBin, target);
        native.detachMany(floor, links);
      } else if (v.split('@')[0]! in RING_VARIANTS) {
        const [name, size] = v.split('@');
        const rv = RING_VARIANTS[name!]!;
        knob(native, floor, 'knobs', 0, size === undefined ? RING_RECORD : Number(size));
        knob(native, floor, 'knobs', 2, rv.policy);
        const lost0 = counter(native, floor, 1);
        const link = native.attach(floor, rv.program);
        s = await storm(stormBin, target);
        native.detach(floor, link);
        lost = counter(native, floor, 1) - lost0;
        await sleep(200); // the consumer drains what is left before the next variant
      } else if (rtevObjects.has(v)) {
        const { h, programs } = rtevObjects.get(v)!;
        const links = programs.map(([p, tp]) => (native.attachTracepoint !== undefined ? native.attachTracepoint(h, p, tp) : native.attach(h, p)));
        s = await storm(stormBin, target);
        native.detachMany(h, links);
      } else if (/^(collect|stdout)(=|@|$)/.test(v)) {
        const [head, obj] = v.split('=');
        const [kind, dir] = head!.split('@');
        const args = kind === 'collect' ? ['--pid', '1'] : ['--probes', 'file_open'];
        const rtev = spawn(process.execPath, [path.join(dir ?? REPO, 'bin', 'rtev'), 'collect', '--stdout', '--quiet', ...args],
          { stdio: ['ignore', fs.openSync('/dev/null', 'w'), 'inherit'], env: obj === undefined ? process.env : { ...process.env, RTEV_BPF_OBJECT: obj } });
        ownPids.add(rtev.pid!);
        const exited = new Promise((r) => rtev.on('exit', r));
        for (let i = 0; i < 300 && programStats(rtev.pid!).size === 0; i++) await sleep(50);
        await sleep(1500);
        s = await storm(stormBin, target);
        foreign = Math.max(foreign, foreignSyscallHooks());
        rtev.kill('SIGTERM');
        await exited;
        ownPids.delete(rtev.pid!);
      } else {
        throw new Error(`unknown variant ${v}`);
      }
      rows.push({ round, variant: v, s, lost, foreign: Math.max(foreign, foreignSyscallHooks()) });
      console.log([round, v, s.sysUs.toFixed(3), s.totalUs.toFixed(3), s.wallUs.toFixed(3), s.iwi.toFixed(4), s.cpuUs.toFixed(3), lost ?? '-', foreign,
        s.otherUs?.toFixed(3) ?? '-'].join('\t'));
    }
  }
  stormer.end();
  other?.end();
  if (ring !== undefined) native.stopRing(ring);
  for (const r of rings) native.stopRing(r);

  console.log(`load at end: ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // added: the median over rounds of (variant - that round's none). Both the block's system time
  // (getrusage, split from user time by tick samples: coarse for short blocks) and its thread CPU time
  // (CLOCK_THREAD_CPUTIME_ID: exact; the storm's user time is a constant few hundredths of it)
  const signed = (x: number): string => (x >= 0 ? '+' : '') + x.toFixed(3);
  // another process's syscall-tracepoint programs run on this storm's opens too (and set the slow
  // path for every task): rounds where any sample saw one are left out of the summary
  const dirty = new Set(rows.filter((r) => r.foreign !== 0).map((r) => r.round));
  const clean = rows.filter((r) => !dirty.has(r.round));
  console.log(`summary over ${ROUNDS - dirty.size} of ${ROUNDS} rounds (left out: rounds where another process held syscall tracepoint programs)`);
  rows.splice(0, rows.length, ...clean);
  console.log('variant\tmedian_sys_us_per_open\tadded_sys\tmedian_thread_cpu_us_per_open\tadded_cpu\tmedian_irq_work_per_open\tmedian_bench_cpu_us_per_open\tadded_cpu_per_getppid');
  for (const v of variants) {
    const mine = rows.filter((r) => r.variant === v);
    const base = (r: (typeof rows)[number]) => rows.find((b) => b.round === r.round && b.variant === 'none')!.s;
    const addedSys = median(mine.map((r) => r.s.sysUs - base(r).sysUs));
    const addedCpu = median(mine.map((r) => r.s.totalUs - base(r).totalUs));
    const addedOther = median(mine.map((r) => (r.s.otherUs ?? NaN) - (base(r).otherUs ?? NaN)));
    console.log([v, median(mine.map((r) => r.s.sysUs)).toFixed(3), v === 'none' ? '-' : signed(addedSys), median(mine.map((r) => r.s.totalUs)).toFixed(3),
      v === 'none' ? '-' : signed(addedCpu), median(mine.map((r) => r.s.iwi)).toFixed(4), median(mine.map((r) => r.s.cpuUs)).toFixed(3),
      Number.isNaN(addedOther) || v === 'none' ? '-' : signed(addedOther)].join('\t'));
  }
}

void main().catch((err) => { console.error(err); process.exit(1); });

/**
 * Per-call cost of the function_call entry probe, in one run: test/progs/func/calls.c calls
 * vuln_func N times (it times its own loop), 1. without probes, 2. with an empty uprobe,
 * 3. with the function probe without the stack walk (rtev_function_entry_nostack),
 * 4. with the function probe as rtev collect attaches it (handle_function_entry: *sp plus a
 * frame-pointer walk of 5 frames here). The records are consumed from the ring while the loop
 * runs (the ring-full counter is printed: it must be 0 for the numbers to mean anything).
 * Run as root after `make build`:  node dist/bench/function.bench.js [N] [ROUNDS]
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COUNTER_STRIDE, Counter } from '../src/decode/layout';
import { loadBinding } from '../src/ingest/native';
import { encodeKernelConfig } from '../src/ingest/session';
import { resolveTargets } from '../src/symbolize';

const REPO = path.resolve(__dirname, '..', '..');
const N = Number(process.argv[2] ?? 200_000);
const ROUNDS = Number(process.argv[3] ?? 5);
const PROBE_FUNCTION_CALL = 5;

function runLoop(binary: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, [String(N)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    child.on('error', reject);
    child.on('exit', (code) => {
      const m = /ns=(\d+)/.exec(out);
      if (code !== 0 || m === null) reject(new Error(`loop failed (${code}): ${out}`));
      else resolve(Number(m[1]) / 1e3 / N); // µs per call
    });
  });
}

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-fnbench-'));
  const binary = path.join(dir, 'calls');
  execFileSync('gcc', ['-O1', '-g', '-fno-omit-frame-pointer', '-fPIE', '-pie', '-o', binary, path.join(REPO, 'test', 'progs', 'func', 'calls.c')]);
  const { targets } = await resolveTargets([`${binary}:vuln_func`]);
  const target = targets[0]!;

  const native = loadBinding();
  const h = native.openObject(path.join(REPO, 'build', 'rtev.bpf.o'));
  native.setGlobal(h, 'cfg', encodeKernelConfig({
    selfTgid: process.pid, filterPids: false, cgroupFilter: 'off', recordFailedOpens: false, bulkRingBytes: 16 << 20, rareRingBytes: 4 << 20,
  }));
  const programs = ['rtev_empty_uprobe', 'rtev_function_entry_nostack', 'handle_function_entry'];
  for (const p of native.programs(h)) native.setAutoload(h, p.name, programs.includes(p.name));
  native.load(h, false);
  let bytes = 0;
  let finish: () => void = () => {};
  const drained = new Promise<void>((r) => { finish = r; });
  const ring = native.startRing(h, 'events_rare', (batch, used) => {
    if (batch === null || used === null) finish();
    else bytes += used;
  });
  const counter = (c: number): bigint => {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(PROBE_FUNCTION_CALL * COUNTER_STRIDE + c);
    const v = native.mapLookup(h, 'stats', key);
    let sum = 0n;
    if (v !== null) for (let i = 0; i + 8 <= v.length; i += 8) sum += v.readBigUInt64LE(i);
    return sum;
  };

  const variants: Array<[string, string | undefined]> = [
    ['baseline', undefined], ['empty_uprobe', 'rtev_empty_uprobe'],
    ['function_probe_no_stack', 'rtev_function_entry_nostack'], ['function_probe_with_stack', 'handle_function_entry'],
  ];
  const best: Record<string, number> = {};
  await runLoop(binary); // warm-up
  // interleave the variants, keep each one's best round (least disturbed by the VM)
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, program] of variants) {
      const link = program === undefined ? undefined : native.attachUprobe(h, program, false, -1, target.openPath, target.fileOffset, 0n);
      try {
        const us = await runLoop(binary);
        best[name] = Math.min(best[name] ?? Infinity, us);
      } finally {
        if (link !== undefined) native.detach(h, link);
      }
    }
  }
  const submitted = counter(Counter.SUBMITTED);
  const ringFull = counter(Counter.RING_FULL);
  native.stopRing(ring);
  await drained;
  const base = best['baseline']!;
  const res = {
    calls_per_run: N,
    rounds: ROUNDS,
    cpu: os.cpus()[0]?.model,
    kernel: os.release(),
    us_per_call: Object.fromEntries(Object.entries(best).map(([k, v]) => [k, +v.toFixed(3)])),
    probe_cost_us_per_call: Object.fromEntries(Object.entries(best).filter(([k]) => k !== 'baseline').map(([k, v]) => [k, +(v - base).toFixed(3)])),
    records_submitted: Number(submitted),
    ring_full: Number(ringFull),
    ring_bytes_consumed: bytes,
  };
  console.log(JSON.stringify(res, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { FileOpen, Hdr, StrFlag } from '../../src/decode/layout';
import { loadBinding, type ObjectHandle, type RingHandle } from '../../src/ingest/native';
import { encodeKernelConfig } from '../../src/ingest/session';
import { compileC, REPO, rootOrSkip, tempDir } from '../helpers/collector';

/**
 * The kernel side's differential test: the main object's path walk (loads through bpf_rdonly_cast,
 * no helper calls: bpf/path.h) against the reference walk of the compat object (RTEV_TRUSTED_WALK:
 * bpf_probe_read_kernel per hop and name), both loaded at once and attached to the same four
 * sys_exit tracepoints, so every open of test/progs/hostile_opens.c is recorded by both programs:
 * the records must be byte-identical but for ts_ns. The workload's opens are the hostile ones:
 * names of every length around the 8-byte words up to 255 bytes, invalid UTF-8 and control bytes,
 * paths around 4 KiB and deeper than 64 components, deleted and O_TMPFILE files, a deleted working
 * directory, mount crossings (stacked, nested, bind, lazily unmounted), a chroot with a working
 * directory and a descriptor outside it, pipe, memfd, /dev, /proc, /sys; failed opens too.
 */

const OPEN_PROGRAM = 'handle_openat_exit';
const TRACEPOINTS = ['syscalls/sys_exit_openat', 'syscalls/sys_exit_openat2', 'syscalls/sys_exit_open', 'syscalls/sys_exit_creat'];
const COMM = 'hostile_opens';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Side { h: ObjectHandle; ring: RingHandle; records: Buffer[]; done: Promise<void>; links: number[] }

function open(native: ReturnType<typeof loadBinding>, object: string): Side {
  const h = native.openObject(object);
  native.setGlobal(h, 'cfg', encodeKernelConfig({ selfTgid: process.pid, filterPids: false, cgroupFilter: 'off', recordFailedOpens: true,
    bulkRingBytes: 16 << 20, rareRingBytes: 4 << 20 }));
  for (const p of native.programs(h)) native.setAutoload(h, p.name, p.name === OPEN_PROGRAM);
  native.load(h, false);
  const records: Buffer[] = [];
  let finished!: () => void;
  const done = new Promise<void>((r) => { finished = r; });
  const ring: RingHandle = native.startRing(h, 'events_bulk', (batch, used, slot) => {
    if (batch === null || used === null) {
      finished();
      return;
    }
    for (let off = 0; off + 8 <= used;) {
      const len = batch.readUInt32LE(off);
      const rec = batch.subarray(off + 8, off + 8 + len);
      const comm = rec.subarray(Hdr.comm, Hdr.comm + Hdr.commLen);
      if (comm.subarray(0, comm.indexOf(0) < 0 ? comm.length : comm.indexOf(0)).toString('latin1') === COMM) records.push(Buffer.from(rec));
      off += 8 + ((len + 7) & ~7);
    }
    if (slot !== null) native.releaseSlot(ring, slot);
  });
  return { h, ring, records, done, links: [] };
}

function describe(rec: Buffer): string {
  const pathLen = rec.readUInt16LE(FileOpen.path_len);
  const dirLen = rec.readUInt16LE(FileOpen.dir_len);
  const p = rec.subarray(FileOpen.SIZE, FileOpen.SIZE + pathLen);
  const d = rec.subarray(FileOpen.SIZE + pathLen, FileOpen.SIZE + pathLen + dirLen);
  return `ret=${rec.readBigInt64LE(FileOpen.ret)} flags=0x${rec.readUInt16LE(FileOpen.path_flags).toString(16)} path(${pathLen})=${JSON.stringify(p.toString('latin1').slice(-80))} dir(${dirLen})=${JSON.stringify(d.toString('latin1').slice(-60))}`;
}

test('the main object\'s path walk gives the reference walk\'s bytes on hostile paths', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const main = path.join(REPO, 'build', 'rtev.bpf.o');
  const reference = path.join(REPO, 'build', 'rtev-compat.bpf.o');
  assert.ok(fs.existsSync(main) && fs.existsSync(reference), 'make bpf builds both objects');
  const bin = compileC('hostile_opens.c');
  assert.equal(path.basename(bin), COMM);
  const dir = fs.realpathSync(tempDir('rtev-walk-'));
  const native = loadBinding();
  const sides = [open(native, main), open(native, reference)];
  try {
    for (const s of sides) s.links = TRACEPOINTS.map((tp) => native.attachTracepoint!(s.h, OPEN_PROGRAM, tp));
    const run = spawnSync(bin, [dir], { encoding: 'utf8' });
    assert.equal(run.status, 0, `${run.stderr}`);
    await sleep(300);
  } finally {
    for (const s of sides) native.detachMany(s.h, s.links);
    for (const s of sides) native.stopRing(s.ring);
    await Promise.all(sides.map((s) => s.done));
  }
  const [fast, ref] = sides.map((s) => s.records);
  // no lost records on either side (a lost one would misalign the comparison)
  for (const s of sides) {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(2); // PROBE_FILE_OPEN * COUNTER_STRIDE + RING_FULL
    const perCpu = native.mapLookup(s.h, 'stats', key);
    if (perCpu !== null) for (let i = 0; i + 8 <= perCpu.length; i += 8) assert.equal(perCpu.readBigUInt64LE(i), 0n, 'ring full');
  }
  assert.ok(ref!.length > 200, `the workload's opens were recorded (${ref!.length})`);
  assert.equal(fast!.length, ref!.length, 'as many records from each walk');
  for (let i = 0; i < ref!.length; i++) {
    const a = Buffer.from(fast![i]!);
    const b = Buffer.from(ref![i]!);
    a.fill(0, Hdr.ts_ns, Hdr.ts_ns + 8);
    b.fill(0, Hdr.ts_ns, Hdr.ts_ns + 8);
    if (!a.equals(b)) assert.fail(`record ${i} differs:\n  main:      ${describe(a)}\n  reference: ${describe(b)}`);
  }
  // the workload reached the cases it is for (else identical records would prove little)
  const flags = ref!.map((r) => r.readUInt16LE(FileOpen.path_flags));
  const paths = ref!.map((r) => r.subarray(FileOpen.SIZE, FileOpen.SIZE + r.readUInt16LE(FileOpen.path_len)));
  const canonical = paths.filter((_, i) => (flags[i]! & StrFlag.PATH_CANONICAL) !== 0);
  assert.ok(canonical.some((p) => p.length === 4095), 'a canonical path of 4095 bytes (the longest)');
  assert.ok(canonical.some((p) => p.equals(Buffer.from(`${dir}/n/${'\xff\xfe'}`, 'latin1'))), 'invalid UTF-8, canonical');
  assert.ok(canonical.some((p) => p.equals(Buffer.from(`${dir}/n/${'v'.repeat(255)}`, 'latin1'))), 'a 255-byte name');
  assert.ok(canonical.some((p) => p.toString('latin1') === `${dir}/m1/m2/f`), 'two mount crossings');
  assert.ok(canonical.some((p) => p.toString('latin1') === '/etc/f'), 'inside a chroot');
  assert.ok(flags.some((f) => (f & StrFlag.DIR_INCOMPLETE) !== 0), 'a directory deeper than the walk follows');
  assert.ok(flags.some((f, i) => (f & StrFlag.PATH_CANONICAL) === 0 && paths[i]!.toString('latin1').startsWith('/proc/self/fd/')), 'a deleted file: the path as passed');
  for (let len = 1; len <= 26; len++) {
    const name = String.fromCharCode(97 + (len % 26)).repeat(len);
    assert.ok(canonical.some((p) => p.toString('latin1') === `${dir}/n/${name}`), `a ${len}-byte name, canonical`);
  }
});

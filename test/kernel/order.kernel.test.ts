import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RTEV, rootOrSkip, tempDir } from '../helpers/collector';

/**
 * Issue 13 item 10: execs (rare ring) and opens (bulk ring) interleave; the output must be in
 * ts_ns order: across the --stdout stream, within each chunk of an evidence directory, and in
 * `rtev query` output. Run with the fast path (default) and with RTEV_FAST_PATH=0 (the reference).
 * The window is 1 s, not the default 250 ms: on a loaded CI machine (load 14 on 2 cores was seen)
 * the consumer threads and the event loop run late by hundreds of ms, past which a record is
 * written out of order and counted (docs/format.md, "Record order"); test/unit/order.test.ts
 * holds the default bounds to their rules with a scripted clock. Even at 1 s about one run in 16
 * under load wrote a few records late: so the test does not count on timing. Every record that is
 * out of order in the output (below the newest before it) must be one the summary line counts as
 * written out of order, exactly, and such records stay rare (at most 1 in LATE_RATIO; arrival
 * order, --order-window 0, gave 217 of 965 here, execs behind the opens).
 */
const WINDOW = ['--order-window', '1s'];
const LATE_RATIO = 20;

// each round: an exec (a new process) and opens, so execs fall between opens in time
const SCRIPT = 'i=0; while [ $i -lt 40 ]; do /bin/cat /etc/hostname /etc/passwd >/dev/null; /bin/true; i=$((i+1)); done';

function tsOf(line: string): bigint {
  const m = /"ts_ns":(\d+)/.exec(line.slice(line.lastIndexOf('"ts_ns":')));
  assert.ok(m !== null, line);
  return BigInt(m[1]!);
}

/** firstInversion: the index of the first line whose ts_ns is below the previous one's, or -1 */
function firstInversion(lines: string[]): number {
  for (let i = 1; i < lines.length; i++) if (tsOf(lines[i]!) < tsOf(lines[i - 1]!)) return i;
  return -1;
}

/** outOfOrder: the lines whose ts_ns is below the newest one before them (what the merge counts as late) */
function outOfOrder(lines: string[]): number[] {
  const at: number[] = [];
  let newest = -1n;
  lines.forEach((l, i) => {
    const ts = tsOf(l);
    if (ts < newest) at.push(i);
    else newest = ts;
  });
  return at;
}

/** lateOf: "N written out of ts_ns order" of the summary line (absent: none) */
function lateOf(stderr: string): number {
  const summary = stderr.split('\n').filter((l) => /^rtev: \d+ records /.test(l));
  assert.equal(summary.length, 1, `one summary line: ${stderr}`);
  const m = /; (?:.*, )?(\d+) written out of ts_ns order/.exec(summary[0]!);
  return m === null ? 0 : Number(m[1]);
}

/**
 * assertOrdered: the output is in ts_ns order but for the records the merge counted as late
 * (exactly those), which are rare
 */
function assertOrdered(lines: string[], stderr: string, what: string): void {
  const late = outOfOrder(lines);
  const counted = lateOf(stderr);
  const show = late.slice(0, 3).map((i) => `line ${i + 1}: ${lines[i]!.slice(0, 160)}`).join('; ');
  assert.equal(late.length, counted, `${what}: ${late.length} records out of ts_ns order, the summary counts ${counted} (${show})`);
  assert.ok(late.length * LATE_RATIO <= lines.length, `${what}: ${late.length} of ${lines.length} records out of ts_ns order (${show})`);
  if (late.length > 0) console.log(`${what}: ${late.length} of ${lines.length} records written late, counted (${show})`);
}

function rtev(args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [RTEV, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 256 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** interleaved: the execs are not all after the opens (the run really mixes both rings) */
function assertInterleaved(lines: string[]): void {
  const types = lines.map((l) => (l.includes('"type":"process_exec"') ? 'x' : l.includes('"type":"file_open"') ? 'o' : '?'));
  const execs = types.filter((t) => t === 'x').length;
  assert.ok(execs >= 40, `execs recorded: ${execs}`);
  const lastOpen = types.lastIndexOf('o');
  const execsBeforeLastOpen = types.slice(0, lastOpen).filter((t) => t === 'x').length;
  assert.ok(execsBeforeLastOpen >= execs / 2, `execs interleave with opens in ts order (${execsBeforeLastOpen} of ${execs} before the last open)`);
}

for (const fastPath of ['1', '0']) {
  test(`--stdout: execs and opens in ts_ns order (RTEV_FAST_PATH=${fastPath})`, { timeout: 120_000 }, async (t) => {
    if (!rootOrSkip(t)) return;
    const r = rtev(['collect', '--stdout', ...WINDOW, '--probes', 'file_open,process_exec', '--', 'sh', '-c', SCRIPT], { RTEV_FAST_PATH: fastPath });
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'));
    assertOrdered(lines, r.stderr, '--stdout');
    assertInterleaved(lines);
  });
}

test('--out: each chunk in ts_ns order, and rtev query output too', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = path.join(tempDir(), 'ev');
  // small chunks: the run spans several
  const r = rtev(['collect', '--out', dir, ...WINDOW, '--chunk-size', '16K', '--probes', 'file_open,process_exec', '--', 'sh', '-c', SCRIPT]);
  assert.equal(r.status, 0, r.stderr);
  const chunks = fs.readdirSync(dir).filter((f) => /^chunk-\d+\.ndjson$/.test(f)).sort();
  assert.ok(chunks.length >= 2, `several chunks: ${chunks.join(' ')}`);
  const all: string[] = [];
  for (const c of chunks) all.push(...fs.readFileSync(path.join(dir, c), 'utf8').split('\n').filter((l) => l.startsWith('{')));
  // in written order, chunk after chunk: in ts_ns order but for the records counted late
  assertOrdered(all, r.stderr, 'chunks');
  assertInterleaved(all);
  const q = rtev(['query', dir, '--format', 'ndjson']);
  assert.equal(q.status, 0, q.stderr);
  const out = q.stdout.split('\n').filter((l) => l.startsWith('{'));
  assert.equal(out.length, all.length);
  assert.equal(firstInversion(out), -1, 'rtev query output is in ts_ns order');
});

test('--out --file-open-mode first-seen: chunks in ts_ns order too, each key once per chunk, verified', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = path.join(tempDir(), 'ev');
  // sh itself opens /etc/passwd each round: one per chunk is written, the others deduplicated
  const script = 'i=0; while [ $i -lt 40 ]; do /bin/cat /etc/hostname >/dev/null; : </etc/passwd; /bin/true; i=$((i+1)); done';
  const r = rtev(['collect', '--out', dir, ...WINDOW, '--chunk-size', '16K', '--file-open-mode', 'first-seen', '--probes', 'file_open,process_exec', '--', 'sh', '-c', script]);
  assert.equal(r.status, 0, r.stderr);
  const chunks = fs.readdirSync(dir).filter((f) => /^chunk-\d+\.ndjson$/.test(f)).sort();
  assert.ok(chunks.length >= 2, `several chunks: ${chunks.join(' ')}`);
  const all: string[] = [];
  let deduplicated = 0;
  for (const c of chunks) {
    const lines = fs.readFileSync(path.join(dir, c), 'utf8').split('\n').filter((l) => l.startsWith('{'));
    const keys = lines.map((l) => JSON.parse(l)).filter((x) => x.event.type === 'file_open').map((x) => `${x.cgroup_id} ${x.pid} ${x.event.access} ${x.event.path}`);
    assert.equal(new Set(keys).size, keys.length, `${c}: a (cgroup, pid, access, path) twice`);
    const env = JSON.parse(fs.readFileSync(path.join(dir, c.replace('.ndjson', '.dsse.json')), 'utf8'));
    deduplicated += JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')).predicate.ledger.probes.file_open.user.deduplicated;
    all.push(...lines);
  }
  assert.ok(deduplicated >= 20, `sh's repeated opens were deduplicated: ${deduplicated}`);
  assertOrdered(all, r.stderr, 'first-seen chunks');
  assertInterleaved(all);
  const v = spawnSync(process.execPath, [RTEV, 'verify', dir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RTEV, rootOrSkip, tempDir } from '../helpers/collector';

/** A running `rtev collect` whose output the test reads (or does not read) as it comes. */
interface Live {
  child: ChildProcessWithoutNullStreams;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startRtev(args: string[], opts: { readStdout?: boolean } = {}): Live {
  const child = spawn(process.execPath, [RTEV, 'collect', ...args]);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  if (opts.readStdout !== false) child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => Buffer.concat(out).toString('utf8'), stderr: () => Buffer.concat(err).toString('utf8'), exited };
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

test('--stdout is live: a record reaches the reader while the command still runs', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const marker = path.join(dir, 'live-marker');
  fs.writeFileSync(marker, 'x');
  // the command opens the marker, sleeps, then leaves a mark: the record must arrive during the sleep
  const rtev = startRtev(['--stdout', '--probes', 'file_open', '--', 'sh', '-c', `cat ${marker} >/dev/null; sleep 6; touch ${dir}/done`]);
  const seen = await until(() => rtev.stdout().includes(marker), 20_000);
  const commandDone = fs.existsSync(path.join(dir, 'done'));
  rtev.child.kill('SIGTERM');
  await rtev.exited;
  assert.ok(seen, `the marker record never arrived: ${rtev.stderr()}`);
  assert.equal(commandDone, false, 'the record arrived while the command still ran, not when it ended');
});

test('--stdout -- CMD: standard output carries whole records only; the command\'s output goes to stderr or --command-stdout', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const script = 'echo X-from-command; printf \'{"fake":1}\\n\'; i=0; while [ $i -lt 300 ]; do echo "busy line $i"; cat /etc/hostname >/dev/null; i=$((i+1)); done';
  const rtev = startRtev(['--stdout', '--probes', 'file_open,process_exec', '--', 'sh', '-c', script]);
  const { code } = await rtev.exited;
  assert.equal(code, 0, rtev.stderr());
  const lines = rtev.stdout().split('\n');
  assert.equal(lines.pop(), '', 'the output ends with a whole line');
  assert.ok(lines.length > 300, `${lines.length} records`);
  for (const l of lines) {
    const r = JSON.parse(l) as { ts_ns?: unknown; event?: unknown };
    assert.ok(r.ts_ns !== undefined && r.event !== undefined, `not a record: ${l}`);
  }
  assert.match(rtev.stderr(), /X-from-command/);
  assert.match(rtev.stderr(), /\{"fake":1\}/);

  const file = path.join(tempDir(), 'cmd.out');
  const second = startRtev(['--stdout', '--probes', 'process_exec', '--command-stdout', file, '--', 'sh', '-c', 'echo to-the-file']);
  assert.equal((await second.exited).code, 0, second.stderr());
  assert.equal(fs.readFileSync(file, 'utf8'), 'to-the-file\n');
  assert.ok(!second.stdout().includes('to-the-file') && !second.stderr().includes('to-the-file'));
});

test('a stalled reader does not block SIGTERM: shutdown is bounded and unwritten records are counted as lost', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  // nobody reads rtev's stdout: the pipe fills within milliseconds under this load
  const dir = tempDir();
  const rtev = startRtev(['--stdout', '--probes', 'file_open', '--', 'sh', '-c', `touch ${dir}/started; while :; do : </etc/hostname; done`], { readStdout: false });
  assert.ok(await until(() => fs.existsSync(path.join(dir, 'started')), 30_000), rtev.stderr());
  await new Promise((r) => setTimeout(r, 2000));
  rtev.child.kill('SIGTERM');
  const result = await Promise.race([rtev.exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 60_000))]);
  if (result === 'hung') rtev.child.kill('SIGKILL');
  assert.notEqual(result, 'hung', `rtev ignored SIGTERM with a stalled reader: ${rtev.stderr()}`);
  assert.match(rtev.stderr(), /records lost \(file_open \d+\): .*\d+ because the reader of standard output did not keep up/);
});

test('SIGHUP stops like SIGTERM: the chain is sealed and the command is signalled and reaped', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = path.join(tempDir(), 'ev');
  const rtev = startRtev(['--out', dir, '--probes', 'process_exec', '--', 'sleep', '30']);
  let sleeper: number | undefined;
  await until(() => {
    const children = spawnSync('pgrep', ['-P', String(rtev.child.pid)], { encoding: 'utf8' }).stdout.trim().split('\n').filter((s) => s !== '');
    sleeper = children.map(Number).find((p) => fs.readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sleep');
    return sleeper !== undefined;
  }, 15_000);
  assert.ok(sleeper !== undefined, `the observed sleep never started: ${rtev.stderr()}`);
  rtev.child.kill('SIGHUP');
  const { code, signal } = await rtev.exited;
  assert.equal(signal, null, `rtev died of ${signal}: ${rtev.stderr()}`);
  assert.equal(code, 129, 'the exit status of the command, killed by SIGHUP');
  assert.equal(alive(sleeper), false, 'the observed command is not orphaned');
  const verify = spawnSync(process.execPath, [RTEV, 'verify', dir], { encoding: 'utf8' });
  assert.equal(verify.status, 0, verify.stdout + verify.stderr);
});

test('a command that ignores SIGTERM is killed after the grace period, never orphaned', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const rtev = startRtev(['--out', path.join(dir, 'ev'), '--probes', 'process_exec', '--', 'sh', '-c', `trap '' TERM HUP INT; echo $$ > ${dir}/pid; while :; do sleep 0.1; done`]);
  await until(() => fs.existsSync(path.join(dir, 'pid')) && fs.readFileSync(path.join(dir, 'pid'), 'utf8').endsWith('\n'), 15_000);
  const pid = Number(fs.readFileSync(path.join(dir, 'pid'), 'utf8'));
  rtev.child.kill('SIGTERM');
  const { code } = await rtev.exited;
  assert.equal(code, 137, `killed by SIGKILL after the grace period: ${rtev.stderr()}`);
  assert.equal(alive(pid), false);
});

test('--fail-on-loss: records lost to a full ring give exit 5 and a warning with the fix', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const rtev = startRtev(['--out', path.join(dir, 'ev'), '--probes', 'file_open', '--ring-size', '4096', '--fail-on-loss', '--',
    'sh', '-c', 'i=0; while [ $i -lt 20000 ]; do : </etc/hostname; i=$((i+1)); done']);
  const { code } = await rtev.exited;
  const lost = /rtev: warning: (\d+) records lost \(file_open \d+\): \d+ because a kernel ring was full; try a bigger ring \(--ring-size 16K\)/.exec(rtev.stderr());
  assert.ok(lost, rtev.stderr());
  assert.equal(code, 5);
  const clean = startRtev(['--out', path.join(dir, 'ev2'), '--probes', 'process_exec', '--fail-on-loss', '--', 'true']);
  assert.equal((await clean.exited).code, 0, clean.stderr());
});

test('SIGKILL under --stdout loses at most the last flush interval: records older than that were written', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const marker = path.join(dir, 'kill-marker');
  fs.writeFileSync(marker, 'x');
  const rtev = startRtev(['--stdout', '--flush-interval', '100ms', '--probes', 'file_open', '--', 'sh', '-c', `cat ${marker} >/dev/null; touch ${dir}/opened; sleep 30`]);
  await until(() => fs.existsSync(path.join(dir, 'opened')), 15_000);
  // well past the flush interval (and the ring's 10 ms poll): the record must be out by now
  await new Promise((r) => setTimeout(r, 1500));
  rtev.child.kill('SIGKILL');
  await rtev.exited;
  spawnSync('pkill', ['-KILL', '-f', `${dir}/opened; sleep 30`]);
  assert.ok(rtev.stdout().includes(marker), 'the record left before the kill was written');
});

test('SIGKILL under --out loses at most the last second: older records are in the unsealed chunk file', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const ev = path.join(dir, 'ev');
  const marker = path.join(dir, 'kill-marker-out');
  fs.writeFileSync(marker, 'x');
  const rtev = startRtev(['--out', ev, '--probes', 'file_open', '--', 'sh', '-c', `cat ${marker} >/dev/null; touch ${dir}/opened; sleep 30`]);
  await until(() => fs.existsSync(path.join(dir, 'opened')), 15_000);
  await new Promise((r) => setTimeout(r, 2500));
  rtev.child.kill('SIGKILL');
  await rtev.exited;
  spawnSync('pkill', ['-KILL', '-f', `${dir}/opened; sleep 30`]);
  const partial = fs.readdirSync(ev).filter((f) => f.endsWith('.ndjson.partial'));
  assert.equal(partial.length, 1, fs.readdirSync(ev).join(' '));
  assert.ok(fs.readFileSync(path.join(ev, partial[0]!), 'utf8').includes(marker), 'the record was written to the unsealed chunk');
});

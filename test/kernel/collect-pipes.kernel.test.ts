import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RTEV, rootOrSkip, tempDir } from '../helpers/collector';

/**
 * `rtev collect --stdout | head`: the reader goes away. rtev must stop quietly (nothing on
 * stderr but what the command itself wrote) with 141, the status `rtev query | head` gives
 * (docs/cli.md, "Pipes"), and an observed command must be signalled and reaped, not orphaned.
 */

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

/** pipeline runs `rtev collect ARGS | head -N` in bash and gives both statuses and rtev's stderr. */
function pipeline(args: string[], lines: number, dir: string): { rtev: number; head: number; stderr: string; out: string } {
  const quoted = args.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  // a background opener, so a system-wide run has records to write even on a quiet host
  const script = `(for i in $(seq 600); do cat /etc/hostname >/dev/null; sleep 0.05; done) & bg=$!; '${process.execPath}' '${RTEV}' collect ${quoted} 2>'${dir}/stderr' | head -${lines} >'${dir}/out'; st="\${PIPESTATUS[0]} \${PIPESTATUS[1]}"; kill $bg 2>/dev/null; wait $bg 2>/dev/null; echo "$st"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.error, undefined, `bash failed: ${String(r.error)}`);
  const [rtev, head] = r.stdout.trim().split(' ').map(Number);
  return { rtev: rtev!, head: head!, stderr: fs.readFileSync(path.join(dir, 'stderr'), 'utf8'), out: fs.readFileSync(path.join(dir, 'out'), 'utf8') };
}

test('collect --stdout | head -1 (system-wide) ends quietly with 141', { timeout: 90_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const r = pipeline(['--stdout', '--probes', 'file_open,process_exec', '--duration', '30s'], 1, dir);
  assert.equal(r.out.split('\n').filter((l) => l !== '').length, 1, 'head got its line');
  assert.ok(r.out.startsWith('{"'), r.out);
  assert.equal(r.rtev, 141, `rtev status (128 + SIGPIPE, as rtev query | head): stderr ${r.stderr}`);
  assert.equal(r.stderr, '', 'nothing is printed when the reader goes away');
});

test('collect --stdout -- CMD | head ends quietly with 141 and the command is reaped', { timeout: 90_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const pidFile = path.join(dir, 'pid');
  // a busy command: it keeps making records, so rtev writes into the closed pipe soon
  const r = pipeline(['--stdout', '--probes', 'file_open,process_exec', '--', 'sh', '-c',
    `echo $$ > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; while :; do cat /etc/hostname >/dev/null; done`], 3, dir);
  assert.equal(r.out.split('\n').filter((l) => l !== '').length, 3, 'head got its lines');
  assert.equal(r.rtev, 141, `rtev status: stderr ${r.stderr}`);
  assert.equal(r.stderr, '', 'nothing is printed when the reader goes away');
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  assert.ok(pid > 0);
  assert.equal(alive(pid), false, 'the observed command was signalled and reaped, not orphaned');
  // its children (the cat loop) are gone too: nothing left in the process table naming the pid file
  const left = spawnSync('pgrep', ['-f', pidFile], { encoding: 'utf8' }).stdout.trim();
  assert.equal(left, '', `processes of the observed command still run: ${left}`);
});

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RTEV, rootOrSkip, tempDir } from '../helpers/collector';
import { ensureImage } from '../helpers/images';

/**
 * Issue 13 item 8: `rtev collect --container NAME` started before the container. The container
 * execs sh, which reads a marker file at once; that exec and that first read must be in the
 * output (an allow list refreshed every second lost them). The kernel denies the cgroups known
 * not to match; the new container's cgroup reaches user space, whose records wait for its
 * attribution, then are kept. Host records are not written (dropped as filtered, counted).
 */

const IMAGE = 'localhost/bbox:1';
const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

interface Rec {
  cgroup_id?: number;
  container_id?: string;
  comm: string;
  event: { type: string; path?: string; filename?: string; argv0?: string };
}

/** linkCount: BPF links the process holds (its probes are attached once there are some). */
function linkCount(pid: number): number {
  let n = 0;
  try {
    for (const fd of fs.readdirSync(`/proc/${pid}/fdinfo`)) {
      try {
        if (fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').includes('link_type:')) n++;
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // not started, or gone
  }
  return n;
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs;) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

test('--container NAME started after the collector: its first exec and first read are recorded', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  ensureImage(IMAGE);
  const name = `rtev-late-${process.pid}`;
  const dir = tempDir();
  const marker = `marker-${process.pid}-${Date.now()}`;
  fs.writeFileSync(path.join(dir, marker), 'x\n');
  const rtev = spawn(process.execPath, [RTEV, 'collect', '--stdout', '--verbose', '--probes', 'file_open,process_exec', '--container', name], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  rtev.stdout.on('data', (c: Buffer) => (out += c.toString()));
  rtev.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => rtev.once('exit', r));
  try {
    // the probes are attached (events from now on are in the ring or counted), and no container matches yet
    assert.ok(await until(() => linkCount(rtev.pid!) >= 2, 60_000), `rtev never attached its probes: ${err}`);
    assert.match(err, new RegExp(`no running container matches '${name}' yet`));
    await new Promise((r) => setTimeout(r, 500));
    // the container's first command: sh, which reads the marker at once
    const cid = sh('podman', ['--runtime', '/usr/sbin/runc', 'run', '-d', '--name', name, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000',
      '--network', 'none', '-v', `${dir}:/m:ro`, IMAGE, '/bin/sh', '-c', `read x < /m/${marker}; sleep 2`]);
    sh('podman', ['wait', name]);
    // every record of the container is written within the hold bound (2 s) plus the flush interval
    await until(() => out.includes(marker), 10_000);
    rtev.kill('SIGTERM');
    assert.equal(await exited, 0, err);
    const records = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Rec);
    const mine = records.filter((r) => r.container_id === `podman://${cid}`);
    const exec = mine.find((r) => r.event.type === 'process_exec' && /(^|\/)sh$/.test(r.event.filename ?? ''));
    assert.ok(exec !== undefined, `the container's first exec (/bin/sh) is missing; its records: ${JSON.stringify(mine.slice(0, 5))}\n${err}`);
    const read = mine.find((r) => r.event.type === 'file_open' && r.event.path !== undefined && r.event.path.endsWith(marker));
    assert.ok(read !== undefined, `the container's first read (${marker}) is missing; its records: ${JSON.stringify(mine.slice(0, 5))}\n${err}`);
    // nothing of the host or of other containers
    const others = records.filter((r) => r.container_id !== `podman://${cid}`);
    assert.equal(others.length, 0, `records not of the container: ${JSON.stringify(others.slice(0, 3))}`);
    t.diagnostic(err.split('\n').filter((l) => l.startsWith('rtev: containers')).join(' '));
    // the selection's decisions and the hold are reported (--verbose)
    assert.match(err, /hold: at most \d+ records, .*; selection: \d+ cgroups kept, \d+ dropped/);
  } finally {
    rtev.kill('SIGKILL');
    try {
      sh('podman', ['rm', '-f', '-t', '0', name]);
    } catch {
      // not created
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

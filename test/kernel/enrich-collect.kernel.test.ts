import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { parseProcCgroup } from '../../src/enrich/cgroup-path';
import { ensureImage } from '../helpers/images';

/**
 * End to end: `rtev collect --stdout` while a real podman container reads a file, executes a
 * program and connects on loopback. Its records must carry `container_id` = podman://<id podman
 * reports> and `image_digest` = `podman image inspect --format '{{.Digest}}'`; host records none.
 * The image is made on demand (test/helpers/images.ts).
 */

const REPO = path.resolve(__dirname, '../../..');
const IMAGE = 'localhost/bbox:1';
const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' }).trim();

interface Rec {
  cgroup_id?: number;
  container_id?: string;
  image_digest?: string;
  pid: number;
  comm: string;
  event: { type: string; path?: string; filename?: string; dport?: number };
}

test('rtev collect attributes a podman container’s file read, exec and loopback connect', async () => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests need root');
  ensureImage(IMAGE);
  const digest = sh('podman', ['image', 'inspect', '--format', '{{.Digest}}', IMAGE]);
  const collector = spawn(path.join(REPO, 'bin/rtev'), ['collect', '--stdout', '--quiet', '--duration', '8s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  collector.stdout.on('data', (c: Buffer) => (out += c.toString()));
  collector.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => collector.once('exit', r));
  for (let i = 0; i < 100 && out.length === 0; i++) await new Promise((r) => setTimeout(r, 50)); // probes attached
  const name = `rtev-e2e-${process.pid}`;
  const script = 'sleep 0.5; cat /etc/hostname; /bin/busybox true; (/bin/busybox nc -l -p 9000 &); sleep 0.3; echo hi | /bin/busybox nc 127.0.0.1 9000; sleep 1';
  const cid = sh('podman', ['--runtime', '/usr/sbin/runc', 'run', '-d', '--name', name, '--ulimit', 'nofile=1024:1024',
    '--ulimit', 'nproc=1000:1000', '--network', 'none', IMAGE, '/bin/sh', '-c', script]);
  const pid = Number(sh('podman', ['inspect', '--format', '{{.State.Pid}}', name]));
  const cg = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).v2!;
  const cgId = Number(statSync(path.join('/sys/fs/cgroup/unified', cg), { bigint: true }).ino);
  sh('podman', ['wait', name]);
  sh('podman', ['rm', '-f', name]);
  assert.equal(await exited, 0, err);
  const records = out.split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Rec);
  const mine = records.filter((r) => r.cgroup_id === cgId);
  assert.ok(mine.some((r) => r.event.type === 'file_open' && r.event.path === '/etc/hostname'), 'file read seen in the container cgroup');
  assert.ok(mine.some((r) => r.event.type === 'process_exec'), 'exec seen in the container cgroup');
  assert.ok(mine.some((r) => r.event.type === 'tcp_state' && r.event.dport === 9000), 'loopback connect seen');
  const unattributed = mine.filter((r) => r.container_id !== `podman://${cid}` || r.image_digest !== digest);
  assert.equal(unattributed.length, 0,
    `${unattributed.length}/${mine.length} container records lack container_id podman://${cid} / image_digest ${digest}; ` +
    'the collector must call Enricher.enrichRecord (docs/containers.md)');
  const hostWithFields = records.filter((r) => r.cgroup_id !== cgId && r.container_id !== undefined && r.container_id.endsWith(cid));
  assert.equal(hostWithFields.length, 0, `records outside the container cgroup with its id: ${JSON.stringify(hostWithFields.slice(0, 3))}`);
  assert.ok(records.some((r) => r.cgroup_id === 1 && r.container_id === undefined && r.image_digest === undefined), 'host records carry no container fields');
});

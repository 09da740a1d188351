import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Enricher } from '../../src/enrich/enricher';
import { parseProcCgroup } from '../../src/enrich/cgroup-path';
import { ensureImage } from '../helpers/images';
import { requireTools } from '../helpers/tools';

/**
 * Privileged tier: real kernel cgroups and real containers. Needs root, podman + runc +
 * busybox-static, and containerd for its own test (Makefile APT_PACKAGES). A missing one fails.
 */

const CG2 = '/sys/fs/cgroup/unified';
const FIX = path.resolve(__dirname, '../../../test/fixtures/containers');
const IMAGE = 'localhost/bbox:1';
const PODMAN = ['--runtime', '/usr/sbin/runc'];
const RUN_FLAGS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000', '--network', 'none'];
const TOP = `rtev-enrich-test-${process.pid}`;

function sh(cmd: string, args: string[], opts: { input?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts }).trim();
}

/** v2Id returns a process's cgroup2 path and id (inode of its cgroup2 directory). */
function v2Of(pid: number): { cgPath: string; id: bigint } {
  const cgPath = parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8')).v2!;
  return { cgPath, id: statSync(path.join(CG2, cgPath), { bigint: true }).ino };
}

const children: ChildProcess[] = [];
const cgDirs: string[] = [];

/** mustProcessIn makes a real cgroup with a runtime's naming and moves a sleeping process into it. */
function mustProcessIn(rel: string): { pid: number; id: bigint } {
  const dir = path.join(CG2, TOP, rel);
  mkdirSync(dir, { recursive: true });
  for (let d = dir; d.length > CG2.length; d = path.dirname(d)) if (!cgDirs.includes(d)) cgDirs.push(d);
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  children.push(child);
  writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
  const { cgPath, id } = v2Of(child.pid!);
  assert.equal(cgPath, `/${TOP}/${rel}`);
  return { pid: child.pid!, id };
}

before(() => {
  if (process.getuid?.() !== 0) throw new Error('kernel tests need root (they create cgroups and containers)');
  for (const bin of ['podman', '/usr/sbin/runc', '/bin/busybox']) {
    try {
      sh('sh', ['-c', `command -v ${bin}`]);
    } catch {
      throw new Error(`${bin} is missing: install podman runc busybox-static (make deps)`);
    }
  }
  ensureImage(IMAGE);
});

after(() => {
  for (const c of children) c.kill('SIGKILL');
  // processes must be gone before their cgroups can be removed
  const deadline = Date.now() + 3000;
  for (const d of cgDirs.sort((a, b) => b.length - a.length)) {
    while (true) {
      try {
        rmdirSync(d);
        break;
      } catch {
        if (Date.now() > deadline) break;
        execFileSync('sleep', ['0.05']);
      }
    }
  }
});

test('real podman container: container_id is the id podman reports, image_digest what podman inspect prints', async () => {
  const name = `rtev-enrich-${process.pid}`;
  const cid = sh('podman', [...PODMAN, 'run', '-d', '--name', name, ...RUN_FLAGS, IMAGE, '/bin/sleep', '30']);
  const enricher = new Enricher({ dockerSocket: null, containerdSocket: null });
  try {
    const digest = sh('podman', ['image', 'inspect', '--format', '{{.Digest}}', IMAGE]);
    const pid = Number(sh('podman', ['inspect', '--format', '{{.State.Pid}}', name]));
    const { cgPath, id } = v2Of(pid);
    assert.match(cgPath, new RegExp(`libpod-${cid}`));
    assert.equal(enricher.lookup(id), 'pending');
    assert.deepEqual(await enricher.whenSettled(id, 5000), { containerId: `podman://${cid}`, imageDigest: digest });
    // host processes in the same run carry no container fields
    assert.deepEqual(await enricher.whenSettled(v2Of(process.pid).id, 5000), {});
    const sel = await enricher.selectCgroups({ containers: [name] });
    assert.deepEqual(sel, { cgroupIds: [id], mode: 'allow', unmatched: [] });
    assert.ok((await enricher.selectCgroups({ images: [digest] })).cgroupIds.includes(id));
    assert.ok((await enricher.selectCgroups({ hostOnly: true })).cgroupIds.includes(id));
    assert.equal(enricher.counters().resolved, 1);
  } finally {
    enricher.close();
    sh('podman', ['rm', '-f', '-t', '0', name]);
  }
});

test('real cgroups with Docker, CRI-O, containerd and Kubernetes naming, metadata from recorded fixtures', async () => {
  const D = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
  const CRIO = 'c0ffee0000000000000000000000000000000000000000000000000000000001';
  const PODS = 'pod3f1c2d4e_0000_4000_8000_000000000001';
  const enricher = new Enricher({
    storageRoots: [path.join(FIX, 'storage')],
    dockerRoot: path.join(FIX, 'docker'),
    dockerSocket: null,
    containerdSocket: '/nonexistent/containerd.sock',
  });
  const NGINX = 'sha256:b1f2bcd0e9e5a8b2c4c3f0d5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f';
  const cases: Array<[string, object]> = [
    [`system.slice/docker-${D}.scope`, { containerId: `docker://${D}`, imageDigest: NGINX }],
    [`docker/${D}`, { containerId: `docker://${D}`, imageDigest: NGINX }],
    [`kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-${PODS}.slice/crio-${CRIO}.scope`,
      { containerId: `cri-o://${CRIO}`, imageDigest: 'sha256:' + '9'.repeat(64) }],
    [`kubepods/besteffort/pod3f1c2d4e-0000-4000-8000-000000000001/${CRIO}`,
      { containerId: `cri-o://${CRIO}`, imageDigest: 'sha256:' + '9'.repeat(64) }],
    [`kubepods.slice/kubepods-burstable.slice/kubepods-burstable-${PODS}.slice/cri-containerd-${'b'.repeat(64)}.scope`,
      { containerId: `containerd://${'b'.repeat(64)}` }], // no containerd socket: id only, counted
    ['system.slice/sshd.service', {}],
  ];
  try {
    for (const [rel, want] of cases) {
      const { id } = mustProcessIn(rel);
      assert.deepEqual(await enricher.whenSettled(id, 5000), want, rel);
    }
    assert.equal(enricher.counters().errors.source_unavailable, 1);
  } finally {
    enricher.close();
  }
});

test('containerd (Debian containerd 1.6, started by the test): ctr container and CRI layout', async () => {
  // containerd is in the Makefile's APT_PACKAGES like podman: missing, it fails the test (it
  // used to skip outside CI, which hid a machine that `make deps` had not set up)
  requireTools('containerd', 'ctr');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rtev-ctrd-'));
  const sock = path.join(dir, 'containerd.sock');
  writeFileSync(path.join(dir, 'config.toml'), [
    'version = 2', `root = "${dir}/root"`, `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]', `  address = "${sock}"`, '[ttrpc]', `  address = "${sock}.ttrpc"`, '',
  ].join('\n'));
  const log = path.join(dir, 'containerd.log');
  const logFd = openSync(log, 'w');
  const daemon = spawn('containerd', ['--config', path.join(dir, 'config.toml')], { stdio: ['ignore', 'ignore', logFd] });
  closeSync(logFd);
  let exited = false;
  // listened for from the start: 'exit' of a daemon that died early is not emitted again later
  const gone = new Promise<void>((r) => {
    const done = (): void => { exited = true; r(); };
    daemon.once('exit', done);
    daemon.once('error', done); // could not be started
  });
  const ctr = (...args: string[]): string => sh('ctr', ['-a', sock, ...args]);
  const id = 'c7'.repeat(32);
  const criId = 'cc'.repeat(32);
  try {
    // up within 10 s, or the test fails with what containerd said (it used to go on and fail later)
    for (let i = 0; i < 200 && !existsSync(sock) && !exited; i++) await new Promise((r) => setTimeout(r, 50));
    if (!existsSync(sock)) throw new Error(`containerd did not create ${sock}${exited ? ` (exited ${daemon.exitCode ?? daemon.signalCode})` : ' in 10 s'}: ${readFileSync(log, 'utf8').slice(-2000)}`);
    sh('podman', ['save', '--format', 'oci-archive', '-o', path.join(dir, 'bbox.tar'), IMAGE]);
    for (const ns of ['default', 'k8s.io']) ctr('-n', ns, 'images', 'import', '--base-name', 'localhost/bbox', path.join(dir, 'bbox.tar'));
    const digest = ctr('images', 'ls').split('\n').find((l) => l.startsWith(`${IMAGE} `))!.split(/\s+/)[2]!;
    ctr('run', '-d', IMAGE, id, '/bin/sleep', '30');
    const pid = Number(ctr('task', 'ls').split('\n').find((l) => l.startsWith(id))!.split(/\s+/)[1]);
    const enricher = new Enricher({ dockerSocket: null, containerdSocket: sock });
    try {
      const { cgPath, id: cg } = v2Of(pid);
      assert.equal(cgPath, `/default/${id}`);
      assert.deepEqual(await enricher.whenSettled(cg, 5000), { containerId: `containerd://${id}`, imageDigest: digest });
      // CRI naming (systemd driver) with a container known to containerd in namespace k8s.io
      ctr('-n', 'k8s.io', 'containers', 'create', IMAGE, criId);
      const { id: criCg } = mustProcessIn(`kubepods.slice/kubepods-pod1.slice/cri-containerd-${criId}.scope`);
      assert.deepEqual(await enricher.whenSettled(criCg, 5000), { containerId: `containerd://${criId}`, imageDigest: digest });
    } finally {
      enricher.close();
      try {
        ctr('task', 'kill', '-s', 'SIGKILL', id);
        execFileSync('sleep', ['0.3']);
        ctr('task', 'delete', id);
      } catch {
        // best effort
      }
    }
  } finally {
    if (!exited) daemon.kill('SIGTERM');
    const kill = setTimeout(() => daemon.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(kill);
    try {
      execFileSync('umount', ['-R', path.join(dir, 'state')], { stdio: 'ignore' });
    } catch {
      // nothing mounted
    }
    rmSync(dir, { recursive: true, force: true });
    // containerd leaves the namespace parent cgroup (/default) behind; remove it if empty
    for (const h of ['unified', 'memory', 'pids', 'cpu,cpuacct', 'systemd']) {
      try {
        rmdirSync(`/sys/fs/cgroup/${h}/default`);
      } catch {
        // not there, or in use
      }
    }
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Enricher, type EnricherOptions } from '../../src/enrich/enricher';
import { SelectError } from '../../src/enrich/select';

const FIX = path.resolve(__dirname, '../../../test/fixtures/containers');
const PODMAN_ID = '5227d29aeb423f4559012995292aa27581f16436a69a70c6d53fedce77e42b23';
const PODMAN_DIGEST = 'sha256:0f8f1fe14d3039596d414fb1bb8a5710b71273f01278287c2b8682677d856d93';
const DOCKER_ID = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const BAD_DOCKER_ID = 'fedcba9876543210'.repeat(4);
const NGINX = 'sha256:b1f2bcd0e9e5a8b2c4c3f0d5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f';
const UNKNOWN_ID = 'e'.repeat(64);
/** hold of whenSettled where the answer comes from local files or a local socket's deadline: a
 * ceiling for a broken resolver, never what the test waits for (2 s ran out on a loaded machine) */
const CEILING_MS = 60_000;

/** withTree makes a fake cgroup2 mount (plain directories: ids are their inodes). */
function withTree(dirs: string[]): { mount: string; id(p: string): bigint; cleanup(): void } {
  const mount = mkdtempSync(path.join(os.tmpdir(), 'rtev-cg-'));
  for (const d of dirs) mkdirSync(path.join(mount, d), { recursive: true });
  return {
    mount,
    id: (p) => statSync(path.join(mount, p), { bigint: true }).ino,
    cleanup: () => rmSync(mount, { recursive: true, force: true }),
  };
}

function enricher(mount: string, extra: EnricherOptions = {}): { e: Enricher; warnings: string[] } {
  const warnings: string[] = [];
  const e = new Enricher({
    cgroup2Mount: mount,
    storageRoots: [path.join(FIX, 'storage')],
    dockerRoot: path.join(FIX, 'docker'),
    dockerSocket: null,
    containerdSocket: null,
    warn: (m) => warnings.push(m),
    ...extra,
  });
  return { e, warnings };
}

test('lookup never blocks: pending first, then cached container, host and unknown answers', async () => {
  const t = withTree([`libpod_parent/libpod-${PODMAN_ID}`, 'system.slice/sshd.service', `system.slice/docker-${DOCKER_ID}.scope`]);
  const { e, warnings } = enricher(t.mount);
  try {
    const pod = t.id(`libpod_parent/libpod-${PODMAN_ID}`);
    assert.equal(e.lookup(pod), 'pending');
    assert.deepEqual(await e.whenSettled(pod, CEILING_MS), { containerId: `podman://${PODMAN_ID}`, imageDigest: PODMAN_DIGEST });
    assert.deepEqual(e.lookup(pod), { containerId: `podman://${PODMAN_ID}`, imageDigest: PODMAN_DIGEST });
    assert.deepEqual(await e.whenSettled(t.id('system.slice/sshd.service'), CEILING_MS), {});
    assert.deepEqual(await e.whenSettled(t.id('/'), CEILING_MS), {});
    const dock = t.id(`system.slice/docker-${DOCKER_ID}.scope`);
    assert.deepEqual(await e.whenSettled(dock, CEILING_MS), { containerId: `docker://${DOCKER_ID}`, imageDigest: NGINX });
    assert.deepEqual(await e.whenSettled(999_999_999n, CEILING_MS), {});
    const c = e.counters();
    assert.equal(c.resolved, 2);
    assert.equal(c.host, 2);
    assert.equal(c.errors.cgroup_not_found, 1);
    assert.equal(c.unresolved, 1);
    assert.deepEqual(warnings, []);
  } finally {
    e.close();
    t.cleanup();
  }
});

test('malformed metadata and missing images: container id kept, digest omitted, counted, one warning', async () => {
  const t = withTree([`a/docker/${BAD_DOCKER_ID}`, `b/docker/${BAD_DOCKER_ID}/sub`, `libpod_parent/libpod-${'c0ffee'.padEnd(63, '0')}2`]);
  const { e, warnings } = enricher(t.mount);
  try {
    assert.deepEqual(await e.whenSettled(t.id(`a/docker/${BAD_DOCKER_ID}`), CEILING_MS), { containerId: `docker://${BAD_DOCKER_ID}` });
    assert.deepEqual(await e.whenSettled(t.id(`b/docker/${BAD_DOCKER_ID}/sub`), CEILING_MS), { containerId: `docker://${BAD_DOCKER_ID}` });
    const orphan = await e.whenSettled(t.id(`libpod_parent/libpod-${'c0ffee'.padEnd(63, '0')}2`), CEILING_MS);
    assert.deepEqual(orphan, { containerId: `podman://${'c0ffee'.padEnd(63, '0')}2` });
    const c = e.counters();
    assert.equal(c.errors.metadata_malformed, 2);
    assert.equal(c.errors.image_not_found, 1);
    assert.equal(c.resolvedNoDigest, 3);
    assert.equal(warnings.filter((w) => w.includes('metadata_malformed')).length, 1, warnings.join('\n'));
  } finally {
    t.cleanup();
  }
});

test('a Docker API socket that hangs costs one timeout, is counted and warned once', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rtev-sock-'));
  const sock = path.join(dir, 'docker.sock');
  const held: net.Socket[] = [];
  const server = net.createServer((s) => held.push(s)); // accepts, never answers
  await new Promise<void>((r) => server.listen(sock, r));
  const t = withTree([`system.slice/docker-${UNKNOWN_ID}.scope`, `docker/${UNKNOWN_ID.replace(/e/g, 'd')}`]);
  const { e, warnings } = enricher(t.mount, { dockerSocket: sock, socketTimeoutMs: 150 });
  try {
    const id = t.id(`system.slice/docker-${UNKNOWN_ID}.scope`);
    // lookup is synchronous and answers before any I/O: the server has not even seen a connection
    // (a wall-clock bound of 50 ms here flaked under load; this holds on any machine)
    assert.equal(e.lookup(id), 'pending');
    assert.equal(held.length, 0, 'lookup returned before the socket was used');
    // timers fire in deadline order: a 20 ms hold set now ends before the 150 ms socket deadline,
    // which starts only once the resolution reaches the socket
    assert.equal(await e.whenSettled(id, 20), 'pending', 'a short hold gives up');
    // the socket deadline settles both: the holds below are only ceilings (a long one cannot
    // run out first, however slow the machine)
    assert.deepEqual(await e.whenSettled(id, 60_000), { containerId: `docker://${UNKNOWN_ID}` });
    assert.notEqual(await e.whenSettled(t.id(`docker/${UNKNOWN_ID.replace(/e/g, 'd')}`), 60_000), 'pending');
    assert.equal(e.counters().errors.socket_timeout, 2);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /docker-api: socket_timeout/);
  } finally {
    held.forEach((s) => s.destroy());
    server.close();
    rmSync(dir, { recursive: true, force: true });
    t.cleanup();
  }
});

test('vanished cgroups expire after the grace period; failures are retried after the negative ttl', async () => {
  let now = 1_000_000;
  const t = withTree([`libpod_parent/libpod-${PODMAN_ID}`]);
  const { e } = enricher(t.mount, { now: () => now, sweepIntervalMs: 1000, goneGraceMs: 5000, negativeTtlMs: 2000 });
  try {
    const id = t.id(`libpod_parent/libpod-${PODMAN_ID}`);
    await e.whenSettled(id, CEILING_MS);
    rmdirSync(path.join(t.mount, `libpod_parent/libpod-${PODMAN_ID}`));
    now += 1500;
    assert.notEqual(e.lookup(id), 'pending'); // triggers a sweep walk
    await e.whenSwept(); // (a fixed 100 ms wait here lost the race on a loaded machine)
    now += 4000;
    assert.equal(typeof e.lookup(id), 'object', 'still inside the grace period');
    now += 2000;
    assert.equal(e.lookup(id), 'pending', 'expired');
    assert.deepEqual(await e.whenSettled(id, CEILING_MS), {});
    assert.equal(e.counters().errors.cgroup_not_found, 1);
    now += 2500;
    assert.equal(e.lookup(id), 'pending', 'negative answer retried');
  } finally {
    t.cleanup();
  }
});

test('bounded: cache size and resolutions in flight', async () => {
  const dirs = Array.from({ length: 20 }, (_, i) => `system.slice/s${i}.service`);
  const t = withTree(dirs);
  const { e } = enricher(t.mount, { maxEntries: 8, maxInFlight: 4 });
  try {
    for (const d of dirs) e.lookup(t.id(d));
    assert.equal(e.counters().inFlight, 4);
    assert.equal(e.counters().errors.queue_full, 16);
    await new Promise((r) => setTimeout(r, 200));
    for (const d of dirs) await e.whenSettled(t.id(d), CEILING_MS);
    assert.ok(e.counters().cacheSize <= 8);
  } finally {
    t.cleanup();
  }
});

test('enrichRecord sets the fields and counts each record', async () => {
  const t = withTree([`libpod_parent/libpod-${PODMAN_ID}`, `a/b/${UNKNOWN_ID}`]);
  const { e } = enricher(t.mount);
  try {
    const rec: { cgroup_id?: bigint; container_id?: string; image_digest?: string } = { cgroup_id: t.id(`libpod_parent/libpod-${PODMAN_ID}`) };
    assert.equal(e.enrichRecord({ cgroup_id: rec.cgroup_id! }), undefined); // no hold: unresolved
    await e.enrichRecord(rec, CEILING_MS);
    assert.equal(rec.container_id, `podman://${PODMAN_ID}`);
    assert.equal(rec.image_digest, PODMAN_DIGEST);
    const host = { cgroup_id: t.id('/') } as typeof rec;
    await e.enrichRecord(host, CEILING_MS);
    assert.deepEqual(host, { cgroup_id: t.id('/') });
    const odd = { cgroup_id: t.id(`a/b/${UNKNOWN_ID}`) } as typeof rec;
    await e.enrichRecord(odd, CEILING_MS);
    assert.equal(odd.container_id, undefined);
    e.enrichRecord({});
    assert.deepEqual(e.counters().records, { container: 1, containerNoDigest: 0, host: 1, unresolved: 3 });
    assert.equal(e.counters().errors.unknown_layout, 1);
  } finally {
    t.cleanup();
  }
});

test('selectCgroups: by name, id prefix, image; containers-only; host-only; conflicts', async () => {
  const pod = `libpod_parent/libpod-${PODMAN_ID}`;
  const dock = `system.slice/docker-${DOCKER_ID}.scope`;
  const t = withTree([`${pod}/container`, `${dock}`, 'system.slice/sshd.service', `x/y/${UNKNOWN_ID}`]);
  const { e } = enricher(t.mount);
  const ids = (...ps: string[]): bigint[] => ps.map(t.id).sort((a, b) => (a < b ? -1 : 1));
  try {
    assert.deepEqual(await e.selectCgroups({}), { cgroupIds: [], mode: 'deny', unmatched: [] });
    assert.deepEqual(await e.selectCgroups({ containers: ['rtev-probe'] }), { cgroupIds: ids(pod, `${pod}/container`), mode: 'allow', unmatched: [] });
    assert.deepEqual((await e.selectCgroups({ containers: ['web', '5227d29a', 'ghost'] })).cgroupIds, ids(pod, `${pod}/container`, dock));
    assert.deepEqual((await e.selectCgroups({ containers: ['ghost'] })).unmatched, ['ghost']);
    assert.deepEqual((await e.selectCgroups({ images: [NGINX] })).cgroupIds, ids(dock));
    assert.deepEqual((await e.selectCgroups({ containers: ['web'], images: [PODMAN_DIGEST] })).cgroupIds, []);
    assert.deepEqual((await e.selectCgroups({ containersOnly: true })).cgroupIds, ids(pod, `${pod}/container`, dock));
    assert.deepEqual(await e.selectCgroups({ hostOnly: true }), { cgroupIds: ids(pod, `${pod}/container`, dock, `x/y/${UNKNOWN_ID}`), mode: 'deny', unmatched: [] });
    await assert.rejects(e.selectCgroups({ hostOnly: true, containers: ['web'] }), SelectError);
    await assert.rejects(e.selectCgroups({ images: ['nginx'] }), SelectError);
  } finally {
    t.cleanup();
  }
});

test('watchSelection picks up containers created later', { timeout: 60_000 }, async () => {
  const t = withTree(['system.slice/sshd.service']);
  const { e } = enricher(t.mount);
  // each onChange is awaited as an event, never guessed with a sleep (two fixed sleeps of 120 and
  // 300 ms flaked on a loaded machine); the test timeout is only the ceiling of a broken watch
  const changes: bigint[][] = [];
  const waiters: Array<() => void> = [];
  const nextChange = (n: number): Promise<bigint[]> => new Promise((resolve) => {
    const check = (): void => {
      if (changes.length >= n) resolve(changes[n - 1]!);
      else waiters.push(check);
    };
    check();
  });
  const w = e.watchSelection({ containersOnly: true }, (s) => {
    changes.push(s.cgroupIds);
    waiters.splice(0).forEach((f) => f());
  }, { intervalMs: 20 });
  const keepAlive = setInterval(() => {}, 1000); // the watch's own timer is unref'd
  try {
    assert.deepEqual(await nextChange(1), [], 'the first selection has no container');
    mkdirSync(path.join(t.mount, `libpod_parent/libpod-${PODMAN_ID}`), { recursive: true });
    assert.deepEqual(await nextChange(2), [t.id(`libpod_parent/libpod-${PODMAN_ID}`)], 'a later walk finds the new container');
    assert.equal(changes.length, 2, 'onChange only when the set changes');
  } finally {
    clearInterval(keepAlive);
    w.close();
    t.cleanup();
  }
});

test('warmUp also answers the v1 memory cgroups (a hybrid host): their first records need not wait', async () => {
  const v2 = withTree(['system.slice']);
  const v1 = withTree(['process_api/05f5553d', 'system.slice/sshd.service']);
  writeFileSync(path.join(v1.mount, 'memory.usage_in_bytes'), '0\n');
  const { e } = enricher(v2.mount, { cgroupV1Mount: v1.mount });
  try {
    await e.warmUp(v2.mount, CEILING_MS);
    assert.deepEqual(e.lookup(v1.id('process_api/05f5553d'), 'v1'), {});
    assert.deepEqual(e.lookup(v1.id('system.slice/sshd.service'), 'v1'), {});
    assert.deepEqual(e.lookup(v2.id('system.slice')), {});
  } finally {
    e.close();
    v1.cleanup();
    v2.cleanup();
  }
});

test('warmUp leaves a directory without the v1 memory controller alone', async () => {
  const v2 = withTree(['system.slice']);
  const v1 = withTree(['process_api/05f5553d']);
  const { e } = enricher(v2.mount, { cgroupV1Mount: v1.mount });
  try {
    await e.warmUp(v2.mount, CEILING_MS);
    assert.equal(e.lookup(v1.id('process_api/05f5553d'), 'v1'), 'pending');
  } finally {
    e.close();
    v1.cleanup();
    v2.cleanup();
  }
});

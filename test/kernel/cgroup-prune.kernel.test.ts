import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { RTEV, rootOrSkip } from '../helpers/collector';
import { CGROUP_V1_KEY } from '../../src/ingest/session';
import { cgroup2Mount } from '../../src/platform/cgroup2';

/**
 * Issue 13 (weak point of item 8): under a narrowing container selection the kernel denies the
 * cgroups decided not to match (bpf/common.h cgroup_filter, a hash map of 16384 entries). A cgroup
 * that is gone must leave that map (CgroupGate.prune), or finished services and containers fill
 * it. Two host cgroups exist at start, so both are denied; one is removed: its key leaves the real
 * map, the other's stays. On a hybrid host the same in the v1 memory hierarchy (keys with bit 63). RTEV_CGROUP_PRUNE_MS shortens the prune interval (default 10 s); the test
 * waits for the map itself (bpftool), with a deadline, not for a fixed time.
 */

const V1_MEMORY = '/sys/fs/cgroup/memory';

/** the key set of the cgroup_filter map the rtev process `pid` holds */
function denyMap(pid: number): Set<bigint> | undefined {
  let fds: string[] = [];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return undefined;
  }
  for (const fd of fds) {
    let info = '';
    try {
      info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const id = /^map_id:\s*(\d+)$/m.exec(info)?.[1];
    if (id === undefined || !/^key_size:\s*8$/m.test(info) || !/^max_entries:\s*16384$/m.test(info)) continue;
    const show = JSON.parse(execFileSync('bpftool', ['map', 'show', 'id', id, '-j'], { encoding: 'utf8' })) as { name?: string };
    if (show.name !== 'cgroup_filter') continue;
    const dump = JSON.parse(execFileSync('bpftool', ['map', 'dump', 'id', id, '-j'], { encoding: 'utf8' })) as { key: string[] | number; formatted?: { key: number } }[];
    const keys = new Set<bigint>();
    for (const e of dump) {
      if (Array.isArray(e.key)) keys.add(Buffer.from(e.key.map((b) => Number.parseInt(b, 16))).readBigUInt64LE(0));
      else keys.add(BigInt(e.formatted?.key ?? e.key));
    }
    return keys;
  }
  return undefined;
}

async function until<T>(get: () => T | undefined, ok: (v: T) => boolean, timeoutMs: number): Promise<T | undefined> {
  let v: T | undefined;
  for (const t0 = Date.now(); Date.now() - t0 < timeoutMs; await new Promise((r) => setTimeout(r, 100))) {
    v = get();
    if (v !== undefined && ok(v)) return v;
  }
  return v;
}

test('--containers-only: the kernel deny list loses the cgroups that are gone, keeps the others', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const v2 = cgroup2Mount();
  assert.ok(fs.existsSync(path.join(v2, 'cgroup.procs')), `${v2} is a cgroup v2 mount`);
  // (a hybrid host: the v1 memory hierarchy is decided too)
  const v1 = v2 !== '/sys/fs/cgroup' && fs.existsSync(path.join(V1_MEMORY, 'cgroup.procs')) ? V1_MEMORY : undefined;
  const made: { dir: string; key: bigint; gone: boolean }[] = [];
  for (const [mount, bit] of [[v2, 0n], ...(v1 !== undefined ? [[v1, CGROUP_V1_KEY]] : [])] as [string, bigint][]) {
    for (const gone of [true, false]) {
      const dir = path.join(mount, `rtev-prune-${gone ? 'gone' : 'kept'}-${process.pid}`);
      fs.mkdirSync(dir);
      made.push({ dir, key: fs.statSync(dir, { bigint: true }).ino | bit, gone });
    }
  }
  const goneKeys = made.filter((m) => m.gone).map((m) => m.key);
  const keptKeys = made.filter((m) => !m.gone).map((m) => m.key);
  const rtev = spawn(process.execPath, [RTEV, 'collect', '--stdout', '--containers-only', '--verbose', '--probes', 'file_open,process_exec'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, RTEV_CGROUP_PRUNE_MS: '300' } });
  let stderr = '';
  rtev.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number | null>((r) => rtev.on('close', (code) => r(code)));
  try {
    assert.ok(await until(() => stderr, (s) => /^rtev: ready after /m.test(s), 90_000), `rtev did not get ready: ${stderr}`);
    const before = denyMap(rtev.pid!);
    assert.ok(before !== undefined, 'the cgroup_filter map of rtev is found');
    for (const k of [...goneKeys, ...keptKeys]) assert.ok(before.has(k), `host cgroup key ${k.toString(16)} is denied (${before.size} keys)`);
    for (const m of made) if (m.gone) fs.rmdirSync(m.dir);
    const after = await until(() => denyMap(rtev.pid!), (m) => goneKeys.every((k) => !m.has(k)), 60_000);
    assert.ok(after !== undefined, 'the map is still there');
    for (const k of goneKeys) assert.ok(!after.has(k), `the removed cgroup's key ${k.toString(16)} left the deny list`);
    for (const k of keptKeys) assert.ok(after.has(k), `the key of a cgroup that still exists (${k.toString(16)}) stays`);
    console.log(`deny list: ${before.size} keys, ${after.size} after ${goneKeys.length} cgroups were removed (${v1 !== undefined ? 'v2 and v1 memory' : 'v2'})`);
  } finally {
    rtev.kill('SIGTERM');
    await exit;
    for (const m of made) {
      try {
        fs.rmdirSync(m.dir);
      } catch {
        // removed above
      }
    }
  }
  const line = /^rtev: containers: .*$/m.exec(stderr)?.[0] ?? '';
  const pruned = /; (\d+) gone and pruned from it/.exec(line);
  assert.ok(pruned !== null && Number(pruned[1]) >= goneKeys.length, `the summary counts the pruned cgroup: ${line}`);
});

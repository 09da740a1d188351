import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { ObservedScope, processCgroups } from '../../src/ingest/uprobes/scope';

/**
 * The TLS coverage scope (src/ingest/uprobes/scope.ts): a process is in scope exactly when the
 * run's filters keep its events. A fixture /proc and cgroup trees stand for the host's; the kernel
 * maps are the checks' answers (the real ones: test/e2e/tls-coverage.e2e.test.ts).
 */
function fixture(): { root: string; proc: string; cg2: string; mem: string; ino: (p: string) => bigint } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-scope-'));
  const proc = path.join(root, 'proc');
  const cg2 = path.join(root, 'unified');
  const mem = path.join(root, 'memory');
  for (const d of [path.join(cg2, 'a', 'b'), path.join(mem, 'm1'), path.join(proc, '10'), path.join(proc, '11'), path.join(proc, '12')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(proc, '10', 'cgroup'), '12:memory:/m1\n3:cpu,cpuacct:/x\n0::/a/b\n');
  fs.writeFileSync(path.join(proc, '11', 'cgroup'), '12:memory:/m1\n0::/\n');
  fs.writeFileSync(path.join(proc, '12', 'cgroup'), '0::/../etc\n');
  return { root, proc, cg2, mem, ino: (p) => fs.statSync(p, { bigint: true }).ino };
}

test('processCgroups: the v2 id, and the memory v1 id only for a process in the v2 root (as task_cgroup_ids)', () => {
  const f = fixture();
  assert.deepEqual(processCgroups(10, f.cg2, f.mem, f.proc), { v2: f.ino(path.join(f.cg2, 'a', 'b')), v1: 0n });
  assert.deepEqual(processCgroups(11, f.cg2, f.mem, f.proc), { v2: f.ino(f.cg2), v1: f.ino(path.join(f.mem, 'm1')) });
  assert.deepEqual(processCgroups(11, f.cg2, undefined, f.proc), { v2: f.ino(f.cg2), v1: 0n }, 'unified host: no v1');
  assert.equal(processCgroups(12, f.cg2, f.mem, f.proc), undefined, 'a path that climbs out is refused');
  assert.equal(processCgroups(13, f.cg2, f.mem, f.proc), undefined, 'gone');
});

test('ObservedScope: every process without filters; else the pid filter, the --cgroup list and the container decision all apply', () => {
  const f = fixture();
  const mounts = { cgroup2: f.cg2, memoryV1: f.mem, procRoot: f.proc };
  const all = new ObservedScope({}, mounts);
  assert.equal(all.narrowing, false);
  assert.ok(all.inScope(10) && all.inScope(13));
  const traced = new ObservedScope({ traced: (t) => t === 10 }, mounts);
  assert.deepEqual([traced.inScope(10), traced.inScope(11)], [true, false]);
  const allow = new ObservedScope({ allowCgroups: new Set([f.ino(path.join(f.cg2, 'a', 'b'))]) }, mounts);
  assert.deepEqual([allow.inScope(10), allow.inScope(11), allow.inScope(13)], [true, false, false]);
  // a container selection: dropped is out, kept is in, undecided is in (never claim coverage that is not there)
  const m1 = f.ino(path.join(f.mem, 'm1'));
  const seen: { v2: bigint; v1: bigint }[] = [];
  const decide = (answer: boolean | undefined) => new ObservedScope({ keepCgroup: (ids) => { seen.push(ids); return answer; } }, mounts);
  assert.deepEqual([decide(false).inScope(11), decide(true).inScope(11), decide(undefined).inScope(11)], [false, true, true]);
  assert.deepEqual(seen[0], { v2: f.ino(f.cg2), v1: m1 });
  // all at once: each must agree
  const both = new ObservedScope({ traced: () => true, keepCgroup: () => false }, mounts);
  assert.equal(both.inScope(10), false);
});

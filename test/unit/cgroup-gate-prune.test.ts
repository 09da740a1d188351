/**
 * The kernel's cgroup deny list (bpf/common.h cgroup_filter, 16384 entries) is pruned of the
 * cgroups that are gone (CgroupGate.prune): their keys leave the map, a partial listing of the
 * tree prunes nothing, v1 keys are pruned only when the v1 hierarchy was listed, keys the full map
 * refused are denied once there is room, and one pass removes at most PRUNE_MAX_PER_PASS keys.
 * The real map: test/kernel/cgroup-prune.kernel.test.ts.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { CgroupGate, PRUNE_MAX_PER_PASS, walkCgroups } from '../../src/ingest/cgroup-gate';
import { CGROUP_V1_KEY } from '../../src/ingest/session';

/** a kernel map of `size` entries, as the addon's mapUpdate/mapDelete see it */
function fakeMap(size: number): { keys: Set<bigint>; deny(k: bigint): boolean; undeny(k: bigint): void } {
  const keys = new Set<bigint>();
  return {
    keys,
    deny: (k) => {
      if (keys.size >= size && !keys.has(k)) return false;
      keys.add(k);
      return true;
    },
    undeny: (k) => { keys.delete(k); },
  };
}

const present = (keys: bigint[], more: Partial<{ complete: boolean; v1: boolean }> = {}): { keys: Set<bigint>; complete: boolean; v2: boolean; v1: boolean } =>
  ({ keys: new Set(keys), complete: more.complete ?? true, v2: true, v1: more.v1 ?? true });

/** host cgroups (no container) are dropped for good under a narrowing selection: denied */
function denyHost(gate: CgroupGate, ids: bigint[], hierarchy: 'v2' | 'v1' = 'v2'): void {
  for (const id of ids) assert.equal(gate.keep(`${hierarchy}:${id}`, id, hierarchy, {}), false);
}

test('prune: gone cgroups leave the kernel map, present ones stay; a partial listing prunes nothing', () => {
  const map = fakeMap(16384);
  const gate = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  gate.connect(map.deny, map.undeny);
  denyHost(gate, [10n, 11n, 12n]);
  assert.deepEqual([...map.keys], [10n, 11n, 12n]);
  // 11 is gone, but the walk stopped early: it may exist
  assert.equal(gate.prune(present([10n, 12n], { complete: false })), 0);
  assert.deepEqual([...map.keys], [10n, 11n, 12n]);
  assert.equal(gate.stats.pruneSkipped, 1);
  assert.equal(gate.prune(present([10n, 12n])), 1);
  assert.deepEqual([...map.keys], [10n, 12n]);
  assert.equal(gate.stats.pruned, 1);
  assert.equal(gate.stats.denied, 2);
  assert.deepEqual([...gate.deniedKeys().keys()], [10n, 12n]);
  // nothing more is gone: nothing more to do
  assert.equal(gate.prune(present([10n, 12n])), 0);
  assert.deepEqual([...map.keys], [10n, 12n]);
});

test('prune: a v1 memory cgroup key is pruned only when the v1 hierarchy was listed', () => {
  const map = fakeMap(16384);
  const gate = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  gate.connect(map.deny, map.undeny);
  denyHost(gate, [20n], 'v1');
  denyHost(gate, [30n], 'v2');
  assert.deepEqual([...map.keys], [20n | CGROUP_V1_KEY, 30n]);
  assert.equal(gate.prune(present([], { v1: false })), 1, 'the v2 key only');
  assert.deepEqual([...map.keys], [20n | CGROUP_V1_KEY]);
  assert.equal(gate.prune(present([])), 1);
  assert.equal(map.keys.size, 0);
});

test('prune: keys the full map refused are denied once gone ones made room', () => {
  const map = fakeMap(2);
  const gate = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  gate.connect(map.deny, map.undeny);
  denyHost(gate, [1n, 2n, 3n, 4n]);
  assert.deepEqual([...map.keys], [1n, 2n]);
  assert.equal(gate.stats.denyFull, 2);
  // 1 is gone, and 4: room for 3
  assert.equal(gate.prune(present([2n, 3n])), 1);
  assert.deepEqual([...map.keys].sort(), [2n, 3n]);
  assert.equal(gate.stats.denyFull, 0);
  assert.equal(gate.stats.denied, 2);
  assert.deepEqual(gate.deniedKeys(), new Map([[2n, 'kernel'], [3n, 'kernel']]));
});

test('prune: a pruned cgroup is decided again if its records come back (the map never keeps a stale key)', () => {
  const map = fakeMap(16384);
  const gate = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  gate.connect(map.deny, map.undeny);
  denyHost(gate, [40n]);
  gate.prune(present([]));
  assert.equal(map.keys.size, 0);
  // (ids are not reused; were the listing wrong, the next record denies it again)
  denyHost(gate, [40n]);
  assert.deepEqual([...map.keys], [40n]);
  assert.equal(gate.stats.dropped, 2);
});

test(`prune: at most ${PRUNE_MAX_PER_PASS} keys per pass, the rest on the next`, () => {
  const map = fakeMap(16384);
  const gate = new CgroupGate({ selector: { containersOnly: true }, facts: () => undefined });
  gate.connect(map.deny, map.undeny);
  const ids = Array.from({ length: PRUNE_MAX_PER_PASS + 100 }, (_, i) => BigInt(1000 + i));
  denyHost(gate, ids);
  assert.equal(map.keys.size, ids.length);
  assert.equal(gate.prune(present([])), PRUNE_MAX_PER_PASS);
  assert.equal(map.keys.size, 100);
  assert.equal(gate.prune(present([])), 100);
  assert.equal(map.keys.size, 0);
  assert.equal(gate.deniedCount, 0);
});

test('walkCgroups: whole or not, and bounded', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-walk-'));
  for (const d of ['a', 'a/x', 'b', 'c']) fs.mkdirSync(path.join(root, d));
  const all = walkCgroups(root, 100);
  assert.equal(all.complete, true);
  assert.equal(all.ids.length, 5);
  assert.equal(all.ids[0], fs.statSync(root, { bigint: true }).ino);
  const part = walkCgroups(root, 3);
  assert.equal(part.complete, false);
  assert.equal(part.ids.length, 3);
  // a mount that is gone: nothing, and whole (nothing exists)
  assert.deepEqual(walkCgroups(path.join(root, 'gone'), 10), { ids: [], complete: true });
});

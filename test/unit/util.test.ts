import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { cgroup2Mount, cgroup2MountOf } from '../../src/platform/cgroup2';
import { findMapping, type Mapping } from '../../src/symbolize/proc';
import { closest, editDistance } from '../../src/util/edit-distance';
import { Lru } from '../../src/util/lru';
import { lastAtOrBefore } from '../../src/util/search';

test('Lru: bound, recency, expiry, eviction callback and counters', () => {
  let now = 0;
  const evicted: string[] = [];
  const c = new Lru<string, number>(2, { now: () => now, onEvict: (k) => evicted.push(k) });
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recent
  c.set('c', 3); // evicts b
  assert.deepEqual(c.keys(), ['a', 'c']);
  assert.deepEqual(evicted, ['b']);
  assert.equal(c.get('b'), undefined);
  c.set('a', 10, 100); // replacing is not an eviction
  assert.deepEqual(evicted, ['b']);
  now = 99;
  assert.equal(c.get('a'), 10);
  now = 100;
  assert.equal(c.get('a'), undefined, 'expired at its ttl');
  c.set('d', 4);
  c.expireAt('d', 50);
  assert.equal(c.get('d'), undefined, 'expireAt shortens the life');
  assert.deepEqual([c.hits, c.misses, c.evictions], [2, 3, 1]);
  c.set('e', 5);
  c.clear();
  assert.equal(c.size, 0);
  assert.throws(() => new Lru(0), RangeError);
  const noClock = new Lru<string, number>(1);
  noClock.set('x', 1, 5);
  assert.equal(noClock.get('x'), 1, 'without a clock entries do not expire');
});

test('lastAtOrBefore agrees with a linear scan', () => {
  fc.assert(fc.property(fc.array(fc.bigInt({ min: -50n, max: 50n })), fc.bigInt({ min: -60n, max: 60n }), (keys, x) => {
    const sorted = [...keys].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    let want = -1;
    for (let i = 0; i < sorted.length; i++) if (sorted[i]! <= x) want = i;
    assert.equal(lastAtOrBefore(sorted, (k) => k, x), want);
  }));
});

test('findMapping finds the mapping containing an address (sorted, disjoint ranges)', () => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 1, max: 20 })), { maxLength: 20 }), fc.integer({ min: 0, max: 900 }), (gaps, addr) => {
    const maps: Mapping[] = [];
    let at = 0n;
    for (const [gap, len] of gaps) {
      const start = at + BigInt(gap);
      maps.push({ start, end: start + BigInt(len), perms: 'r-xp', offset: 0n, dev: '00:00', inode: 1n, path: '/x', deleted: false });
      at = start + BigInt(len);
    }
    const a = BigInt(addr);
    assert.equal(findMapping(maps, a), maps.find((m) => m.start <= a && a < m.end));
  }));
});

test('editDistance is the Levenshtein distance, bounded for long input; closest picks the nearest below the bound', () => {
  const reference = (a: string, b: string): number => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
    for (let i = 1; i <= a.length; i++) for (let j = 1; j <= b.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length]![b.length]!;
  };
  fc.assert(fc.property(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 }), (a, b) => assert.equal(editDistance(a, b), reference(a, b))));
  assert.equal(editDistance('x'.repeat(257), 'x'), Infinity);
  assert.equal(closest('porbes', ['probes', 'pid', 'out']), 'probes');
  assert.equal(closest('zzzzzz', ['probes', 'pid']), undefined);
});

test('cgroup2 mount: from mountinfo on hybrid and unified hosts, else the conventional places', () => {
  const hybrid = [
    '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
    '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
    '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  ].join('\n');
  const unified = '29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate';
  assert.equal(cgroup2MountOf(hybrid), '/sys/fs/cgroup/unified');
  assert.equal(cgroup2MountOf(unified), '/sys/fs/cgroup');
  assert.equal(cgroup2MountOf('garbage\n - \n'), undefined);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-cg2-'));
  fs.mkdirSync(path.join(root, 'proc/self'), { recursive: true });
  fs.writeFileSync(path.join(root, 'proc/self/mountinfo'), hybrid);
  assert.equal(cgroup2Mount(root), path.join(root, 'sys/fs/cgroup/unified'));
  const bare = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-cg2-'));
  fs.mkdirSync(path.join(bare, 'sys/fs/cgroup/unified'), { recursive: true });
  fs.writeFileSync(path.join(bare, 'sys/fs/cgroup/unified/cgroup.procs'), '');
  assert.equal(cgroup2Mount(bare), path.join(bare, 'sys/fs/cgroup/unified'));
});

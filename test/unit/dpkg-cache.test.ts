import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DpkgCache } from '../../src/packages/dpkg-cache';
import { DirRoot, hostRoot } from '../../src/packages/host/root';
import { PathTable, type PathTableParts } from '../../src/packages/path-table';
import { PackageResolver } from '../../src/packages/resolver';

/**
 * The host's dpkg index kept between runs (src/packages/dpkg-cache.ts): a hit answers exactly as
 * reading the database does; any change of the database (a list edited, added or removed, the
 * status file replaced), a torn or edited cache file, or a directory others can write to means
 * the database is read again.
 */

const FIXTURE = path.join(__dirname, '../../../test/fixtures/packages/root');
const PROBES = [
  '/usr/lib/x86_64-linux-gnu/libssl.so.3', '/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib/x86_64-linux-gnu/libz.so.1', '/usr/bin/curl',
  '/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/share/doc/curl/copyright', '/etc/passwd', '/nonexistent', '/usr/bin/added-later',
];

/** a writable copy of the recorded root, seen as a host root (the kind the cache serves) */
function copyRoot(): { dir: string; root: () => DirRoot } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-dpkg-cache-'));
  fs.cpSync(FIXTURE, dir, { recursive: true });
  return { dir, root: () => new DirRoot('host', dir, dir) };
}

async function answers(r: PackageResolver, paths: readonly string[] = PROBES): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (const p of paths) out.push((await r.attribute(p)).purl);
  return out;
}

/** (settledMs: infinite by default, so no .list names are kept and the counts below do not depend on the test's pace) */
function freshCache(settledMs = Number.POSITIVE_INFINITY): DpkgCache {
  return new DpkgCache(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-cache-dir-')), { settledMs });
}

test('a hit answers as reading the database does, with the same counters; a changed list, a new or removed list, a new status: read again', async () => {
  const { dir, root } = copyRoot();
  const cache = freshCache();
  const plain = new PackageResolver(root());
  const expected = await answers(plain);
  assert.ok(expected.filter((a) => a !== null).length >= 4, 'the fixture owns some of the probes');

  const first = new PackageResolver(root(), undefined, cache);
  assert.deepEqual(await answers(first), expected);
  assert.deepEqual(cache.c, { hits: 0, misses: 1, rejected: 0, written: 1, writeFailures: 0, refusedDir: 0, namesFromCache: 0 });
  const second = new PackageResolver(root(), undefined, cache);
  assert.deepEqual(await answers(second), expected);
  assert.equal(cache.c.hits, 1);
  assert.deepEqual(second.c.dpkg, plain.c.dpkg);

  // a list edited in place (same inode): its ctime and size change
  const curl = path.join(dir, 'var/lib/dpkg/info/curl.list');
  fs.appendFileSync(curl, '/usr/bin/added-later\n');
  const third = new PackageResolver(root(), undefined, cache);
  const now = await answers(third);
  assert.equal(cache.c.hits, 1, 'not a hit');
  assert.equal(cache.c.written, 2);
  assert.equal(now[PROBES.indexOf('/usr/bin/added-later')], now[PROBES.indexOf('/usr/bin/curl')], 'the added path is owned by curl');
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), now);
  assert.equal(cache.c.hits, 2);

  // a list removed, then one added (names differ)
  const zlib = path.join(dir, 'var/lib/dpkg/info/zlib1g:amd64.list');
  const zlibText = fs.readFileSync(zlib);
  fs.rmSync(zlib);
  const without = await answers(new PackageResolver(root(), undefined, cache));
  assert.equal(without[PROBES.indexOf('/usr/lib/x86_64-linux-gnu/libz.so.1')], null);
  fs.writeFileSync(zlib, zlibText);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), now);
  assert.equal(cache.c.hits, 2);

  // the status file replaced as dpkg does it (a new file renamed over it): the version changes
  const status = path.join(dir, 'var/lib/dpkg/status');
  const text = fs.readFileSync(status, 'utf8');
  const bumped = text.replace(/^(Package: curl\n(?:[^\n]+\n)*?Version: )([^\n]+)/m, '$1$2+bumped');
  assert.notEqual(bumped, text);
  fs.writeFileSync(`${status}-new`, bumped);
  fs.renameSync(`${status}-new`, status);
  const afterStatus = await answers(new PackageResolver(root(), undefined, cache));
  assert.match(afterStatus[PROBES.indexOf('/usr/bin/curl')] ?? '', /\+bumped/);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), afterStatus, 'and that is kept');
  assert.equal(cache.c.rejected, 0);
});

test('the .list names come from the cache file while the info directory is unchanged; an added, removed or renamed list is seen', async () => {
  const { dir, root } = copyRoot();
  const info = path.join(dir, 'var/lib/dpkg/info');
  // the cache's clock: `settle()` moves it 10 s on (the directory has not changed for longer than settledMs,
  // 2 s), `justChanged()` back to now (its ctime is within the last 2 s)
  let skew = 0;
  const settle = (): void => { skew = 10_000; };
  const justChanged = (): void => { skew = 0; };
  const cache = new DpkgCache(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-cache-dir-')), { now: () => Date.now() + skew });
  const count = (): number[] => [cache.c.hits, cache.c.namesFromCache, cache.c.written];
  const expected = await answers(new PackageResolver(root()));
  settle();
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.deepEqual(count(), [0, 0, 1], 'written with its names');
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.deepEqual(count(), [1, 1, 1], 'a hit, without reading the directory');

  // a list removed: the directory's ctime changes, its names are read again, and the index too
  const zlib = path.join(info, 'zlib1g:amd64.list');
  const zlibText = fs.readFileSync(zlib);
  fs.rmSync(zlib);
  justChanged();
  const without = await answers(new PackageResolver(root(), undefined, cache));
  assert.equal(without[PROBES.indexOf('/usr/lib/x86_64-linux-gnu/libz.so.1')], null);
  assert.deepEqual(count(), [1, 1, 2], 'a miss, written without names: the directory had just changed');
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), without);
  assert.deepEqual(count(), [2, 1, 2], 'a hit, the names read from the directory');
  settle();
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), without);
  assert.deepEqual(count(), [3, 1, 3], 'a hit; settled since: written again with its names');
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), without);
  assert.deepEqual(count(), [4, 2, 3]);

  // a list added back: seen at once (the names kept are for the directory as it was)
  fs.writeFileSync(zlib, zlibText);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.deepEqual(count(), [4, 2, 4]);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.deepEqual(count(), [5, 3, 4]);
  // a list renamed (as many names, another one): seen too
  fs.renameSync(zlib, path.join(info, 'zlib1g-renamed.list'));
  const renamed = await answers(new PackageResolver(root(), undefined, cache));
  assert.equal(renamed[PROBES.indexOf('/usr/lib/x86_64-linux-gnu/libz.so.1')], null, 'a list whose name is no package of the status file');
  assert.deepEqual(count(), [5, 3, 5]);
  // a list edited in place (the directory unchanged): the names come from the file, the list's stat differs
  fs.renameSync(path.join(info, 'zlib1g-renamed.list'), zlib);
  await answers(new PackageResolver(root(), undefined, cache));
  assert.deepEqual(count(), [5, 3, 6]);
  fs.appendFileSync(path.join(info, 'curl.list'), '/usr/bin/added-later\n');
  const edited = await answers(new PackageResolver(root(), undefined, cache));
  assert.equal(edited[PROBES.indexOf('/usr/bin/added-later')], edited[PROBES.indexOf('/usr/bin/curl')]);
  assert.deepEqual(count(), [5, 4, 7], 'a miss, written with the names it was keyed by');
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), edited);
  assert.deepEqual(count(), [6, 5, 7]);
  assert.equal(cache.c.rejected, 0);
});

test('a torn, truncated or edited cache file is rejected and the database read again; the file is written anew', async () => {
  const { root } = copyRoot();
  const cache = freshCache();
  const expected = await answers(new PackageResolver(root()));
  await answers(new PackageResolver(root(), undefined, cache));
  const good = fs.readFileSync(cache.file);
  const damage: Array<[string, (b: Buffer) => Buffer]> = [
    ['one byte of the table flipped', (b) => { const c = Buffer.from(b); c[c.length >> 1] ^= 0x40; return c; }],
    ['truncated', (b) => b.subarray(0, b.length - 100)],
    ['empty', () => Buffer.alloc(0)],
    ['another file', () => Buffer.from('RTEVDPK1 not really\n')],
  ];
  let rejected = 0;
  for (const [what, damageOf] of damage) {
    fs.writeFileSync(cache.file, damageOf(good), { mode: 0o600 });
    assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected, what);
    assert.equal(cache.c.rejected, ++rejected, `${what}: rejected (${cache.lastRejection})`);
    assert.deepEqual(fs.readFileSync(cache.file), good, `${what}: written again`);
  }
  assert.equal(cache.c.hits, 0);
});

test('PathTable.fromParts refuses tables that do not fit their arena or slots (what a consistent but wrong cache file would give)', () => {
  const t = new PathTable(4);
  const b = Buffer.from('/usr/bin/a/usr/bin/bb');
  t.addBytes(b, 0, 10, 0);
  t.addBytes(b, 10, b.length, 1);
  const ok = PathTable.fromParts(t.parts(), 2);
  assert.equal(ok.get('/usr/bin/bb'), 1);
  assert.equal(ok.get('/usr/bin/a'), 0);
  assert.equal(ok.get('/usr/bin/c'), undefined);
  const bad = (edit: (p: PathTableParts) => void): void => {
    const p = t.parts();
    const copy: PathTableParts = { arena: p.arena, start: p.start.slice(), len: p.len.slice(), value: p.value.slice(), hash: p.hash.slice(), slots: p.slots.slice() };
    edit(copy);
    assert.throws(() => PathTable.fromParts(copy, 2), RangeError);
  };
  bad((p) => { p.len[1] = 1000; });
  bad((p) => { p.value[0] = 2; });
  bad((p) => { p.slots = p.slots.subarray(0, 12); });
  bad((p) => { const i = p.slots.findIndex((s) => s !== 0); p.slots[i] = 3; });
  bad((p) => { const i = p.slots.findIndex((s) => s !== 0); p.slots[i] = 0; });
  bad((p) => { p.hash = p.hash.subarray(0, 1); });
});

test('a cache directory or file others can write to is not used; a symlinked list means no cache for that database', async () => {
  const { dir, root } = copyRoot();
  const cache = freshCache();
  const expected = await answers(new PackageResolver(root()));
  fs.chmodSync(cache.dir, 0o777);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.equal(cache.c.written, 0);
  assert.ok(cache.c.refusedDir > 0);
  assert.equal(fs.existsSync(cache.file), false);
  fs.chmodSync(cache.dir, 0o700);
  await answers(new PackageResolver(root(), undefined, cache));
  assert.equal(cache.c.written, 1);
  fs.chmodSync(cache.file, 0o666);
  assert.deepEqual(await answers(new PackageResolver(root(), undefined, cache)), expected);
  assert.equal(cache.c.hits, 0, 'a file others can write to is not read');
  assert.equal(cache.c.rejected, 1);

  const other = freshCache();
  fs.symlinkSync('/etc/hostname', path.join(dir, 'var/lib/dpkg/info/evil.list'));
  await answers(new PackageResolver(root(), undefined, other));
  assert.deepEqual(other.c, { hits: 0, misses: 0, rejected: 0, written: 0, writeFailures: 0, refusedDir: 0, namesFromCache: 0 }, 'not cached at all');
  // and roots other than the host's are never cached
  const proc = new PackageResolver(new DirRoot('proc-root', dir, dir), undefined, other);
  await answers(proc);
  assert.equal(other.c.written, 0);
});

test("the host's own dpkg database: a hit gives the same owner for every listed path as a fresh read", async (t) => {
  if (!fs.existsSync('/var/lib/dpkg/status')) {
    // CI runs on Debian: a missing database there is a broken machine, not a reason to skip
    if (process.env['CI'] === 'true') throw new Error('no dpkg database on this host (/var/lib/dpkg/status)');
    t.skip('no dpkg database on this host');
    return;
  }
  const cache = freshCache(2000);
  const fresh = new PackageResolver(hostRoot(), undefined, cache);
  const lists = fs.readdirSync('/var/lib/dpkg/info').filter((n) => n.endsWith('.list')).sort();
  const sample: string[] = ['/nonexistent/x', '/usr', '/'];
  for (const [i, name] of lists.entries()) {
    if (i % 7 !== 0) continue;
    const lines = fs.readFileSync(path.join('/var/lib/dpkg/info', name), 'utf8').split('\n').filter((l) => l.startsWith('/') && l.length > 1);
    sample.push(...lines.filter((_, j) => j % 11 === 0));
  }
  const expected = await answers(fresh, sample);
  if (cache.c.written === 0) {
    if (process.env['CI'] === 'true') throw new Error(`the host's database was not cached (${JSON.stringify(cache.c)})`);
    t.skip(`the host's database cannot be cached here (${JSON.stringify(cache.c)})`);
    return;
  }
  const hit = new PackageResolver(hostRoot(), undefined, cache);
  const infoSettled = fs.statSync('/var/lib/dpkg/info', { bigint: true }).ctimeNs / 1_000_000n < BigInt(Date.now() - 5000);
  assert.deepEqual(await answers(hit, sample), expected);
  assert.equal(cache.c.hits, 1);
  // an info directory unchanged for seconds: its names came from the cache file
  if (infoSettled) assert.equal(cache.c.namesFromCache, 1);
  assert.deepEqual(hit.c.dpkg, fresh.c.dpkg);
});

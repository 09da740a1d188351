import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Attributor, AttributionSubjects, checkAttribution, debPurl, DirRoot, hostRoot, npmPurl, PackageResolver, parseDpkgStatus,
  parseOsRelease, parsePurl, parseRecord, pyToSource, samePurl, subjectsOf, usrMergeAliases, DEFAULT_PACKAGE_LIMITS, type RootFs,
} from '../../src/packages';
import { requireTools } from '../helpers/tools';

/**
 * Package attribution on a recorded root (test/fixtures/packages/root: stanzas and lists
 * copied from this Debian 12 host's dpkg database, a pip RECORD, package.json files, a Maven
 * jar), on hostile databases made here, and on the host's own dpkg database, checked against
 * dpkg-query.
 */

const FIXTURE = path.join(__dirname, '../../../test/fixtures/packages/root');
const fixture = (): RootFs => new DirRoot('host', 'fixture', FIXTURE);

test('purls: syft forms, epoch colon and + kept, upstream query-escaped, compared parsed', () => {
  assert.equal(
    debPurl({ name: 'zlib1g', version: '1:1.2.13.dfsg-1', arch: 'amd64', distro: { id: 'debian', versionId: '12' }, source: { name: 'zlib' } }),
    'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12&upstream=zlib',
  );
  // syft's own test expectations (syft/pkg/cataloger/debian/package_test.go)
  assert.equal(debPurl({ name: 'p', version: 'v', distro: { id: 'debian', versionId: '11' }, source: { name: 's', version: '2.3' } }), 'pkg:deb/debian/p@v?distro=debian-11&upstream=s%402.3');
  assert.equal(debPurl({ name: 'p', version: 'v', arch: 'a', distro: { id: 'ubuntu', versionId: '16.04' } }), 'pkg:deb/ubuntu/p@v?arch=a&distro=ubuntu-16.04');
  assert.equal(npmPurl('@types/node', '20.1.0'), 'pkg:npm/%40types/node@20.1.0');
  assert.ok(samePurl('pkg:deb/debian/zlib1g@1%3A1.2.13.dfsg-1?distro=debian-12&arch=amd64', 'pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12'));
  assert.ok(!samePurl('pkg:deb/debian/zlib1g@1:1.2.13?arch=amd64', 'pkg:deb/debian/zlib1g@1:1.2.14?arch=amd64'));
  assert.deepEqual(parsePurl('pkg:golang/golang.org/x/net@v0.1.0'), { type: 'golang', namespace: 'golang.org/x', name: 'net', version: 'v0.1.0', qualifiers: {} });
  for (const bad of ['', 'pkg:', 'pkg:deb', 'http://x', 'pkg:deb/x@%zz', 'pkg:deb/debian/x?arch']) assert.equal(parsePurl(bad), undefined, bad);
});

test('merged /usr aliases and .pyc to .py', () => {
  assert.deepEqual(usrMergeAliases('/usr/lib/x86_64-linux-gnu/libz.so.1'), ['/usr/lib/x86_64-linux-gnu/libz.so.1', '/lib/x86_64-linux-gnu/libz.so.1']);
  assert.deepEqual(usrMergeAliases('/bin/sh'), ['/bin/sh', '/usr/bin/sh']);
  assert.deepEqual(usrMergeAliases('/etc/hostname'), ['/etc/hostname']);
  assert.equal(pyToSource('/a/OpenSSL/__pycache__/SSL.cpython-311.pyc'), '/a/OpenSSL/SSL.py');
  assert.equal(pyToSource('/a/__pycache__/m.cpython-311.opt-1.pyc'), '/a/m.py');
  assert.equal(pyToSource('/a/m.pyc'), '/a/m.py');
  assert.equal(pyToSource('/a/m.py'), undefined);
});

test('fixture root: dpkg (both /usr forms, symlinked lib, Multi-Arch lists, Source), .pyc, RECORD, npm, jar', async () => {
  const r = new PackageResolver(fixture());
  const os12 = { id: 'debian', versionId: '12' };
  const want = (name: string): string => {
    const stanza = fs.readFileSync(path.join(FIXTURE, 'var/lib/dpkg/status'), 'utf8').split('\n\n').find((s) => s.startsWith(`Package: ${name}\n`))!;
    const f = (k: string): string | undefined => new RegExp(`^${k}: (.*)$`, 'm').exec(stanza)?.[1];
    const src = f('Source');
    const m = src === undefined ? undefined : /^(\S+)(?: \((.*)\))?$/.exec(src)!;
    return debPurl({ name, version: f('Version')!, arch: f('Architecture')!, distro: os12, ...(m ? { source: { name: m[1]!, ...(m[2] ? { version: m[2] } : {}) } } : {}) });
  };
  const cases: Array<[string, string, string]> = [
    ['/usr/bin/curl', want('curl'), 'dpkg'],
    ['/bin/curl', want('curl'), 'dpkg'],
    ['/lib/x86_64-linux-gnu/libz.so.1', want('zlib1g'), 'dpkg'],
    ['/usr/lib/x86_64-linux-gnu/libz.so.1.2.13', want('zlib1g'), 'dpkg'],
    ['/usr/lib/x86_64-linux-gnu/libssl.so.3', want('libssl3'), 'dpkg'],
    ['/usr/lib/python3/dist-packages/OpenSSL/__pycache__/SSL.cpython-311.pyc', want('python3-openssl'), 'dpkg'],
    ['/usr/local/lib/python3.10/site-packages/pip/_internal/__pycache__/main.cpython-310.pyc', 'pkg:pypi/pip@23.0.1', 'python-record'],
    ['/usr/local/lib/python3.10/site-packages/pip/_internal/main.py', 'pkg:pypi/pip@23.0.1', 'python-record'],
    ['/opt/app/node_modules/@types/node/index.d.ts', 'pkg:npm/%40types/node@20.11.5', 'npm'],
    ['/opt/app/node_modules/ms/index.js', 'pkg:npm/ms@2.1.3', 'npm'],
    ['/opt/java/javax.annotation-api-1.2.jar', 'pkg:maven/javax.annotation/javax.annotation-api@1.2', 'jar-pom'],
  ];
  for (const [p, purl, via] of cases) {
    const a = await r.attribute(p, 'open');
    assert.equal(a.purl, purl, p);
    assert.equal(a.via, via, p);
    assert.equal(a.reason, null, p);
  }
  assert.match(want('libssl3'), /upstream=openssl$/);
  assert.equal((await r.attribute('/etc/os-release')).reason, 'not_owned');
  assert.equal((await r.attribute('/usr/bin/ghost')).reason, 'not_found'); // an orphan list owns nothing
  assert.equal(r.c.dpkg.orphanLists, 1);
  assert.equal(r.c.dpkg.packages, 5);
});

/** hostileRoot makes a root whose dpkg database is replaced by `setup`. */
function hostileRoot(setup: (dpkg: string, root: string) => void): { root: RootFs; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-pkg-'));
  fs.mkdirSync(path.join(dir, 'var/lib/dpkg/info'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'etc'));
  fs.mkdirSync(path.join(dir, 'usr/bin'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'etc/os-release'), 'ID=debian\nVERSION_ID="12"\n');
  fs.writeFileSync(path.join(dir, 'usr/bin/tool'), '');
  setup(path.join(dir, 'var/lib/dpkg'), dir);
  return { root: new DirRoot('proc-root', dir, dir), dir };
}

test('hostile or missing dpkg databases give counted unknowns, never a crash or a hang', async () => {
  const limits = { ...DEFAULT_PACKAGE_LIMITS, maxStatusBytes: 1 << 20, maxOwnedPaths: 1000 };
  const cases: Array<[string, (dpkg: string, root: string) => void, string]> = [
    ['missing', (d) => fs.rmSync(d, { recursive: true }), 'no_database'],
    ['huge status', (d) => fs.writeFileSync(path.join(d, 'status'), 'Package: a\n'.repeat(200_000)), 'db_too_large'],
    ['status is a FIFO', (d) => execFileSync('mkfifo', [path.join(d, 'status')]), 'db_malformed'],
    ['status escapes to the host', (d) => fs.symlinkSync('/etc/shadow', path.join(d, 'status')), 'no_database'],
    ['status is /dev/zero', (d, root) => {
      fs.mkdirSync(path.join(root, 'dev'));
      fs.symlinkSync('/dev/zero', path.join(d, 'status'));
    }, 'no_database'],
    ['symlink loop', (d) => {
      fs.symlinkSync('b', path.join(d, 'a'));
      fs.symlinkSync('a', path.join(d, 'b'));
      fs.symlinkSync('a', path.join(d, 'status'));
    }, 'no_database'],
    ['a list with a million paths', (d) => {
      fs.writeFileSync(path.join(d, 'status'), 'Package: tool\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n');
      fs.writeFileSync(path.join(d, 'info/tool.list'), Array.from({ length: 5000 }, (_, i) => `/usr/bin/f${i}`).join('\n'));
    }, 'db_too_large'],
    ['binary garbage status', (d) => fs.writeFileSync(path.join(d, 'status'), Buffer.from(Array.from({ length: 100_000 }, (_, i) => (i * 7919) % 256))), 'not_owned'],
  ];
  for (const [name, setup, reason] of cases) {
    const { root, dir } = hostileRoot(setup);
    const r = new PackageResolver(root, limits);
    const a = await r.attribute('/usr/bin/tool', 'exec');
    assert.equal(a.purl, null, name);
    assert.equal(a.reason, reason, `${name}: ${JSON.stringify(a)} ${JSON.stringify(r.c)}`);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // truncated: the last stanza cut mid-line still parses the complete ones, and the cut one is counted
  const st = parseDpkgStatus('Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\nVers');
  assert.equal(st.packages.length, 1);
  assert.equal(st.malformed, 1);
  // a stanza with a shell-ish name or version is refused, not turned into a purl
  assert.equal(parseDpkgStatus('Package: a/../../x\nVersion: 1\n').malformed, 1);
  assert.equal(parseDpkgStatus('Package: a\nVersion: 1?x=y\n').malformed, 1);
  assert.deepEqual(parseOsRelease('ID="debian"\nVERSION_ID=\'12\'\nID_LIKE="x y"\n'), { id: 'debian', versionId: '12', idLike: ['x', 'y'] });
  assert.deepEqual(parseRecord('"a,b.py",sha256=x,10\nc.py,,\n\n"unterminated\n'), [{ path: 'a,b.py', hash: 'sha256=x', size: 10 }, { path: 'c.py' }]);
});

/*
 * Tool: dpkg-query, the oracle for the purls of this host's curl and libssl3 (the test is about
 * this host's dpkg database, so a recorded answer would not do). A missing tool fails the test.
 */
test('host dpkg: /usr/bin/curl and libssl get the purl dpkg-query gives', async () => {
  requireTools('dpkg-query', 'curl');
  const q = (pkg: string): string => {
    const [name, version, arch, srcName, srcVersion] = execFileSync('dpkg-query', ['-W', '-f', '${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}', pkg], { encoding: 'utf8' }).split('\t');
    const os = parseOsRelease(fs.readFileSync('/etc/os-release', 'utf8'));
    // dpkg-query names the source even when there is no Source field; syft writes upstream only for a Source field
    const status = execFileSync('dpkg-query', ['-s', pkg], { encoding: 'utf8' });
    const hasSource = /^Source: /m.test(status);
    return debPurl({
      name: name!, version: version!, arch: arch!, distro: { id: os.id!, versionId: os.versionId! },
      ...(hasSource ? { source: { name: srcName!, ...(srcVersion !== version ? { version: srcVersion! } : {}) } } : {}),
    });
  };
  const owner = (file: string): string => execFileSync('dpkg-query', ['-S', file], { encoding: 'utf8' }).split(':')[0]!;
  const r = new PackageResolver(hostRoot());
  const curl = await r.attribute('/usr/bin/curl', 'exec');
  assert.ok(samePurl(curl.purl!, q('curl')), `${curl.purl} vs ${q('curl')}`);
  const libssl = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
  if (fs.existsSync(libssl)) {
    const a = await r.attribute(libssl, 'library');
    assert.ok(samePurl(a.purl!, q(owner(libssl))), `${a.purl}`);
    assert.match(a.purl!, /upstream=openssl/);
  }
  // /usr/bin/node embeds OpenSSL but is attributed to its own package
  if (fs.existsSync('/usr/bin/node')) {
    const a = await r.attribute('/usr/bin/node', 'exec');
    assert.equal(parsePurl(a.purl!)?.name, owner('/usr/bin/node'));
  }
});

test('Attributor: one resolution per (scope, path), windows per chunk, and verify-side check', async () => {
  const att = new Attributor({ hostRoot: fixture(), openProcRoot: () => undefined,
    containerFacts: (id) => (id === 'podman://' + 'a'.repeat(64) ? { runtime: 'podman', id: 'a'.repeat(64), names: ['web'], digest: 'sha256:' + 'b'.repeat(64), basis: 'manifest', image: { id: 'sha256:' + 'c'.repeat(64), names: ['localhost/img:1'] } } : undefined) });
  const cid = 'podman://' + 'a'.repeat(64);
  const recs = [
    { pid: 1, event: { type: 'process_exec', filename: '/usr/bin/curl' } },
    { pid: 1, event: { type: 'file_open', path: '/lib/x86_64-linux-gnu/libz.so.1' } },
    { pid: 1, event: { type: 'file_open', path: '/lib/x86_64-linux-gnu/libz.so.1' } },
    { pid: 2, container_id: cid, image_digest: 'sha256:' + 'b'.repeat(64), event: { type: 'file_open', path: '/etc/hostname' } },
    { pid: 2, event: { type: 'tcp_state' } },
  ];
  for (const r of recs) att.note(r);
  const t1 = att.takeWindow();
  const a1 = await att.finish(t1, 5000);
  assert.equal(a1.files.length, 3);
  assert.deepEqual(a1.files.map((f) => [f.scope, f.path]), [['host', '/lib/x86_64-linux-gnu/libz.so.1'], ['host', '/usr/bin/curl'], [cid, '/etc/hostname']]);
  assert.equal(a1.files[2]!.reason, 'root_gone');
  assert.equal(a1.files[1]!.via, 'dpkg'); // no live process and no containers-storage image here
  assert.deepEqual(a1.containers, [{ container_id: cid, runtime: 'podman', id: 'a'.repeat(64), names: ['web'], image: { names: ['localhost/img:1'], digest: 'sha256:' + 'b'.repeat(64), digest_basis: 'manifest', id: 'sha256:' + 'c'.repeat(64) }, reason: null }]);
  const subjects = new AttributionSubjects();
  for (const r of recs) subjects.add(subjectsOf(r));
  assert.deepEqual(checkAttribution(a1, subjects), []);
  // tampering is seen: a purl changed to garbage, a file removed, a container renamed to a digest it never had
  const bad1 = structuredClone(a1);
  bad1.files[1]!.purl = 'not a purl';
  assert.ok(checkAttribution(bad1, subjects).some((m) => m.includes('does not parse')));
  const bad2 = structuredClone(a1);
  bad2.files.pop();
  assert.ok(checkAttribution(bad2, subjects).some((m) => m.includes('omitted')));
  const bad3 = structuredClone(a1);
  bad3.containers[0]!.image.digest = 'sha256:' + 'd'.repeat(64);
  assert.ok(checkAttribution(bad3, subjects).some((m) => m.includes('carry image_digest')));
  // the next window starts empty; cached answers are not resolved again
  const before = att.counters().resolved;
  att.note(recs[0]!);
  const a2 = await att.finish(att.takeWindow(), 5000);
  assert.equal(a2.files.length, 1);
  assert.equal(att.counters().resolved, before);
  att.close();
});

test("the host root resolves with realpath(3): the same canonical paths as the component walk a confined root does", async () => {
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-resolve-')));
  try {
    fs.mkdirSync(path.join(dir, 'a/b'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'a/b/f'), 'x');
    fs.symlinkSync('b', path.join(dir, 'a/rel'));
    fs.symlinkSync(path.join(dir, 'a/b/f'), path.join(dir, 'abs'));
    fs.symlinkSync('../a/b/../b/f', path.join(dir, 'a/up'));
    fs.symlinkSync('missing', path.join(dir, 'dangling'));
    fs.symlinkSync('loop2', path.join(dir, 'loop1'));
    fs.symlinkSync('loop1', path.join(dir, 'loop2'));
    const host = hostRoot();
    // the same tree through a root whose prefix is not '/' walks component by component
    const walked = new DirRoot('image-layers', 'walk', dir);
    const inside = ['/a/b/f', '/a/rel/f', '/a/./rel/../b/f', '/abs', '/a/up', '/dangling', '/loop1', '/a/b/f/g', '/a/missing', '/a', '/', '/a/b/../../a/b/f', '/../../a/b/f'];
    for (const p of inside) {
      const viaHost = await host.resolve(dir + p);
      // '/abs' points at the tree by its host path: the confined root reads that as a path inside itself
      const viaWalk = p === '/abs' ? await walked.resolve('/a/b/f') : await walked.resolve(p);
      const expected = viaWalk === undefined ? undefined : dir + (viaWalk === '/' ? '' : viaWalk);
      if (p === '/' || p === '/../../a/b/f') continue; // '..' above the tree leaves it on the host: no confined equivalent
      assert.equal(viaHost, expected, p);
    }
    assert.equal(await host.resolve('/'), '/');
    assert.equal(await host.resolve('relative/path'), undefined);
    // empty components are ignored, as the walk does
    assert.equal(await host.resolve(`${dir}/a/b/f/`), `${dir}/a/b/f`);
    assert.equal(await walked.resolve('/a/b/f/'), '/a/b/f');
    assert.equal(await host.resolve('//'), '/');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

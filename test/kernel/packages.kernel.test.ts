import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { debPurl, findContainersByName, parseOsRelease, samePurl, type ChunkAttribution } from '../../src/packages';
import { REPO, rootOrSkip, tempDir } from '../helpers/collector';

/**
 * Package attribution in real evidence: a `podman run --rm` container whose name, image
 * reference and digest must survive in the signed chunks after the container is gone, with
 * its own dpkg database read through the container's root; /usr/bin/curl with the exact purl
 * dpkg-query gives; a Go program built with Debian's golang-go attributed to its module.
 * Needs podman, runc, busybox-static, golang-go, curl (Makefile APT_PACKAGES).
 */

const IMAGE = 'localhost/rtev-pkgs:1';
const sh = (cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string => execFileSync(cmd, args, { encoding: 'utf8', ...opts }).trim();

/** The image: busybox-static with the dpkg stanza, list and os-release of this host. */
function mustImage(): void {
  try {
    sh('podman', ['image', 'exists', IMAGE]);
    return;
  } catch {
    // build it below
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-pkgs-'));
  const root = path.join(dir, 'root');
  for (const d of ['bin', 'etc', 'var/lib/dpkg/info']) fs.mkdirSync(path.join(root, d), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  for (const a of ['sh', 'cat']) fs.symlinkSync('busybox', path.join(root, 'bin', a));
  fs.copyFileSync('/etc/os-release', path.join(root, 'etc/os-release'));
  fs.writeFileSync(path.join(root, 'var/lib/dpkg/status'), sh('dpkg-query', ['-s', 'busybox-static']) + '\n');
  fs.copyFileSync('/var/lib/dpkg/info/busybox-static.list', path.join(root, 'var/lib/dpkg/info/busybox-static.list'));
  sh('tar', ['-C', root, '-cf', path.join(dir, 'root.tar'), '.']);
  sh('podman', ['import', path.join(dir, 'root.tar'), IMAGE]);
  fs.rmSync(dir, { recursive: true, force: true });
}

/** debPurlOf computes a package's purl from dpkg-query, independently of src/packages. */
function debPurlOf(pkg: string): string {
  const status = sh('dpkg-query', ['-s', pkg]);
  const f = (k: string): string | undefined => new RegExp(`^${k}: (.*)$`, 'm').exec(status)?.[1];
  const src = f('Source');
  const m = src === undefined ? undefined : /^(\S+)(?: \((.*)\))?$/.exec(src)!;
  const osr = parseOsRelease(fs.readFileSync('/etc/os-release', 'utf8'));
  return debPurl({ name: pkg, version: f('Version')!, arch: f('Architecture')!, distro: { id: osr.id!, versionId: osr.versionId! },
    ...(m ? { source: { name: m[1]!, ...(m[2] ? { version: m[2] } : {}) } } : {}) });
}

function attributions(dir: string): ChunkAttribution[] {
  return fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json') && n.startsWith('chunk-')).sort().map((n) => {
    const env = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { payload: string };
    return (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate: { attribution: ChunkAttribution } }).predicate.attribution;
  });
}

test('attribution survives podman run --rm; curl and a golang-go program get their packages', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  mustImage();
  const digest = sh('podman', ['image', 'inspect', '--format', '{{.Digest}}', IMAGE]);
  const imageId = sh('podman', ['image', 'inspect', '--format', '{{.Id}}', IMAGE]);
  // a Go program from Debian's golang-go, with a module path of its own
  const src = tempDir('rtev-go-');
  fs.writeFileSync(path.join(src, 'go.mod'), 'module example.com/rtevhello\n\ngo 1.19\n');
  fs.writeFileSync(path.join(src, 'main.go'), 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello") }\n');
  sh('go', ['build', '-o', 'hello', '.'], { cwd: src, env: { ...process.env, GOCACHE: path.join(src, '.cache'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' } });
  const hello = path.join(src, 'hello');

  const out = path.join(tempDir('rtev-ev-'), 'ev');
  const collector = spawn(path.join(REPO, 'bin/rtev'), ['collect', '--out', out, '--quiet', '--probes', 'file_open,process_exec', '--chunk-age', '3s'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  collector.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => collector.once('exit', r));
  for (let i = 0; i < 200 && !fs.existsSync(path.join(out, 'chunk-000000000001.ndjson.partial')); i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1500)); // probes attached, host databases warm
  const name = `rtev-pkgs-${process.pid}`;
  sh('podman', ['--runtime', '/usr/sbin/runc', 'run', '--rm', '--name', name, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000',
    '--network', 'none', IMAGE, '/bin/sh', '-c', 'cat /etc/os-release >/dev/null; /bin/busybox true']);
  sh('curl', ['--version']);
  sh(hello, []);
  await new Promise((r) => setTimeout(r, 1000));
  collector.kill('SIGINT');
  assert.equal(await exited, 0, err);
  assert.throws(() => sh('podman', ['container', 'exists', name]), 'the container is gone');

  const verify = spawn(path.join(REPO, 'bin/rtev'), ['verify', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let vout = '';
  verify.stdout.on('data', (c: Buffer) => (vout += c.toString()));
  const vcode = await new Promise<number | null>((r) => verify.once('exit', r));
  assert.ok(vcode === 0 || vcode === 10, `verify: ${vcode}\n${vout}`);

  const all = attributions(out);
  const containers = all.flatMap((a) => a.containers);
  const mine = findContainersByName(containers, name);
  assert.ok(mine.length > 0, `container ${name} named in the signed evidence: ${JSON.stringify(containers)}\n${vout}`);
  for (const c of mine) {
    assert.equal(c.image.digest, digest);
    assert.equal(c.image.id, `sha256:${imageId}`);
    assert.ok(c.image.names.includes(IMAGE), JSON.stringify(c.image));
  }
  const files = all.flatMap((a) => a.files);
  const inContainer = files.filter((f) => f.scope === mine[0]!.container_id);
  const busybox = inContainer.find((f) => f.path === '/bin/busybox');
  assert.ok(busybox, `the container's /bin/busybox is attributed: ${JSON.stringify(inContainer)}`);
  assert.ok(samePurl(busybox.purl!, debPurlOf('busybox-static')), JSON.stringify(busybox));
  assert.ok(busybox.root === 'proc-root' || busybox.root === 'image-layers', JSON.stringify(busybox));
  const osRelease = inContainer.find((f) => f.path === '/etc/os-release');
  assert.equal(osRelease?.reason, 'not_owned', JSON.stringify(osRelease));

  const curl = files.find((f) => f.scope === 'host' && f.path === '/usr/bin/curl');
  assert.ok(curl?.purl !== undefined && curl.purl !== null && samePurl(curl.purl, debPurlOf('curl')), `${JSON.stringify(curl)}\n${vout}`);
  const go = files.find((f) => f.scope === 'host' && f.path === hello);
  assert.equal(go?.purl, 'pkg:golang/example.com/rtevhello@%28devel%29', JSON.stringify(go));
  assert.equal(go?.via, 'go-buildinfo');
});

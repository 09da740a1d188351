import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { computeNodeHash, resolveTargets, Symbolizer } from '../../src/symbolize';
import { buildGo, runtimeAddr, start, tempDir } from '../progs/func/build';
import { perfPython } from '../helpers/python';
import { requireTools } from '../helpers/tools';

/*
 * Tools: go (builds test/progs/func/goprog normally and with -s -w), openssl (a TLS server
 * process, s_server, and its key), curl (the client that makes the server call SSL_read) and
 * dpkg-query (the oracle for libssl3's purl). Why not recorded fixtures: each test symbolizes a
 * live process, so the program must run here: the Go binary is built by the toolchain users
 * have (its pclntab and build info are what is under test), and the OpenSSL case must be this
 * machine's libssl3 with the dpkg record that names it. A missing tool fails the test (the
 * Makefile installs them). The Python case needs a CPython >= 3.12 (perf trampoline), which
 * `make python-perf` installs (below).
 */

// Package main's functions are named `main.…` in Go binaries (and in govulncheck).
const GO_SYM = 'main.Server.Handle';
// Go 1.19 records "(devel)" for a main module built outside version control.
const GO_COMPONENT = 'pkg:golang/example.com/rtevgo@%28devel%29';

test('go: pclntab symbol in govulncheck form, component from build info, runtime go (normal and -s -w)', async () => {
  requireTools('go');
  const bins = buildGo(tempDir());
  for (const bin of [bins.normal, bins.stripped]) {
    const { targets } = await resolveTargets([`${bin}:${GO_SYM}`]);
    assert.equal(targets.length, 1, bin);
    const t = targets[0]!;
    assert.equal(t.kind, 'go');
    assert.equal(t.symbol, GO_SYM);
    assert.equal(t.rawSymbol, 'main.(*Server).Handle');
    assert.equal(t.component, GO_COMPONENT);
    assert.equal(t.nodeHash, computeNodeHash('go', GO_COMPONENT, GO_SYM));
    const p = await start(bin);
    try {
      const addr = p.values['handle']!;
      assert.equal(runtimeAddr(p.pid, bin, t.fileOffset), addr, 'file offset maps to the function Go reports');
      const d = new Symbolizer().describeCall(p.pid, undefined, addr, [addr]);
      assert.equal(d.runtime, 'go');
      assert.equal(d.symbol, GO_SYM);
      assert.equal(d.kind, 'go');
      assert.equal(d.node_hash, t.nodeHash);
    } finally {
      await p.stop();
    }
  }
  // Standard-library functions get govulncheck's stdlib module.
  const { targets } = await resolveTargets([`${bins.stripped}:fmt.Fprintf`]);
  assert.match(targets[0]!.component, /^pkg:golang\/stdlib@v1\.\d+/);
});

/** freePort: a loopback port nobody listens on right now (the kernel picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function dpkgPurl(pkg: string): string | undefined {
  try {
    const v = execFileSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
    return `pkg:deb/debian/${pkg}@${v}`;
  } catch {
    return undefined;
  }
}

test('libssl: SSL_read in a TLS server that curl talks to has the dpkg purl component and node_hash', async () => {
  requireTools('openssl', 'curl', 'dpkg-query');
  assert.ok(dpkgPurl('libssl3') !== undefined, 'libssl3 is a dpkg package here (libssl-dev in APT_PACKAGES depends on it)');
  const dir = tempDir();
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
    '-keyout', path.join(dir, 'k.pem'), '-out', path.join(dir, 'c.pem')], { stdio: 'ignore' });
  const port = await freePort(); // (a port derived from the pid collided with other test runs)
  const server = require('node:child_process').spawn('openssl', ['s_server', '-quiet', '-www', '-accept', String(port),
    '-key', path.join(dir, 'k.pem'), '-cert', path.join(dir, 'c.pem')], { stdio: ['pipe', 'ignore', 'ignore'] });
  try {
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ok = spawnSync('curl', ['-sk', '--max-time', '5', `https://127.0.0.1:${port}/`]).status === 0;
    }
    assert.ok(ok, 'curl fetched over TLS');
    const { targets } = await resolveTargets(['libssl.so.3:SSL_read']);
    assert.equal(targets.length, 1);
    const t = targets[0]!;
    const want = dpkgPurl('libssl3')!;
    assert.equal(t.component, want);
    assert.equal(t.nodeHash, computeNodeHash('native', want, 'SSL_read'));
    const addr = runtimeAddr(server.pid, t.openPath, t.fileOffset);
    const d = new Symbolizer().describeCall(server.pid, undefined, addr, [addr]);
    assert.equal(d.symbol, 'SSL_read');
    assert.match(d.library!, /libssl\.so\.3$/);
    assert.equal(d.runtime, 'native');
    assert.equal(d.node_hash, t.nodeHash);
    // The purl spec form resolves to the same attachment.
    const viaPurl = await resolveTargets([`${want}:SSL_read`]);
    assert.equal(viaPurl.targets[0]!.fileOffset, t.fileOffset);
  } finally {
    server.kill('SIGKILL');
  }
});

test('node: --perf-basic-prof JIT frame named from the perf map, runtime node', async () => {
  const script = `
    function hotJsFunction(n) { let s = 0; for (let i = 0; i < n; i++) s += i % 7; return s; }
    for (let i = 0; i < 20000; i++) hotJsFunction(100);
    console.log('pid=' + process.pid + ' ready=0x1');
    process.stdin.resume(); process.stdin.on('end', () => process.exit(0));`;
  const p = await start(process.execPath, ['--perf-basic-prof', '-e', script]);
  try {
    const map = fs.readFileSync(`/tmp/perf-${p.pid}.map`, 'utf8');
    const line = map.split('\n').find((l) => / JS:\S*hotJsFunction /.test(l));
    assert.ok(line, 'perf map has hotJsFunction');
    const jit = BigInt('0x' + line.split(' ')[0]) + 1n;
    const { targets } = await resolveTargets([`${fs.realpathSync(process.execPath)}:uv_os_getpid`]);
    const native = runtimeAddr(p.pid, targets[0]!.openPath, targets[0]!.fileOffset);
    const s = new Symbolizer();
    const d = s.describeCall(p.pid, undefined, native, [native, jit]);
    assert.equal(d.runtime, 'node');
    assert.equal(d.symbol, 'uv_os_getpid');
    assert.match(d.frames[1]!.symbol!, /^JS:\S*hotJsFunction /);
    assert.equal(d.frames[1]!.kind, 'node');
    assert.equal(d.frames[1]!.source, 'perfmap');
  } finally {
    await p.stop();
    fs.rmSync(`/tmp/perf-${p.pid}.map`, { force: true });
  }
});

// Debian 12's python3 is 3.11, which has no perf trampoline: `make python-perf` (part of `make test`
// and `make test-unit`) installs Debian 13's python3.13 into .cache/python3 (test/helpers/python.ts).
// Without it this case fails in CI and, elsewhere, skips naming the command that installs it.
const py = perfPython();

test('python: -X perf trampoline frames named from the perf map, runtime python', async (t) => {
  if ('missing' in py) {
    if (process.env['CI'] === 'true') throw new Error(py.missing);
    t.skip(py.missing);
    return;
  }
  const script = [
    'import os, sys',
    'def hot_py_function(n):',
    '    return sum(range(n))',
    'def outer_py_function(n):',
    '    return hot_py_function(n)',
    'for _ in range(1000): outer_py_function(10)',
    'print(f"pid={os.getpid()} ready=0x1", flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const p = await start(py.python, ['-X', 'perf', '-c', script]);
  try {
    const map = fs.readFileSync(`/tmp/perf-${p.pid}.map`, 'utf8').split('\n');
    const addrOf = (fn: string): bigint => {
      const line = map.find((l) => new RegExp(` py::${fn}:`).test(l));
      assert.ok(line, `perf map has ${fn}`);
      return BigInt('0x' + line.split(' ')[0]) + 1n; // inside the trampoline, not at its first byte
    };
    const inner = addrOf('hot_py_function');
    const outer = addrOf('outer_py_function');
    const s = new Symbolizer();
    const d = s.describeCall(p.pid, undefined, inner, [inner, outer]);
    assert.equal(d.runtime, 'python', 'the process is python3.x (exe basename)');
    assert.equal(d.frames.length, 2);
    assert.match(d.frames[0]!.symbol!, /^py::hot_py_function:/);
    assert.match(d.frames[1]!.symbol!, /^py::outer_py_function:/);
    for (const f of d.frames) {
      assert.equal(f.kind, 'python');
      assert.equal(f.source, 'perfmap');
      assert.equal(f.library, `/tmp/perf-${p.pid}.map`);
    }
    assert.equal(s.counters.perfMapFrames, 2);
  } finally {
    await p.stop();
    fs.rmSync(`/tmp/perf-${p.pid}.map`, { force: true });
  }
});

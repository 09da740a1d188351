import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { purlKey } from '../../src/index/filter';
import { debPurl } from '../../src/packages/purl';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * rtev query and rtev summary on real evidence collected here: curl and Debian's python3 on
 * the host (an HTTP exchange on loopback), a podman container run with --rm, and a Go program
 * built with Debian's golang-go. Each filter must return exactly the chunk lines that a filter
 * written in this test selects, byte for byte; a flipped byte makes query exit 11; a rebuilt
 * index answers like the incremental one; the summary names /usr/bin/curl with its dpkg purl,
 * the container's image digest and the Go program's module.
 */

const IMAGE = 'localhost/bbox:1';
const sh = (cmd: string, args: string[], env?: NodeJS.ProcessEnv): string =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...(env ? { env } : {}) }).trim();

/** mustImage makes the tiny busybox image of the containers recipe (as the enrich tests do). */
function mustImage(): void {
  try {
    sh('podman', ['image', 'exists', IMAGE]);
    return;
  } catch {
    // build it below
  }
  const dir = tempDir('rtev-bbox-');
  fs.mkdirSync(path.join(dir, 'root/bin'), { recursive: true });
  fs.copyFileSync('/bin/busybox', path.join(dir, 'root/bin/busybox'));
  for (const a of ['sh', 'cat', 'sleep', 'nc', 'true', 'echo']) fs.symlinkSync('busybox', path.join(dir, 'root/bin', a));
  sh('tar', ['-C', path.join(dir, 'root'), '-cf', path.join(dir, 'root.tar'), '.']);
  sh('podman', ['import', path.join(dir, 'root.tar'), IMAGE]);
  fs.rmSync(dir, { recursive: true, force: true });
}

const GO_MAIN = `package main

import (
	"net"
	"os"
)

//go:noinline
func work(addr, out string) {
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Write([]byte("GET / HTTP/1.0\\r\\n\\r\\n"))
		buf := make([]byte, 512)
		c.Read(buf)
		c.Close()
	}
	os.WriteFile(out, []byte("go was here\\n"), 0o600)
}

func main() { work(os.Args[1], os.Args[2]) }
`;

const PY_SERVER = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"hello\\n")
        open(sys.argv[2], "a").write(self.path + "\\n")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
for _ in range(2): s.handle_request()
`;

interface Line {
  line: string;
  ts: bigint;
  r: any;
}

test('query filters, tampering, rebuild and summary on real evidence (curl, python, podman --rm, Go)', { timeout: 600_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  for (const bin of ['/usr/bin/curl', '/usr/bin/python3', '/usr/bin/go', 'podman', '/usr/sbin/runc', '/bin/busybox']) {
    try {
      sh('sh', ['-c', `command -v ${bin}`]);
    } catch {
      throw new Error(`${bin} is missing: make deps installs it (Makefile APT_PACKAGES)`);
    }
  }
  mustImage();
  const work = tempDir('rtev-index-e2e-');
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys'), RTEV_INDEX_DIR: path.join(work, 'index') };
  // the Go program, built with Debian's toolchain (module example.com/rtevgo)
  const goDir = path.join(work, 'gosrc');
  fs.mkdirSync(goDir);
  fs.writeFileSync(path.join(goDir, 'go.mod'), 'module example.com/rtevgo\n\ngo 1.19\n');
  fs.writeFileSync(path.join(goDir, 'main.go'), GO_MAIN);
  const goBin = path.join(work, 'rtevgo');
  execFileSync('/usr/bin/go', ['build', '-buildvcs=false', '-o', goBin, '.'], { cwd: goDir, env: { ...process.env, GOCACHE: path.join(work, 'gocache'), GOPATH: path.join(work, 'gopath'), GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local' }, stdio: 'pipe' });
  fs.writeFileSync(path.join(work, 'server.py'), PY_SERVER);
  const port = 20000 + (process.pid % 20000);
  const name = `rtev-index-e2e-${process.pid}`;
  const script = [
    `/usr/bin/python3 ${work}/server.py ${port} ${work}/py.log &`,
    `for i in 1 2 3 4 5 6 7 8 9 10; do /usr/bin/curl -s -o ${work}/curl.out http://127.0.0.1:${port}/curl && break; sleep 0.3; done`,
    `${goBin} 127.0.0.1:${port} ${work}/go.out`,
    `podman --runtime /usr/sbin/runc run --rm --name ${name} --ulimit nofile=1024:1024 --ulimit nproc=1000:1000 --network none ${IMAGE} /bin/sh -c 'cat /etc/hostname; echo hi > /written; sleep 2'`,
    'wait',
  ].join('\n');
  const evidence = path.join(work, 'ev');
  const run = await runRtev(['collect', '--out', evidence, '--quiet', '--probes', 'file_open,process_exec,tcp_state,net_connect',
    '--function', `${goBin}:main.work`, '--', '/bin/sh', '-c', script], { env, timeoutMs: 300_000 });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(fs.existsSync(`${work}/go.out`) && fs.existsSync(`${work}/curl.out`), 'the workload ran');
  const digest = sh('podman', ['image', 'inspect', '--format', '{{.Digest}}', IMAGE]);

  // the test's own reading of the chunks
  const lines: Line[] = [];
  for (const f of fs.readdirSync(evidence).filter((n) => /^chunk-\d{12}\.ndjson$/.test(n)).sort()) {
    for (const line of fs.readFileSync(path.join(evidence, f), 'utf8').split('\n')) {
      if (line === '') continue;
      lines.push({ line, ts: BigInt(/"ts_ns":(\d+)\}$/.exec(line)![1]!), r: JSON.parse(line) });
    }
  }
  const inTsOrder = (xs: Line[]): string[] => [...xs].sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0)).map((x) => x.line);
  const exec = (file: string): any => lines.find((x) => x.r.event.type === 'process_exec' && x.r.event.filename === file)?.r;
  const curl = exec('/usr/bin/curl');
  assert.ok(curl, 'curl exec recorded');
  const containerLines = lines.filter((x) => x.r.image_digest === digest);
  // (the container lives 2 s: a container that exits at once can be gone before the collector looks it up)
  assert.ok(containerLines.length > 0, `records of the container (image ${digest}); containers seen: ${[...new Set(lines.map((x) => x.r.container_id).filter(Boolean))].join(', ') || 'none'}`);
  const cid: string = containerLines[0]!.r.container_id;
  assert.match(cid, /^podman:\/\/[0-9a-f]{64}$/);
  const hex = cid.slice('podman://'.length);
  const peer = (x: Line): boolean => (x.r.event.type === 'net_connect' && x.r.event.addr === '127.0.0.1' && x.r.event.port === port) ||
    (x.r.event.type === 'tcp_state' && ((x.r.event.daddr === '127.0.0.1' && x.r.event.dport === port) || (x.r.event.saddr === '127.0.0.1' && x.r.event.sport === port)));
  const dpkg = sh('dpkg-query', ['-W', '-f', '${Version} ${Architecture}', 'curl']).split(' ');
  const osr = fs.readFileSync('/etc/os-release', 'utf8');
  const curlPurl = debPurl({ name: 'curl', version: dpkg[0]!, arch: dpkg[1]!, distro: { id: /^ID=(.*)$/m.exec(osr)![1]!.replace(/"/g, ''), versionId: /^VERSION_ID=(.*)$/m.exec(osr)?.[1]?.replace(/"/g, '') ?? '' } });

  const cases: Array<[string[], (x: Line) => boolean]> = [
    [['--type', 'process_exec'], (x) => x.r.event.type === 'process_exec'],
    [['--pid', String(curl.pid)], (x) => x.r.pid === curl.pid],
    [['--comm', 'curl'], (x) => x.r.comm === 'curl'],
    [['--path', '/usr/bin/cu*'], (x) => x.r.event.type === 'process_exec' ? /^\/usr\/bin\/cu[^/]*$/.test(x.r.event.filename) : x.r.event.type === 'file_open' && /^\/usr\/bin\/cu[^/]*$/.test(x.r.event.path)],
    [['--path', `${work}/**`], (x) => { const p = x.r.event.type === 'file_open' ? x.r.event.path : x.r.event.type === 'process_exec' ? x.r.event.filename : undefined; return typeof p === 'string' && p.startsWith(`${work}/`); }],
    [['--peer', `127.0.0.1:${port}`], peer],
    [['--container', name], (x) => x.r.container_id === cid],
    [['--container', hex.slice(0, 12)], (x) => x.r.container_id === cid],
    [['--image', digest], (x) => x.r.image_digest === digest],
    [['--image', IMAGE], (x) => x.r.image_digest === digest],
    [['--host-only', '--type', 'file_open'], (x) => x.r.container_id === undefined && x.r.event.type === 'file_open'],
    [['--package', 'pkg:deb/debian/curl'], (x) => x.r.container_id === undefined && ((x.r.event.type === 'process_exec' && x.r.event.filename === '/usr/bin/curl') || (x.r.event.type === 'file_open' && x.r.event.path === '/usr/bin/curl'))],
    [['--type', 'file_open', '--comm', 'rtevgo'], (x) => x.r.event.type === 'file_open' && x.r.comm === 'rtevgo'],
  ];
  const call = lines.find((x) => x.r.event.type === 'function_call' && x.r.event.symbol === 'main.work')?.r;
  assert.ok(call, 'the Go function call was recorded');
  cases.push(
    [['--symbol', 'main.work'], (x) => x.r.event.type === 'function_call' && x.r.event.symbol === 'main.work'],
    [['--symbol', 'main.*'], (x) => x.r.event.type === 'function_call' && /^main\./.test(x.r.event.symbol)],
    [['--node-hash', call.event.node_hash], (x) => x.r.event.type === 'function_call' && x.r.event.node_hash === call.event.node_hash],
  );
  const answers: string[] = [];
  for (const [args, want] of cases) {
    const expected = inTsOrder(lines.filter(want));
    assert.ok(expected.length > 0, `${args.join(' ')}: the evidence holds matching records`);
    const q = await runRtev(['query', evidence, '--format', 'ndjson', ...args], { env });
    assert.equal(q.code, 0, `${args.join(' ')}: ${q.stderr}`);
    assert.equal(q.stdout, expected.join('\n') + '\n', `${args.join(' ')}: exactly the matching lines`);
    answers.push(q.stdout);
  }
  // since/until on the wall clock: the chunk's anchors give each record's time
  const all = await runRtev(['query', evidence, '--format', 'json'], { env });
  const rows = JSON.parse(all.stdout) as { wall_time: string; record: any }[];
  assert.equal(rows.length, lines.length);
  const mid = rows[Math.floor(rows.length / 2)]!.wall_time;
  const since = await runRtev(['query', evidence, '--format', 'ndjson', '--since', mid], { env });
  assert.equal(since.stdout.split('\n').filter((l) => l !== '').length, rows.filter((r) => r.wall_time >= mid).length);

  // a rebuilt index answers the same (a few filters: each run is a process)
  for (const [i, [args]] of cases.entries()) {
    if (i % 3 !== 0) continue;
    const q = await runRtev(['query', evidence, '--format', 'ndjson', '--rebuild-index', ...args], { env });
    assert.equal(q.stdout, answers[i], `rebuild: ${args.join(' ')}`);
  }

  // summary: curl's dpkg purl, the container's image digest and name, the Go module
  const s = await runRtev(['summary', evidence, '--format', 'json'], { env });
  assert.equal(s.code, 0, s.stderr);
  const sum = JSON.parse(s.stdout);
  const host = sum.scopes.find((x: any) => x.scope === 'host');
  const curlRow = host.executables.find((e: any) => e.path === '/usr/bin/curl');
  assert.ok(curlRow, 'summary lists /usr/bin/curl');
  assert.deepEqual(curlRow.packages, [curlPurl], 'curl with its exact dpkg purl');
  const image = sum.scopes.find((x: any) => x.scope === digest);
  assert.ok(image, `summary has the image ${digest}`);
  assert.ok(image.containers.some((c: any) => c.containerId === cid && c.names.includes(name)), 'the container by name, after --rm');
  assert.ok(image.imageNames.includes(IMAGE));
  const goRow = host.executables.find((e: any) => e.path === goBin);
  assert.ok(goRow, 'summary lists the Go program');
  assert.ok(goRow.packages.some((p: string) => purlKey(p).base === 'pkg:golang/example.com/rtevgo'), `Go module in ${JSON.stringify(goRow.packages)}`);
  const fn = sum.functionCalls.find((f: any) => f.symbol === 'main.work');
  assert.ok(fn, 'functions executed: main.work');
  assert.equal(fn.calls, 1, 'exactly one call, from the chunk predicates');
  assert.equal(fn.library, goBin);
  assert.equal(fn.nodeHash, call.event.node_hash);
  assert.ok(host.filesWritten.some((f: any) => f.path === `${work}/go.out`), 'files written: the Go program\'s output');
  assert.ok(host.peers.some((p: any) => p.addr === '127.0.0.1' && p.port === port), 'peers: the python server');

  // a flipped byte in a chunk: query exits 11 naming it
  const victim = path.join(evidence, 'chunk-000000000001.ndjson');
  const bytes = fs.readFileSync(victim);
  const at = bytes.indexOf('"comm":"') + 8;
  bytes[at] ^= 0x01;
  fs.writeFileSync(victim, bytes);
  const bad = await runRtev(['query', evidence, '--type', 'process_exec'], { env });
  assert.equal(bad.code, 11, bad.stderr);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /chunk-000000000001\.ndjson/);
  fs.rmSync(work, { recursive: true, force: true });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO, compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

const PROGS = path.join(REPO, 'test', 'progs', 'net');

function certDir(): string {
  const dir = tempDir('rtev-tls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'),
    '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return dir;
}

// below the ephemeral range (32768-60999): a port there may be a client socket's
const freePort = (): number => 20000 + Math.floor(Math.random() * 12000);

function sums(records: Record<string, any>[], pid: number) {
  const ssl = records.filter((r) => r.pid === pid && r.event?.type === 'ssl_op');
  const sum = (op: string) => ssl.filter((r) => r.event.operation === op).reduce((a, r) => a + r.event.bytes, 0);
  return { read: sum('read'), write: sum('write'), ptrs: new Set(ssl.map((r) => r.event.ssl_ptr)), records: ssl };
}

test('openssl s_server/s_client: K bytes written by the client and read by the server', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const K = 123457;
  fs.writeFileSync(path.join(dir, 'payload'), Buffer.alloc(K, 'a'));
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,net_connect', '--',
    'bash', path.join(PROGS, 'tls-pair.sh'), dir, String(freePort()), path.join(dir, 'payload')], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.statSync(path.join(dir, 'srvout')).size >= K, true);
  const server = Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8'));
  const client = Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8'));
  const c = sums(res.records, client);
  const s = sums(res.records, server);
  assert.equal(c.write, K, JSON.stringify(c.records));
  assert.equal(s.read, K, JSON.stringify(s.records));
  assert.equal(c.ptrs.size, 1);
  assert.equal(s.ptrs.size, 1);
  for (const r of [...c.records, ...s.records]) {
    assert.match(r.src, /^uprobe:SSL_(read|write)(_ex)?$/);
    assert.ok(r.event.bytes > 0);
    assert.match(r.event.ssl_ptr, /^0x[0-9a-f]+$/);
    assert.ok(!('data' in r.event) && !('buf' in r.event));
  }
});

test('curl over HTTPS to openssl s_server -WWW: reads, writes and the connect', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const N = 70000;
  fs.writeFileSync(path.join(dir, 'f.txt'), Buffer.alloc(N, 'b'));
  const port = freePort();
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,net_connect', '--',
    'bash', path.join(PROGS, 'https-www.sh'), dir, String(port), 'f.txt'], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  assert.equal(fs.statSync(path.join(dir, 'curlout')).size, N);
  const curl = Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8'));
  const server = Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8'));
  const c = sums(res.records, curl);
  const s = sums(res.records, server);
  assert.ok(c.write > 20 && c.write < 1000, `curl wrote ${c.write}`);
  assert.ok(c.read >= N && c.read < N + 1000, `curl read ${c.read}`);
  // the server side is not asserted: s_server -WWW reads and writes through BIO_f_ssl, which in
  // OpenSSL 3 calls ssl_read_internal/ssl_write_internal (not exported), not SSL_read/SSL_write
  void s;
  const conn = res.records.filter((r) => r.pid === curl && r.event?.type === 'net_connect');
  assert.equal(conn.length, 1, JSON.stringify(conn));
  assert.equal(conn[0].event.addr, '127.0.0.1');
  assert.equal(conn[0].event.port, port);
  assert.equal(conn[0].event.success, true);
  assert.equal(conn[0].src, 'uprobe:connect');
});

test('a libssl copy at a new inode, loaded by a process started after the collector, is discovered', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const libdir = path.join(dir, 'lib');
  fs.mkdirSync(libdir);
  fs.copyFileSync('/usr/lib/x86_64-linux-gnu/libssl.so.3', path.join(libdir, 'libssl.so.3'));
  const K = 5000;
  fs.writeFileSync(path.join(dir, 'payload'), Buffer.alloc(K, 'c'));
  // the client's payload arrives 1.5 s after it starts: the discovery window is well below that
  const script = `cd ${dir}; exec 3< <(sleep 60); SL=$!; openssl s_server -accept $1 -cert c.pem -key k.pem -naccept 1 <&3 >srvout 2>&1 & SP=$!
for i in $(seq 200); do ss -Hltn "sport = :$1" | grep -q LISTEN && break; sleep 0.05; done
(sleep 1.5; cat payload) | LD_LIBRARY_PATH=${libdir} openssl s_client -connect 127.0.0.1:$1 >cliout 2>&1 & echo $! > client.pid; wait $!; wait $SP; kill $SL; true`;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,process_exec', '--', 'bash', '-c', script, 'x', String(freePort())],
    { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const client = Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8'));
  const c = sums(res.records, client);
  assert.equal(c.write, K, JSON.stringify(res.records.filter((r) => r.event?.type === 'ssl_op')));
});

test('python ssl (SSL_read_ex/SSL_write_ex): K bytes each way through the out-parameter, per thread', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const K = 200003;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op', '--',
    'python3', path.join(PROGS, 'tls_ex.py'), path.join(dir, 'c.pem'), path.join(dir, 'k.pem'), String(K)], { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const ssl = res.records.filter((r) => r.event?.type === 'ssl_op');
  const sum = (src: string) => ssl.filter((r) => r.src === src).reduce((a, r) => a + r.event.bytes, 0);
  // the client's K bytes plus the server's 4-byte reply, each written once and read once
  assert.equal(sum('uprobe:SSL_write_ex'), K + 4, JSON.stringify(ssl.slice(0, 10)));
  assert.equal(sum('uprobe:SSL_read_ex'), K + 4);
  const writers = new Set(ssl.filter((r) => r.src === 'uprobe:SSL_write_ex' && r.event.bytes === K).map((r) => r.tid));
  assert.equal(writers.size, 1);
  // two sessions in one process: the client's and the server's
  assert.equal(new Set(ssl.map((r) => r.event.ssl_ptr)).size, 2);
});

test('SSL_write_ex with its byte count on the heap, SSL_read_ex with it on the stack: exact sums either way', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const prog = compileC('net/ssl_ex_heap.c', ['-lssl', '-lcrypto']);
  const TOTAL = 100003;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op', '--',
    prog, path.join(dir, 'c.pem'), path.join(dir, 'k.pem'), String(TOTAL), '3000'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const ssl = res.records.filter((r) => r.event?.type === 'ssl_op');
  const sum = (src: string) => ssl.filter((r) => r.src === src).reduce((a, r) => a + r.event.bytes, 0);
  assert.equal(sum('uprobe:SSL_write_ex'), TOTAL);
  assert.equal(sum('uprobe:SSL_read_ex'), TOTAL);
  assert.equal(ssl.filter((r) => r.src === 'uprobe:SSL_write_ex').length, Math.ceil(TOTAL / 3000));
});

test('node (OpenSSL linked into the executable, symbols exported): the K bytes of a TLS exchange', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = certDir();
  const K = 77777;
  // the exchange starts after 1.5 s: the executable is probed when the exec is seen (5-100 ms)
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,process_exec', '--', process.execPath,
    path.join(PROGS, 'node_tls.js'), path.join(dir, 'c.pem'), path.join(dir, 'k.pem'), String(K), '1500'], { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const ssl = res.records.filter((r) => r.event?.type === 'ssl_op');
  const sum = (op: string) => ssl.filter((r) => r.event.operation === op).reduce((a, r) => a + r.event.bytes, 0);
  // the client's K bytes, written once and read once; nothing else crosses the connection
  assert.equal(sum('write'), K, JSON.stringify(ssl.slice(0, 6)));
  assert.equal(sum('read'), K);
  assert.ok(ssl.every((r) => r.comm === 'node' || r.comm.startsWith('node')), JSON.stringify(ssl.slice(0, 3)));
  assert.equal(new Set(ssl.map((r) => r.event.ssl_ptr)).size, 2);
});

test('uprobe attach mode: sessions with one link per library where the kernel has them, classic on request', async (t) => {
  if (!rootOrSkip(t)) return;
  const [major, minor] = os.release().split('.').map(Number) as [number, number];
  const asked = process.env['RTEV_UPROBE_MODE'];
  const expected = asked === 'classic' || major < 6 || (major === 6 && minor < 13) ? 'classic' : 'session';
  const res = await runRtev(['collect', '--stdout', '--verbose', '--probes', 'ssl_op,net_connect', '--', 'true']);
  assert.equal(res.code, 0, res.stderr);
  const line = /rtev: uprobes: (\{.*\})/.exec(res.stderr);
  assert.ok(line, res.stderr);
  const stats = JSON.parse(line[1]!) as { mode: string; links: number; filesAttached: Record<string, number> };
  assert.equal(stats.mode, expected);
  const files = Object.values(stats.filesAttached).reduce((a, b) => a + b, 0);
  assert.ok(files >= 2, line[1]); // the host's libc and libssl at least
  // session: one uprobe_multi link per file; classic: an entry and a return uprobe per function
  if (expected === 'session') assert.equal(stats.links, files);
  else assert.ok(stats.links >= 2 * (3 + 2) && stats.links % 2 === 0, line[1]);
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { compileC, REPO, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

const PROGS = path.join(REPO, 'test', 'progs', 'tls');

function certDir(): string {
  const dir = tempDir('rtev-gnutls-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'),
    '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return dir;
}

// below the ephemeral range (32768-60999): a port there may be a client socket's
const freePort = (): number => 20000 + Math.floor(Math.random() * 12000);

type Rec = Record<string, any>;
const sslOf = (records: Rec[], pid: number): Rec[] => records.filter((r) => r.pid === pid && r.event?.type === 'ssl_op');
const sum = (recs: Rec[], op: string): number => recs.filter((r) => r.event.operation === op).reduce((a, r) => a + r.event.bytes, 0);

/** pair runs test/progs/tls/gnutls-pair.sh under rtev (ssl_op): K bytes up, M down, the client gnutls-cli or `prog`. */
async function pair(mode: 'session' | 'classic', K: number, M: number, prog?: string): Promise<{ dir: string; records: Rec[] }> {
  const dir = certDir();
  fs.writeFileSync(path.join(dir, 'up'), Buffer.alloc(K, 'u'));
  fs.writeFileSync(path.join(dir, 'down'), Buffer.alloc(M, '%'));
  const env = mode === 'classic' ? { ...process.env, RTEV_UPROBE_MODE: 'classic' } : process.env;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op', '--',
    'bash', path.join(PROGS, 'gnutls-pair.sh'), dir, String(freePort()), path.join(dir, 'up'), path.join(dir, 'down'), ...(prog !== undefined ? [prog] : [])],
  { timeoutMs: 90_000, env });
  assert.equal(res.code, 0, res.stderr);
  return { dir, records: res.records };
}

for (const mode of ['session', 'classic'] as const) {
  test(`gnutls-cli (GnuTLS) against openssl s_server: K bytes up, M bytes down, exact on both sides (${mode} uprobes)`, async (t) => {
    if (!rootOrSkip(t)) return;
    const K = 150001;
    const M = 40009;
    const { dir, records } = await pair(mode, K, M);
    const res = { records };
    // the programs really exchanged the payloads
    assert.equal(fs.readFileSync(path.join(dir, 'srvout')).length, K);
    assert.equal([...fs.readFileSync(path.join(dir, 'cliout'))].filter((b) => b === 0x25).length, M);
    const client = sslOf(res.records, Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8')));
    const server = sslOf(res.records, Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8')));
    assert.equal(sum(client, 'write'), K, JSON.stringify(client.slice(0, 6)));
    assert.equal(sum(client, 'read'), M, JSON.stringify(client.filter((r) => r.event.operation === 'read')));
    assert.equal(sum(server, 'read'), K);
    assert.equal(sum(server, 'write'), M);
    // the client's records name GnuTLS, the server's OpenSSL; one session each
    for (const r of client) assert.match(r.src, /^uprobe:gnutls_record_(send2|recv)$/);
    for (const r of server) assert.match(r.src, /^uprobe:SSL_(read|write)(_ex)?$/);
    assert.equal(new Set(client.map((r) => r.event.ssl_ptr)).size, 1);
    assert.equal(new Set(server.map((r) => r.event.ssl_ptr)).size, 1);
    for (const r of client) {
      assert.ok(r.event.bytes > 0);
      assert.match(r.event.ssl_ptr, /^0x[0-9a-f]+$/);
    }
  });
}

for (const mode of ['session', 'classic'] as const) {
  test(`GnuTLS gnutls_record_send_range and gnutls_record_recv_packet: exact sums, one record per call (${mode} uprobes)`, async (t) => {
    if (!rootOrSkip(t)) return;
    const prog = compileC('tls/gnutls-range.c', ['-lgnutls']);
    const K = 90001;
    const M = 30011;
    const { dir, records } = await pair(mode, K, M, prog);
    const res = { records };
    const facts = JSON.parse(fs.readFileSync(path.join(dir, 'client.json'), 'utf8')) as
      { pid: number; sent: number; send_calls: number; received: number; returned: number; recv_calls: number };
    // what the library returned: the payloads went through these two functions only
    assert.deepEqual([facts.sent, facts.received, facts.returned], [K, M, M], JSON.stringify(facts));
    assert.equal(fs.readFileSync(path.join(dir, 'srvout')).length, K);
    const client = sslOf(res.records, facts.pid);
    const writes = client.filter((r) => r.event.operation === 'write');
    const reads = client.filter((r) => r.event.operation === 'read');
    assert.ok(writes.every((r) => r.src === 'uprobe:gnutls_record_send_range'), JSON.stringify(writes.slice(0, 3)));
    assert.ok(reads.every((r) => r.src === 'uprobe:gnutls_record_recv_packet'), JSON.stringify(reads.slice(0, 3)));
    assert.equal(sum(client, 'write'), K);
    assert.equal(sum(client, 'read'), M);
    // one record per call that moved bytes: every send_range call did; recv_packet calls that gave nothing are skipped
    assert.equal(writes.length, facts.send_calls);
    assert.ok(reads.length >= 1 && reads.length <= facts.recv_calls, `${reads.length} of ${facts.recv_calls}`);
    assert.equal(new Set(client.map((r) => r.event.ssl_ptr)).size, 1);
    const server = sslOf(res.records, Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8')));
    assert.equal(sum(server, 'read'), K);
    assert.equal(sum(server, 'write'), M);
  });
}

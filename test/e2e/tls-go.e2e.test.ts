import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { ensureImage } from '../helpers/images';
import { buildGoTls, type GoTlsBuild } from '../progs/tls/build';

const PROGS = path.join(REPO, 'test', 'progs', 'tls');

function certDir(): string {
  const dir = tempDir('rtev-gotls-run-');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'k.pem'),
    '-out', path.join(dir, 'c.pem'), '-days', '1', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  return dir;
}

// below the ephemeral range (32768-60999): a port there may be a client socket's
const freePort = (): number => 20000 + Math.floor(Math.random() * 12000);

type Rec = Record<string, any>;
const sum = (recs: Rec[], op: string): number => recs.filter((r) => r.event.operation === op).reduce((a, r) => a + r.event.bytes, 0);
const GO_SRC = /^uprobe:crypto\/tls\.\(\*Conn\)\.(Read|Write)$/;

let built: GoTlsBuild | undefined;
function gotls(): GoTlsBuild {
  built ??= buildGoTls();
  return built;
}

for (const [mode, server, client] of [['session', 'stripped', 'normal'], ['classic', 'normal', 'stripped']] as const) {
  test(`Go crypto/tls server (${server}) and client (${client}) processes: exact sums on both sides (${mode} uprobes)`, async (t) => {
    if (!rootOrSkip(t)) return;
    const bins = gotls();
    const dir = certDir();
    const UP = 123457;
    const DOWN = 65539;
    const env = mode === 'classic' ? { ...process.env, RTEV_UPROBE_MODE: 'classic' } : process.env;
    const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,process_exec', '--', 'bash',
      path.join(PROGS, 'go-pair.sh'), dir, String(freePort()), bins[server], bins[client], String(UP), String(DOWN)],
    { timeoutMs: 90_000, env });
    assert.equal(res.code, 0, res.stderr + fs.readFileSync(path.join(dir, 'client.out'), 'utf8'));
    assert.equal(fs.readFileSync(path.join(dir, 'client.out'), 'utf8').trim(), 'ok'); // the client checked its DOWN bytes
    const spid = Number(fs.readFileSync(path.join(dir, 'server.pid'), 'utf8'));
    const cpid = Number(fs.readFileSync(path.join(dir, 'client.pid'), 'utf8'));
    const ssl = res.records.filter((r) => r.event?.type === 'ssl_op');
    const s = ssl.filter((r) => r.pid === spid);
    const c = ssl.filter((r) => r.pid === cpid);
    assert.equal(sum(c, 'write'), UP, JSON.stringify(c.slice(0, 8)));
    assert.equal(sum(s, 'read'), UP, JSON.stringify(s.slice(0, 8)));
    assert.equal(sum(s, 'write'), DOWN);
    assert.equal(sum(c, 'read'), DOWN);
    // Write is called once per chunk (1, 700, 5000, 16384, 20000, 3 bytes, repeated): one record per call
    const chunks = (total: number): number[] => {
      const sizes = [1, 700, 5000, 16384, 20000, 3];
      const out: number[] = [];
      for (let i = 0, left = total; left > 0; i++) {
        const n = Math.min(sizes[i % sizes.length]!, left);
        out.push(n);
        left -= n;
      }
      return out;
    };
    assert.deepEqual(c.filter((r) => r.event.operation === 'write').map((r) => r.event.bytes), chunks(UP));
    assert.deepEqual(s.filter((r) => r.event.operation === 'write').map((r) => r.event.bytes), chunks(DOWN));
    for (const r of [...s, ...c]) {
      assert.match(r.src, GO_SRC);
      assert.equal(r.src.endsWith('Read'), r.event.operation === 'read');
      assert.ok(r.event.bytes > 0 && r.event.bytes <= 20000);
    }
    // ssl_ptr is the *tls.Conn: one per side, the same for its reads and writes
    assert.equal(new Set(s.map((r) => r.event.ssl_ptr)).size, 1);
    assert.equal(new Set(c.map((r) => r.event.ssl_ptr)).size, 1);
  });
}

test('the Go crypto/tls program inside a podman container: exact sums for its client and server goroutines', async (t) => {
  if (!rootOrSkip(t)) return;
  ensureImage('localhost/gotls:1');
  const dir = certDir();
  fs.chmodSync(dir, 0o755);
  for (const f of ['c.pem', 'k.pem']) fs.chmodSync(path.join(dir, f), 0o644);
  const UP = 100003;
  const DOWN = 54321;
  const name = `rtev-gotls-${process.pid}`;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'ssl_op,process_exec', '--',
    'podman', '--runtime', '/usr/sbin/runc', 'run', '--rm', '--name', name,
    '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000', '--network', 'none', '-v', `${dir}:/t:ro`,
    'localhost/gotls:1', '/gotls', 'pair', '/t/c.pem', '/t/k.pem', String(UP), String(DOWN), '1500'], { timeoutMs: 120_000 });
  assert.equal(res.code, 0, res.stderr);
  const ssl = res.records.filter((r) => r.event?.type === 'ssl_op');
  assert.ok(ssl.length > 0, res.stderr);
  assert.ok(ssl.every((r) => r.comm === 'gotls' && GO_SRC.test(r.src)), JSON.stringify(ssl.slice(0, 3)));
  assert.equal(new Set(ssl.map((r) => r.pid)).size, 1);
  // two sessions in one process: the client goroutine's *Conn and the server goroutine's
  const ptrs = [...new Set(ssl.map((r) => r.event.ssl_ptr))];
  assert.equal(ptrs.length, 2);
  const by = (p: string) => ssl.filter((r) => r.event.ssl_ptr === p);
  const sides = ptrs.map((p) => ({ read: sum(by(p), 'read'), write: sum(by(p), 'write') }))
    .sort((a, b) => a.write - b.write);
  assert.deepEqual(sides, [{ read: UP, write: DOWN }, { read: DOWN, write: UP }]);
});

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { REPO, RTEV, rootOrSkip, runRtev, tempDir, uprobeFiles } from '../helpers/collector';

const PROGS = path.join(REPO, 'test', 'progs', 'net');

function build(dir: string, name: string, extra: string[]): string {
  const out = path.join(dir, name);
  execFileSync('gcc', ['-O1', '-Wall', '-o', out, path.join(PROGS, 'connect.c'), ...extra]);
  return out;
}

const nc = (records: Record<string, any>[], pid?: number) =>
  records.filter((r) => r.event?.type === 'net_connect' && (pid === undefined || r.pid === pid));

test('python sockets: success, refused (111), IPv6 ::1, accept peer, unix socket skipped', async (t) => {
  if (!rootOrSkip(t)) return;
  const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'net_connect', '--', 'python3', path.join(PROGS, 'sockets.py'), '1']);
  assert.equal(res.code, 0, res.stderr);
  const line = res.stderr.split('\n').find((l) => l.startsWith('{"open_port"'));
  assert.ok(line, res.stderr);
  const info = JSON.parse(line);
  const recs = nc(res.records).filter((r) => r.comm.startsWith('python'));
  const find = (pred: (e: any, r: any) => boolean) => recs.filter((r) => pred(r.event, r));
  // the blocking connect and, further down, the non-blocking one
  const ok4 = find((e, r) => r.src === 'uprobe:connect' && e.addr === '127.0.0.1' && e.port === info.open_port);
  assert.equal(ok4.length, 2, JSON.stringify(recs));
  assert.ok(ok4.every((r) => r.event.success === true));
  const refused = find((e) => e.addr === '127.0.0.1' && e.port === 1);
  assert.equal(refused.length, 1);
  assert.equal(refused[0].event.success, false);
  assert.equal(refused[0].event.error, 111);
  const ok6 = find((e) => e.addr === '::1' && e.port === info.port6);
  assert.equal(ok6.length, 1);
  assert.equal(ok6[0].event.success, true);
  const acc = find((e, r) => r.src.startsWith('uprobe:accept') && e.port === info.client_port);
  assert.equal(acc.length, 1);
  assert.equal(acc[0].event.addr, '127.0.0.1');
  const acc6 = find((e, r) => r.src.startsWith('uprobe:accept') && e.port === info.client_port6);
  assert.equal(acc6.length, 1);
  assert.equal(acc6[0].event.addr, '::1');
  // non-blocking connects (connect_ex gave EINPROGRESS or, when the handshake won the race, 0/111):
  // one record each, with the outcome of the handshake
  assert.ok([0, 115].includes(info.nb_open_ret), line);
  const nbAccept = find((e, r) => r.src.startsWith('uprobe:accept') && e.port === info.nb_client_port);
  assert.equal(nbAccept.length, 1, JSON.stringify(recs));
  assert.ok([111, 115].includes(info.nb_closed_ret) && info.nb_closed_err !== 0 || info.nb_closed_ret === 111, line);
  const nbClosed = find((e) => e.port === info.nb_closed_port);
  assert.equal(nbClosed.length, 1, JSON.stringify(recs));
  assert.equal(nbClosed[0].event.success, false);
  assert.equal(nbClosed[0].event.error, 111);
  // the AF_UNIX connect is not a net_connect record, and nothing is reported twice
  assert.equal(recs.length, 8, JSON.stringify(recs));
  for (const r of recs) for (const k of ['ts_ns', 'pid', 'tid', 'cgroup_id', 'comm']) assert.ok(k in r, k);
});

test('static binary covered by the syscall path; libc program not reported twice', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir();
  const dyn = build(dir, 'conn_dyn', []);
  const stat = build(dir, 'conn_static', ['-static']);
  const server = spawn('python3', ['-c', 'import socket,sys\ns=socket.socket();s.bind(("127.0.0.1",0));s.listen(16);print(s.getsockname()[1],flush=True)\nimport time;time.sleep(120)']);
  try {
    const port: number = await new Promise((resolve) => server.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    const res = await runRtev(['collect', '--stdout', '--quiet', '--probes', 'net_connect', '--', 'sh', '-c',
      `${stat} 127.0.0.1 ${port}; ${dyn} 127.0.0.1 ${port}; ${stat} ::1 1`]);
    assert.equal(res.code, 0, res.stderr);
    const s4 = nc(res.records).filter((r) => r.comm === 'conn_static' && r.event.port === port);
    assert.equal(s4.length, 1, JSON.stringify(res.records));
    assert.equal(s4[0].src, 'sys_exit_connect');
    assert.equal(s4[0].event.success, true);
    const s6 = nc(res.records).filter((r) => r.comm === 'conn_static' && r.event.addr === '::1');
    assert.equal(s6.length, 1);
    assert.equal(s6[0].event.error, 111);
    const d = nc(res.records).filter((r) => r.comm === 'conn_dyn');
    assert.equal(d.length, 1, JSON.stringify(d));
    assert.equal(d[0].src, 'uprobe:connect');
    assert.equal(d[0].event.port, port);
  } finally {
    server.kill();
  }
});

test('processes started before and after the collector are both covered', async (t) => {
  if (!rootOrSkip(t)) return;
  // started before: waits for a line on stdin, then connects to the refused port 1 with a marker fd
  const before = spawn('python3', ['-c',
    'import socket,sys\nwhile sys.stdin.readline():\n  s=socket.socket()\n  try: s.connect(("127.0.0.1",1))\n  except OSError: pass\n  s.close()']);
  const collector = spawn(process.execPath, [RTEV, 'collect', '--stdout', '--quiet', '--duration', '60s', '--probes', 'net_connect,process_exec']);
  let out = '';
  collector.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise((r) => collector.on('exit', r));
  try {
    // readiness: the collector holds a uprobe on libc (the sink buffers stdout, so records cannot be polled)
    const attached = (): boolean => uprobeFiles(collector.pid!).some((f) => /libc[.-]/.test(f));
    const deadline = Date.now() + 30_000;
    while (!attached() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    assert.ok(attached(), 'collector never attached its libc uprobes');
    before.stdin.write('go\n');
    const after = spawn('python3', ['-c', 'import socket\ns=socket.socket()\ntry: s.connect(("127.0.0.1",1))\nexcept OSError: pass']);
    await new Promise((r) => after.on('exit', r));
    before.stdin.end();
    await new Promise((r) => before.on('exit', r));
    collector.kill('SIGTERM');
    await exited;
    const recs = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const hit = (pid: number | undefined) => recs.filter((r) => r.pid === pid && r.src === 'uprobe:connect' && r.event.error === 111);
    assert.equal(hit(before.pid).length, 1, 'pre-started process not covered');
    assert.equal(hit(after.pid).length, 1, 'post-started process not covered');
  } finally {
    before.kill();
    collector.kill('SIGTERM');
    await exited;
  }
});

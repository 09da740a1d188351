import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { createRecordValidator } from '../../src/encode/validate';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * io_uring opens, connects and accepts (bpf/io_uring.h, docs/probes.md "io_uring"): a liburing
 * program (test/progs/io_uring/uring.c) opens K known files, one missing file and one relative
 * path, and accepts and connects on loopback (a single accept and a multishot one), only through io_uring. Each is recorded exactly
 * once (no syscall or libc record besides), attributed to the program, with the kernel's result;
 * the failed open only with --include-failed-opens. Run on a plain ring (some requests forced
 * into io-wq workers with IOSQE_ASYNC) and on an SQPOLL ring (the kernel's thread submits).
 * Requests with IOSQE_CQE_SKIP_SUCCESS: a success posts no CQE and gives no record (counted as
 * skipped); a failure posts its CQE and is recorded like any failure (docs/probes.md, "io_uring").
 */
const K = 6;

interface UringFacts {
  pid: number;
  opens: { path: string; res: number; op: 'openat' | 'openat2' }[];
  missing: { path: string; res: number };
  rel: { res: number };
  port: number;
  client_port: number;
  client_fd: number;
  accept_res: number;
  connect_res: number;
  multishot: { accepted: number[]; client_fds: number[]; client_ports: number[]; connect_res: number[]; last: number };
  skip: { ok: string; missing: { path: string; res: number }; refused: { fd: number; port: number; res: number } };
}

async function collect(prog: string, dir: string, mode: 'plain' | 'sqpoll', failed: boolean) {
  const args = ['collect', '--stdout', '--quiet', '--probes', 'file_open,net_connect'];
  if (failed) args.push('--include-failed-opens');
  const run = await runRtev([...args, '--', prog, dir, String(K), ...(mode === 'sqpoll' ? ['sqpoll'] : [])]);
  assert.equal(run.code, 0, run.stderr);
  // the program's stdout goes to rtev's stderr under --stdout
  const line = run.stderr.split('\n').find((l) => l.startsWith('{"pid":'));
  assert.ok(line, `no facts line from the program: ${run.stderr}`);
  const facts = JSON.parse(line) as UringFacts;
  const validate = createRecordValidator();
  for (const [i, l] of run.lines.entries()) assert.equal(validate(l), undefined, `line ${i + 1}: ${l}`);
  return { run, facts };
}

function check(records: Record<string, any>[], facts: UringFacts, dir: string, failed: boolean, what: string): void {
  const mine = records.filter((r) => r.pid === facts.pid);
  const opensOf = (p: string) => records.filter((r) => r.event.type === 'file_open' && r.event.path === p);
  for (const o of facts.opens) {
    assert.ok(o.res >= 0, `${what}: the kernel opened ${o.path}: ${o.res}`);
    const recs = opensOf(o.path);
    assert.equal(recs.length, 1, `${what}: ${o.path} recorded once: ${JSON.stringify(recs)}`);
    assert.equal(recs[0].src, `io_uring:${o.op}`, what);
    assert.equal(recs[0].pid, facts.pid, what);
    assert.equal(recs[0].comm, 'uring', what);
    assert.equal(recs[0].event.access, 'read', what);
    assert.equal(recs[0].event.dfd, -100, what);
  }
  // "./rel" after chdir(dir): the canonical path of the opened file
  assert.ok(facts.rel.res >= 0);
  const rel = opensOf(path.join(dir, 'rel'));
  assert.equal(rel.length, 1, `${what}: ./rel recorded once as ${dir}/rel: ${JSON.stringify(rel)}`);
  assert.equal(rel[0].src, 'io_uring:openat');
  // the missing file: a failure, recorded only when asked
  assert.equal(facts.missing.res, -2);
  const missing = opensOf(facts.missing.path);
  if (failed) {
    assert.equal(missing.length, 1, `${what}: the failed open recorded once: ${JSON.stringify(missing)}`);
    assert.equal(missing[0].src, 'io_uring:openat:failed:ENOENT');
    assert.equal(missing[0].pid, facts.pid);
  } else {
    assert.deepEqual(missing, [], `${what}: no failed open without --include-failed-opens`);
  }
  // each connect and each accept once, with the kernel's results: a single accept, then a multishot
  // accept's two connections (CQEs posted without the request); its cancellation gives no record
  const nets = mine.filter((r) => r.event.type === 'net_connect');
  const m = facts.multishot;
  assert.deepEqual([facts.connect_res, ...m.connect_res], [0, 0, 0]);
  assert.ok(facts.accept_res >= 0 && m.accepted.every((fd) => fd >= 0) && m.last === -125, JSON.stringify(facts));
  const expectConnect = (fd: number) => {
    const recs = nets.filter((r) => r.src === 'io_uring:connect' && r.event.fd === fd);
    assert.equal(recs.length, 1, `${what}: one connect record of fd ${fd}: ${JSON.stringify(nets)}`);
    assert.deepEqual(recs[0].event, { type: 'net_connect', fd, addr: '127.0.0.1', port: facts.port, success: true });
  };
  const expectAccept = (fd: number, port: number) => {
    const recs = nets.filter((r) => r.src === 'io_uring:accept' && r.event.port === port);
    assert.equal(recs.length, 1, `${what}: one accept record of the peer port ${port}: ${JSON.stringify(nets)}`);
    assert.deepEqual(recs[0].event, { type: 'net_connect', fd, addr: '127.0.0.1', port, success: true });
  };
  expectConnect(facts.client_fd);
  expectAccept(facts.accept_res, facts.client_port);
  for (let i = 0; i < 2; i++) {
    expectConnect(m.client_fds[i]!);
    expectAccept(m.accepted[i]!, m.client_ports[i]!);
  }
  // IOSQE_CQE_SKIP_SUCCESS: the success is not observable (no CQE, no record); the failures are
  const s = facts.skip;
  assert.deepEqual([s.missing.res, s.refused.res], [-2, -111], JSON.stringify(s));
  assert.deepEqual(opensOf(s.ok), [], `${what}: a skipped success gives no record`);
  const skipMissing = opensOf(s.missing.path);
  if (failed) {
    assert.equal(skipMissing.length, 1, `${what}: the failed skip-success open recorded once: ${JSON.stringify(skipMissing)}`);
    assert.equal(skipMissing[0].src, 'io_uring:openat:failed:ENOENT');
  } else {
    assert.deepEqual(skipMissing, []);
  }
  const refused = nets.filter((r) => r.event.fd === s.refused.fd);
  assert.equal(refused.length, 1, `${what}: the refused skip-success connect recorded once: ${JSON.stringify(nets)}`);
  assert.deepEqual([refused[0].src, refused[0].event], ['io_uring:connect',
    { type: 'net_connect', fd: s.refused.fd, addr: '127.0.0.1', port: s.refused.port, success: false, error: 111 }]);
  assert.equal(nets.length, 7, `${what}: nothing else: ${JSON.stringify(nets)}`);
  for (const r of nets) assert.equal(r.comm, 'uring');
}

test('io_uring opens, connect and accept are recorded once each, attributed to the ring owner, with their results', { timeout: 180_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const prog = fs.realpathSync(compileC(path.join('io_uring', 'uring.c'), ['-luring']));
  const dir = fs.realpathSync(tempDir());
  for (let i = 0; i < K; i++) fs.writeFileSync(path.join(dir, `f${i}`), `${i}\n`);
  fs.writeFileSync(path.join(dir, 'rel'), 'rel\n');
  fs.writeFileSync(path.join(dir, 'skipok'), 'skip\n');

  const plain = await collect(prog, dir, 'plain', false);
  check(plain.run.records, plain.facts, dir, false, 'plain ring');
  const withFailed = await collect(prog, dir, 'plain', true);
  check(withFailed.run.records, withFailed.facts, dir, true, 'plain ring, --include-failed-opens');
  const sqpoll = await collect(prog, dir, 'sqpoll', true);
  check(sqpoll.run.records, sqpoll.facts, dir, true, 'SQPOLL ring');
  // the SQPOLL thread submitted: a thread of the program, not the program's main thread
  const sq = sqpoll.run.records.filter((r) => r.src.startsWith('io_uring:') && r.pid === sqpoll.facts.pid);
  assert.ok(sq.length > 0 && sq.every((r) => r.tid !== sqpoll.facts.pid), JSON.stringify(sq.map((r) => r.tid)));
});

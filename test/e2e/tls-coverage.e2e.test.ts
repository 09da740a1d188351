import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cgroup2Mount } from '../../src/platform/cgroup2';
import { compileC, rootOrSkip, runRtev, tempDir } from '../helpers/collector';

type Rec = Record<string, any>;

function predicates(dir: string): Rec[] {
  return fs.readdirSync(dir).filter((n) => n.startsWith('chunk-') && n.endsWith('.dsse.json')).sort().map((n) => {
    const env = JSON.parse(fs.readFileSync(path.join(dir, n), 'utf8')) as { payload: string };
    return (JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate: Rec }).predicate;
  });
}

const LIBDIR = '/usr/lib/x86_64-linux-gnu';

/** outsider starts a process that maps NSS outside the run's command: the scope must leave it out. */
async function outsider(prog: string, seconds: number): Promise<{ pid: number; stop(): void }> {
  const child = spawn(prog, [`${LIBDIR}/libnss3.so`, String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  return { pid, stop: () => child.kill('SIGKILL') };
}

test('counted coverage: processes mapping NSS, or an OpenSSL-named library without its symbols, are named in the end line and the signed predicate', async (t) => {
  if (!rootOrSkip(t)) return;
  const prog = compileC('tls/dlopen-wait.c');
  const dir = tempDir('rtev-tlscov-');
  // a process that maps NSS too, but is not the run's command: not in this run's coverage (scope)
  const other = await outsider(prog, 60);
  t.after(() => other.stop());
  // a library called libssl.so.3 that exports no SSL_* (as BoringSSL built without symbols would be)
  fs.mkdirSync(path.join(dir, 'fake'));
  fs.copyFileSync(path.join(LIBDIR, 'libz.so.1'), path.join(dir, 'fake', 'libssl.so.3'));
  const key = path.join(dir, 'key');
  assert.equal((await runRtev(['keygen', '--out', key])).code, 0);
  const out = path.join(dir, 'ev');
  // three processes at once: NSS, the symbol-less libssl, and (control) the real OpenSSL, which is probed
  const script = `${prog} ${LIBDIR}/libnss3.so 2 > ${dir}/nss.pid & ${prog} ${dir}/fake/libssl.so.3 2 > ${dir}/fake.pid & ` +
    `${prog} ${LIBDIR}/libssl.so.3 2 > ${dir}/real.pid & wait`;
  const res = await runRtev(['collect', '--out', out, '--key', key, '--probes', 'ssl_op,process_exec', '--no-enrich', '--', 'bash', '-c', script],
    { timeoutMs: 90_000 });
  assert.equal(res.code, 0, res.stderr);
  const pid = (name: string): number => Number(fs.readFileSync(path.join(dir, `${name}.pid`), 'utf8').trim());
  const [nss, fake, real] = [pid('nss'), pid('fake'), pid('real')];
  // the end-of-run line: the run's scope is the command's tree, so exactly its two processes
  const line = /rtev: ssl_op: TLS not observable in (\d+) process(?:es)? \(([^)]*)\): (.*)/.exec(res.stderr);
  assert.ok(line, res.stderr);
  assert.equal(Number(line[1]), 2, line[0]);
  assert.doesNotMatch(line[3]!, new RegExp(`pid ${other.pid} `), 'the process outside the command is not named');
  assert.match(line[2]!, /nss \d+/);
  assert.match(line[2]!, /openssl_nosym \d+/);
  // the signed predicates: our two pairs, once each, in the window where they were found; never the probed OpenSSL
  const preds = predicates(out);
  assert.ok(preds.length > 0);
  assert.ok(preds.every((p) => p.tls_coverage !== undefined), 'every chunk of an ssl_op run says its coverage');
  const listed = preds.flatMap((p) => p.tls_coverage.processes as Rec[]);
  assert.ok(listed.every((e) => [nss, fake].includes(Number(e.pid))), `only the command's processes: ${JSON.stringify(listed)}`);
  const mine = listed.filter((e) => [nss, fake, real].includes(Number(e.pid)));
  assert.deepEqual(mine.map((e) => [Number(e.pid), e.kind, e.library, e.comm]).sort(), [
    [nss, 'nss', `${LIBDIR}/libnss3.so`, 'dlopen-wait'], [fake, 'openssl_nosym', `${dir}/fake/libssl.so.3`, 'dlopen-wait'],
  ].sort());
  assert.ok(mine.every((e) => e.exe === prog));
  const sum = preds.reduce((a, p) => a + Number(p.tls_coverage.uncovered), 0);
  assert.equal(Number(preds.at(-1)!.tls_coverage.uncovered_total), sum);
  assert.equal(sum, 2);
  assert.equal(listed.length, sum);
  // rtev verify accepts and reports it
  const verify = await runRtev(['verify', out, '--pubkey', key + '.pub']);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /ssl_op coverage: TLS not observable in 2 process\/library pair\(s\)/);
});

test('counted coverage is scoped: --pid names that process only, not the host\'s others', async (t) => {
  if (!rootOrSkip(t)) return;
  const prog = compileC('tls/dlopen-wait.c');
  const dir = tempDir('rtev-tlscovpid-');
  const a = await outsider(prog, 60);
  const b = await outsider(prog, 60);
  t.after(() => { a.stop(); b.stop(); });
  const key = path.join(dir, 'key');
  assert.equal((await runRtev(['keygen', '--out', key])).code, 0);
  const out = path.join(dir, 'ev');
  const res = await runRtev(['collect', '--out', out, '--key', key, '--probes', 'ssl_op', '--no-enrich', '--pid', String(a.pid), '--duration', '2s', '--verbose'],
    { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const line = /rtev: ssl_op: TLS not observable in (\d+) process(?:es)? \(([^)]*)\): (.*)/.exec(res.stderr);
  assert.ok(line, res.stderr);
  assert.equal(Number(line[1]), 1, line[0]);
  assert.match(line[3]!, new RegExp(`^pid ${a.pid} dlopen-wait libnss3\\.so \\(nss\\)`));
  const listed = predicates(out).flatMap((p) => p.tls_coverage.processes as Rec[]);
  assert.deepEqual(listed.map((e) => Number(e.pid)), [a.pid]);
  // the other one (and whatever else maps TLS on the host) is counted apart as out of scope
  const stats = /rtev: uprobes: (\{.*\})/.exec(res.stderr);
  assert.ok(stats, res.stderr);
  assert.ok((JSON.parse(stats[1]!) as { tlsOutOfScope: number }).tlsOutOfScope >= 1, stats[1]);
});

test('counted coverage is scoped: --cgroup names the processes of that cgroup only', async (t) => {
  if (!rootOrSkip(t)) return;
  const prog = compileC('tls/dlopen-wait.c');
  const dir = tempDir('rtev-tlscovcg-');
  const cg2 = cgroup2Mount();
  const cg = path.join(cg2, `rtev-tlscov-${process.pid}`);
  fs.mkdirSync(cg);
  const inside = await outsider(prog, 60);
  const outside = await outsider(prog, 60);
  t.after(() => {
    inside.stop();
    outside.stop();
    for (let i = 0; i < 50; i++) {
      try {
        fs.rmdirSync(cg);
        return;
      } catch {
        spawnSync('sleep', ['0.1']);
      }
    }
  });
  fs.writeFileSync(path.join(cg, 'cgroup.procs'), String(inside.pid));
  const key = path.join(dir, 'key');
  assert.equal((await runRtev(['keygen', '--out', key])).code, 0);
  const out = path.join(dir, 'ev');
  const res = await runRtev(['collect', '--out', out, '--key', key, '--probes', 'ssl_op', '--no-enrich', '--cgroup', cg, '--duration', '2s'],
    { timeoutMs: 60_000 });
  assert.equal(res.code, 0, res.stderr);
  const listed = predicates(out).flatMap((p) => p.tls_coverage.processes as Rec[]);
  assert.deepEqual(listed.map((e) => [Number(e.pid), e.kind]), [[inside.pid, 'nss']]);
  assert.match(res.stderr, /rtev: ssl_op: TLS not observable in 1 process \(nss 1\)/);
});

test('counted coverage: a run without ssl_op has no tls_coverage field (chunks as before)', async (t) => {
  if (!rootOrSkip(t)) return;
  const dir = tempDir('rtev-tlscov0-');
  const key = path.join(dir, 'key');
  assert.equal((await runRtev(['keygen', '--out', key])).code, 0);
  const out = path.join(dir, 'ev');
  const res = await runRtev(['collect', '--out', out, '--key', key, '--probes', 'process_exec', '--no-enrich', '--', 'true']);
  assert.equal(res.code, 0, res.stderr);
  assert.doesNotMatch(res.stderr, /ssl_op: TLS/);
  const preds = predicates(out);
  assert.ok(preds.length > 0 && preds.every((p) => !('tls_coverage' in p)));
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RTEV, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { buildStorm, sleep } from './helpers';

/** Faults the collector must survive with its evidence verifiable (docs/reliability.md). */

async function keyed(prefix: string): Promise<{ work: string; key: string; env: NodeJS.ProcessEnv }> {
  const work = tempDir(prefix);
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  const key = path.join(work, 'signing.key');
  assert.equal((await runRtev(['keygen', '--out', key], { env })).code, 0);
  return { work, key, env };
}

function chunks(dir: string): number {
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.dsse.json')).length : 0;
}

test('SIGKILL of the collector mid-run, restart, verify: exit 0 or 10, never 11', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, key, env } = await keyed('rtev-rel-kill-');
  const dir = path.join(work, 'evidence');
  const storm = buildStorm();
  const load = spawn(storm, ['200000000', path.join(work, 'signing.key.pub')], { stdio: 'ignore' });
  let first: ChildProcess | undefined;
  try {
    first = spawn(process.execPath, [RTEV, 'collect', '--out', dir, '--key', key, '--tree', String(load.pid), '--chunk-size', '128K', '--quiet'], { env, stdio: 'ignore' });
    for (let i = 0; i < 150 && chunks(dir) < 3; i++) await sleep(100);
    assert.ok(chunks(dir) >= 3, 'no chunks sealed before the kill');
    first.kill('SIGKILL');
    await new Promise((r) => first!.once('close', r));
    // stop the load before the restart: under a sustained storm --duration is not honoured (docs/reliability.md, bug 1)
    load.kill('SIGKILL');
    const second = await runRtev(['collect', '--out', dir, '--key', key, '--tree', String(load.pid), '--duration', '1s', '--quiet'], { env, timeoutMs: 60_000 });
    assert.equal(second.code, 0, second.stderr);
    const verify = await runRtev(['verify', dir, '--pubkey', key + '.pub'], { env });
    assert.ok(verify.code === 0 || verify.code === 10, `verify exit ${verify.code}: ${verify.stdout}${verify.stderr}`);
  } finally {
    load.kill('SIGKILL');
    if (first !== undefined && first.exitCode === null) first.kill('SIGKILL');
  }
});

// was bug 2 of docs/reliability.md (fixed): ENOSPC raised from the pipeline's container-attribution
// promise (src/ingest/pipeline.ts #scheduleDrain -> #release) is an unhandled rejection: exit 1, not 4
test('output on a full 256K tmpfs: exit 4, and the chain written so far verifies', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, key, env } = await keyed('rtev-rel-full-');
  const mnt = path.join(work, 'small');
  fs.mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt]);
  try {
    const dir = path.join(mnt, 'evidence');
    const storm = buildStorm();
    const r = await runRtev(['collect', '--out', dir, '--key', key, '--chunk-size', '32K', '--', storm, '100000', key + '.pub'], { env, timeoutMs: 90_000 });
    // the chain must verify whatever the exit code; check that first
    const verify = await runRtev(['verify', dir, '--pubkey', key + '.pub'], { env });
    assert.ok(verify.code === 0 || verify.code === 10, `verify exit ${verify.code}: ${verify.stdout}${verify.stderr}`);
    assert.equal(r.code, 4, `collect exit ${r.code}: ${r.stderr}`);
    const errLines = r.stderr.split('\n').filter((l) => l.length > 0 && !l.startsWith('  '));
    assert.ok(errLines.some((l) => /^rtev: /.test(l)), r.stderr);
    console.log(`full disk: collect stderr: ${r.stderr.trim()}\nverify exit ${verify.code}: ${verify.stdout.trim().split('\n').slice(0, 3).join(' | ')}`);
    assert.ok(verify.code === 0 || verify.code === 10, `verify exit ${verify.code}: ${verify.stdout}${verify.stderr}`);
  } finally {
    execFileSync('umount', ['-l', mnt]);
  }
});

for (const [signal, code] of [['KILL', 137], ['TERM', 143], ['INT', 130]] as const) {
  test(`traced command killed by SIG${signal}: collector exits ${code}`, { timeout: 60_000 }, async (t) => {
    if (!rootOrSkip(t)) return;
    const r = await runRtev(['collect', '--stdout', '--quiet', '--', 'sh', '-c', `cat /etc/hostname >/dev/null; kill -${signal} $$`], { timeoutMs: 50_000 });
    assert.equal(r.code, code, r.stderr);
    assert.ok(r.records.some((x) => x.event.type === 'file_open' && x.event.path === '/etc/hostname'), 'records before the kill are written');
  });
}

// was bug 1 of docs/reliability.md (fixed): the --duration timer did not fire while the ring
// callbacks keep the event loop busy (a 1s run under a storm took 116 s)
test('--duration is honoured under a sustained open storm', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const storm = buildStorm();
  const load = spawn(storm, ['500000000'], { stdio: 'ignore' });
  try {
    const started = Date.now();
    const work = tempDir('rtev-rel-duration-');
    const r = await runRtev(['collect', '--out', path.join(work, 'ev'), '--tree', String(load.pid), '--duration', '1s', '--quiet'],
      { timeoutMs: 20_000, env: { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') } });
    const took = Date.now() - started;
    console.log(`--duration 1s under a storm: exit ${r.code} after ${took} ms`);
    assert.equal(r.code, 0);
    assert.ok(took < 10_000, `a 1s collection took ${took} ms`);
  } finally {
    load.kill('SIGKILL');
  }
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RTEV, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { sleep } from './helpers';

/**
 * Hostile files in and around the output directory (docs/reliability.md, "Privileges and files"):
 * the collector refuses symlinks with exit 4 (OUTPUT) and never writes through them; evidence
 * and key files get owner-only modes.
 */

const SECRET = 'do not overwrite\n';

function setup(prefix: string): { work: string; env: NodeJS.ProcessEnv; target: string } {
  const work = tempDir(prefix);
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  const target = path.join(work, 'target');
  fs.writeFileSync(target, SECRET, { mode: 0o600 });
  return { work, env, target };
}

const seqName = (seq: number, suffix: string): string => `chunk-${String(seq).padStart(12, '0')}${suffix}`;

function assertUntouched(target: string): void {
  assert.equal(fs.readFileSync(target, 'utf8'), SECRET, 'the collector wrote through a symlink');
}

test('output directory that is a symlink: exit 4, nothing written through it', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, env } = setup('rtev-rel-symdir-');
  const real = path.join(work, 'real');
  fs.mkdirSync(real, { mode: 0o700 });
  const link = path.join(work, 'link');
  fs.symlinkSync(real, link);
  const r = await runRtev(['collect', '--out', link, '--quiet', '--', '/bin/true'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /symlink/);
  assert.deepEqual(fs.readdirSync(real), []);
  assert.ok(fs.lstatSync(link).isSymbolicLink());
});

test('symlink planted under the name of the next chunk (or its .partial, envelope, checkpoint, lock): exit 4 at start, target untouched', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, env, target } = setup('rtev-rel-symplant-');
  const dir = path.join(work, 'evidence');
  const first = await runRtev(['collect', '--out', dir, '--quiet', '--', '/bin/true'], { env });
  assert.equal(first.code, 0, first.stderr);
  const seqs = fs.readdirSync(dir).map((n) => /^chunk-(\d{12})\.ndjson$/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]));
  assert.ok(seqs.length > 0, 'first run sealed no chunk');
  const next = Math.max(...seqs) + 1;
  for (const name of [seqName(next, '.ndjson'), seqName(next, '.ndjson.partial'), seqName(next, '.dsse.json'), seqName(next, '.dsse.json.partial'), 'checkpoint.dsse.json', '.rtev.lock']) {
    const copy = path.join(work, `ev-${name}`);
    fs.cpSync(dir, copy, { recursive: true });
    fs.symlinkSync(target, path.join(copy, name));
    const r = await runRtev(['collect', '--out', copy, '--quiet', '--', '/bin/true'], { env });
    assert.equal(r.code, 4, `${name}: exit ${r.code} ${r.stderr}`);
    assert.equal(r.stderr.split('\n').filter((l) => l.length > 0)[0]?.startsWith('rtev: '), true, `${name}: ${r.stderr}`);
    assertUntouched(target);
    assert.ok(fs.lstatSync(path.join(copy, name)).isSymbolicLink(), `${name} was replaced`);
  }
});

test('symlinks planted under the next chunk names while the collector runs: exit 4, target untouched, sealed chunks are regular files', { timeout: 120_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, env, target } = setup('rtev-rel-symrun-');
  const dir = path.join(work, 'evidence');
  const script = 'i=0; while [ $i -lt 20000 ]; do cat /etc/hostname >/dev/null; i=$((i+1)); done';
  const child = spawn(process.execPath, [RTEV, 'collect', '--out', dir, '--quiet', '--chunk-size', '64K', '--', 'sh', '-c', script], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<number>((r) => child.on('close', (code) => r(code ?? 128)));
  const sealed = (): number[] => (fs.existsSync(dir) ? fs.readdirSync(dir) : []).map((n) => /^chunk-(\d{12})\.dsse\.json$/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]));
  for (let i = 0; i < 300 && sealed().length === 0; i++) await sleep(20);
  assert.ok(sealed().length > 0, `no chunk sealed: ${stderr}`);
  // every name the writer may use next (it can have the next .partial open already)
  const names = fs.readdirSync(dir).map((n) => /^chunk-(\d{12})\./.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]));
  const from = Math.max(...names) + 1;
  for (let s = from; s < from + 6; s++) {
    for (const suffix of ['.ndjson', '.ndjson.partial']) {
      try { fs.symlinkSync(target, path.join(dir, seqName(s, suffix))); } catch { /* created by the writer meanwhile */ }
    }
  }
  const code = await exit;
  assert.equal(code, 4, `exit ${code}: ${stderr}`);
  assertUntouched(target);
  for (const n of fs.readdirSync(dir)) {
    const st = fs.lstatSync(path.join(dir, n));
    if (st.isSymbolicLink()) {
      assert.equal(fs.readlinkSync(path.join(dir, n)), target);
      continue;
    }
    assert.ok(st.isFile(), `${n} is neither a planted link nor a regular file`);
  }
});

test('file modes: evidence dir 0700, chunks and envelopes 0600, private key 0600, public key 0644', { timeout: 60_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const { work, env } = setup('rtev-rel-modes-');
  const dir = path.join(work, 'evidence');
  const r = await runRtev(['collect', '--out', dir, '--quiet', '--', '/bin/true'], { env, cwd: work });
  assert.equal(r.code, 0, r.stderr);
  const mode = (p: string): number => fs.lstatSync(p).mode & 0o7777;
  assert.equal(mode(dir).toString(8), '700');
  const files = fs.readdirSync(dir);
  assert.ok(files.some((n) => n.endsWith('.ndjson')) && files.some((n) => n.endsWith('.dsse.json')));
  for (const n of files) assert.equal(mode(path.join(dir, n)).toString(8), '600', n);
  const keys = path.join(work, 'keys');
  assert.equal(mode(keys).toString(8), '700');
  assert.equal(mode(path.join(keys, 'signing.key')).toString(8), '600');
  assert.equal(mode(path.join(keys, 'signing.key.pub')).toString(8), '644');
  // umask 0 must not widen them
  const dir2 = path.join(work, 'evidence-umask0');
  const r2 = spawnSync('sh', ['-c', 'umask 0 && exec "$0" "$@"', process.execPath, RTEV, 'collect', '--out', dir2, '--quiet', '--', '/bin/true'], { env, encoding: 'utf8' });
  assert.equal(r2.status, 0, r2.stderr);
  assert.equal(mode(dir2).toString(8), '700');
  for (const n of fs.readdirSync(dir2)) assert.equal(mode(path.join(dir2, n)).toString(8), '600', `umask 0: ${n}`);
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RTEV, rootOrSkip, runRtev, tempDir } from '../helpers/collector';
import { MAX_PENDING_SEALS } from '../../src/store/chunk-writer';
import { buildStorm, sleep } from './helpers';

/**
 * The unsealed backlog is bounded by a count (docs/reliability.md, "Bounds"): under an open
 * storm at --chunk-size 128K the collector cuts chunks faster than one fsync chain per chunk
 * could seal them (session 6: ~200 chunks/s made, ~70/s sealed, 800 .partial files after 6 s).
 * Sealing in groups (src/store/chain-sealer.ts) and letting at most MAX_PENDING_SEALS rotated
 * chunks wait (src/store/chunk-writer.ts) keep the chunks on disk without an envelope at most
 * MAX_PENDING_SEALS + 1 (the open one) at every moment, on any disk.
 */
const STORM_N = Number(process.env['RTEV_BACKLOG_STORM_N'] ?? 400_000);

/** unsealedSeqs: sequence numbers with a .partial chunk, or a chunk without its envelope */
function unsealedSeqs(dir: string): { unsealed: number; sealed: number } {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return { unsealed: 0, sealed: 0 };
  }
  const have = new Set(names);
  const seqs = new Set<string>();
  let sealed = 0;
  for (const n of names) {
    const m = /^chunk-(\d{12})\.ndjson(\.partial)?$/.exec(n);
    if (m === null) continue;
    // a rename seen mid-readdir may list one chunk under both names: count sequence numbers
    if (m[2] !== undefined || !have.has(`chunk-${m[1]}.dsse.json`)) seqs.add(m[1]!);
    else sealed++;
  }
  return { unsealed: seqs.size, sealed };
}

test('open storm at --chunk-size 128K: chunks waiting for their seal stay bounded by a count', { timeout: 240_000 }, async (t) => {
  if (!rootOrSkip(t)) return;
  const work = tempDir('rtev-rel-backlog-');
  const env = { ...process.env, RTEV_KEY_DIR: path.join(work, 'keys') };
  const key = path.join(work, 'signing.key');
  assert.equal((await runRtev(['keygen', '--out', key], { env })).code, 0);
  const dir = path.join(work, 'evidence');
  const target = path.join(work, 'storm-target');
  fs.writeFileSync(target, 'x');
  const storm = buildStorm();
  const child = spawn(process.execPath, [RTEV, 'collect', '--out', dir, '--key', key, '--chunk-size', '128K', '--quiet', '--', storm, String(STORM_N), target], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
  const exited = new Promise<number>((r) => child.once('close', (code) => r(code ?? -1)));
  let done = false;
  void exited.then(() => (done = true));
  let maxUnsealed = 0;
  let samples = 0;
  try {
    while (!done) {
      const s = unsealedSeqs(dir);
      maxUnsealed = Math.max(maxUnsealed, s.unsealed);
      samples++;
      await sleep(20);
    }
    const code = await exited;
    assert.equal(code, 0, stderr);
    const names = fs.readdirSync(dir);
    const chunks = names.filter((n) => /^chunk-\d{12}\.ndjson$/.test(n));
    const sizes = chunks.map((n) => fs.statSync(path.join(dir, n)).size);
    console.log(`storm ${STORM_N} opens at --chunk-size 128K: ${chunks.length} chunks sealed, at most ${maxUnsealed} unsealed in ${samples} samples (bound ${MAX_PENDING_SEALS + 1}); largest chunk ${Math.max(...sizes)} bytes`);
    // enough chunks were cut that an unbounded backlog could have passed the bound
    assert.ok(chunks.length > 2 * (MAX_PENDING_SEALS + 1), `only ${chunks.length} chunks: raise RTEV_BACKLOG_STORM_N`);
    assert.ok(maxUnsealed <= MAX_PENDING_SEALS + 1, `${maxUnsealed} chunks were waiting for their seal at once (bound ${MAX_PENDING_SEALS + 1})`);
    // after a clean stop every chunk is sealed and the chain verifies
    assert.equal(unsealedSeqs(dir).unsealed, 0);
    assert.equal(names.filter((n) => n.endsWith('.partial')).length, 0, names.join(' '));
    const verify = await runRtev(['verify', dir, '--pubkey', key + '.pub'], { env, timeoutMs: 120_000 });
    assert.ok(verify.code === 0 || verify.code === 10, `verify exit ${verify.code}: ${verify.stdout}${verify.stderr}`);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

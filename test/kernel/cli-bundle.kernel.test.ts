import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { DpkgCache } from '../../src/packages/dpkg-cache';
import { rootOrSkip, runRtev, tempDir } from '../helpers/collector';

/**
 * A signed run of the CLI bundle (dist/bundle/main.js, docs/architecture.md "The CLI bundle"): the seal
 * worker starts from dist/bundle/seal-worker.js, the chunk verifies, `true` is attributed to its dpkg
 * package, and the host's dpkg cache (keyed by the bundle's code hash there) is written by the first
 * run and read, not written again, by the second.
 */
test('signed collect through the bundle: seal worker, attribution, dpkg cache hit on the second run', async (t) => {
  if (!rootOrSkip(t)) return;
  const root = fs.realpathSync(tempDir());
  const key = path.join(root, 'key');
  const cacheDir = path.join(root, 'cache');
  const env: NodeJS.ProcessEnv = { ...process.env, RTEV_CACHE_DIR: cacheDir, RTEV_KEY_DIR: path.join(root, 'keys') };
  delete env['RTEV_BUNDLE'];
  const keygen = await runRtev(['keygen', '--out', key], { env });
  assert.equal(keygen.code, 0, keygen.stderr);
  const cacheFile = new DpkgCache(cacheDir).file;
  const inodes: number[] = [];
  for (const n of [1, 2]) {
    const out = path.join(root, `ev${n}`);
    const run = await runRtev(['collect', '--out', out, '--key', key, '--quiet', '--', 'true'], { env });
    assert.equal(run.code, 0, run.stderr);
    const verify = await runRtev(['verify', out, '--pubkey', `${key}.pub`], { env });
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.match(verify.stdout, /VALID and complete/);
    const envelope = JSON.parse(fs.readFileSync(path.join(out, 'chunk-000000000001.dsse.json'), 'utf8')) as { payload: string };
    const statement = Buffer.from(envelope.payload, 'base64').toString('utf8');
    // (Debian, the platform CI runs on: /usr/bin/true is coreutils')
    assert.match(statement, /pkg:deb\/[a-z]+\/coreutils@/, `run ${n}: /usr/bin/true attributed to coreutils`);
    inodes.push(fs.statSync(cacheFile).ino);
  }
  assert.equal(inodes[1], inodes[0], 'the second run read the cache and did not write it again');
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../../src/errors';
import { verifyEvidence } from '../../src/verify';
import { rootOrSkip } from '../helpers/collector';
import { makeHarness } from '../helpers/evidence-fixtures';

/**
 * The chunk writer on a really full file system: a 1 MiB tmpfs, which only root can mount, so
 * this lives in a root tier (it was in the unit tier, which runs unprivileged).
 */
test('a full disk gives DISK_FULL and leaves a chain that verifies', async (t) => {
  if (!rootOrSkip(t)) return;
  const h = makeHarness();
  fs.mkdirSync(h.dir, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0700', 'tmpfs', h.dir]);
  try {
    const sink = h.open({ chunkMaxBytes: 200_000 });
    let error: unknown;
    try {
      for (let i = 0; i < 200_000; i += 500) {
        h.feed(sink, i, i + 500);
        await new Promise((r) => setImmediate(r)); // the collector's loop yields like this
      }
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof RtevError, String(error));
    assert.equal(error.code, 'DISK_FULL');
    assert.match(error.message, /output device is full/);
    await sink.close(h.ledger.snapshot()); // the failure was already reported by write()
    // whatever the seal worker managed before the disk filled up is intact; the rest is an
    // unsealed tail, never a corrupt chain
    const r = verifyEvidence(h.dir, [h.key]);
    assert.equal(r.status, 'incomplete', JSON.stringify(r.problems));
    assert.ok(!fs.existsSync(path.join(h.dir, '.rtev.lock')));
    // with space again, the next run records the unsealed tail as a gap and the chain verifies
    execFileSync('mount', ['-o', 'remount,size=8m', h.dir]);
    const again = h.open();
    await again.close({});
    const r2 = verifyEvidence(h.dir, [h.key]);
    assert.equal(r2.status, 'incomplete', JSON.stringify(r2.problems));
    assert.ok(r2.chunks >= 1);
    assert.ok(r2.gaps.some((g) => /restarted after an unclean stop/.test(g.reason)), JSON.stringify(r2.gaps));
  } finally {
    execFileSync('umount', [h.dir]);
  }
});

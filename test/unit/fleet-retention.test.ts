import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chooseRemovals } from '../../src/store/retention';
import { readShipCursor, writeShipCursor } from '../../src/store/ship-cursor';
import { verifyEvidence } from '../../src/verify';
import { evidenceFiles, makeHarness } from '../helpers/evidence-fixtures';

test('chooseRemovals never passes the first unshipped chunk', () => {
  const chunks = [1, 2, 3, 4].map((seq) => ({ seq, bytes: 100, sealedAtMs: seq * 1000 }));
  assert.equal(chooseRemovals(chunks, { maxBytes: 1 }, 0), 3);
  assert.equal(chooseRemovals(chunks, { maxBytes: 1 }, 0, 3), 2);
  assert.equal(chooseRemovals(chunks, { maxBytes: 1 }, 0, 1), 0);
});

async function shippedDir(removeUnshipped: boolean) {
  const h = makeHarness('rtev-ship-ret-');
  fs.mkdirSync(h.dir, { recursive: true, mode: 0o700 });
  writeShipCursor(h.dir, { chain_id: null, acked_seq: 0, acked_envelope_sha256: null });
  const sink = h.open({ chunkMaxBytes: 3000, retainMaxBytes: 8000, ...(removeUnshipped ? { retainUnshipped: true } : {}) });
  for (let i = 0; i < 200; i += 20) {
    h.feed(sink, i, i + 20);
    await new Promise((r) => setImmediate(r));
  }
  await sink.close(h.ledger.snapshot());
  return h;
}

test('retention keeps every unshipped chunk of a shipped directory', async () => {
  const h = await shippedDir(false);
  const files = evidenceFiles(h.dir);
  assert.ok(files.includes('chunk-000000000001.ndjson'), 'nothing was shipped, so nothing is removed');
  assert.ok(!files.includes('checkpoint.dsse.json'));
  assert.equal(readShipCursor(h.dir)?.acked_seq, 0);
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
});

test('told to, retention removes unshipped chunks and the signed checkpoint records them', async () => {
  const h = await shippedDir(true);
  const files = evidenceFiles(h.dir);
  assert.ok(!files.includes('chunk-000000000001.ndjson'));
  const env = JSON.parse(fs.readFileSync(path.join(h.dir, 'checkpoint.dsse.json'), 'utf8'));
  const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString('utf8'));
  const p = statement.predicate;
  assert.equal(p.unshipped.from_seq, 1);
  assert.equal(p.unshipped.through_seq, p.first_seq - 1);
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'valid', JSON.stringify(r.problems));
});

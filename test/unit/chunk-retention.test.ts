import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chooseRemovals } from '../../src/store/retention';
import { verifyEvidence } from '../../src/verify';
import { evidenceFiles, makeHarness } from '../helpers/evidence-fixtures';

test('chooseRemovals keeps the newest chunk and honours size and age', () => {
  const chunks = [1, 2, 3, 4].map((seq) => ({ seq, bytes: 100, sealedAtMs: seq * 1000 }));
  assert.equal(chooseRemovals(chunks, { maxBytes: 250 }, 0), 2);
  assert.equal(chooseRemovals(chunks, { maxBytes: 1 }, 0), 3);
  assert.equal(chooseRemovals(chunks, { maxAgeMs: 1500 }, 4000), 2);
  assert.equal(chooseRemovals(chunks, {}, 99999), 0);
});

test('retention by size removes the oldest chunks behind a signed checkpoint', async () => {
  const h = makeHarness();
  const sink = h.open({ chunkMaxBytes: 3000, retainMaxBytes: 20_000 });
  for (let i = 0; i < 400; i += 20) {
    h.feed(sink, i, i + 20);
    await new Promise((r) => setImmediate(r));
  }
  await sink.close(h.ledger.snapshot());
  const files = evidenceFiles(h.dir);
  assert.ok(files.includes('checkpoint.dsse.json'));
  assert.ok(!files.includes('chunk-000000000001.ndjson'));
  const total = files.filter((n) => n.startsWith('chunk-')).reduce((s, n) => s + fs.statSync(path.join(h.dir, n)).size, 0);
  assert.ok(total <= 20_000, String(total));
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'valid', JSON.stringify([r.problems, r.gaps]));
  assert.ok(r.firstSeq! > 1);
  // the checkpoint pins the first chunk: replacing that envelope is caught
  const first = `chunk-${String(r.firstSeq).padStart(12, '0')}.dsse.json`;
  fs.appendFileSync(path.join(h.dir, first), ' ');
  assert.ok(verifyEvidence(h.dir, [h.key]).problems.some((p) => p.file === first && /checkpoint/.test(p.reason)));
});

test('retention by age, and a restart after retention continues the chain', async () => {
  const h = makeHarness();
  const a = h.open({ chunkMaxAgeMs: 1000, retainMaxAgeMs: 2500 });
  for (let i = 0; i < 6; i++) {
    h.feed(a, i, i + 1);
    h.env.advanceMs(1000);
    a.rotateIfDue();
    await new Promise((r) => setImmediate(r));
  }
  await a.close(h.ledger.snapshot());
  const b = h.open({ chunkMaxAgeMs: 1000, retainMaxAgeMs: 2500 });
  h.feed(b, 10, 12);
  await b.close(h.ledger.snapshot());
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'valid', JSON.stringify([r.problems, r.gaps]));
  assert.ok(r.firstSeq! >= 4, String(r.firstSeq));
  assert.equal(r.runs, 2);
});

test('leftovers of an interrupted retention are removed on start and ignored by verify', async () => {
  const h = makeHarness();
  const a = h.open({ chunkMaxBytes: 2000, retainMaxBytes: 9000 });
  for (let i = 0; i < 100; i += 10) {
    h.feed(a, i, i + 10);
    await new Promise((r) => setImmediate(r));
  }
  await a.close(h.ledger.snapshot());
  const r = verifyEvidence(h.dir, [h.key]);
  const before = r.firstSeq! - 1;
  const name = `chunk-${String(before).padStart(12, '0')}.ndjson`;
  fs.writeFileSync(path.join(h.dir, name), 'left over\n', { mode: 0o600 });
  const r2 = verifyEvidence(h.dir, [h.key]);
  assert.equal(r2.status, 'valid', JSON.stringify(r2.problems));
  assert.ok(r2.notes.some((n) => n.file === name));
  const b = h.open();
  await b.close({});
  assert.ok(!fs.existsSync(path.join(h.dir, name)));
});

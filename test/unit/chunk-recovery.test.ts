import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStrict } from '../../src/encode/strict-json';
import { verifyEvidence } from '../../src/verify';
import { evidenceFiles, makeHarness, syntheticRecord, type Harness } from '../helpers/evidence-fixtures';

const C = (n: number) => `chunk-${String(n).padStart(12, '0')}.ndjson`;
const E = (n: number) => `chunk-${String(n).padStart(12, '0')}.dsse.json`;

function predicate(dir: string, seq: number): any {
  const env = JSON.parse(fs.readFileSync(path.join(dir, E(seq)), 'utf8'));
  return (parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as any).predicate;
}

/** settle waits until the seal worker has sealed every rotated chunk (only the open one is left). */
async function settle(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const names = evidenceFiles(dir);
    const unsealed = names.filter((n) => n.endsWith('.ndjson') && n.startsWith('chunk-') && !names.includes(n.replace('.ndjson', '.dsse.json')));
    if (unsealed.length === 0 && names.filter((n) => n.endsWith('.partial')).length <= 1) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** "kill" a run: its sink is abandoned without close(), and its lock is freed as by death. */
function kill(h: Harness): void {
  fs.unlinkSync(path.join(h.dir, '.rtev.lock'));
}

test('a killed run leaves its sealed chunks intact; the next run records the gap', async () => {
  const h = makeHarness();
  const a = h.open({ chunkMaxBytes: 5000 });
  h.feed(a, 0, 60);
  a.rotateIfDue(); // not due: writes buffered lines to the open chunk
  await settle(h.dir); // let the seal worker catch up
  const sealedBefore = evidenceFiles(h.dir).filter((n) => n.endsWith('.dsse.json')).length;
  assert.ok(sealedBefore >= 2);
  kill(h);
  const partial = evidenceFiles(h.dir).find((n) => n.endsWith('.partial'));
  assert.ok(partial !== undefined);
  const partialBytes = fs.statSync(path.join(h.dir, partial)).size;
  assert.ok(partialBytes > 0);
  // while nobody has resumed: valid but incomplete, never invalid
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'incomplete');

  const b = h.open({ chunkMaxBytes: 5000 });
  h.feed(b, 1000, 1010);
  await b.close(h.ledger.snapshot());
  const files = evidenceFiles(h.dir);
  assert.ok(!files.some((n) => n.endsWith('.partial') || n.endsWith('.unrecorded')), files.join(','));
  const firstOfB = sealedBefore + 1;
  const p = predicate(h.dir, firstOfB);
  assert.equal(p.chain.run_chunk_index, 0n);
  assert.equal(p.restart.previous_run_closed, false);
  assert.equal(p.restart.previous_seq, BigInt(sealedBefore));
  assert.equal(p.restart.unsealed.length, 1);
  assert.equal(p.restart.unsealed[0].bytes, BigInt(partialBytes));
  assert.ok(p.restart.unsealed[0].lines > 0n);
  assert.ok(files.includes(p.restart.unsealed[0].name));
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'incomplete', JSON.stringify(r.problems));
  assert.equal(r.runs, 2);
  assert.ok(r.gaps.some((g) => g.file === E(firstOfB) && /restarted after an unclean stop/.test(g.reason)));
});

test('a clean restart is a note, not a gap', async () => {
  const h = makeHarness();
  const a = h.open();
  h.feed(a, 0, 5);
  await a.close(h.ledger.snapshot());
  const b = h.open();
  h.feed(b, 5, 10);
  await b.close(h.ledger.snapshot());
  assert.equal(predicate(h.dir, 2).restart.previous_run_closed, true);
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'valid', JSON.stringify([r.problems, r.gaps]));
  assert.equal(r.runs, 2);
});

test('a chunk renamed but never given its envelope becomes unsealed data', async () => {
  const h = makeHarness();
  const a = h.open();
  h.feed(a, 0, 10);
  await a.close(h.ledger.snapshot());
  // simulate a crash between the chunk rename and the envelope write of seq 2
  fs.writeFileSync(path.join(h.dir, C(2)), syntheticRecord(10).line + '\n', { mode: 0o600 });
  fs.writeFileSync(path.join(h.dir, E(2) + '.partial'), '{"payl', { mode: 0o600 });
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'incomplete');
  const b = h.open();
  await b.close(h.ledger.snapshot());
  const p = predicate(h.dir, 2);
  assert.equal(p.restart.unsealed.length, 1);
  assert.equal(p.restart.unsealed[0].lines, 1n);
  assert.ok(!evidenceFiles(h.dir).some((n) => n.endsWith('.partial')));
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'incomplete');
});

test('repeated crashes before any seal are all recorded once sealed', async () => {
  const h = makeHarness();
  const a = h.open();
  h.feed(a, 0, 3);
  a.rotateIfDue();
  kill(h);
  const b = h.open(); // records a's partial as .unrecorded, then dies too
  h.feed(b, 3, 4);
  b.rotateIfDue();
  kill(h);
  assert.ok(evidenceFiles(h.dir).some((n) => n.endsWith('.unrecorded')));
  const c = h.open();
  await c.close(h.ledger.snapshot());
  const p = predicate(h.dir, 1);
  assert.equal(p.restart.previous_run_id, null);
  assert.equal(p.restart.unsealed.length, 2);
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'incomplete');
  // the gap names what happened, not "run null (after seq null)"
  assert.match(r.gaps[0]!.reason, /^recorded gap: the collector restarted after an unclean stop of an earlier run that sealed no chunk; /);
  assert.doesNotMatch(JSON.stringify(r.gaps), /null/);
});

test('a broken chain head is refused rather than extended', async () => {
  const h = makeHarness();
  const a = h.open();
  h.feed(a, 0, 5);
  await a.close(h.ledger.snapshot());
  fs.appendFileSync(path.join(h.dir, C(1)), 'x');
  assert.throws(() => h.open(), /fails verification: chunk digest does not match/);
});

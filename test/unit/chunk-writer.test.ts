import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseStrict } from '../../src/encode/strict-json';
import { verifyEvidence } from '../../src/verify';
import { evidenceFiles, makeHarness, syntheticRecord } from '../helpers/evidence-fixtures';

function predicate(dir: string, seq: number): any {
  const env = JSON.parse(fs.readFileSync(path.join(dir, `chunk-${String(seq).padStart(12, '0')}.dsse.json`), 'utf8'));
  return (parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as any).predicate;
}

test('chunks are the canonical lines plus "\\n", rotated by size, sealed on shutdown', async () => {
  const h = makeHarness();
  const sink = h.open({ chunkMaxBytes: 5000 });
  h.feed(sink, 0, 100);
  await sink.close(h.ledger.snapshot());
  const chunks = evidenceFiles(h.dir).filter((n) => n.endsWith('.ndjson'));
  assert.ok(chunks.length >= 4, chunks.join(','));
  const all = chunks.map((n) => fs.readFileSync(path.join(h.dir, n), 'utf8')).join('');
  const expected = Array.from({ length: 100 }, (_, i) => syntheticRecord(i).line + '\n').join('');
  assert.equal(all, expected);
  for (const n of chunks.slice(0, -1)) assert.ok(fs.statSync(path.join(h.dir, n)).size >= 5000);
  const last = chunks.length;
  assert.equal(predicate(h.dir, last).chain.final, true);
  assert.equal(predicate(h.dir, last).chain.seal_reason, 'shutdown');
  assert.equal(predicate(h.dir, 1).chain.seal_reason, 'size');
  for (const n of evidenceFiles(h.dir)) assert.equal(fs.statSync(path.join(h.dir, n)).mode & 0o777, 0o600, n);
  assert.equal(fs.statSync(h.dir).mode & 0o777, 0o700);
  assert.equal(verifyEvidence(h.dir, [h.key]).status, 'valid');
});

test('rotation by age seals only chunks with news', async () => {
  const h = makeHarness();
  const sink = h.open({ chunkMaxAgeMs: 1000 });
  h.feed(sink, 0, 3);
  h.env.advanceMs(999);
  sink.rotateIfDue();
  h.env.advanceMs(1);
  sink.rotateIfDue();
  h.env.advanceMs(5000);
  sink.rotateIfDue(); // empty and the ledger did not move: nothing to seal
  h.ledger.probe('file_open').kernel.ringFull += 2n;
  sink.rotateIfDue(); // drops are news
  await sink.close(h.ledger.snapshot());
  assert.equal(predicate(h.dir, 1).chain.seal_reason, 'age');
  assert.equal(predicate(h.dir, 1).records.count, 3n);
  assert.equal(predicate(h.dir, 2).chain.seal_reason, 'age');
  assert.equal(predicate(h.dir, 2).records.count, 0n);
  assert.equal(predicate(h.dir, 2).ledger.complete, false);
  assert.equal(predicate(h.dir, 2).ledger.lost, 2n);
  assert.equal(predicate(h.dir, 3).chain.final, true);
  assert.equal(predicate(h.dir, 3).ledger.complete, true);
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'incomplete');
  assert.equal(r.lost, 2n);
  assert.ok(r.gaps.some((g) => /recorded drops: 2/.test(g.reason)));
});

test('per-chunk ledger windows sum exactly to the final ledger, with in-flight records', async () => {
  const h = makeHarness();
  const sink = h.open({ chunkMaxBytes: 3000 });
  const fo = () => h.ledger.probe('file_open');
  // the kernel submits ahead of user space: 7 records are always in the ring
  fo().kernel.submitted += 7n;
  h.feed(sink, 0, 60);
  fo().kernel.filtered += 11n;
  fo().user.shed += 1n;
  fo().kernel.submitted += 1n;
  const final = h.ledger.snapshot();
  final['file_open']!.kernel.submitted -= 7n; // drained at shutdown: the 7 were never real
  await sink.close(final);
  const seqs = evidenceFiles(h.dir).filter((n) => n.endsWith('.dsse.json')).length;
  const sum = { submitted: 0n, filtered: 0n, shed: 0n, in_chunk: 0n };
  for (let s = 1; s <= seqs; s++) {
    const w = predicate(h.dir, s).ledger.probes.file_open;
    sum.submitted += w.kernel.submitted;
    sum.filtered += w.kernel.filtered;
    sum.shed += w.user.shed;
    sum.in_chunk += w.in_chunk;
    assert.equal(w.kernel.submitted, w.in_chunk + w.user.filtered + w.user.rejected + w.user.shed + w.in_flight_end - w.in_flight_start);
  }
  assert.equal(predicate(h.dir, 1).ledger.probes.file_open.in_flight_start, 0n);
  assert.equal(predicate(h.dir, 1).ledger.probes.file_open.in_flight_end, 7n);
  assert.equal(predicate(h.dir, seqs).ledger.probes.file_open.in_flight_end, 0n);
  assert.deepEqual(sum, { submitted: final['file_open']!.kernel.submitted, filtered: 11n, shed: 1n, in_chunk: 48n });
  const r = verifyEvidence(h.dir, [h.key]);
  assert.equal(r.status, 'incomplete', JSON.stringify(r.problems));
  assert.equal(r.lost, 1n);
});

test('first/last ts_ns above 2^53 are recorded exactly', async () => {
  const h = makeHarness();
  const sink = h.open();
  h.feed(sink, 0, 5);
  await sink.close(h.ledger.snapshot());
  const p = predicate(h.dir, 1);
  assert.equal(p.records.first_ts_ns, syntheticRecord(0).info.tsNs);
  assert.equal(p.records.last_ts_ns, syntheticRecord(4).info.tsNs);
  assert.equal(typeof p.records.first_ts_ns, 'bigint');
});

test('determinism: the same records and host facts give byte-identical files', async () => {
  const digests: string[] = [];
  for (let round = 0; round < 2; round++) {
    const h = makeHarness();
    // the same key both rounds: Ed25519 is deterministic
    if (round === 1) {
      fs.rmSync(h.keyFile);
      fs.rmSync(h.keyFile + '.pub');
      fs.copyFileSync(process.env['RTEV_DET_KEY']!, h.keyFile);
      fs.chmodSync(h.keyFile, 0o600);
    } else {
      process.env['RTEV_DET_KEY'] = h.keyFile;
    }
    const sink = h.open({ chunkMaxBytes: 4000 });
    h.feed(sink, 0, 50);
    await sink.close(h.ledger.snapshot());
    const hash = crypto.createHash('sha256');
    for (const n of evidenceFiles(h.dir)) hash.update(n).update(fs.readFileSync(path.join(h.dir, n)));
    digests.push(hash.digest('hex'));
  }
  assert.equal(digests[0], digests[1]);
});

test('planted symlinks and a symlinked directory are refused', async () => {
  const h = makeHarness();
  fs.mkdirSync(h.dir, { mode: 0o700 });
  fs.symlinkSync('/tmp/elsewhere', path.join(h.dir, 'chunk-000000000001.ndjson.partial'));
  assert.throws(() => h.open(), /symlink/);
  fs.rmSync(h.dir, { recursive: true });
  fs.symlinkSync('/tmp', h.dir);
  assert.throws(() => h.open(), /not a directory/);
});

test('a second collector on the same directory is refused', async () => {
  const h = makeHarness();
  const sink = h.open();
  assert.throws(() => h.open(), /another rtev collect/);
  await sink.close(h.ledger.snapshot());
  const again = h.open();
  await again.close({});
});

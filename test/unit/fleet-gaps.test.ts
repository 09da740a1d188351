import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkCheckpoint } from '../../src/fleet/chunk-check';
import { DeferredChunks, gapState, segments } from '../../src/fleet/gaps';
import type { ChunkFacts } from '../../src/fleet/chunk-check';
import { gapRuns, renderGap, type GapRow } from '../../src/fleet/status';
import { serializeEnvelope, signEnvelope } from '../../src/sign/envelope';
import { generateSigningKey } from '../../src/sign/keys';
import { CHECKPOINT_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, statementBytes } from '../../src/sign/statement';
import { makeHarness } from '../helpers/evidence-fixtures';

const R = (from: bigint, through: bigint, cp: string) => ({ from, through, checkpointSha256: cp });

test('segments: the seqs a checkpoint covers and the ones none does', () => {
  assert.deepEqual(segments([], 3n, 5n), [{ from: 3n, through: 5n, checkpointSha256: null }]);
  assert.deepEqual(segments([R(1n, 9n, 'a')], 3n, 5n), [{ from: 3n, through: 5n, checkpointSha256: 'a' }]);
  assert.deepEqual(segments([R(4n, 4n, 'a'), R(6n, 8n, 'b')], 3n, 7n), [
    { from: 3n, through: 3n, checkpointSha256: null }, { from: 4n, through: 4n, checkpointSha256: 'a' },
    { from: 5n, through: 5n, checkpointSha256: null }, { from: 6n, through: 7n, checkpointSha256: 'b' }]);
  // overlapping ranges: the one that reaches furthest, no seq twice
  assert.deepEqual(segments([R(3n, 4n, 'a'), R(3n, 6n, 'b')], 3n, 6n), [{ from: 3n, through: 6n, checkpointSha256: 'b' }]);
});

function row(from: number, through: number, o: Partial<GapRow> = {}): GapRow {
  return { host_id: 'h', chain_id: 'c', kind: 'missing', from_seq: String(from), through_seq: String(through), detail: 'never arrived', at: new Date(0), filled_at: null, closed_by: null, checkpoint_sha256: null, arrived: '0', ...o };
}

test('gap runs: open, filled by the late chunk and deleted by retention (checkpointed) are three states', () => {
  const t = new Date(1000);
  const runs = gapRuns([
    row(3, 3, { closed_by: 'checkpoint', filled_at: t, checkpoint_sha256: 'ab'.repeat(32) }),
    row(4, 4, { closed_by: 'checkpoint', filled_at: t, checkpoint_sha256: 'ab'.repeat(32) }),
    row(5, 5, { closed_by: 'chunk', filled_at: t }),
    row(6, 6),
    row(7, 7),
    row(9, 9, { kind: 'unclean-restart', detail: 'restarted' }),
  ]);
  assert.deepEqual(runs.map((g) => [g.state, g.fromSeq, g.throughSeq, g.seqs]), [['checkpointed', 3, 4, 2], ['filled', 5, 5, 1], ['open', 6, 7, 2], ['recorded', 9, 9, 1]]);
  assert.match(renderGap(runs[0]!), /^ {2}gap deleted by retention \(checkpointed\) \(missing\) seq 3\.\.4: removed on the host before they were shipped, as its signed retention checkpoint sha256:abababababababab\.\.\. records$/);
  assert.match(renderGap(runs[1]!), /^ {2}gap filled \(missing\) seq 5\.\.5: arrived late/);
  assert.match(renderGap(runs[2]!), /^ {2}gap open \(missing\) seq 6\.\.7: never arrived$/);
  // a filled gap is not merged into a checkpointed neighbour, and a late chunk in a checkpointed seq is filled
  assert.equal(gapState('missing', 'chunk', t), 'filled');
  assert.equal(gapState('missing', 'checkpoint', t), 'checkpointed');
  assert.equal(gapState('missing', null, null), 'open');
  // schema v3 rows: filled with a retention twin, and the twin itself
  assert.equal(gapState('retention', null, null), 'checkpointed');
  assert.deepEqual(gapRuns([row(3, 3, { closed_by: 'checkpoint', filled_at: t }), row(3, 3, { kind: 'retention' })]).map((g) => g.state), ['checkpointed']);
  // a long range row: the chunks that arrived in it later are filled, the rest stays open
  const long = gapRuns([row(10, 2009, { arrived: '2' })]);
  assert.deepEqual(long.map((g) => [g.state, g.seqs]), [['filled', 2], ['open', 1998]]);
  assert.match(renderGap(long[1]!), /seq 10\.\.2009 \(1998 of them\)/);
});

function checkpointBytes(key: ReturnType<typeof generateSigningKey>, subject: string, predicate: Record<string, unknown>): Buffer {
  const payload = statementBytes({ name: subject, digest: { sha256: 'ee'.repeat(32) } }, CHECKPOINT_PREDICATE_TYPE, predicate as never);
  return serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, payload, key));
}

test('checkCheckpoint: signed by a trusted key, ranges in order, the subject is the first chunk\'s envelope', async () => {
  const h = makeHarness('rtev-fleet-cp-');
  const sink = h.open({ chunkMaxBytes: 3000, retainMaxBytes: 8000 });
  for (let i = 0; i < 200; i += 20) {
    h.feed(sink, i, i + 20);
    await new Promise((r) => setImmediate(r));
  }
  await sink.close(h.ledger.snapshot());
  const bytes = fs.readFileSync(path.join(h.dir, 'checkpoint.dsse.json'));
  const v = checkCheckpoint(bytes, [h.key]);
  assert.ok(v.ok, v.ok ? '' : `${v.code}: ${v.reason}`);
  const first = `chunk-${String(v.facts.firstSeq).padStart(12, '0')}.dsse.json`;
  assert.equal(v.facts.firstEnvelopeSha256, crypto.createHash('sha256').update(fs.readFileSync(path.join(h.dir, first))).digest('hex'));
  // a directory without a ship cursor was never shipped: every removed chunk is unshipped
  assert.deepEqual(v.facts.unshipped, { from: 1n, through: v.facts.firstSeq - 1n });
  const other = checkCheckpoint(bytes, [generateSigningKey()]);
  assert.ok(!other.ok && other.code === 'untrusted-key');
  const p = { chain_id: 'c', first_seq: 5, removed: { from_seq: 1, through_seq: 4, bytes: 10 }, created: { wall_ns: 1, mono_ns: 1, uncertainty_ns: 0 } };
  const wrongSubject = checkCheckpoint(checkpointBytes(h.key, 'chunk-000000000006.dsse.json', p), [h.key]);
  assert.ok(!wrongSubject.ok && wrongSubject.code === 'bad-predicate' && /subject/.test(wrongSubject.reason));
  const gap = checkCheckpoint(checkpointBytes(h.key, 'chunk-000000000005.dsse.json', { ...p, removed: { from_seq: 1, through_seq: 3, bytes: 10 } }), [h.key]);
  assert.ok(!gap.ok && gap.code === 'bad-predicate');
  const late = checkCheckpoint(checkpointBytes(h.key, 'chunk-000000000005.dsse.json', { ...p, unshipped: { from_seq: 2, through_seq: 5 } }), [h.key]);
  assert.ok(!late.ok && late.code === 'bad-predicate', 'unshipped must end before first_seq');
  const good = checkCheckpoint(checkpointBytes(h.key, 'chunk-000000000005.dsse.json', { ...p, unshipped: { from_seq: 2, through_seq: 4 } }), [h.key]);
  assert.ok(good.ok && good.facts.unshipped?.from === 2n && good.facts.firstEnvelopeSha256 === 'ee'.repeat(32));
  assert.ok(!checkCheckpoint(Buffer.from('x'.repeat(10)), [h.key]).ok);
});

test('DeferredChunks: a chunk waits for a lower deferred chunk of its chain, not for a stale, forgotten or other chain\'s one', () => {
  const d = new DeferredChunks(4, 1000);
  const c = (seq: bigint, chainId = 'c') => ({ hostId: 'h', chainId, seq }) as ChunkFacts;
  d.note(c(3n), 0);
  d.note(c(5n), 0);
  assert.equal(d.lowerWaiting(c(7n), 2n, 500), 3n);
  assert.equal(d.lowerWaiting(c(5n), 2n, 500), 3n);
  assert.equal(d.lowerWaiting(c(3n), 2n, 500), undefined, 'the lowest goes first');
  assert.equal(d.lowerWaiting(c(7n), 4n, 500), 5n, 'only seqs the gap would cover');
  assert.equal(d.lowerWaiting(c(7n, 'other'), 2n, 500), undefined);
  assert.equal(d.lowerWaiting(c(7n), 2n, 1500), undefined, 'an entry older than freshMs holds nothing back');
  d.forget(c(3n));
  assert.equal(d.lowerWaiting(c(7n), 2n, 500), 5n);
  // bounded: past maxEntries it starts over
  for (const s of [10n, 11n, 12n, 13n]) d.note(c(s), 0);
  assert.equal(d.lowerWaiting(c(7n), 2n, 500), undefined);
});

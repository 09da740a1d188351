import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import type { ChunkFacts } from '../../src/fleet/chunk-check';
import { chunkBatch, sqlLiteral } from '../../src/fleet/chunk-rows';

/** the literals of the per-chunk batch (src/fleet/chunk-rows.ts); test/e2e/fleet-rows.e2e.test.ts reads them back from PostgreSQL */

test('sqlLiteral quotes strings (quotes doubled, backslashes doubled inside E\'\'), renders integers, booleans and NULL', () => {
  assert.equal(sqlLiteral('plain'), "'plain'");
  assert.equal(sqlLiteral("it's"), "'it''s'");
  assert.equal(sqlLiteral('a\\b'), " E'a\\\\b'");
  assert.equal(sqlLiteral("\\'; DROP TABLE chunks; --"), " E'\\\\''; DROP TABLE chunks; --'");
  assert.equal(sqlLiteral(''), "''");
  assert.equal(sqlLiteral(18446744073709551615n), '18446744073709551615');
  assert.equal(sqlLiteral(-5n), '-5');
  assert.equal(sqlLiteral(42), '42');
  assert.equal(sqlLiteral(true), 'TRUE');
  assert.equal(sqlLiteral(false), 'FALSE');
  assert.equal(sqlLiteral(null), 'NULL');
  assert.equal(sqlLiteral(undefined), 'NULL');
  assert.throws(() => sqlLiteral('a\0b'), /NUL/);
  assert.throws(() => sqlLiteral(1.5), /safe integer/);
  assert.throws(() => sqlLiteral(2 ** 53), /safe integer/);
});

function facts(over: Partial<ChunkFacts> = {}): ChunkFacts {
  return {
    hostId: 'h1', envelopeSha256: 'e'.repeat(64), chunkSha256: 'c'.repeat(64), chunkName: 'chunk-000000000001.ndjson', keyid: 'k1', chainId: 'chain', seq: 1n,
    prevEnvelopeSha256: null, runId: 'run', runChunkIndex: 0n, final: false, hostname: 'web-1', machineId: 'm'.repeat(32), bootId: 'b', count: 3n, bytes: 30n, lost: 0n,
    complete: true, minTs: 1n, maxTs: 3n, openedWallNs: 10n, openedMonoNs: 1n, sealedWallNs: 20n, sealedMonoNs: 11n,
    probes: [{ probe: 'file_open', values: Object.fromEntries(['kernel.submitted', 'kernel.filtered', 'kernel.ring_full', 'kernel.skipped', 'kernel.truncated', 'user.received',
      'user.written', 'user.filtered', 'user.rejected', 'user.shed', 'in_chunk', 'in_flight_start', 'in_flight_end', 'lost'].map((k) => [k, 1n])) as ChunkFacts['probes'][number]['values'] }],
    restart: null, ledgerJson: '{}', functionCallsJson: null, restartJson: null, ...over,
  };
}

test('chunkBatch: the chunk row, its ledger, the host move and host_keys (no COMMIT: ingest sends it after); undefined when a string holds a NUL', () => {
  const sql = chunkBatch({ f: facts(), chunkId: 7n, streamSeq: 9, envelope: '{"payload":"x"}', publishedMs: 1700000000000, host: 'head' });
  assert.ok(sql !== undefined);
  const stmts = sql.split(';\n');
  assert.equal(stmts.length, 4);
  assert.match(stmts[0]!, /^INSERT INTO chunks \(chunk_id, host_id.*VALUES \(7,'h1','chain',1,/s);
  assert.match(stmts[1]!, /^INSERT INTO chunk_ledger .* VALUES \('h1','chain',1,'file_open',1,/s);
  assert.match(stmts[2]!, /^UPDATE hosts SET hostname = 'web-1', head_seq = 1,/);
  assert.match(stmts[3]!, /^INSERT INTO host_keys/);
  assert.ok(!/COMMIT/.test(sql), 'the COMMIT is ingest\'s own statement');
  for (const [host, re] of [['new', /^INSERT INTO hosts/], ['late', /^UPDATE hosts SET last_indexed_at = now\(\), chunks = chunks \+ 1/], ['replace', /^UPDATE hosts SET hostname = 'web-1', chain_id = 'chain'/]] as const) {
    assert.match(chunkBatch({ f: facts(), chunkId: 7n, streamSeq: 9, envelope: '{}', publishedMs: 1, host })!.split(';\n')[2]!, re);
  }
  assert.equal(chunkBatch({ f: facts({ hostname: 'a\0b' }), chunkId: 7n, streamSeq: 9, envelope: '{}', publishedMs: 1, host: 'head' }), undefined);
  assert.equal(chunkBatch({ f: facts({ probes: [] }), chunkId: 7n, streamSeq: 9, envelope: '{}', publishedMs: 1, host: 'head' })!.split(';\n').length, 3, 'no ledger rows, no ledger statement');
});

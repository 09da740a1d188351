import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openEvidenceIndex } from '../../src/index/index';
import { chainAccount, coverageOf, retentionLines, summarize, type ChunkRow } from '../../src/index/summary';
import { indexObservations } from '../../src/report/index-observations';
import { renderTable } from '../../src/cli/commands/summary';
import { loadVerifyKeyFile } from '../../src/sign/key-files';
import { generateSigningKey } from '../../src/sign/keys';
import { writeCheckpoint } from '../../src/store/retention';
import { makeHarness } from '../helpers/evidence-fixtures';

/**
 * Seqs deleted by retention and recorded in a signed retention checkpoint are reported as
 * deleted by retention (checkpointed), not as missing, by `rtev summary` and `rtev report` on a
 * directory (the fleet index: test/e2e/fleet-gaps.e2e.test.ts); every seq of the chain is
 * accounted for once.
 */

/** a directory that retention trimmed (never shipped: every removed chunk is unshipped) */
async function trimmedDir() {
  const h = makeHarness('rtev-idx-ret-');
  const sink = h.open({ chunkMaxBytes: 3000, retainMaxBytes: 8000 });
  for (let i = 0; i < 200; i += 20) {
    h.feed(sink, i, i + 20);
    await new Promise((r) => setImmediate(r));
  }
  await sink.close(h.ledger.snapshot());
  const seqs = fs.readdirSync(h.dir).map((n) => /^chunk-(\d+)\.dsse\.json$/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1])).sort((a, b) => a - b);
  const cpFile = path.join(h.dir, 'checkpoint.dsse.json');
  const cp = JSON.parse(Buffer.from(JSON.parse(fs.readFileSync(cpFile, 'utf8')).payload, 'base64').toString('utf8')).predicate;
  return { h, seqs, cpFile, cp, pub: loadVerifyKeyFile(h.keyFile + '.pub') };
}

const sha256 = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test('summary and report on a trimmed directory: the seqs before the checkpoint are deleted by retention (checkpointed), the chain adds up', async () => {
  const { h, seqs, cpFile, cp, pub } = await trimmedDir();
  const first = seqs[0]!;
  const last = seqs[seqs.length - 1]!;
  assert.ok(first > 1, `retention removed chunks (first seq ${first})`);
  assert.equal(cp.first_seq, first);
  const idx = await openEvidenceIndex({ source: h.dir, indexPath: path.join(h.dir, '..', 'idx.duckdb'), keys: [pub] });
  try {
    const s = await summarize(idx, {});
    assert.equal(s.coverage.chains.length, 1);
    const ch = s.coverage.chains[0]!;
    assert.equal(ch.firstSeq, BigInt(first));
    assert.deepEqual(ch.account, { throughSeq: BigInt(last), indexed: BigInt(seqs.length), checkpointed: BigInt(first - 1), missing: 0n });
    assert.deepEqual(ch.checkpointed, [{ fromSeq: 1n, throughSeq: BigInt(first - 1), checkpointSha256: sha256(cpFile), checkpointFirstSeq: BigInt(first) }]);
    assert.ok(!ch.gaps.some((g) => /missing/.test(g)), ch.gaps.join('; '));
    const lines = retentionLines(ch);
    assert.deepEqual(lines, [
      `chain seq 1..${last}: ${seqs.length} indexed, ${first - 1} deleted by retention (checkpointed), 0 missing`,
      `seq 1..${first - 1} deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${sha256(cpFile).slice(0, 16)}... (first seq ${first})`,
    ]);
    const table = renderTable(s, 10);
    for (const l of lines) assert.ok(table.includes(l), table);
    const cov = await indexObservations(idx).coverage();
    assert.deepEqual(cov.retention, lines.map((l) => `chain ${ch.chainId.slice(0, 8)}: ${l}`));
    assert.ok(!cov.gaps.some((g) => /missing/.test(g)), cov.gaps.join('; '));
  } finally {
    await idx.close();
  }
});

test('a checkpoint that is not signed by a trusted key, or vouches for another first chunk, accounts for nothing: the seqs are missing', async () => {
  const { h, seqs, cpFile, cp, pub } = await trimmedDir();
  const first = seqs[0]!;
  const idxFile = path.join(h.dir, '..', 'idx.duckdb');
  const account = async (): Promise<unknown> => {
    const idx = await openEvidenceIndex({ source: h.dir, indexPath: idxFile, keys: [pub] });
    try {
      const ch = (await summarize(idx, {})).coverage.chains[0]!;
      return { account: ch.account, runs: ch.checkpointed.length, lines: retentionLines(ch) };
    } finally {
      await idx.close();
    }
  };
  const good = fs.readFileSync(cpFile);
  // signed by another key (an attacker's checkpoint): not trusted
  const other = generateSigningKey();
  writeCheckpoint({ dir: h.dir, key: other, chainId: cp.chain_id, firstSeq: first, removedFromSeq: 1, removedBytes: 1, anchor: { wall_ns: 1n, mono_ns: 1n, uncertainty_ns: 0n } as never });
  const missing = { throughSeq: BigInt(seqs[seqs.length - 1]!), indexed: BigInt(seqs.length), checkpointed: 0n, missing: BigInt(first - 1) };
  let got = (await account()) as { account: unknown; runs: number; lines: string[] };
  assert.deepEqual(got.account, missing);
  assert.equal(got.runs, 0);
  assert.match(got.lines[0]!, new RegExp(`0 deleted by retention \\(checkpointed\\), ${first - 1} missing$`));
  // signed by the trusted key but vouching for another envelope of the first chunk than the indexed one
  const elsewhere = fs.mkdtempSync(path.join(h.dir, '..', 'other-'));
  const envName = `chunk-${String(first).padStart(12, '0')}.dsse.json`;
  fs.writeFileSync(path.join(elsewhere, envName), '{"another":"envelope"}');
  writeCheckpoint({ dir: elsewhere, key: h.key, chainId: cp.chain_id, firstSeq: first, removedFromSeq: 1, removedBytes: 1, anchor: { wall_ns: 1n, mono_ns: 1n, uncertainty_ns: 0n } as never });
  fs.copyFileSync(path.join(elsewhere, 'checkpoint.dsse.json'), cpFile);
  got = (await account()) as { account: unknown; runs: number; lines: string[] };
  assert.deepEqual(got.account, missing);
  // the flipped byte of a good checkpoint
  const bad = Buffer.from(good);
  bad[Math.floor(bad.length / 2)] ^= 1;
  fs.writeFileSync(cpFile, bad);
  got = (await account()) as { account: unknown; runs: number; lines: string[] };
  assert.deepEqual(got.account, missing);
  // the good one again
  fs.writeFileSync(cpFile, good);
  got = (await account()) as { account: unknown; runs: number; lines: string[] };
  assert.equal(got.runs, 1);
});

function row(seq: number, chain = 'c1'): ChunkRow {
  return {
    chunk_id: seq, file: `h/${chain}/${seq}`, status: 'ok', reason: null, chain_id: chain, seq: BigInt(seq), envelope_sha256: `e${seq}`, prev_envelope_sha256: seq > 1 ? `e${seq - 1}` : null,
    run_id: 'r', final: true, hostname: 'h', machine_id: 'm', opened_wall_ns: BigInt(seq), sealed_wall_ns: BigInt(seq) + 1n, count: 1n, lost: 0n, ledger_json: null,
    function_calls_json: null, restart_json: null,
  };
}

test('in the fleet index, checkpointed seqs inside the window are gaps worded as deleted by retention, runs and account exact', () => {
  // indexed 1..3, 7..9 and 12; 4..6 and 10 named by checkpoints (two overlapping ones), 11 not
  const rows = [1, 2, 3, 7, 8, 9, 12].map((s) => row(s));
  const ranges = [
    { chainId: 'c1', fromSeq: 4n, throughSeq: 5n, checkpointSha256: 'a'.repeat(64), checkpointFirstSeq: 6n },
    { chainId: 'c1', fromSeq: 4n, throughSeq: 6n, checkpointSha256: 'b'.repeat(64), checkpointFirstSeq: 7n },
    { chainId: 'c1', fromSeq: 10n, throughSeq: 10n, checkpointSha256: 'c'.repeat(64), checkpointFirstSeq: 11n },
    { chainId: 'other', fromSeq: 1n, throughSeq: 100n, checkpointSha256: 'd'.repeat(64), checkpointFirstSeq: 101n },
  ];
  const c = coverageOf(rows, rows, ranges);
  const ch = c.chains[0]!;
  assert.deepEqual(ch.account, { throughSeq: 12n, indexed: 7n, checkpointed: 4n, missing: 1n });
  assert.deepEqual(ch.checkpointed.map((r) => [r.fromSeq, r.throughSeq, r.checkpointSha256[0]]), [[4n, 6n, 'b'], [10n, 10n, 'c']]);
  assert.deepEqual(ch.gaps, [
    `seq 4..6 deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${'b'.repeat(16)}... (first seq 7)`,
    `seq 10 deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${'c'.repeat(16)}... (first seq 11)`,
    'seq 11 is missing',
  ]);
  assert.equal(c.complete, false, 'records of the window are absent: the coverage stays incomplete');
  // without checkpoints every hole is missing, one line per seq as before
  const bare = coverageOf(rows, rows).chains[0]!;
  assert.deepEqual(bare.account, { throughSeq: 12n, indexed: 7n, checkpointed: 0n, missing: 5n });
  assert.deepEqual(bare.gaps, ['seq 4 is missing', 'seq 5 is missing', 'seq 6 is missing', 'seq 10 is missing', 'seq 11 is missing']);
  // a window inside the chain: the account is the whole chain's, the gaps the window's
  const w = coverageOf(rows.slice(3, 6), rows, ranges).chains[0]!;
  assert.deepEqual(w.account, ch.account);
  assert.deepEqual(w.gaps, []);
  assert.deepEqual(retentionLines(w), [
    'chain seq 1..12: 7 indexed, 4 deleted by retention (checkpointed), 1 missing',
    `seq 4..6 deleted by retention (checkpointed): recorded in the signed retention checkpoint sha256:${'b'.repeat(16)}... (first seq 7)`,
  ]);
  // a whole chain says nothing more
  assert.deepEqual(retentionLines(coverageOf([row(1), row(2)], [row(1), row(2)]).chains[0]!), []);
  assert.deepEqual(chainAccount([], []).account, { throughSeq: 0n, indexed: 0n, checkpointed: 0n, missing: 0n });
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openEvidenceDir } from '../../src/store/output';
import { CHUNK_CUT_LIMIT_BYTES, CHUNK_HARD_LIMIT_BYTES } from '../../src/store/layout';
import type { AttributionSource, OutputContext } from '../../src/store/sink';
import { verifyEvidence } from '../../src/verify';
import { makeHarness, PRODUCER, syntheticRecord } from '../helpers/evidence-fixtures';

/**
 * While the seal backlog is full (src/store/chunk-writer.ts MAX_PENDING_SEALS) the open chunk
 * grows past --chunk-size; it is still cut at CHUNK_CUT_LIMIT_BYTES, so no chunk is larger than
 * the fleet takes (src/fleet/chunk-check.ts `too-large`).
 */
test('a chunk held open while seals wait is cut at the cut limit, within the fleet\'s chunk limit', async () => {
  const h = makeHarness('rtev-cut-');
  // attribution answers are held back: the rotated chunks wait for their seal, the backlog stays full
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  // (each window's files are reported as omitted, which verify accepts as such)
  let window = new Set<string>();
  const attribution: AttributionSource = {
    windowFull: false,
    note: (r) => void window.add(String(r.event.type === 'file_open' ? r.event.path : r.event.filename)),
    takeWindow: () => {
      const t = { files: [], containers: new Map(), omitted: window.size, takenAtMs: 0 };
      window = new Set();
      return t;
    },
    finish: async (t) => {
      await held;
      return { containers: [], files: [], omitted: t.omitted, reasons: {} };
    },
  };
  const context: OutputContext = { producer: PRODUCER, ledger: () => h.ledger.snapshot(), notice: () => {}, attribution };
  const sink = openEvidenceDir({ stdout: false, outDir: h.dir, keyFile: h.keyFile, chunkMaxBytes: 4096, maxPendingSeals: 2 }, context, h.env, false);
  const partials = (): string[] => fs.readdirSync(h.dir).filter((n) => n.endsWith('.ndjson.partial')).sort();
  let i = 0;
  // two chunks are cut at 4 KiB, then the third grows until the cut limit and a fourth opens
  while (partials().length < 4 && i < 2_000_000) {
    for (const end = i + 20_000; i < end; i++) {
      // h.feed's records, with the record itself for attribution (syntheticRecord's own event)
      const r = syntheticRecord(i);
      const event = i % 5 === 4 ? { type: 'process_exec', filename: `/usr/bin/tool${i % 7}` } : { type: 'file_open', path: `/etc/file-${i}-\u00e9` };
      const p = h.ledger.probe(r.info.probe);
      p.kernel.submitted++;
      p.user.received++;
      sink.write(r.line, { ...r.info, record: { pid: 100 + (i % 50), event } });
      p.user.written++;
    }
  }
  const files = partials();
  assert.equal(files.length, 4, `${files.length} chunks after ${i} records`);
  const sizes = files.map((n) => fs.statSync(path.join(h.dir, n)).size);
  assert.ok(sizes[0]! < 8192 && sizes[1]! < 8192, `the first two chunks are cut at --chunk-size: ${sizes}`);
  assert.ok(sizes[2]! >= CHUNK_CUT_LIMIT_BYTES, `the held-open chunk grew to the cut limit: ${sizes[2]}`);
  assert.ok(sizes[2]! <= CHUNK_HARD_LIMIT_BYTES, `the held-open chunk stays within the fleet's limit: ${sizes[2]}`);
  release();
  await sink.close(h.ledger.snapshot());
  const v = verifyEvidence(h.dir, [h.key]);
  assert.equal(v.status, 'valid', JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)).slice(0, 1500));
});

test('--chunk-size above the cut limit is refused with the fix', () => {
  const h = makeHarness('rtev-cut-');
  const context: OutputContext = { producer: PRODUCER, ledger: () => h.ledger.snapshot(), notice: () => {} };
  assert.throws(() => openEvidenceDir({ stdout: false, outDir: h.dir, keyFile: h.keyFile, chunkMaxBytes: CHUNK_CUT_LIMIT_BYTES + 1 }, context, h.env, false),
    (err: Error & { code?: string; hint?: string }) => err.code === 'USAGE' && /--chunk-size/.test(err.message) && /63M/.test(err.hint ?? ''));
});

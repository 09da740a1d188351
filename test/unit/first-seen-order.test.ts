/**
 * --file-open-mode first-seen with the ts_ns merge: opens are deduplicated after the merge, next
 * to the output whose seal rotates the window (FirstSeenOpens). A record the merge still holds at
 * a seal is decided in the window of the chunk it lands in: each chunk's `deduplicated` opens
 * have their first open in that same chunk, and the output stays in ts_ns order. Deduplicating
 * before the merge (the pipeline's own first-seen) counts a duplicate in a chunk that does not
 * hold its first open: that is why first-seen runs used to write in arrival order (2271d7e).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FirstSeenOpens, Pipeline } from '../../src/ingest/pipeline';
import { PathFilter } from '../../src/ingest/path-filter';
import { OrderedSink } from '../../src/ingest/order';
import { fileOpenRecord, frames, memorySink } from '../helpers/ring-records';

interface Chunk { paths: string[]; ts: bigint[]; deduplicated: bigint }

/** a run: batches of opens (ring, [ts, path]), a seal after `sealAfter` batches, then everything released */
function run(atOutput: boolean, batches: [ts: bigint, path: string][][], sealAfter: number): { chunks: Chunk[]; pipeline: Pipeline } {
  const out = memorySink();
  let stage: FirstSeenOpens | undefined;
  let pipeline: Pipeline | undefined;
  if (atOutput) stage = new FirstSeenOpens(out, (probe, outcome) => pipeline!.countReleased(probe, outcome));
  // a scripted clock that never moves: only the rings' progress (none here) or release(true) let records go
  const ordered = new OrderedSink(stage ?? out, { now: () => 10n ** 12n });
  pipeline = new Pipeline({ sink: ordered, pathFilter: new PathFilter([], []), fileOpenMode: 'first-seen', ...(atOutput ? { firstSeenAtOutput: true } : {}) });
  const chunks: Chunk[] = [];
  let from = 0;
  let dedupAtLastSeal = 0n;
  const seal = (): void => {
    const dedup = pipeline!.user.file_open.deduplicated;
    chunks.push({ paths: out.lines.slice(from).map((l) => JSON.parse(l).event.path), ts: out.ts.slice(from), deduplicated: dedup - dedupAtLastSeal });
    from = out.lines.length;
    dedupAtLastSeal = dedup;
    pipeline!.rotateWindow();
    stage?.rotateWindow();
  };
  batches.forEach((batch, i) => {
    const buf = frames(batch.map(([ts, p]) => fileOpenRecord({ ts, path: p })));
    ordered.beginBatch('bulk');
    pipeline!.handleBatch(buf, buf.length);
    ordered.endBatch(false);
    if (i + 1 === sealAfter) seal();
  });
  ordered.release(true);
  seal();
  return { chunks, pipeline };
}

// /a at 100 and its duplicate at 150 arrive before the seal, still held by the merge; /b and /a again after
const BATCHES: [bigint, string][][] = [[[100n, '/a']], [[150n, '/a'], [160n, '/b']], [[200n, '/a']]];

test('first-seen after the merge: each chunk holds the first open of every key it counts as deduplicated, in ts_ns order', () => {
  const { chunks, pipeline } = run(true, BATCHES, 2);
  assert.deepEqual(chunks.map((c) => c.paths), [[], ['/a', '/b']]);
  assert.deepEqual(chunks[1]!.ts, [100n, 160n]);
  assert.deepEqual(chunks.map((c) => c.deduplicated), [0n, 2n]);
  const u = pipeline.user.file_open;
  assert.deepEqual([u.received, u.written, u.deduplicated], [4n, 2n, 2n], 'received = written + deduplicated');
});

test('first-seen before the merge (the old way) counts a duplicate in a chunk without its first open', () => {
  const { chunks } = run(false, BATCHES, 2);
  // the seal came while /a@100 was held: chunk 1 counts /a@150 as a duplicate but holds no /a
  assert.deepEqual(chunks[0], { paths: [], ts: [], deduplicated: 1n });
});

test('first-seen after the merge: the window rotates with the chunk (a key is written again in the next chunk)', () => {
  const out = memorySink();
  let pipeline: Pipeline | undefined;
  const stage = new FirstSeenOpens(out, (probe, outcome) => pipeline!.countReleased(probe, outcome));
  const ordered = new OrderedSink(stage, { now: () => 10n ** 12n });
  pipeline = new Pipeline({ sink: ordered, pathFilter: new PathFilter([], []), fileOpenMode: 'first-seen', firstSeenAtOutput: true });
  for (const ts of [100n, 150n, 160n]) {
    const buf = frames([fileOpenRecord({ ts, path: '/a' })]);
    ordered.beginBatch('bulk');
    pipeline.handleBatch(buf, buf.length);
    ordered.endBatch(false);
    ordered.release(true);
    if (ts === 100n) stage.rotateWindow(); // a seal after the first was written
  }
  assert.deepEqual(out.ts, [100n, 150n], 'the first open of the new window is written, its duplicate is not');
  assert.equal(pipeline.user.file_open.deduplicated, 1n);
});

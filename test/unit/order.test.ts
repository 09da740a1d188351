/**
 * The merge of the two kernel rings in ts_ns order (src/ingest/order.ts): records of both rings,
 * written by the reference path and as fast-path segments, reach the sink in non-decreasing
 * ts_ns within the bounds (quiet period, slack, maximum hold, records and bytes held); what
 * comes later than a newer record was written is counted, not dropped.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameKind } from '../../src/decode/segment';
import { FastPath } from '../../src/ingest/fast-path';
import { loadBinding } from '../../src/ingest/native';
import { OrderedSink } from '../../src/ingest/order';
import { PathFilter } from '../../src/ingest/path-filter';
import { Pipeline } from '../../src/ingest/pipeline';
import type { LineInfo } from '../../src/store/sink';
import { fileOpenRecord, frames, memorySink } from '../helpers/ring-records';

const MS = 1_000_000n;

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const info = (ts: bigint): LineInfo => ({ type: 'file_open', tsNs: ts, probe: 'file_open' });

function nonDecreasing(ts: bigint[]): boolean {
  for (let i = 1; i < ts.length; i++) if (ts[i]! < ts[i - 1]!) return false;
  return true;
}

test('order: an exec of the rare ring that arrives after later opens is written before them', async () => {
  let now = 1000n * MS;
  const sink = memorySink({ segments: true });
  const o = new OrderedSink(sink, { now: () => now });
  // the bulk ring delivers opens at 950..990 ms; the rare ring then an exec at 960 ms
  o.beginBatch('bulk');
  for (let t = 950n; t <= 990n; t += 10n) o.write(`open ${t}`, info(t * MS));
  o.endBatch();
  assert.equal(sink.lines.length, 0, 'held: the rare ring may still deliver older records');
  now += 10n * MS;
  o.beginBatch('rare');
  o.write('exec 965', info(965n * MS));
  o.endBatch();
  await turn();
  now += 300n * MS; // both rings quiet since (more than the 250 ms window): everything may go
  o.release();
  assert.deepEqual(sink.lines, ['open 950', 'open 960', 'exec 965', 'open 970', 'open 980', 'open 990']);
  assert.ok(nonDecreasing(sink.ts));
  assert.equal(o.stats.late, 0);
});

test('order: a record held is never held past maxHoldMs, and one that comes after newer ones were written is counted late', async () => {
  let now = 10_000n * MS;
  const sink = memorySink({ segments: true });
  const o = new OrderedSink(sink, { now: () => now, maxHoldMs: 500 });
  o.beginBatch('bulk');
  o.write('a', info(now + 1000n * MS)); // a timestamp ahead of the clock
  o.endBatch();
  now += 400n * MS;
  o.release();
  assert.equal(sink.lines.length, 0);
  now += 1200n * MS;
  o.release();
  assert.deepEqual(sink.lines, ['a']);
  o.beginBatch('rare');
  o.write('older', info(10_500n * MS));
  o.endBatch();
  await turn();
  assert.deepEqual(sink.lines, ['a', 'older'], 'written at the next turn');
  assert.equal(o.stats.late, 1);
});

test('order: past maxRecords the oldest are released early (counted), the rest in order', async () => {
  const now = 0n;
  const sink = memorySink({ segments: true });
  const o = new OrderedSink(sink, { now: () => now, maxRecords: 4 });
  o.beginBatch('bulk');
  for (const t of [50n, 10n, 40n, 20n, 30n, 60n]) o.write(String(t), info(t));
  o.endBatch();
  await turn();
  assert.deepEqual(sink.lines, ['10', '20']);
  assert.equal(o.stats.forced, 2);
  await o.close({});
  assert.deepEqual(sink.lines, ['10', '20', '30', '40', '50', '60']);
  assert.equal(o.stats.maxRecords, 6, 'the bounds are applied after each batch');
});

test('order: records waiting for attribution (the floor) hold the release back', async () => {
  let now = 1000n * MS;
  const sink = memorySink({ segments: true });
  let floor: bigint | undefined = 940n * MS;
  const o = new OrderedSink(sink, { now: () => now, floor: () => floor });
  o.beginBatch('bulk');
  o.write('960', info(960n * MS));
  o.endBatch();
  await turn();
  now += 300n * MS;
  o.release();
  assert.equal(sink.lines.length, 0, 'an older record still waits for its attribution');
  floor = undefined;
  o.write('940', info(940n * MS));
  await turn();
  assert.deepEqual(sink.lines, ['940', '960']);
  // within maxHoldMs only
  floor = 1000n * MS;
  o.write('1050', info(1050n * MS));
  await turn();
  now += 1000n * MS;
  o.release();
  assert.deepEqual(sink.lines, ['940', '960', '1050'], 'the floor holds records back at most maxHoldMs');
});

// ---------- fast-path segments ----------

/** an open by pid 7 in cgroup 5 */
const openRecord = (ts: bigint, path: string): Buffer => fileOpenRecord({ ts, path, pid: 7, tid: 7 });

const START = 1000n * MS;

/** runs batches (bulk: opens, rare: other rings' records as lines) through Pipeline -> OrderedSink */
async function merge(batches: { ring: 'bulk' | 'rare'; ts: bigint[] }[], fast: boolean): Promise<{ lines: string[]; ts: bigint[]; segments: number; late: number }> {
  let now = START;
  const sink = memorySink({ segments: true });
  const o = new OrderedSink(sink, { now: () => now });
  const fp = fast ? FastPath.create(loadBinding(), { fileOpen: true, attribute: false }, {}) : undefined;
  if (fast) assert.ok(fp !== undefined);
  const pipeline = new Pipeline({ sink: o, pathFilter: new PathFilter([], []), ...(fp !== undefined ? { fastPath: fp } : {}) });
  for (const b of batches) {
    const raw = frames(b.ts.map((t) => openRecord(t, `/${b.ring}/${t}`)));
    const slots = fp !== undefined && b.ring === 'bulk' ? fp.encodeFrames(raw, raw.length) : [raw];
    o.beginBatch(b.ring);
    for (const slot of slots) {
      pipeline.handleBatch(slot, slot.length);
      slot.fill(0xee); // the slot goes back to the consumer: held segments must not point into it
    }
    o.endBatch();
    // a turn of the event loop: the rings' progress counts from now on
    await turn();
    now += 30n * MS;
  }
  await o.close({});
  return { lines: sink.lines, ts: sink.ts, segments: sink.segments, late: o.stats.late };
}

test('order: fuzzed batches of both rings, reference and fast path: non-decreasing ts, nothing lost, the same bytes', async () => {
  const ts = fc.bigInt({ min: 1n, max: 400n * MS });
  await fc.assert(fc.asyncProperty(fc.array(fc.record({ ring: fc.constantFrom('bulk' as const, 'rare' as const), ts: fc.array(ts, { minLength: 1, maxLength: 40 }) }), { minLength: 1, maxLength: 12 }), async (batches) => {
    // records that arrive within the bounds: less than lagMs (20 ms) after their ts
    let now = START;
    const timely = batches.map((b) => {
      const t = { ring: b.ring, ts: b.ts.map((x) => now - (x % (10n * MS))) };
      now += 30n * MS;
      return t;
    });
    const ref = await merge(timely, false);
    const fast = await merge(timely, true);
    assert.equal(ref.late + fast.late, 0);
    const all = timely.flatMap((b) => b.ts).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.ok(nonDecreasing(ref.ts), 'reference path in ts order');
    assert.ok(nonDecreasing(fast.ts), 'fast path in ts order');
    assert.deepEqual(ref.ts, all, 'every record, once');
    assert.deepEqual(fast.ts, all);
    assert.deepEqual([...fast.lines].sort(), [...ref.lines].sort(), 'the same lines');
  }), { numRuns: 200 });
});

test('order: a backlog catching up: a sorted segment older than what both rings delivered goes straight through as one range', async () => {
  const sink = memorySink({ segments: true });
  const o = new OrderedSink(sink, { now: () => 9500n * MS });
  const fp = FastPath.create(loadBinding(), { fileOpen: true, attribute: false }, {})!;
  const pipeline = new Pipeline({ sink: o, pathFilter: new PathFilter([], []), fastPath: fp });
  o.beginBatch('rare');
  o.write('rare 9000', info(9000n * MS));
  o.endBatch();
  o.beginBatch('bulk');
  o.write('bulk 8000', info(8000n * MS));
  o.endBatch();
  await turn();
  assert.deepEqual(sink.lines, ['bulk 8000'], 'the rare record waits: the bulk ring may still deliver older ones');
  const raw = frames([8100n, 8101n, 8102n].map((t) => openRecord(t * MS, `/f${t}`)));
  o.beginBatch('bulk');
  for (const slot of fp.encodeFrames(raw, raw.length)) {
    assert.equal(slot.readUInt32LE(4), FrameKind.SEGMENT);
    pipeline.handleBatch(slot, slot.length);
  }
  o.endBatch();
  assert.equal(sink.segments, 1, 'written in the batch, no copy');
  assert.equal(sink.lines.length, 4);
  await o.close({});
  assert.ok(nonDecreasing(sink.ts));
  assert.equal(sink.lines.at(-1), 'rare 9000');
});

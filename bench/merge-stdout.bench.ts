/**
 * merge-stdout.bench: the main thread's work per file_open of `rtev collect --stdout` under a storm,
 * without the kernel and the consumer thread (docs/benchmarks.md, "Session 5 (h28)"). The addon's
 * encoder (native/encode.c, here on the JS thread, outside the timing) turns N recorded file_open
 * records with increasing timestamps into batches like the bulk ring's consumer hands over (1 MiB
 * slots of segments); then they go through what a run does with them, turn by turn of the event
 * loop: Pipeline (fast path, attribution hit) -> OrderedSink (the ts_ns merge, default window) ->
 * StreamSink (the --stdout writer) into /dev/null. Reports CPU ns per record (process CPU: the main
 * thread and libuv's writes) per round; the first round is what a run is like (cold JIT).
 *   [BATCH=N] node dist/bench/merge-stdout.bench.js [ROUNDS] [RECORDS_PER_ROUND]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FastPath } from '../src/ingest/fast-path';
import { loadBinding } from '../src/ingest/native';
import { OrderedSink, orderBounds, DEFAULT_ORDER_WINDOW_MS } from '../src/ingest/order';
import { PathFilter } from '../src/ingest/path-filter';
import { Pipeline } from '../src/ingest/pipeline';
import { StreamSink } from '../src/store/stream-sink';

const REPO = path.resolve(__dirname, '..', '..');
const samples = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger', 'samples.bin'));
const opens: Buffer[] = [];
for (let o = 0; o + 4 <= samples.length; ) {
  const len = samples.readUInt32LE(o);
  const r = samples.subarray(o + 4, o + 4 + len);
  if (r.readUInt32LE(16) === 1) opens.push(Buffer.from(r));
  o += 4 + len;
}
const rounds = Number(process.argv[2] ?? 5);
/** records per batch (the 1M storm: ~730 batches of ~312 KB, ~1400 records; BATCH=N to change) */
const BATCH = Number(process.env['BATCH'] ?? 1400);
const perRound = Number(process.argv[3] ?? 400_000);
/** records 1 us apart (a storm of 1M opens/s) */
const STEP = 1000n;
const T0 = 1_000_000_000_000n;

const fast = FastPath.create(loadBinding(), { fileOpen: true, attribute: true }, {})!;
const lookup = { lookup: () => ({}), whenSettled: async () => ({}) };
// the encoder's table learns the fixture's cgroups (as the reference path teaches it at a run's start)
const teacher = new Pipeline({ sink: { write: () => {}, backlogBytes: 0, bytesWritten: 0, close: async () => {} }, pathFilter: new PathFilter([], []), containers: lookup, fastPath: fast });

/** the slots the consumer thread would hand over for records [from, from + n) */
function encode(from: number, n: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const r = Buffer.from(opens[(from + i) % opens.length]!);
    r.writeBigUInt64LE(T0 + BigInt(from + i) * STEP, 0);
    const header = Buffer.alloc(8);
    header.writeUInt32LE(r.length);
    parts.push(header, r, Buffer.alloc(((r.length + 7) & ~7) - r.length));
  }
  const frames = Buffer.concat(parts);
  return fast.encodeFrames(frames, frames.length).map((s) => Buffer.from(s));
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function round(r: number): Promise<number> {
  // (encoded before the clock starts: in a run that is the consumer thread's work)
  const slots: Buffer[] = [];
  for (let i = 0; i < perRound; i += BATCH) slots.push(...encode(r * perRound + i, Math.min(BATCH, perRound - i)));
  let now = T0 + BigInt(r * perRound) * STEP;
  const out = new StreamSink(fs.openSync('/dev/null', 'w'));
  const ordered = new OrderedSink(out, { ...orderBounds(DEFAULT_ORDER_WINDOW_MS), now: () => now });
  const pipeline = new Pipeline({ sink: ordered, pathFilter: new PathFilter([], []), containers: lookup, fastPath: fast });
  const start = process.cpuUsage();
  let records = 0;
  for (const s of slots) {
    ordered.beginBatch('bulk');
    pipeline.handleBatch(s, s.length);
    ordered.endBatch(false);
    records += s.readUInt32LE(8); // the segment's line count
    now += BigInt(BATCH) * STEP; // the clock moves as fast as the records
    await turn();
  }
  await ordered.close({} as never);
  const used = process.cpuUsage(start);
  if (out.bytesWritten === 0) throw new Error("nothing written");
  return ((used.user + used.system) * 1000) / records;
}

/** the fixture's records through the reference path once, so the encoder knows their cgroups */
function teach(): void {
  const parts: Buffer[] = [];
  for (const r of opens) {
    const header = Buffer.alloc(8);
    header.writeUInt32LE(r.length);
    parts.push(header, r, Buffer.alloc(((r.length + 7) & ~7) - r.length));
  }
  const frames = Buffer.concat(parts);
  teacher.handleBatch(frames, frames.length);
  for (const s of encode(0, opens.length)) {
    if (s.readUInt32LE(4) !== 1 || s.readUInt32LE(0) + 8 !== s.length) throw new Error('the fast path did not encode the whole batch');
  }
}

async function main(): Promise<void> {
  teach();
  console.log(`node ${process.version}, ${perRound} file_open records per round in batches of ${BATCH}, ${rounds} rounds, process CPU time`);
  const values: number[] = [];
  // every round counts: a run's 730 batches are all the JIT sees (its first round is the one a run is like)
  for (let r = 0; r < rounds; r++) values.push(await round(r));
  values.sort((a, b) => a - b);
  console.log(`merge + stdout sink: ${values[values.length >> 1]!.toFixed(0)} ns/record (min ${values[0]!.toFixed(0)}, max ${values[values.length - 1]!.toFixed(0)}; ${values.map((v) => v.toFixed(0)).join(' ')})`);
}

void main();

/**
 * pipeline.bench: user-space cost per record, without the kernel: recorded file_open records
 * (test/fixtures/ringbuf/trigger) replayed in 1 MiB-like batches through decode, encode and the
 * whole Pipeline (no-op sink). Reports ns per record (process CPU time) as medians of rounds.
 *   node dist/bench/pipeline.bench.js [ROUNDS]
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeRecord, newDecodeStats } from '../src/decode/decode';
import { encodeRecord } from '../src/encode/record';
import { PathFilter } from '../src/ingest/path-filter';
import { FastPath } from '../src/ingest/fast-path';
import { loadBinding } from '../src/ingest/native';
import { Pipeline } from '../src/ingest/pipeline';
import type { EvidenceRecord } from '../src/model/record';
import { StreamSink } from '../src/store/output';
import type { RecordSink } from '../src/store/sink';

const REPO = path.resolve(__dirname, '..', '..');
const samples = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger', 'samples.bin'));
const records: Buffer[] = [];
for (let o = 0; o + 4 <= samples.length; ) {
  const len = samples.readUInt32LE(o);
  records.push(samples.subarray(o + 4, o + 4 + len));
  o += 4 + len;
}
const opens = records.filter((r) => r.readUInt32LE(16) === 1);
const PER_BATCH = 4000;
const parts: Buffer[] = [];
for (let i = 0; i < PER_BATCH; i++) {
  const r = opens[i % opens.length]!;
  const header = Buffer.alloc(8);
  header.writeUInt32LE(r.length);
  parts.push(header, r, Buffer.alloc(((r.length + 7) & ~7) - r.length));
}
const batch = Buffer.concat(parts);

function cpuNs(): bigint {
  const u = process.cpuUsage();
  return BigInt(u.user + u.system) * 1000n;
}

function measure(name: string, rounds: number, perRound: number, fn: () => void): void {
  for (let i = 0; i < 3; i++) fn();
  const values: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = cpuNs();
    for (let i = 0; i < perRound; i++) fn();
    values.push(Number(cpuNs() - start) / (perRound * PER_BATCH));
  }
  values.sort((a, b) => a - b);
  console.log(`${name.padEnd(26)} ${values[Math.floor(values.length / 2)]!.toFixed(0).padStart(6)} ns/record (min ${values[0]!.toFixed(0)}, max ${values[values.length - 1]!.toFixed(0)})`);
}

const rounds = Number(process.argv[2] ?? 7);
const stats = newDecodeStats();
const decoded: EvidenceRecord[] = opens.map((r) => { const d = decodeRecord(r, stats); return d.ok && 'record' in d ? d.record : undefined; })
  .filter((r): r is EvidenceRecord => r !== undefined);
let sinkBytes = 0;
const sink: RecordSink = { write: (line) => { sinkBytes += line.length; }, backlogBytes: 0, bytesWritten: 0, close: async () => {} };
const pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []) });
const attributed = new Pipeline({
  sink, pathFilter: new PathFilter([], []),
  containers: { lookup: () => ({}), whenSettled: async () => ({}) },
});

console.log(`node ${process.version}, ${PER_BATCH} file_open records per batch, ${rounds} rounds, process CPU time`);
measure('decode', rounds, 20, () => { for (let i = 0; i < PER_BATCH; i++) decodeRecord(opens[i % opens.length]!, stats); });
measure('encode', rounds, 20, () => { for (let i = 0; i < PER_BATCH; i++) encodeRecord(decoded[i % decoded.length]!); });
measure('pipeline (no enrichment)', rounds, 20, () => pipeline.handleBatch(batch, batch.length));
measure('pipeline (enrichment hit)', rounds, 20, () => attributed.handleBatch(batch, batch.length));
const devNull = new StreamSink(fs.openSync('/dev/null', 'w'));
const toDevNull = new Pipeline({ sink: devNull, pathFilter: new PathFilter([], []), containers: { lookup: () => ({}), whenSettled: async () => ({}) } });
measure('pipeline + stdout sink', rounds, 20, () => toDevNull.handleBatch(batch, batch.length));
// the fast path (native/encode.c): the consumer thread's encoding, run here on the JS thread by
// encodeFrames, then the pipeline over the segments it makes (docs/benchmarks.md, "Fast path")
const fast = FastPath.create(loadBinding(), { fileOpen: true, attribute: true }, {})!;
const fastLookup = { lookup: () => ({}), whenSettled: async () => ({}) };
const teach = new Pipeline({ sink, pathFilter: new PathFilter([], []), containers: fastLookup, fastPath: fast });
teach.handleBatch(batch, batch.length); // the table learns the fixture's cgroups
let slots = fast.encodeFrames(batch, batch.length);
if (slots.some((s) => s.readUInt32LE(4) !== 1 || s.readUInt32LE(0) + 8 !== s.length)) throw new Error('the fast path did not encode the whole batch');
measure('fast path: C encode', rounds, 20, () => { slots = fast.encodeFrames(batch, batch.length); });
const fastToDevNull = new Pipeline({ sink: devNull, pathFilter: new PathFilter([], []), containers: fastLookup, fastPath: fast });
measure('fast path: pipeline + stdout', rounds, 20, () => { for (const s of slots) fastToDevNull.handleBatch(s, s.length); });
measure('fast path: both', rounds, 20, () => { for (const s of fast.encodeFrames(batch, batch.length)) fastToDevNull.handleBatch(s, s.length); });
if (sinkBytes === 0 || devNull.bytesWritten === 0) throw new Error('nothing encoded');

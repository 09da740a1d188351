/**
 * fast-paths.bench: the two hand-written fast paths of the record path against the generic code
 * they replace:
 * - text decode (src/decode/text.ts decodeTextAt: an ASCII byte loop, then latin1) vs isUtf8 on
 *   the subarray and toString('utf8'), per path string (up to 20,000 real paths under /usr/lib
 *   and /etc of this host, packed into one buffer as the ring delivers them);
 * - record encode (src/encode/record.ts encodeRecord: keys written in sorted order by hand, plain
 *   ASCII strings quoted without JSON.stringify) vs the reference canonicalize(), per record, on
 *   the recorded file_open records of test/fixtures/ringbuf/trigger.
 * Reports ns per operation (process CPU time, median of rounds) and the ratio of each pair, which
 * is what to compare on a loaded machine.
 *   node dist/bench/fast-paths.bench.js [ROUNDS]
 */
import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeRecord, newDecodeStats } from '../src/decode/decode';
import { decodeTextAt } from '../src/decode/text';
import { canonicalize, type CanonicalValue } from '../src/encode/canonical';
import { encodeRecord } from '../src/encode/record';
import type { EvidenceRecord } from '../src/model/record';

const REPO = path.resolve(__dirname, '..', '..');
const samples = fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger', 'samples.bin'));
const raw: Buffer[] = [];
for (let o = 0; o + 4 <= samples.length; ) {
  const len = samples.readUInt32LE(o);
  raw.push(samples.subarray(o + 4, o + 4 + len));
  o += 4 + len;
}
const stats = newDecodeStats();
const records: EvidenceRecord[] = raw.filter((r) => r.readUInt32LE(16) === 1)
  .map((r) => decodeRecord(r, stats))
  .map((d) => (d.ok && 'record' in d ? d.record : undefined))
  .filter((r): r is EvidenceRecord => r !== undefined);
// paths as the ring delivers them (bytes inside a larger buffer): this host's real file names
// under /usr and /etc, what an open storm of a build or a package manager touches
const paths: string[] = [];
const walk = (dir: string): void => {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (paths.length >= 20_000) return;
    const p = path.join(dir, e.name);
    paths.push(p);
    if (e.isDirectory() && !e.isSymbolicLink()) walk(p);
  }
};
walk('/usr/lib');
walk('/etc');
const arena = Buffer.from(paths.join('\0'), 'utf8');
const spans: Array<[number, number]> = [];
for (let s = 0; s < arena.length; ) {
  let e = arena.indexOf(0, s);
  if (e < 0) e = arena.length;
  spans.push([s, e]);
  s = e + 1;
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** measure: ns per operation, median over rounds of `perRound` passes over `n` operations. */
function measure(name: string, rounds: number, n: number, fn: () => void): number {
  for (let i = 0; i < 3; i++) fn();
  const perRound = Math.max(1, Math.ceil(200_000 / n));
  const values: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = cpuNs();
    for (let i = 0; i < perRound; i++) fn();
    values.push((cpuNs() - start) / (perRound * n));
  }
  values.sort((a, b) => a - b);
  const median = values[Math.floor(values.length / 2)]!;
  console.log(`${name.padEnd(44)} ${median.toFixed(3).padStart(8)} ns/op (min ${values[0]!.toFixed(3)}, max ${values[values.length - 1]!.toFixed(3)})`);
  return median;
}

const rounds = Number(process.argv[2] ?? 9);
let sink = 0;
console.log(`node ${process.version}, ${records.length} file_open records, ${spans.length} paths (${spans.filter(([s, e]) => arena.subarray(s, e).every((b) => b < 0x80)).length} ASCII), ${rounds} rounds, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const fast = measure('text: decodeTextAt (byte loop + latin1)', rounds, spans.length, () => {
  for (const [s, e] of spans) sink += decodeTextAt(arena, s, e, stats).length;
});
const generic = measure('text: isUtf8(subarray) + toString(utf8)', rounds, spans.length, () => {
  for (const [s, e] of spans) {
    const b = arena.subarray(s, e);
    sink += isUtf8(b) ? b.toString('utf8').length : 0;
  }
});
console.log(`text decode: generic / fast = ${(generic / fast).toFixed(2)}`);
const enc = measure('record: encodeRecord', rounds, records.length, () => {
  for (const r of records) sink += encodeRecord(r).length;
});
const canon = measure('record: canonicalize (reference)', rounds, records.length, () => {
  for (const r of records) sink += canonicalize(r as unknown as CanonicalValue).length;
});
console.log(`record encode: canonicalize / encodeRecord = ${(canon / enc).toFixed(2)}`);
if (sink === 0) console.log('');

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import fc from 'fast-check';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import type { ChunkFacts } from '../../src/fleet/chunk-check';
import { LineScan } from '../../src/fleet/line-scan';
import { encodeRowsBinary } from '../../src/fleet/rows-binary';
import type { ChunkContent } from '../../src/verify';
import { syntheticLine } from '../helpers/synthetic-evidence';

/**
 * The canonical-line scanner of the ingest row builder (src/fleet/line-scan.ts) against the
 * JSON.parse-based builder: encodeRowsBinary with the scanner and with JSON.parse for every
 * line give the same COPY bytes and the same summary (or both refuse the body), on real
 * fixture lines, synthetic lines of every event type, hand-made edge cases and fuzzed lines.
 */

const RUNS = Number(process.env['RTEV_FUZZ_RUNS'] ?? 2000);

const facts = {
  hostId: 'ab'.repeat(16), chainId: '0f0e0d0c-0b0a-4908-8706-050403020100', seq: 7n, chunkSha256: 'c'.repeat(64),
  openedMonoNs: 9_007_199_254_740_000n, sealedMonoNs: 9_007_299_254_740_000n, openedWallNs: 1_764_576_000_000_000_000n, sealedWallNs: 1_764_576_100_000_000_123n,
} as unknown as ChunkFacts;

function comparable(c: ChunkContent): unknown {
  return { ...c, byType: Object.fromEntries([...c.byType].sort()), subjects: { files: [...c.subjects.files].sort(), containers: [...c.subjects.containers].map(([k, v]) => [k, [...v].sort()]).sort() } };
}

/** both builders on one body: the same bytes and summary, or both undefined */
function same(body: Buffer, what: string): 'taken' | 'refused' {
  const scanned = encodeRowsBinary(body, facts, 42n, true);
  const parsed = encodeRowsBinary(body, facts, 42n, true, { scan: false });
  if (parsed === undefined) {
    assert.equal(scanned, undefined, `${what}: the JSON.parse builder refuses it, the scanner must too`);
    return 'refused';
  }
  assert.ok(scanned !== undefined, `${what}: the JSON.parse builder takes it, the scanner must too`);
  assert.ok(Buffer.concat(scanned.pieces).equals(Buffer.concat(parsed.pieces)), `${what}: the COPY bytes differ`);
  assert.deepEqual(comparable(scanned.content), comparable(parsed.content), `${what}: the summary differs`);
  return 'taken';
}

const synthetic = Array.from({ length: 3000 }, (_, i) => syntheticLine(i, 9_007_199_254_740_993n + BigInt(i) * 1_000_000n, i % 2 === 0).line);
const fixture = (f: string): string[] => fs.readFileSync(path.join(__dirname, '../../../test/fixtures/ringbuf', f), 'utf8').split('\n').filter((l) => l.length > 0);
/** records the collector wrote from recorded ring buffers */
const fixtureLines = ['function_call/expected.ndjson', 'ssl_op/expected.ndjson', 'net_connect/expected.ndjson', 'trigger/expected.ndjson'].flatMap(fixture);
/** canonical lines that are not records (the decoded call samples): both builders refuse them */
const notRecords = fixture('function_call/expected-calls.ndjson');

test('the scanner reads every canonical line itself (no fallback) and agrees with JSON.parse', () => {
  const sc = new LineScan();
  for (const l of [...synthetic, ...fixtureLines]) {
    const b = Buffer.from(l);
    assert.ok(sc.scan(b, 0, b.length), `scanner refused a canonical line: ${l.slice(0, 120)}`);
  }
  assert.ok(fixtureLines.length >= 30, `${fixtureLines.length} fixture lines`);
  assert.equal(same(Buffer.from(synthetic.join('\n') + '\n'), 'synthetic chunk'), 'taken');
  assert.equal(encodeRowsBinary(Buffer.from(synthetic.join('\n') + '\n'), facts, 1n, false)!.parsed, 0, 'no canonical line goes to JSON.parse');
  const odd = [synthetic[0]!, synthetic[1]!.replace(/,"pid":/, ', "pid":'), synthetic[2]!.replace(/"comm":"/, '"comm":"\\u0041')];
  assert.equal(encodeRowsBinary(Buffer.from(odd.join('\n') + '\n'), facts, 1n, false)!.parsed, 1, 'a line with whitespace is read by JSON.parse and counted; an escape is the scanner\'s');
  assert.equal(encodeRowsBinary(Buffer.from(odd.join('\n') + '\n'), facts, 1n, false, { scan: false })!.parsed, 3);
  assert.equal(same(Buffer.from(fixtureLines.join('\n') + '\n'), 'fixture chunk'), 'taken');
  for (const l of [...synthetic.slice(0, 300), ...fixtureLines]) assert.equal(same(Buffer.from(l + '\n'), l.slice(0, 100)), 'taken');
  for (const l of notRecords) {
    assert.ok(sc.scan(Buffer.from(l), 0, Buffer.byteLength(l)), 'the scanner reads it');
    assert.equal(same(Buffer.from(l + '\n'), l.slice(0, 100)), 'refused', 'not a record (no event)');
  }
});

const base = synthetic.find((l) => l.includes('"file_open"') && l.includes('container_id'))!;
const tcp = synthetic.find((l) => l.includes('"tcp_state"'))!;
const ssl = synthetic.find((l) => l.includes('"ssl_op"'))!;
const fn = synthetic.find((l) => l.includes('"function_call"'))!;

test('edge cases: escapes, limits, odd values, non-canonical JSON', () => {
  const long = (n: number, c: string): string => c.repeat(n);
  const cases: string[] = [
    base.replace(/"comm":"[^"]*"/, '"comm":"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\\udcff"'),
    base.replace(/"path":"[^"]*"/, `"path":"${long(5000, 'x')}"`),
    base.replace(/"path":"[^"]*"/, `"path":"${long(4095, 'x')}\u00e9"`),
    base.replace(/"path":"[^"]*"/, `"path":"${long(4095, 'x')}\ud83d\ude00"`),
    base.replace(/"comm":"[^"]*"/, `"comm":"${long(63, 'a')}\ud83d\ude00"`),
    base.replace(/"comm":"[^"]*"/, `"comm":"${long(64, '\u00e9')}"`),
    base.replace(/"comm":"[^"]*"/, `"comm":"${long(40, '\u00e9')}"`),
    base.replace(/"comm":"[^"]*"/, '"comm":""'),
    base.replace(/"type":"file_open"/, '"type":"file\\u005fopen"'),
    base.replace(/"type":"file_open"/, '"type":"file_opens"'),
    base.replace(/"type":"file_open"/, `"type":"${long(40, 't')}"`),
    base.replace(/"type":"file_open"/, '"type":7'),
    base.replace(/"type":"file_open"/, '"type":null'),
    base.replace(/"pid":\d+/, '"pid":4294967296'),
    base.replace(/"pid":\d+/, '"pid":-12'),
    base.replace(/"pid":\d+/, '"pid":-0'),
    base.replace(/"pid":\d+/, '"pid":12.0'),
    base.replace(/"pid":\d+/, '"pid":1e3'),
    base.replace(/"pid":\d+/, '"pid":0012'),
    base.replace(/"pid":\d+/, '"pid":"12"'),
    base.replace(/"pid":\d+/, '"pid":9007199254740993'),
    base.replace(/"pid":\d+/, '"pid":123456789012345'),
    base.replace(/"tid":\d+/, '"tid":null'),
    base.replace(/"tid":\d+/, '"tid":2147483648'),
    base.replace(/"tid":\d+/, '"tid":[1,2]'),
    base.replace(/"container_id":"[^"]*"/, '"container_id":null'),
    base.replace(/"container_id":"[^"]*"/, '"container_id":{"a":[true,false,null,{}]}'),
    base.replace(/"event":\{[^}]*\}/, '"event":[]'),
    base.replace(/"event":\{[^}]*\}/, '"event":null'),
    base.replace(/"event":\{[^}]*\}/, '"event":{}'),
    base.replace(/"event":\{/, '"event":{"a":{"b":{"c":[[[[[[1]]]]]]}},'),
    base.replace(/"event":\{/, `"event":{"a":${'['.repeat(70)}${']'.repeat(70)},`),
    base.replace(/"event":\{/, `"event":{"a":${'['.repeat(20)}${']'.repeat(20)},`),
    base.replace(/"event":\{/, '"event":{"type":"process_exec",'),
    base.replace(/"comm":/, '"comm":"dup","comm":'),
    base.replace(/"pid":/, '"aaa":1,"pid":'),
    base.replace(/"pid":/, '"p\\u0069d":5,"pid":'),
    base.replace(/,"pid":/, ', "pid":'),
    base.replace(/"comm":"/, '"comm":"\u0001'),
    base.replace(/"comm":"/, '"comm":"\\x'),
    base.replace(/"comm":"/, '"comm":"\\u12g4'),
    base.replace(/"comm":"/, '"comm":"\u007f'),
    base.replace(/^\{"cgroup_id":\d+,/, '{'),
    base.replace(/^\{"cgroup_id":\d+,/, '{"cgroup_id":99999999999999999999,'),
    base.replace(/^\{"cgroup_id":\d+,/, '{"cgroup_id":"12",'),
    base.replace(/"ts_ns":\d+}$/, '"ts_ns":0}'),
    base.replace(/"ts_ns":\d+}$/, '"ts_ns":18446744073709551615}'),
    base.replace(/"ts_ns":\d+}$/, '"ts_ns":1.5}'),
    base + ' ',
    base.slice(0, -1),
    '[' + base + ']',
    '{}',
    '{"ts_ns":1}',
    tcp.replace(/"dport":\d+/, '"dport":99999999999'),
    tcp.replace(/"sport":\d+/, '"sport":"x"'),
    tcp.replace(/"saddr":"[^"]*"/, `"saddr":"${long(70, '1')}"`),
    ssl.replace(/"bytes":\d+/, '"bytes":123456789012345'),
    ssl.replace(/"bytes":\d+/, '"bytes":-5'),
    ssl.replace(/"bytes":\d+/, '"bytes":"5"'),
    fn.replace(/"node_hash":"[^"]*"/, `"node_hash":"${long(200, 'h')}"`),
    fn.replace(/"library":"[^"]*"/, '"library":"\\ud800"'),
  ];
  let taken = 0;
  for (const l of cases) {
    if (same(Buffer.from(l + '\n'), l.slice(0, 160)) === 'taken') taken++;
    // inside a chunk of good lines as well
    same(Buffer.from([synthetic[1], l, synthetic[2]].join('\n') + '\n'), `in a chunk: ${l.slice(0, 160)}`);
  }
  assert.ok(taken > cases.length / 2, `${taken} of ${cases.length} taken`);
});

/** a mutated canonical line: characters replaced, inserted, removed */
const mutation = fc.record({
  line: fc.constantFrom(...synthetic.slice(0, 200), ...fixtureLines),
  edits: fc.array(fc.record({
    at: fc.nat(),
    del: fc.nat({ max: 3 }),
    ins: fc.oneof(
      fc.constantFrom('"', '\\', '{', '}', '[', ']', ',', ':', ' ', '0', '-', '.', 'e', 'u', '\\u', '\\ud800', '\u00e9', '\u0001', '\u007f', 'null', 'true', '1', '99999999999999999', '"x":1,', '\ud83d\ude00'),
      fc.string({ unit: 'binary', maxLength: 4 }),
    ),
  }), { minLength: 1, maxLength: 4 }),
});

test('fuzzed lines: the scanner and JSON.parse agree', () => {
  fc.assert(fc.property(mutation, ({ line, edits }) => {
    // keep the ts_ns tail (or both refuse on it, which tests nothing)
    const tail = line.lastIndexOf(',"ts_ns":');
    let head = line.slice(0, tail);
    for (const e of edits) {
      const at = e.at % (head.length + 1);
      head = head.slice(0, at) + e.ins + head.slice(at + e.del);
    }
    const l = head + line.slice(tail);
    same(Buffer.from(l.replace(/\n/g, '') + '\n'), JSON.stringify(l));
  }), { numRuns: RUNS });
});

/** records with random values in the fields the builder reads, canonical and in random key order */
const value = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 80 }), fc.string({ maxLength: 8 }), fc.integer(), fc.integer({ min: -2_147_483_648, max: 2_147_483_647 }),
  fc.maxSafeInteger(), fc.constant(null), fc.boolean(), fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 4 })), { maxLength: 3 }),
);
const record = fc.record({
  event: fc.record({
    type: fc.oneof(fc.constantFrom('file_open', 'process_exec', 'net_connect', 'tcp_state', 'ssl_op', 'function_call'), value),
    path: value, access: value, filename: value, addr: value, port: value, daddr: value, dport: value, saddr: value, sport: value,
    bytes: value, operation: value, symbol: value, library: value, node_hash: value, runtime: value, stack: value,
  }, { requiredKeys: ['type'] }),
  comm: value, src: value, pid: value, tid: value, container_id: value, image_digest: value, cgroup_id: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), value),
}, { requiredKeys: ['event', 'pid', 'comm', 'src'] });

test('generated records: the scanner and JSON.parse agree', () => {
  fc.assert(fc.property(record, fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.boolean(), (r, ts, canonical) => {
    const rec = { ...r, ts_ns: ts } as unknown as Record<string, CanonicalValue>;
    let l: string;
    if (canonical) {
      l = canonicalize(rec);
    } else {
      // not canonical: keys in insertion order (ts_ns still last), bigints as digits
      l = JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? `@@${v}@@` : v)).replace(/"@@(\d+)@@"/g, '$1');
    }
    same(Buffer.from(l + '\n'), l);
  }), { numRuns: RUNS });
});

/**
 * The fast path (native/encode.c, in the addon's consumer thread) against the reference path
 * (decode -> record -> encodeRecord): the same records through two Pipelines, one fed raw
 * frames, one fed what the encoder makes of them, must write the same bytes and count the
 * same things. On the recorded fixture, on fuzzed records (hostile paths: invalid UTF-8,
 * control characters, 4 KiB paths, relative paths with `.` and empty components) and on every
 * attribution case (host, container with and without digest, v1 memory cgroup, pending,
 * never resolved, a cgroup that goes back to pending while the table knows it, --host-only).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameKind, readSegment, SegmentLine, segmentSameKey } from '../../src/decode/segment';
import { FastPath } from '../../src/ingest/fast-path';
import { loadBinding } from '../../src/ingest/native';
import { PathFilter } from '../../src/ingest/path-filter';
import { Pipeline } from '../../src/ingest/pipeline';
import { StreamSink } from '../../src/store/output';
import type { RecordSink } from '../../src/store/sink';
import { makeHarness } from '../helpers/evidence-fixtures';
import { REPO } from '../helpers/collector';
import { readSamples } from '../helpers/fake-binding';
import { fileOpenRecord, frames, ScriptedLookup, type FinalAnswer, type OpenSpec } from '../helpers/ring-records';

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger');
const binding = loadBinding();

interface Run {
  bytes: Buffer;
  counters: unknown;
  fastLines: number;
}

/** runBoth sends `batches` through the reference path and through the fast path. */
async function runBoth(batches: Buffer[][], opts: { lookup?: () => ScriptedLookup; hostOnly?: boolean; pathFilter?: PathFilter } = {}): Promise<{ reference: Run; fast: Run }> {
  const run = async (fast: boolean): Promise<Run> => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-fast-'));
    const file = path.join(dir, 'out.ndjson');
    const sink = new StreamSink(fs.openSync(file, 'w'));
    const containers = opts.lookup?.();
    const filtered = opts.pathFilter?.active === true;
    const fp = fast ? FastPath.create(binding, { fileOpen: true, attribute: containers !== undefined, pathFilter: filtered }, {}) : undefined;
    if (fast) assert.equal(fp !== undefined, !filtered, 'the addon has the fast path; a path filter turns it off');
    const pipeline = new Pipeline({
      sink, pathFilter: opts.pathFilter ?? new PathFilter([], []),
      ...(containers !== undefined ? { containers } : {}),
      ...(opts.hostOnly === true ? { dropContainerRecords: true } : {}),
      ...(fp !== undefined ? { fastPath: fp } : {}),
      holdMs: 50,
    });
    let fastLines = 0;
    for (const [n, records] of batches.entries()) {
      if (containers instanceof ScriptedLookup) containers.startBatch(n);
      const raw = frames(records);
      const slots = fp !== undefined ? fp.encodeFrames(raw, raw.length) : [raw];
      for (const slot of slots) {
        for (let o = 0; o + 8 <= slot.length;) {
          const len = slot.readUInt32LE(o);
          if (slot.readUInt32LE(o + 4) === FrameKind.SEGMENT) fastLines += slot.readUInt32LE(o + 8);
          o += 8 + ((len + 7) & ~7);
        }
        pipeline.handleBatch(slot, slot.length);
      }
      await pipeline.idle();
    }
    await sink.close({} as never);
    const bytes = fs.readFileSync(file);
    fs.rmSync(dir, { recursive: true, force: true });
    return {
      bytes, fastLines,
      counters: { user: pipeline.user, decode: pipeline.decodeStats, rejects: pipeline.rejectReasons, unattributed: pipeline.unattributed },
    };
  };
  return { reference: await run(false), fast: await run(true) };
}

function assertSame(r: { reference: Run; fast: Run }): void {
  assert.equal(r.fast.bytes.toString('latin1'), r.reference.bytes.toString('latin1'));
  assert.deepEqual(r.fast.counters, r.reference.counters);
}

/**
 * splitRanges: a sink in front of `sink` that hands each writeSegment on in random pieces, as the
 * order merge does (src/ingest/order.ts cuts runs at its watermark): ranges that start and end
 * inside a segment, and cross a chunk's size limit or a full attribution window anywhere.
 */
function splitRanges<T extends RecordSink>(sink: T, seed: number): RecordSink {
  let x = seed >>> 0 || 1;
  const rand = (n: number): number => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x % n;
  };
  return {
    write: (line, info) => sink.write(line, info),
    writeSegment: (seg, first, last) => {
      for (let i = first; i < last;) {
        const n = 1 + rand(rand(4) === 0 ? last - i : Math.min(8, last - i));
        sink.writeSegment!(seg, i, i + n);
        i += n;
      }
    },
    get backlogBytes() { return sink.backlogBytes; },
    get bytesWritten() { return sink.bytesWritten; },
    close: (ledger) => sink.close(ledger),
  };
}

/** inOrder: the records with ts 1000, 1001, ... (segments with no descents) */
function inOrder(records: Buffer[]): Buffer[] {
  return records.map((r, i) => {
    const c = Buffer.from(r);
    c.writeBigUInt64LE(1000n + BigInt(i), 0);
    return c;
  });
}

const fixture = readSamples(fs.readFileSync(path.join(FIXTURE, 'samples.bin')));

test('fast path: the recorded fixture gives the bytes of the reference path and of expected.ndjson', async () => {
  const r = await runBoth([fixture]);
  assertSame(r);
  assert.equal(r.fast.bytes.toString('utf8'), fs.readFileSync(path.join(FIXTURE, 'expected.ndjson'), 'utf8'));
  const opens = fixture.filter((rec) => rec.readUInt32LE(16) === 1).length;
  assert.ok(opens > 10);
  assert.equal(r.fast.fastLines, opens, 'every file_open record of the fixture takes the fast path');
});

// ---------- fuzzed file_open records ----------

const O_CREAT = 0o100;

/** bytes that make hostile text: valid and broken UTF-8, controls, quotes, '.', '/' */
const hostileByte = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...Buffer.from('abc./-_ ')) },
  { weight: 2, arbitrary: fc.constantFrom(0x2f, 0x2e) },
  { weight: 1, arbitrary: fc.constantFrom(0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f, 0x22, 0x5c, 0x7f) },
  { weight: 2, arbitrary: fc.integer({ min: 0x80, max: 0xff }) },
);
const utf8Piece = fc.constantFrom('é', '€', '😀', '\u2028', '\uFFFE', '…').map((s) => [...Buffer.from(s)]);
const hostileBytes = (max: number): fc.Arbitrary<Uint8Array> =>
  fc.array(fc.oneof({ weight: 5, arbitrary: hostileByte.map((b) => [b]) }, { weight: 1, arbitrary: utf8Piece }), { maxLength: max })
    .map((parts) => Uint8Array.from(parts.flat()));
const relative = fc.array(fc.constantFrom('.', '..', '', 'a', 'b.c', '.x', 'é'), { minLength: 1, maxLength: 5 })
  .map((parts) => Uint8Array.from(Buffer.from(parts.join('/'))));
const u64 = fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 2n, 9007199254740993n, 18446744073709551615n));

const openSpec: fc.Arbitrary<OpenSpec> = fc.record({
  ts: u64,
  cgroup: fc.oneof(fc.constantFrom(1n, 2n, 3n, 4n, 5n, 6n), u64),
  v1: fc.oneof(fc.constant(0n), fc.constantFrom(7n, 8n, 9n), u64),
  pid: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 0xffffffff }) }, { weight: 1, arbitrary: fc.constant(0) }),
  tid: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0xffffffff })),
  comm: fc.oneof(hostileBytes(16), fc.uint8Array({ minLength: 16, maxLength: 16 })),
  ret: fc.oneof(fc.integer({ min: -140, max: 10 }), fc.constantFrom(-2147483648, 2147483647, -4095)),
  flags: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 2, 3, O_CREAT | 1, 0o20200000, 0o10000000, 0o20000002)),
  mode: fc.integer({ min: 0, max: 0xffffffff }),
  dfd: fc.oneof(fc.constant(-100), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
  path: fc.oneof(
    hostileBytes(60),
    relative,
    hostileBytes(40).map((b) => Uint8Array.from([0x2f, ...b])),
    fc.constant(Uint8Array.from(Buffer.from('/' + 'p'.repeat(4095)))),
  ),
  dir: fc.oneof(fc.constant(new Uint8Array()), hostileBytes(40), fc.constantFrom(Buffer.from('/'), Buffer.from('/home/u/'), Buffer.from('/srv/x')).map((b) => Uint8Array.from(b))),
  pathFlags: fc.integer({ min: 0, max: 31 }),
  syscall: fc.integer({ min: 0, max: 6 }),
  sizeDelta: fc.oneof({ weight: 19, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constantFrom(-1, 1, 8) }),
  kind: fc.oneof({ weight: 19, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.constantFrom(2, 99) }),
});

test('fast path: fuzzed file_open records (hostile text, 4 KiB paths, relative joins) give the same bytes and counters', async () => {
  let fastLines = 0;
  await fc.assert(fc.asyncProperty(fc.array(openSpec, { minLength: 1, maxLength: 30 }), async (specs) => {
    const records = specs.map((s) => fileOpenRecord(s));
    const r = await runBoth([records]);
    assertSame(r);
    fastLines += r.fast.fastLines;
  }), { numRuns: 300 });
  assert.ok(fastLines > 1000, `most fuzzed records take the fast path (${fastLines})`);
});

test('fast path: hostile paths written out in full, one by one', async () => {
  const base: OpenSpec = {
    ts: 123n, cgroup: 5n, v1: 0n, pid: 10, tid: 0, comm: Uint8Array.from(Buffer.from('c\x01"\\\xff')), ret: 3, flags: 0, mode: 0,
    dfd: -100, path: new Uint8Array(), dir: Uint8Array.from(Buffer.from('/d')), pathFlags: 0, syscall: 1, sizeDelta: 0, kind: 1,
  };
  // raw bytes: latin1 strings stand for byte strings, the others are UTF-8
  const bytes = ['/a\nb', '/\xc3\x28', '/\xed\xa0\x80', '/\xf4\x90\x80\x80', '/\xe2\x80', '/\x7f\x1f\x00z', 'rel', './x', 'a//b',
    'a/./b/', '.', 'a/.', '//', 'x'.repeat(4096)].map((p) => Buffer.from(p, 'latin1'));
  const utf8 = ['/ok/é/😀', '/' + 'é'.repeat(2047), 'é/./€'].map((p) => Buffer.from(p, 'utf8'));
  const records: Buffer[] = [];
  for (const p of [...bytes, ...utf8]) {
    for (const pathFlags of [0, 1, 4, 5, 12]) records.push(fileOpenRecord({ ...base, path: Uint8Array.from(p), pathFlags }));
  }
  const r = await runBoth([records]);
  assertSame(r);
  assert.equal(r.fast.fastLines, records.length);
});

// ---------- attribution ----------

/** by cgroup id: every case of attribution */
function finalAnswer(id: bigint, hierarchy: 'v2' | 'v1'): FinalAnswer {
  if (hierarchy === 'v1') return { containerId: `v1-${id}`, imageDigest: 'sha256:' + 'a'.repeat(64) };
  switch (Number(id % 8n)) {
    case 0: return {};                                                    // a host cgroup
    case 1: return {};                                                    // the v2 root (the v1 id decides when set)
    case 2: return { containerId: 'c'.repeat(64), imageDigest: 'sha256:' + 'b'.repeat(64) };
    case 3: return { containerId: 'd'.repeat(64) };                       // no digest known
    case 4: return { containerId: 'quote"\\\u2028\u0001' };            // escaped in the line
    case 5: return 'never';                                               // never resolved: unattributed
    case 6: return { containerId: 'e'.repeat(64), imageDigest: 'sha256:' + 'f'.repeat(64) };
    default: return { imageDigest: 'sha256:' + '0'.repeat(64) };          // a digest but no container: no fields
  }
}

const exec = fixture.find((rec) => rec.readUInt32LE(16) === 2)!;

/** records of cgroups 0-15 (v1 ids when in the root), with a process_exec of the same cgroup every 4th */
function attributed(specs: OpenSpec[]): Buffer[] {
  return specs.flatMap((s, i) => {
    const rec = fileOpenRecord({ ...s, cgroup: s.cgroup % 16n, v1: s.v1 % 4n === 0n ? 0n : 100n + (s.v1 % 4n) });
    if (i % 4 !== 0) return [rec];
    // the reference path takes it, and may hold it while its cgroup is pending
    const e = Buffer.from(exec);
    e.writeBigUInt64LE(rec.readBigUInt64LE(8), 8);
    e.writeBigUInt64LE(rec.readBigUInt64LE(48), 48);
    return [e, rec];
  });
}

test('fast path: every attribution case gives the same bytes, over batches (the table learns from the first)', async () => {
  let fastLines = 0;
  await fc.assert(fc.asyncProperty(fc.array(openSpec, { minLength: 1, maxLength: 25 }), fc.boolean(), async (specs, hostOnly) => {
    const records = attributed(specs);
    const r = await runBoth([records, records, records], { lookup: () => new ScriptedLookup(finalAnswer), hostOnly });
    assertSame(r);
    fastLines += r.fast.fastLines;
  }), { numRuns: 150 });
  assert.ok(fastLines > 300, `${fastLines} fast lines`);
  const one = [0n, 1n, 2n, 3n, 4n, 6n, 7n].map((cgroup) => fileOpenRecord({
    ts: 1n, cgroup, v1: cgroup === 1n ? 77n : 0n, pid: 1, tid: 1, comm: new Uint8Array(), ret: 3, flags: 0, mode: 0, dfd: -100,
    path: Uint8Array.from(Buffer.from('/x')), dir: new Uint8Array(), pathFlags: 0, syscall: 1, sizeDelta: 0, kind: 1,
  }));
  const r = await runBoth([one, one], { lookup: () => new ScriptedLookup(finalAnswer) });
  assertSame(r);
  assert.equal(r.fast.fastLines, one.length, 'the second batch takes the fast path for every cgroup');
  assert.match(r.fast.bytes.toString(), /"container_id":"v1-77"/);
});

test('fast path: a known cgroup that goes pending again (evicted) keeps each cgroup\'s order and bytes', async () => {
  await fc.assert(fc.asyncProperty(fc.array(openSpec, { minLength: 1, maxLength: 25 }), async (specs) => {
    const records = attributed(specs);
    // the order across cgroups may differ (the fast path does not hold lines of a cgroup until a
    // record of it waits); per cgroup, the lines and their order are the same
    const r = await runBoth([records, records, records], { lookup: () => new ScriptedLookup(finalAnswer, { evictedAt: (id) => (id % 3n === 0n ? 1 : -1) }) });
    const byCgroup = (b: Buffer): Map<string, string[]> => {
      const m = new Map<string, string[]>();
      for (const line of b.toString('latin1').split('\n').filter((l) => l.length > 0)) {
        // the attribution key: cgroup_id, and for the v2 root the v1 cgroup (its container)
        const key = /"cgroup_id":(\d+)/.exec(line)![1]! + '|' + (/"container_id":("[^"]*")/.exec(line)?.[1] ?? '');
        m.set(key, [...(m.get(key) ?? []), line]);
      }
      return m;
    };
    assert.deepEqual(byCgroup(r.fast.bytes), byCgroup(r.reference.bytes));
    assert.deepEqual(r.fast.counters, r.reference.counters);
  }), { numRuns: 100 });
});

test('fast path: a path filter leaves file_open to the reference path, same bytes', async () => {
  const r = await runBoth([fixture], { pathFilter: new PathFilter(['/tmp/**'], []) });
  assertSame(r);
});

for (const [name, order, split] of [['fixture order, whole segments', false, false], ['fixture order, segments in pieces', false, true], ['in ts order, segments in pieces', true, true]] as const) {
  test(`fast path: signed chunks hold the same bytes and the same predicate counts, cut at the same line (${name})`, async () => {
    const many: Buffer[] = [];
    const opens = fixture.filter((rec) => rec.readUInt32LE(16) === 1);
    for (let i = 0; i < 3000; i++) many.push(opens[i % opens.length]!);
    const records = order ? inOrder(many) : many;
    const chunks = async (fast: boolean): Promise<{ files: string[]; counts: unknown[] }> => {
      const h = makeHarness('rtev-fast-chunks-');
      const out = h.dir;
      const chunkSink = h.open({ chunkMaxBytes: 40_000 });
      const sink = fast && split ? splitRanges(chunkSink, 42) : chunkSink;
      const fp = fast ? FastPath.create(binding, { fileOpen: true, attribute: false }, {}) : undefined;
      const pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []), ...(fp ? { fastPath: fp } : {}) });
      const raw = frames(records);
      for (const slot of fp ? fp.encodeFrames(raw, raw.length) : [raw]) pipeline.handleBatch(slot, slot.length);
      await sink.close(h.ledger.snapshot());
      const files = fs.readdirSync(out).filter((f) => f.endsWith('.ndjson')).sort();
      const counts = fs.readdirSync(out).filter((f) => f.endsWith('.dsse.json')).sort().map((f) => {
        const env = JSON.parse(fs.readFileSync(path.join(out, f), 'utf8'));
        const statement = JSON.parse(Buffer.from(env.payload, 'base64').toString().replace(/("[a-z_]+_ts_ns":)(\d+)/g, '$1"$2"'));
        const { count, bytes, by_type, first_ts_ns, last_ts_ns, min_ts_ns, max_ts_ns } = statement.predicate.records;
        return { count, bytes, by_type, first_ts_ns, last_ts_ns, min_ts_ns, max_ts_ns };
      });
      const contents = files.map((f) => fs.readFileSync(path.join(out, f), 'latin1'));
      fs.rmSync(path.dirname(out), { recursive: true, force: true });
      return { files: contents, counts };
    };
    const reference = await chunks(false);
    const fast = await chunks(true);
    assert.ok(reference.files.length > 3, `${reference.files.length} chunks`);
    assert.deepEqual(fast.counts, reference.counts);
    assert.deepEqual(fast.files, reference.files);
  });
}

test('fast path: a segment header counts its descents (lines whose ts is below the one before), lines mark a repeated file key', () => {
  const fp = FastPath.create(binding, { fileOpen: true, attribute: false }, {})!;
  fc.assert(fc.property(fc.array(fc.tuple(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom('/a', '/b', '/a/b', '/' + 'x'.repeat(30)), fc.constantFrom(5n, 6n)), { minLength: 1, maxLength: 200 }), fc.boolean(), (specs, sorted) => {
    const ts = specs.map((l) => l[0]);
    const values = sorted ? [...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : ts;
    const raw = frames(values.map((t, i) => fileOpenRecord({ ts: t, path: specs[i]![1], cgroup: specs[i]![2] })));
    let lines = 0;
    for (const slot of fp.encodeFrames(raw, raw.length)) {
      for (let o = 0; o + 8 <= slot.length;) {
        const len = slot.readUInt32LE(o);
        if (slot.readUInt32LE(o + 4) === FrameKind.SEGMENT) {
          const seg = readSegment(slot, o + 8, len);
          let descents = 0;
          for (let i = 1; i < seg.count; i++) {
            const at = seg.indexStart + i * SegmentLine.SIZE + SegmentLine.ts;
            if (slot.readBigUInt64LE(at) < slot.readBigUInt64LE(at - SegmentLine.SIZE)) descents++;
          }
          assert.equal(seg.descents, descents);
          // LINE_SAME_KEY: exactly the lines whose file key (cgroup and path) is the previous line's
          for (let i = 0; i < seg.count; i++) {
            const at = seg.indexStart + i * SegmentLine.SIZE;
            const same = i > 0 && slot.readBigUInt64LE(at + SegmentLine.key) === slot.readBigUInt64LE(at - SegmentLine.SIZE + SegmentLine.key);
            assert.equal(segmentSameKey(seg, i), same);
            const line = slot.toString('latin1', seg.linesStart + (i === 0 ? 0 : slot.readUInt32LE(at - SegmentLine.SIZE)), seg.linesStart + slot.readUInt32LE(at));
            const prev = i === 0 ? '' : slot.toString('latin1', seg.linesStart + (i === 1 ? 0 : slot.readUInt32LE(at - 2 * SegmentLine.SIZE)), seg.linesStart + slot.readUInt32LE(at - SegmentLine.SIZE));
            const file = (l: string): string => /"cgroup_id":(\d+)/.exec(l)![1]! + ' ' + /"path":"([^"]*)"/.exec(l)![1]!;
            assert.equal(same, i > 0 && file(line) === file(prev), 'the same key is the same file');
          }
          if (sorted) assert.equal(seg.descents, 0);
          assert.equal(seg.soleProbe, 0, 'file_open only');
          lines += seg.count;
        }
        o += 8 + ((len + 7) & ~7);
      }
    }
    assert.equal(lines, values.length);
  }), { numRuns: 200 });
});

test('fast path: package attribution of signed chunks notes the same files and seals at the same lines', async () => {
  const { Attributor } = await import('../../src/packages/attributor');
  const { openEvidenceDir } = await import('../../src/store/output');
  const { fixedEnvironment, PRODUCER, FakeLedger } = await import('../helpers/evidence-fixtures');
  const { writeKeyPair } = await import('../../src/sign/key-files');
  const { generateSigningKey } = await import('../../src/sign/keys');
  // many distinct paths (windows fill up: maxFilesPerChunk) and repeats, in several cgroups
  const specs = fc.sample(openSpec, { numRuns: 1500, seed: 7 }).map((s, i) => ({
    ...s, kind: 1, sizeDelta: 0, pid: 1 + (i % 7), cgroup: BigInt(i % 5), v1: 0n,
    path: Uint8Array.from(Buffer.from(`/usr/lib/x86_64-linux-gnu/f${i % 300}.so`)), dir: new Uint8Array(), pathFlags: 0,
  }));
  const records = specs.map((s) => fileOpenRecord(s));
  const run = async (fast: boolean, split = false): Promise<{ files: string[]; predicates: unknown[] }> => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-fast-attr-'));
    const keyFile = path.join(root, 'k');
    writeKeyPair(keyFile, generateSigningKey());
    const dir = path.join(root, 'ev');
    const ledger = new FakeLedger();
    const attribution = new Attributor({ maxFilesPerChunk: 64, openProcRoot: () => undefined });
    const sink = openEvidenceDir({ stdout: false, outDir: dir, keyFile, chunkMaxBytes: 60_000 },
      { producer: PRODUCER, ledger: () => ledger.snapshot(), notice: () => {}, attribution }, fixedEnvironment(), false);
    const lookup = new ScriptedLookup(finalAnswer);
    const fp = fast ? FastPath.create(binding, { fileOpen: true, attribute: true }, {}) : undefined;
    const pipeline = new Pipeline({ sink: split ? splitRanges(sink, 7) : sink, pathFilter: new PathFilter([], []), containers: lookup, ...(fp ? { fastPath: fp } : {}) });
    for (const [n, batch] of [records.slice(0, 100), records, records].entries()) {
      lookup.startBatch(n);
      const raw = frames(batch);
      for (const slot of fp ? fp.encodeFrames(raw, raw.length) : [raw]) pipeline.handleBatch(slot, slot.length);
      await pipeline.idle();
    }
    await sink.close(ledger.snapshot());
    const names = fs.readdirSync(dir).sort();
    const files = names.filter((f) => f.endsWith('.ndjson')).map((f) => fs.readFileSync(path.join(dir, f), 'latin1'));
    const predicates = names.filter((f) => f.endsWith('.dsse.json')).map((f) => {
      const env = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
      const p = JSON.parse(Buffer.from(env.payload, 'base64').toString().replace(/(":)(\d{16,})/g, '$1"$2"')).predicate;
      // which files and containers each chunk's attribution lists (how they resolved depends on timing)
      const a = p.attribution as { files: Array<{ scope: string; path: string }>; containers: Array<{ container_id: string; image_digest?: string }>; omitted: number };
      return {
        records: p.records, files: a.files.map((f) => `${f.scope} ${f.path}`),
        containers: a.containers.map((c) => `${c.container_id} ${c.image_digest ?? ''}`), omitted: a.omitted,
      };
    });
    fs.rmSync(root, { recursive: true, force: true });
    return { files, predicates };
  };
  const reference = await run(false);
  const fast = await run(true);
  assert.ok(reference.files.length > 5, `${reference.files.length} chunks`);
  assert.deepEqual(fast.predicates, reference.predicates);
  assert.deepEqual(fast.files, reference.files);
  // the same with each segment handed over in pieces (as the order merge cuts them)
  const pieces = await run(true, true);
  assert.deepEqual(pieces.predicates, reference.predicates);
  assert.deepEqual(pieces.files, reference.files);
});

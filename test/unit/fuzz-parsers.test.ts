import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { decodeRecord, newDecodeStats } from '../../src/decode/decode';
import { EventKind, FileOpen, FunctionCall, Hdr, NetConnect, ProcessExec, SslOp, TcpState } from '../../src/decode/layout';
import { decodeSurrogateEscape } from '../../src/decode/text';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import { encodeRecord } from '../../src/encode/record';
import { classifyCgroupPath } from '../../src/enrich/cgroup-path';
import type { EvidenceRecord } from '../../src/model/record';
import { TCP_STATE_NAMES } from '../../src/model/record';

/**
 * Property tests of the parsers of untrusted input (docs/reliability.md, "Bad inputs").
 * Crashers found are kept below as regression cases.
 */
const RUNS = Number(process.env['RTEV_FUZZ_RUNS'] ?? 2000);
const SIZES: Record<number, number> = {
  [EventKind.FILE_OPEN]: FileOpen.SIZE, [EventKind.PROCESS_EXEC]: ProcessExec.SIZE, [EventKind.TCP_STATE]: TcpState.SIZE,
  [EventKind.NET_CONNECT]: NetConnect.SIZE, [EventKind.SSL_OP]: SslOp.SIZE, [EventKind.FUNCTION_CALL]: FunctionCall.SIZE,
};

function checkDecoded(buf: Buffer): void {
  let d;
  try {
    d = decodeRecord(buf, newDecodeStats());
  } catch (err) {
    throw new Error(`decodeRecord threw on ${buf.toString('hex')}: ${String(err)}`);
  }
  if (!d.ok) {
    assert.equal(typeof d.reason, 'string');
    assert.ok(d.reason.length > 0);
    return;
  }
  // a record the decoder accepts must be writable: encodeRecord throws on non-integers
  if ('record' in d) {
    const line = encodeRecord(d.record);
    assert.doesNotThrow(() => JSON.parse(line));
  }
}

/** A ring record with a plausible header (kind, size == length, pid) and random body. */
const framed = fc.record({
  kind: fc.constantFrom(...Object.values(EventKind), 0, 7, 0xffffffff),
  extra: fc.integer({ min: -8, max: 600 }),
  pid: fc.constantFrom(0, 1, 4242, 0xffffffff),
  sizeLie: fc.constantFrom(0, 0, 0, 1, -1, 0x7fffffff),
  seed: fc.uint8Array({ minLength: 0, maxLength: 1200 }),
}).map(({ kind, extra, pid, sizeLie, seed }) => {
  const len = Math.max(0, (SIZES[kind] ?? Hdr.SIZE) + extra);
  const buf = Buffer.alloc(len);
  for (let i = 0; i < len; i++) buf[i] = seed.length ? seed[i % seed.length]! : 0;
  if (len >= Hdr.SIZE) {
    buf.writeUInt32LE(kind >>> 0, Hdr.kind);
    buf.writeUInt32LE((len + sizeLie) >>> 0, Hdr.size);
    buf.writeUInt32LE(pid >>> 0, Hdr.pid);
  }
  return buf;
});

test('decodeRecord: random, truncated and oversized buffers never throw; failures carry a reason', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => checkDecoded(Buffer.from(b))), { numRuns: RUNS });
  fc.assert(fc.property(framed, (b) => checkDecoded(b)), { numRuns: RUNS * 5 });
  // every truncation of a well-formed-looking record of each kind
  for (const kind of Object.values(EventKind)) {
    const full = Buffer.alloc(SIZES[kind]! + 300, 0x41);
    full.writeUInt32LE(kind, Hdr.kind);
    full.writeUInt32LE(full.length, Hdr.size);
    full.writeUInt32LE(7, Hdr.pid);
    for (let n = 0; n <= full.length; n++) checkDecoded(full.subarray(0, n));
    for (let n = 0; n < full.length; n++) {
      const c = Buffer.from(full.subarray(0, n));
      if (n >= Hdr.SIZE) c.writeUInt32LE(full.length, Hdr.size); // header claims more than there is
      checkDecoded(c);
    }
  }
});

/** encodeSurrogateEscape is the inverse documented in docs/format.md: U+DC80..U+DCFF back to a byte, the rest UTF-8. */
function encodeSurrogateEscape(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const u = s.charCodeAt(i);
    if (u >= 0xdc80 && u <= 0xdcff) { out.push(u - 0xdc00); continue; }
    const cp = s.codePointAt(i)!;
    if (cp > 0xffff) i++;
    out.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
  }
  return Buffer.from(out);
}

test('decodeSurrogateEscape: re-encoding the escapes gives the original bytes', () => {
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.string({ unit: 'binary', maxLength: 100 }).map((s) => new Uint8Array(Buffer.from(s, 'utf8'))),
    // valid UTF-8 with random bytes spliced in
    fc.tuple(fc.string({ unit: 'binary', maxLength: 60 }), fc.uint8Array({ maxLength: 8 }), fc.nat(60)).map(([s, junk, at]) => {
      const b = Buffer.from(s, 'utf8');
      const k = Math.min(at, b.length);
      return new Uint8Array(Buffer.concat([b.subarray(0, k), Buffer.from(junk), b.subarray(k)]));
    }),
  );
  fc.assert(fc.property(bytes, (b) => {
    const s = decodeSurrogateEscape(b);
    assert.deepEqual(encodeSurrogateEscape(s), Buffer.from(b));
    // valid UTF-8 decodes exactly as Node decodes it
    if (Buffer.from(Buffer.from(b).toString('utf8'), 'utf8').equals(Buffer.from(b))) assert.equal(s, Buffer.from(b).toString('utf8'));
  }), { numRuns: RUNS * 5 });
  // regression/edge cases: overlong, surrogates, > U+10FFFF, truncated sequences at the end
  for (const hex of ['c080', 'eda080', 'f4908080', 'e282', 'f09f98', 'ff', 'c2', 'e2828261', 'f09f9880f0']) {
    const b = Buffer.from(hex, 'hex');
    assert.deepEqual(encodeSurrogateEscape(decodeSurrogateEscape(b)), b, hex);
  }
});

const text = fc.string({ unit: 'binary', maxLength: 40 });
const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((u) => String.fromCharCode(u));
const anyText = fc.oneof(text, fc.tuple(text, lone, text).map(([a, b, c]) => a + b + c));
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const i32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const event = fc.oneof(
  fc.record({ type: fc.constant('file_open' as const), path: anyText, flags: maybe(u32), access: maybe(fc.constantFrom('read', 'write', 'read_write', 'unknown') as fc.Arbitrary<'read'>), dfd: maybe(i32), mode: maybe(u32) }),
  fc.record({ type: fc.constant('process_exec' as const), filename: anyText, ppid: maybe(u32), argv0: maybe(anyText) }),
  fc.record({ type: fc.constant('tcp_state' as const), oldstate: fc.constantFrom(...TCP_STATE_NAMES), newstate: fc.constantFrom(...TCP_STATE_NAMES), saddr: maybe(text), sport: maybe(fc.integer({ min: 0, max: 65535 })), daddr: text, dport: fc.integer({ min: 0, max: 65535 }), family: maybe(fc.constantFrom('inet', 'inet6') as fc.Arbitrary<'inet'>) }),
  fc.record({ type: fc.constant('net_connect' as const), fd: maybe(i32), addr: text, port: fc.integer({ min: 0, max: 65535 }), success: maybe(fc.boolean()), error: maybe(i32) }),
  fc.record({ type: fc.constant('ssl_op' as const), operation: fc.constantFrom('read', 'write') as fc.Arbitrary<'read'>, bytes: maybe(u32), ssl_ptr: maybe(text) }),
  fc.record({ type: fc.constant('function_call' as const), addr: text, symbol: maybe(anyText), library: maybe(anyText), runtime: maybe(fc.constantFrom('native', 'jvm', 'node', 'python', 'dotnet', 'go', 'ruby') as fc.Arbitrary<'native'>), stack: maybe(fc.array(anyText, { maxLength: 5 })), node_hash: maybe(text) }),
);
const record: fc.Arbitrary<EvidenceRecord> = fc.record({
  ts_ns: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), src: anyText, pid: fc.integer({ min: 1, max: 0xffffffff }), tid: maybe(u32),
  cgroup_id: maybe(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })), container_id: maybe(text), image_digest: maybe(text), comm: anyText, event,
}) as fc.Arbitrary<EvidenceRecord>;

test('encodeRecord is byte-identical to canonicalize on generated records', () => {
  fc.assert(fc.property(record, (r) => {
    assert.equal(encodeRecord(r), canonicalize(r as unknown as CanonicalValue));
  }), { numRuns: RUNS * 5 });
  // regression: -0 and explicit undefined fields
  const r: EvidenceRecord = { ts_ns: 0n, src: 's', pid: 1, comm: '', event: { type: 'file_open', path: '/', dfd: -0, mode: undefined } };
  assert.equal(encodeRecord(r), canonicalize(r as unknown as CanonicalValue));
});

test('classifyCgroupPath: any string gives a well-formed class and never throws', () => {
  const hex64 = fc.stringMatching(/^[a-f0-9]{64}$/);
  const comp = fc.oneof(text, hex64, hex64.map((h) => `docker-${h}.scope`), hex64.map((h) => `libpod-${h}`), hex64.map((h) => `crio-conmon-${h}.scope`),
    fc.constantFrom('..', '.', '', 'kubepods', 'kubepods-besteffort.slice', 'system.slice', '(deleted)', ' (deleted)', '\0'));
  const cgpath = fc.oneof(text, fc.array(comp, { maxLength: 8 }).map((cs) => '/' + cs.join('/')), fc.array(comp, { maxLength: 8 }).map((cs) => '/' + cs.join('/') + ' (deleted)'));
  fc.assert(fc.property(cgpath, (p) => {
    const c = classifyCgroupPath(p);
    assert.ok(['host', 'container', 'ambiguous', 'unknown'].includes(c.kind), JSON.stringify(c));
    if (c.kind === 'container' || c.kind === 'ambiguous') {
      assert.match(c.id, /^[a-f0-9]{64}$/);
      assert.ok(p.includes(c.id), 'the id comes from the path');
    }
    if (!p.startsWith('/')) assert.equal(c.kind, 'unknown');
  }), { numRuns: RUNS * 5 });
});

test('rtev collect --config with junk files: exit 2 and a short message, no stack trace', { timeout: 120_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-fuzz-config-'));
  const rtev = path.resolve(__dirname, '..', '..', '..', 'bin', 'rtev');
  const fixed: Buffer[] = [
    Buffer.from([0x00, 0xff, 0x7b]), Buffer.from('[1,2]'), Buffer.from('null'), Buffer.from('"x"'), Buffer.from(''),
    Buffer.from('{"ring-size":"abc"}'), Buffer.from('{"probes":5}'), Buffer.from('{"__proto__":{"x":1}}'), Buffer.from('{"constructor":1}'),
    Buffer.from('{"duration":"-5s"}'), Buffer.from('{"pid":[-1]}'), Buffer.from('{"ring-size":"3K"}'), Buffer.from('{"out":"x","stdout":true}'),
    Buffer.from('{"probes":"file_open","probes":"nope"}'), Buffer.from('{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}'),
    Buffer.alloc(1024 * 1024 + 1, 0x20),
  ];
  const gen = fc.sample(fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc.dictionary(fc.constantFrom('ring-size', 'rare-ring-size', 'duration', 'probes', 'pid', 'tree', 'cgroup', 'chunk-size', 'retain-age', 'bogus'),
      fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer({ min: -5, max: 5 }), { maxLength: 2 })), { minKeys: 1, maxKeys: 3 })
      .map((o) => Buffer.from(JSON.stringify(o))),
  ), Number(process.env['RTEV_FUZZ_CONFIGS'] ?? 24));
  const failures: string[] = [];
  for (const [i, content] of [...fixed, ...gen].entries()) {
    const file = path.join(dir, `c${i}.json`);
    fs.writeFileSync(file, content);
    // --probes bogus on the command line makes an accepted config fail too, without starting a collection
    const r = spawnSync(process.execPath, [rtev, 'collect', '--config', file, '--stdout', '--probes', 'not_a_probe'], { encoding: 'utf8', timeout: 30_000 });
    const lines = r.stderr.split('\n').filter((l) => l.length > 0);
    const ok = r.status === 2 && lines.length >= 1 && lines.length <= 2 && lines[0]!.startsWith('rtev: ') && (lines.length === 1 || lines[1]!.startsWith('  fix: '));
    if (!ok) failures.push(`${content.subarray(0, 80).toString('hex')}: exit ${r.status}, stderr ${JSON.stringify(r.stderr.slice(0, 300))}`);
  }
  assert.deepEqual(failures, []);
});

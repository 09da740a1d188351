import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { formatIPv6 } from '../../src/decode/address';
import { accessOf, decodeRecord, forEachFrame, joinDirectory, newDecodeStats } from '../../src/decode/decode';
import { FileOpen, NetConnect } from '../../src/decode/layout';
import { encodeRecord } from '../../src/encode/record';
import { decodeSurrogateEscape, decodeText } from '../../src/decode/text';
import { createRecordValidator } from '../../src/encode/validate';
import { REPO } from '../helpers/collector';
import { replayFixture } from '../helpers/replay';

const FIXTURE = path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger');

test('replaying recorded ring records gives the recorded NDJSON byte for byte', () => {
  const samples = fs.readFileSync(path.join(FIXTURE, 'samples.bin'));
  const expected = fs.readFileSync(path.join(FIXTURE, 'expected.ndjson'), 'utf8');
  const { lines, pipeline } = replayFixture(samples);
  assert.equal(lines.join('\n') + '\n', expected);
  assert.equal(pipeline.decodeStats.invalidUtf8, 1, 'the one non-UTF-8 file name is counted');
  const validate = createRecordValidator();
  for (const line of lines) assert.equal(validate(line), undefined, line);
});

test('the fixture holds every kind of record the trigger produces', () => {
  const { lines } = replayFixture(fs.readFileSync(path.join(FIXTURE, 'samples.bin')));
  const records = lines.map((l) => JSON.parse(l));
  assert.ok(records.some((r) => r.src === 'sys_enter_openat:failed:ENOENT' && r.event.path === '/nonexistent/rtev-trigger'));
  assert.ok(records.some((r) => r.event.type === 'file_open' && r.event.path.endsWith('/sub/dfd-relative.txt') && r.event.dfd >= 0));
  assert.ok(records.some((r) => r.event.type === 'process_exec' && r.event.filename === '/bin/true' && r.event.argv0.startsWith('custom-argv0-')));
  assert.ok(records.some((r) => r.event.type === 'tcp_state' && r.event.family === 'inet6' && r.event.newstate === 'SYN_SENT' && r.event.daddr === '::1'));
  const hostile = lines.find((l) => l.includes('quote'));
  assert.ok(hostile?.includes('new\\nline\\"quote\\\\back\\udcff.txt'), hostile);
});

test('u64 values stay exact beyond 2^53', () => {
  const samples = fs.readFileSync(path.join(FIXTURE, 'samples.bin'));
  const first = Buffer.from(samples.subarray(4, 4 + samples.readUInt32LE(0)));
  first.writeBigUInt64LE(18446744073709551615n, 0); // ts_ns
  first.writeBigUInt64LE(9007199254740993n, 8); // cgroup_id = 2^53 + 1
  const { lines } = replayFixture(Buffer.concat([samples.subarray(0, 4), first]));
  assert.match(lines[0]!, /"cgroup_id":9007199254740993,/);
  assert.match(lines[0]!, /"ts_ns":18446744073709551615}$/);
});

test('truncated, oversized and unknown records are rejected with a reason, never thrown', () => {
  const samples = fs.readFileSync(path.join(FIXTURE, 'samples.bin'));
  const rec = Buffer.from(samples.subarray(4, 4 + samples.readUInt32LE(0)));
  const stats = newDecodeStats();
  assert.deepEqual(decodeRecord(rec.subarray(0, 20), stats), { ok: false, probe: undefined, reason: 'short_header' });
  const cut = decodeRecord(rec.subarray(0, rec.length - 1), stats);
  assert.equal(cut.ok, false);
  const unknown = Buffer.from(rec);
  unknown.writeUInt32LE(99, 16);
  assert.deepEqual(decodeRecord(unknown, stats), { ok: false, probe: undefined, reason: 'unknown_kind' });
  const lying = Buffer.from(rec);
  lying.writeUInt16LE(60000, FileOpen.path_len); // path_len beyond the record
  assert.equal(decodeRecord(lying, stats).ok, false);
  const nopid = Buffer.from(rec);
  nopid.writeUInt32LE(0, 24);
  assert.deepEqual(decodeRecord(nopid, stats), { ok: false, probe: 'file_open', reason: 'no_pid' });
});

test('forEachFrame stops at a frame that does not fit', () => {
  const batch = Buffer.alloc(64);
  batch.writeUInt32LE(8, 0);
  batch.writeUInt32LE(100, 16);
  const seen: number[] = [];
  assert.equal(forEachFrame(batch, 64, (r) => seen.push(r.length)), 1);
  assert.deepEqual(seen, [8]);
});

test('access mode mapping', () => {
  assert.equal(accessOf(0), 'read');
  assert.equal(accessOf(1), 'write');
  assert.equal(accessOf(2), 'read_write');
  assert.equal(accessOf(3), 'unknown');
  assert.equal(accessOf(0o10000000), 'unknown'); // O_PATH
  assert.equal(accessOf(0o2 | 0o100 | 0o1000), 'read_write');
});

test('joinDirectory drops only "." components', () => {
  assert.equal(joinDirectory('/tmp', 'a.txt'), '/tmp/a.txt');
  assert.equal(joinDirectory('/', 'a.txt'), '/a.txt');
  assert.equal(joinDirectory('/tmp/x', './a/./b'), '/tmp/x/a/b');
  assert.equal(joinDirectory('/tmp/x', '../y'), '/tmp/x/../y');
  assert.equal(joinDirectory('/tmp/x', 'dir/'), '/tmp/x/dir/');
});

test('invalid UTF-8 is escaped losslessly (PEP 383) and counted', () => {
  const stats = newDecodeStats();
  assert.equal(decodeText(Buffer.from('héllo'), stats), 'héllo');
  assert.equal(stats.invalidUtf8, 0);
  const bad = Buffer.from([0x61, 0xff, 0xc3, 0x28, 0xe2, 0x82, 0xac, 0xed, 0xa0, 0x80]);
  const text = decodeText(bad, stats);
  assert.equal(stats.invalidUtf8, 1);
  assert.equal(text, 'a\udcff\udcc3(€\udced\udca0\udc80');
  assert.equal(JSON.stringify(text), '"a\\udcff\\udcc3(€\\udced\\udca0\\udc80"');
  assert.equal(decodeSurrogateEscape(Buffer.from([0xf0, 0x9f, 0x98, 0x80])), '😀');
  assert.equal(decodeSurrogateEscape(Buffer.from([0xf0, 0x9f, 0x98])), '\udcf0\udc9f\udc98');
});

test('IPv6 addresses in RFC 5952 form', () => {
  const v6 = (hex: string) => formatIPv6(Buffer.from(hex, 'hex'));
  assert.equal(v6('00000000000000000000000000000001'), '::1');
  assert.equal(v6('00000000000000000000000000000000'), '::');
  assert.equal(v6('20010db8000000000001000000000001'), '2001:db8::1:0:0:1');
  assert.equal(v6('20010db8000100000001000100010001'), '2001:db8:1:0:1:1:1:1');
  assert.equal(v6('00000000000000000000ffff7f000001'), '::ffff:127.0.0.1');
  assert.equal(v6('fe800000000000000000000000000abc'), 'fe80::abc');
});

/** netConnect builds an evt_net_connect record (bpf/events.h) from the fixture's first header. */
function netConnect(ret: bigint, op = 1, hook = 1): Buffer {
  const samples = fs.readFileSync(path.join(FIXTURE, 'samples.bin'));
  const rec = Buffer.alloc(NetConnect.SIZE);
  samples.copy(rec, 0, 4, 4 + 56); // evt_hdr
  rec.writeUInt32LE(4, 16); // EVT_NET_CONNECT
  rec.writeUInt32LE(NetConnect.SIZE, 20);
  rec.set([127, 0, 0, 1], NetConnect.addr);
  rec.writeBigInt64LE(ret, NetConnect.ret);
  rec.writeUInt32LE(7, NetConnect.fd);
  rec.writeUInt16LE(2, NetConnect.family); // AF_INET
  rec.writeUInt16LE(8080, NetConnect.port);
  rec.writeUInt8(op, NetConnect.op);
  rec.writeUInt8(hook, NetConnect.hook);
  return rec;
}

test('net_connect outcome: success, a refusal, and an in-progress connect whose outcome was not seen', () => {
  const stats = newDecodeStats();
  const event = (ret: bigint, op = 1) => {
    const d = decodeRecord(netConnect(ret, op), stats);
    assert.ok(d.ok && 'record' in d, d.ok ? 'no record' : d.reason);
    return d.record.event;
  };
  assert.deepEqual(event(0n), { type: 'net_connect', fd: 7, addr: '127.0.0.1', port: 8080, success: true });
  assert.deepEqual(event(-111n), { type: 'net_connect', fd: 7, addr: '127.0.0.1', port: 8080, success: false, error: 111 });
  // EINPROGRESS left: neither a success nor a failure (docs/probes-network.md): no success field
  assert.deepEqual(event(-115n), { type: 'net_connect', fd: 7, addr: '127.0.0.1', port: 8080, error: 115 });
  // an accept never reports EINPROGRESS as "in progress": it is a failure like any errno
  assert.deepEqual(event(-115n, 2), { type: 'net_connect', fd: 7, addr: '127.0.0.1', port: 8080, success: false, error: 115 });
  assert.deepEqual(event(9n, 2), { type: 'net_connect', fd: 9, addr: '127.0.0.1', port: 8080, success: true });
  const validate = createRecordValidator();
  for (const ret of [0n, -111n, -115n]) {
    const d = decodeRecord(netConnect(ret), stats);
    assert.ok(d.ok && 'record' in d);
    assert.equal(validate(encodeRecord(d.record)), undefined);
  }
  // a return value that is neither a descriptor nor an errno is rejected, not turned into an error code
  assert.deepEqual(decodeRecord(netConnect(-4096n), stats), { ok: false, probe: 'net_connect', reason: 'bad_ret' });
  assert.deepEqual(decodeRecord(netConnect(-(2n ** 63n)), stats), { ok: false, probe: 'net_connect', reason: 'bad_ret' });
  assert.deepEqual(decodeRecord(netConnect(2n ** 40n, 2), stats), { ok: false, probe: 'net_connect', reason: 'bad_ret' });
});

test('io_uring records name their hook in src (bpf/io_uring.h), failures included', () => {
  const stats = newDecodeStats();
  const validate = createRecordValidator();
  const open = (syscall: number, ret: number) => {
    const path = Buffer.from('/etc/hostname');
    const rec = Buffer.alloc(FileOpen.SIZE + path.length);
    rec.writeUInt32LE(1, 16); // kind: file_open
    rec.writeUInt32LE(rec.length, 20);
    rec.writeUInt32LE(77, 24);
    rec.writeUInt32LE(77, 28);
    rec.write('uring', 32);
    rec.writeBigInt64LE(BigInt(ret), FileOpen.ret);
    rec.writeInt32LE(-100, FileOpen.dfd);
    rec.writeUInt16LE(path.length, FileOpen.path_len);
    rec.writeUInt16LE(0x10, FileOpen.path_flags);
    rec.writeUInt8(syscall, FileOpen.syscall);
    path.copy(rec, FileOpen.SIZE);
    const d = decodeRecord(rec, stats);
    assert.ok(d.ok && 'record' in d, d.ok ? 'no record' : d.reason);
    assert.equal(validate(encodeRecord(d.record)), undefined);
    return d.record;
  };
  assert.equal(open(5, 3).src, 'io_uring:openat');
  assert.equal(open(6, 3).src, 'io_uring:openat2');
  assert.equal(open(5, -2).src, 'io_uring:openat:failed:ENOENT');
  assert.equal(open(6, -13).src, 'io_uring:openat2:failed:EACCES');
  const ev = open(5, 3).event;
  assert.equal(ev.type === 'file_open' ? ev.path : undefined, '/etc/hostname');
  const net = (op: number) => {
    const d = decodeRecord(netConnect(0n, op, 3), stats);
    assert.ok(d.ok && 'record' in d, d.ok ? 'no record' : d.reason);
    return d.record.src;
  };
  assert.equal(net(1), 'io_uring:connect');
  assert.equal(net(2), 'io_uring:accept');
  // IORING_OP_ACCEPT is one op (its flags are accept4's): no io_uring accept4 record exists
  assert.deepEqual(decodeRecord(netConnect(0n, 3, 3), stats), { ok: false, probe: 'net_connect', reason: 'bad_op' });
});

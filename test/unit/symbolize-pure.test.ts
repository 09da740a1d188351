import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { canonicalGoSymbol, canonicalNativeSymbol, computeNodeHash, detectRuntime, FirstSeenFilter } from '../../src/symbolize';
import { parseMaps, findMapping, nsPidFromStatus } from '../../src/symbolize/proc';
import { PerfMap, perfMapKind } from '../../src/symbolize/perf-map';
import { ElfFile } from '../../src/symbolize/elf';
import { bufferSource } from '../../src/symbolize/host';
import { SymbolizeError } from '../../src/symbolize/errors';
import { crc64, decompressXz } from '../../src/symbolize/xz';
import { parseFunctionsFile, parseTargetSpec, globToRegExp } from '../../src/symbolize/targets';
import { purl } from '../../src/symbolize/purl';
import { parseModinfo } from '../../src/symbolize/go';
import { goPurl } from '../../src/symbolize/component';
import { main } from '../../src/cli/main';

test('node_hash: the issue test vectors hold', () => {
  assert.equal(computeNodeHash('go', 'pkg:golang/golang.org/x/net@v0.17.0', 'golang.org/x/net/http2.Framer.ReadFrame'),
    'sha256:9f7b94bd7d2dff152c544320e917f9f6e1d48d3d66fbf3b410e09122b163551e');
  assert.equal(computeNodeHash('native', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2', 'SSL_read'),
    'sha256:f6b0a72d8ca203b34929c8346ea318ba704db8f6fa9b91c6eac53eef8b2a5f91');
  assert.equal(computeNodeHash('native', 'gnu-build-id:a5804d111054757b2c69d2ece02b172bf28f1036', 'vuln_func'),
    'sha256:50a87c7122ecf7edec44163a467d3edf68afb2c3bf8b1343d8b2c085d7e4ff32');
  // NFC: a decomposed é hashes like the composed one.
  assert.equal(computeNodeHash('python', 'pkg:pypi/x@1', 'caf\u0065\u0301'), computeNodeHash('python', 'pkg:pypi/x@1', 'caf\u00e9'));
});

test('rtev node-hash prints the formula and rejects bad kinds', async () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin: process.stdin } as never;
  assert.equal(await main(['node-hash', '--kind', 'native', '--component', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2', '--symbol', 'SSL_read'], io), 0);
  assert.equal(out.join(''), 'sha256:f6b0a72d8ca203b34929c8346ea318ba704db8f6fa9b91c6eac53eef8b2a5f91\n');
  assert.equal(await main(['node-hash', '--kind=rust', '--component=x', '--symbol=y'], io), 2);
  assert.equal(await main(['node-hash', '--kind', 'go'], io), 2);
});

test('canonical symbols: native versions and GCC clones, Go govulncheck form', () => {
  assert.equal(canonicalNativeSymbol('SSL_read@@OPENSSL_3.0.0'), 'SSL_read');
  assert.equal(canonicalNativeSymbol('memcpy@GLIBC_2.2.5'), 'memcpy');
  assert.equal(canonicalNativeSymbol('parse.isra.0'), 'parse');
  assert.equal(canonicalNativeSymbol('parse.constprop.3.isra.0'), 'parse');
  assert.equal(canonicalNativeSymbol('parse.part.1.cold'), 'parse');
  assert.equal(canonicalNativeSymbol('_ZN3foo3barEv'), '_ZN3foo3barEv');
  assert.equal(canonicalGoSymbol('golang.org/x/net/http2.(*Framer).ReadFrame'), 'golang.org/x/net/http2.Framer.ReadFrame');
  assert.equal(canonicalGoSymbol('golang.org/x/net/http2.Framer.ReadFrame'), 'golang.org/x/net/http2.Framer.ReadFrame');
  assert.equal(canonicalGoSymbol('example.com/m.Map[go.shape.int_0].Get'), 'example.com/m.Map.Get');
  assert.equal(canonicalGoSymbol('gopkg.in/yaml%2ev3.Unmarshal'), 'gopkg.in/yaml.v3.Unmarshal');
  assert.equal(canonicalGoSymbol('main.main.func1'), 'main.main.func1');
});

test('purls: Debian and Go forms, percent-encoding', () => {
  assert.equal(purl('deb', 'debian', 'libc6', '2.36-9+deb12u4'), 'pkg:deb/debian/libc6@2.36-9+deb12u4');
  assert.equal(purl('deb', 'debian', 'x', '1:2.3~rc1'), 'pkg:deb/debian/x@1:2.3~rc1');
  const info = parseModinfo('go1.19.8', 'path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.17.0\th1:x\n');
  assert.equal(goPurl(info, 'golang.org/x/net/http2'), 'pkg:golang/golang.org/x/net@v0.17.0');
  assert.equal(goPurl(info, 'net/http'), 'pkg:golang/stdlib@v1.19.8');
  assert.equal(goPurl(info, 'main'), 'pkg:golang/example.com/app@%28devel%29');
});

test('runtime detection table', () => {
  const cases: Array<[string, boolean, string[], string]> = [
    ['/app/server', true, [], 'go'],
    ['/usr/bin/node', false, [], 'node'],
    ['/usr/local/bin/node20', false, [], 'node'],
    ['/usr/bin/python3.11', false, [], 'python'],
    ['/usr/bin/uwsgi', false, ['/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0'], 'python'],
    ['/usr/lib/jvm/java-17-openjdk-amd64/bin/java', false, ['/usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so'], 'jvm'],
    ['/app/launcher', false, ['/usr/share/dotnet/shared/Microsoft.NETCore.App/8.0.1/libcoreclr.so'], 'dotnet'],
    ['/usr/bin/ruby3.1', false, [], 'ruby'],
    ['/app/x', false, ['/usr/lib/libruby-3.1.so.3.1.2'], 'ruby'],
    ['/app/electron', false, ['/usr/lib/libnode.so.108'], 'node'],
    ['/usr/bin/curl', false, ['/usr/lib/x86_64-linux-gnu/libssl.so.3'], 'native'],
  ];
  for (const [exe, go, maps, want] of cases) assert.equal(detectRuntime(exe, go, maps).runtime, want, exe);
});

test('maps parsing: deleted, anon, special, junk lines counted; lookup edges', () => {
  const text = [
    '55e5d4bad000-55e5d4bae000 r--p 00000000 fd:01 1234 /opt/app',
    '55e5d4bae000-55e5d4baf000 r-xp 00001000 fd:01 1234 /opt/app (deleted)',
    '7f0000000000-7f0000001000 rwxp 00000000 00:00 0 ',
    '7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]',
    'garbage line',
    'ffff-1 r-xp 00000000 00:00 0',
  ].join('\n');
  const { mappings, rejected } = parseMaps(text);
  assert.equal(mappings.length, 4);
  assert.equal(rejected, 2);
  assert.equal(mappings[1]!.deleted, true);
  assert.equal(mappings[1]!.path, '/opt/app');
  assert.equal(findMapping(mappings, 0x55e5d4bae1c0n)!.offset, 0x1000n);
  assert.equal(findMapping(mappings, 0x55e5d4bacfffn), undefined);
  assert.equal(findMapping(mappings, 0x55e5d4baf000n), undefined);
  assert.equal(nsPidFromStatus('Name:\tx\nNSpid:\t4242\t17\t1\n'), 1);
  assert.equal(nsPidFromStatus('Name:\tx\n'), undefined);
});

test('perf map: formats, overrides, malicious input counted and bounded', () => {
  const pm = new PerfMap({ maxFileBytes: 1 << 20, maxLineBytes: 200, maxEntries: 5, maxNameBytes: 64 });
  pm.append('1000 10 JS:~f /a.js:1:11\n0x0000000000002000 0x20 long Hot.hot(int)\n');
  pm.append('1008 4 JS:*f /a.js:1:11\nnot a line\n\u0000\u0001\u0002\n' + 'x'.repeat(10_000));
  pm.append('y'.repeat(10_000) + '\n3000 10 py::K.m:/app/p.py\n');
  pm.append('4000 0 zero-size\nffffffffffffffff 10 overflow\n5000 10 a\x1b[31mred\n6000 1 six\n7000 1 seven\n');
  assert.equal(pm.lookup(0x1009n)!.name, 'JS:*f /a.js:1:11', 'later line wins');
  assert.equal(pm.lookup(0x100an)!.name, 'JS:*f /a.js:1:11');
  assert.equal(pm.lookup(0x100cn)!.name, 'JS:~f /a.js:1:11');
  assert.equal(pm.lookup(0x2010n)!.name, 'long Hot.hot(int)');
  assert.equal(pm.lookup(0x3000n)!.name, 'py::K.m:/app/p.py');
  assert.equal(pm.lookup(0x5000n)!.name, 'a[31mred', 'control characters stripped');
  assert.equal(pm.lookup(0x999n), undefined);
  assert.equal(pm.counters.longLines, 1);
  assert.ok(pm.counters.rejectedLines >= 4);
  assert.equal(pm.size, 5);
  assert.equal(pm.counters.droppedEntries, 2);
  assert.equal(perfMapKind('JS:~f /a.js:1:11'), 'node');
  assert.equal(perfMapKind('py::K.m:/app/p.py'), 'python');
  assert.equal(perfMapKind('long Hot.hot(int)'), 'jvm');
  assert.equal(perfMapKind('[System.Private.CoreLib] System.String::Concat(string,string)[Optimized]'), 'dotnet');
});

test('ELF reader: corrupted and truncated copies of a real binary only raise SymbolizeError', () => {
  const real = fs.readFileSync('/bin/true');
  assert.ok(ElfFile.parse(bufferSource(real)).symbols('.dynsym').length > 0);
  assert.throws(() => ElfFile.parse(bufferSource(Buffer.from('#!/bin/sh\n'))), (e: SymbolizeError) => e.code === 'NOT_ELF');
  let seed = 12345;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
  for (let i = 0; i < 300; i++) {
    const b = Buffer.from(real.subarray(0, i % 3 === 0 ? rnd(real.length) : real.length));
    for (let k = 0; k < 20; k++) if (b.length > 0) b[rnd(Math.min(b.length, 4096))] = rnd(256);
    try {
      const e = ElfFile.parse(bufferSource(b));
      e.buildId();
      e.debugLink();
      e.symbols('.dynsym');
      e.symbols('.symtab');
      for (const s of e.sections.slice(0, 64)) e.sectionData(s);
    } catch (err) {
      if (!(err instanceof SymbolizeError)) throw err;
    }
  }
});

const XZ = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'xz');
const XZ_DATA: Record<string, Buffer> = {
  random: fs.readFileSync(path.join(XZ, 'random.bin')),
  text: Buffer.from(Array.from({ length: 400 }, (_, i) => `line ${i} of a compressible text, like the symbol table of a MiniDebugInfo section\n`).join('')),
};
const xzFixture = (name: string, check: string) => fs.readFileSync(path.join(XZ, `${name}.${check}.xz`));

test('xz: streams with every check type decode; corrupt input is an XZ error, output is capped', () => {
  assert.throws(() => decompressXz(Buffer.from('not xz at all, definitely not'), 1000), (e: SymbolizeError) => e.code === 'XZ');
  for (const name of Object.keys(XZ_DATA)) {
    for (const check of ['none', 'crc32', 'crc64', 'sha256']) {
      const xz = xzFixture(name, check);
      assert.deepEqual(decompressXz(xz, 1 << 20), XZ_DATA[name], `${name}.${check}.xz`);
      assert.throws(() => decompressXz(xz, 1000), (e: SymbolizeError) => e.code === 'TOO_LARGE');
      for (let i = 12; i < xz.length; i += 7) {
        const b = Buffer.from(xz);
        b[i] = b[i]! ^ 0x55;
        try {
          decompressXz(b, 1 << 20);
        } catch (err) {
          assert.ok(err instanceof SymbolizeError, String(err));
        }
      }
    }
  }
});

test('xz: a corrupted byte in stored data is caught by the block check (CRC32, CRC64, SHA-256)', () => {
  // random.bin is stored in uncompressed LZMA2 chunks: a flipped payload byte still decodes,
  // to different bytes, and only the check can tell
  assert.equal(crc64(Buffer.from('123456789')), 0x995dc9bbdf1939fan, 'CRC-64/XZ check value');
  for (const [check, message] of [['crc32', /CRC32 mismatch/], ['crc64', /CRC64 mismatch/], ['sha256', /SHA-256 mismatch/]] as const) {
    const xz = xzFixture('random', check);
    const bad = Buffer.from(xz);
    bad[4096] = bad[4096]! ^ 0x01;
    assert.throws(() => decompressXz(bad, 1 << 20), (e: SymbolizeError) => e.code === 'XZ' && message.test(e.message), check);
  }
  // without a check the corruption goes through: what the check types are for
  const none = Buffer.from(xzFixture('random', 'none'));
  none[4096] = none[4096]! ^ 0x01;
  assert.notDeepEqual(decompressXz(none, 1 << 20), XZ_DATA['random']);
  // a reserved check type is refused rather than decoded unchecked
  const reserved = Buffer.from(xzFixture('text', 'crc64'));
  reserved[7] = 5;
  reserved.writeUInt32LE(zlib.crc32(reserved.subarray(6, 8)) >>> 0, 8);
  assert.throws(() => decompressXz(reserved, 1 << 20), /unsupported check type 5/);
});

test('target specs, globs and the --functions file', () => {
  assert.deepEqual(parseTargetSpec('libssl.so.3:SSL_*'), { kind: 'file', spec: 'libssl.so.3:SSL_*', binary: 'libssl.so.3', pattern: 'SSL_*' });
  assert.equal(parseTargetSpec('pkg:deb/debian/libssl3@1:3.0-1:SSL_read').kind, 'purl');
  assert.ok(globToRegExp('vuln_*').test('vuln_func'));
  assert.ok(!globToRegExp('vuln_?').test('vuln_func'));
  assert.ok(globToRegExp('SSL_[rw]*').test('SSL_write'));
  assert.ok(globToRegExp('a.b').test('a.b') && !globToRegExp('a.b').test('axb'));
  assert.deepEqual(parseFunctionsFile('["a:b", {"binary": "/x", "symbol": "y"}, {"purl": "pkg:deb/debian/z@1", "symbol": "w"}]'), ['a:b', '/x:y', 'pkg:deb/debian/z@1:w']);
  assert.deepEqual(parseFunctionsFile('{"functions": ["a:b"]}'), ['a:b']);
  assert.throws(() => parseFunctionsFile('{'), /not JSON/);
  assert.throws(() => parseFunctionsFile('[{"symbol": "x"}]'), /needs "binary"/);
});

test('first-seen filter: one record per (pid, function, stack) per window, exact counts', () => {
  const f = new FirstSeenFilter(3);
  const s1 = ['0x1', '0x2'];
  assert.equal(f.offer(1, 'fn', s1), true);
  for (let i = 0; i < 999; i++) assert.equal(f.offer(1, 'fn', s1), false);
  assert.equal(f.offer(1, 'fn', ['0x1', '0x3']), true);
  assert.equal(f.offer(2, 'fn', s1), true);
  assert.equal(f.offer(2, 'other', s1), true, 'past maxKeys records pass and are counted as overflow');
  assert.equal(f.overflow, 1);
  assert.deepEqual(f.rotateWindow(), [
    { function: 'fn', calls: 1002, emitted: 3, suppressed: 999 },
    { function: 'other', calls: 1, emitted: 1, suppressed: 0 },
  ]);
  assert.equal(f.offer(1, 'fn', s1), true, 'a new window starts fresh');
});

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseStrict, type StrictObject } from '../../src/encode/strict-json';
import { tlsCoverageWindow } from '../../src/store/predicate';
import { checkTlsCoverage } from '../../src/verify/predicate';
import { uncoveredTlsKind } from '../../src/ingest/uprobes/libraries';

const entry = (pid: number) => ({ pid, comm: 'c', exe: '/bin/x', library: '/lib/libnss3.so', kind: 'nss' });
const pred = (v: unknown): StrictObject => parseStrict(JSON.stringify({ tls_coverage: v })) as StrictObject;

test('tls_coverage windows: the pairs found since the last seal, the first 64 listed, counts exact', () => {
  const entries = Array.from({ length: 100 }, (_, i) => entry(i + 1));
  assert.deepEqual(tlsCoverageWindow(0, { total: 0, entries: [] }), { uncovered: 0, uncovered_total: 0, processes: [], truncated: false });
  const w1 = tlsCoverageWindow(0, { total: 3, entries: entries.slice(0, 3) });
  assert.deepEqual(w1.processes.map((e) => e.pid), [1, 2, 3]);
  const w2 = tlsCoverageWindow(3, { total: 100, entries });
  assert.equal(w2.uncovered, 97);
  assert.equal(w2.processes.length, 64);
  assert.equal(w2.processes[0]!.pid, 4);
  assert.equal(w2.truncated, true);
  // beyond the bounded log: counted, not listed
  const w3 = tlsCoverageWindow(100, { total: 5000, entries });
  assert.deepEqual([w3.uncovered, w3.processes.length, w3.truncated], [4900, 0, true]);
  for (const w of [w1, w2, w3]) assert.deepEqual(checkTlsCoverage(pred(w)).problems, []);
});

test('tls_coverage verification: absent is fine (older chunks), malformed or inconsistent is a problem', () => {
  assert.deepEqual(checkTlsCoverage(parseStrict('{}') as StrictObject), { entry: undefined, problems: [] });
  const good = { uncovered: 1, uncovered_total: 2, processes: [entry(7)], truncated: false };
  assert.equal(checkTlsCoverage(pred(good)).entry?.processes[0]?.pid, 7n);
  for (const bad of [
    [], { ...good, extra: 1 }, { ...good, uncovered: -1 }, { ...good, uncovered_total: 0 }, { ...good, truncated: true },
    { ...good, uncovered: 0, truncated: false }, { ...good, processes: [{ ...entry(7), pid: 0 }] }, { ...good, processes: [{ ...entry(7), more: 1 }] },
    { uncovered: 100, uncovered_total: 100, processes: Array.from({ length: 65 }, (_, i) => entry(i + 1)), truncated: true },
  ]) {
    assert.equal(checkTlsCoverage(pred(bad)).problems.length, 1, JSON.stringify(bad).slice(0, 100));
  }
});

test('uncovered TLS libraries by name; OpenSSL (libssl.so.3) and GnuTLS are not among them', () => {
  assert.equal(uncoveredTlsKind('/usr/lib/x86_64-linux-gnu/libnss3.so'), 'nss');
  assert.equal(uncoveredTlsKind('/usr/lib/x86_64-linux-gnu/libssl3.so'), 'nss');
  assert.equal(uncoveredTlsKind('/usr/lib/librustls.so'), 'rustls');
  assert.equal(uncoveredTlsKind('/usr/lib/libwolfssl.so.35'), 'wolfssl');
  assert.equal(uncoveredTlsKind('/usr/lib/jvm/java-17/lib/server/libjvm.so'), 'java');
  assert.equal(uncoveredTlsKind('/usr/lib/x86_64-linux-gnu/libssl.so.3'), undefined);
  assert.equal(uncoveredTlsKind('/usr/lib/x86_64-linux-gnu/libgnutls.so.30'), undefined);
});

import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { decodeRecord, newDecodeStats } from '../../src/decode/decode';
import { PROBE_NAMES, type ProbeName } from '../../src/decode/layout';
import { createRecordValidator } from '../../src/encode/validate';
import { REPO } from '../helpers/collector';
import { readSamples } from '../helpers/fake-binding';
import { replayFixture } from '../helpers/replay';
import { structsOf, wireLayoutHash } from '../helpers/wire-layout';

const ROOT = path.join(REPO, 'test', 'fixtures', 'ringbuf');
const EVENTS_H = fs.readFileSync(path.join(REPO, 'bpf', 'events.h'), 'utf8');
const FIXTURES = fs.readdirSync(ROOT).filter((d) => fs.existsSync(path.join(ROOT, d, 'manifest.json'))).sort();

interface Manifest {
  probes: ProbeName[];
  records: number;
  wire_layout: { file: string; structs: string[]; sha256: string };
  record_fixture: string;
}

const manifest = (name: string): Manifest => JSON.parse(fs.readFileSync(path.join(ROOT, name, 'manifest.json'), 'utf8')) as Manifest;

test('there is a recorded ring fixture for every record type', () => {
  const covered = new Set(FIXTURES.flatMap((f) => manifest(f).probes));
  assert.deepEqual(PROBE_NAMES.filter((p) => !covered.has(p)), []);
});

for (const name of FIXTURES) {
  test(`ring fixture ${name}: recorded with the current wire layout of bpf/events.h`, () => {
    const m = manifest(name);
    assert.equal(m.wire_layout.file, 'bpf/events.h');
    assert.deepEqual(m.wire_layout.structs, structsOf(m.probes), 'the manifest names the structs of its record types');
    assert.equal(wireLayoutHash(EVENTS_H, m.wire_layout.structs), m.wire_layout.sha256,
      `bpf/events.h changed the layout of ${m.wire_layout.structs.join(', ')}: re-record with \`${m.record_fixture}\` (as root) and review the diff`);
  });

  test(`ring fixture ${name}: every sample decodes, holds each of its probes, and replays to the recorded output byte for byte`, () => {
    const m = manifest(name);
    const samplesBin = fs.readFileSync(path.join(ROOT, name, 'samples.bin'));
    const samples = readSamples(samplesBin);
    assert.equal(samples.length, m.records);
    const stats = newDecodeStats();
    const seen = new Set<ProbeName>();
    for (const s of samples) {
      const d = decodeRecord(s, stats);
      assert.ok(d.ok, `a sample of ${name} does not decode: ${d.ok ? '' : d.reason}`);
      seen.add(d.probe);
    }
    assert.deepEqual([...seen].sort(), [...m.probes].sort());
    const { lines, calls } = replayFixture(samplesBin);
    const file = (f: string): string => (fs.existsSync(path.join(ROOT, name, f)) ? fs.readFileSync(path.join(ROOT, name, f), 'utf8') : '');
    assert.equal(lines.map((l) => l + '\n').join(''), file('expected.ndjson'));
    assert.equal(calls.map((l) => l + '\n').join(''), file('expected-calls.ndjson'));
    const validate = createRecordValidator();
    for (const line of lines) assert.equal(validate(line), undefined, line);
  });
}

test('the wire layout hash sees a changed field and ignores a reworded comment', () => {
  const structs = ['evt_hdr', 'evt_ssl_op'];
  const base = wireLayoutHash(EVENTS_H, structs);
  assert.equal(wireLayoutHash(EVENTS_H.replace('/* bytes actually transferred */', '/* moved */'), structs), base);
  assert.notEqual(wireLayoutHash(EVENTS_H.replace('__u64 bytes;', '__u32 bytes;'), structs), base);
  assert.notEqual(wireLayoutHash(EVENTS_H.replace('EVT_SSL_OP = 5', 'EVT_SSL_OP = 7'), structs), base);
  assert.equal(wireLayoutHash(EVENTS_H.replace('__u64 bytes;', '__u32 bytes;'), ['evt_hdr', 'evt_net_connect']),
    wireLayoutHash(EVENTS_H, ['evt_hdr', 'evt_net_connect']), 'another family\'s change does not touch this fixture');
});

/**
 * --file-open-mode first-seen: one file_open per (cgroup, pid, path, access) per chunk window;
 * what it suppresses is counted in the ledger's `deduplicated`, the accounting identity holds in
 * every signed chunk, and `rtev verify` checks it (a tampered counter is caught).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { parseFileOpenMode, Pipeline } from '../../src/ingest/pipeline';
import { PathFilter } from '../../src/ingest/path-filter';
import { emptyKernelCounters, type Ledger } from '../../src/model/ledger';
import { openEvidenceDir } from '../../src/store/output';
import type { RecordSink } from '../../src/store/sink';
import { checkLedgerIdentity, parsePredicate, verifyEvidence } from '../../src/verify';
import { parseStrict } from '../../src/encode/strict-json';
import { REPO } from '../helpers/collector';
import { fixedEnvironment, makeHarness, PRODUCER } from '../helpers/evidence-fixtures';
import { readSamples } from '../helpers/fake-binding';

const fixture = readSamples(fs.readFileSync(path.join(REPO, 'test', 'fixtures', 'ringbuf', 'trigger', 'samples.bin')));
const opens = fixture.filter((r) => r.readUInt32LE(16) === 1);

function collecting(): { sink: RecordSink; lines: string[] } {
  const lines: string[] = [];
  return { lines, sink: { write: (l) => { lines.push(l); }, backlogBytes: 0, bytesWritten: 0, close: async () => {} } };
}

test('first-seen writes each (cgroup, pid, path, access) once per window and counts the rest', () => {
  const { sink, lines } = collecting();
  const p = new Pipeline({ sink, pathFilter: new PathFilter([], []), fileOpenMode: 'first-seen' });
  for (let i = 0; i < 3; i++) for (const r of fixture) p.handleRecord(r);
  const all = collecting();
  const ref = new Pipeline({ sink: all.sink, pathFilter: new PathFilter([], []) });
  for (const r of fixture) ref.handleRecord(r);
  // once: exactly the lines of one pass over the fixture, minus its own repeats
  const firstOf = new Map<string, string>();
  for (const l of all.lines) {
    const r = JSON.parse(l);
    if (r.event.type !== 'file_open') continue;
    const key = `${r.cgroup_id} ${r.pid} ${r.event.access} ${r.event.path}`;
    if (!firstOf.has(key)) firstOf.set(key, l);
  }
  const written = lines.filter((l) => JSON.parse(l).event.type === 'file_open');
  assert.deepEqual(written, [...firstOf.values()]);
  const u = p.user.file_open;
  assert.equal(u.received, BigInt(opens.length * 3));
  assert.equal(u.written, BigInt(firstOf.size));
  assert.equal(u.received, u.written + u.deduplicated + u.filtered + u.rejected + u.shed);
  assert.ok(u.deduplicated > 0n);
  // other record types are not deduplicated
  assert.equal(p.user.process_exec.written, ref.user.process_exec.written * 3n);
  // a new window writes them again
  p.rotateWindow();
  for (const r of opens) p.handleRecord(r);
  assert.equal(p.user.file_open.written, BigInt(firstOf.size * 2));
});

test('--file-open-mode takes all or first-seen', () => {
  assert.equal(parseFileOpenMode(undefined), 'all');
  assert.equal(parseFileOpenMode('first-seen'), 'first-seen');
  assert.throws(() => parseFileOpenMode('once'), /unknown mode 'once'/);
});

test('signed chunks: the identity holds with deduplicated, windows rotate per chunk, verify checks it', async () => {
  const h = makeHarness('rtev-first-seen-');
  const ledger: Ledger = {};
  let pipeline: Pipeline | undefined;
  const snapshot = (): Ledger => {
    for (const [probe, u] of Object.entries(pipeline!.user)) {
      // every record the pipeline received was submitted by the kernel
      ledger[probe] = { kernel: { ...emptyKernelCounters(), submitted: u.received }, user: { ...u } };
    }
    return structuredClone(ledger);
  };
  const sink = openEvidenceDir({ stdout: false, outDir: h.dir, keyFile: h.keyFile, chunkMaxBytes: 3000 },
    { producer: PRODUCER, ledger: snapshot, notice: () => {}, onSeal: () => pipeline!.rotateWindow() }, fixedEnvironment(), false);
  pipeline = new Pipeline({ sink, pathFilter: new PathFilter([], []), fileOpenMode: 'first-seen' });
  for (let i = 0; i < 20; i++) for (const r of fixture) pipeline.handleRecord(r);
  await sink.close(snapshot());
  const report = verifyEvidence(h.dir, [h.key]);
  assert.equal(report.status, 'valid', report.problems.join('\n'));
  assert.ok(report.chunks > 3, `${report.chunks} chunks`);
  assert.ok((report.ledger['file_open']?.['user.deduplicated'] ?? 0n) > 0n, 'the chunks count what was deduplicated');
  assert.equal(report.ledger['file_open']!['user.deduplicated'], pipeline.user.file_open.deduplicated);
  // a deduplicated count that does not add up is a problem of the chunk's ledger
  const envName = fs.readdirSync(h.dir).filter((n) => n.endsWith('.dsse.json')).sort()[1]!;
  const env = JSON.parse(fs.readFileSync(path.join(h.dir, envName), 'utf8'));
  const statement = parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as { predicate: Record<string, any> };
  const parsed = parsePredicate(statement.predicate);
  assert.ok(parsed.ok);
  assert.deepEqual(checkLedgerIdentity(parsed.predicate), []);
  const fo = statement.predicate['ledger']['probes']['file_open'];
  fo.user.deduplicated = (fo.user.deduplicated as bigint) + 1n;
  const tampered = parsePredicate(statement.predicate);
  assert.ok(tampered.ok);
  assert.match(checkLedgerIdentity(tampered.predicate).join('\n'), /ledger of file_open: submitted \d+ != in_chunk \+ filtered \+ deduplicated/);
  // each chunk holds each key at most once
  for (const name of fs.readdirSync(h.dir).filter((n) => n.endsWith('.ndjson'))) {
    const keys = fs.readFileSync(path.join(h.dir, name), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((r) => r.event.type === 'file_open').map((r) => `${r.cgroup_id} ${r.pid} ${r.event.access} ${r.event.path}`);
    assert.equal(new Set(keys).size, keys.length, name);
  }
});

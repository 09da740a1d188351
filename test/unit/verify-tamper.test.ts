import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { canonicalize, type CanonicalValue } from '../../src/encode/canonical';
import { serializeEnvelope, signEnvelope } from '../../src/sign/envelope';
import { generateSigningKey, type VerifyKey } from '../../src/sign/keys';
import { IN_TOTO_PAYLOAD_TYPE } from '../../src/sign/statement';
import { parseStrict } from '../../src/encode/strict-json';
import { verifyEvidence, type VerifyReport } from '../../src/verify';
import { makeHarness, type Harness } from '../helpers/evidence-fixtures';

/** A clean chain of 4+ chunks, closed, with no drops. */
async function cleanChain(): Promise<Harness> {
  const h = makeHarness();
  const sink = h.open({ chunkMaxBytes: 6000 });
  h.feed(sink, 0, 120);
  await sink.close(h.ledger.snapshot());
  return h;
}

const C = (n: number) => `chunk-${String(n).padStart(12, '0')}.ndjson`;
const E = (n: number) => `chunk-${String(n).padStart(12, '0')}.dsse.json`;

function run(h: Harness, keys: VerifyKey[] = [h.key]): VerifyReport {
  return verifyEvidence(h.dir, keys);
}

function expectProblem(r: VerifyReport, file: string, pattern: RegExp): void {
  assert.equal(r.status, 'invalid', JSON.stringify(r.problems));
  assert.ok(r.problems.some((p) => p.file === file && pattern.test(p.reason)), `expected ${file}: ${pattern} in ${JSON.stringify(r.problems, null, 1)}`);
}

test('a clean chain verifies as valid and complete', async () => {
  const h = await cleanChain();
  const r = run(h);
  assert.equal(r.status, 'valid', JSON.stringify([r.problems, r.gaps]));
  assert.ok(r.chunks >= 4);
  assert.equal(r.records, 120n);
  assert.equal(r.lost, 0n);
  assert.equal(r.runs, 1);
});

test('a flipped byte in a chunk', async () => {
  const h = await cleanChain();
  const file = path.join(h.dir, C(2));
  const b = fs.readFileSync(file);
  b[100] ^= 0x01;
  fs.writeFileSync(file, b);
  expectProblem(run(h), C(2), /does not match the signed digest/);
});

test('a deleted line', async () => {
  const h = await cleanChain();
  const file = path.join(h.dir, C(2));
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.splice(3, 1);
  fs.writeFileSync(file, lines.join('\n'));
  expectProblem(run(h), C(2), /1 missing: deleted lines\?/);
});

test('an added line', async () => {
  const h = await cleanChain();
  const file = path.join(h.dir, C(3));
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  lines.splice(2, 0, lines[1]!);
  fs.writeFileSync(file, lines.join('\n'));
  expectProblem(run(h), C(3), /1 extra: added lines\?/);
});

test('a deleted chunk', async () => {
  const h = await cleanChain();
  fs.unlinkSync(path.join(h.dir, C(2)));
  fs.unlinkSync(path.join(h.dir, E(2)));
  expectProblem(run(h), E(2), /seq 2 is missing from the chain/);
});

test('a deleted chunk file whose envelope remains', async () => {
  const h = await cleanChain();
  fs.unlinkSync(path.join(h.dir, C(2)));
  expectProblem(run(h), C(2), /chunk file is missing/);
});

test('two chunks swapped', async () => {
  const h = await cleanChain();
  for (const [a, b] of [[C(2), C(3)], [E(2), E(3)]] as const) {
    fs.renameSync(path.join(h.dir, a), path.join(h.dir, 'x'));
    fs.renameSync(path.join(h.dir, b), path.join(h.dir, a));
    fs.renameSync(path.join(h.dir, 'x'), path.join(h.dir, b));
  }
  const r = run(h);
  expectProblem(r, E(2), /the envelope is for chunk-000000000003.ndjson, not chunk-000000000002.ndjson/);
  expectProblem(r, E(3), /the envelope is for chunk-000000000002.ndjson/);
});

test('two chunk data files swapped (envelopes in place)', async () => {
  const h = await cleanChain();
  fs.renameSync(path.join(h.dir, C(2)), path.join(h.dir, 'x'));
  fs.renameSync(path.join(h.dir, C(3)), path.join(h.dir, C(2)));
  fs.renameSync(path.join(h.dir, 'x'), path.join(h.dir, C(3)));
  const r = run(h);
  expectProblem(r, C(2), /does not match the signed digest/);
  expectProblem(r, C(3), /does not match the signed digest/);
});

test('a chunk duplicated at the end of the chain', async () => {
  const h = await cleanChain();
  const last = Math.max(...fs.readdirSync(h.dir).filter((n) => n.endsWith('.dsse.json')).map((n) => Number(n.slice(6, 18))));
  fs.copyFileSync(path.join(h.dir, C(2)), path.join(h.dir, C(last + 1)));
  fs.copyFileSync(path.join(h.dir, E(2)), path.join(h.dir, E(last + 1)));
  expectProblem(run(h), E(last + 1), /the envelope is for chunk-000000000002.ndjson/);
});

test('an envelope from another chunk', async () => {
  const h = await cleanChain();
  fs.copyFileSync(path.join(h.dir, E(1)), path.join(h.dir, E(3)));
  expectProblem(run(h), E(3), /the envelope is for chunk-000000000001.ndjson, not chunk-000000000003.ndjson/);
});

test('a truncated last chunk', async () => {
  const h = await cleanChain();
  const last = Math.max(...fs.readdirSync(h.dir).filter((n) => n.endsWith('.ndjson')).map((n) => Number(n.slice(6, 18))));
  const file = path.join(h.dir, C(last));
  fs.truncateSync(file, fs.statSync(file).size - 10);
  expectProblem(run(h), C(last), /does not match the signed digest.*last line is cut off/);
});

test('a predicate edited and re-encoded (same key unknown to the attacker)', async () => {
  const h = await cleanChain();
  const file = path.join(h.dir, E(2));
  const env = JSON.parse(fs.readFileSync(file, 'utf8'));
  const statement = parseStrict(Buffer.from(env.payload, 'base64').toString('utf8')) as any;
  statement.predicate.ledger.probes.file_open.kernel.ring_full = 0n;
  statement.predicate.records.count = statement.predicate.records.count;
  statement.predicate.host.hostname = 'innocent-host';
  env.payload = Buffer.from(canonicalize(statement as CanonicalValue)).toString('base64');
  fs.writeFileSync(file, JSON.stringify(env));
  expectProblem(run(h), E(2), /signature does not verify/);
});

test('a predicate re-signed with the attacker\'s own key', async () => {
  const h = await cleanChain();
  const file = path.join(h.dir, E(2));
  const env = JSON.parse(fs.readFileSync(file, 'utf8'));
  const attacker = generateSigningKey();
  fs.writeFileSync(file, serializeEnvelope(signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from(env.payload, 'base64'), attacker)));
  const r = run(h);
  expectProblem(r, E(2), /signature does not verify/);
  // and the next chunk's link no longer matches the replaced envelope
  expectProblem(r, E(3), /prev_envelope_sha256 does not match/);
});

test('a wrong public key', async () => {
  const h = await cleanChain();
  const r = run(h, [generateSigningKey()]);
  expectProblem(r, E(1), /signature does not verify with the trusted public key/);
  assert.ok(r.problems.length >= 4);
});

test('garbage envelopes, symlinks and binary chunks do not crash verify', async () => {
  const h = await cleanChain();
  fs.writeFileSync(path.join(h.dir, E(1)), Buffer.from([0xff, 0x00, 0x7b]));
  fs.writeFileSync(path.join(h.dir, C(2)), Buffer.alloc(3 << 20, 0x41));
  fs.unlinkSync(path.join(h.dir, C(3)));
  fs.symlinkSync('/etc/passwd', path.join(h.dir, C(3)));
  const r = run(h);
  expectProblem(r, E(1), /envelope is not JSON/);
  expectProblem(r, C(2), /longer than/);
  expectProblem(r, C(3), /not a regular file/);
});

test('a schema-invalid but correctly signed record is reported by line', async () => {
  const h = makeHarness();
  const sink = h.open();
  sink.write('{"comm":"x","event":{"type":"file_open"},"pid":0,"src":"s","ts_ns":1}', { type: 'file_open', tsNs: 1n, probe: 'file_open' });
  sink.write('{"pid":1, "ts_ns":2}', { type: 'file_open', tsNs: 2n, probe: 'file_open' });
  await sink.close({});
  const r = run(h);
  expectProblem(r, C(1), /line 1: fails the record schema/);
  expectProblem(r, C(1), /line 2: not in canonical JSON form/);
});

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkContent, checkDigest, checkEnvelope } from '../../src/fleet/chunk-check';
import { decide } from '../../src/fleet/ingest';
import { envelopeSubject, hostIdFor, hostOfSubject, objectDigest, objectName } from '../../src/fleet/names';
import { biasedToU64, copyText, encodeRows, RECORD_COLUMNS } from '../../src/fleet/rows';
import { checkNoPassword, redact } from '../../src/fleet/secrets';
import { parseListenAddr } from '../../src/fleet/metrics';
import { generateSigningKey } from '../../src/sign/keys';
import { makeHarness, type Harness } from '../helpers/evidence-fixtures';

const HOST = '0123456789abcdef0123456789abcdef';
const E = (n: number) => `chunk-${String(n).padStart(12, '0')}.dsse.json`;
const C = (n: number) => `chunk-${String(n).padStart(12, '0')}.ndjson`;

async function chain(): Promise<Harness> {
  const h = makeHarness('rtev-fleet-');
  const sink = h.open({ chunkMaxBytes: 3000 });
  h.feed(sink, 0, 60);
  await sink.close(h.ledger.snapshot());
  return h;
}

test('checkEnvelope accepts a sealed chunk and names its facts; rejections carry a code', async () => {
  const h = await chain();
  const env = fs.readFileSync(path.join(h.dir, E(2)));
  const v = checkEnvelope(env, HOST, [h.key]);
  assert.ok(v.ok, v.ok ? '' : `${v.code}: ${v.reason}`);
  assert.equal(v.facts.seq, 2n);
  assert.equal(v.facts.hostId, HOST);
  assert.equal(v.facts.keyid, h.key.keyid);
  assert.ok(v.facts.prevEnvelopeSha256 !== null);
  const other = generateSigningKey();
  const u = checkEnvelope(env, HOST, [other]);
  assert.ok(!u.ok && u.code === 'untrusted-key');
  assert.equal(!u.ok && u.partial.keyid, h.key.keyid, 'the claimed keyid is kept for the record');
  const m = checkEnvelope(env, 'ffffffffffffffffffffffffffffffff', [h.key]);
  assert.ok(!m.ok && m.code === 'host-mismatch');
  const garbage = checkEnvelope(Buffer.from('{"payload":1}'), HOST, [h.key]);
  assert.ok(!garbage.ok && garbage.code === 'bad-envelope');
  const tampered = JSON.parse(env.toString());
  tampered.payload = Buffer.from(Buffer.from(tampered.payload, 'base64').toString().replace('"seq":2', '"seq":3')).toString('base64');
  const t = checkEnvelope(Buffer.from(JSON.stringify(tampered)), HOST, [h.key]);
  assert.ok(!t.ok && t.code === 'untrusted-key', 'an edited payload no longer verifies');
});

test('the body must match the signed digest and the signed record summary', async () => {
  const h = await chain();
  const v = checkEnvelope(fs.readFileSync(path.join(h.dir, E(1))), HOST, [h.key]);
  assert.ok(v.ok);
  const body = fs.readFileSync(path.join(h.dir, C(1)));
  assert.equal(checkDigest(body, v.facts), undefined);
  const rows = encodeRows(body, v.facts, 7n);
  assert.equal(checkContent(rows.content, v.predicate), undefined);
  assert.equal(rows.content.count, Number(v.facts.count));
  const flipped = Buffer.from(body);
  flipped[10] ^= 1;
  assert.equal(checkDigest(flipped, v.facts)?.code, 'digest-mismatch');
  // a body that hashes right but disagrees with the summary cannot be made without the key;
  // the summary check still runs on what the rows pass counted
  const fewer = encodeRows(body.subarray(0, body.indexOf(10) + 1), v.facts, 7n);
  assert.equal(checkContent(fewer.content, v.predicate)?.code, 'content-mismatch');
});

test('COPY rows point at the original line and keep u64 values exactly', async () => {
  const h = await chain();
  const v = checkEnvelope(fs.readFileSync(path.join(h.dir, E(1))), HOST, [h.key]);
  assert.ok(v.ok);
  const body = fs.readFileSync(path.join(h.dir, C(1)));
  const text = Buffer.concat(encodeRows(body, v.facts, 7n).pieces).toString('utf8');
  const rows = text.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
  const lines = body.toString('utf8').split('\n').filter((l) => l !== '');
  assert.equal(rows.length, lines.length);
  const col = (name: string) => RECORD_COLUMNS.indexOf(name as (typeof RECORD_COLUMNS)[number]);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    assert.equal(r.length, RECORD_COLUMNS.length);
    assert.equal(body.toString('utf8', Number(r[col('line_off')]), Number(r[col('line_off')]) + Number(r[col('line_len')])), lines[i]);
    // schema v5: u64 values biased by -2^63 into int8, exact (u64 max -> int8 max)
    assert.equal(r[col('ts_ns_biased')], String(BigInt(/"ts_ns":(\d+)/.exec(lines[i]!)![1]!) - (1n << 63n)));
    assert.equal(r[col('cgroup_id_biased')], '9223372036854775807');
    assert.equal(biasedToU64(r[col('ts_ns_biased')]!), BigInt(/"ts_ns":(\d+)/.exec(lines[i]!)![1]!));
    assert.equal(r[col('line_no')], String(i + 1));
  }
  assert.equal(copyText('a\tb\\c\nd'), 'a\\tb\\\\c\\nd');
  assert.equal(copyText(null), '\\N');
});

test('decide: next link indexes; fork, replaced chain, broken link reject; ahead waits, then records a gap', () => {
  const f = { chainId: 'c1', seq: 5n, prevEnvelopeSha256: 'e4' } as Parameters<typeof decide>[0];
  const head = { chain_id: 'c1', head_seq: '4', head_envelope_sha256: 'e4' };
  assert.deepEqual(decide(f, head, false), { kind: 'index' });
  assert.equal((decide({ ...f, prevEnvelopeSha256: 'x' }, head, true) as { code: string }).code, 'broken-link');
  assert.equal((decide({ ...f, seq: 3n }, head, true) as { code: string }).code, 'fork');
  assert.equal((decide({ ...f, chainId: 'c2', seq: 1n }, head, true) as { code: string }).code, 'chain-replaced');
  assert.equal(decide({ ...f, seq: 7n }, head, false).kind, 'defer');
  assert.deepEqual(decide({ ...f, seq: 7n }, head, true), { kind: 'index', gap: { from: 5n, through: 6n } });
  assert.deepEqual(decide({ ...f, seq: 1n }, undefined, false), { kind: 'index' });
  assert.equal(decide({ ...f, seq: 3n }, undefined, false).kind, 'defer');
  assert.deepEqual(decide({ ...f, seq: 3n }, undefined, true), { kind: 'index', gap: { from: 1n, through: 2n } });
  // a late chunk fills its recorded gap only if it links both neighbours
  const late = { ...f, seq: 3n, prevEnvelopeSha256: 'e2', envelopeSha256: 'e3' } as Parameters<typeof decide>[0];
  assert.deepEqual(decide(late, head, false, { open: true, prevEnvelope: 'e2', nextLinks: 'e3' }), { kind: 'index', late: true });
  assert.equal((decide(late, head, false, { open: true, prevEnvelope: 'e2', nextLinks: 'other' }) as { code: string }).code, 'broken-link');
  assert.equal((decide(late, head, false, { open: true, prevEnvelope: 'x', nextLinks: null }) as { code: string }).code, 'broken-link');
  assert.equal((decide(late, head, false, { open: false, prevEnvelope: 'e2', nextLinks: 'e3' }) as { code: string }).code, 'fork');
  // chunks a signed retention checkpoint names as removed before shipping: indexed at once, a retention gap
  assert.deepEqual(decide({ ...f, seq: 7n }, head, false, undefined, true), { kind: 'index', gap: { from: 5n, through: 6n, kind: 'retention' } });
  assert.deepEqual(decide({ ...f, seq: 3n }, undefined, false, undefined, true), { kind: 'index', gap: { from: 1n, through: 2n, kind: 'retention' } });
  assert.equal((decide({ ...f, chainId: 'c2', seq: 3n }, head, false, undefined, true) as { code: string }).code, 'chain-replaced', 'a checkpoint does not open another chain');
});

test('names, secrets and addresses', () => {
  assert.equal(hostIdFor(HOST, 'x'), HOST);
  assert.equal(hostIdFor('', 'web-1.example'), 'web-1_example');
  assert.equal(hostIdFor('bad id!', 'x'), undefined);
  assert.equal(hostOfSubject(envelopeSubject(HOST)), HOST);
  assert.equal(hostOfSubject('rtev.env.a.b'), undefined);
  assert.equal(objectName(HOST, 'c', 3), `${HOST}/c/000000000003.ndjson`);
  assert.equal(objectDigest('00'.repeat(32)), 'SHA-256=' + 'A'.repeat(43));
  assert.throws(() => checkNoPassword('postgresql://u:secret@h/db', 'db', 'fix'), /must not contain a password/);
  assert.equal(checkNoPassword('postgresql://u@h/db?host=/tmp', 'db', 'fix'), 'postgresql://u@h/db?host=/tmp');
  assert.throws(() => checkNoPassword('nats://u:p@127.0.0.1:4222', 'nats', 'fix'), /password/);
  assert.equal(redact('nats://u:p@h:1'), 'nats://***@h:1');
  assert.deepEqual(parseListenAddr(':9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseListenAddr('0.0.0.0:1'), { host: '0.0.0.0', port: 1 });
  assert.deepEqual(parseListenAddr('[::1]:9'), { host: '::1', port: 9 });
  assert.throws(() => parseListenAddr('x:y'), /not an address/);
});

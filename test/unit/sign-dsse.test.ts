import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { preAuthEncoding } from '../../src/sign/pae';
import { decodeBase64, parseEnvelope, serializeEnvelope, signEnvelope, verifyEnvelope } from '../../src/sign/envelope';
import { fingerprint, generateSigningKey, publicKeyPem } from '../../src/sign/keys';
import { IN_TOTO_PAYLOAD_TYPE } from '../../src/sign/statement';
import { makeHarness } from '../helpers/evidence-fixtures';
import { requireTools } from '../helpers/tools';

/*
 * Tool: openssl, as an implementation of Ed25519 and SPKI that shares no code with ours. Why not
 * recorded openssl output: it would pin one key and one envelope, while these tests check the keys
 * and chunk envelopes this run generates. A missing openssl fails the test (the Makefile installs it).
 */

test('PAE matches the DSSE spec example', () => {
  const pae = preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world'));
  assert.equal(pae.toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
});

test('PAE uses UTF-8 byte lengths, not string lengths', () => {
  const pae = preAuthEncoding('\u0174ext/plain', Buffer.from('h\u00e9', 'utf8'));
  assert.deepEqual(pae, Buffer.concat([Buffer.from('DSSEv1 11 '), Buffer.from('\u0174ext/plain', 'utf8'), Buffer.from(' 3 '), Buffer.from('h\u00e9', 'utf8')]));
  assert.equal(preAuthEncoding('t', Buffer.alloc(0)).toString(), 'DSSEv1 1 t 0 ');
});

test('envelopes round-trip, verify, and reject edits and other keys', () => {
  const key = generateSigningKey();
  const other = generateSigningKey();
  const env = signEnvelope(IN_TOTO_PAYLOAD_TYPE, Buffer.from('{"a":1}'), key);
  const parsed = parseEnvelope(serializeEnvelope(env));
  assert.ok(parsed.ok);
  assert.equal(verifyEnvelope(parsed.envelope, parsed.payload, [other, key]), key.keyid);
  assert.equal(verifyEnvelope(parsed.envelope, parsed.payload, [other]), undefined);
  assert.equal(verifyEnvelope(parsed.envelope, Buffer.from('{"a":2}'), [key]), undefined);
  assert.equal(verifyEnvelope({ ...parsed.envelope, payloadType: 'text/plain' }, parsed.payload, [key]), undefined);
  // keyid is only a hint: a wrong or missing one still finds the key that verifies
  for (const keyid of [other.keyid, '', 'nonsense']) {
    assert.equal(verifyEnvelope({ ...parsed.envelope, signatures: parsed.envelope.signatures.map((s) => ({ ...s, keyid })) }, parsed.payload, [other, key]), key.keyid, `hint ${keyid}`);
  }
  assert.equal(env.signatures[0]!.keyid, key.keyid);
});

test('parseEnvelope refuses garbage without throwing', () => {
  for (const bad of ['', 'null', '[]', '{"payload":1}', '{"payload":"@@","payloadType":"x","signatures":[{"sig":"AA=="}]}', '{"payload":"","payloadType":"x","signatures":[]}']) {
    assert.equal(parseEnvelope(Buffer.from(bad)).ok, false, bad);
  }
  assert.equal(decodeBase64('AA=='.replace('=', '*')), undefined);
  assert.deepEqual(decodeBase64('-_8='), Buffer.from([0xfb, 0xff]));
});

test('Ed25519 signatures are deterministic', () => {
  const key = generateSigningKey();
  const a = serializeEnvelope(signEnvelope('t', Buffer.from('x'), key));
  const b = serializeEnvelope(signEnvelope('t', Buffer.from('x'), key));
  assert.deepEqual(a, b);
});

test('keyid is the sha256 of the SPKI DER, as openssl computes it', () => {
  requireTools('openssl');
  const key = generateSigningKey();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-keyid-'));
  fs.writeFileSync(path.join(tmp, 'pub.pem'), publicKeyPem(key.publicKey));
  const der = execFileSync('openssl', ['pkey', '-pubin', '-in', path.join(tmp, 'pub.pem'), '-outform', 'DER']);
  assert.equal(crypto.createHash('sha256').update(der).digest('hex'), key.keyid);
  assert.equal(fingerprint(key.publicKey), key.keyid);
});

/**
 * The independent check: PAE is rebuilt here from the DSSE spec, without our code, and the
 * signature of every chunk envelope is checked by the openssl command line.
 */
test('chunk envelopes verify with openssl over a PAE built independently', async () => {
  requireTools('openssl');
  const h = makeHarness();
  const sink = h.open({ chunkMaxBytes: 8000 });
  h.feed(sink, 0, 80);
  await sink.close(h.ledger.snapshot());
  const envelopes = fs.readdirSync(h.dir).filter((n) => n.endsWith('.dsse.json'));
  assert.ok(envelopes.length >= 2);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-openssl-'));
  for (const name of envelopes) {
    const env = JSON.parse(fs.readFileSync(path.join(h.dir, name), 'utf8')) as { payload: string; payloadType: string; signatures: Array<{ sig: string; keyid: string }> };
    assert.equal(env.payloadType, 'application/vnd.in-toto+json');
    const body = Buffer.from(env.payload, 'base64');
    const type = Buffer.from(env.payloadType, 'utf8');
    const pae = Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${body.length} `), body]);
    fs.writeFileSync(path.join(work, 'pae.bin'), pae);
    fs.writeFileSync(path.join(work, 'sig.bin'), Buffer.from(env.signatures[0]!.sig, 'base64'));
    const out = execFileSync('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', h.keyFile + '.pub', '-in', path.join(work, 'pae.bin'), '-sigfile', path.join(work, 'sig.bin')]).toString();
    assert.match(out, /Signature Verified Successfully/);
    const statement = JSON.parse(body.toString('utf8'));
    assert.equal(statement._type, 'https://in-toto.io/Statement/v1');
    const chunk = fs.readFileSync(path.join(h.dir, statement.subject[0].name));
    assert.equal(crypto.createHash('sha256').update(chunk).digest('hex'), statement.subject[0].digest.sha256);
  }
  // and a flipped payload byte fails under openssl too
  const pae = fs.readFileSync(path.join(work, 'pae.bin'));
  pae[pae.length - 5] ^= 1;
  fs.writeFileSync(path.join(work, 'pae.bin'), pae);
  assert.throws(() => execFileSync('openssl', ['pkeyutl', '-verify', '-rawin', '-pubin', '-inkey', h.keyFile + '.pub', '-in', path.join(work, 'pae.bin'), '-sigfile', path.join(work, 'sig.bin')], { stdio: 'pipe' }));
});

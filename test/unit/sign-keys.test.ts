import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultKeyDir, loadOrCreateDefaultKey, loadSigningKeyFile, loadVerifyKeyFile, writeKeyPair } from '../../src/sign/key-files';
import { generateSigningKey } from '../../src/sign/keys';
import { RtevError } from '../../src/errors';
import { main } from '../../src/cli/main';
import { PassThrough } from 'node:stream';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'rtev-keys-'));
}

test('writeKeyPair writes 0600 private and 0644 public keys that load back', () => {
  const dir = tmp();
  const key = generateSigningKey();
  writeKeyPair(path.join(dir, 'k'), key);
  assert.equal(fs.statSync(path.join(dir, 'k')).mode & 0o777, 0o600);
  assert.equal(fs.statSync(path.join(dir, 'k.pub')).mode & 0o777, 0o644);
  assert.equal(loadSigningKeyFile(path.join(dir, 'k')).keyid, key.keyid);
  assert.equal(loadVerifyKeyFile(path.join(dir, 'k.pub')).keyid, key.keyid);
  assert.throws(() => writeKeyPair(path.join(dir, 'k'), key), (e: RtevError) => /refusing to overwrite/.test(e.message));
});

test('keys readable by others, symlinked keys and non-Ed25519 keys are refused', () => {
  const dir = tmp();
  writeKeyPair(path.join(dir, 'k'), generateSigningKey());
  fs.chmodSync(path.join(dir, 'k'), 0o644);
  assert.throws(() => loadSigningKeyFile(path.join(dir, 'k')), /readable by others/);
  fs.chmodSync(path.join(dir, 'k'), 0o600);
  fs.symlinkSync(path.join(dir, 'k'), path.join(dir, 'link'));
  assert.throws(() => loadSigningKeyFile(path.join(dir, 'link')), /not a regular file/);
  const { privateKey } = require('node:crypto').generateKeyPairSync('ec', { namedCurve: 'P-256' });
  fs.writeFileSync(path.join(dir, 'ec'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  assert.throws(() => loadSigningKeyFile(path.join(dir, 'ec')), /Ed25519/);
});

test('the default key is created once, 0700/0600, in RTEV_KEY_DIR', () => {
  const base = tmp();
  const dir = defaultKeyDir({ RTEV_KEY_DIR: path.join(base, 'keys') }, 1000);
  assert.equal(dir, path.join(base, 'keys'));
  assert.equal(defaultKeyDir({}, 0), '/var/lib/rtev/keys');
  assert.equal(defaultKeyDir({ XDG_STATE_HOME: '/x' }, 1000), '/x/rtev/keys');
  const first = loadOrCreateDefaultKey(dir);
  assert.equal(first.created, true);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  assert.equal(fs.statSync(first.file).mode & 0o777, 0o600);
  const second = loadOrCreateDefaultKey(dir);
  assert.equal(second.created, false);
  assert.equal(second.key.keyid, first.key.keyid);
});

test('rtev keygen --out FILE prints the fingerprint', async () => {
  const dir = tmp();
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const code = await main(['keygen', '--out', path.join(dir, 'key')], { stdout, stderr: new PassThrough(), stdin: new PassThrough() });
  assert.equal(code, 0);
  const text = Buffer.concat(chunks).toString();
  const key = loadSigningKeyFile(path.join(dir, 'key'));
  assert.ok(text.includes(`sha256:${key.keyid}`), text);
  const again = await main(['keygen', '--out', path.join(dir, 'key')], { stdout, stderr: new PassThrough(), stdin: new PassThrough() });
  assert.equal(again, 2);
});

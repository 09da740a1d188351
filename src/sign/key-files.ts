import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RtevError } from '../errors';
import { mkdirp } from '../platform/fsio';
import { generateSigningKey, parseSigningKey, parseVerifyKey, privateKeyPem, publicKeyPem, type SigningKey, type VerifyKey } from './keys';

/**
 * Key files on disk. A key pair is FILE (PKCS#8 PEM, mode 0600) and FILE.pub (SPKI PEM,
 * mode 0644). Files are created with O_EXCL|O_NOFOLLOW so an existing file or a planted
 * symlink is never overwritten.
 */

const MAX_KEY_FILE = 64 * 1024;

/** publicKeyPath is where the public half of a private key file lives. */
export function publicKeyPath(privateKeyFile: string): string {
  return privateKeyFile + '.pub';
}

/** writeKeyPair writes a new key pair; it refuses to replace existing files. */
export function writeKeyPair(file: string, key: SigningKey): void {
  writeNew(file, privateKeyPem(key), 0o600);
  writeNew(publicKeyPath(file), publicKeyPem(key.publicKey), 0o644);
}

/** loadSigningKeyFile reads a private key file, refusing symlinks and group/world-readable keys. */
export function loadSigningKeyFile(file: string): SigningKey {
  const st = lstatOrThrow(file, 'KEY');
  if (!st.isFile()) throw new RtevError('KEY', `key file ${file} is not a regular file (symlinks are refused)`);
  const pem = readBounded(file, 'KEY');
  if (pem.includes('-----BEGIN PUBLIC KEY-----')) {
    const privateFile = file.endsWith('.pub') ? file.slice(0, -'.pub'.length) : undefined;
    throw new RtevError('KEY', `key file ${file} is a public key; signing needs the private key`, {
      hint: privateFile !== undefined && fs.existsSync(privateFile) ? `pass --key ${privateFile} (and give ${file} to 'rtev verify --pubkey')` : "pass the private key file; create a pair with 'rtev keygen --out FILE'",
    });
  }
  if ((st.mode & 0o077) !== 0) {
    throw new RtevError('KEY', `key file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)})`, { hint: `chmod 600 ${file}` });
  }
  return parseSigningKey(pem, file);
}

/** loadVerifyKeyFile reads a public key (or private key) PEM file. */
export function loadVerifyKeyFile(file: string): VerifyKey {
  return parseVerifyKey(readBounded(file, 'KEY'), file);
}

/**
 * defaultKeyDir is where `rtev collect` keeps its key without --key: $RTEV_KEY_DIR, else
 * /var/lib/rtev/keys for root, else $XDG_STATE_HOME/rtev/keys (~/.local/state/rtev/keys).
 */
export function defaultKeyDir(env: NodeJS.ProcessEnv = process.env, uid: number = process.getuid?.() ?? -1): string {
  const override = env['RTEV_KEY_DIR'];
  if (override !== undefined && override !== '') return override;
  if (uid === 0) return '/var/lib/rtev/keys';
  const state = env['XDG_STATE_HOME'];
  return path.join(state !== undefined && state !== '' ? state : path.join(os.homedir(), '.local', 'state'), 'rtev', 'keys');
}

/** The default private key file name inside the default key directory. */
export const DEFAULT_KEY_NAME = 'signing.key';

/**
 * loadOrCreateDefaultKey loads DIR/signing.key, creating it (dir 0700, key 0600) on first
 * use; `created` tells the caller to print the fingerprint.
 */
export function loadOrCreateDefaultKey(dir: string = defaultKeyDir()): { key: SigningKey; file: string; created: boolean } {
  const file = path.join(dir, DEFAULT_KEY_NAME);
  if (fs.existsSync(file) || isSymlink(file)) return { key: loadSigningKeyFile(file), file, created: false };
  try {
    mkdirp(dir, 0o700);
  } catch (err) {
    throw new RtevError('KEY', `cannot create key directory ${dir}`, { cause: err, hint: 'pass --key FILE or set RTEV_KEY_DIR' });
  }
  const st = fs.lstatSync(dir);
  if (!st.isDirectory()) throw new RtevError('KEY', `key directory ${dir} is not a directory`, { hint: 'pass --key FILE or set RTEV_KEY_DIR to a directory' });
  if ((st.mode & 0o022) !== 0) throw new RtevError('KEY', `key directory ${dir} is writable by others`, { hint: `chmod 700 ${dir}` });
  const key = generateSigningKey();
  writeKeyPair(file, key);
  return { key, file, created: true };
}

function writeNew(file: string, text: string, mode: number): void {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, mode);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new RtevError('USAGE', `${file} already exists; refusing to overwrite a key`, { hint: 'choose another --out FILE or remove the old key' });
    throw new RtevError('OUTPUT', `cannot create ${file}`, { cause: err, hint: 'choose a file in a directory you can write (keygen --out FILE)' });
  }
  try {
    fs.fchmodSync(fd, mode);
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readBounded(file: string, code: 'KEY' | 'USAGE'): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw new RtevError(code, `cannot read key file ${file}`, { cause: err });
  }
  try {
    const buf = Buffer.alloc(MAX_KEY_FILE);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n === buf.length) throw new RtevError(code, `key file ${file} is too large to be a key`);
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

function lstatOrThrow(file: string, code: 'KEY' | 'USAGE'): fs.Stats {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    throw new RtevError(code, `cannot read key file ${file}`, { cause: err, hint: "create one with 'rtev keygen --out FILE'" });
  }
}

function isSymlink(file: string): boolean {
  try {
    return fs.lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

import * as crypto from 'node:crypto';
import { RtevError } from '../errors';

/**
 * Ed25519 keys for signing chunks. The private key is PKCS#8 PEM, the public key SPKI PEM;
 * a key's fingerprint (and its DSSE `keyid`) is the lowercase hex sha256 of its SPKI DER.
 * All cryptography is node:crypto (OpenSSL); nothing here is home-made.
 */

/** SigningKey is a loaded Ed25519 private key with its public half and fingerprint. */
export interface SigningKey {
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  keyid: string;
}

/** VerifyKey is a trusted Ed25519 public key and its fingerprint. */
export interface VerifyKey {
  publicKey: crypto.KeyObject;
  keyid: string;
}

/** fingerprint returns the hex sha256 of a public key's SPKI DER encoding. */
export function fingerprint(publicKey: crypto.KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return crypto.createHash('sha256').update(der).digest('hex');
}

/** generateSigningKey makes a fresh Ed25519 key pair. */
export function generateSigningKey(): SigningKey {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519');
  return { privateKey, publicKey, keyid: fingerprint(publicKey) };
}

/** privateKeyPem encodes a private key as PKCS#8 PEM. */
export function privateKeyPem(key: SigningKey): string {
  return key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

/** publicKeyPem encodes a public key as SPKI PEM. */
export function publicKeyPem(key: crypto.KeyObject): string {
  return key.export({ type: 'spki', format: 'pem' }).toString();
}

/** parseSigningKey reads a PEM private key and insists it is Ed25519. */
export function parseSigningKey(pem: string | Buffer, source: string): SigningKey {
  let privateKey: crypto.KeyObject;
  try {
    privateKey = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new RtevError('KEY', `${source} is not a PEM private key`, { cause: err, hint: "create one with 'rtev keygen --out FILE'" });
  }
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new RtevError('KEY', `${source} is a ${privateKey.asymmetricKeyType} key, rtev signs with Ed25519`, { hint: "create one with 'rtev keygen --out FILE'" });
  }
  const publicKey = crypto.createPublicKey(privateKey);
  return { privateKey, publicKey, keyid: fingerprint(publicKey) };
}

/** parseVerifyKey reads a PEM public key (or a private key, whose public half is used). */
export function parseVerifyKey(pem: string | Buffer, source: string): VerifyKey {
  let publicKey: crypto.KeyObject;
  try {
    publicKey = crypto.createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new RtevError('USAGE', `${source} is not a PEM public key`, { cause: err });
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new RtevError('USAGE', `${source} is a ${publicKey.asymmetricKeyType} key, rtev signs with Ed25519`);
  }
  return { publicKey, keyid: fingerprint(publicKey) };
}

/** signEd25519 signs bytes (Ed25519 is deterministic: same key and bytes, same signature). */
export function signEd25519(key: SigningKey, data: Buffer): Buffer {
  return crypto.sign(null, data, key.privateKey);
}

/** verifyEd25519 checks a signature; malformed signatures are simply invalid. */
export function verifyEd25519(key: VerifyKey, data: Buffer, signature: Buffer): boolean {
  try {
    return crypto.verify(null, data, key.publicKey, signature);
  } catch {
    return false;
  }
}

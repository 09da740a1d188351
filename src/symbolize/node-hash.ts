import { createHash } from 'node:crypto';
import type { Runtime } from '../model/record';

/** RUNTIMES is the schema's runtime enum, which is also the set of node_hash kinds. */
export const RUNTIMES: readonly Runtime[] = ['native', 'jvm', 'node', 'python', 'dotnet', 'go', 'ruby'];

/**
 * computeNodeHash is the node_hash v1 formula of docs/format.md:
 * `"sha256:" + hex(SHA-256(UTF-8(NFC("nodehash/v1" NUL kind NUL component NUL symbol))))`.
 *
 * @example
 *   computeNodeHash('native', 'pkg:deb/debian/libssl3@3.0.11-1~deb12u2', 'SSL_read');
 *   // 'sha256:f6b0a72d8ca203b34929c8346ea318ba704db8f6fa9b91c6eac53eef8b2a5f91'
 */
export function computeNodeHash(kind: Runtime, component: string, symbol: string): string {
  const pre = `nodehash/v1\0${kind}\0${component}\0${symbol}`.normalize('NFC');
  return 'sha256:' + createHash('sha256').update(pre, 'utf8').digest('hex');
}

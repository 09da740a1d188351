import * as path from 'node:path';
import { lstatMaybe, readBounded, writeFileAtomic } from './fsio';
import { SHIP_CURSOR_NAME } from './layout';

/**
 * The ship cursor (`.rtev-ship.json` in an evidence directory) says how far `rtev ship`
 * has had the chain acknowledged by the fleet transport: every chunk of `chain_id` up to
 * `acked_seq` is stored. Retention reads it so that it never removes an unshipped chunk
 * (unless told to, and then the signed checkpoint says so). Its presence marks the
 * directory as shipped.
 */

export interface ShipCursor {
  chain_id: string | null;
  acked_seq: number;
  /** sha256 of the envelope of acked_seq (null when nothing is acked) */
  acked_envelope_sha256: string | null;
}

const MAX_CURSOR_BYTES = 4096;

/** readShipCursor returns the cursor, undefined if there is none; a damaged cursor is treated as empty. */
export function readShipCursor(dir: string): ShipCursor | undefined {
  const file = path.join(dir, SHIP_CURSOR_NAME);
  if (lstatMaybe(file) === undefined) return undefined;
  try {
    const v = JSON.parse(readBounded(file, MAX_CURSOR_BYTES).toString('utf8')) as Record<string, unknown>;
    const seq = v['acked_seq'];
    const chain = v['chain_id'];
    const env = v['acked_envelope_sha256'];
    if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) throw new Error('bad acked_seq');
    return {
      chain_id: typeof chain === 'string' ? chain : null,
      acked_seq: seq,
      acked_envelope_sha256: typeof env === 'string' && /^[0-9a-f]{64}$/.test(env) ? env : null,
    };
  } catch {
    return { chain_id: null, acked_seq: 0, acked_envelope_sha256: null };
  }
}

/** writeShipCursor replaces the cursor atomically (write, fsync, rename, fsync the directory). */
export function writeShipCursor(dir: string, c: ShipCursor): void {
  const text = JSON.stringify({ acked_envelope_sha256: c.acked_envelope_sha256, acked_seq: c.acked_seq, chain_id: c.chain_id }) + '\n';
  writeFileAtomic(dir, SHIP_CURSOR_NAME, Buffer.from(text), true);
}

/** shippedThrough is the highest seq of `chainId` the cursor vouches for (0 if none or another chain). */
export function shippedThrough(c: ShipCursor | undefined, chainId: string): number {
  if (c === undefined || c.chain_id !== chainId) return 0;
  return c.acked_seq;
}

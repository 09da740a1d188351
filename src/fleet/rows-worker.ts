import { parentPort, workerData } from 'node:worker_threads';
import { checkContent, checkDigest, checkEnvelope } from './chunk-check';
import type { VerifyKey } from '../sign/keys';
import { encodeRows } from './rows';
import { encodeRowsBinary } from './rows-binary';

/**
 * The row worker of `rtev ingest` (src/fleet/row-pool.ts): builds a chunk's COPY rows off the
 * ingest thread, so that the thread keeps reading bodies from NATS and feeding COPY data to
 * PostgreSQL while the next chunk's rows are built. It checks the envelope again itself (the
 * same pure check, with the same trusted keys) to have the chunk's facts and signed summary
 * without copying them across, builds the rows as the ingest thread would (binary, else text)
 * and checks what they counted against the signed summary. The body's sha256 is checked against
 * the signed digest first (a body that does not match gets no rows: { digestBad }).
 *
 * Message in: { id, envelope, host, body, chunkId }. Out: { id, ok: true, by, pieces, parsed, bad }
 * or { id, ok: false, reason } (the ingest thread then builds the rows itself).
 */

interface Job { id: number; envelope: Uint8Array; host: string; body: Uint8Array; chunkId: bigint }

// the ingest thread's trusted keys (KeyObjects cross threads as they are)
const keys = (workerData as { keys: VerifyKey[] }).keys;

parentPort!.on('message', (j: Job) => {
  try {
    const v = checkEnvelope(j.envelope, j.host, keys);
    if (!v.ok) {
      parentPort!.postMessage({ id: j.id, ok: false, reason: `envelope: ${v.reason}` });
      return;
    }
    const body = Buffer.from(j.body.buffer, j.body.byteOffset, j.body.byteLength);
    const digestBad = checkDigest(body, v.facts);
    if (digestBad !== undefined) {
      parentPort!.postMessage({ id: j.id, ok: true, digestBad });
      return;
    }
    const hasAttribution = Object.prototype.hasOwnProperty.call(v.predicate.raw, 'attribution');
    const bin = encodeRowsBinary(body, v.facts, j.chunkId, hasAttribution);
    const rows = bin === undefined ? encodeRows(body, v.facts, j.chunkId) : undefined;
    const pieces = bin?.pieces ?? rows!.pieces;
    // big pieces own their buffers (not Buffer's shared pool): moved, not copied
    const move = new Set<ArrayBuffer>();
    for (const p of pieces) if (p.buffer.byteLength >= 65536 && p.buffer instanceof ArrayBuffer) move.add(p.buffer);
    parentPort!.postMessage({
      id: j.id, ok: true, by: bin === undefined ? 'text' : 'binary', pieces, parsed: bin?.parsed ?? 0,
      bad: checkContent(bin?.content ?? rows!.content, v.predicate),
    }, [...move]);
  } catch (err) {
    parentPort!.postMessage({ id: j.id, ok: false, reason: (err as Error).message });
  }
});

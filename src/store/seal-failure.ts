import { errorMessage, RtevError } from '../errors';
import { chunkName } from './layout';
import { outputError } from './fsio';

/**
 * FailureCell carries a seal failure from the seal worker to the ingest thread through
 * shared memory, so the ingest thread learns of it without running its event loop.
 * Layout: Int32 [state, messageLength], then UTF-8 message bytes. state 1 = OUTPUT, 2 = DISK_FULL.
 */
export interface FailureCell {
  buffer: SharedArrayBuffer;
}

const MESSAGE_BYTES = 2048;

export function newFailureCell(): FailureCell {
  return { buffer: new SharedArrayBuffer(8 + MESSAGE_BYTES) };
}

export function reportFailure(cell: FailureCell, err: unknown, seq: number): void {
  const e = outputError(err, `cannot seal ${chunkName(seq)}`);
  const text = Buffer.from(errorMessage(e)).subarray(0, MESSAGE_BYTES);
  new Uint8Array(cell.buffer, 8, MESSAGE_BYTES).set(text);
  const head = new Int32Array(cell.buffer, 0, 2);
  Atomics.store(head, 1, text.length);
  Atomics.store(head, 0, e.code === 'DISK_FULL' ? 2 : 1);
}

/** readFailure returns the failure reported so far, if any. */
export function readFailure(cell: FailureCell): RtevError | undefined {
  const head = new Int32Array(cell.buffer, 0, 2);
  const state = Atomics.load(head, 0);
  if (state === 0) return undefined;
  const text = Buffer.from(new Uint8Array(cell.buffer, 8, Atomics.load(head, 1))).toString('utf8');
  return state === 2
    ? new RtevError('DISK_FULL', text, { hint: 'free space or choose another --out directory; sealed chunks are intact and the next run records the unsealed tail' })
    : new RtevError('OUTPUT', text);
}

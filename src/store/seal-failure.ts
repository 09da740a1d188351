import { errorMessage, RtevError } from '../errors';
import { chunkName } from './layout';
import { outputError } from './fsio';

/**
 * sealError: the error a failed seal leaves for the writer, which reports it at its next write
 * or at close(): DISK_FULL (with its hint) when the device is full, OUTPUT otherwise. Every
 * later seal is abandoned: sealing past a hole would break the chain.
 */
export function sealError(err: unknown, seq: number): RtevError {
  const e = outputError(err, `cannot seal ${chunkName(seq)}`);
  const text = errorMessage(e);
  return e.code === 'DISK_FULL'
    ? new RtevError('DISK_FULL', text, { hint: 'free space or choose another --out directory; sealed chunks are intact and the next run records the unsealed tail' })
    : new RtevError('OUTPUT', text);
}

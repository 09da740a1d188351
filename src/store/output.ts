import { RtevError } from '../errors';
import type { SigningKey } from '../sign/keys';
import type { ChunkSink } from './chunk-writer';
import { StreamSink } from './stream-sink';
import type { Environment } from './host-facts';
import { CHUNK_CUT_LIMIT_BYTES } from './layout';
import type { OutputContext, OutputOptions, RecordSink } from './sink';

// The evidence directory's modules (chunk writer, sealer, recovery, lock, signing keys: about 30 of
// dist's modules) are loaded by runs that write one: `--stdout` does not compile them
// (docs/benchmarks.md, "Session 5 (h28)").
const chunkWriter = (): typeof import('./chunk-writer') => require('./chunk-writer') as typeof import('./chunk-writer');
const keyFiles = (): typeof import('../sign/key-files') => require('../sign/key-files') as typeof import('../sign/key-files');

/**
 * openOutput turns the output options into a sink: plain NDJSON on stdout (unsigned), or
 * an evidence directory of signed, hash-chained chunks (docs/format.md).
 */
export async function openOutput(options: OutputOptions, context: OutputContext): Promise<RecordSink> {
  if (options.stdout || options.outDir === undefined) {
    return new StreamSink(1, {
      ...(options.flushIntervalMs !== undefined ? { flushIntervalMs: options.flushIntervalMs } : {}),
      ...(context.onError !== undefined ? { onError: context.onError } : {}),
    });
  }
  // a collector bounds its unsealed backlog by a count (chunk-writer.ts MAX_PENDING_SEALS)
  return openEvidenceDir({ ...options, maxPendingSeals: options.maxPendingSeals ?? chunkWriter().MAX_PENDING_SEALS }, context);
}

/** openEvidenceDir opens (or resumes) the chain in options.outDir; env is injectable for tests. */
export function openEvidenceDir(options: OutputOptions, context: OutputContext, env?: Environment, ageTimer = true): ChunkSink {
  const { ChunkSink, DEFAULT_CHUNK_MAX_AGE_MS, DEFAULT_CHUNK_MAX_BYTES } = chunkWriter();
  const { ensureEvidenceDir } = require('./fsio') as typeof import('./fsio');
  const { lockEvidenceDir } = require('./lock') as typeof import('./lock');
  const { recoverChain } = require('./recovery') as typeof import('./recovery');
  const environment = env ?? (require('./host-facts') as typeof import('./host-facts')).realEnvironment();
  const dir = options.outDir;
  if (dir === undefined) throw new RtevError('USAGE', 'no evidence directory given', { hint: 'pass --out DIR' });
  checkPositive('--chunk-size', options.chunkMaxBytes);
  if (options.chunkMaxBytes !== undefined && options.chunkMaxBytes > CHUNK_CUT_LIMIT_BYTES) {
    throw new RtevError('USAGE', `--chunk-size ${options.chunkMaxBytes} is larger than ${CHUNK_CUT_LIMIT_BYTES / (1024 * 1024)}M, the largest size at which rtev cuts a chunk (the fleet takes chunks up to 64M)`, { hint: 'pass --chunk-size 63M or less (the default is 16M)' });
  }
  checkPositive('--chunk-age', options.chunkMaxAgeMs);
  checkPositive('--retain-size', options.retainMaxBytes);
  checkPositive('--retain-age', options.retainMaxAgeMs);
  const key = signingKey(options.keyFile, context);
  ensureEvidenceDir(dir);
  const release = lockEvidenceDir(dir);
  try {
    const state = recoverChain(dir, key, context.notice);
    if (state.restart !== null && !state.restart.previous_run_closed) {
      context.notice(`resuming the chain in ${dir} after an unclean stop; ${state.restart.unsealed.length} unsealed file(s) will be recorded as a gap`);
    }
    return new ChunkSink({
      dir, key, env: environment, producer: context.producer, ledger: context.ledger,
      ...(context.functionCalls !== undefined ? { functionCalls: () => context.functionCalls!() } : {}),
      ...(context.onSeal !== undefined ? { onSeal: () => context.onSeal!() } : {}),
      ...(context.attribution !== undefined ? { attribution: context.attribution } : {}),
      ...(context.tlsCoverage !== undefined ? { tlsCoverage: () => context.tlsCoverage!() } : {}),
      chunkMaxBytes: options.chunkMaxBytes ?? DEFAULT_CHUNK_MAX_BYTES,
      chunkMaxAgeMs: options.chunkMaxAgeMs ?? DEFAULT_CHUNK_MAX_AGE_MS,
      ...(options.maxPendingSeals !== undefined ? { maxPendingSeals: options.maxPendingSeals } : {}),
      retention: { maxBytes: options.retainMaxBytes, maxAgeMs: options.retainMaxAgeMs, removeUnshipped: options.retainUnshipped },
      ageTimer, release,
    }, state);
  } catch (err) {
    release();
    throw err;
  }
}

function signingKey(keyFile: string | undefined, context: OutputContext): SigningKey {
  const { defaultKeyDir, loadOrCreateDefaultKey, loadSigningKeyFile } = keyFiles();
  if (keyFile !== undefined) return loadSigningKeyFile(keyFile);
  const { key, file, created } = loadOrCreateDefaultKey(defaultKeyDir());
  if (created) context.notice(`created signing key ${file} (public key ${file}.pub), fingerprint sha256:${key.keyid}`);
  return key;
}

function checkPositive(flag: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
    throw new RtevError('USAGE', `${flag} must be a positive number, got ${value}`);
  }
}

export { StreamSink } from './stream-sink';

import * as fs from 'node:fs';
import { RtevError } from '../errors';
import type { Ledger } from '../model/ledger';
import { defaultKeyDir, loadOrCreateDefaultKey, loadSigningKeyFile } from '../sign/key-files';
import type { SigningKey } from '../sign/keys';
import { ChunkSink, DEFAULT_CHUNK_MAX_AGE_MS, DEFAULT_CHUNK_MAX_BYTES } from './chunk-writer';
import { ensureEvidenceDir, writeAll } from './fsio';
import { LineBuffer } from './line-buffer';
import { realEnvironment, type Environment } from './host-facts';
import { lockEvidenceDir } from './lock';
import { recoverChain } from './recovery';
import { segmentLine, type Segment } from '../decode/segment';
import type { LineInfo, OutputContext, OutputOptions, RecordSink } from './sink';

/**
 * openOutput turns the output options into a sink: plain NDJSON on stdout (unsigned), or
 * an evidence directory of signed, hash-chained chunks (docs/format.md).
 */
export async function openOutput(options: OutputOptions, context: OutputContext): Promise<RecordSink> {
  if (options.stdout || options.outDir === undefined) return new StreamSink(1);
  return openEvidenceDir(options, context);
}

/** openEvidenceDir opens (or resumes) the chain in options.outDir; env is injectable for tests. */
export function openEvidenceDir(options: OutputOptions, context: OutputContext, env: Environment = realEnvironment(), ageTimer = true): ChunkSink {
  const dir = options.outDir;
  if (dir === undefined) throw new RtevError('USAGE', 'no evidence directory given', { hint: 'pass --out DIR' });
  checkPositive('--chunk-size', options.chunkMaxBytes);
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
      dir, key, env, producer: context.producer, ledger: context.ledger,
      ...(context.functionCalls !== undefined ? { functionCalls: () => context.functionCalls!() } : {}),
      ...(context.onSeal !== undefined ? { onSeal: () => context.onSeal!() } : {}),
      ...(context.attribution !== undefined ? { attribution: context.attribution } : {}),
      chunkMaxBytes: options.chunkMaxBytes ?? DEFAULT_CHUNK_MAX_BYTES,
      chunkMaxAgeMs: options.chunkMaxAgeMs ?? DEFAULT_CHUNK_MAX_AGE_MS,
      retention: { maxBytes: options.retainMaxBytes, maxAgeMs: options.retainMaxAgeMs },
      ageTimer, release,
    }, state);
  } catch (err) {
    release();
    throw err;
  }
}

function signingKey(keyFile: string | undefined, context: OutputContext): SigningKey {
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

/** StreamSink writes plain (unsigned) NDJSON lines to a file descriptor in large writes. */
/** StreamSink writes plain NDJSON to a file descriptor (--stdout). */
export class StreamSink implements RecordSink {
  #fd: number;
  #lines = new LineBuffer();
  #written = 0;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get backlogBytes(): number {
    return this.#lines.length;
  }

  get bytesWritten(): number {
    return this.#written;
  }

  write(line: string, _info: LineInfo): void {
    if (!this.#lines.fits(line)) this.#flush();
    this.#lines.append(line);
  }

  writeSegment(seg: Segment, first: number, last: number): void {
    if (last <= first) return;
    const start = first === 0 ? seg.linesStart : segmentLine(seg, first).start;
    const end = last === seg.count ? seg.linesEnd : segmentLine(seg, last - 1).end;
    if (!this.#lines.fitsBytes(end - start)) this.#flush();
    this.#lines.appendBytes(seg.batch, start, end);
  }

  async close(_ledger: Ledger): Promise<void> {
    this.#flush();
    if (this.#fd > 2) fs.closeSync(this.#fd);
  }

  #flush(): void {
    this.#lines.drain((data) => {
      writeAll(this.#fd, data, 'standard output');
      this.#written += data.length;
    });
  }
}

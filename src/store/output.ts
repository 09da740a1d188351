import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../errors';
import type { Ledger } from '../model/ledger';
import type { LineInfo, OutputContext, OutputOptions, RecordSink } from './sink';

/**
 * openOutput turns the output options into a sink: stdout, or an evidence directory.
 * (The directory form is replaced by signed chunks in src/store/chunk-*.ts.)
 */
export async function openOutput(options: OutputOptions, _context: OutputContext): Promise<RecordSink> {
  if (options.stdout || options.outDir === undefined) return new StreamSink(1);
  const dir = options.outDir;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const fd = fs.openSync(path.join(dir, 'records.ndjson'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_APPEND | fs.constants.O_NOFOLLOW, 0o600);
    return new StreamSink(fd);
  } catch (err) {
    throw new RtevError('OUTPUT', `cannot write to ${dir}`, { cause: err, hint: 'choose a writable directory with --out DIR' });
  }
}

/** StreamSink appends lines to a file descriptor in large writes. */
class StreamSink implements RecordSink {
  #fd: number;
  #pending: string[] = [];
  #pendingBytes = 0;
  #written = 0;

  constructor(fd: number) {
    this.#fd = fd;
  }

  get backlogBytes(): number {
    return this.#pendingBytes;
  }

  get bytesWritten(): number {
    return this.#written;
  }

  write(line: string, _info: LineInfo): void {
    this.#pending.push(line);
    this.#pendingBytes += line.length + 1;
    if (this.#pendingBytes >= 1 << 20) this.#flush();
  }

  async close(_ledger: Ledger): Promise<void> {
    this.#flush();
    if (this.#fd > 2) fs.closeSync(this.#fd);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const data = this.#pending.join('\n') + '\n';
    this.#pending = [];
    this.#pendingBytes = 0;
    writeAll(this.#fd, Buffer.from(data));
    this.#written += data.length;
  }
}

function writeAll(fd: number, data: Buffer): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(fd, data, offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new RtevError('DISK_FULL', 'output device is full', { cause: err, hint: 'free space or choose another --out directory' });
      }
      throw new RtevError('OUTPUT', 'cannot write output', { cause: err });
    }
  }
}

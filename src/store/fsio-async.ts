import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../errors';
import { outputError } from './fsio';

/**
 * The careful file operations of src/platform/fsio.ts, on libuv's thread pool: the seal's
 * fsyncs, renames and envelope writes run there, so that the ingest thread never waits for the
 * disk, without a second V8 isolate (docs/benchmarks.md, "Session 5 (h27)"). Same rules: no
 * symlinks followed, files created exclusively with mode 0600, ENOSPC/EDQUOT become DISK_FULL.
 * Callback APIs wrapped in promises (not fs.promises: no FileHandle object per file).
 */

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;

function done<T>(resolve: (v: T) => void, reject: (e: unknown) => void): (err: NodeJS.ErrnoException | null, v: T) => void {
  return (err, v) => (err === null ? resolve(v) : reject(err));
}

export function fsyncFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fsync(fd, (err) => (err === null ? resolve() : reject(err))));
}

export function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err === null ? resolve() : reject(err))));
}

export function fstatFd(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, done(resolve, reject)));
}

function open(file: string, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(file, flags, mode, done(resolve, reject)));
}

function rename(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => fs.rename(from, to, (err) => (err === null ? resolve() : reject(err))));
}

function unlink(file: string): Promise<void> {
  return new Promise((resolve, reject) => fs.unlink(file, (err) => (err === null ? resolve() : reject(err))));
}

/** lstatMaybeAsync: undefined when the name does not exist */
export function lstatMaybeAsync(file: string): Promise<fs.Stats | undefined> {
  return new Promise((resolve, reject) => fs.lstat(file, (err, st) => {
    if (err === null) resolve(st);
    else if (err.code === 'ENOENT') resolve(undefined);
    else reject(err);
  }));
}

/** fsyncDirAsync makes renames and unlinks in a directory durable. */
export async function fsyncDirAsync(dir: string): Promise<void> {
  const fd = await open(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    await fsyncFd(fd);
  } finally {
    await closeFd(fd);
  }
}

/** renameNewAsync renames a file to a name that must not exist yet. */
export async function renameNewAsync(from: string, to: string): Promise<void> {
  if ((await lstatMaybeAsync(to)) !== undefined) throw new RtevError('OUTPUT', `refusing to replace existing ${to}`);
  try {
    await rename(from, to);
  } catch (err) {
    throw outputError(err, `cannot rename ${path.basename(from)} to ${path.basename(to)}`);
  }
}

/** writeAllAsync writes a whole buffer at the file's current position. */
async function writeAllAsync(fd: number, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    offset += await new Promise<number>((resolve, reject) => fs.write(fd, data, offset, data.length - offset, null, done(resolve, reject)));
  }
}

/** writeFileAtomicAsync writes DIR/NAME (a new name) through NAME.partial + fsync + rename + dir fsync. */
export async function writeFileAtomicAsync(dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = path.join(dir, name + '.partial');
  if ((await lstatMaybeAsync(tmp)) !== undefined) await unlink(tmp);
  let fd: number;
  try {
    fd = await open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw outputError(err, `cannot create ${tmp}`);
  }
  try {
    await writeAllAsync(fd, data);
    await fsyncFd(fd);
  } catch (err) {
    throw outputError(err, `cannot write ${name}`);
  } finally {
    await closeFd(fd);
  }
  await renameNewAsync(tmp, path.join(dir, name));
  await fsyncDirAsync(dir);
}

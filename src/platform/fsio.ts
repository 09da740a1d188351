import * as fs from 'node:fs';
import * as path from 'node:path';
import { RtevError } from '../errors';

/**
 * Small, careful file operations for the evidence directory: no symlinks are followed,
 * files are created exclusively with mode 0600, and ENOSPC/EDQUOT become DISK_FULL.
 */

const O_NOFOLLOW = fs.constants.O_NOFOLLOW;

/** ensureEvidenceDir creates DIR (0700) or checks that an existing DIR is a real directory. */
export function ensureEvidenceDir(dir: string): void {
  try {
    mkdirp(dir, 0o700);
  } catch (err) {
    throw outputError(err, `cannot create evidence directory ${dir}`);
  }
  const st = fs.lstatSync(dir);
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new RtevError('OUTPUT', `${dir} is not a directory (symlinks are refused)`, { hint: 'choose a plain directory with --out DIR' });
  }
  if ((st.mode & 0o022) !== 0) {
    throw new RtevError('OUTPUT', `evidence directory ${dir} is writable by group or others`, { hint: `chmod 700 ${dir}` });
  }
}

/**
 * mkdirp creates DIR and its missing parents. (Node 20's `mkdirSync(dir, { recursive: true })`
 * spins forever on some pseudo file systems, e.g. under /proc, so the walk is done here.)
 */
export function mkdirp(dir: string, mode: number): void {
  const missing: string[] = [];
  for (let cur = path.resolve(dir); lstatMaybe(cur) === undefined; ) {
    missing.push(cur);
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/** createExclusive opens a new file for writing; it fails if the name exists in any form. */
export function createExclusive(file: string): number {
  try {
    return fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | O_NOFOLLOW, 0o600);
  } catch (err) {
    throw outputError(err, `cannot create ${file}`);
  }
}

/** openNoFollow opens an existing regular file read-only without following a symlink. */
export function openNoFollow(file: string): number {
  return fs.openSync(file, fs.constants.O_RDONLY | O_NOFOLLOW);
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/** writeAll writes a whole buffer at the current position. */
export function writeAll(fd: number, data: Buffer, what: string): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += fs.writeSync(fd, data, offset);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        // a non-blocking pipe whose reader is behind: wait 1 ms instead of spinning
        Atomics.wait(PAUSE, 0, 0, 1);
        continue;
      }
      throw outputError(err, `cannot write ${what}`);
    }
  }
}

/** fsyncAsync flushes a file to stable storage on the libuv thread pool. */
export function fsyncAsync(fd: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    fs.fsync(fd, (err) => (err === null ? resolve() : reject(outputError(err, `cannot fsync ${what}`))));
  });
}

/** fsyncDir makes renames and unlinks in a directory durable. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** renameNew renames a file to a name that must not exist yet. */
export function renameNew(from: string, to: string): void {
  if (lstatMaybe(to) !== undefined) throw new RtevError('OUTPUT', `refusing to replace existing ${to}`);
  try {
    fs.renameSync(from, to);
  } catch (err) {
    throw outputError(err, `cannot rename ${path.basename(from)} to ${path.basename(to)}`);
  }
}

/** writeFileAtomic writes DIR/NAME through NAME.partial + fsync + rename + dir fsync. */
export function writeFileAtomic(dir: string, name: string, data: Buffer, replace = false): void {
  const tmp = path.join(dir, name + '.partial');
  if (lstatMaybe(tmp) !== undefined) fs.unlinkSync(tmp);
  const fd = createExclusive(tmp);
  try {
    writeAll(fd, data, name);
    fs.fsyncSync(fd);
  } catch (err) {
    throw outputError(err, `cannot write ${name}`);
  } finally {
    fs.closeSync(fd);
  }
  if (replace) {
    const st = lstatMaybe(path.join(dir, name));
    if (st !== undefined && !st.isFile()) throw new RtevError('OUTPUT', `${name} in ${dir} is not a regular file`);
    fs.renameSync(tmp, path.join(dir, name));
  } else {
    renameNew(tmp, path.join(dir, name));
  }
  fsyncDir(dir);
}

/** lstatMaybe returns undefined when the name does not exist. */
export function lstatMaybe(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** readBounded reads a whole regular file of at most `limit` bytes, refusing symlinks. */
export function readBounded(file: string, limit: number): Buffer {
  const fd = openNoFollow(file);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    if (st.size > limit) throw new Error(`larger than ${limit} bytes`);
    const buf = Buffer.alloc(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    fs.closeSync(fd);
  }
}

/** outputError maps an errno to DISK_FULL or OUTPUT with a clear message; RtevErrors pass through. */
export function outputError(err: unknown, message: string): RtevError {
  if (err instanceof RtevError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new RtevError('DISK_FULL', `${message}: the output device is full`, { cause: err, hint: 'free space or choose another --out directory; sealed chunks are intact and the next run records the unsealed tail' });
  }
  if (code === 'ELOOP') return new RtevError('OUTPUT', `${message}: it is a symlink, which rtev refuses to follow`, { cause: err });
  if (code === 'EPIPE') return new RtevError('OUTPUT_CLOSED', `${message}: the reader closed the pipe`, { cause: err });
  return new RtevError('OUTPUT', message, { cause: err });
}

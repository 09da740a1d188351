import * as fs from 'node:fs';
import { promises as fsp } from 'node:fs';
import type { ByteSource } from '../../symbolize/host';
import { DEFAULT_PACKAGE_LIMITS, MalformedError, TooLargeError, type PackageLimits } from '../limits';

export type RootKind = 'host' | 'proc-root' | 'image-layers';

/**
 * RootFs is a file tree seen from inside: the host's `/`, a process's root (a container's
 * mount namespace) or an image's layers in containers-storage. Paths are absolute inside the
 * root. Symlinks are followed inside the root, never out of it: a container's
 * `/var/lib/dpkg/status -> /etc/shadow` reads the container's /etc/shadow, not the host's.
 * (Between the check and the read a racing container could still swap a component; what is
 * read is then only ever parsed as a package database, and bounded.)
 */
export interface RootFs {
  readonly kind: RootKind;
  /** a stable key for caches: two RootFs with the same key show the same files */
  readonly key: string;
  /** canonical path of `p` inside the root, symlinks followed; undefined when absent */
  resolve(p: string): Promise<string | undefined>;
  /** lstat of a canonical path; undefined when absent */
  lstat(p: string): Promise<fs.Stats | undefined>;
  /** bytes of the file at `p` (resolved), undefined when absent; TooLargeError past `max` */
  readFile(p: string, max: number): Promise<Buffer | undefined>;
  /** names in directory `p` (resolved), undefined when absent; at most limits.maxDirEntries */
  readdir(p: string): Promise<string[] | undefined>;
  /** random access to a regular file (ELF, jar); the caller closes it */
  open(p: string): Promise<ByteSource | undefined>;
  /**
   * readFileInSync reads the regular file `name` (one component, no `/`) of `dir`, a path this
   * root's resolve() returned, without resolving the directory again: for many files of one
   * directory (dpkg's info/*.list: 774 files here, 0.5 CPU s through readFile, 27 ms this way;
   * docs/benchmarks.md, "Session 3"). Undefined when absent or not a regular file (a symlink
   * included); TooLargeError past `max`. Roots that cannot do it leave it out.
   */
  readFileInSync?(dir: string, name: string, max: number): Buffer | undefined;
  /**
   * statInSync: lstat (symlinks not followed) of `name` in `dir`, a path resolve() returned, with
   * nanosecond times; undefined when absent. For the dpkg cache's key (src/packages/dpkg-cache.ts).
   */
  statInSync?(dir: string, name: string): fs.BigIntStats | undefined;
  close(): void;
}

/** directory entries read per thread-pool job (DirRoot.readdir) */
const READDIR_BATCH = 1024;

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG';
}

async function lstatOrUndef(hostPath: string): Promise<fs.Stats | undefined> {
  try {
    return await fsp.lstat(hostPath);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

function realpathOrUndef(p: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => fs.realpath.native(p, (err, out) => {
    if (err === null) resolve(out);
    else if (isMissing(err)) resolve(undefined);
    else reject(err);
  }));
}

/**
 * resolveConfined walks `p` component by component with `lstatIn`, following symlinks
 * relative to the root (absolute targets restart at the root, `..` stops at it).
 */
export async function resolveConfined(
  p: string,
  lstatIn: (inside: string) => Promise<fs.Stats | undefined>,
  readlinkIn: (inside: string) => Promise<string>,
  maxSymlinks: number,
): Promise<string | undefined> {
  if (!p.startsWith('/')) return undefined;
  let todo = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let hops = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '.') continue;
    if (c === '..') {
      done.pop();
      continue;
    }
    const cand = '/' + [...done, c].join('/');
    const st = await lstatIn(cand);
    if (st === undefined) return undefined;
    if (st.isSymbolicLink()) {
      if (++hops > maxSymlinks) return undefined;
      const target = await readlinkIn(cand);
      const parts = target.split('/').filter((x) => x !== '' && x !== '.');
      if (target.startsWith('/')) done.length = 0;
      todo = [...parts, ...todo];
      continue;
    }
    if (todo.length > 0 && !st.isDirectory()) return undefined;
    done.push(c);
  }
  return '/' + done.join('/');
}

/** fdSource is a ByteSource over an open file descriptor (closed by close()). */
function fdSource(fd: number, size: number, label: string): ByteSource {
  let open = true;
  return {
    size,
    read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        throw new TooLargeError(`read ${length} bytes at ${offset} past end of ${label} (${size} bytes)`);
      }
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n <= 0) throw new TooLargeError(`short read of ${label}`);
        done += n;
      }
      return out;
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

async function readBounded(hostPath: string, max: number): Promise<Buffer> {
  const fh = await fsp.open(hostPath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new MalformedError(`${hostPath} is not a regular file`);
    if (st.size > max) throw new TooLargeError(`${hostPath} has ${st.size} bytes (limit ${max})`);
    const buf = Buffer.allocUnsafe(Math.min(max + 1, st.size + 1));
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead <= 0) break;
      got += bytesRead;
      if (got >= buf.length) break;
    }
    if (got > max) throw new TooLargeError(`${hostPath} grew past ${max} bytes`);
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/** DirRoot is a tree under a host directory (`/`, a fixture, `/proc/self/fd/N` of a process root). */
export class DirRoot implements RootFs {
  readonly kind: RootKind;
  readonly key: string;
  readonly #prefix: string;
  readonly #limits: PackageLimits;
  readonly #onClose: (() => void) | undefined;

  constructor(kind: RootKind, key: string, prefix: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS, onClose?: () => void) {
    this.kind = kind;
    this.key = key;
    this.#prefix = prefix === '/' ? '' : prefix.replace(/\/+$/, '');
    this.#limits = limits;
    this.#onClose = onClose;
  }

  #host(inside: string): string {
    return this.#prefix + inside;
  }

  async resolve(p: string): Promise<string | undefined> {
    // the host's own `/`: confinement to the root is the kernel's, so realpath(3) gives the same
    // answer ('..' stops at /, absolute targets restart at /) in one thread-pool job instead of
    // an lstat per component (each a pool round trip: ≈ 400 µs of CPU per distinct file of a
    // mixed workload here, docs/benchmarks.md "Session 5 (h27)"); the kernel's own bound on
    // symlinks (40) applies instead of limits.maxSymlinks
    // (trailing slashes dropped first: the walk ignores empty components, "/etc/passwd/" is the file)
    if (this.#prefix === '') return p.startsWith('/') ? realpathOrUndef(p.length > 1 ? p.replace(/\/+$/, '') || '/' : p) : undefined;
    return resolveConfined(p, (i) => lstatOrUndef(this.#host(i)), (i) => fsp.readlink(this.#host(i)), this.#limits.maxSymlinks);
  }

  lstat(p: string): Promise<fs.Stats | undefined> {
    return lstatOrUndef(this.#host(p));
  }

  async readFile(p: string, max: number): Promise<Buffer | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    try {
      return await readBounded(this.#host(r), max);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  statInSync(dir: string, name: string): fs.BigIntStats | undefined {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || !dir.startsWith('/')) return undefined;
    try {
      return fs.lstatSync(this.#host(dir === '/' ? `/${name}` : `${dir}/${name}`), { bigint: true });
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  readFileInSync(dir: string, name: string, max: number): Buffer | undefined {
    if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || !dir.startsWith('/')) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(this.#host(dir === '/' ? `/${name}` : `${dir}/${name}`), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) return undefined;
      if (st.size > max) throw new TooLargeError(`${dir}/${name} has ${st.size} bytes (limit ${max})`);
      const buf = Buffer.allocUnsafe(Math.min(max + 1, st.size + 1));
      let got = 0;
      for (;;) {
        const n = fs.readSync(fd, buf, got, buf.length - got, got);
        if (n <= 0) break;
        got += n;
        if (got >= buf.length) break;
      }
      if (got > max) throw new TooLargeError(`${dir}/${name} grew past ${max} bytes`);
      return buf.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  }

  async readdir(p: string): Promise<string[] | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    let dir: fs.Dir;
    try {
      // entries are read 1024 at a time, not fs.Dir's default 32: each batch is one thread-pool
      // round trip, i.e. one turn of the event loop, which an open storm stretches to ~0.5 s here;
      // dpkg's info directory (3,000 names) then took 95 turns and the package databases were
      // still not read after 17 s (docs/reliability.md, bug 5)
      dir = await fsp.opendir(this.#host(r), { bufferSize: READDIR_BATCH });
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    const out: string[] = [];
    try {
      for await (const e of dir) {
        if (out.length >= this.#limits.maxDirEntries) throw new TooLargeError(`${p} has more than ${this.#limits.maxDirEntries} entries`);
        out.push(e.name);
      }
    } finally {
      await dir.close().catch(() => {});
    }
    return out;
  }

  async open(p: string): Promise<ByteSource | undefined> {
    const r = await this.resolve(p);
    if (r === undefined) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(this.#host(r), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile()) {
      fs.closeSync(fd);
      return undefined;
    }
    return fdSource(fd, st.size, r);
  }

  close(): void {
    this.#onClose?.();
  }
}

/** hostRoot is the collector's own `/`. */
export function hostRoot(limits?: PackageLimits): RootFs {
  return new DirRoot('host', 'host', '/', limits);
}

/**
 * procRoot pins the root directory of a live process (its mount namespace's view) with an
 * open directory descriptor, so its files stay readable after the process exits. Returns
 * undefined when the process is gone, or when its root is the collector's own (use the host
 * root then). The descriptor is released by close().
 */
export function procRoot(pid: number, limits?: PackageLimits): RootFs | undefined {
  let fd: number;
  try {
    fd = fs.openSync(`/proc/${pid}/root`, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch {
    return undefined;
  }
  try {
    const a = fs.fstatSync(fd);
    const b = fs.statSync('/');
    if (a.dev === b.dev && a.ino === b.ino) {
      fs.closeSync(fd);
      return undefined;
    }
    return new DirRoot('proc-root', `proc:${a.dev}:${a.ino}:${pid}`, `/proc/self/fd/${fd}`, limits, () => fs.closeSync(fd));
  } catch {
    fs.closeSync(fd);
    return undefined;
  }
}

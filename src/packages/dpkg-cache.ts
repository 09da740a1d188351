import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DpkgCounters, DpkgPackage, DpkgSnapshot } from './dpkg';

/**
 * DpkgCache keeps the host's finished dpkg index (src/packages/dpkg.ts: the packages and the
 * owned-path table's arrays) in one file, so a collector start reads one file instead of parsing
 * dpkg's status and its 774 info/*.list files (0.28 CPU s here: docs/benchmarks.md, "Session 4
 * (h22)"). The file is used only when its key matches the database as it is now:
 *
 * - the key is a SHA-256 over the status file's and the info directory's (dev, inode, size,
 *   mtime ns, ctime ns), every .list file's name and the same five numbers, the limits, and the
 *   compiled code of the index (dpkg.js, path-table.js and this file): dpkg replaces a list by a
 *   rename (a new inode), any other write changes its ctime, a new or removed list changes the
 *   names, a new rtev build changes the code hash. A status or list that is not a regular file
 *   (a symlink) means no cache for that run;
 * - the file ends with the SHA-256 of everything before it, and every table entry and slot is
 *   bounds-checked on load (PathTable.fromParts): a torn, truncated or edited file is rejected
 *   (counted) and the database is read as without a cache, then the file is written again;
 * - the directory (RTEV_CACHE_DIR, default /var/cache/rtev, created 0700) and the file must be
 *   owned by the collector's user and writable by nobody else, else the cache is not used.
 * - the file also keeps the .list names with the info directory's stat numbers (listNames): while
 *   the directory's are the same (no entry was added, removed or renamed in it: each such change
 *   sets its ctime), a run takes the names from there and only stats the lists, instead of reading
 *   the directory's ~3,000 entries (30-35 ms of CPU through the root's async readdir; docs/benchmarks.md,
 *   "Session 6 (h33)"). The names are kept only when the directory had not changed for `settledMs`
 *   before it was read, so a change in the same clock tick as the read cannot leave its ctime as it was.
 *
 * Only the host's database is cached (a container's is read through its root each time). Writing
 * is best effort: a read-only or foreign directory leaves the collector as it was without a cache.
 */
export class DpkgCache {
  readonly dir: string;
  readonly c: DpkgCacheCounters = { hits: 0, misses: 0, rejected: 0, written: 0, writeFailures: 0, refusedDir: 0, namesFromCache: 0 };
  /** the info directory must have been unchanged this long before it was read for its names to be kept (ms) */
  readonly settledMs: number;
  #lastRejection: string | undefined;
  /** the file listNames read and checked, for the load that follows */
  #pending: { file: CacheFile } | { err: unknown } | undefined;

  /** the wall clock (ms) the info directory's ctime is compared with (tests move it on) */
  readonly now: () => number;

  constructor(dir: string, options: { settledMs?: number; now?: () => number } = {}) {
    this.dir = dir;
    this.settledMs = options.settledMs ?? DEFAULT_SETTLED_MS;
    this.now = options.now ?? Date.now;
  }

  /** fromEnv: the cache of RTEV_CACHE_DIR (default /var/cache/rtev); RTEV_CACHE_DIR=off (or empty) turns it off */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): DpkgCache | undefined {
    const dir = env['RTEV_CACHE_DIR'] ?? DEFAULT_CACHE_DIR;
    if (dir === '' || dir === 'off') return undefined;
    return new DpkgCache(path.resolve(dir));
  }

  /** why the last load was rejected (tests, --verbose) */
  get lastRejection(): string | undefined {
    return this.#lastRejection;
  }

  get file(): string {
    return path.join(this.dir, CACHE_FILE);
  }

  /**
   * listNames: the sorted .list names the file keeps for the info directory whose statKey is `info`
   * now, or undefined (no file, none kept, or the directory changed since). The file read here is
   * the one the next load() decodes.
   */
  listNames(info: string): string[] | undefined {
    const r = this.#read();
    this.#pending = r;
    if (!('file' in r)) return undefined;
    const names = r.file.header.names;
    if (names === undefined || names.info !== info) return undefined;
    this.c.namesFromCache++;
    return names.lists;
  }

  /** load: the snapshot stored under `key`, or undefined (absent, another key, or rejected: counted) */
  load(key: string): (DpkgSnapshot & { extra: DpkgCacheExtra }) | undefined {
    const r = this.#pending ?? this.#read();
    this.#pending = undefined;
    if ('err' in r) {
      if (r.err === NO_DIR) return undefined;
      if ((r.err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.c.misses++;
        return undefined;
      }
      return this.#reject(r.err);
    }
    try {
      const snap = decode(r.file, key);
      if (snap === 'other-key') {
        this.c.misses++;
        return undefined;
      }
      this.c.hits++;
      return snap;
    } catch (err) {
      return this.#reject(err);
    }
  }

  /** the file, checksummed and its header parsed and checked; or why not */
  #read(): { file: CacheFile } | { err: unknown } {
    if (!this.#dirUsable(false)) return { err: NO_DIR };
    try {
      return { file: parseFile(readOwnFile(this.file)) };
    } catch (err) {
      return { err };
    }
  }

  /**
   * store writes the snapshot under `key` (a temporary file renamed over the old one), with the
   * .list names it was keyed by when `names` is given; never throws
   */
  store(key: string, snap: DpkgSnapshot, extra: DpkgCacheExtra, names?: DpkgListNames): void {
    this.#pending = undefined;
    try {
      if (!this.#dirUsable(true)) return;
      const parts = encode(key, snap, extra, names);
      const tmp = path.join(this.dir, `.${CACHE_FILE}.${process.pid}.tmp`);
      const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
      try {
        for (const p of parts) {
          let off = 0;
          while (off < p.length) off += fs.writeSync(fd, p, off, p.length - off);
        }
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
      this.c.written++;
      // the previous format's file, left by an older rtev
      fs.rmSync(path.join(this.dir, OLD_CACHE_FILE), { force: true });
    } catch {
      this.c.writeFailures++;
      try {
        fs.unlinkSync(path.join(this.dir, `.${CACHE_FILE}.${process.pid}.tmp`));
      } catch {
        // not there
      }
    }
  }

  #reject(err: unknown): undefined {
    this.c.rejected++;
    this.#lastRejection = err instanceof Error ? err.message : String(err);
    return undefined;
  }

  /** the directory is ours and closed to others (created 0700 when `create` and absent) */
  #dirUsable(create: boolean): boolean {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(this.dir);
    } catch (err) {
      if (!create || (err as NodeJS.ErrnoException).code !== 'ENOENT') return false;
      try {
        fs.mkdirSync(this.dir, { mode: 0o700 });
        st = fs.lstatSync(this.dir);
      } catch {
        return false;
      }
    }
    if (!st.isDirectory() || !ownedAndClosed(st)) {
      this.c.refusedDir++;
      return false;
    }
    return true;
  }
}

export interface DpkgCacheCounters {
  hits: number;
  misses: number;
  /** files that failed a check (checksum, bounds, owner or mode): the database was read instead */
  rejected: number;
  written: number;
  writeFailures: number;
  /** the directory is not ours, or others can write to it: not used */
  refusedDir: number;
  /** loads that took the .list names from the file instead of reading the info directory */
  namesFromCache: number;
}

/** the .list names of a database's info directory, with that directory's statKey when they were read */
export interface DpkgListNames {
  info: string;
  lists: string[];
}

/** what the resolver keeps beside the index (ResolverCounters.dpkg) */
export interface DpkgCacheExtra {
  unreadableLists: number;
}

export const DEFAULT_CACHE_DIR = '/var/cache/rtev';
/** see DpkgCache: longer than any clock tick the directory's ctime is taken from */
const DEFAULT_SETTLED_MS = 2000;
const CACHE_FILE = 'dpkg-host.v2.bin';
const OLD_CACHE_FILE = 'dpkg-host.v1.bin';
const FORMAT = 2;
const NO_DIR = Symbol('cache directory not usable');
const MAGIC = Buffer.from('RTEVDPK1', 'latin1');
/** a host with 4M owned paths (the limit) stays below it */
const MAX_CACHE_BYTES = 1 << 30;
const MAX_HEADER_BYTES = 64 << 20;

function ownedAndClosed(st: fs.Stats): boolean {
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : 0;
  return st.uid === euid && (st.mode & 0o022) === 0;
}

/** readOwnFile reads a regular file (no symlink) owned by us and writable by nobody else */
function readOwnFile(file: string): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || !ownedAndClosed(st)) throw new Error('cache file not a regular file of ours, or writable by others');
    if (st.size > MAX_CACHE_BYTES) throw new Error(`cache file of ${st.size} bytes`);
    const buf = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < buf.length) {
      const n = fs.readSync(fd, buf, got, buf.length - got, got);
      if (n <= 0) break;
      got += n;
    }
    if (got !== buf.length) throw new Error('cache file shorter than its size');
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

interface Header {
  format: number;
  key: string;
  names?: DpkgListNames;
  packages: DpkgPackage[];
  counters: DpkgCounters;
  extra: DpkgCacheExtra;
  entries: number;
  arenaBytes: number;
  slots: number;
}

const pad8 = (n: number): number => (n + 7) & ~7;

/** encode: magic, u32 header length, header JSON, then (8-aligned) arena, start, len, value, hash, slots, then SHA-256 of all before */
function encode(key: string, snap: DpkgSnapshot, extra: DpkgCacheExtra, names: DpkgListNames | undefined): Buffer[] {
  const t = snap.table;
  const header: Header = {
    format: FORMAT, key, ...(names !== undefined ? { names } : {}), packages: snap.packages, counters: snap.counters, extra,
    entries: t.start.length, arenaBytes: t.arena.length, slots: t.slots.length,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const head = Buffer.alloc(pad8(12 + json.length));
  MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, 8);
  json.copy(head, 12);
  const arrays = [t.start, t.len, t.value, t.hash, t.slots].map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  const body = [head, t.arena, Buffer.alloc(pad8(t.arena.length) - t.arena.length), ...arrays];
  const h = createHash('sha256');
  for (const b of body) h.update(b);
  return [...body, h.digest()];
}

/** a cache file whose checksum matched, with its header parsed and checked */
interface CacheFile {
  buf: Buffer;
  header: Header;
  jsonLen: number;
}

function parseFile(buf: Buffer): CacheFile {
  if (buf.length < 12 + 32 || !buf.subarray(0, 8).equals(MAGIC)) throw new Error('not an rtev dpkg cache file');
  const digest = createHash('sha256').update(buf.subarray(0, buf.length - 32)).digest();
  if (!digest.equals(buf.subarray(buf.length - 32))) throw new Error('cache file checksum differs');
  const jsonLen = buf.readUInt32LE(8);
  if (jsonLen > MAX_HEADER_BYTES || 12 + jsonLen > buf.length - 32) throw new Error('cache header out of bounds');
  const header = JSON.parse(buf.toString('utf8', 12, 12 + jsonLen)) as Header;
  if (header === null || typeof header !== 'object' || header.format !== FORMAT || typeof header.key !== 'string') throw new Error('cache format differs');
  checkHeader(header);
  return { buf, header, jsonLen };
}

function decode(file: CacheFile, key: string): (DpkgSnapshot & { extra: DpkgCacheExtra }) | 'other-key' {
  const { buf, header, jsonLen } = file;
  if (header.key !== key) return 'other-key';
  const { entries: n, arenaBytes, slots } = header;
  let off = pad8(12 + jsonLen);
  const need = off + pad8(arenaBytes) + 4 * 4 * n + 4 * slots + 32;
  if (need !== buf.length) throw new Error('cache file size differs from its header');
  const arena = buf.subarray(off, off + arenaBytes);
  off += pad8(arenaBytes);
  const u32 = (count: number): Uint32Array => {
    // buf comes from Buffer.allocUnsafe of > 4 KiB: its own ArrayBuffer at offset 0, so `off` (a multiple of 8) is aligned
    const a = new Uint32Array(buf.buffer, buf.byteOffset + off, count);
    off += 4 * count;
    return a;
  };
  const start = u32(n), len = u32(n), value = u32(n), hash = u32(n), slotArray = u32(slots);
  return { packages: header.packages, counters: header.counters, extra: header.extra, table: { arena, start, len, value, hash, slots: slotArray } };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isText = (v: unknown, max: number): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

/** checkHeader: the header's fields have the types and bounds the index needs (a file of ours, checked anyway) */
function checkHeader(h: Header): void {
  if (!isCount(h.entries) || !isCount(h.arenaBytes) || !isCount(h.slots) || h.entries > 4_000_000 || h.arenaBytes > MAX_CACHE_BYTES || h.slots > 1 << 24) {
    throw new Error('cache header sizes out of bounds');
  }
  if (!Array.isArray(h.packages) || h.packages.length > 100_000) throw new Error('cache header packages');
  for (const p of h.packages) {
    if (p === null || typeof p !== 'object' || !isText(p.name, 256) || !isText(p.version, 256)) throw new Error('cache header package');
    if (p.arch !== undefined && !isText(p.arch, 64)) throw new Error('cache header package arch');
    if (p.multiArch !== undefined && !isText(p.multiArch, 16)) throw new Error('cache header package multi-arch');
    if (p.source !== undefined && (p.source === null || !isText(p.source.name, 256) || (p.source.version !== undefined && !isText(p.source.version, 256)))) {
      throw new Error('cache header package source');
    }
  }
  const c = h.counters as unknown as Record<string, unknown> | null;
  for (const k of ['packages', 'lists', 'ownedPaths', 'malformedStanzas', 'skippedListLines', 'orphanLists']) if (c === null || !isCount(c[k])) throw new Error(`cache header counter ${k}`);
  if (h.extra === null || typeof h.extra !== 'object' || !isCount(h.extra.unreadableLists)) throw new Error('cache header extra');
  if (h.names !== undefined) {
    const n = h.names as unknown as { info?: unknown; lists?: unknown } | null;
    if (n === null || typeof n !== 'object' || !isText(n.info, 256) || !Array.isArray(n.lists) || n.lists.length > 1 << 20) throw new Error('cache header names');
    for (const l of n.lists) if (!isText(l, 255) || !l.endsWith('.list') || l.includes('/') || l.includes('\0')) throw new Error('cache header list name');
  }
}

/** statKey: the five numbers of a file's identity and last change, as the cache key takes them */
export function statKey(st: fs.BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

let codeHash: string | undefined;

/**
 * the compiled index code (dpkg.js, path-table.js, this file; or, run from the CLI bundle
 * dist/bundle/main.js, that whole file, which holds them): a new build does not read an old build's file
 */
export function indexCodeHash(): string {
  if (codeHash !== undefined) return codeHash;
  const h = createHash('sha256');
  const files = path.basename(__filename) === 'dpkg-cache.js' ? ['dpkg.js', 'path-table.js', 'dpkg-cache.js'].map((f) => path.join(__dirname, f)) : [__filename];
  for (const f of files) h.update(fs.readFileSync(f));
  return (codeHash = h.digest('hex'));
}

/** dpkgCacheKey: the key of a database from its parts' stat numbers (the resolver gathers them) */
export function dpkgCacheKey(parts: { limits: unknown; rootKey: string; dpkgDir: string; status: string; infoDir: string; info: string; lists: [string, string][] }): string {
  return createHash('sha256').update(JSON.stringify([1, indexCodeHash(), parts])).digest('hex');
}

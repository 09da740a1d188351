import * as fs from 'node:fs';
import * as path from 'node:path';
import { ElfFile, STT_FUNC, STT_GNU_IFUNC, type ElfSymbol } from '../../symbolize/elf';
import { nodeHost } from '../../symbolize/host';
import { parseMaps, type Mapping } from '../../symbolize/proc';

/** What a mapped file is to us. */
export type LibraryKind = 'libc' | 'libssl' | 'libgnutls' | 'exe' | 'go';

/**
 * One probed function: the symbol; in session mode the program shared by the library's functions
 * and the attach cookie that tells them apart (enum net_op / enum ssl_fn of bpf/events.h); in
 * classic mode its entry program and the shared return program.
 */
export interface ProbeTarget {
  symbol: string;
  session: string;
  cookie: bigint;
  entry: string;
  ret: string;
  /** not attached when this symbol was found too (it calls that one: one call, one record) */
  unless?: string;
}

export const LIBC_TARGETS: ProbeTarget[] = [
  { symbol: 'connect', session: 'rtev_libc_session', cookie: 1n, entry: 'rtev_libc_connect', ret: 'rtev_libc_net_ret' },
  { symbol: 'accept', session: 'rtev_libc_session', cookie: 2n, entry: 'rtev_libc_accept', ret: 'rtev_libc_net_ret' },
  { symbol: 'accept4', session: 'rtev_libc_session', cookie: 3n, entry: 'rtev_libc_accept4', ret: 'rtev_libc_net_ret' },
];

export const SSL_TARGETS: ProbeTarget[] = [
  { symbol: 'SSL_read', session: 'rtev_ssl_session', cookie: 1n, entry: 'rtev_ssl_read', ret: 'rtev_ssl_ret' },
  { symbol: 'SSL_write', session: 'rtev_ssl_session', cookie: 2n, entry: 'rtev_ssl_write', ret: 'rtev_ssl_ret' },
  { symbol: 'SSL_read_ex', session: 'rtev_ssl_session', cookie: 3n, entry: 'rtev_ssl_read_ex', ret: 'rtev_ssl_ret' },
  { symbol: 'SSL_write_ex', session: 'rtev_ssl_session', cookie: 4n, entry: 'rtev_ssl_write_ex', ret: 'rtev_ssl_ret' },
];

/**
 * GnuTLS: gnutls_record_send jumps to gnutls_record_send2 through the PLT (3.6.3+), so only send2
 * is probed where it exists; recv and recv_seq each call the internal receive directly.
 * Classic mode: one entry program for all, the op as attach cookie.
 */
export const GNUTLS_TARGETS: ProbeTarget[] = [
  { symbol: 'gnutls_record_recv', session: 'rtev_ssl_session', cookie: 5n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret' },
  { symbol: 'gnutls_record_send', session: 'rtev_ssl_session', cookie: 6n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret', unless: 'gnutls_record_send2' },
  { symbol: 'gnutls_record_recv_seq', session: 'rtev_ssl_session', cookie: 7n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret' },
  { symbol: 'gnutls_record_send2', session: 'rtev_ssl_session', cookie: 8n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret' },
];

const LIBC_NAME = /^(libc\.so(\.\d+)?|libc-[\d.]+\.so|ld-musl-[\w]+\.so\.1|libc\.musl-[\w]+\.so\.1)$/;
const LIBSSL_NAME = /^libssl\.so(\.[\d.]+)?$/;
const LIBGNUTLS_NAME = /^libgnutls\.so(\.[\d.]+)?$/;

/** classify names a mapped file by its basename; `exe` is decided by the caller. */
export function classify(file: string): LibraryKind | undefined {
  const base = path.posix.basename(file);
  if (LIBC_NAME.test(base)) return 'libc';
  if (LIBSSL_NAME.test(base)) return 'libssl';
  if (LIBGNUTLS_NAME.test(base)) return 'libgnutls';
  return undefined;
}

/** fileKey is the identity uprobes attach to: the real (device, inode) of the file. */
export function fileKey(major: number, minor: number, ino: bigint): string {
  return `${major}:${minor}:${ino}`;
}

export function keyOfMapping(m: Mapping): string {
  const [maj, min] = m.dev.split(':');
  return fileKey(parseInt(maj!, 16), parseInt(min!, 16), m.inode);
}

export function keyOfStat(st: fs.BigIntStats): string {
  const dev = st.dev;
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return fileKey(major, minor, st.ino);
}

/** A candidate file seen in some process's maps. */
export interface Candidate {
  key: string;
  kind: LibraryKind;
  /** the path as the process sees it */
  path: string;
}

/**
 * candidatesOf reads /proc/PID/maps and returns the executable file mappings that may hold
 * probe targets: libc, libssl, and the main executable (a statically linked OpenSSL).
 * Returns undefined when the maps cannot be read (the process exited, or no permission).
 */
export function candidatesOf(pid: number, procRoot = '/proc'): Candidate[] | undefined {
  let text: string;
  let exe: string | undefined;
  try {
    text = nodeHost.readText(`${procRoot}/${pid}/maps`, 4 << 20).text;
  } catch {
    return undefined;
  }
  try {
    exe = fs.readlinkSync(`${procRoot}/${pid}/exe`).replace(/ \(deleted\)$/, '');
  } catch {
    exe = undefined;
  }
  const out = new Map<string, Candidate>();
  for (const m of parseMaps(text).mappings) {
    if (!m.perms.includes('x') || m.inode === 0n || !m.path.startsWith('/') || m.deleted) continue;
    const kind = classify(m.path) ?? (m.path === exe ? 'exe' : undefined);
    if (kind === undefined) continue;
    const key = keyOfMapping(m);
    if (!out.has(key)) out.set(key, { key, kind, path: m.path });
  }
  return [...out.values()];
}

/** Offsets of the targets found in a file, by symbol name. */
export type ResolvedTargets = Map<string, bigint>;

/**
 * resolveTargets finds the targets' file offsets in an ELF file: exported (.dynsym) symbols
 * first, then .symtab for binaries that are not stripped.
 */
export function resolveTargets(file: string, targets: ProbeTarget[]): ResolvedTargets {
  const out: ResolvedTargets = new Map();
  const src = nodeHost.open(file);
  try {
    const elf = ElfFile.parse(src);
    for (const table of ['.dynsym', '.symtab'] as const) {
      const wanted = new Set(targets.map((t) => t.symbol).filter((s) => !out.has(s)));
      if (wanted.size === 0) break;
      const best = new Map<string, ElfSymbol>();
      for (const sym of elf.symbols(table)) {
        if (!wanted.has(sym.name) || (sym.type !== STT_FUNC && sym.type !== STT_GNU_IFUNC) || sym.value === 0n) continue;
        const prev = best.get(sym.name);
        if (prev === undefined || (prev.hidden === true && sym.hidden !== true)) best.set(sym.name, sym);
      }
      for (const [name, sym] of best) {
        const off = elf.vaddrToFileOffset(sym.value);
        if (off !== undefined) out.set(name, off);
      }
    }
  } finally {
    src.close();
  }
  return out;
}

/** Host library locations attached at start even when no running process maps them yet. */
export const HOST_LIBRARIES = [
  '/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6',
  '/lib/aarch64-linux-gnu/libc.so.6', '/usr/lib/aarch64-linux-gnu/libc.so.6',
  '/lib64/libc.so.6', '/usr/lib64/libc.so.6',
  '/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib/x86_64-linux-gnu/libssl.so.3',
  '/lib/x86_64-linux-gnu/libssl.so.1.1', '/usr/lib/x86_64-linux-gnu/libssl.so.1.1',
  '/lib/aarch64-linux-gnu/libssl.so.3', '/usr/lib/aarch64-linux-gnu/libssl.so.3',
  '/lib64/libssl.so.3', '/usr/lib64/libssl.so.3', '/lib64/libssl.so.1.1', '/usr/lib64/libssl.so.1.1',
  '/lib/x86_64-linux-gnu/libgnutls.so.30', '/usr/lib/x86_64-linux-gnu/libgnutls.so.30',
  '/lib/aarch64-linux-gnu/libgnutls.so.30', '/usr/lib/aarch64-linux-gnu/libgnutls.so.30',
  '/lib64/libgnutls.so.30', '/usr/lib64/libgnutls.so.30',
];

/** targetsFound keeps the targets whose symbol was found, less those another found one covers. */
export function targetsFound(targets: ProbeTarget[], offsets: ResolvedTargets): ProbeTarget[] {
  return targets.filter((t) => offsets.has(t.symbol) && (t.unless === undefined || !offsets.has(t.unless)));
}

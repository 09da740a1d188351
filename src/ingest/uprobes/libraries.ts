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
  // length hiding and zero-copy receive: their own record layer calls, never through the four above
  { symbol: 'gnutls_record_send_range', session: 'rtev_ssl_session', cookie: 11n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret' },
  { symbol: 'gnutls_record_recv_packet', session: 'rtev_ssl_session', cookie: 12n, entry: 'rtev_tls_enter', ret: 'rtev_ssl_ret' },
];

const LIBC_NAME = /^(libc\.so(\.\d+)?|libc-[\d.]+\.so|ld-musl-[\w]+\.so\.1|libc\.musl-[\w]+\.so\.1)$/;
const LIBSSL_NAME = /^libssl\.so(\.[\d.]+)?$/;
const LIBGNUTLS_NAME = /^libgnutls\.so(\.[\d.]+)?$/;

/**
 * TLS libraries rtev has no probes for, by basename: a process that maps one may do TLS that no
 * ssl_op record shows (docs/probes-network.md, "Counted coverage").
 */
const UNCOVERED_TLS: [RegExp, string][] = [
  [/^libnss3\.so$/, 'nss'], [/^libssl3\.so$/, 'nss'], // NSS (Firefox, Thunderbird, some curl builds)
  [/^librustls[\w.-]*\.so(\.[\d.]+)?$/, 'rustls'],
  [/^libwolfssl\.so(\.[\d.]+)?$/, 'wolfssl'],
  [/^libmbedtls\.so(\.[\d.]+)?$/, 'mbedtls'],
  [/^lib(boringssl|bssl)[\w.-]*\.so(\.[\d.]+)?$/, 'boringssl'],
  [/^libbearssl\.so(\.[\d.]+)?$/, 'bearssl'],
  [/^libs2n\.so(\.[\d.]+)?$/, 's2n'],
  [/^libjvm\.so$/, 'java'], // JSSE is Java code: no native TLS entry points
];

/** uncoveredTlsKind names the TLS library a mapped file is, when rtev does not probe that library. */
export function uncoveredTlsKind(file: string): string | undefined {
  const base = path.posix.basename(file);
  for (const [re, kind] of UNCOVERED_TLS) if (re.test(base)) return kind;
  return undefined;
}

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

/** What a process's maps say: the files to probe, and the TLS libraries rtev does not cover. */
export interface ProcessMaps {
  candidates: Candidate[];
  uncoveredTls: { key: string; path: string; kind: string }[];
}

/**
 * candidatesOf reads /proc/PID/maps and returns the executable file mappings that may hold
 * probe targets: libc, libssl, libgnutls, and the main executable (a statically linked OpenSSL,
 * a Go program), plus the mapped TLS libraries rtev has no probes for. Returns undefined when the
 * maps cannot be read (the process exited, or no permission).
 */
export function candidatesOf(pid: number, procRoot = '/proc'): ProcessMaps | undefined {
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
  const uncovered = new Map<string, { key: string; path: string; kind: string }>();
  for (const m of parseMaps(text).mappings) {
    if (!m.perms.includes('x') || m.inode === 0n || !m.path.startsWith('/') || m.deleted) continue;
    const kind = classify(m.path) ?? (m.path === exe ? 'exe' : undefined);
    const key = keyOfMapping(m);
    if (kind === undefined) {
      const tls = uncoveredTlsKind(m.path);
      if (tls !== undefined && !uncovered.has(key)) uncovered.set(key, { key, path: m.path, kind: tls });
      continue;
    }
    if (!out.has(key)) out.set(key, { key, kind, path: m.path });
  }
  return { candidates: [...out.values()], uncoveredTls: [...uncovered.values()] };
}

/** bytes of an executable's read-only data searched for a statically linked TLS library's marks */
const MAX_RODATA_SCAN = 64 << 20;
const STATIC_TLS_MARKS: [Buffer, string][] = [
  [Buffer.from('rustls', 'latin1'), 'rustls'], // crate paths in panic locations survive stripping
  [Buffer.from('BoringSSL', 'latin1'), 'boringssl'],
];

/**
 * staticTlsOf looks for a TLS library linked into an executable that exports no probe target:
 * rustls and BoringSSL leave their names in .rodata even when stripped. Undefined: none seen.
 */
export function staticTlsOf(file: string): string | undefined {
  const src = nodeHost.open(file);
  try {
    const elf = ElfFile.parse(src);
    const ro = elf.section('.rodata');
    if (ro === undefined || ro.size === 0 || ro.size > MAX_RODATA_SCAN) return undefined;
    const data = elf.sectionData(ro);
    for (const [mark, kind] of STATIC_TLS_MARKS) if (data.indexOf(mark) >= 0) return kind;
    return undefined;
  } finally {
    src.close();
  }
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

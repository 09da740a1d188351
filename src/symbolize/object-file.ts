import * as path from 'node:path/posix';
import * as zlib from 'node:zlib';
import { createHash } from 'node:crypto';
import { SymbolizeError } from './errors';
import { ElfFile, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC, STT_GNU_IFUNC, type ElfSegment, type ElfSymbol } from './elf';
import { bufferSource, type Host } from './host';
import { isGoBinary, readGoBuildInfo, readGoPclntab, type GoBuildInfo } from './go';
import { decompressXz } from './xz';
import { errorMessage } from '../errors';
import { lastAtOrBefore } from '../util/search';

/** SymbolSource says which table named a frame (reference §1 `symbol_source`). */
export type SymbolSource =
  | 'symtab' | 'buildid-debug' | 'debuglink' | 'minidebuginfo' | 'dynsym' | 'gopclntab' | 'perfmap' | 'none';

/** FuncSym is one function symbol of an object: vaddr range, raw name, where it came from. */
export interface FuncSym {
  start: bigint;
  size: bigint;
  /** raw linkage (or Go runtime) name, version suffix kept for dynsym (`SSL_read@@OPENSSL_3.0.0`). */
  name: string;
  source: SymbolSource;
  bind: number;
  /** go is true for functions listed in `.gopclntab`. */
  go: boolean;
}

/** ObjectInfo is everything loaded once per distinct file (dev, ino). */
export interface ObjectInfo {
  /** openPath is the path we opened (host view, e.g. /proc/PID/root/usr/lib/...). */
  openPath: string;
  dev: bigint;
  ino: bigint;
  size: number;
  buildId: string | undefined;
  goBuildId: string | undefined;
  isGo: boolean;
  goInfo: GoBuildInfo | undefined;
  segments: ElfSegment[];
  /** funcs is deduplicated and sorted by start; used for address lookup. */
  funcs: FuncSym[];
  /** all holds every name, aliases included; used for target resolution. */
  all: FuncSym[];
  /** debugFile is the separate debug file used, if any. */
  debugFile: string | undefined;
  /** primarySource is the best table found (`symtab`, `debuglink`, …, or `dynsym`). */
  primarySource: SymbolSource;
  warnings: string[];
}

export interface LoadOptions {
  host: Host;
  /** root prefixes absolute paths found inside the file (debug dirs); '' on the host. */
  root: string;
  /** debugDirs are global debug roots searched under `root` and on the host. */
  debugDirs: readonly string[];
  /** maxDebugInfoBytes caps a decompressed MiniDebugInfo object. */
  maxDebugInfoBytes: number;
}

const SOURCE_RANK: Record<SymbolSource, number> = {
  symtab: 0, 'buildid-debug': 1, debuglink: 2, minidebuginfo: 3, gopclntab: 4, dynsym: 5, perfmap: 6, none: 7,
};
const BIND_RANK = (b: number): number => (b === STB_GLOBAL ? 0 : b === STB_WEAK ? 1 : b === STB_LOCAL ? 2 : 3);

/** loadObject parses a file and gathers its function symbols through the fallback chain of reference §2.4. */
export function loadObject(openPath: string, displayPath: string, opts: LoadOptions): ObjectInfo {
  const st = opts.host.stat(openPath);
  const src = opts.host.open(openPath);
  try {
    const elf = ElfFile.parse(src);
    const info: ObjectInfo = {
      openPath, dev: st.dev, ino: st.ino, size: st.size, buildId: elf.buildId(), goBuildId: elf.goBuildId(),
      isGo: isGoBinary(elf), goInfo: undefined, segments: execFirst(elf.loadSegments()), funcs: [], all: [],
      debugFile: undefined, primarySource: 'none', warnings: [],
    };
    const sets: FuncSym[][] = [];
    const own = funcSyms(elf.symbols('.symtab'), 'symtab');
    if (own.length > 0) {
      sets.push(own);
      info.primarySource = 'symtab';
    } else {
      const found = fromDebugFiles(elf, displayPath, info, opts);
      if (found !== undefined) sets.push(found);
    }
    sets.push(funcSyms(elf.symbols('.dynsym'), 'dynsym'));
    if (info.primarySource === 'none' && sets[sets.length - 1]!.length > 0) info.primarySource = 'dynsym';
    if (info.isGo) addGo(elf, info, sets);
    info.all = sets.flat();
    info.funcs = dedupe(info.all);
    return info;
  } finally {
    src.close();
  }
}

function funcSyms(syms: ElfSymbol[], source: SymbolSource): FuncSym[] {
  const out: FuncSym[] = [];
  for (const s of syms) {
    if (s.type !== STT_FUNC && s.type !== STT_GNU_IFUNC) continue;
    const name = s.version === undefined ? s.name : `${s.name}${s.hidden ? '@' : '@@'}${s.version}`;
    out.push({ start: s.value, size: s.size, name, source, bind: s.bind, go: false });
  }
  return out;
}

function addGo(elf: ElfFile, info: ObjectInfo, sets: FuncSym[][]): void {
  try {
    info.goInfo = readGoBuildInfo(elf);
  } catch (err) {
    info.warnings.push(`go build info: ${errorMessage(err)}`);
  }
  let pcln;
  try {
    pcln = readGoPclntab(elf);
  } catch (err) {
    info.warnings.push(`gopclntab: ${errorMessage(err)}`);
  }
  if (pcln === undefined) return;
  const starts = new Set<bigint>();
  for (const f of pcln) starts.add(f.entry);
  for (const set of sets) for (const s of set) if (starts.has(s.start)) s.go = true;
  sets.push(pcln.map((f) => ({ start: f.entry, size: f.end - f.entry, name: f.name, source: 'gopclntab', bind: STB_GLOBAL, go: true })));
}

/** fromDebugFiles tries build-id debug files, then .gnu_debuglink, then MiniDebugInfo. */
function fromDebugFiles(elf: ElfFile, displayPath: string, info: ObjectInfo, opts: LoadOptions): FuncSym[] | undefined {
  for (const cand of buildIdCandidates(info.buildId, opts)) {
    const syms = trySymbolFile(cand, opts, info, (d) => d.buildId() === info.buildId);
    if (syms !== undefined) return mark(syms, 'buildid-debug', cand, info);
  }
  const link = safe(() => elf.debugLink(), info);
  if (link !== undefined) {
    for (const cand of debugLinkCandidates(displayPath, link.name, opts)) {
      if (!opts.host.exists(cand) || cand === info.openPath) continue;
      if (!crcMatches(cand, link.crc, opts.host)) {
        info.warnings.push(`debuglink ${cand}: CRC mismatch`);
        continue;
      }
      const syms = trySymbolFile(cand, opts, info, () => true);
      if (syms !== undefined) return mark(syms, 'debuglink', cand, info);
    }
  }
  const dd = elf.section('.gnu_debugdata');
  if (dd !== undefined) {
    try {
      const inner = ElfFile.parse(bufferSource(decompressXz(elf.sectionData(dd), opts.maxDebugInfoBytes)));
      const syms = funcSyms(inner.symbols('.symtab'), 'minidebuginfo');
      if (syms.length > 0) return mark(syms, 'minidebuginfo', undefined, info);
    } catch (err) {
      info.warnings.push(`.gnu_debugdata: ${errorMessage(err)}`);
    }
  }
  return undefined;
}

function mark(syms: FuncSym[], source: SymbolSource, file: string | undefined, info: ObjectInfo): FuncSym[] {
  for (const s of syms) s.source = source;
  info.primarySource = source;
  info.debugFile = file;
  return syms;
}

function safe<T>(fn: () => T, info: ObjectInfo): T | undefined {
  try {
    return fn();
  } catch (err) {
    info.warnings.push(errorMessage(err));
    return undefined;
  }
}

function buildIdCandidates(buildId: string | undefined, opts: LoadOptions): string[] {
  if (buildId === undefined || buildId.length < 4) return [];
  const rel = `.build-id/${buildId.slice(0, 2)}/${buildId.slice(2)}.debug`;
  const out: string[] = [];
  for (const d of opts.debugDirs) {
    if (opts.root !== '') out.push(path.join(opts.root, d, rel));
    out.push(path.join(d, rel));
  }
  return out;
}

/** debugLinkCandidates follows gdb's order: next to the file, `.debug/`, then each debug dir + the file's dir. */
function debugLinkCandidates(displayPath: string, name: string, opts: LoadOptions): string[] {
  const dir = path.dirname(displayPath);
  const out = [path.join(opts.root, dir, name), path.join(opts.root, dir, '.debug', name)];
  for (const d of opts.debugDirs) out.push(path.join(opts.root, d, dir, name));
  return out;
}

function trySymbolFile(cand: string, opts: LoadOptions, info: ObjectInfo, accept: (d: ElfFile) => boolean): FuncSym[] | undefined {
  if (!opts.host.exists(cand)) return undefined;
  let src;
  try {
    src = opts.host.open(cand);
  } catch {
    return undefined;
  }
  try {
    const d = ElfFile.parse(src);
    if (!accept(d)) return undefined;
    const syms = funcSyms(d.symbols('.symtab'), 'symtab');
    return syms.length > 0 ? syms : undefined;
  } catch (err) {
    info.warnings.push(`debug file ${cand}: ${errorMessage(err)}`);
    return undefined;
  } finally {
    src.close();
  }
}

const CHUNK = 1 << 20;

function crcMatches(file: string, want: number, host: Host): boolean {
  const src = host.open(file);
  try {
    let crc = 0;
    for (let off = 0; off < src.size; off += CHUNK) crc = zlib.crc32(src.read(off, Math.min(CHUNK, src.size - off)), crc);
    return crc >>> 0 === want >>> 0;
  } finally {
    src.close();
  }
}

/** fileSha256 hashes a file in bounded chunks (the last-resort component). */
export function fileSha256(file: string, host: Host, maxBytes = 4 * 1024 * 1024 * 1024): string {
  const src = host.open(file);
  try {
    if (src.size > maxBytes) throw new SymbolizeError('TOO_LARGE', `${file} is larger than ${maxBytes} bytes to hash`);
    const h = createHash('sha256');
    for (let off = 0; off < src.size; off += CHUNK) h.update(src.read(off, Math.min(CHUNK, src.size - off)));
    return h.digest('hex');
  } finally {
    src.close();
  }
}

/** dedupe keeps one symbol per start address: best source, then GLOBAL > WEAK > LOCAL, then shortest name. */
function dedupe(all: FuncSym[]): FuncSym[] {
  const sorted = all.filter((s) => s.start !== 0n).sort((a, b) => {
    if (a.start !== b.start) return a.start < b.start ? -1 : 1;
    const r = SOURCE_RANK[a.source] - SOURCE_RANK[b.source];
    if (r !== 0) return r;
    const br = BIND_RANK(a.bind) - BIND_RANK(b.bind);
    return br !== 0 ? br : a.name.length - b.name.length;
  });
  const out: FuncSym[] = [];
  for (const s of sorted) {
    const prev = out[out.length - 1];
    if (prev !== undefined && prev.start === s.start) {
      if (s.size > prev.size) prev.size = s.size; // Go's .symtab sizes are short; pclntab's are exact
      prev.go ||= s.go;
      continue;
    }
    out.push({ ...s });
  }
  return out;
}

/** lookupFunc finds the function containing `vaddr`; zero-size symbols extend to the next one. */
export function lookupFunc(funcs: readonly FuncSym[], vaddr: bigint): FuncSym | undefined {
  const at = lastAtOrBefore(funcs, (f) => f.start, vaddr);
  for (let i = at; i >= 0 && i > at - 4; i--) {
    const f = funcs[i]!;
    if (f.size > 0n ? vaddr < f.start + f.size : i === at && (funcs[i + 1] === undefined || vaddr < funcs[i + 1]!.start)) return f;
  }
  return undefined;
}

/** execFirst orders PT_LOAD segments executable-first, the order both conversions search. */
function execFirst(segs: ElfSegment[]): ElfSegment[] {
  return segs.sort((a, b) => (b.flags & 1) - (a.flags & 1));
}

/** vaddrToFileOffset / fileOffsetToVaddr over saved PT_LOAD segments (reference §2.3). */
export function vaddrToFileOffset(segs: readonly ElfSegment[], vaddr: bigint): bigint | undefined {
  for (const p of segs) if (vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz) return vaddr - p.vaddr + p.offset;
  return undefined;
}

export function fileOffsetToVaddr(segs: readonly ElfSegment[], off: bigint): bigint | undefined {
  for (const p of segs) if (off >= p.offset && off < p.offset + p.filesz) return off - p.offset + p.vaddr;
  return undefined;
}

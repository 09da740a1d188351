import { SymbolizeError, malformed } from './errors';
import { ElfFile, cstring, printable } from './elf';

/** GoModule is one `mod`/`dep` line of Go build info (after `=>` replacement). */
export interface GoModule {
  path: string;
  version: string;
}

/** GoBuildInfo is what `go version -m` prints: toolchain, main package, modules. */
export interface GoBuildInfo {
  goVersion: string;
  path: string;
  main: GoModule | undefined;
  deps: GoModule[];
}

const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const MAX_MODINFO = 4 * 1024 * 1024;

/**
 * readGoBuildInfo decodes `.go.buildinfo` (layout from Go's debug/buildinfo): a 32-byte
 * header `\xff Go buildinf:` + ptrSize + flags; with flags&2 (Go ≥1.18) the version and
 * module strings follow as uvarint-length-prefixed strings, otherwise the header holds two
 * pointers to Go string headers in the data segment.
 */
export function readGoBuildInfo(elf: ElfFile): GoBuildInfo | undefined {
  const sec = elf.section('.go.buildinfo');
  let data: Buffer;
  if (sec !== undefined) data = elf.sectionData(sec).subarray(0, 1 << 16);
  else return undefined;
  if (data.length < 32 || !data.subarray(0, 14).equals(BUILDINFO_MAGIC)) return undefined;
  const ptrSize = data[14]!;
  const flags = data[15]!;
  let version: string;
  let modinfo: string;
  if ((flags & 2) !== 0) {
    let o = 32;
    [version, o] = uvarintString(data, o);
    [modinfo] = uvarintString(data, o);
  } else {
    if (ptrSize !== 4 && ptrSize !== 8) malformed(`go buildinfo pointer size ${ptrSize}`);
    const bigEndian = (flags & 1) !== 0;
    version = readGoStringAt(elf, readPtr(data, 16, ptrSize, bigEndian), ptrSize, bigEndian);
    modinfo = readGoStringAt(elf, readPtr(data, 16 + ptrSize, ptrSize, bigEndian), ptrSize, bigEndian);
  }
  return parseModinfo(printable(version), modinfo);
}

function uvarintString(b: Buffer, o: number): [string, number] {
  let n = 0;
  let shift = 0;
  for (;;) {
    if (o >= b.length || shift > 28) malformed('go buildinfo varint');
    const c = b[o++]!;
    n += (c & 0x7f) * 2 ** shift;
    shift += 7;
    if ((c & 0x80) === 0) break;
  }
  if (n > MAX_MODINFO || o + n > b.length) malformed(`go buildinfo string of ${n} bytes`);
  return [b.toString('utf8', o, o + n), o + n];
}

function readPtr(b: Buffer, o: number, size: number, be: boolean): bigint {
  if (o + size > b.length) malformed('go buildinfo pointer');
  if (size === 8) return be ? b.readBigUInt64BE(o) : b.readBigUInt64LE(o);
  return BigInt(be ? b.readUInt32BE(o) : b.readUInt32LE(o));
}

function readAtVaddr(elf: ElfFile, vaddr: bigint, len: number): Buffer {
  const off = elf.vaddrToFileOffset(vaddr);
  if (off === undefined || len > MAX_MODINFO) malformed(`go buildinfo vaddr 0x${vaddr.toString(16)}`);
  return elf.src.read(Number(off), len);
}

function readGoStringAt(elf: ElfFile, vaddr: bigint, ptrSize: number, be: boolean): string {
  const hdr = readAtVaddr(elf, vaddr, ptrSize * 2);
  const ptr = readPtr(hdr, 0, ptrSize, be);
  const len = Number(readPtr(hdr, ptrSize, ptrSize, be));
  return readAtVaddr(elf, ptr, len).toString('utf8');
}

/** parseModinfo reads the tab-separated `path/mod/dep/=>` lines between the 16-byte sentinels. */
export function parseModinfo(goVersion: string, modinfo: string): GoBuildInfo {
  // The Go linker wraps modinfo in 16-byte sentinels (cmd/go/internal/modload.ModInfoProg).
  const body = modinfo.length >= 33 && modinfo.charCodeAt(modinfo.length - 17) === 0x0a ? modinfo.slice(16, -16) : modinfo;
  const info: GoBuildInfo = { goVersion, path: '', main: undefined, deps: [] };
  let last: GoModule | undefined;
  for (const line of body.split('\n')) {
    const f = line.split('\t');
    if (f[0] === 'path' && f[1] !== undefined) info.path = f[1];
    else if (f[0] === 'mod' && f[1] !== undefined) last = info.main = { path: f[1], version: f[2] ?? '' };
    else if (f[0] === 'dep' && f[1] !== undefined && info.deps.length < 10000) {
      last = { path: f[1], version: f[2] ?? '' };
      info.deps.push(last);
    } else if (f[0] === '=>' && last !== undefined && f[1] !== undefined) {
      last.path = f[1];
      last.version = f[2] ?? '';
    }
  }
  return info;
}

/** goModuleFor finds the module owning a package path by longest path-segment prefix. */
export function goModuleFor(info: GoBuildInfo, pkg: string): GoModule | undefined {
  let best: GoModule | undefined;
  for (const m of info.main === undefined ? info.deps : [info.main, ...info.deps]) {
    if (pkg === m.path || pkg.startsWith(m.path + '/')) {
      if (best === undefined || m.path.length > best.path.length) best = m;
    }
  }
  return best;
}

/** GoFunc is one pclntab function: entry vaddr and runtime name (`pkg.(*T).M`). */
export interface GoFunc {
  entry: bigint;
  end: bigint;
  name: string;
}

const MAX_GO_FUNCS = 4_000_000;

/**
 * readGoPclntab reads the function table of `.gopclntab` (layouts from Go's
 * debug/gosym/pclntab.go for 1.2, 1.16, 1.18 and 1.20 magics). Entries are relative to the
 * `.text` section address for ≥1.18, as debug/gosym does. Returns functions sorted by entry.
 */
export function readGoPclntab(elf: ElfFile): GoFunc[] | undefined {
  const sec = elf.section('.gopclntab');
  if (sec === undefined) return undefined;
  const b = elf.sectionData(sec);
  if (b.length < 16) return undefined;
  const le = elf.f.le;
  const magic = le ? b.readUInt32LE(0) : b.readUInt32BE(0);
  const ptr = b[7]!;
  if (b[4] !== 0 || b[5] !== 0 || (ptr !== 4 && ptr !== 8)) return undefined;
  const word = (o: number): number => {
    if (o < 0 || o + ptr > b.length) malformed('pclntab word out of range');
    const v = ptr === 8 ? (le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : BigInt(le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) malformed('pclntab word too large');
    return Number(v);
  };
  const u32 = (o: number): number => {
    if (o < 0 || o + 4 > b.length) malformed('pclntab u32 out of range');
    return le ? b.readUInt32LE(o) : b.readUInt32BE(o);
  };
  const text = elf.section('.text')?.addr ?? 0n;
  const nfunc = word(8);
  if (nfunc > MAX_GO_FUNCS) throw new SymbolizeError('TOO_LARGE', `pclntab claims ${nfunc} functions`);
  const funcs: GoFunc[] = [];
  if (magic === 0xfffffff0 || magic === 0xfffffff1) {
    // Go 1.18+: nfunc, nfiles, textStart, funcnameOff, cuOff, filetabOff, pctabOff, pclnOff.
    const funcname = word(8 + 3 * ptr);
    const pcln = word(8 + 7 * ptr);
    for (let i = 0; i < nfunc; i++) {
      const entryOff = u32(pcln + i * 8);
      const funcOff = u32(pcln + i * 8 + 4);
      const nextEntry = u32(pcln + (i + 1) * 8);
      const nameOff = u32(pcln + funcOff + 4);
      funcs.push({ entry: text + BigInt(entryOff), end: text + BigInt(nextEntry), name: cstring(b, funcname + nameOff, 4096) });
    }
  } else if (magic === 0xfffffffa) {
    // Go 1.16–1.17: nfunc, nfiles, funcnameOff, cuOff, filetabOff, pctabOff, pclnOff; functab of uintptr pairs.
    const funcname = word(8 + 2 * ptr);
    const pcln = word(8 + 6 * ptr);
    for (let i = 0; i < nfunc; i++) {
      const entry = word(pcln + i * 2 * ptr);
      const funcOff = word(pcln + i * 2 * ptr + ptr);
      const next = word(pcln + (i + 1) * 2 * ptr);
      const nameOff = u32(pcln + funcOff + ptr);
      funcs.push({ entry: BigInt(entry), end: BigInt(next), name: cstring(b, funcname + nameOff, 4096) });
    }
  } else if (magic === 0xfffffffb) {
    // Go 1.2–1.15: functab right after the header; nameOff relative to the table start.
    const base = 8 + ptr;
    for (let i = 0; i < nfunc; i++) {
      const entry = word(base + i * 2 * ptr);
      const funcOff = word(base + i * 2 * ptr + ptr);
      const next = word(base + (i + 1) * 2 * ptr);
      const nameOff = u32(funcOff + ptr);
      funcs.push({ entry: BigInt(entry), end: BigInt(next), name: cstring(b, nameOff, 4096) });
    }
  } else {
    return undefined;
  }
  funcs.sort((x, y) => (x.entry < y.entry ? -1 : x.entry > y.entry ? 1 : 0));
  return funcs;
}

/** isGoBinary applies the reference's detection rule (§3.1 go row). */
export function isGoBinary(elf: ElfFile): boolean {
  return (
    elf.section('.go.buildinfo') !== undefined ||
    elf.section('.gopclntab') !== undefined ||
    elf.notes().some((n) => n.owner === 'Go' && n.type === 4)
  );
}

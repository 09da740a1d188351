import * as zlib from 'node:zlib';
import { SymbolizeError, malformed } from './errors';
import type { ByteSource } from './host';

// Constants from the System V gABI (elf.h).
export const SHT_SYMTAB = 2;
export const SHT_NOTE = 7;
export const SHT_NOBITS = 8;
export const SHT_DYNSYM = 11;
export const SHT_GNU_VERDEF = 0x6ffffffd;
export const SHT_GNU_VERSYM = 0x6fffffff;
export const SHF_COMPRESSED = 0x800n;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
export const PF_X = 1;
export const STT_FUNC = 2;
export const STT_GNU_IFUNC = 10;
export const STB_LOCAL = 0;
export const STB_GLOBAL = 1;
export const STB_WEAK = 2;
const SHN_UNDEF = 0;
const SHN_LORESERVE = 0xff00;
const NT_GNU_BUILD_ID = 3;

/** ElfLimits caps every allocation a hostile file could ask for. */
export interface ElfLimits {
  maxSections: number;
  maxSegments: number;
  maxSectionBytes: number;
  maxSymbols: number;
  maxNameBytes: number;
}

export const DEFAULT_ELF_LIMITS: ElfLimits = {
  maxSections: 65536,
  maxSegments: 4096,
  maxSectionBytes: 512 * 1024 * 1024,
  maxSymbols: 8_000_000,
  maxNameBytes: 8192,
};

export interface ElfSection {
  index: number;
  name: string;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}

export interface ElfSegment {
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

/** ElfSymbol is one defined symbol; `version` is from .gnu.version_d (dynsym only). */
export interface ElfSymbol {
  name: string;
  value: bigint;
  size: bigint;
  type: number;
  bind: number;
  shndx: number;
  version?: string;
  /** hidden is true for `name@VER` (non-default), false for `name@@VER`. */
  hidden?: boolean;
}

export interface ElfNote {
  owner: string;
  type: number;
  desc: Buffer;
}

/** Field reader bound to the file's class and byte order. */
class Fields {
  constructor(readonly is64: boolean, readonly le: boolean) {}
  u16(b: Buffer, o: number): number {
    return this.le ? b.readUInt16LE(o) : b.readUInt16BE(o);
  }
  u32(b: Buffer, o: number): number {
    return this.le ? b.readUInt32LE(o) : b.readUInt32BE(o);
  }
  u64(b: Buffer, o: number): bigint {
    return this.le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o);
  }
  /** addr reads a class-sized word (u32 or u64). */
  addr(b: Buffer, o: number): bigint {
    return this.is64 ? this.u64(b, o) : BigInt(this.u32(b, o));
  }
}

function toOffset(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) malformed(`${what} ${v} is too large`);
  return Number(v);
}

/**
 * ElfFile reads an ELF object lazily from a ByteSource: headers at parse time, sections on
 * demand. Every offset is bounds-checked against the source; every table is capped.
 *
 * @example
 *   const elf = ElfFile.parse(host.open('/usr/bin/true'));
 *   elf.buildId(); // '4c0a…'
 */
export class ElfFile {
  readonly sections: ElfSection[] = [];
  readonly segments: ElfSegment[] = [];
  readonly type: number;
  readonly machine: number;
  readonly f: Fields;
  #symCache = new Map<string, ElfSymbol[]>();

  private constructor(readonly src: ByteSource, readonly limits: ElfLimits, ident: Buffer) {
    const cls = ident[4];
    const data = ident[5];
    if (cls !== 1 && cls !== 2) throw new SymbolizeError('NOT_ELF', `unknown ELF class ${cls}`);
    if (data !== 1 && data !== 2) throw new SymbolizeError('NOT_ELF', `unknown ELF data encoding ${data}`);
    this.f = new Fields(cls === 2, data === 1);
    const ehsize = this.f.is64 ? 64 : 52;
    if (src.size < ehsize) throw new SymbolizeError('NOT_ELF', 'file shorter than an ELF header');
    const eh = src.read(0, ehsize);
    this.type = this.f.u16(eh, 16);
    this.machine = this.f.u16(eh, 18);
    this.#readSegments(eh);
    this.#readSections(eh);
  }

  /** parse checks the magic and reads the program and section headers. */
  static parse(src: ByteSource, limits: ElfLimits = DEFAULT_ELF_LIMITS): ElfFile {
    if (src.size < 16) throw new SymbolizeError('NOT_ELF', 'file shorter than the ELF identification');
    const ident = src.read(0, 16);
    if (ident.readUInt32BE(0) !== 0x7f454c46) throw new SymbolizeError('NOT_ELF', 'no ELF magic');
    return new ElfFile(src, limits, ident);
  }

  get is64(): boolean {
    return this.f.is64;
  }

  #readSegments(eh: Buffer): void {
    const f = this.f;
    const phoff = toOffset(f.is64 ? f.u64(eh, 32) : BigInt(f.u32(eh, 28)), 'e_phoff');
    const phentsize = f.u16(eh, f.is64 ? 54 : 42);
    const phnum = f.u16(eh, f.is64 ? 56 : 44);
    if (phnum === 0) return;
    const want = f.is64 ? 56 : 32;
    if (phentsize < want) malformed(`e_phentsize ${phentsize} < ${want}`);
    if (phnum > this.limits.maxSegments) throw new SymbolizeError('TOO_LARGE', `${phnum} program headers`);
    const table = this.src.read(phoff, phentsize * phnum);
    for (let i = 0; i < phnum; i++) {
      const o = i * phentsize;
      if (f.is64) {
        this.segments.push({
          type: f.u32(table, o), flags: f.u32(table, o + 4), offset: f.u64(table, o + 8),
          vaddr: f.u64(table, o + 16), filesz: f.u64(table, o + 32), memsz: f.u64(table, o + 40),
        });
      } else {
        this.segments.push({
          type: f.u32(table, o), offset: BigInt(f.u32(table, o + 4)), vaddr: BigInt(f.u32(table, o + 8)),
          filesz: BigInt(f.u32(table, o + 16)), memsz: BigInt(f.u32(table, o + 20)), flags: f.u32(table, o + 24),
        });
      }
    }
  }

  #readSections(eh: Buffer): void {
    const f = this.f;
    const shoff = toOffset(f.is64 ? f.u64(eh, 40) : BigInt(f.u32(eh, 32)), 'e_shoff');
    const shentsize = f.u16(eh, f.is64 ? 58 : 46);
    let shnum = f.u16(eh, f.is64 ? 60 : 48);
    let shstrndx = f.u16(eh, f.is64 ? 62 : 50);
    if (shoff === 0) return;
    const want = f.is64 ? 64 : 40;
    if (shentsize < want) malformed(`e_shentsize ${shentsize} < ${want}`);
    const nameOffs: number[] = [];
    const first = this.#sectionHeader(this.src.read(shoff, shentsize), 0, 0, []);
    // Extended numbering: the real counts live in section header 0 (gABI "Special Sections").
    if (shnum === 0) shnum = first.size;
    if (shstrndx === 0xffff) shstrndx = first.link;
    if (shnum > this.limits.maxSections) throw new SymbolizeError('TOO_LARGE', `${shnum} section headers`);
    const table = this.src.read(shoff, shentsize * shnum);
    for (let i = 0; i < shnum; i++) this.sections.push(this.#sectionHeader(table, i * shentsize, i, nameOffs));
    const strtab = this.sections[shstrndx];
    if (strtab === undefined || strtab.type === SHT_NOBITS) return;
    const names = this.#rawSection(strtab);
    for (const s of this.sections) s.name = cstring(names, nameOffs[s.index]!, this.limits.maxNameBytes);
  }

  #sectionHeader(b: Buffer, o: number, index: number, nameOffs: number[]): ElfSection {
    const f = this.f;
    const s = f.is64
      ? {
          index, name: '', type: f.u32(b, o + 4), flags: f.u64(b, o + 8), addr: f.u64(b, o + 16),
          offset: toOffset(f.u64(b, o + 24), 'sh_offset'), size: toOffset(f.u64(b, o + 32), 'sh_size'),
          link: f.u32(b, o + 40), info: f.u32(b, o + 44), entsize: toOffset(f.u64(b, o + 56), 'sh_entsize'),
        }
      : {
          index, name: '', type: f.u32(b, o + 4), flags: BigInt(f.u32(b, o + 8)), addr: BigInt(f.u32(b, o + 12)),
          offset: f.u32(b, o + 16), size: f.u32(b, o + 20), link: f.u32(b, o + 24), info: f.u32(b, o + 28),
          entsize: f.u32(b, o + 36),
        };
    nameOffs[index] = f.u32(b, o);
    return s;
  }

  /** section finds a section by name (the first one, as readelf does). */
  section(name: string): ElfSection | undefined {
    return this.sections.find((s) => s.name === name);
  }

  #rawSection(s: ElfSection): Buffer {
    if (s.type === SHT_NOBITS) return Buffer.alloc(0);
    if (s.size > this.limits.maxSectionBytes) throw new SymbolizeError('TOO_LARGE', `section ${s.name || s.index} is ${s.size} bytes`);
    return this.src.read(s.offset, s.size);
  }

  /** sectionData returns a section's bytes, inflating SHF_COMPRESSED zlib sections. */
  sectionData(s: ElfSection): Buffer {
    const raw = this.#rawSection(s);
    if ((s.flags & SHF_COMPRESSED) === 0n) return raw;
    const f = this.f;
    const hdr = f.is64 ? 24 : 12;
    if (raw.length < hdr) malformed(`compressed section ${s.name} shorter than its header`);
    const chType = f.u32(raw, 0);
    const size = f.is64 ? toOffset(f.u64(raw, 8), 'ch_size') : f.u32(raw, 4);
    if (chType !== 1) throw new SymbolizeError('ELF_MALFORMED', `section ${s.name}: compression type ${chType} is not supported (only zlib)`);
    if (size > this.limits.maxSectionBytes) throw new SymbolizeError('TOO_LARGE', `section ${s.name} inflates to ${size} bytes`);
    try {
      return zlib.inflateSync(raw.subarray(hdr), { maxOutputLength: Math.max(1, size) });
    } catch (err) {
      throw new SymbolizeError('ELF_MALFORMED', `inflate section ${s.name}`, { cause: err });
    }
  }

  /** notes reads every note in SHT_NOTE sections (or PT_NOTE segments when there are no sections). */
  notes(): ElfNote[] {
    const out: ElfNote[] = [];
    const blobs: Buffer[] = [];
    const noteSections = this.sections.filter((s) => s.type === SHT_NOTE);
    if (noteSections.length > 0) for (const s of noteSections) blobs.push(this.#rawSection(s));
    else {
      for (const p of this.segments) {
        if (p.type !== PT_NOTE) continue;
        const size = toOffset(p.filesz, 'p_filesz');
        if (size > 1 << 20) continue;
        blobs.push(this.src.read(toOffset(p.offset, 'p_offset'), size));
      }
    }
    for (const b of blobs) parseNotes(b, this.f, out);
    return out;
  }

  /** buildId is the lowercase hex GNU build-id, if the object has one. */
  buildId(): string | undefined {
    const n = this.notes().find((x) => x.owner === 'GNU' && x.type === NT_GNU_BUILD_ID);
    return n === undefined || n.desc.length === 0 ? undefined : n.desc.toString('hex');
  }

  /** goBuildId is the Go toolchain build id (note owner "Go", type 4). */
  goBuildId(): string | undefined {
    const n = this.notes().find((x) => x.owner === 'Go' && x.type === 4);
    return n === undefined ? undefined : printable(n.desc.toString('latin1'));
  }

  /** debugLink reads `.gnu_debuglink`: a NUL-terminated name, padding to 4, then a CRC32. */
  debugLink(): { name: string; crc: number } | undefined {
    const s = this.section('.gnu_debuglink');
    if (s === undefined) return undefined;
    const b = this.#rawSection(s);
    const end = b.indexOf(0);
    if (end <= 0) return undefined;
    const crcAt = (end + 4) & ~3;
    if (crcAt + 4 > b.length) return undefined;
    const name = b.subarray(0, end).toString('utf8');
    if (name.includes('/') || name === '.' || name === '..') return undefined;
    return { name, crc: this.f.u32(b, crcAt) };
  }

  /**
   * symbols returns the defined symbols of `.symtab` or `.dynsym` (all types; callers filter).
   * Dynamic symbols carry their version from `.gnu.version`/`.gnu.version_d`.
   */
  symbols(table: '.symtab' | '.dynsym'): ElfSymbol[] {
    const cached = this.#symCache.get(table);
    if (cached !== undefined) return cached;
    const want = table === '.symtab' ? SHT_SYMTAB : SHT_DYNSYM;
    const sec = this.sections.find((s) => s.type === want);
    const out: ElfSymbol[] = [];
    if (sec !== undefined && sec.type !== SHT_NOBITS) this.#readSymbols(sec, out);
    this.#symCache.set(table, out);
    return out;
  }

  #readSymbols(sec: ElfSection, out: ElfSymbol[]): void {
    const f = this.f;
    const entsize = f.is64 ? 24 : 16;
    if (sec.entsize !== 0 && sec.entsize < entsize) malformed(`${sec.name} sh_entsize ${sec.entsize}`);
    const stride = sec.entsize === 0 ? entsize : sec.entsize;
    const count = Math.floor(sec.size / stride);
    if (count > this.limits.maxSymbols) throw new SymbolizeError('TOO_LARGE', `${sec.name} has ${count} symbols`);
    const strSec = this.sections[sec.link];
    if (strSec === undefined) malformed(`${sec.name} sh_link ${sec.link} is not a section`);
    const data = this.sectionData(sec);
    const strs = this.sectionData(strSec);
    const versions = sec.type === SHT_DYNSYM ? this.#versions(count) : undefined;
    for (let i = 1; i < count; i++) {
      const o = i * stride;
      const nameOff = f.u32(data, o);
      let info: number, shndx: number, value: bigint, size: bigint;
      if (f.is64) {
        info = data[o + 4]!;
        shndx = f.u16(data, o + 6);
        value = f.u64(data, o + 8);
        size = f.u64(data, o + 16);
      } else {
        value = BigInt(f.u32(data, o + 4));
        size = BigInt(f.u32(data, o + 8));
        info = data[o + 12]!;
        shndx = f.u16(data, o + 14);
      }
      if (shndx === SHN_UNDEF || shndx >= SHN_LORESERVE || nameOff === 0) continue;
      const name = cstring(strs, nameOff, this.limits.maxNameBytes);
      if (name === '') continue;
      const sym: ElfSymbol = { name, value, size, type: info & 0xf, bind: info >> 4, shndx };
      const v = versions?.[i];
      if (v !== undefined) {
        sym.version = v.name;
        sym.hidden = v.hidden;
      }
      out.push(sym);
    }
  }

  /** #versions maps dynsym index → defined version name (from .gnu.version + .gnu.version_d). */
  #versions(count: number): Array<{ name: string; hidden: boolean } | undefined> | undefined {
    const versym = this.sections.find((s) => s.type === SHT_GNU_VERSYM);
    const verdef = this.sections.find((s) => s.type === SHT_GNU_VERDEF);
    if (versym === undefined || verdef === undefined) return undefined;
    const f = this.f;
    const vs = this.#rawSection(versym);
    const vd = this.#rawSection(verdef);
    const strSec = this.sections[verdef.link];
    if (strSec === undefined) return undefined;
    const strs = this.#rawSection(strSec);
    const names = new Map<number, string>();
    // Elf_Verdef: vd_version u16, vd_flags u16, vd_ndx u16, vd_cnt u16, vd_hash u32, vd_aux u32, vd_next u32.
    let off = 0;
    for (let n = 0; n < Math.min(verdef.info || 1024, 4096) && off + 20 <= vd.length; n++) {
      const ndx = f.u16(vd, off + 4);
      const aux = f.u32(vd, off + 12);
      const next = f.u32(vd, off + 16);
      if (off + aux + 8 <= vd.length) names.set(ndx, cstring(strs, f.u32(vd, off + aux), this.limits.maxNameBytes));
      if (next === 0) break;
      off += next;
    }
    const out: Array<{ name: string; hidden: boolean } | undefined> = [];
    for (let i = 0; i < count && i * 2 + 2 <= vs.length; i++) {
      const raw = f.u16(vs, i * 2);
      const idx = raw & 0x7fff;
      out.push(idx >= 2 && names.has(idx) ? { name: names.get(idx)!, hidden: (raw & 0x8000) !== 0 } : undefined);
    }
    return out;
  }

  /** loadSegments are the PT_LOAD program headers, in file order. */
  loadSegments(): ElfSegment[] {
    return this.segments.filter((p) => p.type === PT_LOAD);
  }

  /**
   * vaddrToFileOffset converts a symbol value to the file offset a uprobe attaches at:
   * `vaddr − p_vaddr + p_offset` for the PT_LOAD containing it (executable ones first).
   */
  vaddrToFileOffset(vaddr: bigint): bigint | undefined {
    const loads = this.loadSegments().sort((a, b) => (b.flags & PF_X) - (a.flags & PF_X));
    for (const p of loads) {
      if (vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz) return vaddr - p.vaddr + p.offset;
    }
    return undefined;
  }

  /** fileOffsetToVaddr is the inverse used for stack frames (reference §2.3). */
  fileOffsetToVaddr(off: bigint): bigint | undefined {
    const loads = this.loadSegments().sort((a, b) => (b.flags & PF_X) - (a.flags & PF_X));
    for (const p of loads) {
      if (off >= p.offset && off < p.offset + p.filesz) return off - p.offset + p.vaddr;
    }
    return undefined;
  }

  /** sectionForVaddr returns the allocated section holding a vaddr (for .text checks). */
  sectionForVaddr(vaddr: bigint): ElfSection | undefined {
    return this.sections.find((s) => s.addr !== 0n && vaddr >= s.addr && vaddr < s.addr + BigInt(s.size));
  }
}

/** parseNotes walks `namesz, descsz, type, name (4-aligned), desc (4-aligned)` records. */
function parseNotes(b: Buffer, f: Fields, out: ElfNote[]): void {
  let o = 0;
  while (o + 12 <= b.length && out.length < 256) {
    const namesz = f.u32(b, o);
    const descsz = f.u32(b, o + 4);
    const type = f.u32(b, o + 8);
    const nameEnd = o + 12 + namesz;
    const descAt = o + 12 + align4(namesz);
    const descEnd = descAt + descsz;
    if (namesz > 256 || descsz > 1 << 16 || descEnd > b.length || nameEnd > b.length) return;
    let owner = b.subarray(o + 12, nameEnd).toString('latin1');
    if (owner.endsWith('\0')) owner = owner.slice(0, -1);
    out.push({ owner, type, desc: Buffer.from(b.subarray(descAt, descEnd)) });
    o = descAt + align4(descsz);
  }
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** cstring reads a NUL-terminated string at `off`, capped at `max` bytes ('' when out of range). */
export function cstring(b: Buffer, off: number, max: number): string {
  if (off < 0 || off >= b.length) return '';
  const limit = Math.min(b.length, off + max);
  let end = b.indexOf(0, off);
  if (end < 0 || end > limit) end = limit;
  return b.toString('utf8', off, end);
}

/** printable drops control characters from untrusted text. */
export function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, '');
}

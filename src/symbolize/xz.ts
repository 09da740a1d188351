import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { SymbolizeError } from './errors';

/**
 * decompressXz decodes an .xz stream whose blocks use only the LZMA2 filter — what `xz`
 * produces by default and what MiniDebugInfo (`.gnu_debugdata`) contains. Formats from the
 * .xz file format spec 1.1.0 and the LZMA SDK's LzmaDec/Lzma2Dec descriptions; written here
 * because it is ~300 lines with no dependency (docs/architecture.md, "Dependencies"). The whole
 * output is the dictionary (we decode into memory anyway), capped at `maxOut` bytes. Every
 * block's check is verified: CRC32, CRC64 (xz's default, so what MiniDebugInfo carries) and
 * SHA-256; a stream with another (reserved) check type is refused.
 */
export function decompressXz(input: Buffer, maxOut: number): Buffer {
  const fail = (what: string): never => {
    throw new SymbolizeError('XZ', `xz: ${what}`);
  };
  const MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
  if (input.length < 24 || !input.subarray(0, 6).equals(MAGIC)) fail('not an xz stream');
  if (zlib.crc32(input.subarray(6, 8)) >>> 0 !== input.readUInt32LE(8)) fail('stream header CRC mismatch');
  if (input[6] !== 0 || (input[7]! & 0xf0) !== 0) fail('reserved stream flags set');
  const check = input[7]!;
  // 0 none, 1 CRC32, 4 CRC64, 10 SHA-256; the spec's other ids are reserved and not decodable safely
  const checkSize = CHECK_SIZES[check];
  if (checkSize === undefined) fail(`unsupported check type ${check}`);
  const out = new Output(maxOut);
  let pos = 12;
  for (;;) {
    if (pos >= input.length) fail('truncated before index');
    if (input[pos] === 0) break; // index indicator: no more blocks
    const hdrSize = (input[pos]! + 1) * 4;
    if (pos + hdrSize > input.length) fail('truncated block header');
    const hdr = input.subarray(pos, pos + hdrSize);
    if (zlib.crc32(hdr.subarray(0, hdrSize - 4)) >>> 0 !== hdr.readUInt32LE(hdrSize - 4)) fail('block header CRC mismatch');
    const dictSize = parseBlockHeader(hdr, fail);
    pos += hdrSize;
    const blockStart = out.length;
    pos = decodeLzma2(input, pos, out, dictSize, fail);
    while ((pos & 3) !== 0) {
      if (input[pos++] !== 0) fail('non-zero block padding');
    }
    if (pos + checkSize! > input.length) fail('truncated block check');
    verifyCheck(check, out.slice(blockStart), input.subarray(pos, pos + checkSize!), fail);
    pos += checkSize!;
  }
  return out.result();
}

const CHECK_SIZES: Record<number, number> = { 0: 0, 1: 4, 4: 8, 10: 32 };

function verifyCheck(check: number, data: Buffer, stored: Buffer, fail: (w: string) => never): void {
  if (check === 1) {
    if (zlib.crc32(data) >>> 0 !== stored.readUInt32LE(0)) fail('block CRC32 mismatch');
  } else if (check === 4) {
    if (crc64(data) !== stored.readBigUInt64LE(0)) fail('block CRC64 mismatch');
  } else if (check === 10) {
    if (!createHash('sha256').update(data).digest().equals(stored)) fail('block SHA-256 mismatch');
  }
}

/** CRC-64/XZ (ECMA-182 polynomial, reflected), table-driven on two 32-bit halves. */
const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let lo = i;
  let hi = 0;
  for (let k = 0; k < 8; k++) {
    const odd = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi >>>= 1;
    if (odd) {
      lo = (lo ^ 0xd7870f42) >>> 0;
      hi = (hi ^ 0xc96c5795) >>> 0;
    }
  }
  CRC64_LO[i] = lo;
  CRC64_HI[i] = hi;
}

export function crc64(data: Uint8Array): bigint {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const t = (lo ^ data[i]!) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ CRC64_LO[t]!) >>> 0;
    hi = ((hi >>> 8) ^ CRC64_HI[t]!) >>> 0;
  }
  return (BigInt((~hi) >>> 0) << 32n) | BigInt((~lo) >>> 0);
}

function parseBlockHeader(hdr: Buffer, fail: (w: string) => never): number {
  const flags = hdr[1]!;
  if ((flags & 0x3c) !== 0) fail('reserved block flags set');
  const nFilters = (flags & 3) + 1;
  let o = 2;
  const varint = (): number => {
    let v = 0;
    for (let i = 0; i < 9; i++) {
      if (o >= hdr.length - 4) fail('block header varint');
      const b = hdr[o++]!;
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    return fail('block header varint too long');
  };
  if (flags & 0x40) varint();
  if (flags & 0x80) varint();
  let dictSize = 0;
  for (let i = 0; i < nFilters; i++) {
    const id = varint();
    const propSize = varint();
    if (id !== 0x21 || i !== nFilters - 1) fail(`filter 0x${id.toString(16)} is not supported (only LZMA2)`);
    if (propSize !== 1 || o >= hdr.length - 4) fail('bad LZMA2 properties');
    const p = hdr[o++]! & 0x3f;
    if (p > 40) fail('LZMA2 dictionary size out of range');
    dictSize = p === 40 ? 0xffffffff : (2 | (p & 1)) * 2 ** ((p >> 1) + 11);
  }
  return dictSize;
}

/** Output is a growable byte buffer with a hard cap; it doubles as the LZ dictionary. */
class Output {
  buf: Buffer;
  length = 0;
  constructor(readonly cap: number) {
    this.buf = Buffer.allocUnsafe(Math.min(cap, 1 << 16) || 1);
  }
  ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    if (this.length + n > this.cap) throw new SymbolizeError('TOO_LARGE', `xz output exceeds ${this.cap} bytes`);
    let size = this.buf.length;
    while (size < this.length + n) size *= 2;
    const next = Buffer.allocUnsafe(Math.min(size, this.cap));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  slice(from: number): Buffer {
    return this.buf.subarray(from, this.length);
  }
  result(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.length));
  }
}

// LZMA model sizes (LzmaDec.c).
const LEN_LOW = 0, LEN_MID = 16 * 8, LEN_HIGH = 32 * 8, LEN_CHOICE = LEN_HIGH + 256, LEN_CHOICE2 = LEN_CHOICE + 1, LEN_SIZE = LEN_CHOICE2 + 1;
const IS_MATCH = 0, IS_REP = 192, IS_REP_G0 = 204, IS_REP_G1 = 216, IS_REP_G2 = 228, IS_REP0_LONG = 240;
const POS_SLOT = 432, SPEC_POS = POS_SLOT + 256, ALIGN = SPEC_POS + 114, LEN_CODER = ALIGN + 16;
const REP_LEN_CODER = LEN_CODER + LEN_SIZE, LITERAL = REP_LEN_CODER + LEN_SIZE;

class Lzma {
  lc = 0; lp = 0; pb = 0;
  probs = new Uint16Array(LITERAL + 0x300 * 16);
  state = 0;
  reps = [0, 0, 0, 0];
  // Range decoder.
  range = 0; code = 0; inPos = 0; inEnd = 0;
  constructor(readonly input: Buffer, readonly fail: (w: string) => never) {}

  setProps(p: number): void {
    if (p > 224) this.fail('bad LZMA properties');
    this.lc = p % 9;
    this.lp = Math.floor(p / 9) % 5;
    this.pb = Math.floor(p / 45);
    if (this.lc + this.lp > 4) this.fail('lc + lp > 4');
  }
  resetState(): void {
    this.probs.fill(1024);
    this.state = 0;
    this.reps = [0, 0, 0, 0];
  }
  initRange(start: number, end: number): void {
    if (end - start < 5 || this.input[start] !== 0) this.fail('bad range coder init');
    this.code = this.input.readUInt32BE(start + 1);
    this.range = 0xffffffff;
    this.inPos = start + 5;
    this.inEnd = end;
  }
  #normalize(): void {
    if (this.range < 0x1000000) {
      if (this.inPos >= this.inEnd) this.fail('compressed chunk overrun');
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.input[this.inPos++]!) >>> 0;
    }
  }
  bit(i: number): number {
    const p = this.probs[i]!;
    const bound = (this.range >>> 11) * p;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      this.probs[i] = p + ((2048 - p) >>> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      this.probs[i] = p - (p >>> 5);
      b = 1;
    }
    this.#normalize();
    return b;
  }
  direct(n: number): number {
    let r = 0;
    for (let i = 0; i < n; i++) {
      this.range >>>= 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      r = r * 2 + b;
      this.#normalize();
    }
    return r;
  }
  tree(base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(base + m);
    return m - (1 << bits);
  }
  reverse(base: number, bits: number): number {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(base + m);
      m = (m << 1) | b;
      sym |= b << i;
    }
    return sym;
  }
  len(base: number, posState: number): number {
    if (this.bit(base + LEN_CHOICE) === 0) return this.tree(base + LEN_LOW + posState * 8, 3);
    if (this.bit(base + LEN_CHOICE2) === 0) return 8 + this.tree(base + LEN_MID + posState * 8, 3);
    return 16 + this.tree(base + LEN_HIGH, 8);
  }

  /** decode produces exactly `size` bytes into `out`, dictionary starting at `dictStart`. */
  decode(out: Output, size: number, dictStart: number): void {
    out.ensure(size);
    const buf = out.buf;
    const end = out.length + size;
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    let pos = out.length;
    while (pos < end) {
      const rel = pos - dictStart;
      const posState = rel & pbMask;
      const s = this.state;
      if (this.bit(IS_MATCH + (s << 4) + posState) === 0) {
        const prev = pos > dictStart ? buf[pos - 1]! : 0;
        const base = LITERAL + 0x300 * (((rel & lpMask) << this.lc) + (prev >> (8 - this.lc)));
        let sym = 1;
        if (s >= 7) {
          let match = buf[pos - this.reps[0]! - 1]!;
          do {
            const mb = (match >> 7) & 1;
            match <<= 1;
            const b = this.bit(base + ((1 + mb) << 8) + sym);
            sym = (sym << 1) | b;
            if (mb !== b) {
              while (sym < 0x100) sym = (sym << 1) | this.bit(base + sym);
              break;
            }
          } while (sym < 0x100);
        } else {
          while (sym < 0x100) sym = (sym << 1) | this.bit(base + sym);
        }
        buf[pos++] = sym & 0xff;
        this.state = s < 4 ? 0 : s < 10 ? s - 3 : s - 6;
        continue;
      }
      let len: number;
      if (this.bit(IS_REP + s) === 0) {
        len = this.len(LEN_CODER, posState);
        this.state = s < 7 ? 7 : 10;
        const dist = this.#distance(len);
        if (dist === 0xffffffff) this.fail('unexpected end marker inside LZMA2 chunk');
        this.reps = [dist, this.reps[0]!, this.reps[1]!, this.reps[2]!];
      } else {
        if (pos === dictStart) this.fail('rep match at dictionary start');
        if (this.bit(IS_REP_G0 + s) === 0) {
          if (this.bit(IS_REP0_LONG + (s << 4) + posState) === 0) {
            this.state = s < 7 ? 9 : 11;
            buf[pos] = buf[pos - this.reps[0]! - 1]!;
            pos++;
            continue;
          }
        } else {
          let dist: number;
          const r = this.reps;
          if (this.bit(IS_REP_G1 + s) === 0) dist = r[1]!;
          else {
            if (this.bit(IS_REP_G2 + s) === 0) dist = r[2]!;
            else {
              dist = r[3]!;
              r[3] = r[2]!;
            }
            r[2] = r[1]!;
          }
          r[1] = r[0]!;
          r[0] = dist;
        }
        len = this.len(REP_LEN_CODER, posState);
        this.state = s < 7 ? 8 : 11;
      }
      const d = this.reps[0]! + 1;
      if (d > pos - dictStart) this.fail('match distance beyond dictionary');
      let n = len + 2;
      if (pos + n > end) this.fail('match crosses chunk end');
      for (; n > 0; n--, pos++) buf[pos] = buf[pos - d]!;
    }
    out.length = pos;
  }

  #distance(len: number): number {
    const lenState = len < 3 ? len : 3;
    const slot = this.tree(POS_SLOT + lenState * 64, 6);
    if (slot < 4) return slot;
    const nb = (slot >> 1) - 1;
    let dist = (2 | (slot & 1)) * 2 ** nb;
    if (slot < 14) return dist + this.reverse(SPEC_POS + dist - slot - 1, nb);
    dist += this.direct(nb - 4) * 16;
    dist += this.reverse(ALIGN, 4);
    return dist >>> 0;
  }
}

function decodeLzma2(input: Buffer, pos: number, out: Output, _dictSize: number, fail: (w: string) => never): number {
  const lz = new Lzma(input, fail);
  let dictStart = out.length;
  let needProps = true;
  for (;;) {
    if (pos >= input.length) fail('truncated LZMA2 stream');
    const c = input[pos++]!;
    if (c === 0) return pos;
    if (c === 1 || c === 2) {
      if (pos + 2 > input.length) fail('truncated LZMA2 chunk header');
      const n = input.readUInt16BE(pos) + 1;
      pos += 2;
      if (c === 1) dictStart = out.length;
      if (pos + n > input.length) fail('truncated uncompressed chunk');
      out.ensure(n);
      input.copy(out.buf, out.length, pos, pos + n);
      out.length += n;
      pos += n;
      continue;
    }
    if (c < 0x80) fail(`bad LZMA2 control byte 0x${c.toString(16)}`);
    if (pos + 4 > input.length) fail('truncated LZMA2 chunk header');
    const unpacked = (c & 0x1f) * 65536 + input.readUInt16BE(pos) + 1;
    const packed = input.readUInt16BE(pos + 2) + 1;
    pos += 4;
    const mode = (c >> 5) & 3;
    if (mode === 3) dictStart = out.length;
    if (mode >= 2) {
      if (pos >= input.length) fail('truncated LZMA2 properties');
      lz.setProps(input[pos++]!);
      needProps = false;
    } else if (needProps) fail('LZMA2 chunk without properties');
    if (mode >= 1) lz.resetState();
    if (pos + packed > input.length) fail('truncated LZMA chunk');
    lz.initRange(pos, pos + packed);
    lz.decode(out, unpacked, dictStart);
    pos += packed;
  }
}

/**
 * An x86-64 instruction length decoder: enough of the encoding (legacy prefixes, REX, the one-,
 * two- and three-byte opcode maps, VEX, EVEX, ModRM/SIB/displacement, immediates) to walk a
 * function from its entry one instruction at a time and find its RET instructions at instruction
 * boundaries, never a C3 byte inside another instruction (an immediate, a displacement, a ModRM).
 *
 * Used for Go functions (src/ingest/uprobes/go.ts), which hold no data between their instructions
 * (Go puts jump tables in rodata), so a linear sweep from the entry sees every instruction.
 * Opcodes that are invalid in 64-bit mode, and encodings not handled here (XOP, 3DNow! aside),
 * make the decoder give up: the caller then refuses to probe the function rather than guess.
 * Checked against objdump over whole Go executables in test/e2e/tls-go-decode.e2e.test.ts.
 */

/** Why a function could not be decoded. */
export class X86DecodeError extends Error {
  constructor(readonly offset: number, message: string) {
    super(`x86-64 decode at +0x${offset.toString(16)}: ${message}`);
  }
}

// one-byte map: 'm' has ModRM; immediates: 'b' 1 byte, 'w' 2, 'z' 2/4 (operand size), 'v' 2/4/8
// (B8-BF), 'a' address-size moffs (A0-A3); 'x' invalid in 64-bit mode; 'p' prefix handled earlier
const ONE: string[] = (() => {
  const t = new Array<string>(256).fill('');
  for (let base = 0; base < 0x40; base += 8) {
    t[base] = t[base + 1] = t[base + 2] = t[base + 3] = 'm';
    t[base + 4] = 'b';
    t[base + 5] = 'z';
    t[base + 6] = t[base + 7] = 'x'; // push/pop seg, daa/das/aaa/aas (invalid in 64-bit mode); prefixes below
  }
  t[0x0f] = 'esc';
  for (const p of [0x26, 0x2e, 0x36, 0x3e]) t[p] = 'p';
  for (let i = 0x40; i < 0x50; i++) t[i] = 'p'; // REX
  for (let i = 0x50; i < 0x60; i++) t[i] = '';
  t[0x60] = t[0x61] = 'x';
  t[0x62] = 'evex';
  t[0x63] = 'm';
  t[0x64] = t[0x65] = t[0x66] = t[0x67] = 'p';
  t[0x68] = 'z'; t[0x69] = 'mz'; t[0x6a] = 'b'; t[0x6b] = 'mb';
  for (let i = 0x6c; i < 0x70; i++) t[i] = '';
  for (let i = 0x70; i < 0x80; i++) t[i] = 'b';
  t[0x80] = 'mb'; t[0x81] = 'mz'; t[0x82] = 'x'; t[0x83] = 'mb';
  for (let i = 0x84; i < 0x8f; i++) t[i] = 'm';
  t[0x8f] = 'm8f';
  for (let i = 0x90; i < 0xa0; i++) t[i] = '';
  t[0x9a] = 'x';
  t[0xa0] = t[0xa1] = t[0xa2] = t[0xa3] = 'a';
  for (let i = 0xa4; i < 0xb0; i++) t[i] = '';
  t[0xa8] = 'b'; t[0xa9] = 'z';
  for (let i = 0xb0; i < 0xb8; i++) t[i] = 'b';
  for (let i = 0xb8; i < 0xc0; i++) t[i] = 'v';
  t[0xc0] = t[0xc1] = 'mb'; t[0xc2] = 'w'; t[0xc3] = '';
  t[0xc4] = 'vex3'; t[0xc5] = 'vex2';
  t[0xc6] = 'mb'; t[0xc7] = 'mz';
  t[0xc8] = 'wb'; t[0xc9] = ''; t[0xca] = 'w'; t[0xcb] = ''; t[0xcc] = ''; t[0xcd] = 'b'; t[0xce] = 'x'; t[0xcf] = '';
  t[0xd0] = t[0xd1] = t[0xd2] = t[0xd3] = 'm';
  t[0xd4] = t[0xd5] = t[0xd6] = 'x'; t[0xd7] = '';
  for (let i = 0xd8; i < 0xe0; i++) t[i] = 'm';
  for (let i = 0xe0; i < 0xe8; i++) t[i] = 'b';
  t[0xe8] = t[0xe9] = 'd'; t[0xea] = 'x'; t[0xeb] = 'b';
  t[0xec] = t[0xed] = t[0xee] = t[0xef] = '';
  t[0xf0] = 'p'; t[0xf1] = ''; t[0xf2] = t[0xf3] = 'p'; t[0xf4] = t[0xf5] = '';
  t[0xf6] = 'mf6'; t[0xf7] = 'mf7';
  for (let i = 0xf8; i < 0xfe; i++) t[i] = '';
  t[0xfe] = t[0xff] = 'm';
  return t;
})();

// two-byte map 0F xx
const TWO: string[] = (() => {
  const t = new Array<string>(256).fill('m');
  for (const i of [0x04, 0x0a, 0x0c, 0x24, 0x25, 0x26, 0x27, 0x36, 0x39, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x7a, 0x7b, 0xa6, 0xa7]) t[i] = 'x';
  for (const i of [0x05, 0x06, 0x07, 0x08, 0x09, 0x0b, 0x0e, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x37, 0x77, 0xa0, 0xa1, 0xa2, 0xa8, 0xa9, 0xaa]) t[i] = '';
  t[0x0f] = 'mb'; // 3DNow!: the opcode is an imm8 suffix
  t[0x38] = 'esc38'; t[0x3a] = 'esc3a';
  for (const i of [0x70, 0x71, 0x72, 0x73, 0xa4, 0xac, 0xba, 0xc2, 0xc4, 0xc5, 0xc6]) t[i] = 'mb';
  for (let i = 0x80; i < 0x90; i++) t[i] = 'd';
  for (let i = 0xc8; i < 0xd0; i++) t[i] = '';
  return t;
})();

// VEX/EVEX map 1 (0F) opcodes with an imm8
const MAP1_IMM8 = new Set([0x70, 0x71, 0x72, 0x73, 0xc2, 0xc4, 0xc5, 0xc6]);

export interface Instruction {
  /** offset of the first byte (prefixes included) */
  offset: number;
  length: number;
  /** near return: C3, or C2 iw */
  ret: boolean;
}

/** decodeLength returns the length of the instruction at `o` (bytes read only from `b`). */
export function decodeLength(b: Uint8Array, o: number): { length: number; ret: boolean } {
  const start = o;
  const need = (n: number): void => {
    if (o + n > b.length) throw new X86DecodeError(start, 'instruction runs past the end');
  };
  let opsize16 = false;
  let addr32 = false;
  let rexW = false;
  // legacy prefixes (at most 14 bytes in all; the architectural limit is 15 per instruction)
  for (;;) {
    need(1);
    const p = b[o]!;
    if (p === 0x66) opsize16 = true;
    else if (p === 0x67) addr32 = true;
    else if (p === 0xf0 || p === 0xf2 || p === 0xf3 || p === 0x2e || p === 0x36 || p === 0x3e || p === 0x26 || p === 0x64 || p === 0x65) {
      // segment, lock, rep
    } else break;
    o++;
    if (o - start > 14) throw new X86DecodeError(start, 'too many prefixes');
  }
  need(1);
  if ((b[o]! & 0xf0) === 0x40) {
    rexW = (b[o]! & 0x08) !== 0;
    o++;
    need(1);
    if ((b[o]! & 0xf0) === 0x40) throw new X86DecodeError(start, 'two REX prefixes');
  }
  const op = b[o++]!;
  let kind = ONE[op]!;
  let imm = 0;
  let modrm = false;
  const immOf = (k: string): number => {
    let n = 0;
    for (const c of k) {
      if (c === 'b') n += 1;
      else if (c === 'w') n += 2;
      else if (c === 'z') n += opsize16 ? 2 : 4;
      else if (c === 'd') n += 4;
      else if (c === 'v') n += rexW ? 8 : opsize16 ? 2 : 4;
      else if (c === 'a') n += addr32 ? 4 : 8;
    }
    return n;
  };
  if (kind === 'x') throw new X86DecodeError(start, `opcode 0x${op.toString(16)} is invalid in 64-bit mode`);
  if (kind === 'p') throw new X86DecodeError(start, 'prefix after REX');
  if (kind === 'esc') {
    need(1);
    const op2 = b[o++]!;
    kind = TWO[op2]!;
    if (kind === 'x') throw new X86DecodeError(start, `opcode 0f ${op2.toString(16)} is invalid`);
    if (kind === 'esc38') {
      need(1);
      o++;
      modrm = true;
    } else if (kind === 'esc3a') {
      need(1);
      o++;
      modrm = true;
      imm = 1;
    } else {
      modrm = kind.startsWith('m');
      imm = immOf(kind.replace(/^m/, ''));
    }
  } else if (kind === 'vex2' || kind === 'vex3' || kind === 'evex') {
    let map: number;
    if (kind === 'vex2') {
      need(1);
      o++;
      map = 1;
    } else if (kind === 'vex3') {
      need(2);
      map = b[o]! & 0x1f;
      o += 2;
    } else {
      need(3);
      map = b[o]! & 0x07;
      o += 3;
    }
    need(1);
    const vop = b[o++]!;
    if (map === 1) {
      modrm = !(vop === 0x77 && kind !== 'evex'); // vzeroupper/vzeroall
      imm = MAP1_IMM8.has(vop) ? 1 : 0;
    } else if (map === 2 || map === 5 || map === 6) {
      modrm = true;
    } else if (map === 3) {
      modrm = true;
      imm = 1;
    } else {
      throw new X86DecodeError(start, `VEX/EVEX opcode map ${map}`);
    }
  } else if (kind === 'm8f') {
    need(1);
    if (((b[o]! >> 3) & 7) !== 0) throw new X86DecodeError(start, 'XOP encoding');
    modrm = true;
  } else if (kind === 'mf6' || kind === 'mf7') {
    need(1);
    const reg = (b[o]! >> 3) & 7;
    modrm = true;
    if (reg === 0 || reg === 1) imm = kind === 'mf6' ? 1 : opsize16 ? 2 : 4; // test r/m, imm
  } else {
    modrm = kind.startsWith('m');
    // xbegin (c7 f8) has a z-sized displacement, xabort (c6 f8) an imm8: the same sizes as c7/c6
    imm = immOf(kind.replace(/^m/, ''));
  }
  if (modrm) {
    need(1);
    const m = b[o++]!;
    const mod = m >> 6;
    const rm = m & 7;
    if (mod !== 3) {
      if (rm === 4) {
        need(1);
        const sib = b[o++]!;
        if ((sib & 7) === 5 && mod === 0) o += 4;
      } else if (rm === 5 && mod === 0) {
        o += 4; // RIP-relative (or disp32 with 0x67)
      }
      if (mod === 1) o += 1;
      else if (mod === 2) o += 4;
    }
  }
  o += imm;
  if (o > b.length) throw new X86DecodeError(start, 'instruction runs past the end');
  if (o - start > 15) throw new X86DecodeError(start, 'instruction longer than 15 bytes');
  // `op` is the first opcode byte after the prefixes: C3/C2 there is the one-byte map's near RET
  return { length: o - start, ret: op === 0xc3 || op === 0xc2 };
}

/**
 * decodeAll walks `b` from its first byte to its end, one instruction at a time, and returns every
 * instruction. Throws X86DecodeError where the bytes are not an instruction this decoder knows.
 */
export function decodeAll(b: Uint8Array, maxInstructions = 1 << 20): Instruction[] {
  const out: Instruction[] = [];
  let o = 0;
  while (o < b.length) {
    if (out.length >= maxInstructions) throw new X86DecodeError(o, `more than ${maxInstructions} instructions`);
    const { length, ret } = decodeLength(b, o);
    out.push({ offset: o, length, ret });
    o += length;
  }
  return out;
}

/** retOffsets returns the offsets of the near RET instructions of a function's bytes. */
export function retOffsets(b: Uint8Array): number[] {
  return decodeAll(b).filter((i) => i.ret).map((i) => i.offset);
}

/**
 * A byte scanner for the canonical record lines rtev writes (src/encode/canonical.ts: sorted
 * keys, no whitespace, integers only), used by the ingest row builder (src/fleet/rows-binary.ts)
 * instead of JSON.parse. Lines come from hosts and are untrusted: the scanner accepts only a
 * strict subset of JSON that it reads exactly, and refuses (returns false) anything else, for
 * which the caller takes the JSON.parse path. What it accepts:
 * - one object, no whitespace anywhere;
 * - at the top level and inside `event`: keys without escapes, strictly increasing byte-wise
 *   (canonical order; so no key twice, and the value read is the value JSON.parse keeps);
 * - strings with valid escapes and no raw control character; numbers that are integers
 *   (`-?(0|[1-9][0-9]*)`, no fraction or exponent; a field the row builder reads as a number
 *   at most 15 digits, so it is a safe integer); true, false, null; objects and arrays to a
 *   depth of 64.
 * Every accepted line is valid JSON, and each field read is what JSON.parse of the line gives
 * for it: a string without escapes as its bytes (the body is valid UTF-8, checked by the
 * caller), a string with escapes as its token (the caller decodes it with JSON.parse), an
 * integer as its value. test/unit/fleet-line-scan.test.ts compares the row builder with and
 * without the scanner on fixtures and fuzzed lines.
 */

/** what a field holds */
export const K_ABSENT = 0;
/** a string without escapes: bytes start..end (between the quotes) */
export const K_STR = 1;
/** a string with escapes: start..end between the quotes, decode the token start-1..end+1 */
export const K_ESC = 2;
/** an integer of at most 15 digits: num */
export const K_NUM = 3;
/** anything else (null, true, false, an array, a long integer; `event`: not an object) */
export const K_OTHER = 4;
/** `event` only: an object (its fields are read) */
export const K_OBJ = 5;

// top-level fields
export const F_COMM = 0;
export const F_CONTAINER_ID = 1;
export const F_EVENT = 2;
export const F_IMAGE_DIGEST = 3;
export const F_PID = 4;
export const F_SRC = 5;
export const F_TID = 6;
// fields of `event`
export const E_TYPE = 7;
export const E_PATH = 8;
export const E_ACCESS = 9;
export const E_FILENAME = 10;
export const E_ADDR = 11;
export const E_PORT = 12;
export const E_DADDR = 13;
export const E_DPORT = 14;
export const E_SADDR = 15;
export const E_SPORT = 16;
export const E_BYTES = 17;
export const E_OPERATION = 18;
export const E_SYMBOL = 19;
export const E_LIBRARY = 20;
export const E_NODE_HASH = 21;
export const E_RUNTIME = 22;
const NFIELDS = 23;

const MAX_DEPTH = 64;
/** digits of an integer read as a number: at most 15, always a safe integer */
const MAX_NUM_DIGITS = 15;

type Names = (readonly [Uint8Array, number])[][];

function names(list: [string, number][]): Names {
  const by: Names = [];
  for (const [n, slot] of list) (by[n.length] ??= []).push([Buffer.from(n, 'latin1'), slot]);
  return by;
}

const TOP = names([['comm', F_COMM], ['container_id', F_CONTAINER_ID], ['event', F_EVENT], ['image_digest', F_IMAGE_DIGEST], ['pid', F_PID], ['src', F_SRC], ['tid', F_TID]]);
const EVENT = names([
  ['type', E_TYPE], ['path', E_PATH], ['access', E_ACCESS], ['filename', E_FILENAME], ['addr', E_ADDR], ['port', E_PORT], ['daddr', E_DADDR],
  ['dport', E_DPORT], ['saddr', E_SADDR], ['sport', E_SPORT], ['bytes', E_BYTES], ['operation', E_OPERATION], ['symbol', E_SYMBOL],
  ['library', E_LIBRARY], ['node_hash', E_NODE_HASH], ['runtime', E_RUNTIME],
]);

function slotOf(b: Uint8Array, ks: number, len: number, table: Names): number {
  const cands = table[len];
  if (cands === undefined) return -1;
  outer: for (let c = 0; c < cands.length; c++) {
    const n = cands[c]![0];
    for (let i = 0; i < len; i++) if (b[ks + i] !== n[i]) continue outer;
    return cands[c]![1];
  }
  return -1;
}

/** a byte-wise compare of two keys: > 0 when a > b */
function cmpKeys(b: Uint8Array, as: number, ae: number, bs: number, be: number): number {
  const la = ae - as;
  const lb = be - bs;
  const n = la < lb ? la : lb;
  for (let i = 0; i < n; i++) {
    const d = b[as + i]! - b[bs + i]!;
    if (d !== 0) return d;
  }
  return la - lb;
}

/** 1: a byte that stands for itself inside a string token (not '"', '\\', a control character) */
const PLAIN = new Uint8Array(256);
for (let c = 0x20; c < 256; c++) if (c !== 0x22 && c !== 0x5c) PLAIN[c] = 1;

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

export class LineScan {
  readonly kind = new Uint8Array(NFIELDS);
  readonly start = new Int32Array(NFIELDS);
  readonly end = new Int32Array(NFIELDS);
  readonly num = new Float64Array(NFIELDS);
  #escaped = false;
  #value = 0;

  /**
   * scan reads the line b[s..e) (without its newline; b valid UTF-8). true: the fields are
   * set (kind, start, end, num); false: not a line this scanner reads exactly.
   */
  scan(b: Uint8Array, s: number, e: number): boolean {
    this.kind.fill(K_ABSENT);
    return this.#object(b, s, e, TOP) === e;
  }

  /** an object whose fields of `table` are read; returns the index after it, or -1 */
  #object(b: Uint8Array, i: number, e: number, table: Names): number {
    if (i >= e || b[i] !== 0x7b) return -1;
    i++;
    if (i < e && b[i] === 0x7d) return i + 1;
    let prevS = -1;
    let prevE = -1;
    for (;;) {
      if (i >= e || b[i] !== 0x22) return -1;
      const ks = i + 1;
      i = this.#string(b, i, e);
      if (i < 0 || this.#escaped) return -1;
      const ke = i - 1;
      if (prevS >= 0 && cmpKeys(b, ks, ke, prevS, prevE) <= 0) return -1;
      prevS = ks;
      prevE = ke;
      if (i >= e || b[i] !== 0x3a) return -1;
      i++;
      const slot = slotOf(b, ks, ke - ks, table);
      if (slot === F_EVENT) {
        if (i < e && b[i] === 0x7b) {
          i = this.#object(b, i, e, EVENT);
          this.kind[F_EVENT] = K_OBJ;
        } else {
          i = this.#skip(b, i, e, 1);
          this.kind[F_EVENT] = K_OTHER;
        }
      } else if (slot >= 0) {
        i = this.#field(b, i, e, slot);
      } else {
        i = this.#skip(b, i, e, 1);
      }
      if (i < 0 || i >= e) return -1;
      const c = b[i];
      if (c === 0x2c) {
        i++;
        continue;
      }
      if (c === 0x7d) return i + 1;
      return -1;
    }
  }

  #field(b: Uint8Array, i: number, e: number, slot: number): number {
    if (i >= e) return -1;
    const c = b[i]!;
    if (c === 0x22) {
      const j = this.#string(b, i, e);
      if (j < 0) return -1;
      this.kind[slot] = this.#escaped ? K_ESC : K_STR;
      this.start[slot] = i + 1;
      this.end[slot] = j - 1;
      return j;
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      const j = this.#number(b, i, e);
      if (j < 0) return -1;
      // a longer integer could be beyond a safe integer: JSON.parse's rounding is not ours to copy
      if (j - i - (c === 0x2d ? 1 : 0) > MAX_NUM_DIGITS) return -1;
      this.kind[slot] = K_NUM;
      this.num[slot] = this.#value;
      return j;
    }
    this.kind[slot] = K_OTHER;
    return this.#skip(b, i, e, 1);
  }

  /** a string token at b[i] === '"'; returns the index after its closing quote, or -1; #escaped tells whether it had escapes */
  #string(b: Uint8Array, i: number, e: number): number {
    let escaped = false;
    i++;
    while (i < e) {
      // the bytes that are only themselves (most of them) in one table look-up each
      if (PLAIN[b[i]!] === 1) {
        i++;
        continue;
      }
      const c = b[i]!;
      if (c === 0x22) {
        this.#escaped = escaped;
        return i + 1;
      }
      if (c === 0x5c) {
        escaped = true;
        if (i + 1 >= e) return -1;
        const d = b[i + 1]!;
        if (d === 0x75) {
          if (i + 5 >= e || !isHex(b[i + 2]!) || !isHex(b[i + 3]!) || !isHex(b[i + 4]!) || !isHex(b[i + 5]!)) return -1;
          i += 6;
          continue;
        }
        if (d === 0x22 || d === 0x5c || d === 0x2f || d === 0x62 || d === 0x66 || d === 0x6e || d === 0x72 || d === 0x74) {
          i += 2;
          continue;
        }
        return -1;
      }
      if (c < 0x20) return -1;
      i++;
    }
    return -1;
  }

  /** an integer; returns the index after it or -1; #value is its value when it has at most 15 digits */
  #number(b: Uint8Array, i: number, e: number): number {
    let neg = false;
    if (b[i] === 0x2d) {
      neg = true;
      i++;
    }
    if (i >= e) return -1;
    let c = b[i]!;
    let v = 0;
    if (c === 0x30) {
      if (neg) return -1; // -0: valid JSON, but not canonical; let JSON.parse have it
      i++;
    } else if (c >= 0x31 && c <= 0x39) {
      v = c - 0x30;
      i++;
      while (i < e) {
        c = b[i]!;
        if (c < 0x30 || c > 0x39) break;
        v = v * 10 + (c - 0x30);
        i++;
      }
    } else {
      return -1;
    }
    if (i < e) {
      c = b[i]!;
      // a fraction, an exponent or a digit after a leading 0: not read here
      if (c === 0x2e || c === 0x65 || c === 0x45 || (c >= 0x30 && c <= 0x39)) return -1;
    }
    this.#value = neg ? -v : v;
    return i;
  }

  /** any value; returns the index after it or -1 */
  #skip(b: Uint8Array, i: number, e: number, depth: number): number {
    if (i >= e) return -1;
    const c = b[i]!;
    if (c === 0x22) return this.#string(b, i, e);
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.#number(b, i, e);
    if (c === 0x7b || c === 0x5b) {
      if (depth >= MAX_DEPTH) return -1;
      const close = c === 0x7b ? 0x7d : 0x5d;
      i++;
      if (i < e && b[i] === close) return i + 1;
      for (;;) {
        if (c === 0x7b) {
          if (i >= e || b[i] !== 0x22) return -1;
          i = this.#string(b, i, e);
          if (i < 0 || i >= e || b[i] !== 0x3a) return -1;
          i++;
        }
        i = this.#skip(b, i, e, depth + 1);
        if (i < 0 || i >= e) return -1;
        const d = b[i];
        if (d === 0x2c) {
          i++;
          continue;
        }
        if (d === close) return i + 1;
        return -1;
      }
    }
    if (c === 0x74) return i + 3 < e && b[i + 1] === 0x72 && b[i + 2] === 0x75 && b[i + 3] === 0x65 ? i + 4 : -1;
    if (c === 0x66) return i + 4 < e && b[i + 1] === 0x61 && b[i + 2] === 0x6c && b[i + 3] === 0x73 && b[i + 4] === 0x65 ? i + 5 : -1;
    if (c === 0x6e) return i + 3 < e && b[i + 1] === 0x75 && b[i + 2] === 0x6c && b[i + 3] === 0x6c ? i + 4 : -1;
    return -1;
  }
}

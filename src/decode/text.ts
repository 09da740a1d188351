import { isUtf8 } from 'node:buffer';

/**
 * Text from the kernel is bytes, not UTF-8. Valid UTF-8 decodes as is; anything else is
 * decoded with "surrogateescape" (PEP 383): each byte that is not part of a valid UTF-8
 * sequence becomes the lone surrogate U+DC80..U+DCFF, which JSON.stringify writes as an
 * escape such as "\udcff". The line stays valid JSON and the original bytes can be
 * recovered exactly (docs/format.md, "Strings").
 */

/** A cut string ends with this marker; the probe's `truncated` counter counts it. */
export const TRUNCATION_MARK = '\u2026';

export interface TextStats {
  /** strings that were not valid UTF-8 and were escaped */
  invalidUtf8: number;
}

export function decodeText(bytes: Uint8Array, stats: TextStats): string {
  return decodeTextAt(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), 0, bytes.byteLength, stats);
}

/**
 * decodeTextAt decodes buf[start, end). Kernel strings are nearly always ASCII, which a byte
 * loop recognises faster than isUtf8 on a subarray (bench/fast-paths.bench.ts: 1.3-1.9× on 20,000
 * real paths, on a machine at load 16; docs/benchmarks.md, "User-space pipeline").
 */
export function decodeTextAt(buf: Buffer, start: number, end: number, stats: TextStats): string {
  let i = start;
  while (i < end && buf[i]! < 0x80) i++;
  if (i === end) return latin1(buf, start, end);
  return decodeNonAscii(buf.subarray(start, end), stats);
}

type Latin1Slicer = (this: Buffer, start: number, end: number) => string;
/** Buffer's internal latin1Slice skips toString's argument handling; toString where it is missing. */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: Latin1Slicer }).latin1Slice;
function latin1(buf: Buffer, start: number, end: number): string {
  return latin1Slice !== undefined ? latin1Slice.call(buf, start, end) : buf.toString('latin1', start, end);
}

function decodeNonAscii(bytes: Buffer, stats: TextStats): string {
  if (isUtf8(bytes)) return bytes.toString('utf8');
  stats.invalidUtf8++;
  return decodeSurrogateEscape(bytes);
}

/** decodeSurrogateEscape decodes UTF-8, mapping every invalid byte b to U+DC00 + b. */
export function decodeSurrogateEscape(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b0 = bytes[i]!;
    if (b0 < 0x80) {
      out += String.fromCharCode(b0);
      i++;
      continue;
    }
    const need = b0 >= 0xc2 && b0 <= 0xdf ? 1 : b0 >= 0xe0 && b0 <= 0xef ? 2 : b0 >= 0xf0 && b0 <= 0xf4 ? 3 : -1;
    const cp = need > 0 ? readSequence(bytes, i, need) : -1;
    if (cp < 0) {
      out += String.fromCharCode(0xdc00 + b0);
      i++;
      continue;
    }
    out += String.fromCodePoint(cp);
    i += need + 1;
  }
  return out;
}

/** readSequence returns the code point of a valid sequence at i, or -1. */
function readSequence(bytes: Uint8Array, i: number, need: number): number {
  if (i + need >= bytes.length) return -1;
  const b0 = bytes[i]!;
  let cp = b0 & (need === 1 ? 0x1f : need === 2 ? 0x0f : 0x07);
  for (let k = 1; k <= need; k++) {
    const b = bytes[i + k]!;
    if ((b & 0xc0) !== 0x80) return -1;
    cp = (cp << 6) | (b & 0x3f);
  }
  const min = need === 1 ? 0x80 : need === 2 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
  return cp;
}

/** decodeComm decodes a NUL-padded 16-byte task comm. */
export function decodeComm(bytes: Uint8Array, stats: TextStats): string {
  let end = bytes.indexOf(0);
  if (end < 0) end = bytes.length;
  return decodeText(bytes.subarray(0, end), stats);
}

/** decodeCommAt decodes the NUL-padded comm of `length` bytes at `start`. */
export function decodeCommAt(buf: Buffer, start: number, length: number, stats: TextStats): string {
  let end = start;
  while (end < start + length && buf[end] !== 0) end++;
  return decodeTextAt(buf, start, end, stats);
}

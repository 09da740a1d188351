import * as fs from 'node:fs';
import { RtevError } from '../errors';

/** The longest line a reader of records takes (a record is a few KiB; evidence lines are bounded by 1 MiB too). */
export const MAX_INPUT_LINE_BYTES = 1 << 20;

/**
 * checkInputFile checks that `file` is something a reader of lines can finish: a regular
 * file or a pipe. A device (/dev/zero, /dev/urandom) or a directory is a usage error.
 */
export function checkInputFile(file: string, what = 'input', fix = 'give an NDJSON file (e.g. from rtev collect --stdout > FILE)'): fs.Stats {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new RtevError('USAGE', `cannot read ${what} ${file}`, { cause: err, hint: 'check the path' });
  }
  if (!st.isFile() && !st.isFIFO()) {
    throw new RtevError('USAGE', `${what} ${file} is not a regular file or a pipe`, { hint: fix });
  }
  return st;
}

/**
 * boundedLines yields the lines of a byte stream (without "\n"; a last line without one
 * included) and refuses a line longer than `maxLineBytes` with a usage error, so a file
 * without newlines cannot grow memory without bound.
 */
export async function* boundedLines(input: AsyncIterable<Buffer | string>, source: string, maxLineBytes = MAX_INPUT_LINE_BYTES, stripCr = false): AsyncGenerator<string> {
  const text = (b: Buffer): string => (stripCr ? b.toString('utf8').replace(/\r$/, '') : b.toString('utf8'));
  let carry: Buffer[] = [];
  let carryLen = 0;
  let lineNo = 0;
  const tooLong = (): RtevError => new RtevError('USAGE', `${source}: line ${lineNo + 1} is longer than ${maxLineBytes} bytes: not NDJSON records`, {
    hint: 'give an NDJSON file of records (one JSON object per line)',
  });
  for await (const chunk of input) {
    const part = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    let start = 0;
    for (let nl = part.indexOf(10); nl >= 0; nl = part.indexOf(10, start)) {
      if (carryLen + (nl - start) > maxLineBytes) throw tooLong();
      const piece = part.subarray(start, nl);
      const line = carryLen > 0 ? Buffer.concat([...carry, piece]) : piece;
      carry = [];
      carryLen = 0;
      lineNo++;
      yield text(line);
      start = nl + 1;
    }
    if (start < part.length) {
      carry.push(Buffer.from(part.subarray(start)));
      carryLen += part.length - start;
      if (carryLen > maxLineBytes) throw tooLong();
    }
  }
  if (carryLen > 0) yield text(Buffer.concat(carry));
}

/** fileLines is boundedLines over a file (checked with checkInputFile). */
export function fileLines(file: string, what = 'input', stripCr = false): AsyncGenerator<string> {
  checkInputFile(file, what);
  return boundedLines(fs.createReadStream(file, { highWaterMark: 1 << 20 }), file, MAX_INPUT_LINE_BYTES, stripCr);
}

/**
 * readBoundedText reads a regular file of at most `maxBytes` (a device, a directory or a larger
 * file is a usage error naming the limit), for the small inputs read whole (--functions, --frames).
 */
export function readBoundedText(file: string, maxBytes: number, what: string): string {
  const st = checkInputFile(file, what, 'give a regular file');
  if (st.isFile() && st.size > maxBytes) {
    throw new RtevError('USAGE', `${what} ${file} is ${st.size} bytes; the limit is ${maxBytes}`, { hint: 'give a smaller file' });
  }
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (let r; n < buf.length && (r = fs.readSync(fd, buf, n, buf.length - n, null)) > 0;) n += r;
    if (n > maxBytes) throw new RtevError('USAGE', `${what} ${file} is longer than the limit of ${maxBytes} bytes`, { hint: 'give a smaller file' });
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}

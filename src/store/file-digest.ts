import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { openNoFollow } from './fsio';

export interface FileDigest {
  sha256: string;
  bytes: number;
  /** complete ("\n"-terminated) lines */
  lines: number;
}

/** digestFile streams a regular file (no symlinks) through sha256 and counts its lines. */
export function digestFile(file: string): FileDigest {
  const fd = openNoFollow(file);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file`);
    const hash = crypto.createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    let bytes = 0;
    let lines = 0;
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, bytes);
      if (n === 0) break;
      const part = buf.subarray(0, n);
      hash.update(part);
      for (let i = part.indexOf(10); i >= 0; i = part.indexOf(10, i + 1)) lines++;
      bytes += n;
    }
    return { sha256: hash.digest('hex'), bytes, lines };
  } finally {
    fs.closeSync(fd);
  }
}

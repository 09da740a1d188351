import * as fs from 'node:fs';
import { SymbolizeError } from './errors';

/**
 * ByteSource gives bounded random access to a file or buffer. Parsers never read a whole
 * binary: they read headers, then the few sections they need.
 */
export interface ByteSource {
  readonly size: number;
  /** read returns exactly `length` bytes at `offset` or throws ELF_MALFORMED. */
  read(offset: number, length: number): Buffer;
  close(): void;
}

/** bufferSource wraps an in-memory object (a decompressed MiniDebugInfo ELF, a test fixture). */
export function bufferSource(buf: Buffer): ByteSource {
  return {
    size: buf.length,
    read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > buf.length) {
        throw new SymbolizeError('ELF_MALFORMED', `read ${length} bytes at ${offset} past end of ${buf.length}-byte object`);
      }
      return buf.subarray(offset, offset + length);
    },
    close() {},
  };
}

/** FileStat is the identity of an opened file: uprobes and caches key on (dev, ino). */
export interface FileStat {
  dev: bigint;
  ino: bigint;
  size: number;
  mtimeNs: bigint;
}

/**
 * Host is every filesystem access the symbolizer makes, so tests can inject a fake root and
 * the rest of src/symbolize stays free of node:fs.
 */
export interface Host {
  open(path: string): ByteSource;
  stat(path: string): FileStat;
  /** readText reads at most `cap` bytes; longer files are cut (the caller is told by `truncated`). */
  readText(path: string, cap: number): { text: string; truncated: boolean };
  readdir(path: string): string[];
  readlink(path: string): string;
  exists(path: string): boolean;
}

function fileSource(path: string): ByteSource {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw new SymbolizeError('IO', `open ${path}`, { cause: err });
  }
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new SymbolizeError('IO', `${path} is not a regular file`);
    size = st.size;
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof SymbolizeError ? err : new SymbolizeError('IO', `stat ${path}`, { cause: err });
  }
  let open = true;
  return {
    size,
    read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > size) {
        throw new SymbolizeError('ELF_MALFORMED', `read ${length} bytes at ${offset} past end of ${path} (${size} bytes)`);
      }
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = fs.readSync(fd, out, done, length - done, offset + done);
        if (n <= 0) throw new SymbolizeError('IO', `short read of ${path} at ${offset + done}`);
        done += n;
      }
      return out;
    },
    close() {
      if (open) fs.closeSync(fd);
      open = false;
    },
  };
}

/** nodeHost is the real filesystem. */
export const nodeHost: Host = {
  open: fileSource,
  stat(path) {
    try {
      const st = fs.statSync(path, { bigint: true });
      return { dev: st.dev, ino: st.ino, size: Number(st.size), mtimeNs: st.mtimeNs };
    } catch (err) {
      throw new SymbolizeError('IO', `stat ${path}`, { cause: err });
    }
  },
  readText(path, cap) {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw new SymbolizeError('IO', `open ${path}`, { cause: err });
    }
    try {
      // /proc files report size 0, so read in chunks up to the cap instead of trusting stat.
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const want = Math.min(65536, cap + 1 - total);
        if (want <= 0) break;
        const b = Buffer.allocUnsafe(want);
        const n = fs.readSync(fd, b, 0, want, null);
        if (n <= 0) break;
        chunks.push(b.subarray(0, n));
        total += n;
      }
      const all = Buffer.concat(chunks);
      const truncated = all.length > cap;
      return { text: all.subarray(0, Math.min(all.length, cap)).toString('utf8'), truncated };
    } catch (err) {
      throw new SymbolizeError('IO', `read ${path}`, { cause: err });
    } finally {
      fs.closeSync(fd);
    }
  },
  readdir(path) {
    try {
      return fs.readdirSync(path);
    } catch (err) {
      throw new SymbolizeError('IO', `readdir ${path}`, { cause: err });
    }
  },
  readlink(path) {
    try {
      return fs.readlinkSync(path);
    } catch (err) {
      throw new SymbolizeError('IO', `readlink ${path}`, { cause: err });
    }
  },
  exists(path) {
    return fs.existsSync(path);
  },
};

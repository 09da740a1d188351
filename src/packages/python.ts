import * as path from 'node:path/posix';

/** RecordRow is one row of a wheel's RECORD (PEP 376/627): path, hash, size. */
export interface RecordRow {
  path: string;
  hash?: string;
  size?: number;
}

/**
 * parseRecord reads a dist-info RECORD: CSV rows `path,sha256=<b64>,size`, paths relative to
 * the directory holding the dist-info (site-packages). Quoted fields (paths with commas) are
 * understood; rows without a path are skipped.
 */
export function parseRecord(text: string, maxRows = 200_000): RecordRow[] {
  const rows: RecordRow[] = [];
  for (const line of text.split('\n')) {
    if (rows.length >= maxRows) break;
    const f = csvFields(line.replace(/\r$/, ''));
    if (f.length === 0 || f[0] === '' || f[0]!.length > 4096) continue;
    const row: RecordRow = { path: f[0]! };
    if (f[1] !== undefined && f[1] !== '') row.hash = f[1];
    const size = Number(f[2]);
    if (f[2] !== undefined && f[2] !== '' && Number.isSafeInteger(size) && size >= 0) row.size = size;
    rows.push(row);
  }
  return rows;
}

function csvFields(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  if (line === '') return out;
  while (i <= line.length) {
    if (line[i] === '"') {
      let v = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) return out; // unterminated quote: not a row
        v += line.slice(i, q);
        if (line[q + 1] === '"') {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
      if (line[i] === ',') i++;
      else break;
    } else {
      const c = line.indexOf(',', i);
      if (c < 0) {
        out.push(line.slice(i));
        break;
      }
      out.push(line.slice(i, c));
      i = c + 1;
    }
    if (out.length > 8) break;
  }
  return out;
}

/** parseWheelMetadata reads Name and Version from the RFC 822 header of METADATA or PKG-INFO. */
export function parseWheelMetadata(text: string): { name?: string; version?: string } {
  const out: { name?: string; version?: string } = {};
  for (const line of text.slice(0, 65536).split('\n')) {
    if (line.trim() === '') break; // the body (long description) follows the first blank line
    const m = /^(Name|Version):\s*(\S{1,256})\s*$/.exec(line);
    if (m === null) continue;
    if (m[1] === 'Name' && /^[A-Za-z0-9._-]+$/.test(m[2]!)) out.name = m[2]!;
    if (m[1] === 'Version' && /^[A-Za-z0-9.!+_-]+$/.test(m[2]!)) out.version = m[2]!;
  }
  return out;
}

/** distInfoDirName splits `pyOpenSSL-23.0.0.dist-info` into name and version. */
export function distInfoDirName(dir: string): { name: string; version: string } | undefined {
  const m = /^([A-Za-z0-9._]+?)-([A-Za-z0-9.!+_]+)\.dist-info$/.exec(dir);
  return m === null ? undefined : { name: m[1]!, version: m[2]! };
}

/**
 * sitePackagesOf returns the site-packages (or dist-packages) directory a path lies under,
 * the directory RECORD paths are relative to; undefined when there is none.
 */
export function sitePackagesOf(p: string): string | undefined {
  const m = /^(.*\/(?:site|dist)-packages)\//.exec(p);
  return m === null ? undefined : m[1];
}

/** recordTarget resolves a RECORD path against its site-packages directory. */
export function recordTarget(siteDir: string, rel: string): string {
  return path.normalize(path.join(siteDir, rel));
}

import * as zlib from 'node:zlib';
import type { ByteSource } from '../symbolize/host';
import { DEFAULT_PACKAGE_LIMITS, MalformedError, TooLargeError, type PackageLimits } from './limits';

/** JarCoordinates are the Maven coordinates a jar declares about itself. */
export interface JarCoordinates {
  group?: string;
  artifact: string;
  version: string;
  via: 'jar-pom' | 'jar-manifest';
}

interface ZipEntry {
  name: string;
  method: number;
  compressed: number;
  size: number;
  localOffset: number;
}

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;

/** zipEntries reads a zip's central directory (end record searched in the last 64 KiB + 22 bytes). */
export function zipEntries(src: ByteSource, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): ZipEntry[] {
  const tail = Math.min(src.size, 65535 + 22);
  if (tail < 22) throw new MalformedError('not a zip file (too short)');
  const buf = src.read(src.size - tail, tail);
  let eocd = -1;
  for (let i = buf.length - 22; i >= 0; i--) {
    if (buf.readUInt32LE(i) === EOCD_SIG) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new MalformedError('no zip end of central directory');
  const count = buf.readUInt16LE(eocd + 10);
  const cdSize = buf.readUInt32LE(eocd + 12);
  const cdOffset = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || cdOffset === 0xffffffff) throw new TooLargeError('zip64 archives are not read');
  if (count > limits.maxZipEntries || cdSize > limits.maxZipDirectoryBytes) throw new TooLargeError(`zip directory of ${count} entries, ${cdSize} bytes`);
  if (cdOffset + cdSize > src.size) throw new MalformedError('zip central directory past the end of the file');
  const cd = src.read(cdOffset, cdSize);
  const out: ZipEntry[] = [];
  let o = 0;
  for (let n = 0; n < count; n++) {
    if (o + 46 > cd.length || cd.readUInt32LE(o) !== CEN_SIG) throw new MalformedError('bad zip central directory entry');
    const nameLen = cd.readUInt16LE(o + 28);
    const extraLen = cd.readUInt16LE(o + 30);
    const commentLen = cd.readUInt16LE(o + 32);
    if (o + 46 + nameLen > cd.length) throw new MalformedError('zip entry name past the directory');
    out.push({
      name: cd.toString('utf8', o + 46, o + 46 + nameLen),
      method: cd.readUInt16LE(o + 10),
      compressed: cd.readUInt32LE(o + 20),
      size: cd.readUInt32LE(o + 24),
      localOffset: cd.readUInt32LE(o + 42),
    });
    o += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}

/** zipRead returns one entry's bytes (stored or deflated), at most maxBytes. */
export function zipRead(src: ByteSource, e: ZipEntry, maxBytes: number): Buffer {
  if (e.size > maxBytes || e.compressed > maxBytes * 4 + 1024) throw new TooLargeError(`zip entry ${e.name} of ${e.size} bytes`);
  const loc = src.read(e.localOffset, 30);
  if (loc.readUInt32LE(0) !== LOC_SIG) throw new MalformedError(`bad local header of ${e.name}`);
  const start = e.localOffset + 30 + loc.readUInt16LE(26) + loc.readUInt16LE(28);
  const data = src.read(start, e.compressed);
  if (e.method === 0) return data;
  if (e.method !== 8) throw new MalformedError(`zip method ${e.method} of ${e.name}`);
  try {
    return zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, maxBytes) });
  } catch (err) {
    throw new MalformedError(`cannot inflate ${e.name}: ${String(err)}`);
  }
}

/** parseProperties reads a Java .properties file (key=value or key: value, # comments). */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const m = /^([^=:\s]+)\s*[=:]\s*(.*)$/.exec(line);
    if (m !== null && out.size < 1024) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** parseManifest reads META-INF/MANIFEST.MF main attributes (72-byte lines continued by a space). */
export function parseManifest(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let last: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (line === '') break; // end of the main section
    if (line.startsWith(' ') && last !== undefined) {
      out.set(last, out.get(last)! + line.slice(1));
      continue;
    }
    const c = line.indexOf(':');
    if (c <= 0 || out.size >= 1024) continue;
    last = line.slice(0, c).trim();
    out.set(last, line.slice(c + 1).trim());
  }
  return out;
}

const COORD_RE = /^[A-Za-z0-9._+-]{1,256}$/;

/**
 * readJarCoordinates names what a jar declares itself to be: its
 * META-INF/maven/<g>/<a>/pom.properties when it has exactly one (or one whose artifactId
 * starts the jar's file name), else the manifest's Implementation-Title/Bundle-SymbolicName
 * and Implementation-Version/Bundle-Version. Nested jars (BOOT-INF/lib) are not opened.
 */
export function readJarCoordinates(src: ByteSource, fileName: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): JarCoordinates | undefined {
  const entries = zipEntries(src, limits);
  const poms = entries.filter((e) => /^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/.test(e.name));
  const base = fileName.replace(/^.*\//, '');
  let pom = poms.length === 1 ? poms[0] : undefined;
  if (pom === undefined && poms.length > 1) pom = poms.find((e) => base.startsWith(e.name.split('/')[3]! + '-'));
  if (pom !== undefined) {
    const p = parseProperties(zipRead(src, pom, limits.maxSmallFileBytes).toString('utf8'));
    const g = p.get('groupId');
    const a = p.get('artifactId');
    const v = p.get('version');
    if (a !== undefined && v !== undefined && COORD_RE.test(a) && COORD_RE.test(v) && (g === undefined || COORD_RE.test(g))) {
      return { ...(g !== undefined ? { group: g } : {}), artifact: a, version: v, via: 'jar-pom' };
    }
  }
  const mf = entries.find((e) => e.name === 'META-INF/MANIFEST.MF');
  if (mf === undefined) return undefined;
  const m = parseManifest(zipRead(src, mf, limits.maxSmallFileBytes).toString('utf8'));
  const title = (m.get('Bundle-SymbolicName')?.split(';')[0] ?? m.get('Implementation-Title'))?.trim();
  const version = (m.get('Implementation-Version') ?? m.get('Bundle-Version'))?.trim();
  const vendor = m.get('Implementation-Vendor-Id')?.trim();
  if (title === undefined || version === undefined || !COORD_RE.test(version)) return undefined;
  // a symbolic name like org.apache.commons.lang3 is group + artifact in one; keep it as the name
  const artifact = title.replace(/\s+/g, '-');
  if (!COORD_RE.test(artifact)) return undefined;
  return { ...(vendor !== undefined && COORD_RE.test(vendor) ? { group: vendor } : {}), artifact, version, via: 'jar-manifest' };
}

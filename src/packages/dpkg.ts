import { debPurl } from './purl';
import { isAscii } from 'node:buffer';
import { PathTable, pathHash, viewOf, type PathTableParts } from './path-table';
import { DEFAULT_PACKAGE_LIMITS, TooLargeError, type PackageLimits } from './limits';
import type { OsRelease } from './os-release';

/** DpkgPackage is one installed stanza of /var/lib/dpkg/status. */
export interface DpkgPackage {
  name: string;
  version: string;
  arch?: string;
  multiArch?: string;
  /** the source package (`Source: openssl` or `Source: glibc (2.36-9)`) when the stanza has one */
  source?: { name: string; version?: string };
}

export interface DpkgStatus {
  packages: DpkgPackage[];
  /** stanzas skipped: no Package/Version, bad characters, over a field bound */
  malformed: number;
  /** stanzas of packages not on disk (not-installed, config-files) */
  notInstalled: number;
}

const NAME_RE = /^[a-z0-9][a-z0-9+.-]{0,255}$/;
const VERSION_RE = /^[A-Za-z0-9.+~:-]{1,256}$/;
const ARCH_RE = /^[a-z0-9-]{1,64}$/;
/** dpkg states whose files are on disk */
const ON_DISK = new Set(['installed', 'half-configured', 'unpacked', 'half-installed', 'triggers-awaited', 'triggers-pending']);

/**
 * parseDpkgStatus reads dpkg's status file (deb822 stanzas separated by blank lines,
 * continuation lines start with a space). It scans line by line (no regex over the whole
 * text), keeps only fields it needs, and skips (counts) stanzas that break a bound.
 * Throws TooLargeError when the text or stanza count exceeds the limits.
 */
export function parseDpkgStatus(text: string, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): DpkgStatus {
  if (text.length > limits.maxStatusBytes) throw new TooLargeError(`dpkg status of ${text.length} bytes`);
  const out: DpkgStatus = { packages: [], malformed: 0, notInstalled: 0 };
  let fields = new Map<string, string>();
  let count = 0;
  let bad = false;
  let last: string | undefined;
  const finish = (): void => {
    if (fields.size === 0 && !bad) return;
    if (++count > limits.maxPackages) throw new TooLargeError(`dpkg status with more than ${limits.maxPackages} stanzas`);
    const p = bad ? undefined : stanza(fields);
    if (p === 'not-installed') out.notInstalled++;
    else if (p === undefined) out.malformed++;
    else out.packages.push(p);
    fields = new Map();
    bad = false;
    last = undefined;
  };
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).replace(/\r$/, '');
    start = end + 1;
    if (line.trim() === '') {
      finish();
      continue;
    }
    if (bad) continue;
    if (line[0] === ' ' || line[0] === '\t') {
      // continuation of the previous field: only Description and Conffiles have them; kept short
      if (last !== undefined && (fields.get(last)?.length ?? 0) + line.length <= limits.maxFieldBytes) fields.set(last, fields.get(last) + '\n' + line);
      else if (last === undefined) bad = true;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0 || line.length > limits.maxFieldBytes || fields.size >= limits.maxFieldsPerStanza) {
      bad = true;
      continue;
    }
    last = line.slice(0, colon);
    fields.set(last, line.slice(colon + 1).trim());
  }
  finish();
  return out;
}

function stanza(f: Map<string, string>): DpkgPackage | 'not-installed' | undefined {
  const name = f.get('Package');
  const version = f.get('Version');
  const status = (f.get('Status') ?? '').split(/\s+/);
  if (status.length === 3 && !ON_DISK.has(status[2]!)) return 'not-installed';
  if (name === undefined || version === undefined || !NAME_RE.test(name) || !VERSION_RE.test(version)) return undefined;
  const p: DpkgPackage = { name, version };
  const arch = f.get('Architecture');
  if (arch !== undefined) {
    if (!ARCH_RE.test(arch)) return undefined;
    p.arch = arch;
  }
  const ma = f.get('Multi-Arch');
  if (ma !== undefined && /^[a-z]{1,16}$/.test(ma)) p.multiArch = ma;
  const src = f.get('Source');
  if (src !== undefined && src !== '') {
    const m = /^([a-z0-9][a-z0-9+.-]{0,255})(?: \(([A-Za-z0-9.+~:-]{1,256})\))?$/.exec(src);
    if (m === null) return undefined;
    p.source = { name: m[1]!, ...(m[2] !== undefined ? { version: m[2] } : {}) };
  }
  return p;
}

/**
 * parseDpkgList yields the absolute paths of an info/<pkg>.list file (one per line; the
 * first line is `/.`). Lines that are not absolute paths are skipped.
 */
export function parseDpkgList(text: string, each: (path: string) => void): number {
  let skipped = 0;
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    if (line.length > 1 && line[0] === '/' && line.length <= 4096 && !line.includes('\0')) each(line);
    else if (line !== '/.' && line !== '') skipped++;
  }
  return skipped;
}

/** plainRange: buf[start, end) has no NUL and no byte >= 0x80 */
function plainRange(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c === 0 || c >= 0x80) return false;
  }
  return true;
}

/** usrMergeAliases: a path and its merged-/usr twin (`/lib/x` and `/usr/lib/x`). */
export function usrMergeAliases(p: string): string[] {
  const m = /^\/usr(\/(?:lib|lib32|lib64|libx32|bin|sbin)\/.*)$/.exec(p);
  if (m !== null) return [p, m[1]!];
  if (/^\/(?:lib|lib32|lib64|libx32|bin|sbin)\//.test(p)) return [p, '/usr' + p];
  return [p];
}

/**
 * pyToSource maps a compiled Python file to the source dpkg and RECORD list:
 * `d/__pycache__/m.cpython-311.pyc` (and `.opt-1.pyc`) -> `d/m.py`, `d/m.pyc` -> `d/m.py`.
 */
export function pyToSource(p: string): string | undefined {
  const m = /^(.*\/)__pycache__\/([^/]+?)\.[a-z]+-\d+(?:\.opt-\d)?\.pyc$/.exec(p);
  if (m !== null) return `${m[1]}${m[2]}.py`;
  if (p.endsWith('.pyc')) return p.slice(0, -1);
  return undefined;
}

/** A finished DpkgIndex as a cache file keeps it (DpkgIndex.snapshot / restore). */
export interface DpkgSnapshot {
  packages: DpkgPackage[];
  counters: DpkgCounters;
  table: PathTableParts;
}

export interface DpkgCounters {
  packages: number;
  lists: number;
  ownedPaths: number;
  malformedStanzas: number;
  skippedListLines: number;
  /** list files whose package is not in the status file (left over, or a hostile db) */
  orphanLists: number;
}

/**
 * DpkgIndex answers "which installed package owns this path" for one root. It is built
 * from the status text, the list files and the root's os-release; it never reads a file.
 * The owned paths are kept as bytes in a PathTable (one arena, typed arrays), not as a
 * Map of strings: ≈ 11 MB instead of ≈ 40 MB for a host's 138k paths.
 */
export class DpkgIndex {
  readonly #owner: PathTable;
  readonly #pkgs: DpkgPackage[] = [];
  readonly #byStem = new Map<string, number>();
  readonly #os: OsRelease;
  /** purlOf answers, per package (WeakMap: a restored index keeps its own packages) */
  readonly #purls = new WeakMap<DpkgPackage, string>();
  readonly counters: DpkgCounters;

  /** `owner`: a table of owned paths from a cache (DpkgIndex.restore); default: an empty one the lists fill */
  constructor(status: DpkgStatus, os: OsRelease, owner?: PathTable) {
    this.#os = os;
    this.#owner = owner ?? new PathTable(1 << 16);
    for (const p of status.packages) {
      const i = this.#pkgs.push(p) - 1;
      // a list is named <pkg>.list, or <pkg>:<arch>.list for Multi-Arch: same packages
      if (p.arch !== undefined) this.#byStem.set(`${p.name}:${p.arch}`, i);
      if (!this.#byStem.has(p.name) || p.multiArch !== 'same') this.#byStem.set(p.name, i);
    }
    this.counters = { packages: status.packages.length, lists: 0, ownedPaths: 0, malformedStanzas: status.malformed, skippedListLines: 0, orphanLists: 0 };
  }

  /** addList records the paths of info/<stem>.list (its text or bytes); throws TooLargeError past maxOwnedPaths. */
  addList(stem: string, text: string | Buffer, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS): void {
    const i = this.#byStem.get(stem);
    if (i === undefined) {
      this.counters.orphanLists++;
      return;
    }
    this.counters.lists++;
    const owner = this.#owner;
    const tooMany = (): Error => new TooLargeError(`more than ${limits.maxOwnedPaths} dpkg-owned paths`);
    // first owner wins, as the status order gives it
    const add = (b: Buffer): void => {
      if (owner.getBytes(b, 0, b.length) === undefined && owner.size >= limits.maxOwnedPaths) throw tooMany();
      owner.addBytes(b, 0, b.length, i);
    };
    if (typeof text === 'string') {
      this.counters.skippedListLines += parseDpkgList(text, (p) => add(Buffer.from(p, 'utf8')));
    } else {
      this.counters.skippedListLines += this.#scanList(text, i, limits.maxOwnedPaths, tooMany, add);
    }
    this.counters.ownedPaths = owner.size;
  }

  /**
   * #scanList is parseDpkgList over the list's bytes in one pass that also hashes each line:
   * the list is copied into the table's arena once and its accepted lines are added where they
   * lie (no string, no copy per path). A non-ASCII line takes parseDpkgList's string rules (invalid UTF-8 as
   * U+FFFD, lengths in UTF-16 units), so both give the same paths.
   */
  #scanList(buf: Buffer, value: number, limit: number, tooMany: () => Error, addString: (b: Buffer) => void): number {
    const owner = this.#owner;
    const base = owner.appendRaw(buf);
    const arena = owner.arena;
    const dv = viewOf(arena);
    // the common case, an ASCII list without NUL: byte rules; a line with NUL or non-ASCII bytes is taken as parseDpkgList takes it
    const plain = isAscii(buf) && buf.indexOf(0) < 0;
    let skipped = 0;
    let s = 0;
    while (s < buf.length) {
      let e = buf.indexOf(10, s);
      if (e < 0) e = buf.length;
      const len = e - s;
      if (!plain && !plainRange(buf, s, e)) {
        const line = buf.toString('utf8', s, e);
        if (line.length > 1 && line[0] === '/' && line.length <= 4096 && !line.includes('\0')) addString(Buffer.from(line, 'utf8'));
        else if (line !== '/.' && line !== '') skipped++;
      } else if (len > 1 && buf[s] === 0x2f && len <= 4096) {
        owner.addAt(base + s, len, pathHash(arena, dv, base + s, base + e), value, limit, tooMany);
      } else if (!(len === 2 && buf[s] === 0x2f && buf[s + 1] === 0x2e) && len !== 0) {
        skipped++;
      }
      s = e + 1;
    }
    return skipped;
  }

  /** done: no more lists; the path table gives its unused space back */
  done(): void {
    this.#owner.trim();
  }

  /**
   * snapshot: what a cache file keeps of a finished index (src/packages/dpkg-cache.ts): the
   * packages, the counters and the owned-path table's arrays (views: valid until the next addList).
   */
  snapshot(): DpkgSnapshot {
    return { packages: this.#pkgs, counters: { ...this.counters }, table: this.#owner.parts() };
  }

  /** restore is the index a snapshot was taken of, with the root's os-release of now; throws RangeError on a table that does not fit */
  static restore(snap: DpkgSnapshot, os: OsRelease): DpkgIndex {
    const index = new DpkgIndex({ packages: snap.packages, malformed: snap.counters.malformedStanzas, notInstalled: 0 }, os,
      PathTable.fromParts(snap.table, snap.packages.length));
    Object.assign(index.counters, snap.counters);
    if (index.counters.ownedPaths !== snap.table.start.length) throw new RangeError('dpkg snapshot: owned path count differs from its table');
    return index;
  }

  /** bytes the owned-path table holds */
  get tableBytes(): number {
    return this.#owner.bytes;
  }

  /** ownerOf looks a path up as listed, in both merged-/usr forms. */
  ownerOf(path: string): DpkgPackage | undefined {
    for (const p of usrMergeAliases(path)) {
      const i = this.#owner.get(p);
      if (i !== undefined) return this.#pkgs[i];
    }
    return undefined;
  }

  /** purlOf gives syft's purl of a package, or undefined when os-release names no distro (kept per package: many files, one package) */
  purlOf(p: DpkgPackage): string | undefined {
    if (this.#os.id === undefined) return undefined;
    let purl = this.#purls.get(p);
    if (purl === undefined) this.#purls.set(p, (purl = this.#purlOf(p)));
    return purl;
  }

  #purlOf(p: DpkgPackage): string {
    const id = this.#os.id!;
    return debPurl({
      name: p.name, version: p.version,
      ...(p.arch !== undefined ? { arch: p.arch } : {}),
      distro: { id, ...(this.#os.versionId !== undefined ? { versionId: this.#os.versionId } : {}) },
      ...(p.source !== undefined ? { source: p.source } : {}),
    });
  }

  get hasDistro(): boolean {
    return this.#os.id !== undefined;
  }
}

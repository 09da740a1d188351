import * as path from 'node:path/posix';
import { UsageError, errorMessage } from '../errors';
import type { Runtime } from '../model/record';
import { editDistance } from '../util/edit-distance';
import { canonicalSymbol, splitGoSymbol } from './canonical';
import { ComponentResolver } from './component';
import { SymbolizeError } from './errors';
import { nodeHost, type Host } from './host';
import { parseLdSoCache } from './ld-cache';
import { computeNodeHash } from './node-hash';
import { loadObject, vaddrToFileOffset, type FuncSym, type ObjectInfo } from './object-file';

/** TargetSpec is a parsed `--function` argument. */
export type TargetSpec =
  | { kind: 'file'; spec: string; binary: string; pattern: string }
  | { kind: 'purl'; spec: string; purl: string; pattern: string };

/** ResolvedTarget is one uprobe attachment: a file offset in a distinct file. */
export interface ResolvedTarget {
  spec: string;
  /** path is the file as the process sees it (without a /proc/PID/root prefix). */
  path: string;
  /** openPath is where we read it (with the prefix, if any); attach the uprobe here. */
  openPath: string;
  dev: bigint;
  ino: bigint;
  fileOffset: bigint;
  vaddr: bigint;
  symbol: string;
  rawSymbol: string;
  kind: Runtime;
  component: string;
  nodeHash: string;
}

export interface ResolveOptions {
  host?: Host;
  /** root resolves sonames and bare names inside a container (`/proc/PID/root`); '' = host. */
  root?: string;
  debugDirs?: string[];
  components?: ComponentResolver;
  maxDebugInfoBytes?: number;
}

const LIB_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib', '/usr/local/lib'];
const BIN_DIRS = ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'];

/**
 * parseTargetSpec splits `BINARY:GLOB` or `PURL:GLOB` at the last ':' (purls and paths may
 * contain ':', linkage names do not).
 */
export function parseTargetSpec(spec: string): TargetSpec {
  const at = spec.lastIndexOf(':');
  if (at <= 0 || at === spec.length - 1) {
    throw new UsageError(`function target '${spec}' is not BINARY:SYMBOL or PURL:SYMBOL`, "write e.g. 'libssl.so.3:SSL_read' or '/usr/bin/app:vuln_*'");
  }
  const left = spec.slice(0, at);
  const pattern = spec.slice(at + 1);
  if (left.startsWith('pkg:')) return { kind: 'purl', spec, purl: left, pattern };
  return { kind: 'file', spec, binary: left, pattern };
}

/**
 * parseFunctionsFile reads the `--functions FILE` JSON: an array of spec strings or of
 * `{binary|purl, symbol}` objects, or `{"functions": [...]}` holding such an array.
 */
export function parseFunctionsFile(text: string): string[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`functions file is not JSON: ${errorMessage(err)}`);
  }
  const list = Array.isArray(doc) ? doc : (doc as { functions?: unknown })?.functions;
  if (!Array.isArray(list)) throw new UsageError('functions file must be an array or {"functions": [...]}');
  return list.map((e, i) => {
    if (typeof e === 'string') return e;
    const o = e as { binary?: unknown; library?: unknown; purl?: unknown; symbol?: unknown };
    const where = o.binary ?? o.library ?? o.purl;
    if (typeof where !== 'string' || typeof o.symbol !== 'string') throw new UsageError(`functions file entry ${i} needs "binary" (or "purl") and "symbol"`);
    return `${where}:${o.symbol}`;
  });
}

/** globToRegExp supports `*`, `?` and `[...]`; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        re += '[' + glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * resolveTargets turns `--function` specs into uprobe attachments, one per distinct
 * (dev, inode, file offset). A spec matching nothing throws USAGE listing close matches;
 * a glob matching nothing while other specs matched only warns.
 *
 * @example
 *   const { targets } = await resolveTargets(['libssl.so.3:SSL_read'], {});
 *   targets[0].fileOffset; // attach uprobe at targets[0].openPath + fileOffset
 */
export async function resolveTargets(specs: string[], opts: ResolveOptions = {}): Promise<{ targets: ResolvedTarget[]; warnings: string[] }> {
  const r = new TargetResolver(opts);
  const warnings: string[] = [];
  const targets: ResolvedTarget[] = [];
  const seen = new Set<string>();
  const misses: Array<{ spec: string; hint: string; glob: boolean }> = [];
  for (const raw of specs) {
    const spec = parseTargetSpec(raw);
    const files = r.filesFor(spec, warnings);
    const found: ResolvedTarget[] = [];
    const candidates: string[] = [];
    for (const f of files) found.push(...r.matchFile(spec, f, candidates, warnings));
    if (found.length === 0) {
      misses.push({ spec: raw, hint: closeMatches(spec.pattern, candidates), glob: /[*?[]/.test(spec.pattern) });
      continue;
    }
    for (const t of found) {
      const key = `${t.dev}:${t.ino}:${t.fileOffset}`;
      if (seen.has(key)) continue;
      seen.add(key);
      targets.push(t);
    }
  }
  for (const m of misses) {
    const msg = `function target '${m.spec}' matched no function${m.hint}`;
    if (m.glob && targets.length > 0) warnings.push(msg);
    else throw new UsageError(msg, 'check the symbol name with `nm -D` / `readelf -Ws`, or use a glob');
  }
  return { targets, warnings };
}

interface FileRef {
  openPath: string;
  path: string;
  root: string;
}

class TargetResolver {
  host: Host;
  root: string;
  components: ComponentResolver;
  #ldCache: Map<string, string[]> | undefined;
  #objects = new Map<string, ObjectInfo>();

  constructor(readonly opts: ResolveOptions) {
    this.host = opts.host ?? nodeHost;
    this.root = opts.root ?? '';
    this.components = opts.components ?? new ComponentResolver(this.host);
  }

  filesFor(spec: TargetSpec, warnings: string[]): FileRef[] {
    if (spec.kind === 'purl') return this.#purlFiles(spec, warnings);
    const b = spec.binary;
    const inProc = /^(\/proc\/\d+\/root)(\/.*)$/.exec(b);
    if (inProc !== null) return [{ openPath: b, path: inProc[2]!, root: inProc[1]! }];
    if (b.startsWith('/')) {
      if (!this.host.exists(this.root + b)) throw new UsageError(`function target '${spec.spec}': ${b} does not exist`);
      return [{ openPath: this.root + b, path: b, root: this.root }];
    }
    const found = this.#bySoname(b);
    if (found === undefined) throw new UsageError(`function target '${spec.spec}': no library or program named '${b}' in ld.so.cache, ${LIB_DIRS.join(', ')} or ${BIN_DIRS.join(', ')}`);
    return [{ openPath: this.root + found, path: found, root: this.root }];
  }

  #bySoname(name: string): string | undefined {
    if (this.#ldCache === undefined) {
      try {
        this.#ldCache = parseLdSoCache(readAll(this.host, path.join(this.root || '/', 'etc/ld.so.cache')));
      } catch {
        this.#ldCache = new Map();
      }
    }
    const hit = this.#ldCache.get(name)?.find((p) => this.host.exists(this.root + p));
    if (hit !== undefined) return hit;
    const dirs = name.includes('.so') || name.startsWith('lib') ? [...LIB_DIRS, ...BIN_DIRS] : [...BIN_DIRS, ...LIB_DIRS];
    for (const d of dirs) {
      for (const cand of [name, `${name}.so`]) {
        const p = path.join(d, cand);
        if (this.host.exists(this.root + p)) return p;
      }
    }
    return undefined;
  }

  #purlFiles(spec: Extract<TargetSpec, { kind: 'purl' }>, warnings: string[]): FileRef[] {
    const m = /^pkg:deb\/[^/]+\/([^@?#]+)(?:@([^?#]+))?/.exec(spec.purl);
    if (m === null) throw new UsageError(`function target '${spec.spec}': only pkg:deb purls resolve to files; name the binary for other package types`);
    const name = decodeURIComponent(m[1]!);
    const files = this.components.packageFiles(this.root, name);
    if (files === undefined) throw new UsageError(`function target '${spec.spec}': package ${name} is not installed`);
    if (m[2] !== undefined) {
      const installed = this.components.dpkgPurl(this.root, files[0] ?? '');
      if (installed !== undefined && !installed.endsWith('@' + m[2])) warnings.push(`${spec.spec}: installed version is ${installed}`);
    }
    const out: FileRef[] = [];
    for (const f of files) {
      if (!/\/(lib|bin|sbin|libexec)\//.test(f) || !isElfFile(this.host, this.root + f)) continue;
      out.push({ openPath: this.root + f, path: f, root: this.root });
    }
    if (out.length === 0) throw new UsageError(`function target '${spec.spec}': package ${name} has no ELF files`);
    return out;
  }

  #object(f: FileRef): ObjectInfo {
    let o = this.#objects.get(f.openPath);
    if (o === undefined) {
      try {
        o = loadObject(f.openPath, f.path, {
          host: this.host, root: f.root, debugDirs: this.opts.debugDirs ?? ['/usr/lib/debug'], maxDebugInfoBytes: this.opts.maxDebugInfoBytes ?? 256 << 20,
        });
      } catch (err) {
        const why = err instanceof SymbolizeError && err.code === 'NOT_ELF' ? 'is not an ELF file' : `cannot be read: ${errorMessage(err)}`;
        throw new UsageError(`function target file ${f.openPath} ${why}`);
      }
      this.#objects.set(f.openPath, o);
    }
    return o;
  }

  matchFile(spec: TargetSpec, f: FileRef, candidates: string[], warnings: string[]): ResolvedTarget[] {
    const obj = this.#object(f);
    for (const w of obj.warnings) warnings.push(`${f.path}: ${w}`);
    const re = globToRegExp(spec.pattern);
    const out: ResolvedTarget[] = [];
    const done = new Set<bigint>();
    for (const s of obj.all) {
      const kind: Runtime = s.go ? 'go' : 'native';
      const bare = s.name.replace(/@.*$/, '');
      const canon = canonicalSymbol(kind, s.name);
      if (candidates.length < 200_000) candidates.push(canon);
      if (!re.test(bare) && !re.test(canon) && !re.test(s.name)) continue;
      if (s.start === 0n || done.has(s.start)) continue;
      const fileOffset = vaddrToFileOffset(obj.segments, s.start);
      if (fileOffset === undefined) {
        warnings.push(`${f.path}: ${s.name} at 0x${s.start.toString(16)} is outside every PT_LOAD segment`);
        continue;
      }
      done.add(s.start);
      out.push(this.#target(spec, f, obj, s, kind, canon, fileOffset));
    }
    return out;
  }

  #target(spec: TargetSpec, f: FileRef, obj: ObjectInfo, s: FuncSym, kind: Runtime, canon: string, fileOffset: bigint): ResolvedTarget {
    const goPkg = kind === 'go' ? splitGoSymbol(s.name).pkg : undefined;
    const component = this.components.componentFor(obj, f.path, f.root, kind, goPkg);
    return {
      spec: spec.spec, path: f.path, openPath: f.openPath, dev: obj.dev, ino: obj.ino, fileOffset, vaddr: s.start,
      symbol: canon, rawSymbol: s.name, kind, component, nodeHash: computeNodeHash(kind, component, canon),
    };
  }
}

function readAll(host: Host, p: string): Buffer {
  const src = host.open(p);
  try {
    if (src.size > 64 << 20) throw new SymbolizeError('TOO_LARGE', `${p} is too large`);
    return src.read(0, src.size);
  } finally {
    src.close();
  }
}

function isElfFile(host: Host, p: string): boolean {
  try {
    const src = host.open(p);
    try {
      return src.size >= 4 && src.read(0, 4).readUInt32BE(0) === 0x7f454c46;
    } finally {
      src.close();
    }
  } catch {
    return false;
  }
}

/** closeMatches lists up to 5 names containing the pattern's literal core, or nearest by edit distance. */
export function closeMatches(pattern: string, names: string[]): string {
  const core = pattern.replace(/[*?[\]]/g, '').toLowerCase();
  const uniq = [...new Set(names)];
  let picks = core.length >= 2 ? uniq.filter((n) => n.toLowerCase().includes(core)) : [];
  if (picks.length === 0 && core.length > 0) {
    picks = uniq
      .filter((n) => Math.abs(n.length - core.length) <= 3)
      .map((n) => [n, editDistance(core, n.toLowerCase())] as const)
      .filter(([, d]) => d <= Math.max(2, Math.floor(core.length / 3)))
      .sort((a, b) => a[1] - b[1])
      .map(([n]) => n);
  }
  picks = picks.slice(0, 5);
  return picks.length === 0 ? '' : `; close matches: ${picks.join(', ')}`;
}

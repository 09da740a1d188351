import * as path from 'node:path/posix';
import type { Runtime } from '../model/record';
import type { Host } from './host';
import { goModuleFor, type GoBuildInfo } from './go';
import { golangPurl, purl } from './purl';
import { fileSha256, type ObjectInfo } from './object-file';

/** DpkgLimits bound how much of a (possibly hostile, in-container) dpkg database we read. */
const MAX_LIST_FILES = 20_000;
const MAX_LIST_BYTES = 16 * 1024 * 1024;
const MAX_STATUS_BYTES = 64 * 1024 * 1024;

interface DpkgDb {
  owner: Map<string, string>; // path → list file stem (`libssl3:amd64`)
  versions: Map<string, string>; // `name` and `name:arch` → version
  distro: string;
}

/**
 * ComponentResolver finds the node_hash component of a function: the owning package's purl,
 * else `gnu-build-id:<hex>`, else `file-sha256:<hex>` (docs/format.md). Databases are read
 * once per root and cached.
 */
export class ComponentResolver {
  #dbs = new Map<string, DpkgDb | null>();
  #sha = new Map<string, string>();

  constructor(readonly host: Host, readonly dpkgDir = '/var/lib/dpkg') {}

  /**
   * componentFor resolves in this order: (go functions) the Go module from build info, then
   * the dpkg package owning `displayPath` under `root`, then the GNU build-id, then SHA-256.
   */
  componentFor(obj: ObjectInfo, displayPath: string, root: string, kind: Runtime, goPkg?: string): string {
    if (kind === 'go' && obj.goInfo !== undefined && goPkg !== undefined) {
      const p = goPurl(obj.goInfo, goPkg);
      if (p !== undefined) return p;
    }
    const deb = this.dpkgPurl(root, displayPath);
    if (deb !== undefined) return deb;
    if (obj.buildId !== undefined) return `gnu-build-id:${obj.buildId}`;
    const key = `${obj.dev}:${obj.ino}`;
    let sha = this.#sha.get(key);
    if (sha === undefined) {
      sha = fileSha256(obj.openPath, this.host);
      if (this.#sha.size > 4096) this.#sha.clear();
      this.#sha.set(key, sha);
    }
    return `file-sha256:${sha}`;
  }

  /** dpkgPurl returns `pkg:deb/<distro>/<name>@<version>` for a path owned by an installed package. */
  dpkgPurl(root: string, file: string): string | undefined {
    const db = this.#db(root);
    if (db === null) return undefined;
    for (const p of usrMergeAliases(path.normalize(file))) {
      const stem = db.owner.get(p);
      if (stem === undefined) continue;
      const name = stem.split(':')[0]!;
      const version = db.versions.get(stem) ?? db.versions.get(name);
      if (version !== undefined) return purl('deb', db.distro, name, version);
    }
    return undefined;
  }

  /** packageFiles lists the paths an installed package owns (undefined when not installed). */
  packageFiles(root: string, name: string): string[] | undefined {
    const db = this.#db(root);
    if (db === null) return undefined;
    const out: string[] = [];
    for (const [p, stem] of db.owner) if (stem === name || stem.startsWith(name + ':')) out.push(p);
    return out.length === 0 ? undefined : out.sort();
  }

  #db(root: string): DpkgDb | null {
    let db = this.#dbs.get(root);
    if (db === undefined) {
      db = this.#load(root);
      this.#dbs.set(root, db);
    }
    return db;
  }

  #load(root: string): DpkgDb | null {
    const dir = path.join(root || '/', this.dpkgDir);
    const info = path.join(dir, 'info');
    if (!this.host.exists(path.join(dir, 'status'))) return null;
    const db: DpkgDb = { owner: new Map(), versions: new Map(), distro: this.#distro(root) };
    let lists: string[];
    try {
      lists = this.host.readdir(info).filter((f) => f.endsWith('.list')).slice(0, MAX_LIST_FILES);
    } catch {
      return null;
    }
    for (const f of lists) {
      const stem = f.slice(0, -'.list'.length);
      let text: string;
      try {
        text = this.host.readText(path.join(info, f), MAX_LIST_BYTES).text;
      } catch {
        continue;
      }
      for (const line of text.split('\n')) if (line.startsWith('/') && !db.owner.has(line)) db.owner.set(line, stem);
    }
    const status = this.host.readText(path.join(dir, 'status'), MAX_STATUS_BYTES).text;
    for (const para of status.split(/\n\n+/)) {
      const field = (k: string): string | undefined => new RegExp(`^${k}: *(.*)$`, 'm').exec(para)?.[1]?.trim();
      const name = field('Package');
      const version = field('Version');
      const st = field('Status') ?? '';
      if (name === undefined || version === undefined || !/ installed$/.test(st)) continue;
      const arch = field('Architecture');
      db.versions.set(name, version);
      if (arch !== undefined) db.versions.set(`${name}:${arch}`, version);
    }
    return db;
  }

  #distro(root: string): string {
    try {
      const text = this.host.readText(path.join(root || '/', 'etc/os-release'), 65536).text;
      const id = /^ID=["']?([a-z0-9._-]+)["']?$/m.exec(text)?.[1];
      return id ?? 'debian';
    } catch {
      return 'debian';
    }
  }
}

/** usrMergeAliases lists a path and its merged-/usr twin (`/lib/x` ↔ `/usr/lib/x`). */
export function usrMergeAliases(p: string): string[] {
  const out = [p];
  const m = /^\/usr(\/(?:lib|lib32|lib64|libx32|bin|sbin)\/.*)$/.exec(p);
  if (m !== null) out.push(m[1]!);
  else if (/^\/(?:lib|lib32|lib64|libx32|bin|sbin)\//.test(p)) out.push('/usr' + p);
  return out;
}

/**
 * goPurl maps a Go package path to its module's purl. Standard-library packages (first path
 * element without a dot) map to `pkg:golang/stdlib@v<go version>`, govulncheck's module name.
 */
export function goPurl(info: GoBuildInfo, pkg: string): string | undefined {
  if (pkg === 'main' && info.main !== undefined) return golangPurl(info.main.path, info.main.version);
  const first = pkg.split('/')[0] ?? '';
  if (!first.includes('.') && goModuleFor(info, pkg) === undefined) {
    const v = /^go(\d+(?:\.\d+)*)/.exec(info.goVersion)?.[1];
    return v === undefined ? undefined : golangPurl('stdlib', `v${v}`);
  }
  const mod = goModuleFor(info, pkg);
  return mod === undefined ? undefined : golangPurl(mod.path, mod.version);
}

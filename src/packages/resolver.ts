import * as path from 'node:path/posix';
import type { GoBuildInfo } from '../symbolize/go';
import type { ByteSource } from '../symbolize/host';
import { DpkgIndex, parseDpkgStatus, pyToSource } from './dpkg';
import { dpkgCacheKey, statKey, type DpkgCache, type DpkgListNames } from './dpkg-cache';
import type { AttributionRoot, AttributionVia, UnknownReason } from './evidence';
import { MAX_COMPONENTS } from './evidence';
import type { RootFs } from './host/root';
import { DEFAULT_PACKAGE_LIMITS, MalformedError, TooLargeError, type PackageLimits } from './limits';
import { parsePackageJson, npmPackageDir } from './npm';
import { isDebianLike, parseOsRelease, type OsRelease } from './os-release';
import { golangPurl, mavenPurl, npmPurl, pypiPurl } from './purl';
import { distInfoDirName, parseRecord, parseWheelMetadata, recordTarget, sitePackagesOf } from './python';

/** What a path is to the records naming it: an executed program, a mapped library, an opened file. */
export type PathKind = 'exec' | 'library' | 'open';

/** Attribution of one path inside one root (scope and path are added by the caller). */
export interface PathAttribution {
  purl: string | null;
  via: AttributionVia | null;
  root: AttributionRoot | null;
  reason: UnknownReason | null;
  components: string[];
}

type Db<T> = { ok: true; value: T } | { ok: false; reason: UnknownReason };

export interface ResolverCounters {
  dpkg: { loaded: boolean; reason: UnknownReason | null; packages: number; lists: number; ownedPaths: number; malformedStanzas: number; orphanLists: number; unreadableLists: number };
  sitePackagesDirs: number;
  npmPackages: number;
  goBinaries: number;
  jars: number;
  errors: number;
}

function reasonOf(err: unknown): UnknownReason {
  if (err instanceof TooLargeError) return 'db_too_large';
  if (err instanceof MalformedError || err instanceof SyntaxError || err instanceof RangeError) return 'db_malformed';
  const code = (err as { code?: unknown } | undefined)?.code;
  if (code === 'ELF_MALFORMED' || code === 'NOT_ELF' || code === 'TOO_LARGE') return 'db_malformed';
  return 'unreadable';
}

/**
 * PackageResolver attributes paths of one root to packages: dpkg first (the file's own
 * package, even for a vendored copy inside it), then a Python dist-info RECORD, an npm
 * package.json, Go build info, jar metadata. Databases are read once per resolver, lazily,
 * with the bounds of PackageLimits; a missing, truncated or hostile database gives
 * `purl: null` with a reason, never an exception.
 */
export class PackageResolver {
  readonly root: RootFs;
  readonly #limits: PackageLimits;
  readonly #dpkgCache: DpkgCache | undefined;
  #dpkg: Promise<Db<DpkgIndex>> | undefined;
  #os: Promise<OsRelease | undefined> | undefined;
  readonly #sites = new Map<string, Promise<Map<string, { name: string; version: string }> | undefined>>();
  readonly #npm = new Map<string, Promise<{ name: string; version: string } | undefined>>();
  readonly c: ResolverCounters = {
    dpkg: { loaded: false, reason: null, packages: 0, lists: 0, ownedPaths: 0, malformedStanzas: 0, orphanLists: 0, unreadableLists: 0 },
    sitePackagesDirs: 0, npmPackages: 0, goBinaries: 0, jars: 0, errors: 0,
  };

  /** `dpkgCache`: where the host's dpkg index is kept between runs (src/packages/dpkg-cache.ts; host roots only) */
  constructor(root: RootFs, limits: PackageLimits = DEFAULT_PACKAGE_LIMITS, dpkgCache?: DpkgCache) {
    this.root = root;
    this.#limits = limits;
    this.#dpkgCache = root.kind === 'host' ? dpkgCache : undefined;
  }

  async attribute(p: string, kind: PathKind = 'open'): Promise<PathAttribution> {
    try {
      return await this.#attribute(p, kind);
    } catch (err) {
      this.c.errors++;
      return this.#unknown(reasonOf(err));
    }
  }

  #unknown(reason: UnknownReason): PathAttribution {
    return { purl: null, via: null, root: this.root.kind, reason, components: [] };
  }

  #found(purl: string, via: AttributionVia, components: string[] = []): PathAttribution {
    return { purl, via, root: this.root.kind, reason: null, components };
  }

  async #attribute(p: string, kind: PathKind): Promise<PathAttribution> {
    const canonical = await this.root.resolve(p).catch(() => undefined);
    const candidates = [...new Set([p, canonical, pyToSource(p), canonical === undefined ? undefined : pyToSource(canonical)].filter((x): x is string => x !== undefined))];
    const dpkg = await this.#dpkgIndex();
    let dbReason: UnknownReason | undefined = dpkg.ok ? undefined : dpkg.reason;
    const go = kind === 'open' || canonical === undefined ? undefined : await this.#goInfo(canonical);
    if (dpkg.ok) {
      for (const c of candidates) {
        const owner = dpkg.value.ownerOf(c);
        if (owner === undefined) continue;
        const purl = dpkg.value.purlOf(owner);
        if (purl === undefined) {
          dbReason = 'no_os_release';
          break;
        }
        const comps = go === undefined ? [] : goComponents(go, true);
        return this.#found(purl, 'dpkg', comps);
      }
    }
    const file = canonical ?? p;
    const py = await this.#python(file);
    if (py !== undefined) return this.#found(py, 'python-record');
    const npm = await this.#npmOf(file);
    if (npm !== undefined) return this.#found(npm, 'npm');
    if (go?.main !== undefined && go.main.path !== '') {
      return this.#found(golangPurl(go.main.path, go.main.version), 'go-buildinfo', goComponents(go, false));
    }
    if (canonical !== undefined && /\.(?:jar|war|ear)$/.test(canonical)) {
      const jar = await this.#jar(canonical);
      if (jar !== undefined) return jar;
    }
    if (canonical === undefined) return this.#unknown(this.root.kind === 'host' || dbReason === undefined ? 'not_found' : dbReason);
    return this.#unknown(dbReason ?? 'not_owned');
  }

  /** dpkgIndex loads /var/lib/dpkg (status, info/*.list, os-release) once. */
  #dpkgIndex(): Promise<Db<DpkgIndex>> {
    this.#dpkg ??= this.#loadDpkg().catch((err): Db<DpkgIndex> => ({ ok: false, reason: reasonOf(err) })).then((r) => {
      this.c.dpkg.loaded = r.ok;
      this.c.dpkg.reason = r.ok ? null : r.reason;
      return r;
    });
    return this.#dpkg;
  }

  osRelease(): Promise<OsRelease | undefined> {
    this.#os ??= (async () => {
      for (const f of ['/etc/os-release', '/usr/lib/os-release']) {
        const b = await this.root.readFile(f, 65536).catch(() => undefined);
        if (b !== undefined) return parseOsRelease(b.toString('utf8'));
      }
      return undefined;
    })();
    return this.#os;
  }

  /**
   * dpkgCacheKey: the cache key of this root's dpkg database as it is now (DpkgCache), or undefined
   * when it cannot be cached: no cache, not a plain database (status.d, a symlinked status or list),
   * more lists than the limit, or a stat failed.
   */
  async #dpkgCacheKey(): Promise<{ key: string; names: DpkgListNames | undefined; namesRead: boolean } | undefined> {
    const root = this.root;
    const cache = this.#dpkgCache;
    if (cache === undefined || root.statInSync === undefined) return undefined;
    try {
      const dpkgDir = await root.resolve('/var/lib/dpkg');
      const infoDir = await root.resolve('/var/lib/dpkg/info');
      if (dpkgDir === undefined || infoDir === undefined || infoDir === '/') return undefined;
      const status = root.statInSync(dpkgDir, 'status');
      const info = root.statInSync(path.dirname(infoDir), path.basename(infoDir));
      if (status?.isFile() !== true || info?.isDirectory() !== true) return undefined;
      const infoKey = statKey(info);
      // the .list names: from the cache file while the directory is as it was (DpkgCache.listNames), else read
      let sorted = cache.listNames(infoKey);
      // the names a file written now keeps (those of a directory unchanged since they were read)
      let names: DpkgListNames | undefined = sorted !== undefined ? { info: infoKey, lists: sorted } : undefined;
      const namesRead = sorted === undefined;
      if (sorted === undefined) {
        const readAt = cache.now();
        sorted = ((await root.readdir(infoDir)) ?? []).filter((n) => n.endsWith('.list')).sort();
        // kept for the next run only if the directory had settled before this read (DpkgCache)
        if (Number(info.ctimeNs / 1_000_000n) < readAt - cache.settledMs) names = { info: infoKey, lists: sorted };
      }
      const lists: [string, string][] = [];
      for (const name of sorted) {
        if (lists.length >= this.#limits.maxListFiles) return undefined;
        const st = root.statInSync(infoDir, name);
        if (st?.isFile() !== true) return undefined;
        lists.push([name, statKey(st)]);
      }
      return { key: dpkgCacheKey({ limits: this.#limits, rootKey: root.key, dpkgDir, status: statKey(status), infoDir, info: infoKey, lists }), names, namesRead };
    } catch {
      return undefined;
    }
  }

  /** fromCache: the index the cache holds under `key`, or undefined (a miss, or a rejected file: the cache counts it) */
  async #fromCache(key: string): Promise<DpkgIndex | undefined> {
    const cache = this.#dpkgCache!;
    const snap = cache.load(key);
    if (snap === undefined) return undefined;
    const os = await this.osRelease();
    try {
      const index = DpkgIndex.restore(snap, os !== undefined && isDebianLike(os) ? os : { idLike: [] });
      this.c.dpkg.unreadableLists = snap.extra.unreadableLists;
      return index;
    } catch {
      cache.c.hits--;
      cache.c.rejected++;
      return undefined;
    }
  }

  async #loadDpkg(): Promise<Db<DpkgIndex>> {
    const L = this.#limits;
    // the host's database as a previous run left it, when nothing in it changed since (src/packages/dpkg-cache.ts)
    const keyed = await this.#dpkgCacheKey();
    const cached = keyed !== undefined ? await this.#fromCache(keyed.key) : undefined;
    if (cached !== undefined) {
      // a file written while the info directory had just changed, which has settled since: kept again with its names
      if (keyed!.namesRead && keyed!.names !== undefined) this.#dpkgCache!.store(keyed!.key, cached.snapshot(), { unreadableLists: this.c.dpkg.unreadableLists }, keyed!.names);
      return this.#dpkgLoaded(cached);
    }
    let statusText: string | undefined = (await this.root.readFile('/var/lib/dpkg/status', L.maxStatusBytes))?.toString('utf8');
    let distroless: string[] | undefined;
    if (statusText === undefined) {
      // distroless images: one stanza per file in status.d, files listed in <name>.md5sums
      distroless = await this.root.readdir('/var/lib/dpkg/status.d');
      if (distroless === undefined) return { ok: false, reason: 'no_database' };
      const parts: string[] = [];
      let total = 0;
      for (const n of distroless.filter((x) => !x.endsWith('.md5sums')).slice(0, L.maxPackages)) {
        const b = await this.root.readFile(`/var/lib/dpkg/status.d/${n}`, L.maxSmallFileBytes).catch(() => undefined);
        if (b === undefined) continue;
        total += b.length;
        if (total > L.maxStatusBytes) throw new TooLargeError('dpkg status.d larger than the status limit');
        parts.push(b.toString('utf8'));
      }
      statusText = parts.join('\n\n');
    }
    const os = await this.osRelease();
    const status = parseDpkgStatus(statusText, L);
    const index = new DpkgIndex(status, os !== undefined && isDebianLike(os) ? os : { idLike: [] });
    if (distroless !== undefined) {
      for (const n of distroless.filter((x) => x.endsWith('.md5sums')).slice(0, L.maxListFiles)) {
        const b = await this.root.readFile(`/var/lib/dpkg/status.d/${n}`, L.maxListBytes).catch(() => undefined);
        if (b === undefined) continue;
        const lines = b.toString('utf8').split('\n').map((l) => l.replace(/^[0-9a-f]{32}\s+/, '')).filter((l) => l !== '').map((l) => '/' + l.replace(/^\.?\//, ''));
        index.addList(n.slice(0, -'.md5sums'.length), lines.join('\n'), L);
      }
    } else {
      const infoDir = await this.root.resolve('/var/lib/dpkg/info');
      const names = (infoDir === undefined ? undefined : await this.root.readdir(infoDir)) ?? [];
      const lists = names.filter((n) => n.endsWith('.list'));
      if (lists.length > L.maxListFiles) throw new TooLargeError(`${lists.length} dpkg list files`);
      const root = this.root;
      let n = 0;
      for (const name of lists.sort()) {
        let b: Buffer | undefined;
        try {
          // one resolve for the directory, then plain reads (O_NOFOLLOW): 20x less CPU than readFile per list
          b = root.readFileInSync !== undefined ? root.readFileInSync(infoDir!, name, L.maxListBytes) : await root.readFile(`${infoDir}/${name}`, L.maxListBytes);
        } catch (err) {
          if (err instanceof TooLargeError) throw err;
          b = undefined;
        }
        if (b === undefined) {
          this.c.dpkg.unreadableLists++;
          continue;
        }
        index.addList(name.slice(0, -'.list'.length), b, L);
        // let the event loop run (ring batches) between groups of lists
        if (++n % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    index.done();
    if (keyed !== undefined) this.#dpkgCache!.store(keyed.key, index.snapshot(), { unreadableLists: this.c.dpkg.unreadableLists }, keyed.names);
    return this.#dpkgLoaded(index);
  }

  #dpkgLoaded(index: DpkgIndex): Db<DpkgIndex> {
    Object.assign(this.c.dpkg, {
      packages: index.counters.packages, lists: index.counters.lists, ownedPaths: index.counters.ownedPaths,
      malformedStanzas: index.counters.malformedStanzas, orphanLists: index.counters.orphanLists,
    });
    return { ok: true, value: index };
  }

  /** python maps a file under site-packages to the dist whose RECORD lists it (or its .py). */
  async #python(file: string): Promise<string | undefined> {
    const site = sitePackagesOf(file);
    if (site === undefined) return undefined;
    let m = this.#sites.get(site);
    if (m === undefined) {
      m = this.#loadSite(site).catch(() => undefined);
      this.#sites.set(site, m);
    }
    const map = await m;
    if (map === undefined) return undefined;
    const d = map.get(file) ?? map.get(pyToSource(file) ?? '');
    return d === undefined ? undefined : pypiPurl(d.name, d.version);
  }

  async #loadSite(site: string): Promise<Map<string, { name: string; version: string }> | undefined> {
    const names = await this.root.readdir(site);
    if (names === undefined) return undefined;
    this.c.sitePackagesDirs++;
    const out = new Map<string, { name: string; version: string }>();
    for (const d of names.filter((n) => n.endsWith('.dist-info')).slice(0, this.#limits.maxDistInfos)) {
      let dist = distInfoDirName(d);
      const meta = await this.root.readFile(`${site}/${d}/METADATA`, this.#limits.maxSmallFileBytes).catch(() => undefined);
      if (meta !== undefined) {
        const md = parseWheelMetadata(meta.toString('utf8'));
        if (md.name !== undefined && md.version !== undefined) dist = { name: md.name, version: md.version };
      }
      if (dist === undefined) continue;
      const rec = await this.root.readFile(`${site}/${d}/RECORD`, this.#limits.maxSmallFileBytes).catch(() => undefined);
      if (rec === undefined) continue;
      for (const row of parseRecord(rec.toString('utf8'))) {
        const target = recordTarget(site, row.path);
        if (!out.has(target)) out.set(target, dist);
      }
    }
    return out;
  }

  /** npmOf: the nearest node_modules package, or the nearest package.json above a JS file. */
  async #npmOf(file: string): Promise<string | undefined> {
    let dir = npmPackageDir(file);
    if (dir === undefined) {
      if (!/\.(?:js|mjs|cjs|node|json)$/.test(file)) return undefined;
      for (let d = path.dirname(file), n = 0; d !== '/' && n < this.#limits.maxWalkUp; d = path.dirname(d), n++) {
        const pj = await this.#packageJson(d);
        if (pj !== undefined) return npmPurl(pj.name, pj.version);
      }
      return undefined;
    }
    const pj = await this.#packageJson(dir);
    return pj === undefined ? undefined : npmPurl(pj.name, pj.version);
  }

  #packageJson(dir: string): Promise<{ name: string; version: string } | undefined> {
    let p = this.#npm.get(dir);
    if (p === undefined) {
      p = this.root
        .readFile(`${dir}/package.json`, this.#limits.maxSmallFileBytes)
        .then((b) => (b === undefined ? undefined : parsePackageJson(b.toString('utf8'))))
        .catch(() => undefined);
      if (this.#npm.size > 65536) this.#npm.clear();
      this.#npm.set(dir, p);
      void p.then((r) => {
        if (r !== undefined) this.c.npmPackages++;
      });
    }
    return p;
  }

  async #withFile<T>(p: string, fn: (src: ByteSource) => T): Promise<T | undefined> {
    const src = await this.root.open(p).catch(() => undefined);
    if (src === undefined) return undefined;
    try {
      return fn(src);
    } finally {
      src.close();
    }
  }

  async #goInfo(p: string): Promise<GoBuildInfo | undefined> {
    return this.#withFile(p, (src) => {
      if (src.size < 64 || !src.read(0, 4).equals(Buffer.from('\x7fELF', 'latin1'))) return undefined;
      try {
        // loaded on the first ELF file asked about (a collector start does not compile the symbolizer's ELF reader)
        const { ElfFile } = require('../symbolize/elf') as typeof import('../symbolize/elf');
        const { readGoBuildInfo } = require('../symbolize/go') as typeof import('../symbolize/go');
        const info = readGoBuildInfo(ElfFile.parse(src));
        if (info !== undefined) this.c.goBinaries++;
        return info;
      } catch {
        return undefined;
      }
    });
  }

  async #jar(p: string): Promise<PathAttribution | undefined> {
    const r = await this.#withFile(p, (src): PathAttribution | undefined => {
      try {
        // jar.ts (and node:zlib) load with the first jar asked about
        const { readJarCoordinates } = require('./jar') as typeof import('./jar');
        const c = readJarCoordinates(src, p, this.#limits);
        if (c === undefined) return undefined;
        this.c.jars++;
        return this.#found(mavenPurl(c.group, c.artifact, c.version), c.via);
      } catch (err) {
        return this.#unknown(reasonOf(err));
      }
    });
    return r;
  }
}

/** goComponents: the modules a Go binary declares (with its main module when another package owns it). */
function goComponents(info: GoBuildInfo, withMain: boolean): string[] {
  const out = new Set<string>();
  if (withMain && info.main !== undefined && info.main.path !== '') out.add(golangPurl(info.main.path, info.main.version));
  for (const d of info.deps) if (d.path !== '' && d.version !== '') out.add(golangPurl(d.path, d.version));
  return [...out].sort().slice(0, MAX_COMPONENTS);
}

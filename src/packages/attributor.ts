import type { ContainerFacts as EnrichFacts } from '../enrich/types';
import {
  compareUtf16, fileKey, HOST_SCOPE,
  type ChunkAttribution, type ContainerFacts, type FileAttribution, type UnknownReason,
} from './evidence';
import type { DpkgCache } from './dpkg-cache';
import { hostRoot, procRoot, type RootFs } from './host/root';
import { LayersRoot, storageLayerChain } from './host/layers';
import { PackageResolver, type PathAttribution, type PathKind } from './resolver';

/** The part of a record the attributor reads. */
export interface AttributedRecord {
  pid: number;
  container_id?: string;
  image_digest?: string;
  event: { type: string; path?: string; filename?: string; library?: string };
}

export interface AttributorOptions {
  /** the collector's own root; default hostRoot() */
  hostRoot?: RootFs;
  /** what the enricher knows of a container (Enricher.containerFacts) */
  containerFacts?: (containerId: string) => EnrichFacts | undefined;
  /** containers-storage graph roots searched for a gone container's image layers */
  storageRoots?: string[];
  /** pins a live process's root; default procRoot (tests inject) */
  openProcRoot?: (pid: number) => RootFs | undefined;
  /** resolved (scope, path) kept; default 65536 */
  maxCached?: number;
  /** resolutions waiting to run; beyond, a path is attributed `queue_full`; default 16384 */
  maxQueue?: number;
  /** resolutions running at once; default 4 */
  concurrency?: number;
  /** a chunk window is full (the writer seals early) at this many files (default 4096) or path
   * bytes (512 KiB), so an envelope stays well below verify's 4 MiB limit */
  maxFilesPerChunk?: number;
  maxPathBytesPerChunk?: number;
  /** container roots kept open at once; the least recently used is closed beyond; default 32 */
  maxContainerRoots?: number;
  /** the host's dpkg index kept between runs (DpkgCache.fromEnv: /var/cache/rtev); default none */
  dpkgCache?: DpkgCache;
  /** a monotonic clock in ms for the seal's wait (finish); default performance.now (tests inject) */
  nowMs?: () => number;
}

export interface AttributorCounters {
  noted: number;
  resolved: number;
  cacheHits: number;
  queueFull: number;
  timeouts: number;
  byReason: Partial<Record<UnknownReason, number>>;
  byVia: Record<string, number>;
  byRoot: Record<string, number>;
  procRootsPinned: number;
  procRootsMissed: number;
  layerRoots: number;
  queued: number;
  running: number;
}

/** A chunk's share of attribution, taken synchronously at seal time. */
export interface AttributionTicket {
  files: Array<{ key: string; scope: string; path: string }>;
  containers: Map<string, string | undefined>;
  omitted: number;
  /** when the window was taken (AttributorOptions.nowMs): finish's bound runs from here */
  takenAtMs: number;
}

interface Job {
  key: string;
  scope: string;
  path: string;
  kind: PathKind;
  resolve: (a: PathAttribution) => void;
}

/**
 * JobQueue: first in, first out, without Array.shift: a queue of thousands of jobs (a workload of
 * many distinct files) lives in V8's large-object space, where shift() moves every element
 * (the attributor's #pump was 0.27 s of a 20,000-file run: docs/benchmarks.md, "Session 5 (h27)").
 */
class JobQueue {
  #items: Array<Job | undefined> = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(job: Job): void {
    this.#items.push(job);
  }

  shift(): Job | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const job = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 4096 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return job;
  }
}

interface ScopeState {
  resolver?: PackageResolver;
  pinTries: number;
  layersTried?: Promise<PackageResolver | undefined>;
  lastUsed: number;
}

const MAX_PIN_TRIES = 8;
const KIND: Record<string, PathKind> = { file_open: 'open', process_exec: 'exec', function_call: 'library' };

/**
 * Attributor attributes every distinct (scope, path) the collector writes to its owning
 * package, off the per-record path: `note()` costs a key lookup per record; the first sight of
 * a key queues one asynchronous resolution (bounded queue, bounded concurrency, results
 * cached). A container's files are read through its process's root, pinned with a directory
 * descriptor on the container's first record (so they stay readable after `--rm`), else from
 * its image's layers in containers-storage. At each seal the chunk writer takes the window
 * (`takeWindow`) and waits a bounded time for it (`finish`).
 */
export class Attributor {
  readonly #o: Required<Omit<AttributorOptions, 'containerFacts' | 'hostRoot' | 'dpkgCache'>> & Pick<AttributorOptions, 'containerFacts'>;
  readonly #nowMs: () => number;
  readonly #host: PackageResolver;
  readonly #cache = new Map<string, PathAttribution>();
  readonly #pending = new Map<string, Promise<PathAttribution>>();
  /** waiting resolutions per scope: a slow database (the host's, while it loads) does not hold up a container's */
  readonly #queues = new Map<string, JobQueue>();
  #queued = 0;
  #running = 0;
  readonly #runningByScope = new Map<string, number>();
  #window = new Map<string, { scope: string; path: string }>();
  #windowBytes = 0;
  #windowContainers = new Map<string, string | undefined>();
  #omitted = 0;
  readonly #scopes = new Map<string, ScopeState>();
  readonly #facts = new Map<string, ContainerFacts>();
  readonly #idle: Array<() => void> = [];
  #tick = 0;
  #closed = false;
  /** true when the open window reached its bound: the chunk writer seals before the next record */
  windowFull = false;
  readonly c: AttributorCounters = {
    noted: 0, resolved: 0, cacheHits: 0, queueFull: 0, timeouts: 0, byReason: {}, byVia: {}, byRoot: {},
    procRootsPinned: 0, procRootsMissed: 0, layerRoots: 0, queued: 0, running: 0,
  };

  constructor(options: AttributorOptions = {}) {
    this.#o = {
      storageRoots: ['/var/lib/containers/storage'], openProcRoot: (pid) => procRoot(pid),
      maxCached: 65536, maxQueue: 16384, concurrency: 4, maxFilesPerChunk: 4096, maxPathBytesPerChunk: 512 * 1024,
      maxContainerRoots: 32, nowMs: () => performance.now(), ...options,
    };
    this.#nowMs = this.#o.nowMs;
    this.#host = new PackageResolver(options.hostRoot ?? hostRoot(), undefined, options.dpkgCache);
  }

  /**
   * warm starts reading the host's package databases (about 1 s for dpkg here) before records
   * arrive; the promise settles once they were read (the collector's readiness, rtev collect --verbose).
   */
  warm(): Promise<void> {
    return this.#host.attribute('/', 'open').then(() => undefined, () => undefined);
  }

  /** note takes one written record; cheap for a (scope, path) already seen in this window. */
  note(rec: AttributedRecord): void {
    const ev = rec.event;
    const p = ev.type === 'file_open' ? ev.path : ev.type === 'process_exec' ? ev.filename : ev.type === 'function_call' ? ev.library : undefined;
    const cid = rec.container_id;
    if (cid !== undefined) this.#noteContainer(cid, rec.image_digest, rec.pid);
    if (p === undefined || p === '') return;
    const scope = cid ?? HOST_SCOPE;
    const key = fileKey(scope, p);
    if (this.#window.has(key)) return;
    this.c.noted++;
    if (this.#window.size >= this.#o.maxFilesPerChunk * 2) {
      this.#omitted++; // the writer did not seal in time (one huge record burst): counted, not listed
      return;
    }
    this.#window.set(key, { scope, path: p });
    this.#windowBytes += p.length + scope.length;
    if (this.#window.size >= this.#o.maxFilesPerChunk || this.#windowBytes >= this.#o.maxPathBytesPerChunk) this.windowFull = true;
    if (this.#cache.has(key) || this.#pending.has(key)) {
      this.c.cacheHits++;
      return;
    }
    this.#enqueue(key, scope, p, KIND[ev.type] ?? 'open');
  }

  #noteContainer(cid: string, digest: string | undefined, pid: number): void {
    if (!this.#windowContainers.has(cid) || (digest !== undefined && this.#windowContainers.get(cid) === undefined)) this.#windowContainers.set(cid, digest);
    let s = this.#scopes.get(cid);
    if (s === undefined) {
      s = { pinTries: 0, lastUsed: ++this.#tick };
      this.#scopes.set(cid, s);
      this.#evictScopes();
    }
    s.lastUsed = ++this.#tick;
    if (s.resolver === undefined && s.pinTries < MAX_PIN_TRIES && !this.#closed) {
      s.pinTries++;
      const root = this.#o.openProcRoot(pid);
      if (root !== undefined) {
        s.resolver = new PackageResolver(root);
        this.c.procRootsPinned++;
      } else if (s.pinTries === 1) this.c.procRootsMissed++;
    }
  }

  #evictScopes(): void {
    while (this.#scopes.size > this.#o.maxContainerRoots) {
      let oldest: string | undefined;
      let t = Infinity;
      for (const [k, v] of this.#scopes) if (v.lastUsed < t) [oldest, t] = [k, v.lastUsed];
      const s = this.#scopes.get(oldest!)!;
      s.resolver?.root.close();
      this.#scopes.delete(oldest!);
    }
  }

  #enqueue(key: string, scope: string, path: string, kind: PathKind): void {
    if (this.#queued >= this.#o.maxQueue) {
      this.c.queueFull++;
      this.#store(key, { purl: null, via: null, root: null, reason: 'queue_full', components: [] }, false);
      return;
    }
    let q = this.#queues.get(scope);
    if (q === undefined) this.#queues.set(scope, (q = new JobQueue()));
    const queue = q;
    const p = new Promise<PathAttribution>((resolve) => queue.push({ key, scope, path, kind, resolve }));
    this.#queued++;
    this.#pending.set(key, p);
    this.c.queued = this.#queued;
    this.#pump();
  }

  /** #pump starts jobs round-robin over scopes: at most `concurrency` per scope, 4× that in all. */
  #pump(): void {
    let started = true;
    while (started && this.#running < this.#o.concurrency * 4 && this.#queued > 0) {
      started = false;
      for (const [scope, q] of this.#queues) {
        const n = this.#runningByScope.get(scope) ?? 0;
        if (n >= this.#o.concurrency || this.#running >= this.#o.concurrency * 4) continue;
        const job = q.shift()!;
        if (q.length === 0) this.#queues.delete(scope);
        this.#queued--;
        this.#running++;
        this.#runningByScope.set(scope, n + 1);
        started = true;
        void this.#run(job).finally(() => {
          this.#running--;
          const m = (this.#runningByScope.get(scope) ?? 1) - 1;
          if (m === 0) this.#runningByScope.delete(scope);
          else this.#runningByScope.set(scope, m);
          this.c.queued = this.#queued;
          this.c.running = this.#running;
          if (this.#queued > 0) setImmediate(() => this.#pump());
          else if (this.#running === 0) for (const w of this.#idle.splice(0)) w();
        });
      }
    }
    this.c.running = this.#running;
  }

  async #run(job: Job): Promise<void> {
    let a: PathAttribution;
    try {
      const r = await this.#resolverFor(job.scope);
      a = r === undefined ? { purl: null, via: null, root: null, reason: 'root_gone', components: [] } : await r.attribute(job.path, job.kind);
    } catch {
      a = { purl: null, via: null, root: null, reason: 'not_resolved', components: [] };
    }
    this.#store(job.key, a, true);
    this.#pending.delete(job.key);
    job.resolve(a);
  }

  #store(key: string, a: PathAttribution, count: boolean): void {
    if (this.#cache.size >= this.#o.maxCached) {
      // drop the oldest tenth that the open window does not need
      let n = Math.ceil(this.#o.maxCached / 10);
      for (const k of this.#cache.keys()) {
        if (n-- <= 0) break;
        if (!this.#window.has(k)) this.#cache.delete(k);
      }
    }
    this.#cache.set(key, a);
    if (!count) return;
    this.c.resolved++;
    if (a.reason !== null) this.c.byReason[a.reason] = (this.c.byReason[a.reason] ?? 0) + 1;
    if (a.via !== null) this.c.byVia[a.via] = (this.c.byVia[a.via] ?? 0) + 1;
    if (a.root !== null) this.c.byRoot[a.root] = (this.c.byRoot[a.root] ?? 0) + 1;
  }

  async #resolverFor(scope: string): Promise<PackageResolver | undefined> {
    if (scope === HOST_SCOPE) return this.#host;
    const s = this.#scopes.get(scope);
    if (s?.resolver !== undefined) return s.resolver;
    if (s === undefined) return undefined;
    s.layersTried ??= (async () => {
      const f = this.#o.containerFacts?.(scope);
      const imageId = f?.image?.id;
      if (f === undefined || imageId === undefined || (f.runtime !== 'podman' && f.runtime !== 'cri-o')) return undefined;
      for (const root of this.#o.storageRoots) {
        const dirs = await storageLayerChain(root, imageId, f.id);
        if (dirs !== undefined) {
          this.c.layerRoots++;
          return new PackageResolver(new LayersRoot(dirs));
        }
      }
      return undefined;
    })().catch(() => undefined);
    return s.layersTried;
  }

  /** takeWindow hands the (scope, path) and containers written since the last call to the chunk being sealed. */
  takeWindow(): AttributionTicket {
    const t: AttributionTicket = {
      files: [...this.#window].map(([key, v]) => ({ key, scope: v.scope, path: v.path })),
      containers: this.#windowContainers,
      omitted: this.#omitted,
      takenAtMs: this.#nowMs(),
    };
    // container facts are captured now, while the enricher still caches them
    for (const cid of t.containers.keys()) this.#captureFacts(cid, t.containers.get(cid));
    this.#window = new Map();
    this.#windowBytes = 0;
    this.#windowContainers = new Map();
    this.#omitted = 0;
    this.windowFull = false;
    return t;
  }

  #captureFacts(cid: string, recordDigest: string | undefined): void {
    const m = /^([a-z-]+):\/\/(.+)$/.exec(cid);
    const f = this.#o.containerFacts?.(cid);
    const prev = this.#facts.get(cid);
    const digest = recordDigest ?? f?.digest ?? prev?.image.digest ?? null;
    const facts: ContainerFacts = {
      container_id: cid,
      runtime: f?.runtime ?? m?.[1] ?? 'unknown',
      id: f?.id ?? m?.[2] ?? cid,
      names: f !== undefined ? [...new Set(f.names)].sort(compareUtf16) : prev?.names ?? [],
      image: {
        names: f?.image !== undefined ? [...new Set(f.image.names)].sort(compareUtf16) : prev?.image.names ?? [],
        digest,
        digest_basis: digest === null ? null : digest === f?.digest ? (f.basis ?? 'manifest') : prev?.image.digest === digest ? prev.image.digest_basis : 'manifest',
        id: f?.image?.id ?? prev?.image.id ?? null,
      },
      reason: f === undefined ? (prev?.reason ?? 'container_not_found') : (f.reason ?? null),
    };
    if (this.#facts.size >= 4096 && !this.#facts.has(cid)) this.#facts.delete(this.#facts.keys().next().value as string);
    this.#facts.set(cid, facts);
  }

  /**
   * finish waits for the ticket's resolutions until timeoutMs after its window was taken, and
   * builds the chunk's `attribution`. What is still running then is listed with reason `timeout`
   * (and its answer serves later chunks). The bound runs from takeWindow, not from this call:
   * seals wait in sequence order (src/store/chunk-writer.ts), so a bound from each call would let
   * one stuck resolution hold every later chunk for the whole bound in turn (under an open storm
   * with small chunks, 3 chunks took 16 s to seal: docs/reliability.md, bug 5).
   */
  async finish(t: AttributionTicket, timeoutMs: number): Promise<ChunkAttribution> {
    const waiting = t.files.map((f) => this.#pending.get(f.key)).filter((p): p is Promise<PathAttribution> => p !== undefined);
    const leftMs = t.takenAtMs + timeoutMs - this.#nowMs();
    if (waiting.length > 0 && leftMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(waiting), new Promise<void>((r) => (timer = setTimeout(r, leftMs)))]);
      clearTimeout(timer);
    }
    const files: FileAttribution[] = [];
    const reasons: Record<string, number> = {};
    for (const f of t.files) {
      let a = this.#cache.get(f.key);
      if (a === undefined) {
        a = { purl: null, via: null, root: null, reason: this.#pending.has(f.key) ? 'timeout' : 'not_resolved', components: [] };
        if (a.reason === 'timeout') this.c.timeouts++;
      }
      files.push({ scope: f.scope, path: f.path, purl: a.purl, via: a.via, root: a.root, reason: a.reason, components: a.components });
      if (a.reason !== null) reasons[a.reason] = (reasons[a.reason] ?? 0) + 1;
    }
    files.sort((a, b) => compareUtf16(a.scope, b.scope) || compareUtf16(a.path, b.path));
    const containers = [...t.containers.keys()].sort(compareUtf16).map((cid) => this.#facts.get(cid)!);
    const sortedReasons: Record<string, number> = {};
    for (const k of Object.keys(reasons).sort()) sortedReasons[k] = reasons[k]!;
    return { containers, files, omitted: t.omitted, reasons: sortedReasons };
  }

  /** idle resolves once no resolution is queued or running, or after timeoutMs. */
  idle(timeoutMs: number): Promise<void> {
    if (this.#running === 0 && this.#queued === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  counters(): AttributorCounters {
    return { ...this.c, byReason: { ...this.c.byReason }, byVia: { ...this.c.byVia }, byRoot: { ...this.c.byRoot } };
  }

  /** close releases pinned container roots; later notes are answered from the cache or `root_gone`. */
  close(): void {
    this.#closed = true;
    for (const s of this.#scopes.values()) s.resolver?.root.close();
    for (const s of this.#scopes.values()) delete s.resolver;
  }
}

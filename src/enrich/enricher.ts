import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { classifyCgroupPath, type CgroupClass } from './cgroup-path';
import { cgroup2Mount } from '../platform/cgroup2';
import { CgroupTree } from './host/cgroup-tree';
import { ContainerdSource } from './host/containerd-source';
import { DockerApiSource, DockerFilesSource } from './host/docker-source';
import type { ContainerSource } from './host/source';
import { StorageSource } from './host/storage-source';
import { Lru } from '../util/lru';
import { computeSelection, validateSelector, type CgroupSelection, type ContainerSelector, type SelectionInput } from './select';
import { CONTAINER_RUNTIMES, containerIdUri, type ContainerFacts, type ContainerRuntime, type DigestResult, type EnrichInfo, type EnrichReason } from './types';

/** EnricherOptions configures where runtimes keep their state and how much is cached. */
export interface EnricherOptions {
  /** prefix of every default host path below (tests point it at a fixture tree); default `/` */
  fsRoot?: string;
  /** cgroup2 mount; default from /proc/self/mountinfo (/sys/fs/cgroup/unified on hybrid hosts) */
  cgroup2Mount?: string;
  /** v1 hierarchy whose ids `lookup(id, 'v1')` takes; default <fsRoot>/sys/fs/cgroup/memory */
  cgroupV1Mount?: string;
  /** containers-storage graph roots (podman, CRI-O); default [/var/lib/containers/storage] */
  storageRoots?: string[];
  /** containers-storage driver; default overlay */
  storageDriver?: string;
  /** Docker data root; default /var/lib/docker; null disables the state-file source */
  dockerRoot?: string | null;
  /** Docker API socket; default /var/run/docker.sock; null disables */
  dockerSocket?: string | null;
  /** containerd socket; default /run/containerd/containerd.sock (k3s: /run/k3s/containerd/containerd.sock); null disables */
  containerdSocket?: string | null;
  /** containerd namespaces to search when the path does not name one; default: all (Namespaces.List) */
  containerdNamespaces?: string[];
  /** deadline of one runtime API request; default 1000 ms */
  socketTimeoutMs?: number;
  /** max cached cgroups and max cached containers; default 4096 each */
  maxEntries?: number;
  /** how long a failed resolution is remembered before it is retried; default 10 s */
  negativeTtlMs?: number;
  /** how long the answer for a removed cgroup stays cached (late records); default 60 s */
  goneGraceMs?: number;
  /** a lookup re-walks the tree (to expire removed cgroups) if the last walk is older; default 30 s */
  sweepIntervalMs?: number;
  /** max cgroups resolved at once; beyond that lookups return 'pending' and count queue_full; default 256 */
  maxInFlight?: number;
  /** clock in milliseconds; default Date.now */
  now?: () => number;
  /** where the one warning per failing source goes; default process.stderr */
  warn?: (message: string) => void;
  /** replace the runtime sources (tests) */
  sources?: ContainerSource[];
}

/** Hierarchy says which cgroup hierarchy an id belongs to. */
export type Hierarchy = 'v2' | 'v1';

/** EnrichCounters is the ledger of enrichment; cgroup-level unless named `records`. */
export interface EnrichCounters {
  lookups: number;
  cacheHits: number;
  /** cgroups resolved to a container with an image digest */
  resolved: number;
  /** cgroups resolved to a container without image digest (see errors for why) */
  resolvedNoDigest: number;
  /** cgroups resolved as host (no container fields) */
  host: number;
  /** cgroups that could not be resolved (see errors for why) */
  unresolved: number;
  /** failures by reason (cgroup and digest level) */
  errors: Partial<Record<EnrichReason, number>>;
  /** per record outcomes, counted by enrichRecord() */
  records: { container: number; containerNoDigest: number; host: number; unresolved: number };
  cacheSize: number;
  inFlight: number;
}

interface CgroupAnswer {
  info: EnrichInfo;
  cls: CgroupClass;
  container?: { runtime: ContainerRuntime; id: string; names: string[]; digest?: string };
  reason?: EnrichReason;
}

/** RecordLike is the part of a record enrichment reads and writes. */
export interface RecordLike {
  cgroup_id?: bigint;
  container_id?: string;
  image_digest?: string;
}

/**
 * Enricher attributes records to containers: cgroup id → cgroup path → container id and
 * runtime → image digest, off the hot path. `lookup` is synchronous and never waits; the first
 * lookup of a cgroup starts an asynchronous resolution and answers 'pending'.
 *
 * @example
 * const enricher = new Enricher({ containerdSocket: '/run/k3s/containerd/containerd.sock' });
 * const info = enricher.lookup(record.cgroup_id);
 * if (info !== 'pending') Object.assign(record, toRecordFields(info));
 */
export class Enricher {
  readonly #sweeps = new Set<Promise<void>>();
  readonly #opt: Required<Pick<EnricherOptions, 'negativeTtlMs' | 'goneGraceMs' | 'sweepIntervalMs' | 'maxInFlight'>>;
  readonly #now: () => number;
  readonly #warn: (message: string) => void;
  readonly #sources: ContainerSource[];
  readonly #cgroups: Lru<string, CgroupAnswer>;
  readonly #containers: Lru<string, DigestResult>;
  readonly #inFlight = new Map<string, Promise<CgroupAnswer>>();
  readonly #containerInFlight = new Map<string, Promise<DigestResult>>();
  readonly #warned = new Set<string>();
  readonly #trees: Partial<Record<Hierarchy, Promise<CgroupTree>>> = {};
  readonly #lastWalk: Record<Hierarchy, number>;
  readonly #options: EnricherOptions;
  #closed = false;
  #c: EnrichCounters = {
    lookups: 0, cacheHits: 0, resolved: 0, resolvedNoDigest: 0, host: 0, unresolved: 0, errors: {},
    records: { container: 0, containerNoDigest: 0, host: 0, unresolved: 0 }, cacheSize: 0, inFlight: 0,
  };

  constructor(options: EnricherOptions = {}) {
    this.#options = options;
    const maxEntries = options.maxEntries ?? 4096;
    this.#now = options.now ?? Date.now;
    this.#warn = options.warn ?? ((m) => process.stderr.write(`rtev: warning: ${m}\n`));
    this.#opt = {
      negativeTtlMs: options.negativeTtlMs ?? 10_000,
      goneGraceMs: options.goneGraceMs ?? 60_000,
      sweepIntervalMs: options.sweepIntervalMs ?? 30_000,
      maxInFlight: options.maxInFlight ?? 256,
    };
    this.#cgroups = new Lru(maxEntries, { now: this.#now });
    this.#containers = new Lru(maxEntries, { now: this.#now });
    this.#sources = options.sources ?? defaultSources(options);
    this.#lastWalk = { v2: this.#now(), v1: this.#now() };
  }

  /**
   * lookup returns the cached attribution of a cgroup (`{}` for host cgroups and for cgroups
   * that cannot be attributed), or 'pending' after starting its resolution. Never blocks.
   */
  lookup(cgroupId: bigint, hierarchy: Hierarchy = 'v2'): EnrichInfo | 'pending' {
    this.#c.lookups++;
    const key = `${hierarchy}:${cgroupId}`;
    const hit = this.#cgroups.get(key);
    this.#maybeSweep(hierarchy);
    if (hit !== undefined) {
      this.#c.cacheHits++;
      return hit.info;
    }
    this.#start(key, cgroupId, hierarchy);
    return 'pending';
  }

  /** whenSettled resolves with the attribution once known, or 'pending' after `timeoutMs`. */
  whenSettled(cgroupId: bigint, timeoutMs: number, hierarchy: Hierarchy = 'v2'): Promise<EnrichInfo | 'pending'> {
    const now = this.lookup(cgroupId, hierarchy);
    if (now !== 'pending') return Promise.resolve(now);
    const running = this.#inFlight.get(`${hierarchy}:${cgroupId}`);
    if (running === undefined || timeoutMs <= 0) return Promise.resolve('pending');
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve('pending'), timeoutMs);
      void running.then((a) => {
        clearTimeout(timer);
        resolve(a.info);
      });
    });
  }

  /**
   * enrichRecord sets `container_id`/`image_digest` on a record and counts its outcome in
   * `counters().records`. It returns undefined when it finished synchronously, or a promise when
   * it holds the record (at most `holdMs`) for a resolution in progress.
   */
  enrichRecord(record: RecordLike, holdMs = 0): Promise<void> | undefined {
    if (record.cgroup_id === undefined) {
      this.#c.records.unresolved++;
      return undefined;
    }
    const info = this.lookup(record.cgroup_id);
    if (info !== 'pending' || holdMs <= 0) {
      this.#apply(record, info);
      return undefined;
    }
    return this.whenSettled(record.cgroup_id, holdMs).then((settled) => this.#apply(record, settled));
  }

  #apply(record: RecordLike, info: EnrichInfo | 'pending'): void {
    const r = this.#c.records;
    if (info === 'pending') {
      r.unresolved++;
      return;
    }
    Object.assign(record, toRecordFields(info));
    if (info.containerId !== undefined) {
      if (info.imageDigest !== undefined) r.container++;
      else r.containerNoDigest++;
      return;
    }
    const answer = this.#cgroups.get(`v2:${record.cgroup_id}`);
    if (answer === undefined || answer.reason !== undefined) r.unresolved++;
    else r.host++;
  }

  /**
   * containerFacts returns what was learned of a container (`<runtime>://<id>`): its names,
   * image digest, image id and references, or the reason they are unknown. Undefined when the
   * container was never resolved (or its answer left the cache).
   */
  containerFacts(containerId: string): ContainerFacts | undefined {
    const m = /^([a-z-]+):\/\/([a-f0-9]{64})$/.exec(containerId);
    if (m === null || !(CONTAINER_RUNTIMES as readonly string[]).includes(m[1]!)) return undefined;
    const runtime = m[1] as ContainerRuntime;
    const r = this.#containers.get(`${runtime}:${m[2]}`);
    if (r === undefined) return undefined;
    if (!r.ok) return { runtime, id: m[2]!, names: [], reason: r.reason };
    return {
      runtime, id: m[2]!, names: [...(r.names ?? [])].sort(), digest: r.digest, basis: r.basis,
      ...(r.image !== undefined ? { image: r.image } : {}),
    };
  }

  /** counters returns a snapshot of the enrichment ledger. */
  counters(): EnrichCounters {
    return {
      ...this.#c,
      errors: { ...this.#c.errors },
      records: { ...this.#c.records },
      cacheSize: this.#cgroups.size,
      inFlight: this.#inFlight.size,
    };
  }

  /**
   * warmUp resolves the cgroups that exist now (at most 256, 8 levels deep) before the rings
   * start, so a burst of events at start does not have to wait for (or overflow the queue of)
   * records held for attribution. `root` defaults to the cgroup2 mount as rtev collect sees it.
   */
  async warmUp(root = cgroup2Mount(), timeoutMs = 3000): Promise<void> {
    const ids: { id: bigint; hierarchy: Hierarchy; rel: string }[] = [];
    // (rel: the path below the mount as CgroupTree names it; the answers start from it, without
    // waiting for a walk of the whole tree, which a promise per directory made 2-3x dearer)
    const walk = (dir: string, rel: string, depth: number, hierarchy: Hierarchy): void => {
      if (ids.length >= 256 || depth > 8) return;
      try {
        ids.push({ id: fs.statSync(dir, { bigint: true }).ino, hierarchy, rel });
        for (const d of fs.readdirSync(dir, { withFileTypes: true })) {
          if (d.isDirectory()) walk(path.join(dir, d.name), rel === '/' ? `/${d.name}` : `${rel}/${d.name}`, depth + 1, hierarchy);
        }
      } catch {
        // removed while walking
      }
    };
    walk(root, '/', 0, 'v2');
    // a host with the v1 memory controller: records of processes outside cgroup2 carry their v1
    // memory cgroup (the observed command inherits rtev's). Unwarmed, the first records of such a
    // cgroup wait for its answer on the reference path: 5-8% of a 500k-open storm, about twice the
    // collector's CPU and +80 MB peak RSS (docs/benchmarks.md, "Session 3").
    const v1 = this.#options.cgroupV1Mount ?? path.join(this.#options.fsRoot ?? '/', 'sys/fs/cgroup/memory');
    if (fs.existsSync(path.join(v1, 'memory.usage_in_bytes'))) walk(v1, '/', 0, 'v1');
    await Promise.all(ids.map(({ id, hierarchy, rel }) => {
      const key = `${hierarchy}:${id}`;
      if (!this.#closed && this.#cgroups.get(key) === undefined && !this.#inFlight.has(key) && this.#inFlight.size < this.#opt.maxInFlight) {
        void this.#answer(key, id, hierarchy, rel);
      }
      return this.whenSettled(id, timeoutMs, hierarchy);
    }));
  }

  /** close stops background work; later lookups answer from the cache only. */
  close(): void {
    this.#closed = true;
  }

  /**
   * selectCgroups re-walks the cgroup2 tree, resolves every container cgroup, and returns the
   * ids for the kernel-side filter (semantics: docs/containers.md, "Selecting containers").
   * Throws SelectError for contradictory or ambiguous selectors.
   */
  async selectCgroups(selector: ContainerSelector): Promise<CgroupSelection> {
    validateSelector(selector);
    const tree = await this.#tree('v2');
    const started = this.#now();
    await tree.refresh();
    this.#afterWalk('v2', tree, started);
    const inputs: SelectionInput[] = await Promise.all(
      tree.entries().map(async ([cgroupId, p]) => {
        const answer = await this.#answer(`v2:${cgroupId}`, cgroupId, 'v2', p);
        return { cgroupId, cls: answer.cls, ...(answer.container ? { container: answer.container } : {}) };
      }),
    );
    return computeSelection(inputs, selector);
  }

  /**
   * watchSelection re-runs selectCgroups every `intervalMs` (default 1000) and calls `onChange`
   * when the id set changes, so containers started later are picked up. With an empty selector
   * it only pre-resolves new containers (warm cache). Errors go to `onError` and keep the last selection.
   * `immediate: false`: the first run waits for the first interval too (the caller resolved the
   * cgroups that exist now itself, e.g. with warmUp).
   */
  watchSelection(
    selector: ContainerSelector,
    onChange: (selection: CgroupSelection) => void,
    opts: { intervalMs?: number; onError?: (err: unknown) => void; immediate?: boolean } = {},
  ): { close(): void } {
    let last = '';
    let running = false;
    let closed = false;
    const tick = async (): Promise<void> => {
      if (running || closed || this.#closed) return;
      running = true;
      try {
        const sel = await this.selectCgroups(selector);
        const sig = `${sel.mode}:${sel.cgroupIds.join(',')}`;
        if (sig !== last && !closed) {
          last = sig;
          onChange(sel);
        }
      } catch (err) {
        if (!closed) opts.onError?.(err);
      } finally {
        running = false;
      }
    };
    if (opts.immediate !== false) void tick();
    const timer = setInterval(() => void tick(), opts.intervalMs ?? 1000);
    timer.unref();
    return {
      close: () => {
        closed = true; // a walk still running when closed reports nothing
        clearInterval(timer);
      },
    };
  }

  #start(key: string, cgroupId: bigint, hierarchy: Hierarchy): void {
    if (this.#closed || this.#inFlight.has(key)) return;
    if (this.#inFlight.size >= this.#opt.maxInFlight) {
      this.#count('queue_full');
      return;
    }
    void this.#answer(key, cgroupId, hierarchy);
  }

  /** answer resolves one cgroup (sharing a resolution in flight) and caches the result. */
  #answer(key: string, cgroupId: bigint, hierarchy: Hierarchy, knownPath?: string): Promise<CgroupAnswer> {
    const hit = this.#cgroups.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    const p = this.#resolveCgroup(cgroupId, hierarchy, knownPath)
      .catch((err): CgroupAnswer => {
        this.#warnOnce('internal', `cgroup resolution failed: ${String(err)}`);
        return { info: {}, cls: { kind: 'unknown', reason: 'malformed', path: '' }, reason: 'metadata_unreadable' };
      })
      .then((a) => {
        this.#inFlight.delete(key);
        this.#record(a);
        this.#cgroups.set(key, a, a.reason !== undefined ? this.#opt.negativeTtlMs : Infinity);
        return a;
      });
    this.#inFlight.set(key, p);
    return p;
  }

  async #resolveCgroup(cgroupId: bigint, hierarchy: Hierarchy, knownPath?: string): Promise<CgroupAnswer> {
    let cgPath = knownPath;
    if (cgPath === undefined) {
      const tree = await this.#tree(hierarchy);
      cgPath = tree.pathOf(cgroupId);
      if (cgPath === undefined) {
        const started = this.#now();
        await tree.refreshAfterNow();
        this.#afterWalk(hierarchy, tree, started);
        cgPath = tree.pathOf(cgroupId);
      }
    }
    if (cgPath === undefined) {
      return { info: {}, cls: { kind: 'unknown', reason: 'unrecognized', path: '' }, reason: 'cgroup_not_found' };
    }
    const cls = classifyCgroupPath(cgPath);
    if (hierarchy === 'v1' && cls.kind !== 'host' && (await this.#existsInV2(cgPath))) {
      // The container has a cgroup in the v2 tree too, so a task of it that is still in the v2
      // root is a runtime helper joining it (runc init moves into v1 first): not attributed.
      return { info: {}, cls: { kind: 'host', note: 'runtime helper joining a container that also has a v2 cgroup' } };
    }
    switch (cls.kind) {
      case 'host':
        return { info: {}, cls };
      case 'unknown':
        this.#warnOnce('layout', `cgroup ${cgPath} looks like a container but matches no known layout; its records get no container fields`);
        return { info: {}, cls, reason: 'unknown_layout' };
      case 'container':
        return this.#containerAnswer(cls, cls.runtime, await this.#resolveContainer(cls.runtime, cls.id, {}));
      case 'ambiguous': {
        let worst: DigestResult = { ok: false, reason: 'runtime_unconfirmed' };
        for (const runtime of cls.candidates) {
          const r = await this.#resolveContainer(runtime, cls.id, cls.namespace === undefined ? {} : { namespace: cls.namespace });
          if (r.ok || r.reason !== 'container_not_found') {
            if (r.ok || r.reason === 'image_not_found' || r.reason === 'no_digest') return this.#containerAnswer(cls, runtime, r);
            worst = r; // a source failed: the runtime cannot be confirmed
          }
        }
        return { info: {}, cls, reason: worst.ok ? 'runtime_unconfirmed' : worst.reason };
      }
    }
  }

  /** existsInV2: whether the same cgroup path exists in the v2 hierarchy. */
  async #existsInV2(cgPath: string): Promise<boolean> {
    try {
      const tree = await this.#tree('v2');
      await fsp.stat(path.join(tree.mount, cgPath));
      return true;
    } catch {
      return false;
    }
  }

  #containerAnswer(cls: CgroupClass & { id: string }, runtime: ContainerRuntime, r: DigestResult): CgroupAnswer {
    const containerId = containerIdUri(runtime, cls.id);
    if (r.ok) {
      return {
        info: { containerId, imageDigest: r.digest },
        cls,
        container: { runtime, id: cls.id, names: r.names ?? [], digest: r.digest },
      };
    }
    return { info: { containerId }, cls, container: { runtime, id: cls.id, names: [] }, reason: r.reason };
  }

  /** resolveContainer asks the sources of `runtime` in order; results are cached per container. */
  #resolveContainer(runtime: ContainerRuntime, id: string, hint: { namespace?: string }): Promise<DigestResult> {
    const key = `${runtime}:${id}`;
    const hit = this.#containers.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const running = this.#containerInFlight.get(key);
    if (running !== undefined) return running;
    const p = (async (): Promise<DigestResult> => {
      const failures: Array<{ source: string; r: DigestResult & { ok: false } }> = [];
      for (const source of this.#sources.filter((s) => s.runtimes.includes(runtime))) {
        const r = await source.resolve(id, hint);
        if (r.ok) return r;
        if (r.reason !== 'container_not_found') failures.push({ source: source.name, r });
      }
      // warn only when no source knew the container: a missing docker socket is no news on a podman host
      for (const f of failures) {
        this.#warnOnce(`${f.source}:${f.r.reason}`, `${f.source}: ${f.r.reason}${f.r.detail ? ` (${f.r.detail})` : ''}`);
      }
      return failures[0]?.r ?? { ok: false, reason: 'container_not_found' };
    })().then((r) => {
      this.#containerInFlight.delete(key);
      this.#containers.set(key, r, r.ok ? Infinity : this.#opt.negativeTtlMs);
      return r;
    });
    this.#containerInFlight.set(key, p);
    return p;
  }

  #record(a: CgroupAnswer): void {
    if (a.reason !== undefined) this.#count(a.reason);
    if (a.info.containerId !== undefined) {
      if (a.info.imageDigest !== undefined) this.#c.resolved++;
      else this.#c.resolvedNoDigest++;
    } else if (a.reason === undefined) this.#c.host++;
    else this.#c.unresolved++;
  }

  #count(reason: EnrichReason): void {
    this.#c.errors[reason] = (this.#c.errors[reason] ?? 0) + 1;
  }

  #warnOnce(key: string, message: string): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.#warn(`container enrichment: ${message}; affected records are written without some container fields and counted (further warnings of this kind suppressed)`);
  }

  #tree(h: Hierarchy): Promise<CgroupTree> {
    let t = this.#trees[h];
    if (t === undefined) {
      const root = this.#options.fsRoot ?? '/';
      t = h === 'v2'
        ? (this.#options.cgroup2Mount !== undefined ? Promise.resolve(this.#options.cgroup2Mount) : Promise.resolve(cgroup2Mount(root))).then((m) => new CgroupTree(m))
        : Promise.resolve(new CgroupTree(this.#options.cgroupV1Mount ?? path.join(root, 'sys/fs/cgroup/memory')));
      this.#trees[h] = t;
    }
    return t;
  }

  /** afterWalk expires cached answers of cgroups that no longer exist (a grace period after the walk began). */
  #afterWalk(h: Hierarchy, tree: CgroupTree, now: number): void {
    this.#lastWalk[h] = now;
    const prefix = `${h}:`;
    for (const key of this.#cgroups.keys()) {
      if (!key.startsWith(prefix)) continue;
      if (tree.pathOf(BigInt(key.slice(prefix.length))) === undefined) this.#cgroups.expireAt(key, now + this.#opt.goneGraceMs);
    }
  }

  #maybeSweep(h: Hierarchy): void {
    if (this.#closed || this.#now() - this.#lastWalk[h] < this.#opt.sweepIntervalMs) return;
    const started = this.#now();
    this.#lastWalk[h] = started;
    const sweep = this.#tree(h)
      .then(async (tree) => {
        await tree.refresh();
        this.#afterWalk(h, tree, started);
      })
      .catch((err) => this.#warnOnce(`walk:${h}`, `cannot walk the cgroup tree: ${String(err)}`));
    this.#sweeps.add(sweep);
    void sweep.finally(() => this.#sweeps.delete(sweep));
  }

  /** whenSwept resolves once the background sweep walks started so far have finished. */
  async whenSwept(): Promise<void> {
    await Promise.all([...this.#sweeps]);
  }
}

/** toRecordFields renders EnrichInfo as the record's snake_case fields. */
export function toRecordFields(info: EnrichInfo): { container_id?: string; image_digest?: string } {
  return {
    ...(info.containerId !== undefined ? { container_id: info.containerId } : {}),
    ...(info.imageDigest !== undefined ? { image_digest: info.imageDigest } : {}),
  };
}

function defaultSources(o: EnricherOptions): ContainerSource[] {
  const root = o.fsRoot ?? '/';
  const timeout = o.socketTimeoutMs ?? 1000;
  const sources: ContainerSource[] = [
    new StorageSource(o.storageRoots ?? [path.join(root, 'var/lib/containers/storage')], o.storageDriver ?? 'overlay'),
  ];
  if (o.dockerRoot !== null) sources.push(new DockerFilesSource(o.dockerRoot ?? path.join(root, 'var/lib/docker')));
  if (o.dockerSocket !== null) sources.push(new DockerApiSource(o.dockerSocket ?? path.join(root, 'var/run/docker.sock'), timeout));
  if (o.containerdSocket !== null) {
    sources.push(new ContainerdSource(o.containerdSocket ?? path.join(root, 'run/containerd/containerd.sock'), timeout, o.containerdNamespaces));
  }
  return sources;
}

import * as fs from 'node:fs';
import * as path from 'node:path';
import { computeSelection, type CgroupClass, type ContainerFacts, type ContainerSelector, type EnrichInfo } from '../enrich';
import { CGROUP_V1_KEY, cgroupFilterKey } from './session';

/**
 * CgroupGate decides, in user space, which cgroups a container selection keeps
 * (`rtev collect --container NAME`, `--image`, `--containers-only`; docs/containers.md,
 * "Selecting containers"), and tells the kernel to drop the cgroups it knows do not match.
 *
 * The kernel filter runs as a deny list: cgroups decided not to match are dropped there; new
 * and undecided cgroups pass to user space, where their records wait (bounded, src/ingest/pipeline.ts)
 * for the attribution that decides them. A container started after the collector therefore
 * keeps its first exec and first reads, which an allow list refreshed every second lost.
 * Records dropped here are counted in the ledger's user `filtered`, as the kernel's are in its own.
 */
export interface GateOptions {
  selector: ContainerSelector;
  /** what is known of a container (`<runtime>://<id>`): names and digest (Enricher.containerFacts) */
  facts(containerId: string): ContainerFacts | undefined;
  /** add a key (cgroupFilterKey) to the kernel's deny list; false when that is full (or later: connect) */
  deny?(key: bigint): boolean;
  /** remove a key from the kernel's deny list (prune: the cgroup is gone) */
  undeny?(key: bigint): void;
}

export interface GateStats {
  /** cgroups decided: kept, dropped */
  kept: number;
  dropped: number;
  /** dropped cgroups the kernel now filters itself */
  denied: number;
  /** dropped cgroups the kernel's map has no room for now (user space keeps dropping their records) */
  denyFull: number;
  /** denied cgroups removed from the kernel's map once they were gone (prune) */
  pruned: number;
  /** prune passes skipped because the cgroup tree could not be listed whole */
  pruneSkipped: number;
}

/** At most this many keys are removed from the kernel's map per prune pass (the rest: next pass). */
export const PRUNE_MAX_PER_PASS = 4096;

/**
 * At most this many cgroups decided for good are remembered (4 x the kernel's map); beyond, a
 * dropped cgroup is dropped in user space only, until a prune makes room.
 */
const MAX_DENIED = 65536;

/** At most this many decisions are remembered (beyond, the cache starts over; decisions are cheap). */
const MAX_DECISIONS = 16384;

interface Decision {
  containerId: string | undefined;
  imageDigest: string | undefined;
  keep: boolean;
}

export class CgroupGate {
  readonly #o: GateOptions;
  readonly #decisions = new Map<string, Decision>();
  /**
   * keys decided for good: in the kernel's map ('kernel'), not taken because it was full ('full'),
   * or waiting for connect ('pending'); the decision's key (`v2:ID`, `v1:ID`) goes with it
   */
  readonly #denied = new Map<bigint, { state: 'kernel' | 'full' | 'pending'; decision: string }>();
  readonly stats: GateStats = { kept: 0, dropped: 0, denied: 0, denyFull: 0, pruned: 0, pruneSkipped: 0 };
  #deny: ((key: bigint) => boolean) | undefined;
  #undeny: ((key: bigint) => void) | undefined;
  /** keys decided before the kernel filter could take them (connect) */
  #pending: bigint[] = [];

  constructor(options: GateOptions) {
    this.#o = options;
    this.#deny = options.deny;
    this.#undeny = options.undeny;
  }

  /** connect: from now on denied keys go to the kernel, starting with those decided before. */
  connect(deny: (key: bigint) => boolean, undeny?: (key: bigint) => void): void {
    this.#deny = deny;
    this.#undeny = undeny;
    for (const key of this.#pending.splice(0)) if (this.#denied.has(key)) this.#kernelDeny(key);
  }

  /** how many cgroups are decided for good (denied, or waiting for room in the kernel's map) */
  get deniedCount(): number {
    return this.#denied.size;
  }

  /** the keys decided for good, and whether the kernel holds them (tests, --verbose) */
  deniedKeys(): Map<bigint, 'kernel' | 'full' | 'pending'> {
    return new Map([...this.#denied].map(([k, v]) => [k, v.state]));
  }

  #kernelDeny(key: bigint): void {
    const entry = this.#denied.get(key)!;
    if (this.#deny === undefined) {
      this.#pending.push(key);
      return;
    }
    if (entry.state === 'full') this.stats.denyFull--;
    if (this.#deny(key)) {
      entry.state = 'kernel';
      this.stats.denied++;
    } else {
      entry.state = 'full';
      this.stats.denyFull++;
    }
  }

  /**
   * prune forgets the denied cgroups that are gone: their keys leave the kernel's map (at most
   * PRUNE_MAX_PER_PASS per pass), which has a fixed size (16384, bpf/common.h) and would otherwise
   * fill with the cgroups of finished containers and services. Cgroup ids are not reused, so a
   * gone key never matches again. `present` holds the filter keys (cgroupFilterKey) of every cgroup
   * that exists: a listing that is not whole (`complete` false) prunes nothing, as a cgroup missing
   * from it may exist. Keys the map had no room for are tried again once keys were removed.
   * Gives how many keys were pruned.
   */
  prune(present: PresentCgroups): number {
    if (!present.complete) {
      this.stats.pruneSkipped++;
      return 0;
    }
    let removed = 0;
    for (const [key, entry] of this.#denied) {
      if (present.keys.has(key)) continue;
      // a v1 memory cgroup's key (bit 63) is pruned only when that hierarchy was listed
      if ((key & CGROUP_V1_KEY) !== 0n ? !present.v1 : !present.v2) continue;
      if (removed >= PRUNE_MAX_PER_PASS) break;
      if (entry.state === 'kernel') {
        this.#undeny?.(key);
        this.stats.denied--;
        this.stats.pruned++;
        removed++;
      } else if (entry.state === 'full') {
        this.stats.denyFull--;
      }
      this.#denied.delete(key);
      this.#decisions.delete(entry.decision);
    }
    // room again: the keys refused before, until the map refuses one again
    if (this.stats.denyFull > 0) {
      for (const [key, entry] of this.#denied) {
        if (entry.state !== 'full') continue;
        this.#kernelDeny(key);
        if (entry.state === 'full') break;
      }
    }
    return removed;
  }

  /**
   * keep tells whether a cgroup's records are kept, given its attribution. A cgroup decided not
   * to match for good (a host cgroup, or a container whose names and image are known) is denied
   * in the kernel; one whose container could not be resolved (yet) is dropped here each time,
   * so a later resolution can still change the answer.
   */
  keep(key: string, id: bigint, hierarchy: 'v2' | 'v1', info: EnrichInfo): boolean {
    const known = this.#decisions.get(key);
    if (known !== undefined && known.containerId === info.containerId && known.imageDigest === info.imageDigest) return known.keep;
    const { keep, final } = this.#decide(id, info);
    if (this.#decisions.size >= MAX_DECISIONS) this.#decisions.clear();
    this.#decisions.set(key, { containerId: info.containerId, imageDigest: info.imageDigest, keep });
    if (keep) this.stats.kept++;
    else this.stats.dropped++;
    if (!keep && final) {
      const filterKey = cgroupFilterKey(id, hierarchy);
      if (!this.#denied.has(filterKey) && this.#denied.size < MAX_DENIED) {
        this.#denied.set(filterKey, { state: 'pending', decision: key });
        this.#kernelDeny(filterKey);
      }
    }
    return keep;
  }

  /** decided: the last decision on a cgroup key (`v2:ID` or `v1:ID`, as keep() is given), if any. */
  decided(key: string): boolean | undefined {
    return this.#decisions.get(key)?.keep;
  }

  #decide(id: bigint, info: EnrichInfo): { keep: boolean; final: boolean } {
    if (info.containerId === undefined) return { keep: false, final: true }; // a host cgroup never matches a narrowing selector
    const facts = this.#o.facts(info.containerId);
    const m = /^([a-z-]+):\/\/([a-f0-9]{64})$/.exec(info.containerId);
    if (m === null) return { keep: false, final: false };
    const container = {
      runtime: m[1] as ContainerFacts['runtime'], id: m[2]!, names: facts?.names ?? [],
      ...(info.imageDigest !== undefined ? { digest: info.imageDigest } : facts?.digest !== undefined ? { digest: facts.digest } : {}),
    };
    const cls: CgroupClass = { kind: 'container', id: container.id, runtime: container.runtime, layout: 'selection' };
    let keep = false;
    try {
      keep = computeSelection([{ cgroupId: id, cls, container }], this.#o.selector).cgroupIds.length > 0;
    } catch {
      keep = false; // a selector error was reported at start; one container cannot be ambiguous
    }
    // what is not known yet (names, digest) may still make it match: not final
    return { keep, final: keep || (facts !== undefined && facts.reason === undefined) };
  }
}

/**
 * listCgroups gives the ids of the cgroup directories under `mount` (at most `max`, breadth
 * first), to decide on the cgroups that exist when collection starts.
 */
export function listCgroups(mount: string, max = 4096): bigint[] {
  return walkCgroups(mount, max).ids;
}

/** walkCgroups: as listCgroups, and whether the walk saw the whole tree (complete) */
export function walkCgroups(mount: string, max: number): { ids: bigint[]; complete: boolean } {
  const ids: bigint[] = [];
  const queue = [mount];
  let head = 0;
  let complete = true;
  while (head < queue.length) {
    if (ids.length >= max) {
      complete = false;
      break;
    }
    const dir = queue[head++]!;
    try {
      ids.push(fs.statSync(dir, { bigint: true }).ino);
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) queue.push(path.join(dir, d.name));
    } catch (err) {
      // removed while walking (gone: fine); anything else leaves the listing partial
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') complete = false;
    }
  }
  return { ids, complete };
}

/** At most this many cgroups are listed for a prune pass (a bigger tree is not pruned). */
export const PRUNE_WALK_MAX = 65536;

/**
 * presentCgroupKeys lists the filter keys (cgroupFilterKey) of the cgroups that exist now: the
 * v2 tree, and a v1 memory hierarchy when there is one (hybrid hosts). Synchronous: no key can be
 * denied while it runs, so a cgroup denied before the walk began is in it unless it is gone.
 */
export function presentCgroupKeys(v2Mount: string | undefined, v1Mount: string | undefined, max = PRUNE_WALK_MAX): PresentCgroups {
  const keys = new Set<bigint>();
  let complete = true;
  if (v2Mount !== undefined) {
    const w = walkCgroups(v2Mount, max);
    for (const id of w.ids) keys.add(cgroupFilterKey(id, 'v2'));
    complete &&= w.complete;
  }
  if (v1Mount !== undefined) {
    const w = walkCgroups(v1Mount, max);
    for (const id of w.ids) keys.add(cgroupFilterKey(id, 'v1'));
    complete &&= w.complete;
  }
  return { keys, complete, v2: v2Mount !== undefined, v1: v1Mount !== undefined };
}

/** The cgroups that exist, as filter keys; v2, v1: which hierarchies were listed. */
export interface PresentCgroups {
  keys: ReadonlySet<bigint>;
  complete: boolean;
  v2: boolean;
  v1: boolean;
}

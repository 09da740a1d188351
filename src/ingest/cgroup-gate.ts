import * as fs from 'node:fs';
import * as path from 'node:path';
import { computeSelection, type CgroupClass, type ContainerFacts, type ContainerSelector, type EnrichInfo } from '../enrich';
import { cgroupFilterKey } from './session';

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
}

export interface GateStats {
  /** cgroups decided: kept, dropped */
  kept: number;
  dropped: number;
  /** dropped cgroups the kernel now filters itself */
  denied: number;
  /** dropped cgroups the kernel's map had no room for (user space keeps dropping their records) */
  denyFull: number;
}

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
  /** keys the kernel filters already (or could not take) */
  readonly #denied = new Set<bigint>();
  readonly stats: GateStats = { kept: 0, dropped: 0, denied: 0, denyFull: 0 };
  #deny: ((key: bigint) => boolean) | undefined;
  /** keys decided before the kernel filter could take them (connect) */
  #pending: bigint[] = [];

  constructor(options: GateOptions) {
    this.#o = options;
    this.#deny = options.deny;
  }

  /** connect: from now on denied keys go to the kernel, starting with those decided before. */
  connect(deny: (key: bigint) => boolean): void {
    this.#deny = deny;
    for (const key of this.#pending.splice(0)) this.#kernelDeny(key);
  }

  #kernelDeny(key: bigint): void {
    if (this.#deny === undefined) {
      this.#pending.push(key);
      return;
    }
    if (this.#deny(key)) this.stats.denied++;
    else this.stats.denyFull++;
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
      if (!this.#denied.has(filterKey)) {
        this.#denied.add(filterKey);
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
  const ids: bigint[] = [];
  const queue = [mount];
  while (queue.length > 0 && ids.length < max) {
    const dir = queue.shift()!;
    try {
      ids.push(fs.statSync(dir, { bigint: true }).ino);
      for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) queue.push(path.join(dir, d.name));
    } catch {
      // removed while walking
    }
  }
  return ids;
}

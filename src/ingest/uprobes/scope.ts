import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseProcCgroup } from '../../enrich';

/**
 * The processes a run observes, as its filters select them (`--pid`, `--tree`, `-- CMD`,
 * `--cgroup`, a container selection): the TLS coverage scan (docs/probes-network.md, "Counted
 * coverage") names only these, so a run scoped to one command does not list the host's other
 * processes. The uprobes themselves stay host-wide (a library file is probed once for every
 * process); only the coverage bookkeeping is scoped.
 *
 * Each check is the decision the kernel's filter makes for the process's events
 * (bpf/common.h, filtered_out), read from the same maps, so a process is in scope exactly when
 * its events would be recorded:
 * - the pid filter (`--pid`, `--tree`, `-- CMD`): the tgid is in `traced_tgids` (the fork
 *   handler adds the children of traced trees as they are created);
 * - `--cgroup` (allow list): the process's cgroup v2 id is listed;
 * - a container selection (deny list plus the user-space gate): the process's cgroup key is not
 *   denied, and the gate has not decided to drop it. A cgroup the gate has not decided on yet
 *   (a container whose attribution is still pending) counts as in scope: naming one process too
 *   many is safe, leaving out one that is observed would claim coverage that is not there.
 */
export interface ScopeChecks {
  /** the kernel's pid filter is on: traced(tgid) says whether the tgid is in traced_tgids */
  traced?: (tgid: number) => boolean;
  /** `--cgroup`: the allowed cgroup v2 ids */
  allowCgroups?: ReadonlySet<bigint>;
  /**
   * a container selection: false when the process's cgroup is dropped (denied in the kernel, or
   * decided by the gate), true when kept, undefined when not decided yet
   */
  keepCgroup?: (ids: ProcessCgroups) => boolean | undefined;
}

/** A process's cgroups as the kernel keys them (bpf/common.h, task_cgroup_ids). */
export interface ProcessCgroups {
  /** cgroup v2 id (inode of its cgroup2 directory) */
  v2: bigint;
  /** the memory v1 cgroup's id when the process is in the v2 root on a hybrid host, else 0n */
  v1: bigint;
}

/** ObservedScope answers inScope(pid); undefined checks: every process is observed. */
export class ObservedScope {
  readonly #c: ScopeChecks;
  readonly #cgroup2: string;
  readonly #memoryV1: string | undefined;
  readonly #procRoot: string;

  constructor(checks: ScopeChecks, mounts: { cgroup2: string; memoryV1?: string; procRoot?: string }) {
    this.#c = checks;
    this.#cgroup2 = mounts.cgroup2;
    this.#memoryV1 = mounts.memoryV1;
    this.#procRoot = mounts.procRoot ?? '/proc';
  }

  /** narrowing: false when the run observes every process (then inScope is always true) */
  get narrowing(): boolean {
    return this.#c.traced !== undefined || this.#c.allowCgroups !== undefined || this.#c.keepCgroup !== undefined;
  }

  /** inScope: the run records this process's events. A process that is gone is out of scope. */
  inScope(pid: number): boolean {
    if (!this.narrowing) return true;
    if (this.#c.traced !== undefined && !this.#c.traced(pid)) return false;
    if (this.#c.allowCgroups === undefined && this.#c.keepCgroup === undefined) return true;
    const ids = processCgroups(pid, this.#cgroup2, this.#memoryV1, this.#procRoot);
    if (ids === undefined) return false;
    if (this.#c.allowCgroups !== undefined && !this.#c.allowCgroups.has(ids.v2)) return false;
    if (this.#c.keepCgroup !== undefined && this.#c.keepCgroup(ids) === false) return false;
    return true;
  }
}

/**
 * processCgroups reads /proc/PID/cgroup (bounded) and stats the process's cgroup directories:
 * the v2 id, and on a hybrid host for a process in the v2 root the memory v1 cgroup's id.
 */
export function processCgroups(pid: number, cgroup2: string, memoryV1: string | undefined, procRoot = '/proc'): ProcessCgroups | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`${procRoot}/${pid}/cgroup`, 'utf8').slice(0, 1 << 16);
  } catch {
    return undefined;
  }
  const parsed = parseProcCgroup(text);
  const v2Path = parsed.v2;
  const memPath = parsed.v1.get('memory');
  if (v2Path === undefined || !v2Path.startsWith('/') || v2Path.includes('/../')) return undefined;
  const ino = (dir: string): bigint | undefined => {
    try {
      return fs.statSync(dir, { bigint: true }).ino;
    } catch {
      return undefined;
    }
  };
  const v2 = ino(path.join(cgroup2, v2Path));
  if (v2 === undefined) return undefined;
  let v1 = 0n;
  // the kernel looks at the memory v1 cgroup only for a task in the v2 root (task_cgroup_ids)
  if (v2 === ino(cgroup2) && memoryV1 !== undefined && memPath !== undefined && memPath.startsWith('/') && !memPath.includes('/../')) {
    v1 = ino(path.join(memoryV1, memPath)) ?? 0n;
  }
  return { v2, v1 };
}

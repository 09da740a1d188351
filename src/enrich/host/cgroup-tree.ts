import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

/**
 * CgroupTree maps kernel cgroup ids to paths for one cgroup hierarchy. For cgroup2 the id
 * `bpf_get_current_cgroup_id()` returns is the inode number of the cgroup's directory
 * (kernfs node id), so a walk of the mount that stats every directory builds the map
 * (docs: /work/shared/reference/ebpf-on-this-machine.md section 6). The same holds for a v1
 * hierarchy and `bpf_task_get_cgroup1()`, but ids of different hierarchies may collide, so
 * each hierarchy gets its own tree.
 */
export class CgroupTree {
  readonly mount: string;
  readonly #maxNodes: number;
  #byId = new Map<bigint, string>();
  #byPath = new Map<string, bigint>();
  #walk: Promise<void> | null = null;
  #next: Promise<void> | null = null;
  #walks = 0;

  /** `mount` is the hierarchy's mount point, e.g. /sys/fs/cgroup/unified. */
  constructor(mount: string, maxNodes = 200_000) {
    this.mount = mount;
    this.#maxNodes = maxNodes;
  }

  /** pathOf returns the cgroup path (`/` for the root) of a known id, from the last walk. */
  pathOf(id: bigint): string | undefined {
    return this.#byId.get(id);
  }

  /** idOf returns the id of a cgroup path from the last walk. */
  idOf(cgroupPath: string): bigint | undefined {
    return this.#byPath.get(cgroupPath);
  }

  /** entries lists [id, path] pairs of the last walk. */
  entries(): Array<[bigint, string]> {
    return [...this.#byId.entries()];
  }

  /** walks counts completed walks (for tests and the refresh-on-miss rate limit). */
  get walks(): number {
    return this.#walks;
  }

  /**
   * refresh re-walks the hierarchy. Concurrent callers share one walk. Directories that vanish
   * during the walk are skipped; an unreadable mount rejects.
   */
  refresh(): Promise<void> {
    if (this.#walk === null) {
      this.#walk = this.#doWalk().finally(() => {
        this.#walk = null;
      });
    }
    return this.#walk;
  }

  /**
   * refreshAfterNow resolves after a walk that started after this call, so a cgroup created
   * just before a miss is seen. Callers arriving during a walk share one follow-up walk.
   */
  refreshAfterNow(): Promise<void> {
    if (this.#walk === null) return this.refresh();
    if (this.#next === null) {
      this.#next = this.#walk
        .catch(() => undefined)
        .then(() => {
          this.#next = null;
          return this.refresh();
        });
    }
    return this.#next;
  }

  async #doWalk(): Promise<void> {
    const byId = new Map<bigint, string>();
    const byPath = new Map<string, bigint>();
    const rootStat = await fsp.stat(this.mount, { bigint: true });
    byId.set(rootStat.ino, '/');
    byPath.set('/', rootStat.ino);
    const queue: string[] = ['/'];
    while (queue.length > 0 && byId.size < this.#maxNodes) {
      const rel = queue.shift()!;
      let dirents;
      try {
        dirents = await fsp.readdir(path.join(this.mount, rel), { withFileTypes: true });
      } catch {
        continue; // removed while walking
      }
      for (const d of dirents) {
        if (!d.isDirectory()) continue;
        const childRel = rel === '/' ? `/${d.name}` : `${rel}/${d.name}`;
        try {
          const st = await fsp.stat(path.join(this.mount, childRel), { bigint: true });
          byId.set(st.ino, childRel);
          byPath.set(childRel, st.ino);
          queue.push(childRel);
        } catch {
          // removed while walking
        }
      }
    }
    this.#byId = byId;
    this.#byPath = byPath;
    this.#walks++;
  }
}

import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
 * /sys/fs/cgroup/unified on a hybrid one (systemd's layout). The one detection every stage
 * uses (enrichment, `--cgroup`, the socket-owner seeding).
 */

/** cgroup2MountOf returns the first cgroup2 mount point listed in a mountinfo text, if any. */
export function cgroup2MountOf(mountinfo: string): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    const mountPoint = line.split(' ')[4];
    if (fstype === 'cgroup2' && mountPoint !== undefined && mountPoint.startsWith('/')) return mountPoint;
  }
  return undefined;
}

const cache = new Map<string, string>();

/**
 * cgroup2Mount returns the cgroup2 mount under `fsRoot` from `fsRoot`/proc/self/mountinfo; without
 * one, the first of /sys/fs/cgroup/unified and /sys/fs/cgroup that has a cgroup.procs, else
 * /sys/fs/cgroup. Mounts do not move while rtev runs: the host's answer (fsRoot /) is kept.
 */
export function cgroup2Mount(fsRoot = '/'): string {
  const known = cache.get(fsRoot);
  if (known !== undefined) return known;
  let found: string | undefined;
  try {
    const text = fs.readFileSync(path.join(fsRoot, 'proc/self/mountinfo'), 'utf8');
    const m = cgroup2MountOf(text.length > 1 << 20 ? text.slice(0, 1 << 20) : text);
    if (m !== undefined) found = path.join(fsRoot, m);
  } catch {
    // fall through to the conventional locations
  }
  if (found === undefined) {
    found = path.join(fsRoot, 'sys/fs/cgroup');
    for (const candidate of ['sys/fs/cgroup/unified', 'sys/fs/cgroup']) {
      if (fs.existsSync(path.join(fsRoot, candidate, 'cgroup.procs'))) {
        found = path.join(fsRoot, candidate);
        break;
      }
    }
  }
  if (fsRoot === '/') cache.set(fsRoot, found);
  return found;
}

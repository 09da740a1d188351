import type { ContainerRuntime } from './types';

/**
 * Pure parsers from a cgroup path (as in /proc/<pid>/cgroup or relative to a cgroup mount)
 * to a container id and runtime. Layouts are documented in docs/containers.md; every
 * example string in test/unit/enrich-cgroup-path.test.ts was seen on a real host or taken
 * from the runtime's source.
 */

/** CgroupClass is what a cgroup path says about the processes in it. */
export type CgroupClass =
  /** no container runtime owns this cgroup (or a runtime helper such as conmon does) */
  | { kind: 'host'; note?: string }
  /** the naming alone identifies the runtime */
  | { kind: 'container'; id: string; runtime: ContainerRuntime; layout: string }
  /**
   * a 64-hex id whose runtime the path does not name (Kubernetes cgroupfs driver, plain
   * containerd `/<namespace>/<id>`); the runtime must confirm the id before it is reported
   */
  | { kind: 'ambiguous'; id: string; candidates: ContainerRuntime[]; layout: string; namespace?: string }
  /** looks container-like (a 64-hex component) but matches no known layout, or is malformed */
  | { kind: 'unknown'; reason: 'malformed' | 'unrecognized'; path: string };

const HEX64 = '[a-f0-9]{64}';

/** Component rules, tried on each path component from the deepest one up. */
const SCOPE_RULES: ReadonlyArray<{ re: RegExp; runtime: ContainerRuntime | null; layout: string }> = [
  // runtime helpers (conmon) sit in their own scope next to the container: never a container
  { re: new RegExp(`^libpod-conmon-(${HEX64})(?:\\.scope)?$`), runtime: null, layout: 'podman-conmon' },
  { re: new RegExp(`^crio-conmon-(${HEX64})(?:\\.scope)?$`), runtime: null, layout: 'crio-conmon' },
  // systemd cgroup driver: <prefix>-<id>.scope
  { re: new RegExp(`^docker-(${HEX64})\\.scope$`), runtime: 'docker', layout: 'docker-systemd' },
  { re: new RegExp(`^cri-containerd-(${HEX64})\\.scope$`), runtime: 'containerd', layout: 'containerd-systemd' },
  { re: new RegExp(`^crio-(${HEX64})\\.scope$`), runtime: 'cri-o', layout: 'crio-systemd' },
  { re: new RegExp(`^libpod-(${HEX64})\\.scope$`), runtime: 'podman', layout: 'podman-systemd' },
  // cgroupfs driver with a runtime prefix
  { re: new RegExp(`^libpod-(${HEX64})$`), runtime: 'podman', layout: 'podman-cgroupfs' },
  { re: new RegExp(`^crio-(${HEX64})$`), runtime: 'cri-o', layout: 'crio-cgroupfs' },
];

const BARE_ID_RE = new RegExp(`^${HEX64}$`);
const ANY_HEX64_RE = new RegExp(HEX64);

/**
 * classifyCgroupPath maps one cgroup path to its owner. The deepest component naming a
 * container wins, so sub-cgroups a container makes for itself (`.../libpod-<id>.scope/container`,
 * systemd inside a container) and nested containers (docker-in-docker) resolve to the
 * innermost container.
 */
export function classifyCgroupPath(rawPath: string): CgroupClass {
  const path = stripDeleted(rawPath);
  if (!path.startsWith('/') || path.includes('\0') || path.split('/').some((c) => c === '..' || c === '.')) {
    return { kind: 'unknown', reason: 'malformed', path: rawPath };
  }
  const parts = path.split('/').filter((c) => c.length > 0);
  for (let i = parts.length - 1; i >= 0; i--) {
    const found = classifyComponent(parts, i);
    if (found !== null) return found;
  }
  if (ANY_HEX64_RE.test(path)) return { kind: 'unknown', reason: 'unrecognized', path: rawPath };
  return { kind: 'host' };
}

function classifyComponent(parts: string[], i: number): CgroupClass | null {
  const name = parts[i]!;
  for (const rule of SCOPE_RULES) {
    const m = rule.re.exec(name);
    if (m === null) continue;
    if (rule.runtime === null) return { kind: 'host', note: rule.layout };
    return { kind: 'container', id: m[1]!, runtime: rule.runtime, layout: rule.layout };
  }
  if (!BARE_ID_RE.test(name)) return null;
  const parent = i > 0 ? parts[i - 1]! : '';
  // Docker cgroupfs driver: /docker/<id> (also nested: /docker/<outer>/docker/<inner>)
  if (parent === 'docker') return { kind: 'container', id: name, runtime: 'docker', layout: 'docker-cgroupfs' };
  // Kubernetes cgroupfs driver: /kubepods[/<qos>]/pod<uid>/<id>; the runtime is not in the path
  if (parts.slice(0, i).some((p) => p === 'kubepods' || p.startsWith('kubepods'))) {
    return { kind: 'ambiguous', id: name, candidates: ['containerd', 'cri-o', 'docker'], layout: 'kubepods-cgroupfs' };
  }
  // plain containerd (ctr, nerdctl with cgroupfs): /<namespace>/<id>
  if (i === 1 && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(parent)) {
    return { kind: 'ambiguous', id: name, candidates: ['containerd'], layout: 'containerd-namespace', namespace: parent };
  }
  return null;
}

/** stripDeleted removes the " (deleted)" suffix the kernel shows for a removed cgroup. */
function stripDeleted(path: string): string {
  return path.endsWith(' (deleted)') ? path.slice(0, -' (deleted)'.length) : path;
}

/** ProcCgroup is /proc/<pid>/cgroup split by hierarchy. */
export interface ProcCgroup {
  /** the cgroup2 path (the `0::` line), if any */
  v2?: string;
  /** v1 controller name (memory, cpu, name=systemd, ...) to path */
  v1: Map<string, string>;
}

/** parseProcCgroup parses the text of /proc/<pid>/cgroup; malformed lines are skipped. */
export function parseProcCgroup(text: string): ProcCgroup {
  const out: ProcCgroup = { v1: new Map() };
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const hid = line.slice(0, first);
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (!/^\d+$/.test(hid) || !path.startsWith('/')) continue;
    if (hid === '0' && controllers === '') out.v2 = path;
    else for (const c of controllers.split(',')) if (c.length > 0) out.v1.set(c, path);
  }
  return out;
}

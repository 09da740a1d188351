import { RtevError } from '../errors';
import type { CgroupClass } from './cgroup-path';
import type { ContainerRuntime } from './types';

/**
 * Pure container selection for the kernel-side cgroup filter (`rtev collect --container`,
 * `--image`, `--containers-only`, `--host-only`). Semantics are in docs/containers.md,
 * "Selecting containers".
 */

/** ContainerSelector is what the collect flags ask for. */
export interface ContainerSelector {
  /** full 64-hex id, `<runtime>://<id>`, unique id prefix (4+ hex) or container name */
  containers?: string[];
  /** image digests (`sha256:<64 hex>`), compared with the digest rtev reports */
  images?: string[];
  containersOnly?: boolean;
  hostOnly?: boolean;
}

/**
 * CgroupSelection is what the collector pushes into the BPF filter map. `allow`: only events
 * from the listed cgroups are kept. `deny`: events from the listed cgroups are dropped
 * (an empty deny list = no filtering).
 */
export interface CgroupSelection {
  cgroupIds: bigint[];
  mode: 'allow' | 'deny';
  /** selector entries that matched no running container (yet) */
  unmatched: string[];
}

/** SelectionInput is one cgroup of the current tree with what is known about its owner. */
export interface SelectionInput {
  cgroupId: bigint;
  cls: CgroupClass;
  /** the confirmed container of this cgroup, if any */
  container?: { runtime: ContainerRuntime; id: string; names: string[]; digest?: string };
}

/** SelectError is a selector that cannot be applied safely. */
export class SelectError extends RtevError<'SELECT_CONFLICT' | 'SELECT_AMBIGUOUS' | 'SELECT_INVALID'> {}

/** isEmptySelector tells whether a selector filters nothing. */
export function isEmptySelector(s: ContainerSelector): boolean {
  return !s.hostOnly && !s.containersOnly && (s.containers ?? []).length === 0 && (s.images ?? []).length === 0;
}

/** validateSelector rejects contradictory or malformed selectors before collection starts. */
export function validateSelector(s: ContainerSelector): void {
  const narrowing = s.containersOnly || (s.containers ?? []).length > 0 || (s.images ?? []).length > 0;
  if (s.hostOnly && narrowing) {
    throw new SelectError('SELECT_CONFLICT', '--host-only cannot be combined with --container, --image or --containers-only');
  }
  for (const img of s.images ?? []) {
    if (!/^sha256:[a-f0-9]{64}$/.test(img)) {
      throw new SelectError('SELECT_INVALID', `--image ${img}: expected sha256:<64 hex>`, { hint: "use the digest shown by 'podman image inspect --format {{.Digest}}'" });
    }
  }
  for (const c of s.containers ?? []) {
    if (c.length === 0) throw new SelectError('SELECT_INVALID', '--container needs an id or a name');
  }
}

/**
 * computeSelection applies a selector to the cgroups of the tree. Host cgroups are the ones
 * classified `host`; container cgroups include every sub-cgroup of a container. Within a flag
 * entries are alternatives (union); `--container` and `--image` together must both match.
 */
export function computeSelection(inputs: SelectionInput[], s: ContainerSelector): CgroupSelection {
  validateSelector(s);
  if (isEmptySelector(s)) return { cgroupIds: [], mode: 'deny', unmatched: [] };
  if (s.hostOnly) {
    const ids = inputs.filter((i) => i.cls.kind !== 'host').map((i) => i.cgroupId);
    return { cgroupIds: sortIds(ids), mode: 'deny', unmatched: [] };
  }
  const containers = inputs.filter((i) => i.container !== undefined);
  const wantedIds = s.containers ?? [];
  const wantedImages = new Set(s.images ?? []);
  const matchedBy = new Map<string, Set<string>>(); // selector entry -> container ids
  const selected: bigint[] = [];
  for (const input of containers) {
    const c = input.container!;
    let ok = true;
    if (wantedIds.length > 0) {
      const hits = wantedIds.filter((w) => matchesContainer(w, c));
      for (const w of hits) (matchedBy.get(w) ?? matchedBy.set(w, new Set()).get(w)!).add(c.id);
      ok = hits.length > 0;
    }
    if (ok && wantedImages.size > 0) {
      ok = c.digest !== undefined && wantedImages.has(c.digest);
      if (ok) (matchedBy.get(c.digest!) ?? matchedBy.set(c.digest!, new Set()).get(c.digest!)!).add(c.id);
    }
    if (ok) selected.push(input.cgroupId);
  }
  for (const [w, ids] of matchedBy) {
    if (ids.size > 1 && !isDigestLike(w) && !c64(w)) {
      throw new SelectError('SELECT_AMBIGUOUS', `--container ${w} matches ${ids.size} containers`, { hint: 'give more of the id' });
    }
  }
  const unmatched = [...wantedIds, ...wantedImages].filter((w) => !matchedBy.has(w));
  return { cgroupIds: sortIds(selected), mode: 'allow', unmatched };
}

function matchesContainer(w: string, c: { runtime: ContainerRuntime; id: string; names: string[] }): boolean {
  if (w === `${c.runtime}://${c.id}` || w === c.id) return true;
  if (/^[a-f0-9]{4,63}$/.test(w) && c.id.startsWith(w)) return true;
  return c.names.includes(w);
}

function isDigestLike(w: string): boolean {
  return w.startsWith('sha256:');
}

function c64(w: string): boolean {
  return /^[a-f0-9]{64}$/.test(w) || w.includes('://');
}

function sortIds(ids: bigint[]): bigint[] {
  return [...new Set(ids)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

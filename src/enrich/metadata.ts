import { isContainerHexId, isDigest, type DigestResult } from './types';

/**
 * Pure parsers from runtime metadata (JSON already read from disk or a socket) to the image
 * digest rtev reports. The rule (docs/containers.md, "Which digest"):
 *   1. the manifest digest the runtime itself reports for the image (podman/CRI-O
 *      `.Digest`, Docker `RepoDigests`, containerd image target): the digest a registry knows;
 *   2. when the runtime has none (an image built or loaded locally and never pulled or
 *      pushed), the image id `sha256:<config digest>`, marked `basis: 'image_id'`;
 *   3. when several different manifest digests are equally plausible, the image id (never a
 *      pick between candidates).
 */

/** StorageContainer is one entry of containers-storage `overlay-containers/containers.json`. */
export interface StorageContainer {
  id: string;
  names: string[];
  imageId: string;
}

/**
 * parseStorageContainers parses containers-storage's containers.json (podman and CRI-O) into
 * a map by container id. Entries without a 64-hex id are skipped; throws on non-array input.
 */
export function parseStorageContainers(json: unknown): Map<string, StorageContainer> {
  if (!Array.isArray(json)) throw new TypeError('containers.json is not an array');
  const out = new Map<string, StorageContainer>();
  for (const e of json as unknown[]) {
    if (!isObject(e) || !isContainerHexId(e.id)) continue;
    const names = Array.isArray(e.names) ? e.names.filter((n): n is string => typeof n === 'string') : [];
    const imageId = typeof e.image === 'string' ? e.image : '';
    out.set(e.id, { id: e.id, names, imageId });
  }
  return out;
}

/** StorageImage is one entry of containers-storage `overlay-images/images.json`. */
export interface StorageImage {
  id: string;
  digest?: string;
  digests: string[];
  names: string[];
}

/** parseStorageImages parses containers-storage's images.json into a map by image id. */
export function parseStorageImages(json: unknown): Map<string, StorageImage> {
  if (!Array.isArray(json)) throw new TypeError('images.json is not an array');
  const out = new Map<string, StorageImage>();
  for (const e of json as unknown[]) {
    if (!isObject(e) || !isContainerHexId(e.id)) continue;
    const digests = Array.isArray(e.digests) ? e.digests.filter(isDigest) : [];
    const names = Array.isArray(e.names) ? e.names.filter((n): n is string => typeof n === 'string') : [];
    out.set(e.id, { id: e.id, ...(isDigest(e.digest) ? { digest: e.digest } : {}), digests, names });
  }
  return out;
}

/**
 * storageImageDigest applies the digest rule to a containers-storage image: `digest` is what
 * `podman image inspect --format '{{.Digest}}'` prints (libpod reads the same field).
 */
export function storageImageDigest(image: StorageImage | undefined): DigestResult {
  if (image === undefined) return { ok: false, reason: 'image_not_found' };
  if (image.digest !== undefined) return { ok: true, digest: image.digest, basis: 'manifest' };
  const distinct = [...new Set(image.digests)];
  if (distinct.length === 1) return { ok: true, digest: distinct[0]!, basis: 'manifest' };
  return { ok: true, digest: `sha256:${image.id}`, basis: 'image_id' };
}

/** DockerContainerMeta is what rtev needs from config.v2.json or `GET /containers/<id>/json`. */
export interface DockerContainerMeta {
  id: string;
  name: string;
  /** the image id, `sha256:<64 hex>` */
  imageId: string;
  /** the image reference the container was created from (`busybox`, `repo@sha256:...`) */
  imageRef: string;
}

/**
 * parseDockerContainer parses Docker's /var/lib/docker/containers/<id>/config.v2.json or
 * the Engine API's container inspect body (both carry `ID`/`Id`, `Name`, `Image`, `Config.Image`).
 */
export function parseDockerContainer(json: unknown): DockerContainerMeta {
  if (!isObject(json)) throw new TypeError('container metadata is not an object');
  const id = typeof json.ID === 'string' ? json.ID : json.Id;
  if (!isContainerHexId(id)) throw new TypeError('container metadata has no 64-hex ID');
  if (!isDigest(json.Image)) throw new TypeError('container metadata has no sha256 Image');
  const config = isObject(json.Config) ? json.Config : {};
  const name = typeof json.Name === 'string' ? json.Name.replace(/^\//, '') : '';
  return { id, name, imageId: json.Image, imageRef: typeof config.Image === 'string' ? config.Image : '' };
}

/**
 * dockerRepoDigestsFromRepositories reads Docker's image/<driver>/repositories.json
 * (`{"Repositories": {"busybox": {"busybox@sha256:...": "sha256:<image id>"}}}`) and returns
 * the `repo@sha256:...` references that point at `imageId`.
 */
export function dockerRepoDigestsFromRepositories(json: unknown, imageId: string): string[] {
  if (!isObject(json) || !isObject(json.Repositories)) throw new TypeError('repositories.json has no Repositories');
  const out: string[] = [];
  for (const refs of Object.values(json.Repositories)) {
    if (!isObject(refs)) continue;
    for (const [ref, id] of Object.entries(refs)) if (id === imageId && ref.includes('@sha256:')) out.push(ref);
  }
  return out.sort();
}

/** parseDockerImageRepoDigests reads `RepoDigests` from the Engine API's image inspect body. */
export function parseDockerImageRepoDigests(json: unknown): string[] {
  if (!isObject(json)) throw new TypeError('image metadata is not an object');
  const rd = json.RepoDigests;
  return Array.isArray(rd) ? rd.filter((r): r is string => typeof r === 'string').sort() : [];
}

/**
 * dockerImageDigest applies the digest rule to a Docker container: the repo digest of the
 * repository the container was created from; otherwise the one digest all repo digests agree
 * on; otherwise the image id.
 */
export function dockerImageDigest(meta: DockerContainerMeta, repoDigests: string[]): DigestResult {
  const pinned = /@(sha256:[a-f0-9]{64})$/.exec(meta.imageRef);
  if (pinned !== null && repoDigests.some((r) => r.endsWith('@' + pinned[1]))) {
    return { ok: true, digest: pinned[1]!, basis: 'manifest' };
  }
  const parsed = repoDigests.map(splitRepoDigest).filter((r): r is { repo: string; digest: string } => r !== null);
  const wanted = normalizeRepo(meta.imageRef);
  const sameRepo = [...new Set(parsed.filter((r) => normalizeRepo(r.repo) === wanted).map((r) => r.digest))];
  if (sameRepo.length === 1) return { ok: true, digest: sameRepo[0]!, basis: 'manifest' };
  const all = [...new Set(parsed.map((r) => r.digest))];
  if (all.length === 1) return { ok: true, digest: all[0]!, basis: 'manifest' };
  return { ok: true, digest: meta.imageId, basis: 'image_id' };
}

function splitRepoDigest(ref: string): { repo: string; digest: string } | null {
  const at = ref.lastIndexOf('@');
  if (at <= 0) return null;
  const digest = ref.slice(at + 1);
  return isDigest(digest) ? { repo: ref.slice(0, at), digest } : null;
}

/**
 * normalizeRepo strips tag/digest and the implicit Docker Hub prefixes so that `busybox`,
 * `busybox:1.36` and `docker.io/library/busybox@sha256:...` compare equal.
 */
export function normalizeRepo(ref: string): string {
  let r = ref;
  const at = r.indexOf('@');
  if (at >= 0) r = r.slice(0, at);
  const slash = r.lastIndexOf('/');
  const colon = r.lastIndexOf(':');
  if (colon > slash) r = r.slice(0, colon);
  if (r.startsWith('docker.io/')) r = r.slice('docker.io/'.length);
  if (r.startsWith('index.docker.io/')) r = r.slice('index.docker.io/'.length);
  if (r.startsWith('library/')) r = r.slice('library/'.length);
  return r;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

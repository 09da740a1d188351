/**
 * Shared types of container attribution (issue 5). Everything here is plain data so the
 * pure parsers and the host-I/O sources can be tested apart.
 */

/** ContainerRuntime is the runtime prefix the record schema allows in `container_id`. */
export type ContainerRuntime = 'docker' | 'containerd' | 'cri-o' | 'podman';

export const CONTAINER_RUNTIMES: readonly ContainerRuntime[] = ['docker', 'containerd', 'cri-o', 'podman'];

/** EnrichInfo is what a record gets: both fields, only `containerId`, or nothing (host). */
export interface EnrichInfo {
  containerId?: string;
  imageDigest?: string;
}

/**
 * EnrichReason names why a cgroup, or its image digest, could not be resolved. The values
 * are counter keys (`counters().errors[reason]`) and are documented in docs/containers.md.
 */
export type EnrichReason =
  | 'cgroup_not_found'
  | 'unknown_layout'
  | 'runtime_unconfirmed'
  | 'container_not_found'
  | 'image_not_found'
  | 'metadata_unreadable'
  | 'metadata_malformed'
  | 'no_digest'
  | 'source_unavailable'
  | 'socket_timeout'
  | 'socket_error'
  | 'response_too_large'
  | 'queue_full';

/** ImageRef is what a runtime tells of a container's image besides its digest. */
export interface ImageRef {
  /** image (config) id `sha256:<64 hex>`, when the runtime shows it */
  id?: string;
  /** references the image is known by (`docker.io/library/alpine:3.20`), sorted */
  names: string[];
}

/** ContainerFacts is everything the enricher learned of one container (kept in the evidence). */
export interface ContainerFacts {
  runtime: ContainerRuntime;
  id: string;
  names: string[];
  digest?: string;
  basis?: 'manifest' | 'image_id';
  image?: ImageRef;
  reason?: EnrichReason;
}

/** DigestResult is the outcome of asking one runtime source for a container's image. */
export type DigestResult =
  | { ok: true; digest: string; basis: 'manifest' | 'image_id'; names?: string[]; image?: ImageRef }
  | { ok: false; reason: EnrichReason; detail?: string };

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
const HEX64_RE = /^[a-f0-9]{64}$/;

/** isDigest tells whether `s` is a digest the record schema accepts (`sha256:<64 hex>`). */
export function isDigest(s: unknown): s is string {
  return typeof s === 'string' && SHA256_RE.test(s);
}

/** isContainerHexId tells whether `s` is a full 64-hex container id. */
export function isContainerHexId(s: unknown): s is string {
  return typeof s === 'string' && HEX64_RE.test(s);
}

/** containerIdUri renders the schema's `container_id` (`<runtime>://<64 hex>`). */
export function containerIdUri(runtime: ContainerRuntime, id: string): string {
  return `${runtime}://${id}`;
}

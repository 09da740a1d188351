/**
 * Container attribution (issue 5): cgroup id → container id and image digest.
 * Layouts, digest rule, socket configuration and limits: docs/containers.md.
 */
export { Enricher, toRecordFields } from './enricher';
export type { EnricherOptions, EnrichCounters, Hierarchy, RecordLike } from './enricher';
export { classifyCgroupPath, parseProcCgroup } from './cgroup-path';
export type { CgroupClass, ProcCgroup } from './cgroup-path';
export { computeSelection, validateSelector, isEmptySelector, SelectError } from './select';
export type { CgroupSelection, ContainerSelector, SelectionInput } from './select';
export { isDigest, isContainerHexId, containerIdUri, CONTAINER_RUNTIMES } from './types';
export type { ContainerFacts, ContainerRuntime, EnrichInfo, EnrichReason, DigestResult, ImageRef } from './types';
export type { ContainerSource } from './host/source';

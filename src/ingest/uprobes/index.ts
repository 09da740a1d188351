export { UprobeManager, DEFAULT_UPROBE_LIMITS, type UprobeLimits, type UprobeStats } from './manager';
export { LIBC_TARGETS, SSL_TARGETS, candidatesOf, resolveTargets, classify } from './libraries';

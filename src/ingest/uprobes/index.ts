export { UprobeManager, DEFAULT_UPROBE_LIMITS, type TlsCoverageTotals, type TlsUncovered, type UprobeLimits, type UprobeStats } from './manager';
export { LIBC_TARGETS, SSL_TARGETS, GNUTLS_TARGETS, targetsFound, candidatesOf, resolveTargets, classify } from './libraries';

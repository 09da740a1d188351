/**
 * The drop ledger: what each probe saw, filtered, lost and wrote. The identity
 * `submitted = written + userspaceDropped` (per probe) plus the kernel-side counters
 * is what lets a reader tell "not observed" from "not recorded".
 */

/** Kernel-side counters of one probe, read from the BPF per-CPU `stats` map. */
export interface KernelProbeCounters {
  /** records accepted by the ring buffer */
  submitted: bigint;
  /** events dropped by the kernel-side pid/subtree/cgroup filters */
  filtered: bigint;
  /** records lost because the ring buffer was full */
  ringFull: bigint;
  /** events deliberately not recorded (failed opens, unattributable tcp changes, ...) */
  skipped: bigint;
  /** records whose strings were cut at the capture limit (still recorded) */
  truncated: bigint;
}

/** User-space counters of one probe. */
export interface UserProbeCounters {
  /** records taken from the ring */
  received: bigint;
  /** records written to the output */
  written: bigint;
  /** records removed by user-space filters (path globs) */
  filtered: bigint;
  /** records that could not be decoded or failed validation */
  rejected: bigint;
  /** records shed under back-pressure */
  shed: bigint;
}

export interface ProbeLedger {
  kernel: KernelProbeCounters;
  user: UserProbeCounters;
}

/** Ledger maps a probe name (file_open, process_exec, ...) to its counters. */
export type Ledger = Record<string, ProbeLedger>;

export function emptyKernelCounters(): KernelProbeCounters {
  return { submitted: 0n, filtered: 0n, ringFull: 0n, skipped: 0n, truncated: 0n };
}

export function emptyUserCounters(): UserProbeCounters {
  return { received: 0n, written: 0n, filtered: 0n, rejected: 0n, shed: 0n };
}

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
  /**
   * records not written because `--file-open-mode first-seen` already wrote one with the same
   * (cgroup, pid, path, access) in this chunk window: observed and accounted for, not lost
   */
  deduplicated: bigint;
}

/**
 * A class of a probe's events that this run does not observe at all (e.g. io_uring opens on a
 * kernel without the io_uring tracepoints): no counter can count what is never seen, so the
 * ledger says so instead (docs/format.md, `not_observed`).
 */
export interface NotObservedClass {
  /** e.g. `io_uring` */
  class: string;
  /** the record `src` values the class would give, e.g. `io_uring:openat` */
  sources: string[];
  /** why: the missing tracepoint, or the attach error */
  reason: string;
}

export interface ProbeLedger {
  kernel: KernelProbeCounters;
  user: UserProbeCounters;
  /** absent: every class of the probe is observed */
  notObserved?: NotObservedClass[];
}

/** Ledger maps a probe name (file_open, process_exec, ...) to its counters. */
export type Ledger = Record<string, ProbeLedger>;

export function emptyKernelCounters(): KernelProbeCounters {
  return { submitted: 0n, filtered: 0n, ringFull: 0n, skipped: 0n, truncated: 0n };
}

export function emptyUserCounters(): UserProbeCounters {
  return { received: 0n, written: 0n, filtered: 0n, rejected: 0n, shed: 0n, deduplicated: 0n };
}

/*
 * The ledger's arithmetic, in one place. Every reader and writer of a ledger (the chunk
 * predicate, `rtev verify`, the status line, the end summary) computes loss and in-flight
 * counts with these functions, so the definitions in docs/format.md have one implementation.
 */

/** What a probe lost: the kernel ring was full, or user space rejected or shed the record. */
export interface LossCounts {
  ringFull: bigint;
  rejected: bigint;
  shed: bigint;
}

/** What user space did with a probe's records: wrote them to the output, filtered, deduplicated, rejected or shed them. */
export interface DisposalCounts {
  written: bigint;
  filtered: bigint;
  rejected: bigint;
  shed: bigint;
  deduplicated: bigint;
}

/** lost = ring_full + rejected + shed. */
export function lostOf(c: LossCounts): bigint {
  return c.ringFull + c.rejected + c.shed;
}

/** disposedOf = written + filtered + deduplicated + rejected + shed: the records user space is done with. */
export function disposedOf(c: DisposalCounts): bigint {
  return c.written + c.filtered + c.deduplicated + c.rejected + c.shed;
}

/** inFlightOf = submitted - disposed: accepted by the kernel ring, not yet disposed of. */
export function inFlightOf(submitted: bigint, c: DisposalCounts): bigint {
  return submitted - disposedOf(c);
}

/**
 * accountedOf is what a window of the ledger accounts for: the records disposed of in the
 * window plus the change of the in-flight count. The identity `submitted = accountedOf(...)`
 * holds for every probe in every window.
 */
export function accountedOf(c: DisposalCounts, inFlightStart: bigint, inFlightEnd: bigint): bigint {
  return disposedOf(c) + inFlightEnd - inFlightStart;
}

/** probeLost is lostOf for a cumulative probe ledger. */
export function probeLost(l: ProbeLedger): bigint {
  return lostOf({ ringFull: l.kernel.ringFull, rejected: l.user.rejected, shed: l.user.shed });
}

/** ledgerLost sums probeLost over every probe. */
export function ledgerLost(ledger: Ledger): bigint {
  let lost = 0n;
  for (const l of Object.values(ledger)) lost += probeLost(l);
  return lost;
}

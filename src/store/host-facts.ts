import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';

/**
 * Everything the chunk writer learns from the host, the clocks and randomness, behind one
 * injectable interface so that replaying the same records with the same facts gives
 * byte-identical chunks and envelopes (test/unit/chunk-writer.test.ts, "determinism").
 */

/** HostFacts identifies the machine and boot a chunk was recorded on. */
export interface HostFacts {
  hostname: string;
  /** /etc/machine-id, or "" when the host has none */
  machine_id: string;
  /** /proc/sys/kernel/random/boot_id: ts_ns values are only comparable within one boot */
  boot_id: string;
  /** uname -r */
  kernel_release: string;
  /** uname -m */
  arch: string;
}

/**
 * TimeAnchor pairs the wall clock with CLOCK_MONOTONIC (the clock of ts_ns), so that
 * wall_ns ~= ts_ns - mono_ns + wall_ns places a record in real time within uncertainty_ns.
 */
export interface TimeAnchor {
  /** Unix time in nanoseconds (the wall clock has millisecond resolution in Node) */
  wall_ns: bigint;
  /** CLOCK_MONOTONIC in nanoseconds, the same clock as bpf_ktime_get_ns() */
  mono_ns: bigint;
  /** width of the window in which both clocks were read, plus the wall clock's resolution */
  uncertainty_ns: bigint;
}

/** Environment is the chunk writer's only window on the world outside its arguments. */
export interface Environment {
  hostFacts(): HostFacts;
  timeAnchor(): TimeAnchor;
  /** milliseconds for rotation and retention by age */
  nowMs(): number;
  /** a fresh random identifier (run and chain ids) */
  newId(): string;
}

/** realEnvironment reads the live host. */
export function realEnvironment(): Environment {
  return {
    hostFacts: readHostFacts,
    timeAnchor: readTimeAnchor,
    nowMs: () => Date.now(),
    newId: () => crypto.randomUUID(),
  };
}

/** readHostFacts reads hostname, machine id, boot id and kernel release. */
export function readHostFacts(): HostFacts {
  return {
    hostname: os.hostname(),
    machine_id: readSmall('/etc/machine-id'),
    boot_id: readSmall('/proc/sys/kernel/random/boot_id'),
    kernel_release: os.release(),
    arch: os.machine(),
  };
}

/** readTimeAnchor samples CLOCK_MONOTONIC around one read of the wall clock. */
export function readTimeAnchor(): TimeAnchor {
  const before = process.hrtime.bigint();
  const wallMs = Date.now();
  const after = process.hrtime.bigint();
  return {
    wall_ns: BigInt(wallMs) * 1_000_000n,
    mono_ns: before + (after - before) / 2n,
    uncertainty_ns: after - before + 1_000_000n,
  };
}

function readSmall(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').slice(0, 256).trim();
  } catch {
    return '';
  }
}

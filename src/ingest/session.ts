import * as fs from 'node:fs';
import { RtevError, UsageError } from '../errors';
import { COUNTER_STRIDE, Counter, PROBE_NAMES, type ProbeName } from '../decode/layout';
import { emptyKernelCounters, type KernelProbeCounters } from '../model/ledger';
import { isNativeError, lastVerifierLines, loadBinding, type NativeBinding, type ObjectHandle, type RingHandle } from './native';
import { KERNEL_PROBES, SUPPORT_PROGRAMS, type UprobeMode } from './probes';

/** Settings written into the BPF object's `cfg` before load (struct rtev_config). */
export interface KernelConfig {
  selfTgid: number;
  filterPids: boolean;
  /** 'allow': only listed cgroups; 'deny': all but listed cgroups */
  cgroupFilter: 'off' | 'allow' | 'deny';
  recordFailedOpens: boolean;
  /** record SSL calls that moved no bytes (ssl_op) */
  recordEmptySslOps?: boolean;
  bulkRingBytes: number;
  rareRingBytes: number;
}

export const TRACE_SELF = 1;
export const TRACE_TREE = 2;

/** struct rtev_config of bpf/common.h (checked against the object's BTF in test/unit/layout.test.ts) */
export const RtevConfig = {
  self_tgid: 0, filter_pids: 4, filter_cgroups: 8, record_failed_opens: 12, record_empty_ssl_ops: 16,
  wakeup_bytes_bulk: 24, wakeup_bytes_rare: 32, SIZE: 40,
} as const;

export function encodeKernelConfig(c: KernelConfig): Buffer {
  const b = Buffer.alloc(RtevConfig.SIZE);
  b.writeUInt32LE(c.selfTgid, RtevConfig.self_tgid);
  b.writeUInt32LE(c.filterPids ? 1 : 0, RtevConfig.filter_pids);
  b.writeUInt32LE(c.cgroupFilter === 'allow' ? 1 : c.cgroupFilter === 'deny' ? 2 : 0, RtevConfig.filter_cgroups);
  b.writeUInt32LE(c.recordFailedOpens ? 1 : 0, RtevConfig.record_failed_opens);
  b.writeUInt32LE(c.recordEmptySslOps === true ? 1 : 0, RtevConfig.record_empty_ssl_ops);
  // wake the consumer at a quarter full (at most 256 KiB): docs/benchmarks.md, "wake-up policy"
  b.writeBigUInt64LE(BigInt(Math.min(256 << 10, c.bulkRingBytes / 4)), RtevConfig.wakeup_bytes_bulk);
  b.writeBigUInt64LE(BigInt(Math.min(64 << 10, c.rareRingBytes / 4)), RtevConfig.wakeup_bytes_rare);
  return b;
}

/**
 * chooseUprobeMode: sessions where the kernel has them, unless RTEV_UPROBE_MODE=classic asks
 * for the perf-event uprobes (for comparison, or to work around a kernel bug).
 */
export function chooseUprobeMode(native: NativeBinding, env: NodeJS.ProcessEnv = process.env): UprobeMode {
  const asked = env.RTEV_UPROBE_MODE;
  if (asked !== undefined && asked !== '' && asked !== 'session' && asked !== 'classic') {
    throw new UsageError(`RTEV_UPROBE_MODE must be session or classic, not ${JSON.stringify(asked)}`, 'unset it to let rtev choose');
  }
  const supported = native.uprobeSessionSupported();
  if (asked === 'session' && !supported) {
    throw new UsageError('RTEV_UPROBE_MODE=session: this kernel has no uprobe sessions (they need Linux 6.13)', 'unset RTEV_UPROBE_MODE');
  }
  return asked === 'classic' || !supported ? 'classic' : 'session';
}

export type BatchHandler = (ring: 'bulk' | 'rare', batch: Buffer, used: number) => void;

/**
 * BpfSession owns the loaded BPF object: attachments, filter maps, ring consumers and
 * the kernel-side counters. It is the edge between the kernel and the pure pipeline.
 */
export class BpfSession {
  readonly #native: NativeBinding;
  readonly #handle: ObjectHandle;
  readonly #links: number[] = [];
  readonly #rings: { handle: RingHandle; done: Promise<void> }[] = [];
  readonly warnings: string[] = [];
  readonly attachedProbes: ProbeName[] = [];
  readonly #cpus: number;
  /** how the libc and OpenSSL uprobe programs were loaded, and must be attached */
  readonly uprobeMode: UprobeMode;

  private constructor(native: NativeBinding, handle: ObjectHandle, uprobeMode: UprobeMode) {
    this.#native = native;
    this.#handle = handle;
    this.#cpus = native.numPossibleCpus();
    this.uprobeMode = uprobeMode;
  }

  /** open loads the object with the configuration; only the selected probes' programs are loaded. */
  static open(objectPath: string, config: KernelConfig, probes: ProbeName[], verbose = false): BpfSession {
    if (!fs.existsSync(objectPath)) {
      throw new RtevError('ADDON_LOAD', `BPF object ${objectPath} is missing`, { hint: "build it with 'make build'" });
    }
    const native = loadBinding();
    const uprobeMode = chooseUprobeMode(native);
    const handle = native.openObject(objectPath);
    const session = new BpfSession(native, handle, uprobeMode);
    native.setGlobal(handle, 'cfg', encodeKernelConfig(config));
    native.setMapMaxEntries(handle, 'events_bulk', config.bulkRingBytes);
    native.setMapMaxEntries(handle, 'events_rare', config.rareRingBytes);
    const wanted = new Set<string>(SUPPORT_PROGRAMS.map((p) => p.name));
    for (const spec of KERNEL_PROBES) {
      if (!probes.includes(spec.name)) continue;
      for (const program of spec.programs) {
        if (program.uprobeMode !== undefined && program.uprobeMode !== uprobeMode) continue;
        if (uprobeMode === 'session' && program.multiAttach !== undefined) native.setExpectedAttachType(handle, program.name, program.multiAttach);
        if (program.tracepoint === undefined || tracepointExists(program.tracepoint)) wanted.add(program.name);
        else if (!program.optional) session.warnings.push(`tracepoint ${program.tracepoint} is missing: probe ${spec.name} disabled`);
      }
    }
    for (const program of native.programs(handle)) native.setAutoload(handle, program.name, wanted.has(program.name));
    try {
      native.load(handle, verbose);
    } catch (err) {
      if (isNativeError(err)) {
        const why = lastVerifierLines(err.libbpfLog).join(' | ');
        throw new RtevError('BPF_LOAD', `the kernel refused the BPF programs (${why})`, {
          cause: err, hint: 'run with --verbose for the whole verifier log; rtev needs Linux >= 5.11 with BTF',
        });
      }
      throw err;
    }
    for (const spec of KERNEL_PROBES) {
      if (!probes.includes(spec.name)) continue;
      // uprobe programs are attached per library by src/ingest/uprobes (UprobeManager); iterators are run once
      if (session.#attachProbe(spec.programs.filter((p) => wanted.has(p.name) && p.uprobe !== true && p.iterator !== true)
        .map((p) => p.name), spec.name)) {
        session.attachedProbes.push(spec.name);
      }
    }
    for (const program of SUPPORT_PROGRAMS) session.#attachProbe([program.name], 'process tracking');
    return session;
  }

  #attachProbe(programs: string[], label: string): boolean {
    if (programs.length === 0) return false;
    const links: number[] = [];
    try {
      for (const program of programs) links.push(this.#native.attach(this.#handle, program));
    } catch (err) {
      for (const link of links) this.#native.detach(this.#handle, link);
      const reason = err instanceof Error ? err.message : String(err);
      this.warnings.push(`cannot attach ${label} (${reason}): probe disabled`);
      return false;
    }
    this.#links.push(...links);
    return true;
  }

  get native(): NativeBinding {
    return this.#native;
  }

  get handle(): ObjectHandle {
    return this.#handle;
  }

  /** traceProcess adds a tgid to the pid filter (TRACE_TREE follows its future children). */
  traceProcess(tgid: number, mode: number): void {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(tgid);
    this.#native.mapUpdate(this.#handle, 'traced_tgids', key, Buffer.from([mode]));
  }

  /** setCgroupFilter replaces the cgroup filter set. */
  setCgroupFilter(ids: Iterable<bigint>, previous: Iterable<bigint> = []): void {
    const key = Buffer.alloc(8);
    for (const id of previous) {
      key.writeBigUInt64LE(id);
      this.#native.mapDelete(this.#handle, 'cgroup_filter', key);
    }
    for (const id of ids) {
      key.writeBigUInt64LE(id);
      this.#native.mapUpdate(this.#handle, 'cgroup_filter', key, Buffer.from([1]));
    }
  }

  /** startRings starts one consumer thread per ring. */
  startRings(onBatch: BatchHandler): void {
    for (const [map, ring] of [['events_bulk', 'bulk'], ['events_rare', 'rare']] as const) {
      let finish: () => void = () => {};
      const done = new Promise<void>((resolve) => { finish = resolve; });
      // the slot goes back from setImmediate so that the event loop turns between batches
      // (timers, file I/O) even when the rings never run dry
      const handle: RingHandle = this.#native.startRing(this.#handle, map, (batch, used, slot) => {
        if (batch === null || used === null || slot === null) {
          finish();
          return;
        }
        try {
          onBatch(ring, batch, used);
        } finally {
          setImmediate(() => this.#native.releaseSlot(handle, slot));
        }
      });
      this.#rings.push({ handle, done });
    }
  }

  /** detachAll stops new events; what is already in the rings is still delivered. */
  detachAll(): void {
    for (const link of this.#links.splice(0)) this.#native.detach(this.#handle, link);
  }

  /** drain stops the consumers after they delivered everything left in the rings. */
  async drain(): Promise<void> {
    for (const ring of this.#rings) this.#native.stopRing(ring.handle);
    await Promise.all(this.#rings.map((r) => r.done));
    this.#rings.length = 0;
  }

  /** counters reads the per-CPU stats map and sums it over CPUs, per probe. */
  counters(): Record<ProbeName, KernelProbeCounters> {
    const result = {} as Record<ProbeName, KernelProbeCounters>;
    const key = Buffer.alloc(4);
    const read = (probe: number, counter: number): bigint => {
      key.writeUInt32LE(probe * COUNTER_STRIDE + counter);
      const values = this.#native.mapLookup(this.#handle, 'stats', key);
      let sum = 0n;
      if (values !== null) for (let cpu = 0; cpu < this.#cpus; cpu++) sum += values.readBigUInt64LE(cpu * 8);
      return sum;
    };
    PROBE_NAMES.forEach((name, i) => {
      const c = emptyKernelCounters();
      c.submitted = read(i, Counter.SUBMITTED);
      c.filtered = read(i, Counter.FILTERED);
      c.ringFull = read(i, Counter.RING_FULL);
      c.skipped = read(i, Counter.SKIPPED);
      c.truncated = read(i, Counter.TRUNCATED);
      result[name] = c;
    });
    return result;
  }
}

const TRACEFS = '/sys/kernel/tracing';

function tracepointExists(tracepoint: string): boolean {
  return fs.existsSync(`${TRACEFS}/events/${tracepoint}`);
}

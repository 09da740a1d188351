import { cgroupV1IdOf, decodeRecord, forEachFrame, newDecodeStats, type DecodeStats, type RawFunctionCall } from '../decode/decode';
import { PROBE_NAMES, type ProbeName } from '../decode/layout';
import { encodeRecord } from '../encode/record';
import { emptyUserCounters, type UserProbeCounters } from '../model/ledger';
import type { EvidenceRecord } from '../model/record';
import type { RecordSink } from '../store/sink';
import type { PathFilter } from './path-filter';

/** ContainerLookup is what the pipeline needs of enrichment (src/enrich/enricher.ts). */
export interface ContainerLookup {
  lookup(cgroupId: bigint, hierarchy?: 'v2' | 'v1'): { containerId?: string; imageDigest?: string } | 'pending';
  whenSettled(cgroupId: bigint, timeoutMs: number, hierarchy?: 'v2' | 'v1'): Promise<unknown>;
}

/** The v2 root: tasks there may still be in a container that only a v1 hierarchy shows. */
const CGROUP2_ROOT_ID = 1n;

/** A cgroup to attribute by: the v2 id, or for tasks in the v2 root their v1 memory cgroup. */
interface CgroupKey {
  id: bigint;
  hierarchy: 'v2' | 'v1';
  key: string;
}

/** FunctionCallBuilder turns a raw function_call into a record, or undefined to not record it. */
export type FunctionCallBuilder = (call: RawFunctionCall) => EvidenceRecord | undefined;

export interface PipelineOptions {
  sink: RecordSink;
  pathFilter: PathFilter;
  containers?: ContainerLookup;
  /** how long a record may wait for its container attribution */
  holdMs?: number;
  /** at most this many records wait at once; beyond, the oldest is written unattributed */
  maxHeld?: number;
  buildFunctionCall?: FunctionCallBuilder;
  /** called with every decoded record before filtering (e.g. process_exec feeds the uprobe manager) */
  onRecord?: (record: EvidenceRecord) => void;
  /** called once with the first error of a deferred write (a write after attribution finished) */
  onError?: (err: unknown) => void;
  /** --host-only: drop records attributed to a container (one started since the last filter refresh) */
  dropContainerRecords?: boolean;
}

interface Held {
  record: EvidenceRecord;
  probe: ProbeName;
}

/**
 * Pipeline: ring batches → decode → user-space filters → container attribution →
 * canonical line → sink. A record whose cgroup is still being attributed waits (at most
 * holdMs) in a queue of its cgroup, so the records of one cgroup keep their order while
 * records of already-known cgroups pass; at most maxHeld records wait in all.
 */
export class Pipeline {
  readonly user: Record<ProbeName, UserProbeCounters>;
  readonly decodeStats: DecodeStats = newDecodeStats();
  readonly rejectReasons: Record<string, number> = {};
  /** records written without container fields because attribution was still pending */
  unattributed = 0;
  readonly #o: Required<Omit<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords' | 'onError'>> &
    Pick<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords' | 'onError'>;
  /** waiting records per cgroup, in arrival order; Map iteration order gives the oldest cgroup first */
  readonly #held = new Map<string, Held[]>();
  /** the cgroup each waiting queue is for */
  readonly #cgroups = new Map<string, CgroupKey>();
  #heldCount = 0;
  #failure: unknown;
  #waiters: (() => void)[] = [];

  constructor(options: PipelineOptions) {
    // 2 s: resolving a new container (cgroup walk + runtime metadata) took up to ~1 s under load here
    this.#o = { holdMs: 2000, maxHeld: 65536, ...options };
    this.user = Object.fromEntries(PROBE_NAMES.map((p) => [p, emptyUserCounters()])) as Record<ProbeName, UserProbeCounters>;
  }

  handleBatch(batch: Buffer, used: number): void {
    if (this.#failure !== undefined) throw this.#failure;
    forEachFrame(batch, used, (rec) => this.handleRecord(rec));
  }

  handleRecord(rec: Buffer): void {
    const decoded = decodeRecord(rec, this.decodeStats);
    if (!decoded.ok) {
      if (decoded.probe !== undefined) {
        this.user[decoded.probe].received++;
        this.user[decoded.probe].rejected++;
      }
      this.rejectReasons[decoded.reason] = (this.rejectReasons[decoded.reason] ?? 0) + 1;
      return;
    }
    const counters = this.user[decoded.probe];
    counters.received++;
    let record: EvidenceRecord | undefined;
    if ('call' in decoded) {
      record = this.#o.buildFunctionCall?.(decoded.call);
      if (record === undefined) {
        counters.filtered++;
        return;
      }
    } else {
      record = decoded.record;
    }
    this.#o.onRecord?.(record);
    if (record.event.type === 'file_open' && this.#o.pathFilter.active && !this.#o.pathFilter.passes(record.event.path)) {
      counters.filtered++;
      return;
    }
    this.#attribute(record, decoded.probe, this.#o.containers === undefined ? 0n : cgroupV1IdOf(rec));
  }

  #attribute(record: EvidenceRecord, probe: ProbeName, cgroupV1: bigint): void {
    const containers = this.#o.containers;
    if (containers === undefined || record.cgroup_id === undefined) {
      this.#write(record, probe);
      return;
    }
    const cgroup: CgroupKey = record.cgroup_id === CGROUP2_ROOT_ID && cgroupV1 !== 0n
      ? { id: cgroupV1, hierarchy: 'v1', key: `v1:${cgroupV1}` }
      : { id: record.cgroup_id, hierarchy: 'v2', key: `v2:${record.cgroup_id}` };
    const queue = this.#held.get(cgroup.key);
    if (queue !== undefined) {
      queue.push({ record, probe });
    } else {
      const info = containers.lookup(cgroup.id, cgroup.hierarchy);
      if (info !== 'pending') {
        this.#write(withContainer(record, info), probe);
        return;
      }
      this.#held.set(cgroup.key, [{ record, probe }]);
      this.#waitFor(cgroup);
    }
    if (++this.#heldCount > this.#o.maxHeld) {
      // over the bound: the oldest waiting cgroup is written as it is now
      const oldest = this.#held.keys().next().value as string;
      this.#flush(oldest, this.#cgroups.get(oldest)!);
    }
  }

  #waitFor(cgroup: CgroupKey): void {
    this.#cgroups.set(cgroup.key, cgroup);
    void this.#o.containers!.whenSettled(cgroup.id, this.#o.holdMs, cgroup.hierarchy).finally(() => {
      try {
        this.#flush(cgroup.key, cgroup);
      } catch (err) {
        this.#fail(err);
      }
      if (this.#heldCount === 0) this.#notifyIdle();
    });
  }

  /** flush writes the records waiting for one cgroup, attributed if it is known by now. */
  #flush(key: string, cgroup: CgroupKey): void {
    const queue = this.#held.get(key);
    if (queue === undefined) return;
    this.#held.delete(key);
    this.#cgroups.delete(key);
    this.#heldCount -= queue.length;
    if (this.#failure !== undefined) return;
    const info = this.#o.containers!.lookup(cgroup.id, cgroup.hierarchy);
    for (const { record, probe } of queue) {
      if (info === 'pending') {
        this.unattributed++;
        this.#write(record, probe);
      } else {
        this.#write(withContainer(record, info), probe);
      }
    }
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    this.#o.onError?.(err);
  }

  #write(record: EvidenceRecord, probe: ProbeName): void {
    if (this.#o.dropContainerRecords === true && record.container_id !== undefined) {
      this.user[probe].filtered++;
      return;
    }
    this.#o.sink.write(encodeRecord(record), { type: record.event.type, tsNs: record.ts_ns, probe, record });
    this.user[probe].written++;
  }

  /** idle resolves once no record waits for attribution. */
  idle(): Promise<void> {
    if (this.#heldCount === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #notifyIdle(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  get heldRecords(): number {
    return this.#heldCount;
  }

  /** the first error of a deferred write (e.g. a full disk), if any */
  get failure(): unknown {
    return this.#failure;
  }
}

function withContainer(record: EvidenceRecord, info: { containerId?: string; imageDigest?: string }): EvidenceRecord {
  if (info.containerId === undefined) return record;
  // mutated in place: spreading an object that holds bigints is slow on Node 20 (see makeRecord)
  record.container_id = info.containerId;
  if (info.imageDigest !== undefined) record.image_digest = info.imageDigest;
  return record;
}

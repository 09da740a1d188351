import { decodeRecord, forEachFrame, newDecodeStats, type DecodeStats, type RawFunctionCall } from '../decode/decode';
import { PROBE_NAMES, type ProbeName } from '../decode/layout';
import { encodeRecord } from '../encode/record';
import { emptyUserCounters, type UserProbeCounters } from '../model/ledger';
import type { EvidenceRecord } from '../model/record';
import type { RecordSink } from '../store/sink';
import type { PathFilter } from './path-filter';

/** ContainerLookup is what the pipeline needs of enrichment (src/enrich/enricher.ts). */
export interface ContainerLookup {
  lookup(cgroupId: bigint): { containerId?: string; imageDigest?: string } | 'pending';
  whenSettled(cgroupId: bigint, timeoutMs: number): Promise<unknown>;
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
  /** --host-only: drop records attributed to a container (one started since the last filter refresh) */
  dropContainerRecords?: boolean;
}

interface Held {
  record: EvidenceRecord;
  probe: ProbeName;
  deadline: number;
}

/**
 * Pipeline: ring batches → decode → user-space filters → container attribution →
 * canonical line → sink. Records leave in the order they arrived; while the oldest waits
 * for attribution the ones behind it wait too (bounded by maxHeld and holdMs).
 */
export class Pipeline {
  readonly user: Record<ProbeName, UserProbeCounters>;
  readonly decodeStats: DecodeStats = newDecodeStats();
  readonly rejectReasons: Record<string, number> = {};
  /** records written without container fields because attribution was still pending */
  unattributed = 0;
  readonly #o: Required<Omit<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords'>> &
    Pick<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords'>;
  readonly #held: Held[] = [];
  #draining = false;
  #waiters: (() => void)[] = [];

  constructor(options: PipelineOptions) {
    // 2 s: resolving a new container (cgroup walk + runtime metadata) took up to ~1 s under load here
    this.#o = { holdMs: 2000, maxHeld: 65536, ...options };
    this.user = Object.fromEntries(PROBE_NAMES.map((p) => [p, emptyUserCounters()])) as Record<ProbeName, UserProbeCounters>;
  }

  handleBatch(batch: Buffer, used: number): void {
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
    this.#attribute(record, decoded.probe);
  }

  #attribute(record: EvidenceRecord, probe: ProbeName): void {
    const containers = this.#o.containers;
    if (containers === undefined || record.cgroup_id === undefined) {
      this.#write(record, probe);
      return;
    }
    if (this.#held.length === 0) {
      const info = containers.lookup(record.cgroup_id);
      if (info !== 'pending') {
        this.#write(withContainer(record, info), probe);
        return;
      }
    }
    this.#held.push({ record, probe, deadline: Date.now() + this.#o.holdMs });
    if (this.#held.length > this.#o.maxHeld) this.#release(true);
    if (this.#held.length === 1) this.#scheduleDrain();
  }

  #scheduleDrain(): void {
    const head = this.#held[0];
    if (head === undefined || this.#draining || this.#o.containers === undefined) return;
    this.#draining = true;
    const wait = Math.max(0, head.deadline - Date.now());
    void this.#o.containers.whenSettled(head.record.cgroup_id!, wait).finally(() => {
      this.#draining = false;
      this.#release(false);
      if (this.#held.length > 0) this.#scheduleDrain();
      else this.#notifyIdle();
    });
  }

  /** release writes waiting records from the head while they are resolved (or forced). */
  #release(forceHead: boolean): void {
    const containers = this.#o.containers!;
    const now = Date.now();
    while (this.#held.length > 0) {
      const head = this.#held[0]!;
      const info = containers.lookup(head.record.cgroup_id!);
      if (info === 'pending' && !forceHead && now < head.deadline) break;
      this.#held.shift();
      forceHead = false;
      if (info === 'pending') {
        this.unattributed++;
        this.#write(head.record, head.probe);
      } else {
        this.#write(withContainer(head.record, info), head.probe);
      }
    }
  }

  #write(record: EvidenceRecord, probe: ProbeName): void {
    if (this.#o.dropContainerRecords === true && record.container_id !== undefined) {
      this.user[probe].filtered++;
      return;
    }
    this.#o.sink.write(encodeRecord(record), { type: record.event.type, tsNs: record.ts_ns, probe });
    this.user[probe].written++;
  }

  /** idle resolves once no record waits for attribution. */
  idle(): Promise<void> {
    if (this.#held.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  #notifyIdle(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  get heldRecords(): number {
    return this.#held.length;
  }
}

function withContainer(record: EvidenceRecord, info: { containerId?: string; imageDigest?: string }): EvidenceRecord {
  if (info.containerId === undefined) return record;
  const out: EvidenceRecord = { ...record, container_id: info.containerId };
  if (info.imageDigest !== undefined) out.image_digest = info.imageDigest;
  return out;
}

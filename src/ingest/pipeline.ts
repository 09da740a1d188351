import { cgroupV1IdOf, decodeRecord, newDecodeStats, type DecodeStats, type RawFunctionCall } from '../decode/decode';
import { PROBE_NAMES, type ProbeName } from '../decode/layout';
import { forEachFrameOf, segmentLine, segmentRangeProbes, type Segment } from '../decode/segment';
import { encodeRecord } from '../encode/record';
import { emptyUserCounters, type UserProbeCounters } from '../model/ledger';
import type { EvidenceRecord } from '../model/record';
import type { LineInfo, RecordSink } from '../store/sink';
import { UsageError } from '../errors';
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

/**
 * CgroupDecision is a container selection's user-space half (src/ingest/cgroup-gate.ts): whether
 * the records of a cgroup, now attributed, are kept.
 */
export interface CgroupDecision {
  keep(key: string, id: bigint, hierarchy: 'v2' | 'v1', info: { containerId?: string; imageDigest?: string }): boolean;
}

/** How long and how much records waited for attribution (the hold), and what went past its bounds. */
export interface HoldStats {
  /** the most records and bytes waiting at once */
  maxRecords: number;
  maxBytes: number;
  /** the longest a cgroup's first record waited, in ms */
  maxMs: number;
  /** records whose cgroup was still unattributed when holdMs ran out */
  expired: number;
  /** records released before their attribution because maxHeld or maxHeldBytes was reached */
  evicted: number;
}

export interface PipelineOptions {
  sink: RecordSink;
  pathFilter: PathFilter;
  containers?: ContainerLookup;
  /**
   * a container selection: a record is kept only when its cgroup's attribution says so; one that
   * is still unattributed past the hold bounds cannot be decided and is shed (counted lost)
   */
  select?: CgroupDecision;
  /** add container_id/image_digest to records (default true; false: attribution only decides --container) */
  addFields?: boolean;
  /** how long a record may wait for its container attribution */
  holdMs?: number;
  /** at most this many records wait at once; beyond, the oldest cgroup's are released unattributed */
  maxHeld?: number;
  /** at most this many bytes (raw records, encoded lines) wait at once; beyond, as for maxHeld */
  maxHeldBytes?: number;
  buildFunctionCall?: FunctionCallBuilder;
  /** called with every decoded record before filtering (e.g. process_exec feeds the uprobe manager) */
  onRecord?: (record: EvidenceRecord) => void;
  /** called once with the first error of a deferred write (a write after attribution finished) */
  onError?: (err: unknown) => void;
  /** --host-only: drop records attributed to a container (one started since the last filter refresh) */
  dropContainerRecords?: boolean;
  /**
   * the fast path's cgroup table (native/encode.h), when the ring consumer encodes records
   * itself: the pipeline tells it each cgroup's attribution once known, and keeps it current
   */
  fastPath?: FastPathTable;
  /** default 'all'; 'first-seen' is taken by the reference path only (no fast path) */
  fileOpenMode?: FileOpenMode;
  /**
   * first-seen: file opens are deduplicated after the ts_ns merge, next to the output (a
   * FirstSeenOpens stage calls countReleased), not here; they count as written once released
   */
  firstSeenAtOutput?: boolean;
}

/**
 * --file-open-mode: `all` writes every file_open; `first-seen` writes one per (cgroup, pid, path,
 * access) per chunk window (the window rotates at each seal: rotateWindow) and counts the others
 * in the ledger's `deduplicated`, so the accounting identity stays exact.
 */
export const FILE_OPEN_MODES = ['all', 'first-seen'] as const;
export type FileOpenMode = (typeof FILE_OPEN_MODES)[number];

export function parseFileOpenMode(text: string | undefined): FileOpenMode {
  if (text === undefined) return 'all';
  if (!(FILE_OPEN_MODES as readonly string[]).includes(text)) {
    throw new UsageError(`--file-open-mode: unknown mode '${text}'`, `valid modes: ${FILE_OPEN_MODES.join(', ')}`);
  }
  return text as FileOpenMode;
}

/**
 * At most this many keys in a first-seen window; beyond, the window starts over (a file may
 * then be written twice in one chunk, never not at all).
 */
const FIRST_SEEN_MAX = 1 << 18;

/** What the pipeline needs of the fast path: its cgroup -> container fields table. */
export interface FastPathTable {
  set(id: bigint, v1: boolean, info: { containerId?: string; imageDigest?: string }): void;
  /** forget: the cgroup's records go to the reference path again (its attribution is pending) */
  forget(id: bigint, v1: boolean): void;
  clear(): void;
}

/** At most this many cgroups in the fast path's table (the native table holds 6144). */
const FAST_TABLE_MAX = 4096;
/** How often the fast path's table is checked against the enricher's current answers. */
const FAST_TABLE_REFRESH_MS = 250;

/** A record waiting for attribution: decoded, or a fast-path line (already encoded). */
type Held =
  | { record: EvidenceRecord; probe: ProbeName; line?: undefined }
  | { line: Buffer; probe: ProbeName; tsNs: bigint; record?: undefined };

/** The records waiting for one cgroup, since when, and their size. */
interface HeldQueue {
  items: Held[];
  since: number;
  bytes: number;
  /** the oldest ts_ns among them */
  minTs: bigint;
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
  readonly #o: Required<Omit<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords' | 'onError' | 'fastPath' | 'fileOpenMode' | 'select' | 'firstSeenAtOutput'>> &
    Pick<PipelineOptions, 'containers' | 'buildFunctionCall' | 'onRecord' | 'dropContainerRecords' | 'onError' | 'fastPath' | 'fileOpenMode' | 'select' | 'firstSeenAtOutput'>;
  readonly hold: HoldStats = { maxRecords: 0, maxBytes: 0, maxMs: 0, expired: 0, evicted: 0 };
  /** waiting records per cgroup, in arrival order; Map iteration order gives the oldest cgroup first */
  readonly #held = new Map<string, HeldQueue>();
  #heldBytes = 0;
  /** the cgroup each waiting queue is for */
  readonly #cgroups = new Map<string, CgroupKey>();
  #heldCount = 0;
  #failure: unknown;
  #waiters: (() => void)[] = [];
  /** what the fast path's table holds, by cgroup key */
  readonly #fastTable = new Map<string, { key: CgroupKey; containerId?: string; imageDigest?: string }>();
  #fastCheckedAt = 0;
  /** --file-open-mode first-seen: the keys written in this chunk window */
  readonly #seen = new Set<string>();

  constructor(options: PipelineOptions) {
    // 2 s: resolving a new container (cgroup walk + runtime metadata) took up to ~1 s under load here
    // 32 MiB: the records of about a second of a busy new container (docs/containers.md, "Selecting containers")
    this.#o = { holdMs: 2000, maxHeld: 65536, maxHeldBytes: 32 << 20, addFields: true, ...options };
    this.user = Object.fromEntries(PROBE_NAMES.map((p) => [p, emptyUserCounters()])) as Record<ProbeName, UserProbeCounters>;
  }

  handleBatch(batch: Buffer, used: number): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#o.fastPath !== undefined && this.#fastTable.size > 0) this.#refreshFastTable();
    forEachFrameOf(batch, used, (rec) => this.handleRecord(rec), (seg) => this.handleSegment(seg));
  }

  /**
   * handleSegment takes lines the fast path encoded: the same bytes the reference path writes
   * for those records (test/unit/fast-path.test.ts). They pass straight to the sink, unless
   * some record of their cgroup still waits for attribution: then they queue behind it.
   */
  handleSegment(seg: Segment): void {
    for (let i = 0; i < PROBE_NAMES.length; i++) {
      const n = seg.byProbe[i]!;
      if (n === 0) continue;
      this.user[PROBE_NAMES[i]!].received += BigInt(n);
    }
    this.decodeStats.invalidUtf8 += seg.invalidUtf8;
    this.decodeStats.unresolvedRelativePaths += seg.unresolvedRelativePaths;
    if (this.#heldCount === 0) {
      this.#writeSegment(seg, 0, seg.count);
      return;
    }
    let from = 0;
    for (let i = 0; i < seg.count; i++) {
      const l = segmentLine(seg, i);
      const queue = this.#held.get(l.v1 ? `v1:${l.cgroup}` : `v2:${l.cgroup}`);
      if (queue === undefined) continue;
      this.#writeSegment(seg, from, i);
      from = i + 1;
      queue.items.push({ line: Buffer.from(seg.batch.subarray(l.start, l.end)), probe: l.probe, tsNs: l.tsNs });
      this.#held1(queue, l.end - l.start, l.tsNs);
    }
    this.#writeSegment(seg, from, seg.count);
    this.#bound();
  }

  #writeSegment(seg: Segment, first: number, last: number): void {
    if (last <= first) return;
    const sink = this.#o.sink;
    if (sink.writeSegment !== undefined) {
      sink.writeSegment(seg, first, last);
      let n: readonly number[] = seg.byProbe;
      if (first > 0 || last < seg.count) {
        const range = PROBE_NAMES.map(() => 0);
        segmentRangeProbes(seg, first, last, range);
        n = range;
      }
      for (let i = 0; i < PROBE_NAMES.length; i++) if (n[i]! > 0) this.user[PROBE_NAMES[i]!].written += BigInt(n[i]!);
      return;
    }
    for (let i = first; i < last; i++) {
      const l = segmentLine(seg, i);
      sink.write(seg.batch.toString('utf8', l.start, l.end - 1), { type: l.probe as EvidenceRecord['event']['type'], tsNs: l.tsNs, probe: l.probe });
      this.user[l.probe].written++;
    }
  }

  /** #keeps: whether a cgroup's records are kept (--host-only, a container selection), given its attribution */
  #keeps(cgroup: CgroupKey, info: { containerId?: string }): boolean {
    if (this.#o.select !== undefined) return this.#o.select.keep(cgroup.key, cgroup.id, cgroup.hierarchy, info);
    return !(this.#o.dropContainerRecords === true && info.containerId !== undefined);
  }

  /** #teach tells the fast path a cgroup's attribution (once, and again when it changes). */
  #teach(cgroup: CgroupKey, info: { containerId?: string; imageDigest?: string }): void {
    const table = this.#o.fastPath;
    if (table === undefined) return;
    const known = this.#fastTable.get(cgroup.key);
    // dropped cgroups (--host-only, a container selection) are left to the reference path
    if (!this.#keeps(cgroup, info)) {
      if (known !== undefined) {
        this.#fastTable.delete(cgroup.key);
        table.forget(cgroup.id, cgroup.hierarchy === 'v1');
      }
      return;
    }
    const containerId = this.#o.addFields ? info.containerId : undefined;
    const imageDigest = containerId === undefined ? undefined : info.imageDigest;
    if (known !== undefined && known.containerId === containerId && known.imageDigest === imageDigest) return;
    if (known === undefined && this.#fastTable.size >= FAST_TABLE_MAX) {
      this.#fastTable.clear();
      table.clear();
    }
    this.#fastTable.set(cgroup.key, { key: cgroup, ...(containerId !== undefined ? { containerId } : {}), ...(imageDigest !== undefined ? { imageDigest } : {}) });
    table.set(cgroup.id, cgroup.hierarchy === 'v1', { ...(containerId !== undefined ? { containerId } : {}), ...(imageDigest !== undefined ? { imageDigest } : {}) });
  }

  /** the enricher's answers may change (a late container): the table follows, once a second */
  #refreshFastTable(): void {
    const now = Date.now();
    if (now - this.#fastCheckedAt < FAST_TABLE_REFRESH_MS) return;
    this.#fastCheckedAt = now;
    const containers = this.#o.containers;
    if (containers === undefined) return;
    for (const { key } of [...this.#fastTable.values()]) {
      const info = containers.lookup(key.id, key.hierarchy);
      if (info !== 'pending') {
        this.#teach(key, info);
      } else {
        // expired or evicted: being resolved again; meanwhile its records wait, as on the reference path
        this.#fastTable.delete(key.key);
        this.#o.fastPath!.forget(key.id, key.hierarchy === 'v1');
      }
    }
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
    this.#attribute(record, decoded.probe, this.#o.containers === undefined ? 0n : cgroupV1IdOf(rec), rec.length);
  }

  #attribute(record: EvidenceRecord, probe: ProbeName, cgroupV1: bigint, size: number): void {
    const containers = this.#o.containers;
    if (containers === undefined || record.cgroup_id === undefined) {
      this.#write(record, probe);
      return;
    }
    const cgroup: CgroupKey = record.cgroup_id === CGROUP2_ROOT_ID && cgroupV1 !== 0n
      ? { id: cgroupV1, hierarchy: 'v1', key: `v1:${cgroupV1}` }
      : { id: record.cgroup_id, hierarchy: 'v2', key: `v2:${record.cgroup_id}` };
    let queue = this.#held.get(cgroup.key);
    if (queue !== undefined) {
      queue.items.push({ record, probe });
    } else {
      const info = containers.lookup(cgroup.id, cgroup.hierarchy);
      if (info !== 'pending') {
        if (!this.#keeps(cgroup, info)) {
          this.user[probe].filtered++;
          return;
        }
        this.#teach(cgroup, info);
        this.#write(this.#o.addFields ? withContainer(record, info) : record, probe);
        return;
      }
      queue = { items: [{ record, probe }], since: Date.now(), bytes: 0, minTs: record.ts_ns };
      this.#held.set(cgroup.key, queue);
      this.#waitFor(cgroup, queue);
    }
    this.#held1(queue, size, record.ts_ns);
    this.#bound();
  }

  /** #held1 counts one more waiting record of `bytes` bytes. */
  #held1(queue: HeldQueue, bytes: number, ts: bigint): void {
    if (ts < queue.minTs) queue.minTs = ts;
    queue.bytes += bytes;
    this.#heldBytes += bytes;
    if (++this.#heldCount > this.hold.maxRecords) this.hold.maxRecords = this.#heldCount;
    if (this.#heldBytes > this.hold.maxBytes) this.hold.maxBytes = this.#heldBytes;
  }

  /** #bound: over maxHeld records or maxHeldBytes, the oldest waiting cgroups are released as they are now. */
  #bound(): void {
    while (this.#heldCount > this.#o.maxHeld || this.#heldBytes > this.#o.maxHeldBytes) {
      const oldest = this.#held.keys().next().value as string | undefined;
      if (oldest === undefined) return;
      this.#flush(oldest, this.#cgroups.get(oldest)!, true);
    }
  }

  #waitFor(cgroup: CgroupKey, queue: HeldQueue): void {
    this.#cgroups.set(cgroup.key, cgroup);
    void this.#o.containers!.whenSettled(cgroup.id, this.#o.holdMs, cgroup.hierarchy).finally(() => {
      try {
        // (the queue may have been released by the bounds, and a new one started since)
        if (this.#held.get(cgroup.key) === queue) this.#flush(cgroup.key, cgroup);
      } catch (err) {
        this.#fail(err);
      }
      if (this.#heldCount === 0) this.#notifyIdle();
    });
  }

  /**
   * flush writes the records waiting for one cgroup, attributed if it is known by now (early:
   * released by the bounds before the attribution's deadline). Under a container selection they
   * are kept or filtered by that attribution; still unattributed, they cannot be decided and are shed.
   */
  #flush(key: string, cgroup: CgroupKey, early = false): void {
    const queue = this.#held.get(key);
    if (queue === undefined) return;
    this.#held.delete(key);
    this.#cgroups.delete(key);
    this.#heldCount -= queue.items.length;
    this.#heldBytes -= queue.bytes;
    const waited = Date.now() - queue.since;
    if (waited > this.hold.maxMs) this.hold.maxMs = waited;
    if (this.#failure !== undefined) return;
    const info = this.#o.containers!.lookup(cgroup.id, cgroup.hierarchy);
    if (info === 'pending') {
      if (early) this.hold.evicted += queue.items.length;
      else this.hold.expired += queue.items.length;
    }
    const keep = info === 'pending' ? this.#o.select === undefined : this.#keeps(cgroup, info);
    for (const held of queue.items) {
      if (!keep) {
        if (info === 'pending') this.user[held.probe].shed++;
        else this.user[held.probe].filtered++;
      } else if (held.line !== undefined) {
        // a fast-path line: encoded with the attribution the table had, written as it is
        this.#writeLine(held.line, held.probe, held.tsNs);
      } else if (info === 'pending') {
        this.unattributed++;
        this.#write(held.record, held.probe);
      } else {
        this.#write(this.#o.addFields ? withContainer(held.record, info) : held.record, held.probe);
      }
    }
    if (info !== 'pending') this.#teach(cgroup, info);
  }

  #writeLine(line: Buffer, probe: ProbeName, tsNs: bigint): void {
    this.#o.sink.write(line.toString('utf8', 0, line.length - 1), { type: probe as EvidenceRecord['event']['type'], tsNs, probe });
    this.user[probe].written++;
  }

  #fail(err: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    this.#o.onError?.(err);
  }

  #write(record: EvidenceRecord, probe: ProbeName): void {
    if (record.event.type === 'file_open' && this.#o.fileOpenMode === 'first-seen') {
      if (this.#o.firstSeenAtOutput === true) {
        // decided and counted once the merge releases it (FirstSeenOpens, countReleased)
        this.#o.sink.write(encodeRecord(record), { type: record.event.type, tsNs: record.ts_ns, probe, record });
        return;
      }
      const key = firstSeenKey(record);
      if (this.#seen.has(key)) {
        this.user[probe].deduplicated++;
        return;
      }
      if (this.#seen.size >= FIRST_SEEN_MAX) this.#seen.clear();
      this.#seen.add(key);
    }
    this.#o.sink.write(encodeRecord(record), { type: record.event.type, tsNs: record.ts_ns, probe, record });
    this.user[probe].written++;
  }

  /** countReleased counts a file_open that FirstSeenOpens wrote or deduplicated (firstSeenAtOutput). */
  countReleased(probe: ProbeName, outcome: 'written' | 'deduplicated'): void {
    this.user[probe][outcome]++;
  }

  /** rotateWindow starts a new first-seen window: called when a chunk is sealed (OutputContext.onSeal). */
  rotateWindow(): void {
    this.#seen.clear();
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

  /** the oldest ts_ns of the records waiting for attribution (the output's order waits for them: src/ingest/order.ts) */
  get oldestHeldTs(): bigint | undefined {
    let min: bigint | undefined;
    for (const q of this.#held.values()) if (min === undefined || q.minTs < min) min = q.minTs;
    return min;
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

/** The key of a file_open under --file-open-mode first-seen: (cgroup, container, pid, access, path). */
function firstSeenKey(record: EvidenceRecord): string {
  const e = record.event as Extract<EvidenceRecord['event'], { type: 'file_open' }>;
  return `${record.cgroup_id}\0${record.container_id ?? ''}\0${record.pid}\0${e.access}\0${e.path}`;
}

/**
 * FirstSeenOpens deduplicates file opens (--file-open-mode first-seen) where records reach the
 * output: after the ts_ns merge (src/ingest/order.ts), next to the chunk writer whose seal
 * rotates its window (rotateWindow, from OutputContext.onSeal). A record that the merge still
 * held at a seal is decided in the window of the chunk it lands in, so each chunk holds the
 * first open of each key among its own records, and its `deduplicated` counts only opens of
 * keys it holds, while the merge keeps the output in ts_ns order. Other records pass as they are.
 */
export class FirstSeenOpens implements RecordSink {
  readonly #next: RecordSink;
  readonly #count: (probe: ProbeName, outcome: 'written' | 'deduplicated') => void;
  readonly #seen = new Set<string>();

  constructor(next: RecordSink, count: (probe: ProbeName, outcome: 'written' | 'deduplicated') => void) {
    this.#next = next;
    this.#count = count;
  }

  write(line: string, info: LineInfo): void {
    // (the pipeline passes the whole record: LineInfo types only what attribution reads)
    const r = info.record as EvidenceRecord | undefined;
    if (r === undefined || r.event.type !== 'file_open') {
      this.#next.write(line, info);
      return;
    }
    const key = firstSeenKey(r);
    if (this.#seen.has(key)) {
      this.#count(info.probe as ProbeName, 'deduplicated');
      return;
    }
    if (this.#seen.size >= FIRST_SEEN_MAX) this.#seen.clear();
    // noted before the write: a seal the write causes (after this line: a size seal) clears it;
    // one before this line (a full attribution window) lands the record in the new chunk,
    // whose window then lacks it, so a later duplicate is written again: twice, never not at all
    this.#seen.add(key);
    this.#next.write(line, info);
    this.#count(info.probe as ProbeName, 'written');
  }

  get backlogBytes(): number {
    return this.#next.backlogBytes;
  }

  get bytesWritten(): number {
    return this.#next.bytesWritten;
  }

  close(finalLedger: Parameters<RecordSink['close']>[0]): Promise<void> {
    return this.#next.close(finalLedger);
  }

  unwritten(): Map<string, bigint> {
    return this.#next.unwritten?.() ?? new Map();
  }

  /** rotateWindow: a chunk was sealed; the next one starts a new window */
  rotateWindow(): void {
    this.#seen.clear();
  }
}

import { COUNTER_STRIDE, Counter, Hdr, PROBE_NAMES, type ProbeName } from '../../src/decode/layout';
import type { NativeBinding, ObjectHandle, RingHandle, UprobeMultiKind } from '../../src/ingest/native';
import { KERNEL_PROBES, SUPPORT_PROGRAMS } from '../../src/ingest/probes';

/** Every program name the BPF object holds, as far as src/ingest/probes.ts knows them. */
export const KNOWN_PROGRAMS: string[] = [
  ...SUPPORT_PROGRAMS.map((p) => p.name), ...KERNEL_PROBES.flatMap((s) => s.programs.map((p) => p.name)),
];

/** One call the code under test made on the binding (for order checks). */
export interface FakeCall {
  op: keyof NativeBinding;
  args: unknown[];
}

export interface FakeBindingOptions {
  /** recorded ring records (the payloads of samples.bin); routed to the ring their probe uses */
  samples?: Buffer[];
  /** records per delivered batch */
  batchRecords?: number;
  programs?: string[];
  uprobeSessions?: boolean;
  cpus?: number;
  /** recorded kernel counters added to what the replayed samples give (e.g. ring_full) */
  counters?: Partial<Record<ProbeName, Partial<Record<'submitted' | 'filtered' | 'ringFull' | 'skipped' | 'truncated', bigint>>>>;
  /** make attach() refuse these programs */
  refuse?: string[];
}

/** readSamples splits a samples.bin ([u32 length][record bytes]...) into records. */
export function readSamples(samples: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  while (offset + 4 <= samples.length) {
    const len = samples.readUInt32LE(offset);
    out.push(samples.subarray(offset + 4, offset + 4 + len));
    offset += 4 + len;
  }
  return out;
}

/** packBatch lays records out as the addon delivers them: [u32 len][u32 pad][bytes, padded to 8]. */
export function packBatch(records: Buffer[]): { batch: Buffer; used: number } {
  const used = records.reduce((n, r) => n + 8 + ((r.length + 7) & ~7), 0);
  const batch = Buffer.alloc(used);
  let offset = 0;
  for (const r of records) {
    batch.writeUInt32LE(r.length, offset);
    r.copy(batch, offset + 8);
    offset += 8 + ((r.length + 7) & ~7);
  }
  return { batch, used };
}

const COUNTER_INDEX = { submitted: Counter.SUBMITTED, filtered: Counter.FILTERED, ringFull: Counter.RING_FULL, skipped: Counter.SKIPPED, truncated: Counter.TRUNCATED };

/**
 * FakeBinding is a test double of the addon's ABI (src/ingest/native.ts, NativeBinding) for the
 * unit tier: it keeps maps in memory, hands out link ids, replays recorded ring records through
 * the ring callbacks (one batch at a time, the next after the slot came back, the end marker
 * after stopRing) and answers the per-CPU stats map from what it replayed. The kernel tests
 * run the real addon.
 */
export class FakeBinding implements NativeBinding {
  readonly calls: FakeCall[] = [];
  readonly maps = new Map<string, Map<string, Buffer>>();
  readonly attached = new Map<number, string>();
  readonly autoload = new Map<string, boolean>();
  loaded = false;
  #nextLink = 1;
  readonly #o: Required<Omit<FakeBindingOptions, 'counters'>> & Pick<FakeBindingOptions, 'counters'>;
  readonly #queues: Record<'events_bulk' | 'events_rare', Buffer[]> = { events_bulk: [], events_rare: [] };
  readonly #submitted = new Map<ProbeName, bigint>();

  constructor(options: FakeBindingOptions = {}) {
    this.#o = { samples: [], batchRecords: 8, programs: KNOWN_PROGRAMS, uprobeSessions: true, cpus: 2, refuse: [], ...options };
    for (const rec of this.#o.samples) {
      const probe = PROBE_NAMES[rec.readUInt32LE(Hdr.kind) - 1];
      this.#queues[probe === 'file_open' ? 'events_bulk' : 'events_rare'].push(rec);
    }
  }

  #log(op: keyof NativeBinding, ...args: unknown[]): void {
    this.calls.push({ op, args });
  }

  ops(): string[] {
    return this.calls.map((c) => c.op);
  }

  map(name: string): Map<string, Buffer> {
    let m = this.maps.get(name);
    if (m === undefined) this.maps.set(name, (m = new Map()));
    return m;
  }

  openObject(path: string): ObjectHandle {
    this.#log('openObject', path);
    return { path } as unknown as ObjectHandle;
  }
  setGlobal(_h: ObjectHandle, name: string, bytes: Buffer): void { this.#log('setGlobal', name, Buffer.from(bytes)); }
  setMapMaxEntries(_h: ObjectHandle, map: string, entries: number): void { this.#log('setMapMaxEntries', map, entries); }
  setAutoload(_h: ObjectHandle, program: string, on: boolean): void {
    this.#log('setAutoload', program, on);
    this.autoload.set(program, on);
  }
  programs(_h: ObjectHandle): { name: string; section: string }[] {
    return this.#o.programs.map((name) => ({ name, section: '' }));
  }
  load(_h: ObjectHandle, echoLog: boolean): void {
    this.#log('load', echoLog);
    this.loaded = true;
  }
  #link(what: string): number {
    const id = this.#nextLink++;
    this.attached.set(id, what);
    return id;
  }
  attach(_h: ObjectHandle, program: string): number {
    this.#log('attach', program);
    if (!this.loaded) throw new Error('attach before load');
    if (this.#o.refuse.includes(program)) throw new Error(`fake: ${program} refused`);
    return this.#link(program);
  }
  attachUprobe(_h: ObjectHandle, program: string, retprobe: boolean, pid: number, binary: string, fileOffset: bigint, cookie: bigint): number {
    this.#log('attachUprobe', program, retprobe, pid, binary, fileOffset, cookie);
    return this.#link(`${program}@${binary}`);
  }
  attachUprobeMulti(_h: ObjectHandle, program: string, kind: UprobeMultiKind, binary: string, fileOffsets: bigint[], cookies: bigint[], pid: number): number {
    this.#log('attachUprobeMulti', program, kind, binary, fileOffsets, cookies, pid);
    return this.#link(`${program}@${binary}`);
  }
  setExpectedAttachType(_h: ObjectHandle, program: string, kind: UprobeMultiKind): void { this.#log('setExpectedAttachType', program, kind); }
  uprobeSessionSupported(): boolean { return this.#o.uprobeSessions; }
  runIterator(_h: ObjectHandle, program: string): number {
    this.#log('runIterator', program);
    return 0;
  }
  detach(_h: ObjectHandle, link: number): void {
    this.#log('detach', link);
    if (!this.attached.delete(link)) throw new Error(`fake: link ${link} is not attached`);
  }
  detachMany(_h: ObjectHandle, links: number[]): void {
    this.#log('detachMany', [...links]);
    for (const link of links) this.attached.delete(link);
  }
  mapUpdate(_h: ObjectHandle, map: string, key: Buffer, value: Buffer): void {
    this.#log('mapUpdate', map, key.toString('hex'));
    this.map(map).set(key.toString('hex'), Buffer.from(value));
  }
  mapDelete(_h: ObjectHandle, map: string, key: Buffer): boolean {
    this.#log('mapDelete', map, key.toString('hex'));
    return this.map(map).delete(key.toString('hex'));
  }
  mapLookup(_h: ObjectHandle, map: string, key: Buffer): Buffer | null {
    if (map !== 'stats') return this.map(map).get(key.toString('hex')) ?? null;
    const index = key.readUInt32LE(0);
    const probe = PROBE_NAMES[Math.floor(index / COUNTER_STRIDE)];
    const counter = index % COUNTER_STRIDE;
    if (probe === undefined) return null;
    let value = 0n;
    if (counter === Counter.SUBMITTED) value += this.#submitted.get(probe) ?? 0n;
    for (const [name, i] of Object.entries(COUNTER_INDEX)) {
      if (i === counter) value += this.#o.counters?.[probe]?.[name as keyof typeof COUNTER_INDEX] ?? 0n;
    }
    // per-CPU values: all on CPU 0, the others 0
    const out = Buffer.alloc(8 * this.#o.cpus);
    out.writeBigUInt64LE(value, 0);
    return out;
  }
  startRing(_h: ObjectHandle, map: string, callback: (batch: Buffer | null, used: number | null, slot: number | null) => void): RingHandle {
    this.#log('startRing', map);
    const queue = this.#queues[map as 'events_bulk' | 'events_rare'] ?? [];
    const ring = { stopped: false, busy: false, ended: false, next: () => {} };
    const deliver = (): void => {
      if (ring.busy || ring.ended) return;
      if (queue.length === 0) {
        if (ring.stopped) {
          ring.ended = true;
          callback(null, null, null);
        }
        return;
      }
      const records = queue.splice(0, this.#o.batchRecords);
      for (const r of records) {
        const probe = PROBE_NAMES[r.readUInt32LE(Hdr.kind) - 1]!;
        this.#submitted.set(probe, (this.#submitted.get(probe) ?? 0n) + 1n);
      }
      const { batch, used } = packBatch(records);
      ring.busy = true;
      callback(batch, used, 0);
    };
    ring.next = () => setImmediate(deliver);
    const handle = { ring, release: () => { ring.busy = false; ring.next(); }, stop: () => { ring.stopped = true; ring.next(); } };
    ring.next();
    return handle as unknown as RingHandle;
  }
  releaseSlot(ring: RingHandle, _slot: number): void {
    (ring as unknown as { release(): void }).release();
  }
  stopRing(ring: RingHandle): void {
    this.#log('stopRing');
    (ring as unknown as { stop(): void }).stop();
  }
  numPossibleCpus(): number { return this.#o.cpus; }
}

import { segmentLine, type Segment } from '../../src/decode/segment';
import type { ContainerLookup } from '../../src/ingest/pipeline';
import type { LineInfo, RecordSink } from '../../src/store/sink';

/**
 * Builders for the pipeline tests (test/unit/{cgroup-gate,order,fast-path}.test.ts): raw
 * file_open records laid out as bpf/events.h `struct evt_file_open` (evt_hdr first), a ring
 * batch of them as the addon's consumer hands it over, a sink that keeps what it is given, and
 * container attribution with scripted answers and timing.
 */

/** Every field of a file_open record; `sizeDelta` and `kind` make malformed records. */
export interface OpenSpec {
  ts: bigint;
  cgroup: bigint;
  /** evt_hdr.cgroup_v1_id */
  v1: bigint;
  pid: number;
  tid: number;
  comm: Uint8Array;
  ret: number;
  flags: number;
  mode: number;
  dfd: number;
  path: Uint8Array;
  /** the directory a relative path is resolved against (dir_len bytes after the path) */
  dir: Uint8Array;
  pathFlags: number;
  /** enum open_syscall (1: openat) */
  syscall: number;
  /** added to evt_hdr.size (0: the true size) */
  sizeDelta: number;
  /** evt_hdr.kind (1: file_open) */
  kind: number;
}

/** The fields fileOpenRecord takes when a test does not name them: `cat` opening at AT_FDCWD, fd 3. */
export const OPEN_DEFAULTS: OpenSpec = {
  ts: 1n, cgroup: 5n, v1: 0n, pid: 100, tid: 100, comm: Uint8Array.from(Buffer.from('cat')), ret: 3, flags: 0, mode: 0,
  dfd: -100, path: Uint8Array.from(Buffer.from('/x')), dir: new Uint8Array(), pathFlags: 0, syscall: 1, sizeDelta: 0, kind: 1,
};

/** fileOpenRecord lays a file_open record out (bpf/events.h: evt_hdr, 56 bytes, then evt_file_open, 88 bytes in all). */
export function fileOpenRecord(fields: Partial<Omit<OpenSpec, 'path'>> & { path?: Uint8Array | string } = {}): Buffer {
  const s: OpenSpec = { ...OPEN_DEFAULTS, ...fields, path: typeof fields.path === 'string' ? Uint8Array.from(Buffer.from(fields.path)) : fields.path ?? OPEN_DEFAULTS.path };
  const size = 88 + s.path.length + s.dir.length;
  const b = Buffer.alloc(size);
  b.writeBigUInt64LE(s.ts, 0);
  b.writeBigUInt64LE(s.cgroup, 8);
  b.writeUInt32LE(s.kind, 16);
  b.writeUInt32LE((size + s.sizeDelta) >>> 0, 20);
  b.writeUInt32LE(s.pid, 24);
  b.writeUInt32LE(s.tid, 28);
  Buffer.from(s.comm).copy(b, 32, 0, 16);
  b.writeBigUInt64LE(s.v1, 48);
  b.writeBigInt64LE(BigInt(s.ret), 56);
  b.writeUInt32LE(s.flags >>> 0, 64);
  b.writeUInt32LE(s.mode >>> 0, 68);
  b.writeInt32LE(s.dfd, 72);
  b.writeUInt16LE(s.path.length, 76);
  b.writeUInt16LE(s.dir.length, 78);
  b.writeUInt16LE(s.pathFlags, 80);
  b.writeUInt8(s.syscall, 82);
  Buffer.from(s.path).copy(b, 88);
  Buffer.from(s.dir).copy(b, 88 + s.path.length);
  return b;
}

/** frames: records as one ring batch, each `[u32 len][u32 kind 0 (record)][bytes]` padded to 8 bytes. */
export function frames(records: readonly Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const r of records) {
    const head = Buffer.alloc(8);
    head.writeUInt32LE(r.length);
    parts.push(head, r, Buffer.alloc(((r.length + 7) & ~7) - r.length));
  }
  return Buffer.concat(parts);
}

export type MemorySink = RecordSink & { lines: string[]; ts: bigint[]; segments: number };

/**
 * memorySink keeps each line written and its ts_ns. With `segments`, it also takes fast-path
 * segments as they are (RecordSink.writeSegment: the pipeline hands them over without a copy)
 * and counts them; without, the pipeline writes a segment's lines one by one.
 */
export function memorySink(opts: { segments?: boolean } = {}): MemorySink {
  const sink: MemorySink = {
    lines: [], ts: [], segments: 0, backlogBytes: 0, bytesWritten: 0, close: async () => {},
    write(line: string, info: LineInfo) {
      sink.lines.push(line);
      sink.ts.push(info.tsNs);
    },
  };
  if (opts.segments === true) {
    sink.writeSegment = (seg: Segment, first: number, last: number) => {
      sink.segments++;
      for (let i = first; i < last; i++) {
        const l = segmentLine(seg, i);
        sink.lines.push(seg.batch.toString('utf8', l.start, l.end - 1));
        sink.ts.push(l.tsNs);
      }
    };
  }
  return sink;
}

export type Attribution = { containerId?: string; imageDigest?: string };
/** a cgroup's answer once settled; 'never': it stays pending (a container that never resolves) */
export type FinalAnswer = Attribution | 'never';
type Hierarchy = 'v2' | 'v1';

/**
 * ScriptedLookup: attribution as the Enricher gives it. A cgroup is 'pending' until whenSettled
 * is asked for it (the Enricher's first lookup starts the resolution), then gives its final
 * answer. `settleMs`: how long whenSettled takes (default: at once). `neverWaits`: a 'never'
 * cgroup's whenSettled returns only at its timeout, as the Enricher's does (default: at once).
 * `evictedAt` makes a settled cgroup pending again at the start of batch n (startBatch(n)), as
 * when the Enricher's cache drops it.
 */
export class ScriptedLookup implements ContainerLookup {
  readonly #settled = new Set<string>();
  readonly #settleMs: number;
  readonly #neverWaits: boolean;
  readonly #evictedAt: (id: bigint, hierarchy: Hierarchy) => number;

  constructor(readonly final: (id: bigint, hierarchy: Hierarchy) => FinalAnswer,
    opts: { settleMs?: number; neverWaits?: boolean; evictedAt?: (id: bigint, hierarchy: Hierarchy) => number } = {}) {
    this.#settleMs = opts.settleMs ?? 0;
    this.#neverWaits = opts.neverWaits ?? false;
    this.#evictedAt = opts.evictedAt ?? (() => -1);
  }

  startBatch(n: number): void {
    for (const key of [...this.#settled]) {
      const [h, id] = key.split(':') as [Hierarchy, string];
      if (this.#evictedAt(BigInt(id), h) === n) this.#settled.delete(key);
    }
  }

  lookup(id: bigint, hierarchy: Hierarchy = 'v2'): Attribution | 'pending' {
    const f = this.final(id, hierarchy);
    if (f === 'never' || !this.#settled.has(`${hierarchy}:${id}`)) return 'pending';
    return f;
  }

  async whenSettled(id: bigint, timeoutMs: number, hierarchy: Hierarchy = 'v2'): Promise<unknown> {
    if (this.final(id, hierarchy) === 'never') {
      if (this.#neverWaits) await new Promise((r) => setTimeout(r, timeoutMs));
      return undefined;
    }
    if (this.#settleMs > 0) await new Promise((r) => setTimeout(r, this.#settleMs));
    this.#settled.add(`${hierarchy}:${id}`);
    return undefined;
  }
}

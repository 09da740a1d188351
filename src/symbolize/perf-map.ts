import { printable } from './elf';
import type { Runtime } from '../model/record';
import { lastAtOrBefore } from '../util/search';

/** PerfMapLimits bound what a (monitored, untrusted) process can make us hold. */
export interface PerfMapLimits {
  maxFileBytes: number;
  maxLineBytes: number;
  maxEntries: number;
  maxNameBytes: number;
}

export const DEFAULT_PERF_MAP_LIMITS: PerfMapLimits = {
  maxFileBytes: 64 * 1024 * 1024,
  maxLineBytes: 4096,
  maxEntries: 1_000_000,
  maxNameBytes: 1024,
};

export interface PerfMapEntry {
  start: bigint;
  end: bigint;
  name: string;
  seq: number;
}

/** PerfMapCounters count what was skipped; they are reported, never thrown. */
export interface PerfMapCounters {
  lines: number;
  rejectedLines: number;
  longLines: number;
  truncatedFiles: number;
  droppedEntries: number;
}

const LINE = /^(?:0x)?([0-9a-fA-F]{1,16}) (?:0x)?([0-9a-fA-F]{1,16}) (.+)$/;

/**
 * PerfMap holds one process's `/tmp/perf-<nspid>.map` (format: Linux
 * tools/perf/Documentation/jit-interface.txt, `START SIZE name`, hex, `0x` optional as JVM
 * writes it). Text is fed incrementally with `append`; later lines win on overlap.
 */
export class PerfMap {
  #entries: PerfMapEntry[] = [];
  #sorted: PerfMapEntry[] | undefined;
  #partial = '';
  #skipping = false;
  bytesRead = 0;
  readonly counters: PerfMapCounters = { lines: 0, rejectedLines: 0, longLines: 0, truncatedFiles: 0, droppedEntries: 0 };

  constructor(readonly limits: PerfMapLimits = DEFAULT_PERF_MAP_LIMITS) {}

  get size(): number {
    return this.#entries.length;
  }

  /** append parses a chunk of the file; an incomplete last line waits for the next chunk. */
  append(chunk: string): void {
    this.bytesRead += Buffer.byteLength(chunk);
    const text = this.#partial + chunk;
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    for (const line of lines) {
      // The first line after an over-long one is that line's tail: drop it.
      if (this.#skipping) {
        this.#skipping = false;
        continue;
      }
      this.#line(line);
    }
    if (this.#partial.length > this.limits.maxLineBytes) {
      // A line longer than the cap: drop it and everything up to the next newline.
      this.#partial = '';
      if (!this.#skipping) this.counters.longLines++;
      this.#skipping = true;
    }
  }

  #line(line: string): void {
    this.counters.lines++;
    if (line.length > this.limits.maxLineBytes) {
      this.counters.longLines++;
      return;
    }
    const m = LINE.exec(line);
    if (m === null) {
      if (line.trim() !== '') this.counters.rejectedLines++;
      return;
    }
    const start = BigInt('0x' + m[1]);
    const size = BigInt('0x' + m[2]);
    const name = printable(m[3]!).slice(0, this.limits.maxNameBytes).trim();
    if (size === 0n || name === '' || start + size > 0xffffffffffffffffn) {
      this.counters.rejectedLines++;
      return;
    }
    if (this.#entries.length >= this.limits.maxEntries) {
      this.counters.droppedEntries++;
      return;
    }
    this.#entries.push({ start, end: start + size, name, seq: this.#entries.length });
    this.#sorted = undefined;
  }

  /** lookup returns the latest entry containing addr. */
  lookup(addr: bigint): PerfMapEntry | undefined {
    const s = (this.#sorted ??= [...this.#entries].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : a.seq - b.seq)));
    const at = lastAtOrBefore(s, (e) => e.start, addr);
    let best: PerfMapEntry | undefined;
    // Overlaps come from code reuse; look back a bounded number of candidates.
    for (let i = at; i >= 0 && i > at - 64; i--) {
      const e = s[i]!;
      if (addr < e.end && (best === undefined || e.seq > best.seq)) best = e;
    }
    return best;
  }
}

/** perfMapKind classifies a JIT frame name (reference §3.4). */
export function perfMapKind(name: string): Runtime | undefined {
  if (/^(JS|Builtin|BytecodeHandler|Handler|Stub|RegExp|Function|LazyCompile|InterpretedFunction|Script):/.test(name)) return 'node';
  if (name.startsWith('py::')) return 'python';
  if (/^\[[^\]]*\] [\w.`]+::/.test(name) || /::[\w.<>`]+\(.*\)\[\w+\]$/.test(name)) return 'dotnet';
  if (/^[\w$.<>[\]]+ [\w$.]+\.[\w$<>]+\(.*\)$/.test(name)) return 'jvm';
  return undefined;
}

/**
 * PathTable maps paths (as UTF-8 bytes) to small integers, compactly: the bytes of every path
 * in one growing arena Buffer, and an open-addressing hash table of entry numbers over typed
 * arrays. No JS string or Map entry per path: a host's dpkg database (≈ 138k paths, 8 MB of
 * list text) takes ≈ 11 MB here instead of ≈ 40 MB as a Map<string, number> of sliced strings
 * (docs/benchmarks.md, "Session 3"). Lookups compare bytes, so an answer is exact (the hash
 * only picks the slot).
 */
export class PathTable {
  #arena: Buffer;
  #arenaUsed = 0;
  /** per entry: start in the arena, length, value, hash */
  #start: Uint32Array;
  #len: Uint32Array;
  #value: Uint32Array;
  #hash: Uint32Array;
  #count = 0;
  /** slots hold entry + 1 (0 = empty) */
  #slots: Uint32Array;
  #mask: number;
  #scratch = Buffer.allocUnsafe(4 * 4096 + 16);
  #scratchView = viewOf(this.#scratch);

  constructor(expected = 1024) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.#slots = new Uint32Array(cap);
    this.#mask = cap - 1;
    const entries = Math.max(8, expected);
    this.#start = new Uint32Array(entries);
    this.#len = new Uint32Array(entries);
    this.#value = new Uint32Array(entries);
    this.#hash = new Uint32Array(entries);
    this.#arena = Buffer.allocUnsafe(Math.max(4096, expected * 48));
  }

  /** the arena (valid until the next appendRaw or add): addAt's callers hash the bytes they appended */
  get arena(): Buffer {
    return this.#arena;
  }

  get size(): number {
    return this.#count;
  }

  /** bytes held (arena and tables), for the memory accounting in docs/benchmarks.md */
  get bytes(): number {
    return this.#arena.length + this.#slots.byteLength + 4 * 4 * this.#start.length;
  }

  /** add `buf[start, end)` with `value` unless present; returns whether it was added (a copy per path: addAt does without) */
  addBytes(buf: Buffer, start: number, end: number, value: number): boolean {
    const h = pathHash(buf, viewOf(buf), start, end);
    const len = end - start;
    let i = h & this.#mask;
    for (;;) {
      const s = this.#slots[i]!;
      if (s === 0) break;
      const e = s - 1;
      if (this.#hash[e] === h && this.#len[e] === len && this.#arena.compare(buf, start, end, this.#start[e]!, this.#start[e]! + len) === 0) return false;
      i = (i + 1) & this.#mask;
    }
    if (this.#count === this.#start.length) this.#growEntries();
    if (this.#arenaUsed + len > this.#arena.length) this.#growArena(len);
    const e = this.#count++;
    buf.copy(this.#arena, this.#arenaUsed, start, end);
    this.#start[e] = this.#arenaUsed;
    this.#len[e] = len;
    this.#value[e] = value;
    this.#hash[e] = h;
    this.#arenaUsed += len;
    this.#slots[i] = e + 1;
    if (this.#count * 2 > this.#slots.length) this.#rehash();
    return true;
  }

  /**
   * appendRaw copies `buf` into the arena whole and returns where it starts: the caller then
   * adds lines of it with addAt, without a copy per path (a dpkg list, 774 of them here).
   */
  appendRaw(buf: Buffer): number {
    if (this.#arenaUsed + buf.length > this.#arena.length) this.#growArena(buf.length);
    const base = this.#arenaUsed;
    buf.copy(this.#arena, base);
    this.#arenaUsed += buf.length;
    return base;
  }

  /**
   * addAt adds the arena bytes [start, start + len) (from appendRaw) whose pathHash is `h`, unless
   * present; returns whether it was added. `limit`: throw `onLimit()` instead of going past it.
   */
  addAt(start: number, len: number, h: number, value: number, limit: number, onLimit: () => Error): boolean {
    const arena = this.#arena;
    let i = h & this.#mask;
    for (;;) {
      const s = this.#slots[i]!;
      if (s === 0) break;
      const e = s - 1;
      if (this.#hash[e] === h && this.#len[e] === len && arena.compare(arena, start, start + len, this.#start[e]!, this.#start[e]! + len) === 0) return false;
      i = (i + 1) & this.#mask;
    }
    if (this.#count >= limit) throw onLimit();
    if (this.#count === this.#start.length) this.#growEntries();
    const e = this.#count++;
    this.#start[e] = start;
    this.#len[e] = len;
    this.#value[e] = value;
    this.#hash[e] = h;
    this.#slots[i] = e + 1;
    if (this.#count * 2 > this.#slots.length) this.#rehash();
    return true;
  }

  /** value of the path `p` (a JS string, looked up as its UTF-8 bytes), or undefined */
  get(p: string): number | undefined {
    if (p.length * 3 > this.#scratch.length) {
      this.#scratch = Buffer.allocUnsafe(p.length * 3);
      this.#scratchView = viewOf(this.#scratch);
    }
    const n = this.#scratch.write(p, 0, 'utf8');
    return this.#find(this.#scratch, 0, n, pathHash(this.#scratch, this.#scratchView, 0, n));
  }

  getBytes(buf: Buffer, start: number, end: number): number | undefined {
    return this.#find(buf, start, end, pathHash(buf, viewOf(buf), start, end));
  }

  #find(buf: Buffer, start: number, end: number, h: number): number | undefined {
    const len = end - start;
    let i = h & this.#mask;
    for (;;) {
      const s = this.#slots[i]!;
      if (s === 0) return undefined;
      const e = s - 1;
      if (this.#hash[e] === h && this.#len[e] === len && this.#arena.compare(buf, start, end, this.#start[e]!, this.#start[e]! + len) === 0) return this.#value[e];
      i = (i + 1) & this.#mask;
    }
  }

  /** trim gives the arena's unused tail back (call when no more paths are coming) */
  trim(): void {
    if (this.#arena.length - this.#arenaUsed < 65536) return;
    const a = Buffer.allocUnsafe(this.#arenaUsed);
    this.#arena.copy(a, 0, 0, this.#arenaUsed);
    this.#arena = a;
    const n = Math.max(8, this.#count);
    this.#start = this.#start.slice(0, n);
    this.#len = this.#len.slice(0, n);
    this.#value = this.#value.slice(0, n);
    this.#hash = this.#hash.slice(0, n);
  }

  /**
   * parts: the table's arrays as they are (views, no copy; after trim() they hold no unused
   * space), for a cache file (src/packages/dpkg-cache.ts). Valid until the next add.
   */
  parts(): PathTableParts {
    const n = this.#count;
    return {
      arena: this.#arena.subarray(0, this.#arenaUsed), start: this.#start.subarray(0, n), len: this.#len.subarray(0, n),
      value: this.#value.subarray(0, n), hash: this.#hash.subarray(0, n), slots: this.#slots,
    };
  }

  /**
   * fromParts rebuilds a table from parts() (a cache file's: it checks every entry against the
   * arena and every slot against the entries, so a corrupt cache throws instead of answering);
   * the arrays are used as they are, without a copy. `maxValue`: values are below it.
   */
  static fromParts(p: PathTableParts, maxValue: number): PathTable {
    const n = p.start.length;
    const cap = p.slots.length;
    if (p.len.length !== n || p.value.length !== n || p.hash.length !== n) throw new RangeError('path table: entry arrays differ in length');
    if (cap < 16 || (cap & (cap - 1)) !== 0 || n * 2 > cap) throw new RangeError('path table: bad slot count');
    const arenaLen = p.arena.length;
    for (let e = 0; e < n; e++) {
      const st = p.start[e]!;
      const ln = p.len[e]!;
      if (ln === 0 || st + ln > arenaLen || p.value[e]! >= maxValue) throw new RangeError('path table: entry out of bounds');
    }
    const seen = new Uint8Array(n);
    let used = 0;
    for (let i = 0; i < cap; i++) {
      const s = p.slots[i]!;
      if (s === 0) continue;
      if (s > n || seen[s - 1] === 1) throw new RangeError('path table: bad slot');
      seen[s - 1] = 1;
      used++;
    }
    if (used !== n) throw new RangeError('path table: entries without a slot');
    const t = new PathTable(8);
    t.#arena = p.arena;
    t.#arenaUsed = arenaLen;
    t.#start = p.start;
    t.#len = p.len;
    t.#value = p.value;
    t.#hash = p.hash;
    t.#count = n;
    t.#slots = p.slots;
    t.#mask = cap - 1;
    // (the hashes are not recomputed: a wrong one only makes its path miss, and the cache file's
    // SHA-256 already says the bytes are those the writer wrote)
    return t;
  }

  #growEntries(): void {
    const n = this.#start.length * 2;
    const grow = (a: Uint32Array): Uint32Array => {
      const b = new Uint32Array(n);
      b.set(a);
      return b;
    };
    this.#start = grow(this.#start);
    this.#len = grow(this.#len);
    this.#value = grow(this.#value);
    this.#hash = grow(this.#hash);
  }

  #growArena(need: number): void {
    let n = this.#arena.length * 2;
    while (n < this.#arenaUsed + need) n *= 2;
    const a = Buffer.allocUnsafe(n);
    this.#arena.copy(a, 0, 0, this.#arenaUsed);
    this.#arena = a;
  }

  #rehash(): void {
    const slots = new Uint32Array(this.#slots.length * 2);
    const mask = slots.length - 1;
    for (let e = 0; e < this.#count; e++) {
      let i = this.#hash[e]! & mask;
      while (slots[i] !== 0) i = (i + 1) & mask;
      slots[i] = e + 1;
    }
    this.#slots = slots;
    this.#mask = mask;
  }
}

/** The arrays of a PathTable (PathTable.parts, PathTable.fromParts). */
export interface PathTableParts {
  arena: Buffer;
  start: Uint32Array;
  len: Uint32Array;
  value: Uint32Array;
  hash: Uint32Array;
  slots: Uint32Array;
}

/**
 * pathHash: a 32-bit hash of buf[start, end), four bytes per step through a DataView over the
 * same bytes (4x fewer steps than a byte-wise FNV-1a: 10 ms instead of 43 ms over a host's 8 MB
 * of dpkg lists, bench/dpkg-index.bench.ts). Only picks a slot: equality is a byte compare.
 */
export function pathHash(buf: Buffer, dv: DataView, start: number, end: number): number {
  let h = 0x811c9dc5 ^ (end - start);
  let k = start;
  for (; k + 4 <= end; k += 4) h = Math.imul(h ^ dv.getUint32(k, true), 0x01000193) ^ (h >>> 15);
  for (; k < end; k++) h = Math.imul(h ^ buf[k]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  return h >>> 0;
}

/** viewOf: a DataView over a Buffer's bytes (what pathHash reads words through) */
export function viewOf(buf: Buffer): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

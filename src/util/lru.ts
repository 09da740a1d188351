/**
 * Lru is the one least-recently-used map of rtev: a hard entry bound (the oldest entries are
 * evicted past it), an optional per-entry expiry against an injected clock (milliseconds),
 * an optional eviction callback (to close file handles), and hit/miss/eviction counters.
 */
export interface LruOptions<K, V> {
  /** runs for every entry evicted over the bound, deleted, expired or cleared; not for a replaced value */
  onEvict?: (key: K, value: V) => void;
  /** the clock for expiries; without it entries never expire */
  now?: () => number;
}

export class Lru<K, V> {
  readonly capacity: number;
  hits = 0;
  misses = 0;
  evictions = 0;
  readonly #map = new Map<K, { value: V; expiresAt: number }>();
  readonly #onEvict: ((key: K, value: V) => void) | undefined;
  readonly #now: () => number;

  constructor(capacity: number, options: LruOptions<K, V> = {}) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`cache bound must be a positive integer, got ${capacity}`);
    this.capacity = capacity;
    this.#onEvict = options.onEvict;
    this.#now = options.now ?? (() => 0);
  }

  get size(): number {
    return this.#map.size;
  }

  /** get returns the live value and marks it recently used; an expired entry is dropped. */
  get(key: K): V | undefined {
    const e = this.#map.get(key);
    if (e === undefined) {
      this.misses++;
      return undefined;
    }
    this.#map.delete(key);
    if (e.expiresAt <= this.#now()) {
      this.misses++;
      this.#onEvict?.(key, e.value);
      return undefined;
    }
    this.hits++;
    this.#map.set(key, e);
    return e.value;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** set stores `value` for `ttlMs` (Infinity = until evicted), evicting the oldest entries over the bound. */
  set(key: K, value: V, ttlMs = Infinity): void {
    this.#map.delete(key);
    this.#map.set(key, { value, expiresAt: this.#now() + ttlMs });
    while (this.#map.size > this.capacity) {
      const [oldest, e] = this.#map.entries().next().value as [K, { value: V }];
      this.#map.delete(oldest);
      this.evictions++;
      this.#onEvict?.(oldest, e.value);
    }
  }

  /** expireAt shortens an entry's life to end at `at` (used when its cgroup goes away). */
  expireAt(key: K, at: number): void {
    const e = this.#map.get(key);
    if (e !== undefined && e.expiresAt > at) e.expiresAt = at;
  }

  delete(key: K): void {
    const e = this.#map.get(key);
    if (e === undefined) return;
    this.#map.delete(key);
    this.#onEvict?.(key, e.value);
  }

  clear(): void {
    for (const [k, e] of this.#map) this.#onEvict?.(k, e.value);
    this.#map.clear();
  }

  /** keys lists the keys, least recently used first (a copy: the cache may change while it is walked). */
  keys(): K[] {
    return [...this.#map.keys()];
  }
}

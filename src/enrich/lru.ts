/**
 * BoundedCache is a least-recently-used map with an optional per-entry expiry. It is the only
 * place enrichment keeps state per cgroup or container, so memory stays bounded by `max`.
 * Time comes from an injected clock (milliseconds).
 */
export class BoundedCache<K, V> {
  readonly #max: number;
  readonly #now: () => number;
  readonly #map = new Map<K, { value: V; expiresAt: number }>();

  constructor(max: number, now: () => number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`cache bound must be a positive integer, got ${max}`);
    this.#max = max;
    this.#now = now;
  }

  /** get returns the live value and marks it recently used; expired entries are dropped. */
  get(key: K): V | undefined {
    const e = this.#map.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= this.#now()) {
      this.#map.delete(key);
      return undefined;
    }
    this.#map.delete(key);
    this.#map.set(key, e);
    return e.value;
  }

  /** set stores `value` for `ttlMs` (Infinity = until evicted), evicting the oldest entries over the bound. */
  set(key: K, value: V, ttlMs = Infinity): void {
    this.#map.delete(key);
    this.#map.set(key, { value, expiresAt: this.#now() + ttlMs });
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as K;
      this.#map.delete(oldest);
    }
  }

  /** expireAt shortens an entry's life to end at `at` (used when its cgroup goes away). */
  expireAt(key: K, at: number): void {
    const e = this.#map.get(key);
    if (e !== undefined && e.expiresAt > at) e.expiresAt = at;
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  keys(): K[] {
    return [...this.#map.keys()];
  }

  get size(): number {
    return this.#map.size;
  }
}

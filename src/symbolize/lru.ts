/**
 * LruCache is a Map-backed least-recently-used cache with a hard entry bound; `onEvict` runs
 * for every entry pushed out (used to close file handles).
 */
export class LruCache<K, V> {
  #map = new Map<K, V>();
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(readonly capacity: number, readonly onEvict?: (key: K, value: V) => void) {
    if (!(capacity >= 1)) throw new RangeError('LruCache capacity must be >= 1');
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: K): V | undefined {
    const v = this.#map.get(key);
    if (v === undefined) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.#map.delete(key);
    this.#map.set(key, v);
    return v;
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  set(key: K, value: V): void {
    if (this.#map.has(key)) this.#map.delete(key);
    this.#map.set(key, value);
    while (this.#map.size > this.capacity) {
      const oldest = this.#map.keys().next().value as K;
      const ov = this.#map.get(oldest)!;
      this.#map.delete(oldest);
      this.evictions++;
      this.onEvict?.(oldest, ov);
    }
  }

  delete(key: K): void {
    const v = this.#map.get(key);
    if (v === undefined) return;
    this.#map.delete(key);
    this.onEvict?.(key, v);
  }

  clear(): void {
    for (const [k, v] of this.#map) this.onEvict?.(k, v);
    this.#map.clear();
  }

  keys(): IterableIterator<K> {
    return this.#map.keys();
  }
}

import { createHash } from 'node:crypto';

/** FunctionCallCount is the exact number of calls of one function in one window. */
export interface FunctionCallCount {
  /** function is the caller's key for the probed function (e.g. node_hash or `library:symbol`). */
  function: string;
  calls: number;
  emitted: number;
  suppressed: number;
}

/**
 * FirstSeenFilter is the function_call volume control: within a window (one chunk) it lets
 * through one record per (pid, function, stack) and counts every call exactly. Memory is
 * bounded by `maxKeys` remembered (pid, function, stack) digests; past that, records are let
 * through (evidence is never dropped for lack of memory) and `overflow` counts them.
 *
 * @example
 *   const f = new FirstSeenFilter();
 *   if (f.offer(pid, nodeHash, stack)) emit(record);
 *   const counts = f.rotateWindow(); // at chunk close, into the chunk predicate
 */
export class FirstSeenFilter {
  #seen = new Set<string>();
  #counts = new Map<string, FunctionCallCount>();
  overflow = 0;

  constructor(readonly maxKeys = 200_000, readonly maxFunctions = 100_000) {}

  /** offer counts one call and returns true when the record should be emitted. */
  offer(pid: number, fn: string, stack: readonly string[]): boolean {
    let c = this.#counts.get(fn);
    if (c === undefined) {
      c = { function: fn, calls: 0, emitted: 0, suppressed: 0 };
      if (this.#counts.size < this.maxFunctions) this.#counts.set(fn, c);
      else this.overflow++;
    }
    c.calls++;
    const key = createHash('sha1').update(`${pid}\0${fn}\0${stack.join(',')}`).digest('base64');
    if (this.#seen.has(key)) {
      c.suppressed++;
      return false;
    }
    if (this.#seen.size < this.maxKeys) this.#seen.add(key);
    else this.overflow++;
    c.emitted++;
    return true;
  }

  /** rotateWindow closes the window: returns the counts (sorted by function) and forgets what was seen. */
  rotateWindow(): FunctionCallCount[] {
    const out = [...this.#counts.values()].sort((a, b) => (a.function < b.function ? -1 : a.function > b.function ? 1 : 0));
    this.#counts.clear();
    this.#seen.clear();
    return out;
  }
}

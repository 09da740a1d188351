/**
 * lastAtOrBefore binary-searches an array sorted by `keyOf` (ascending) for the last element
 * whose key is <= `x`; it returns that index, or -1 when every key is greater.
 */
export function lastAtOrBefore<T>(sorted: readonly T[], keyOf: (t: T) => bigint, x: bigint): number {
  let lo = 0;
  let hi = sorted.length - 1;
  let at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (keyOf(sorted[mid]!) <= x) {
      at = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return at;
}

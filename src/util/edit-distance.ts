/** Strings longer than this are not compared (a hostile name must not cost a quadratic walk). */
export const MAX_EDIT_DISTANCE_INPUT = 256;

/**
 * editDistance is the Levenshtein distance of two strings (insertions, deletions and
 * substitutions of UTF-16 code units), or Infinity when either is longer than
 * MAX_EDIT_DISTANCE_INPUT.
 */
export function editDistance(a: string, b: string): number {
  if (a.length > MAX_EDIT_DISTANCE_INPUT || b.length > MAX_EDIT_DISTANCE_INPUT) return Infinity;
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return row[b.length]!;
}

/** closest returns the candidate nearest to `name` with a distance below `below`, the first of equals. */
export function closest(name: string, candidates: readonly string[], below = 3): string | undefined {
  let best: string | undefined;
  let bestDistance = below;
  for (const c of candidates) {
    const d = editDistance(name, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

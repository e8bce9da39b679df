/**
 * "Did you mean" for a misspelt name (a configuration key, a command-line flag).
 */

/** A likely intended name: the same letters ignoring case and `_`/`-`, or at most two edits away. */
export function closestName(name: string, candidates: readonly string[]): string | undefined {
  const fold = (text: string): string => text.replace(/[_-]/g, '').toLowerCase();
  const exact = candidates.find((candidate) => fold(candidate) === fold(name));
  if (exact) return exact;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of candidates) {
    const distance = editDistance(fold(name), fold(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}

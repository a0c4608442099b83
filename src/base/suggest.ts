// "Did you mean ...?" for mistakes in what people write (scripts, specs, options):
// the nearest candidate by edit distance, offered only when it is a plausible typo.

/**
 * Edit distance for typos: insertions, deletions, substitutions and transpositions
 * of two adjacent characters each cost 1 (optimal string alignment), so `agrv` is
 * one edit from `argv`.
 */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      }
      cur.push(d);
    }
    rows.push(cur);
  }
  return rows[a.length]![b.length]!;
}

/** The closest candidate within a distance that scales with the word's length, if any. */
export function nearest(word: string, candidates: Iterable<string>): string | undefined {
  // One- and two-letter words are too short to have plausible typos.
  const limit = Math.min(2, Math.floor(word.length / 2));
  if (limit === 0) return undefined;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    if (c === word) continue;
    const d = editDistance(word, c);
    if (
      d <= limit &&
      (d < bestDistance || (d === bestDistance && best !== undefined && c < best))
    ) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/**
 * The known key (an option, a field) that `name` most likely meant: compared without
 * case (`Argv` is `argv`), within a distance that scales with the name's length (1 to
 * 3 edits), if any.
 */
export function nearestKey(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name.toLowerCase(), k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  return bestDistance <= limit ? best : undefined;
}

// "Did you mean ...?" for a script's mistakes: the nearest candidate by edit
// distance, offered only when it is close enough to be a plausible typo.

/** Levenshtein distance (insertions, deletions and substitutions each cost 1). */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost));
    }
    prev = cur;
  }
  return prev[b.length]!;
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

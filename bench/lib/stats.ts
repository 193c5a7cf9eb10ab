export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).toSorted((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const ratio = (ours: number, theirs: number) => (theirs > 0 ? ours / theirs : NaN);

/**
 * Runs each contender once per round, alternating the order every round, so drift in the machine's state
 * (thermal, other load) falls on both sides equally.
 */
export async function alternate<K extends string, R>(
  rounds: number,
  contenders: Record<K, () => Promise<R>>,
): Promise<Record<K, R[]>> {
  const names = Object.keys(contenders) as K[];
  const out = Object.fromEntries(names.map((n) => [n, [] as R[]])) as Record<K, R[]>;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 ? names.toReversed() : names;
    for (const name of order) out[name].push(await contenders[name]());
  }
  return out;
}

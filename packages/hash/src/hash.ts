/**
 * A 32-bit string hash: FNV-1a over UTF-16 code units, finished with murmur3's avalanche (fmix32).
 * FNV-1a alone clusters on short keys that differ only at the end (IP addresses, "slot-1".."slot-9");
 * the final mix spreads those across the whole range, which rendezvous scoring depends on.
 */
export function hash32(input: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < input.length; i++) {
    h ^= input.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

import { hash32 } from './hash.ts';

export interface RendezvousNode {
  /** Stable identity: a slot number or an instance URL. Scores depend on it, never on array position. */
  readonly id: string;
  /** Relative share of keys; defaults to 1. Zero or less means the node takes no keys. */
  readonly weight?: number;
}

/**
 * Weighted rendezvous (highest random weight) hashing.
 *
 * Why rendezvous and not modulo or a ring: each key scores every node independently, so removing a node moves
 * only the keys that node owned, adding one takes only the keys it now wins, and no virtual-node tables need
 * rebuilding. A worker restart therefore remaps nobody but that worker's own clients (sticky-session#54 remapped
 * everyone). Cost is O(nodes) per lookup, which is nothing for the tens of workers or instances involved.
 */
export function score(key: string, node: RendezvousNode): number {
  const weight = node.weight ?? 1;
  if (!(weight > 0)) return -Infinity;
  // Map the hash into (0, 1) exclusive so the logarithm is finite and negative.
  const u = (hash32(`${node.id}\u0000${key}`) + 0.5) / 4294967296;
  return -weight / Math.log(u);
}

/** The node owning `key`, or undefined when no node can take keys. Ties break on id for determinism. */
export function pick<T extends RendezvousNode>(key: string, nodes: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const node of nodes) {
    const s = score(key, node);
    if (s > bestScore || (s === bestScore && best !== undefined && node.id < best.id)) {
      best = node;
      bestScore = s;
    }
  }
  return best;
}

/** All nodes ordered by preference for `key`: the owner first, then the fallback if the owner is unavailable. */
export function rank<T extends RendezvousNode>(key: string, nodes: readonly T[]): T[] {
  return nodes
    .map((node) => ({ node, s: score(key, node) }))
    .filter((entry) => entry.s > -Infinity)
    .sort((a, b) => b.s - a.s || (a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0))
    .map((entry) => entry.node);
}

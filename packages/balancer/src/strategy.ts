import { pick } from '@cluster-session/hash';
import type { Strategy } from './options.ts';
import type { Upstream } from './upstream.ts';

/**
 * Chooses an instance for a request. `tried` holds instances that already failed this request (retries go
 * elsewhere); it is usually empty, and the common path allocates nothing.
 */
export class Selector {
  readonly strategy: Strategy;
  private readonly list: Upstream[];
  private leastOffset = 0;
  /** Set per choose(): whether instances ejected for their answers count as available (see Upstream.available). */
  private lenient = false;

  constructor(strategy: Strategy, list: Upstream[]) {
    this.strategy = strategy;
    this.list = list;
  }

  /** `key` is the client address (ip-hash) ; `sticky` the instance id from the cookie (cookie strategy). */
  choose(now: number, key: string, sticky: string, tried: Upstream[] | null, lenient = false): Upstream | undefined {
    this.lenient = lenient;
    switch (this.strategy) {
      case 'least-conn':
        return this.leastConn(now, tried);
      case 'ip-hash':
        return this.hash(now, key, tried);
      case 'cookie':
        if (sticky) {
          for (const u of this.list) {
            if (u.id === sticky && u.available(now, this.lenient) && !(tried && tried.includes(u))) return u;
          }
        }
        return this.roundRobin(now, tried);
      default:
        return this.roundRobin(now, tried);
    }
  }

  /** nginx's smooth weighted round robin: weights 5,1,1 give a a b a c a a, never a a a a a b c. */
  private roundRobin(now: number, tried: Upstream[] | null): Upstream | undefined {
    let best: Upstream | undefined;
    let total = 0;
    for (const u of this.list) {
      if (!u.available(now, this.lenient) || (tried && tried.includes(u))) continue;
      u.current += u.weight;
      total += u.weight;
      if (!best || u.current > best.current) best = u;
    }
    if (best) best.current -= total;
    return best;
  }

  /** Fewest in-flight requests per unit of weight; ties rotate so equal instances share the load. */
  private leastConn(now: number, tried: Upstream[] | null): Upstream | undefined {
    const n = this.list.length;
    let best: Upstream | undefined;
    const start = this.leastOffset++ % n;
    for (let k = 0; k < n; k++) {
      const u = this.list[(start + k) % n]!;
      if (!u.available(now, this.lenient) || (tried && tried.includes(u))) continue;
      if (!best || u.active * best.weight < best.active * u.weight) best = u;
    }
    return best;
  }

  /** Rendezvous hashing: losing an instance moves only its own clients, and they come back when it returns. */
  private hash(now: number, key: string, tried: Upstream[] | null): Upstream | undefined {
    const candidates = this.list.filter((u) => u.available(now, this.lenient) && !(tried && tried.includes(u)));
    return pick(key, candidates);
  }
}

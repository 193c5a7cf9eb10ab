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
  /** Requests in flight an instance may have (limits.perUpstream); 0 = no limit. */
  private readonly cap: number;

  constructor(strategy: Strategy, list: Upstream[], cap = 0) {
    this.strategy = strategy;
    this.list = list;
    this.cap = cap;
  }

  private usable(u: Upstream, now: number, tried: Upstream[] | null): boolean {
    return u.available(now, this.lenient) && (this.cap === 0 || u.active < this.cap) && !(tried !== null && tried.includes(u));
  }

  /** True when some instance could take requests but every such one is at limits.perUpstream. */
  allBusy(now: number): boolean {
    return this.cap > 0 && this.list.some((u) => u.available(now, true) && u.active >= this.cap);
  }

  /** Whether some instance not in `tried` could take a request now (even leniently); chooses nothing. */
  hasOther(now: number, tried: Upstream[]): boolean {
    return this.list.some((u) => u.available(now, true) && (this.cap === 0 || u.active < this.cap) && !tried.includes(u));
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
            if (u.id === sticky && this.usable(u, now, tried)) return u;
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
    let bestCurrent = 0;
    let total = 0;
    for (const u of this.list) {
      if (!this.usable(u, now, tried)) continue;
      const c = u.raiseCurrent();
      total += u.weight;
      if (!best || c > bestCurrent) {
        best = u;
        bestCurrent = c;
      }
    }
    best?.lowerCurrent(total);
    return best;
  }

  /** Fewest in-flight requests per unit of weight; ties rotate so equal instances share the load. */
  private leastConn(now: number, tried: Upstream[] | null): Upstream | undefined {
    const n = this.list.length;
    let best: Upstream | undefined;
    const start = this.leastOffset++ % n;
    for (let k = 0; k < n; k++) {
      const u = this.list[(start + k) % n]!;
      if (!this.usable(u, now, tried)) continue;
      if (!best || u.active * best.weight < best.active * u.weight) best = u;
    }
    return best;
  }

  /** Rendezvous hashing: losing an instance moves only its own clients, and they come back when it returns. */
  private hash(now: number, key: string, tried: Upstream[] | null): Upstream | undefined {
    const candidates = this.list.filter((u) => this.usable(u, now, tried));
    return pick(key, candidates);
  }
}

/**
 * Requests per client address as a token bucket (nginx limit_req, HAProxy http_req_rate): each address holds up
 * to `burst` tokens, refilled at `perMs`; a request takes one or is answered 429 with the seconds until one is
 * back. In-process and synchronous on purpose: it runs once per request on the I/O path, where a promise per
 * request (rate-limiter-flexible's API) costs more than the whole check (measured: see the balancer README).
 * Memory is bounded: a bucket that has filled up again is the same as no bucket and is forgotten by sweep(), and
 * past `maxClients` addresses the oldest buckets go first.
 */
/** What the I/O path asks of a rate limiter (this one, or shared-limits.ts's between worker threads). */
export interface Limiter {
  /** Takes a token for `key` at `now` (ms): 0 when the request may go on, else the seconds to wait (at least 1). */
  take(key: string, now: number): number;
  /** Forgets what it need not keep (called from the timeout sweep). */
  sweep(now: number): void;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter implements Limiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private readonly burst: number;
  private readonly max: number;
  private lastSweep = 0;

  constructor(limit: { perMs: number; burst: number; maxClients: number }) {
    this.perMs = limit.perMs;
    this.burst = limit.burst;
    this.max = limit.maxClients;
  }

  /** Takes a token for `key` at `now` (ms): 0 when the request may go on, else the seconds to wait (at least 1). */
  take(key: string, now: number): number {
    const b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.max) this.evict(now);
      this.buckets.set(key, { tokens: this.burst - 1, at: now });
      return 0;
    }
    const tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (tokens >= 1) {
      b.tokens = tokens - 1;
      return 0;
    }
    b.tokens = tokens;
    return Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Forgets the buckets that are full again (called from the balancer's sweep, at most once a second). */
  sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [key, b] of this.buckets) if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key);
  }

  private evict(now: number): void {
    this.lastSweep = 0;
    this.sweep(now);
    if (this.buckets.size < this.max) return;
    // Still full of active addresses (a flood of distinct ones): drop the oldest tenth, which at worst lets those
    // addresses start again with a full bucket — never unbounded memory.
    let drop = Math.max(1, Math.floor(this.max / 10));
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (--drop === 0) break;
    }
  }
}

import type { UpstreamConfig } from './options.ts';

/** What the balancer knows about one instance: its state for routing, its idle sockets and its counters. */
export class Upstream {
  readonly id: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** Active health check verdict (true until checks say otherwise, as in nginx and HAProxy). */
  healthy = true;
  checksPassed = 0;
  checksFailed = 0;
  lastCheck: { at: string; ok: boolean; detail: string } | undefined;
  /** Passive ejection: no new requests before this time (ms since epoch). */
  downUntil = 0;
  /** Recent failure times for the passive window. */
  failures: number[] = [];
  draining = false;
  removed = false;
  /** Smooth weighted round-robin state (nginx's current_weight). */
  current = 0;
  /** Requests (and WebSocket tunnels) in flight. */
  active = 0;
  requests = 0;
  errors = 0;
  retries = 0;
  readonly responses = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  lastError = '';
  /** Idle keep-alive sockets, most recently used last (LIFO keeps a few sockets hot instead of all lukewarm). */
  readonly idle: Array<{ destroy(): void }> = [];
  private waiters: Array<() => void> = [];

  constructor(config: UpstreamConfig) {
    this.id = config.id;
    this.url = config.url;
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
  }

  /**
   * May take new requests. `lenient`: also when passively ejected — used only when no instance is available
   * otherwise (nginx tries failed peers when all have failed; Envoy's panic threshold). Passive ejection is a
   * guess from live traffic; when it has taken out everything, trying beats a certain 503, and the first good
   * answer ends the ejection. Instances that active checks mark down stay out.
   */
  available(now: number, lenient = false): boolean {
    return this.healthy && !this.draining && !this.removed && (lenient || now >= this.downUntil);
  }

  state(now: number): 'up' | 'down' | 'draining' | 'removed' {
    if (this.removed) return 'removed';
    if (this.draining) return 'draining';
    return this.healthy && now >= this.downUntil ? 'up' : 'down';
  }

  countStatus(status: number): void {
    const r = this.responses;
    if (status < 200) r['1xx']++;
    else if (status < 300) r['2xx']++;
    else if (status < 400) r['3xx']++;
    else if (status < 500) r['4xx']++;
    else r['5xx']++;
  }

  /** Called when a request or tunnel ends; resolves drain() waiters once nothing is in flight. */
  release(): void {
    this.active--;
    if (this.active === 0 && this.waiters.length) this.flushWaiters();
  }

  /** Resolves when nothing is in flight; idle sockets are closed as they are not needed any more. */
  idleNow(): Promise<void> {
    this.closeIdle();
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  closeIdle(): void {
    for (const socket of this.idle.splice(0)) socket.destroy();
  }

  private flushWaiters(): void {
    this.closeIdle();
    for (const w of this.waiters.splice(0)) w();
  }

  /** Passive check: `failures` failures within `window` ms eject the instance for `cooldown` ms. */
  noteFailure(now: number, reason: string, passive: false | { failures: number; window: number; cooldown: number }): boolean {
    this.errors++;
    this.lastError = reason;
    if (!passive) return false;
    const since = now - passive.window;
    let keep = 0;
    for (const t of this.failures) if (t >= since) this.failures[keep++] = t;
    this.failures.length = keep;
    this.failures.push(now);
    if (this.failures.length >= passive.failures && now >= this.downUntil) {
      this.downUntil = now + passive.cooldown;
      this.failures.length = 0;
      this.closeIdle();
      return true;
    }
    return false;
  }

  snapshot(now: number) {
    return {
      id: this.id,
      url: this.url,
      weight: this.weight,
      state: this.state(now),
      healthy: this.healthy,
      ejectedForMs: Math.max(0, this.downUntil - now),
      active: this.active,
      idleSockets: this.idle.length,
      requests: this.requests,
      errors: this.errors,
      retries: this.retries,
      responses: { ...this.responses },
      lastError: this.lastError,
      lastCheck: this.lastCheck,
    };
  }
}

export type UpstreamStatus = ReturnType<Upstream['snapshot']>;

import { Tally } from './metrics.ts';
import type { UpstreamConfig } from './options.ts';

/** An idle keep-alive connection as the pool sees it. */
interface IdleConn {
  destroy(): void;
}

const PEAK_WINDOW_MS = 5000;

/** What the balancer knows about one instance: its state for routing, its idle sockets and its counters. */
export class Upstream {
  readonly id: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Changed in place by reconfigure() (the same instance, a new weight): its counters and state stay. */
  weight: number;
  /** The instance's cluster status base URL (`--metrics`), when given: the status page shows its workers. */
  status: string | undefined;
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
  /** Smooth weighted round-robin state (nginx's current_weight), kept by the Selector through the two methods below. */
  private current = 0;
  /** Requests (and WebSocket tunnels) in flight. */
  active = 0;
  /** Most requests in flight at once in the current and the previous window (see park()). */
  private peak = 0;
  private peakPrev = 0;
  private peakSince = 0;
  requests = 0;
  errors = 0;
  retries = 0;
  readonly responses = { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  lastError = '';
  /** Answers by status code and their durations, for /metrics (recorded only while metrics are served). */
  readonly tally = new Tally();
  /** Idle keep-alive sockets, most recently used last (LIFO keeps a few sockets hot instead of all lukewarm). */
  private readonly idle: IdleConn[] = [];
  private waiters: Array<() => void> = [];

  constructor(config: UpstreamConfig) {
    this.id = config.id;
    this.url = config.url;
    this.host = config.host;
    this.port = config.port;
    this.weight = config.weight;
    this.status = config.status;
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

  /**
   * An active health check's result: `fall` failures in a row mark the instance down (its idle connections go),
   * `rise` passes bring it back. Returns the change, if any.
   */
  recordCheck(ok: boolean, detail: string, rise: number, fall: number): 'up' | 'down' | '' {
    this.lastCheck = { at: new Date().toISOString(), ok, detail };
    if (this.removed) return '';
    if (ok) {
      this.checksFailed = 0;
      this.checksPassed++;
      if (this.healthy || this.checksPassed < rise) return '';
      this.healthy = true;
      return 'up';
    }
    this.checksPassed = 0;
    this.checksFailed++;
    this.lastError = `health check: ${detail}`;
    if (!this.healthy || this.checksFailed < fall) return '';
    this.healthy = false;
    this.closeIdle();
    return 'down';
  }

  /** The main thread's health verdict, in a worker thread of a balancer with `workers` (no checks run there). */
  setHealthy(healthy: boolean): void {
    if (this.healthy === healthy) return;
    this.healthy = healthy;
    if (!healthy) this.closeIdle();
  }

  /** Round robin: every usable instance gains its weight per pick... */
  raiseCurrent(): number {
    return (this.current += this.weight);
  }

  /** ...and the one picked gives back the total, so weights 5:1:1 interleave instead of bunching. */
  lowerCurrent(total: number): void {
    this.current -= total;
  }

  /** drain(): no new requests; add() of the same instance undoes it. */
  setDraining(draining: boolean): void {
    this.draining = draining;
  }

  /** remove(): drained and forgotten; in-flight requests still finish. */
  retire(): void {
    this.draining = true;
    this.removed = true;
  }

  /** A request (or tunnel) starts on this instance; `retry`: it is another attempt of one that failed elsewhere. */
  begin(retry: boolean): void {
    if (++this.active > this.peak) this.peak = this.active;
    this.requests++;
    if (retry) this.retries++;
  }

  /** A good answer from an instance tried while passively ejected: it is back at once. */
  recovered(now: number): void {
    if (this.downUntil > now) this.downUntil = 0;
  }

  /** A pooled connection went stale under a request: noted, not counted as the instance's failure. */
  noteStale(reason: string): void {
    this.lastError = `stale pooled connection: ${reason}`;
  }

  /** The most recently parked idle connection, if any. */
  takeIdle(): IdleConn | undefined {
    return this.idle.pop();
  }

  /**
   * Keeps an idle connection for reuse; false when it was not kept. Up to `limit` are kept, and beyond that as many
   * as the recent peak of requests in flight leaves unused: that many will be wanted again. With a fixed cap, 5,000
   * clients over 256 kept connections closed and reopened most of them on every request. 0 keeps none.
   */
  park(conn: IdleConn, limit: number): boolean {
    if (limit === 0) return false;
    // The peak of requests in flight over the last 5-10 s: what the clients' load needs open, counting the
    // moments between one client's requests when fewer are in flight.
    const now = Date.now();
    if (now - this.peakSince >= PEAK_WINDOW_MS) {
      this.peakPrev = now - this.peakSince >= 2 * PEAK_WINDOW_MS ? this.active : this.peak;
      this.peak = this.active;
      this.peakSince = now;
    }
    if (this.idle.length >= Math.max(limit, Math.max(this.peak, this.peakPrev) - this.active)) return false;
    this.idle.push(conn);
    return true;
  }

  /** An idle connection closed (or was taken): it is no longer offered. */
  forget(conn: IdleConn): void {
    const at = this.idle.lastIndexOf(conn);
    if (at !== -1) this.idle.splice(at, 1);
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
      /** The instance's cluster status base URL, when configured. */
      statusUrl: this.status,
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

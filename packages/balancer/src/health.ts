import http from 'node:http';
import type { BalancerConfig } from './options.ts';
import type { Upstream } from './upstream.ts';

/**
 * Active checks: `GET health.path` on every instance each `interval`; `fall` failures in a row take it out,
 * `rise` passes in a row bring it back (HAProxy's model).
 * A passive ejection still runs its cooldown: an instance can pass /healthz and fail real requests.
 */
export class HealthChecker {
  private readonly config: Exclude<BalancerConfig['health'], false>;
  private readonly list: Upstream[];
  private readonly log: (message: string) => void;
  /** Told each verdict change (the worker threads of a balancer with `workers` take it from here). */
  private readonly onChange: ((u: Upstream, healthy: boolean) => void) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Upstream>();
  private readonly requests = new Set<http.ClientRequest>();

  constructor(
    config: Exclude<BalancerConfig['health'], false>,
    list: Upstream[],
    log: (message: string) => void,
    onChange?: (u: Upstream, healthy: boolean) => void,
  ) {
    this.config = config;
    this.list = list;
    this.log = log;
    this.onChange = onChange;
  }

  start(): void {
    this.timer = setInterval(() => this.checkAll(), this.config.interval);
    this.timer.unref();
    this.checkAll();
  }

  stop(): void {
    clearInterval(this.timer);
    for (const req of this.requests) req.destroy();
  }

  checkAll(): void {
    for (const u of this.list) if (!u.removed && !this.inFlight.has(u)) this.check(u);
  }

  private check(u: Upstream): void {
    this.inFlight.add(u);
    let settled = false;
    const finish = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      this.inFlight.delete(u);
      this.requests.delete(req);
      this.record(u, ok, detail);
    };
    const req = http.request(
      {
        host: u.host,
        port: u.port,
        path: this.config.path,
        method: 'GET',
        agent: false,
        headers: { 'user-agent': 'cluster-session-balancer/health', connection: 'close' },
      },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        finish(status >= 200 && status < 400, `HTTP ${status}`);
      },
    );
    this.requests.add(req);
    req.setTimeout(this.config.timeout, () => {
      req.destroy();
      finish(false, `no answer within ${this.config.timeout} ms`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => finish(false, err.code ?? err.message));
    req.end();
  }

  private record(u: Upstream, ok: boolean, detail: string): void {
    const change = u.recordCheck(ok, detail, this.config.rise, this.config.fall);
    if (change === 'up') this.log(`instance ${u.id} (${u.url}) is up: ${this.config.rise} checks passed`);
    else if (change === 'down') this.log(`instance ${u.id} (${u.url}) is down: ${this.config.fall} checks failed (${detail})`);
    if (change !== '') this.onChange?.(u, change === 'up');
  }
}

import { AccessLog } from './access-log.ts';
import type { ProxyContext } from './context.ts';
import { BalancerConfigError } from './errors.ts';
import type { BalancerConfig } from './options.ts';
import { Selector } from './strategy.ts';
import { Upstream } from './upstream.ts';

/** What a reconfigure() changed, for the log line and the caller. */
export interface ReconfigureReport {
  added: string[];
  /** Instances taken out: they drain (in-flight requests finish) before they are forgotten. */
  removed: string[];
  /** Instances kept whose weight or status URL changed. */
  changed: string[];
  /** Top-level options whose value changed (strategy, health, limits, timeouts, accessLog...). */
  options: string[];
}

/** What reconfigure() acts on: the balancer's live state, owned by balancer.ts. */
interface Live {
  ctx: ProxyContext;
  /** The one list the selector, the health checker and the metrics read: changed in place, never replaced. */
  upstreams: Upstream[];
  /** Stops the old health checker and starts one for `health` (false: none). */
  restartHealth(health: BalancerConfig['health']): void;
  setMaxConnections(n: number): void;
  /** The port the listener is bound to (the configured one, or what port 0 got). */
  boundPort: number;
  /** Drains an instance taken out of the list, then closes its idle sockets (remove() of the admin API). */
  retire(u: Upstream): void;
  log(message: string): void;
  /** false in a proxy that takes no traffic (workers mode's main thread): it writes no access log. */
  openAccessLog: boolean;
}

/**
 * Options a running balancer cannot take without a restart: its sockets are bound (plain or TLS, the redirect
 * listener), its registry made, its threads started. The certificate files themselves are re-read on SIGHUP (reloadTls).
 */
const FIXED = ['host', 'port', 'admin', 'metrics', 'tls', 'workers'] as const;
const json = (x: unknown) => JSON.stringify(x, (_k, v: unknown) => (v instanceof Set ? [...v] : v));
const same = (a: unknown, b: unknown) => json(a) === json(b);

/**
 * Applies a new, already validated configuration to a running balancer without closing a connection: instances
 * added take traffic at once, removed ones drain as remove() does, kept ones keep their state, counters and idle
 * sockets; the strategy, health checks, limits, timeouts and the access log follow the new configuration. A
 * change of listen, admin or metrics is refused as a whole (nothing applied): those need a restart.
 */
export function reconfigure(live: Live, next: BalancerConfig): ReconfigureReport {
  const { ctx } = live;
  const prev = ctx.config;
  for (const key of FIXED) {
    // `listen: 0` took some port: naming that port now is no change.
    if (key === 'port' && next.port === live.boundPort) continue;
    if (!same(prev[key], next[key])) {
      const name = key === 'host' || key === 'port' ? 'listen' : key;
      throw new BalancerConfigError(
        `reconfigure: option ${name} cannot change while the balancer runs (${JSON.stringify(prev[key])} -> ${JSON.stringify(next[key])}); restart the balancer to change it, or keep the running value`,
      );
    }
  }
  const report: ReconfigureReport = { added: [], removed: [], changed: [], options: [] };
  const byId = new Map(live.upstreams.map((u) => [u.id, u]));
  const list: Upstream[] = [];
  for (const cfg of next.upstreams) {
    const old = byId.get(cfg.id);
    if (old && old.url === cfg.url && !old.removed) {
      if (old.weight !== cfg.weight || old.status !== cfg.status) report.changed.push(cfg.id);
      old.weight = cfg.weight;
      old.status = cfg.status;
      byId.delete(cfg.id);
      list.push(old);
    } else {
      list.push(new Upstream(cfg));
      report.added.push(cfg.id);
    }
  }
  for (const key of Object.keys(next) as Array<keyof BalancerConfig>) {
    if (key !== 'upstreams' && key !== 'log' && key !== 'port' && !same(prev[key], next[key])) report.options.push(key);
  }
  // From here nothing throws: the whole configuration applies, or (above) none of it.
  const gone = [...byId.values()];
  live.upstreams.splice(0, live.upstreams.length, ...list);
  for (const u of gone) {
    report.removed.push(u.id);
    live.retire(u);
  }
  ctx.config = next;
  ctx.selector = new Selector(next.strategy, live.upstreams, next.limits.perUpstream);
  if (!same(prev.health, next.health)) live.restartHealth(next.health);
  live.setMaxConnections(next.limits.connections);
  // A new rate starts every client with a full bucket (as a restart would).
  if (!same(prev.rateLimit, next.rateLimit)) ctx.limiter = next.rateLimit ? ctx.newLimiter(next.rateLimit) : undefined;
  if (!same(prev.accessLog, next.accessLog)) {
    const old = ctx.access;
    ctx.access = next.accessLog && live.openAccessLog ? new AccessLog(next.accessLog.path, next.accessLog.format, live.log) : null;
    void old?.close();
  }
  return report;
}

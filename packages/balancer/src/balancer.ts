import type http from 'node:http';
import { serverUrl } from './address.ts';
import { createAdminServer } from './admin.ts';
import { BalancerConfigError } from './errors.ts';
import { HealthChecker } from './health.ts';
import { balancerRegistry } from './metrics.ts';
import { balancerConfig, upstreamConfig, type BalancerOptions, type UpstreamInput } from './options.ts';
import { listen, startProxy, type BalancerStatus } from './proxy.ts';
import { createRedirectServer } from './redirect.ts';
import type { ReconfigureReport } from './reconfigure.ts';
import { History, InstanceCache, SAMPLE_MS } from './stack.ts';
import { MergedReports, type ThreadReport } from './thread-report.ts';
import type { Upstream, UpstreamStatus } from './upstream.ts';
import { WorkerGroup } from './workers.ts';

export type { BalancerStatus };

export interface Balancer {
  /** `http://host:port` (`https://` with tls) the balancer listens on. */
  readonly url: string;
  /** Proxy threads (the `workers` option; 1: the calling thread proxies). */
  readonly workers: number;
  /** The plain-HTTP redirect listener (`tls.redirect`), when given. */
  readonly redirectUrl: string | undefined;
  /** The status page, when `admin` was given. */
  readonly adminUrl: string | undefined;
  /** Adds an instance at runtime; it takes traffic at once (and is checked like the others). */
  add(upstream: string | UpstreamInput): UpstreamStatus;
  /** Stops sending new requests to an instance; resolves when its in-flight requests have finished. */
  drain(id: string): Promise<void>;
  /** Drains an instance, then forgets it. */
  remove(id: string): Promise<void>;
  /**
   * Counters, instance states, connections. With `workers`, as of the threads' last reports (at most 2 s old);
   * the admin server's `/status.json` and `/metrics` ask the threads first.
   */
  status(): BalancerStatus;
  /**
   * Re-reads the TLS certificate and key files (SIGHUP in the CLI). New handshakes use them; open connections are
   * untouched. A file that does not load keeps the previous certificates and logs one line; resolves whether the
   * new ones were taken (false too when TLS is off).
   */
  reloadTls(): boolean;
  /**
   * Applies new options (validated as createBalancer's) without dropping a connection: added instances take
   * traffic, removed ones drain; strategy, health, limits, timeouts, retries, the access log follow. Rejects with
   * BalancerConfigError, applying nothing, when the options are invalid or change listen, admin, metrics or tls
   * (the certificate files are re-read by reloadTls).
   */
  reconfigure(options: CreateBalancerOptions): ReconfigureReport;
  /** Opens the access log's file again (after logrotate moved it; SIGUSR1 in `cluster-session balance`). */
  reopenLogs(): void;
  /** Stops accepting, lets in-flight requests finish (up to `graceMs`), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

/** createBalancer()'s options (`log` included: it receives state changes, never secrets). */
export type CreateBalancerOptions = BalancerOptions;
export type { ReconfigureReport };

/** Starts a balancer; resolves once it listens (rejects with ListenError or BalancerConfigError). */
export async function createBalancer(options: CreateBalancerOptions): Promise<Balancer> {
  const config = balancerConfig(options);
  const log = config.log ?? (() => {});
  // With `workers`, the proxy runs in N threads and this one keeps a proxy that takes no traffic: the instance list
  // the health checks, the admin server and the options' validation work on (workers.ts).
  const threaded = config.workers > 1;
  let group: WorkerGroup | undefined;
  const proxy = await startProxy(config, threaded ? { listen: false, boundPort: () => group!.port } : { listen: true });
  let current: CreateBalancerOptions = options;
  const merged = new MergedReports();
  const unhealthy = () => proxy.upstreams.filter((u) => !u.healthy).map((u) => u.id);
  if (threaded) {
    const { log: _log, ...cloneable } = options;
    current = cloneable;
    group = await WorkerGroup.start(config.workers, config.limits.connections, config.rateLimit ? config.rateLimit.maxClients : undefined, {
      options: () => ({ ...current, upstreams: proxy.upstreams.filter((u) => !u.removed).map((u) => ({ url: u.url, id: u.id, weight: u.weight, ...(u.status ? { status: u.status } : {}) })) }),
      unhealthy,
      draining: () => proxy.upstreams.filter((u) => u.draining).map((u) => u.id),
      retire: (r) => merged.retire(r),
      log,
    });
  }
  const url = group ? group.url : proxy.url;
  const port = group ? group.port : proxy.port;
  const g = group;
  /** The threads' last reports (asked every 2 s, and by the admin server before each answer). */
  let reports: ThreadReport[] = [];
  const refresh = g ? async () => void (reports = await g.reports()) : undefined;
  // The main thread's view (instance list, health, drains) as it is now, with the threads' counters summed.
  const status = (): BalancerStatus => (g ? merged.merge(proxy.status(), url, reports) : proxy.status());

  const onHealth = g ? (u: Upstream, healthy: boolean) => g.tell({ op: 'health', id: u.id, healthy }) : undefined;
  let checker = config.health ? new HealthChecker(config.health, proxy.upstreams, log, onHealth) : undefined;
  checker?.start();

  const closeAll = async () => {
    checker?.stop();
    await Promise.all([proxy.close(0), g?.close(0)]);
  };

  let sampler: NodeJS.Timeout | undefined;
  let redirect: http.Server | undefined;
  let redirectUrl: string | undefined;
  if (proxy.certs && config.tls && config.tls.redirect) {
    const r = config.tls.redirect;
    redirect = createRedirectServer(proxy.certs, () => port);
    try {
      await listen(redirect, r.port, r.host, 'tls.redirect');
    } catch (err) {
      await closeAll();
      throw err;
    }
    redirectUrl = serverUrl(redirect);
  }

  let admin: http.Server | undefined;
  let adminUrl: string | undefined;
  let history: History | undefined;
  if (config.admin) {
    // The metrics and the status page read what the I/O path counts; nothing here runs per request. With threads,
    // they read the sum of the threads' reports (refreshed before each answer, and every 2 s for the charts).
    const source = g
      ? {
          upstreams: () => status().upstreams.map((u) => ({ id: u.id, up: u.state === 'up', retries: u.retries, tally: merged.tallies.get(u.id)! })),
          own: merged.own,
          connections: () => merged.connections,
        }
      : {
          upstreams: () => proxy.upstreams.map((u) => ({ id: u.id, up: u.state(proxy.ctx.now) === 'up', retries: u.retries, tally: u.tally })),
          own: proxy.ctx.own,
          connections: () => proxy.ctx.clients.size,
        };
    const tallies = () => [...source.upstreams().map((u) => ({ id: u.id, tally: u.tally })), { id: '', tally: source.own }];
    history = new History(tallies);
    const instances = new InstanceCache();
    const h = history;
    admin = createAdminServer(status, {
      refresh,
      metrics: config.metrics ? balancerRegistry(source) : undefined,
      stack: async () => ({
        balancer: status(),
        metrics: config.metrics,
        history: h.points,
        instances: await instances.get(proxy.upstreams.map((u) => ({ id: u.id, status: u.status }))),
      }),
    });
    try {
      await listen(admin, config.admin.port, config.admin.host, 'admin');
    } catch (err) {
      redirect?.close();
      await closeAll();
      throw err;
    }
    adminUrl = serverUrl(admin);
    if (config.metrics) history.start();
  }
  if (refresh) {
    // status() reads the last reports: at most 2 s old (the admin server's answers ask the threads first).
    sampler = setInterval(() => void refresh(), SAMPLE_MS);
    sampler.unref();
    await refresh();
  }

  const inFlight = (id: string) => (g ? (status().upstreams.find((u) => u.id === id)?.active ?? 0) : proxy.find(id).active);

  return {
    url,
    workers: config.workers,
    redirectUrl,
    adminUrl,
    reloadTls() {
      const taken = proxy.reloadTls();
      g?.tell({ op: 'reloadTls' });
      return taken;
    },
    add(input) {
      const cfg = upstreamConfig(input, 'add()');
      const undrain = proxy.upstreams.some((u) => u.id === cfg.id && u.draining && u.url === cfg.url);
      const snap = proxy.add(cfg);
      g?.tell({ op: 'add', cfg });
      if (!undrain) log(`instance ${cfg.id} (${cfg.url}) added`);
      return snap;
    },
    async drain(id) {
      const u = proxy.find(id);
      log(`instance ${u.id} (${u.url}) draining (${inFlight(id)} in flight)`);
      await Promise.all([proxy.drain(id), g?.all({ op: 'drain', id })]);
    },
    async remove(id) {
      const u = proxy.find(id);
      await Promise.all([proxy.remove(id), g?.all({ op: 'remove', id })]);
      log(`instance ${u.id} (${u.url}) removed`);
    },
    status,
    reconfigure(options) {
      if (proxy.ctx.closing) throw new BalancerConfigError('reconfigure: the balancer is closing');
      const before = proxy.ctx.config.rateLimit;
      const report = proxy.reconfigure(balancerConfig(options, 'reconfigure'), (health) => {
        checker?.stop();
        checker = health ? new HealthChecker(health, proxy.upstreams, log, onHealth) : undefined;
        checker?.start();
      });
      if (g) {
        const { log: _log, ...cloneable } = options;
        current = cloneable;
        const rate = proxy.ctx.config.rateLimit;
        void g.reconfigure(JSON.stringify(before) !== JSON.stringify(rate), rate ? rate.maxClients : undefined).catch((err: Error) => log(`reconfigure: a worker thread refused it: ${err.message}`));
      }
      const parts = [
        report.added.length ? `added ${report.added.join(', ')}` : '',
        report.removed.length ? `removing ${report.removed.join(', ')} (draining)` : '',
        report.changed.length ? `changed ${report.changed.join(', ')}` : '',
        report.options.length ? `options ${report.options.join(', ')}` : '',
      ].filter(Boolean);
      log(`reconfigured: ${parts.join('; ') || 'nothing changed'}`);
      return report;
    },
    reopenLogs() {
      if (g) {
        if (proxy.ctx.config.accessLog) {
          g.tell({ op: 'reopenLogs' });
          log(`access log ${proxy.ctx.config.accessLog.path} reopened`);
        }
        return;
      }
      proxy.reopenLogs();
    },
    async close(graceMs = 5_000) {
      if (proxy.ctx.closing) return;
      checker?.stop();
      history?.stop();
      clearInterval(sampler);
      admin?.close();
      admin?.closeAllConnections();
      redirect?.close();
      redirect?.closeAllConnections();
      await Promise.all([proxy.close(graceMs), g?.close(graceMs)]);
    },
  };
}


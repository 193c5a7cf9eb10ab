import { once } from 'node:events';
import type http from 'node:http';
import net from 'node:net';
import type tls from 'node:tls';
import { AccessLog } from './access-log.ts';
import { createAdminServer } from './admin.ts';
import { ClientConn } from './client.ts';
import type { ProxyContext, Timed } from './context.ts';
import { BalancerConfigError, ListenError, UnknownUpstreamError } from './errors.ts';
import { HealthChecker } from './health.ts';
import { balancerRegistry, Tally } from './metrics.ts';
import { balancerConfig, upstreamConfig, type BalancerOptions, type Strategy, type UpstreamInput } from './options.ts';
import { RateLimiter } from './rate-limit.ts';
import { createRedirectServer } from './redirect.ts';
import { reconfigure, type ReconfigureReport } from './reconfigure.ts';
import { History, InstanceCache } from './stack.ts';
import { Certificates, createTlsServer } from './tls.ts';
import { Selector } from './strategy.ts';
import { Upstream, type UpstreamStatus } from './upstream.ts';

export interface BalancerStatus {
  url: string;
  strategy: Strategy;
  totals: { connections: number; openConnections: number; requests: number; rejected: number };
  upstreams: UpstreamStatus[];
}

export interface Balancer {
  /** `http://host:port` (`https://` with tls) the balancer listens on. */
  readonly url: string;
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
  const upstreams = config.upstreams.map((u) => new Upstream(u));
  const selector = new Selector(config.strategy, upstreams, config.limits.perUpstream);
  const clients = new Set<Timed>();
  const origins = new Set<Timed>();
  const ctx: ProxyContext = {
    config,
    selector,
    access: config.accessLog ? new AccessLog(config.accessLog.path, config.accessLog.format, log) : null,
    now: Date.now(),
    closing: false,
    clients,
    origins,
    totals: { connections: 0, requests: 0, rejected: 0 },
    perClient: new Map(),
    metrics: config.metrics,
    own: new Tally(),
    limiter: config.rateLimit ? new RateLimiter(config.rateLimit) : undefined,
    addHeaders: config.tls && config.tls.hsts > 0 ? `Strict-Transport-Security: max-age=${config.tls.hsts}\r\n` : '',
    log,
    retryAfter() {
      // The soonest moment something may change: an ejection ending or the next health check.
      const { health } = ctx.config;
      let ms = health ? health.interval : Infinity;
      for (const u of upstreams) if (u.downUntil > ctx.now) ms = Math.min(ms, u.downUntil - ctx.now);
      return Number.isFinite(ms) ? Math.max(1, Math.ceil(ms / 1000)) : 1;
    },
  };

  // One sweep for every timeout instead of a timer per socket per request.
  const t = config.timeouts;
  const tick = Math.max(10, Math.min(100, Math.floor(Math.min(t.clientHeaders, t.keepAlive, t.connect, t.response, t.upstreamIdle, t.tunnel) / 4)));
  const sweep = setInterval(() => {
    const now = (ctx.now = Date.now());
    for (const c of clients) if (c.deadline !== 0 && now >= c.deadline) c.onTimeout();
    for (const o of origins) if (o.deadline !== 0 && now >= o.deadline) o.onTimeout();
    ctx.limiter?.sweep(now);
  }, tick);
  sweep.unref();

  // Read (and checked) before anything listens: a bad file is a startup error naming the option and the path.
  const certs = config.tls ? new Certificates(config.tls.certs, log) : undefined;
  const accept = (socket: net.Socket) => {
    if (ctx.closing) {
      socket.destroy();
      return;
    }
    new ClientConn(ctx, socket);
  };
  const server: net.Server = certs
    ? createTlsServer(certs, accept, config.timeouts.clientHeaders)
    : net.createServer({ allowHalfOpen: true, noDelay: true }, accept);
  // Beyond this many open client connections new ones are closed at once instead of exhausting descriptors.
  server.maxConnections = config.limits.connections;
  server.on('drop', () => ctx.totals.rejected++);
  await listen(server, config.port, config.host, 'listen');
  // After the bind: a failed bind is the rejection above, reported once.
  server.on('error', (err) => log(`listener error: ${err.message}`));

  let checker = config.health ? new HealthChecker(config.health, upstreams, log) : undefined;
  checker?.start();

  let admin: http.Server | undefined;
  let adminUrl: string | undefined;
  const hostPort = (s: net.Server, scheme = 'http') => {
    const a = s.address() as net.AddressInfo;
    return `${scheme}://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  };
  const url = hostPort(server, certs ? 'https' : 'http');
  let redirect: http.Server | undefined;
  let redirectUrl: string | undefined;
  if (certs && config.tls && config.tls.redirect) {
    const r = config.tls.redirect;
    redirect = createRedirectServer(certs, () => (server.address() as net.AddressInfo).port);
    try {
      await listen(redirect, r.port, r.host, 'tls.redirect');
    } catch (err) {
      clearInterval(sweep);
      server.close();
      throw err;
    }
    redirectUrl = hostPort(redirect);
  }

  const find = (id: string): Upstream => {
    const u = upstreams.find((x) => x.id === id);
    if (!u) throw new UnknownUpstreamError(`no instance with id ${JSON.stringify(id)}; known: ${upstreams.map((x) => x.id).join(', ') || 'none'}`);
    return u;
  };

  const status = (): BalancerStatus => ({
    url,
    strategy: ctx.config.strategy,
    totals: { ...ctx.totals, openConnections: clients.size },
    upstreams: upstreams.map((u) => u.snapshot(ctx.now)), // the clock routing uses, so status and routing agree
  });

  let history: History | undefined;
  if (config.admin) {
    // The metrics and the status page read what the I/O path counts; nothing here runs per request.
    const source = {
      upstreams: () => upstreams.map((u) => ({ id: u.id, up: u.state(ctx.now) === 'up', retries: u.retries, tally: u.tally })),
      own: ctx.own,
      connections: () => clients.size,
    };
    history = new History(() => [...upstreams.map((u) => ({ id: u.id, tally: u.tally })), { id: '', tally: ctx.own }]);
    const instances = new InstanceCache();
    const h = history;
    admin = createAdminServer(status, {
      metrics: config.metrics ? balancerRegistry(source) : undefined,
      stack: async () => ({
        balancer: status(),
        metrics: config.metrics,
        history: h.points,
        instances: await instances.get(upstreams.map((u) => ({ id: u.id, status: u.status }))),
      }),
    });
    try {
      await listen(admin, config.admin.port, config.admin.host, 'admin');
    } catch (err) {
      checker?.stop();
      clearInterval(sweep);
      server.close();
      redirect?.close();
      throw err;
    }
    adminUrl = hostPort(admin);
    if (config.metrics) history.start();
  }

  return {
    url,
    redirectUrl,
    adminUrl,
    reloadTls() {
      return certs !== undefined && certs.reload(server as tls.Server);
    },
    add(input) {
      const cfg = upstreamConfig(input, 'add()');
      const existing = upstreams.find((x) => x.id === cfg.id);
      if (existing) {
        if (existing.draining && existing.url === cfg.url) {
          existing.setDraining(false); // undo a drain: the same instance takes traffic again
          return existing.snapshot(Date.now());
        }
        throw new BalancerConfigError(`add(): an instance with id ${JSON.stringify(cfg.id)} already exists; remove it first or pick another id`);
      }
      const u = new Upstream(cfg);
      upstreams.push(u);
      log(`instance ${u.id} (${u.url}) added`);
      return u.snapshot(Date.now());
    },
    async drain(id) {
      const u = find(id);
      u.setDraining(true);
      log(`instance ${u.id} (${u.url}) draining (${u.active} in flight)`);
      await u.idleNow();
    },
    async remove(id) {
      const u = find(id);
      upstreams.splice(upstreams.indexOf(u), 1);
      u.retire();
      await u.idleNow();
      log(`instance ${u.id} (${u.url}) removed`);
    },
    status,
    reconfigure(options) {
      if (ctx.closing) throw new BalancerConfigError('reconfigure: the balancer is closing');
      const report = reconfigure(
        {
          ctx,
          upstreams,
          restartHealth(health) {
            checker?.stop();
            checker = health ? new HealthChecker(health, upstreams, log) : undefined;
            checker?.start();
          },
          setMaxConnections: (n) => (server.maxConnections = n),
          boundPort: (server.address() as net.AddressInfo).port,
          retire(u) {
            u.retire();
            void u.idleNow().then(() => log(`instance ${u.id} (${u.url}) removed (drained)`));
          },
          log,
        },
        balancerConfig(options, 'reconfigure'),
      );
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
      if (!ctx.access) return;
      ctx.access.reopen();
      log(`access log ${ctx.access.path} reopened`);
    },
    async close(graceMs = 5_000) {
      if (ctx.closing) return;
      ctx.closing = true;
      checker?.stop();
      history?.stop();
      const closed = once(server, 'close');
      server.close();
      admin?.close();
      admin?.closeAllConnections();
      redirect?.close();
      redirect?.closeAllConnections();
      // Idle keep-alive clients and WebSocket tunnels (they would never finish) go now; clients mid-request get
      // Connection: close after their response.
      for (const c of clients) if ((c as ClientConn).closableNow()) c.destroy();
      const deadline = Date.now() + graceMs;
      while (clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      for (const c of clients) c.destroy();
      for (const u of upstreams) u.closeIdle();
      for (const o of origins) o.destroy();
      clearInterval(sweep);
      await closed;
      await ctx.access?.close();
    },
  };
}

function listen(server: net.Server, port: number, host: string, option: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        new ListenError(
          `balancer option ${option} = ${host}:${port} cannot be bound (${err.code ?? err.message}); ` +
            (err.code === 'EADDRINUSE' ? 'another process uses that port: pick a free one' : 'check the host and port'),
          { cause: err },
        ),
      );
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

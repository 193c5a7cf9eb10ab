import { once } from 'node:events';
import net from 'node:net';
import type tls from 'node:tls';
import { AccessLog } from './access-log.ts';
import { hostPort, serverUrl } from './address.ts';
import { ClientConn } from './client.ts';
import type { ProxyContext, Timed } from './context.ts';
import { BalancerConfigError, ListenError, UnknownUpstreamError } from './errors.ts';
import { Tally } from './metrics.ts';
import type { BalancerConfig, UpstreamConfig } from './options.ts';
import { RateLimiter, type Limiter } from './rate-limit.ts';
import { reconfigure, type ReconfigureReport } from './reconfigure.ts';
import { LocalConnCounts, type ConnCounts } from './shared-limits.ts';
import { Selector } from './strategy.ts';
import { Certificates, createTlsServer } from './tls.ts';
import { Upstream, type UpstreamStatus } from './upstream.ts';

export interface BalancerStatus {
  url: string;
  strategy: BalancerConfig['strategy'];
  totals: { connections: number; openConnections: number; requests: number; rejected: number };
  upstreams: UpstreamStatus[];
  /** With `workers`: each running thread's share (the kernel spreads connections across them). */
  threads?: Array<{ thread: number; openConnections: number; connections: number; requests: number }>;
}

/** How a proxy is placed: alone in its process, one of a balancer's threads, or the threads' view in the main thread. */
interface ProxyPlacement {
  /** Bind the listener. false: a proxy that takes no traffic (the main thread of `workers` keeps one for its checks). */
  listen: boolean;
  /** SO_REUSEPORT: each worker thread binds the same port and the kernel spreads connections across them. */
  reusePort?: boolean;
  /** How many proxies share `limits.connections` (the descriptors are the process's): each takes its part. */
  share?: number;
  /** Open connections per client address, when shared between threads (limits.perClient). */
  connCounts?: ConnCounts;
  /** Makes the rate limiter for a rateLimit (a shared one between threads). */
  newLimiter?: (rate: Exclude<BalancerConfig['rateLimit'], false>) => Limiter;
  /** Read again on every reconfigure: the port a shadow (listen: false) stands for. */
  boundPort?: () => number;
}

/**
 * The proxying part of a balancer: the listener and its connections, the instance list and what changes it. The
 * health checks, the admin server and the redirect listener are the caller's (balancer.ts, workers.ts): in a
 * balancer with worker threads, each thread runs one of these and the main thread runs those once.
 */
export interface Proxy {
  readonly ctx: ProxyContext;
  /** The one list the selector, the health checker and the metrics read: changed in place, never replaced. */
  readonly upstreams: Upstream[];
  /** `http://host:port` (`https://` with tls); for a shadow, the configured address. */
  readonly url: string;
  /** The bound port (the configured one, or what port 0 got). */
  readonly port: number;
  readonly certs: Certificates | undefined;
  find(id: string): Upstream;
  /** Adds an instance (or undoes the drain of the same one); the caller logs. */
  add(cfg: UpstreamConfig): UpstreamStatus;
  /** Resolves once nothing is in flight on the instance. */
  drain(id: string): Promise<void>;
  remove(id: string): Promise<void>;
  status(): BalancerStatus;
  reconfigure(next: BalancerConfig, restartHealth: (health: BalancerConfig['health']) => void): ReconfigureReport;
  reopenLogs(): void;
  reloadTls(): boolean;
  close(graceMs: number): Promise<void>;
}

export async function startProxy(config: BalancerConfig, placement: ProxyPlacement): Promise<Proxy> {
  const log = config.log ?? (() => {});
  const share = placement.share ?? 1;
  const newLimiter = placement.newLimiter ?? ((rate) => new RateLimiter(rate));
  const upstreams = config.upstreams.map((u) => new Upstream(u));
  const clients = new Set<Timed>();
  const origins = new Set<Timed>();
  const ctx: ProxyContext = {
    config,
    selector: new Selector(config.strategy, upstreams, config.limits.perUpstream),
    access: config.accessLog && placement.listen ? new AccessLog(config.accessLog.path, config.accessLog.format, log) : null,
    now: Date.now(),
    closing: false,
    clients,
    origins,
    totals: { connections: 0, requests: 0, rejected: 0 },
    perClient: placement.connCounts ?? new LocalConnCounts(),
    metrics: config.metrics,
    own: new Tally(),
    limiter: config.rateLimit ? newLimiter(config.rateLimit) : undefined,
    newLimiter,
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

  // Read (and checked) before anything listens: a bad file is a startup error naming the option and the path.
  const certs = config.tls ? new Certificates(config.tls.certs, log) : undefined;
  let server: net.Server | undefined;
  let sweep: NodeJS.Timeout | undefined;
  const maxConnections = (n: number) => Math.ceil(n / share);
  if (placement.listen) {
    // One sweep for every timeout instead of a timer per socket per request.
    const t = config.timeouts;
    const tick = Math.max(10, Math.min(100, Math.floor(Math.min(t.clientHeaders, t.keepAlive, t.connect, t.response, t.upstreamIdle, t.tunnel) / 4)));
    sweep = setInterval(() => {
      const now = (ctx.now = Date.now());
      for (const c of clients) if (c.deadline !== 0 && now >= c.deadline) c.onTimeout();
      for (const o of origins) if (o.deadline !== 0 && now >= o.deadline) o.onTimeout();
      ctx.limiter?.sweep(now);
    }, tick);
    sweep.unref();
    const accept = (socket: net.Socket) => {
      if (ctx.closing) {
        socket.destroy();
        return;
      }
      new ClientConn(ctx, socket);
    };
    server = certs ? createTlsServer(certs, accept, config.timeouts.clientHeaders) : net.createServer({ allowHalfOpen: true, noDelay: true }, accept);
    // Beyond this many open client connections new ones are closed at once instead of exhausting descriptors.
    server.maxConnections = maxConnections(config.limits.connections);
    server.on('drop', () => ctx.totals.rejected++);
    try {
      await listen(server, config.port, config.host, 'listen', placement.reusePort === true);
    } catch (err) {
      clearInterval(sweep);
      throw err;
    }
    // After the bind: a failed bind is the rejection above, reported once.
    server.on('error', (err) => log(`listener error: ${err.message}`));
  }
  const scheme = certs ? 'https' : 'http';
  const port = server ? (server.address() as net.AddressInfo).port : config.port;
  const url = server ? serverUrl(server, scheme) : `${scheme}://${hostPort(config.host, port)}`;

  const find = (id: string): Upstream => {
    const u = upstreams.find((x) => x.id === id);
    if (!u) throw new UnknownUpstreamError(`no instance with id ${JSON.stringify(id)}; known: ${upstreams.map((x) => x.id).join(', ') || 'none'}`);
    return u;
  };

  return {
    ctx,
    upstreams,
    url,
    port,
    certs,
    find,
    add(cfg) {
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
      return u.snapshot(Date.now());
    },
    async drain(id) {
      const u = find(id);
      u.setDraining(true);
      await u.idleNow();
    },
    async remove(id) {
      const u = find(id);
      upstreams.splice(upstreams.indexOf(u), 1);
      u.retire();
      await u.idleNow();
    },
    status: () => ({
      url,
      strategy: ctx.config.strategy,
      totals: { ...ctx.totals, openConnections: clients.size },
      upstreams: upstreams.map((u) => u.snapshot(ctx.now)), // the clock routing uses, so status and routing agree
    }),
    reconfigure(next, restartHealth) {
      return reconfigure(
        {
          ctx,
          upstreams,
          restartHealth,
          setMaxConnections: (n) => {
            if (server) server.maxConnections = maxConnections(n);
          },
          boundPort: placement.boundPort?.() ?? port,
          retire(u) {
            u.retire();
            // A proxy that takes no traffic drains at once: the threads' own lines say when each one drained.
            void u.idleNow().then(() => placement.listen && log(`instance ${u.id} (${u.url}) removed (drained)`));
          },
          log,
          openAccessLog: placement.listen,
        },
        next,
      );
    },
    reopenLogs() {
      if (!ctx.access) return;
      ctx.access.reopen();
      log(`access log ${ctx.access.path} reopened`);
    },
    reloadTls() {
      return certs !== undefined && certs.reload(server as tls.Server | undefined);
    },
    async close(graceMs) {
      if (ctx.closing) return;
      ctx.closing = true;
      const closed = server ? once(server, 'close') : Promise.resolve();
      server?.close();
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

export function listen(server: net.Server, port: number, host: string, option: string, reusePort = false): Promise<void> {
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
    server.listen({ port, host, ...(reusePort ? { reusePort: true } : {}) }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

import { hash32 } from '@cluster-session/hash';
import { BalancerConfigError } from './errors.ts';

export const STRATEGIES = ['round-robin', 'least-conn', 'ip-hash', 'cookie'] as const;
export type Reuse = 'shared' | 'client';
export type Strategy = (typeof STRATEGIES)[number];

export interface UpstreamInput {
  /** `http://host:port`; only plain HTTP/1.1 instances (TLS ends at the balancer or before it). */
  url: string;
  /** Relative share of traffic (round-robin, least-conn, ip-hash); default 1. */
  weight?: number;
  /** Stable name: the sticky cookie's value and the key for drain/remove. Default: derived from the URL. */
  id?: string;
}

export interface HealthOptions {
  /** Active checks on/off (default on); passive checks are configured separately below. */
  active?: boolean;
  path?: string;
  /** Milliseconds between active checks of one instance. */
  interval?: number;
  /** Consecutive failed checks that mark an instance down. */
  fall?: number;
  /** Consecutive passed checks that bring it back. */
  rise?: number;
  /** Milliseconds a check may take. */
  timeout?: number;
  /** Passive checks on live traffic (like nginx max_fails/fail_timeout); false turns them off. */
  passive?: false | { failures?: number; window?: number; cooldown?: number };
}

export interface BalancerOptions {
  listen: number | { port: number; host?: string };
  upstreams: ReadonlyArray<string | UpstreamInput>;
  strategy?: Strategy;
  /** Active health checks; false turns them off (passive checks still run unless health.passive is false). */
  health?: false | HealthOptions;
  /** Status page (HTML at /, JSON at /status.json). Off unless given. */
  admin?: number | { port: number; host?: string };
  timeouts?: { clientHeaders?: number; keepAlive?: number; connect?: number; response?: number; upstreamIdle?: number; tunnel?: number };
  limits?: {
    headerSize?: number;
    bodySize?: number;
    idlePerUpstream?: number;
    connections?: number;
    perUpstream?: number;
    /** Header fields a request may have (then 431). */
    headerCount?: number;
    /** Open connections from one client address (then 429); 0 = no cap. */
    perClient?: number;
  };
  /** Extra attempts on other instances when a try fails in a way that is safe to repeat. */
  retries?: number;
  /** Statuses of an instance's own answer that send a replayable request to another instance (default 502, 503, 504; [] off). */
  retryOn?: ReadonlyArray<number>;
  /**
   * How instance connections are shared (HAProxy `http-reuse`): 'shared' (default) pools them across clients;
   * 'client' gives each client connection its own, closed with it (for clusters that deal connections to workers).
   */
  reuse?: Reuse;
  /** Trust X-Forwarded-* from the client (only behind another proxy you control). */
  trustProxy?: boolean;
  /** The sticky cookie of the `cookie` strategy. */
  cookie?: { name?: string; secure?: boolean };
}

export interface UpstreamConfig {
  readonly id: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
}

export interface BalancerConfig {
  host: string;
  port: number;
  upstreams: UpstreamConfig[];
  strategy: Strategy;
  health: false | { path: string; interval: number; fall: number; rise: number; timeout: number };
  passive: false | { failures: number; window: number; cooldown: number };
  admin: false | { host: string; port: number };
  timeouts: { clientHeaders: number; keepAlive: number; connect: number; response: number; upstreamIdle: number; tunnel: number };
  limits: { headerSize: number; bodySize: number; idlePerUpstream: number; connections: number; perUpstream: number; headerCount: number; perClient: number };
  retries: number;
  retryOn: ReadonlySet<number>;
  reuse: Reuse;
  trustProxy: boolean;
  cookie: { name: string; secure: boolean };
}

function fail(option: string, value: unknown, allowed: string, fix?: string): never {
  const shown = typeof value === 'string' ? JSON.stringify(value) : String(value);
  throw new BalancerConfigError(`balancer option ${option} = ${shown} is invalid: expected ${allowed}${fix ? `; ${fix}` : ''}`);
}

function int(option: string, value: unknown, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(option, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

function port(option: string, value: unknown): number {
  return int(option, value, NaN, 0, 65535);
}

function address(option: string, value: unknown): { host: string; port: number } {
  if (typeof value === 'number') return { host: '127.0.0.1', port: port(option, value) };
  if (value && typeof value === 'object') {
    const v = value as { port?: unknown; host?: unknown };
    if (v.host !== undefined && (typeof v.host !== 'string' || !v.host)) fail(`${option}.host`, v.host, 'a host name or IP');
    if (v.port === undefined) fail(`${option}.port`, v.port, 'a port number');
    return { host: (v.host as string | undefined) ?? '127.0.0.1', port: port(`${option}.port`, v.port) };
  }
  return fail(option, value, 'a port number or { port, host }');
}

const ID = /^[A-Za-z0-9._~-]{1,64}$/;

/** Validates one upstream entry; used at startup and by lb.add(). */
export function upstreamConfig(input: unknown, option = 'upstreams[]'): UpstreamConfig {
  const entry: { url?: unknown; weight?: unknown; id?: unknown } = typeof input === 'string' ? { url: input } : (input as object) ?? {};
  if (typeof entry !== 'object') fail(option, input, 'a URL string or { url, weight, id }');
  let url: URL;
  try {
    url = new URL(String(entry.url));
  } catch {
    return fail(`${option}.url`, entry.url, 'an absolute URL like http://127.0.0.1:4001');
  }
  if (url.protocol !== 'http:') fail(`${option}.url`, entry.url, 'an http:// URL', 'instances speak plain HTTP/1.1 behind the balancer');
  if (url.pathname !== '/' || url.search || url.username) {
    fail(`${option}.url`, entry.url, 'scheme, host and port only', 'drop the path, query and credentials');
  }
  const weight = int(`${option}.weight`, entry.weight, 1, 1, 1000);
  const base = `http://${url.host}`;
  const id = entry.id === undefined ? `i-${hash32(base).toString(36)}` : entry.id;
  if (typeof id !== 'string' || !ID.test(id)) fail(`${option}.id`, id, '1-64 characters from A-Z a-z 0-9 . _ ~ -', 'it becomes a cookie value');
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  return { id, url: base, host, port: url.port ? Number(url.port) : 80, weight };
}

/**
 * Default cap on connections from one client address: a quarter of all slots, at most 256 (a browser opens 6 per
 * host; an office behind one NAT address many more), so one address can never take every slot. Behind a
 * trusted proxy every connection comes from that proxy's address, so there is no default cap.
 */
function defaultPerClient(connections: number, trustProxy: boolean): number {
  return trustProxy ? 0 : Math.max(1, Math.min(256, Math.floor(connections / 4)));
}

/** Validates everything once, at the boundary; the rest of the package trusts the result. */
export function balancerConfig(options: BalancerOptions, requireListen = true): BalancerConfig {
  if (!options || typeof options !== 'object') fail('options', options, 'an object');
  const listen = requireListen || options.listen !== undefined ? address('listen', options.listen) : { host: '127.0.0.1', port: 8080 };
  if (!Array.isArray(options.upstreams) || options.upstreams.length === 0) {
    fail('upstreams', options.upstreams, 'a non-empty array of URLs', 'e.g. upstreams: ["http://127.0.0.1:4001"]');
  }
  const upstreams = options.upstreams.map((u, i) => upstreamConfig(u, `upstreams[${i}]`));
  const ids = new Set<string>();
  for (const u of upstreams) {
    if (ids.has(u.id)) fail('upstreams', u.id, 'distinct ids', 'two entries share an id or URL');
    ids.add(u.id);
  }
  const strategy = options.strategy ?? 'round-robin';
  if (!STRATEGIES.includes(strategy)) fail('strategy', strategy, STRATEGIES.join(' | '));

  const h = options.health;
  if (h !== undefined && h !== false && (typeof h !== 'object' || h === null)) fail('health', h, 'false or { path, interval, fall, rise, timeout }');
  const ho = (h || {}) as HealthOptions;
  if (ho.path !== undefined && (typeof ho.path !== 'string' || !ho.path.startsWith('/'))) fail('health.path', ho.path, 'a path starting with /');
  if (ho.active !== undefined && typeof ho.active !== 'boolean') fail('health.active', ho.active, 'true or false');
  const health =
    h === false || ho.active === false
      ? false
      : {
          path: ho.path ?? '/healthz',
          interval: int('health.interval', ho.interval, 2000, 50),
          fall: int('health.fall', ho.fall, 3, 1, 100),
          rise: int('health.rise', ho.rise, 2, 1, 100),
          timeout: int('health.timeout', ho.timeout, 1000, 10),
        };
  const p = ho.passive;
  const passive =
    p === false
      ? false
      : {
          failures: int('health.passive.failures', p?.failures, 3, 1, 1000),
          window: int('health.passive.window', p?.window, 10_000, 10),
          cooldown: int('health.passive.cooldown', p?.cooldown, 10_000, 10),
        };
  const t = options.timeouts ?? {};
  const l = options.limits ?? {};
  const retries = int('retries', options.retries, 2, 0, 10);
  const retryOn = options.retryOn ?? [502, 503, 504];
  if (!Array.isArray(retryOn) || !retryOn.every((s) => Number.isInteger(s) && s >= 500 && s <= 599)) {
    fail('retryOn', Array.isArray(retryOn) ? `[${retryOn.join(', ')}]` : retryOn, 'an array of 5xx statuses', 'e.g. [502, 503, 504], or [] to pass every answer through');
  }
  const reuse = options.reuse ?? 'shared';
  if (reuse !== 'shared' && reuse !== 'client') fail('reuse', reuse, "'shared' or 'client'", "use 'client' in front of a cluster that deals connections to workers");
  if (options.trustProxy !== undefined && typeof options.trustProxy !== 'boolean') fail('trustProxy', options.trustProxy, 'true or false');
  const connections = int('limits.connections', l.connections, 10_000, 1, 1_000_000);
  const c = options.cookie ?? {};
  const cookieName = c.name ?? 'CSLB';
  if (typeof cookieName !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$/.test(cookieName)) fail('cookie.name', cookieName, 'a cookie name (token characters)');

  return {
    host: listen.host,
    port: listen.port,
    upstreams,
    strategy,
    health,
    passive,
    admin: options.admin === undefined ? false : address('admin', options.admin),
    timeouts: {
      clientHeaders: int('timeouts.clientHeaders', t.clientHeaders, 10_000, 10),
      keepAlive: int('timeouts.keepAlive', t.keepAlive, 5_000, 10),
      connect: int('timeouts.connect', t.connect, 2_000, 10),
      response: int('timeouts.response', t.response, 30_000, 10),
      // Below Node's 5 s server keepAliveTimeout, so the instance never closes a socket we are about to reuse.
      upstreamIdle: int('timeouts.upstreamIdle', t.upstreamIdle, 4_000, 10),
      tunnel: int('timeouts.tunnel', t.tunnel, 3_600_000, 10),
    },
    limits: {
      headerSize: int('limits.headerSize', l.headerSize, 16_384, 1024, 1 << 20),
      bodySize: int('limits.bodySize', l.bodySize, 0, 0),
      idlePerUpstream: int('limits.idlePerUpstream', l.idlePerUpstream, 256, 0, 100_000),
      connections,
      perUpstream: int('limits.perUpstream', l.perUpstream, 0, 0, 1_000_000),
      headerCount: int('limits.headerCount', l.headerCount, 100, 1, 10_000),
      perClient: int('limits.perClient', l.perClient, defaultPerClient(connections, options.trustProxy === true), 0, 1_000_000),
    },
    retries,
    retryOn: new Set(retryOn),
    reuse,
    trustProxy: options.trustProxy ?? false,
    cookie: { name: cookieName, secure: c.secure === true },
  };
}

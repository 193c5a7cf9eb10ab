import { COOKIE_NAME, fail, parseOptions, words, type OptionContext } from '@cluster-session/core';
import { hash32 } from '@cluster-session/hash';
import { BlockList, isIP } from 'node:net';
import * as v from 'valibot';
import { BalancerConfigError } from './errors.ts';

export const STRATEGIES = ['round-robin', 'least-conn', 'ip-hash', 'cookie'] as const;
type Reuse = 'shared' | 'client';
export type Strategy = (typeof STRATEGIES)[number];

const int = (min: number, max: number, fallback: number, example = String(fallback)) =>
  v.optional(v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max), words({ allowed: `an integer from ${min} to ${max}`, example })), fallback);
const ms = (min: number, fallback: number) =>
  v.optional(v.pipe(v.number(), v.integer(), v.minValue(min), words({ allowed: `milliseconds, at least ${min}`, example: String(fallback) })), fallback);
const port = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535));
const address = v.pipe(
  v.union([
    v.pipe(port, v.transform((p) => ({ host: '127.0.0.1', port: p }))),
    v.strictObject({ port, host: v.optional(v.pipe(v.string(), v.minLength(1)), '127.0.0.1') }),
  ]),
  words({ allowed: 'a port number or { port, host }', example: '3000' }),
);
const bool = (fallback: boolean, example: string) => v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example })), fallback);
const ID = /^[A-Za-z0-9._~-]{1,64}$/;

const upstreamObject = v.strictObject({
  /** `http://host:port`; only plain HTTP/1.1 instances (TLS ends at the balancer or before it). */
  url: v.pipe(v.string(), words({ allowed: 'an absolute URL like http://127.0.0.1:4001', example: "'http://127.0.0.1:4001'" })),
  /** Relative share of traffic (round-robin, least-conn, ip-hash); default 1. */
  weight: int(1, 1000, 1),
  /** Stable name: the sticky cookie's value and the key for drain/remove. Default: derived from the URL. */
  id: v.optional(
    v.pipe(v.string(), v.regex(ID), words({ allowed: '1-64 characters from A-Z a-z 0-9 . _ ~ -', example: "'a'", fix: 'it becomes a cookie value: use a short name' })),
  ),
  /**
   * The instance's cluster metrics address (`cluster-session start --metrics`): the status page shows its workers
   * from `<status>/status.json`. Optional.
   */
  status: v.optional(v.pipe(v.string(), words({ allowed: "an http:// URL of the instance's --metrics address", example: "'http://127.0.0.1:3011'" }))),
});

/** One instance: `'http://host:port'` or `{ url, weight, id, status }`. */
const upstreamSchema = v.pipe(
  v.union([v.pipe(v.string(), v.transform((url) => ({ url })), upstreamObject), upstreamObject]),
  words({ allowed: 'a URL string or { url, weight, id, status }', example: "'http://127.0.0.1:4001'" }),
);

const passiveSchema = v.strictObject({
  failures: int(1, 1000, 3),
  window: ms(10, 10_000),
  cooldown: ms(10, 10_000),
});

const healthSchema = v.strictObject({
  /** Active checks on/off (default on); passive checks are configured separately below. */
  active: bool(true, 'false'),
  path: v.optional(v.pipe(v.string(), v.startsWith('/'), words({ allowed: 'a path starting with /', example: "'/healthz'" })), '/healthz'),
  /** Milliseconds between active checks of one instance. */
  interval: ms(50, 2000),
  /** Consecutive failed checks that mark an instance down. */
  fall: int(1, 100, 3),
  /** Consecutive passed checks that bring it back. */
  rise: int(1, 100, 2),
  /** Milliseconds a check may take. */
  timeout: ms(10, 1000),
  /** Passive checks on live traffic (like nginx max_fails/fail_timeout); false turns them off. */
  passive: v.optional(v.pipe(v.union([v.literal(false), passiveSchema]), words({ allowed: 'false or { failures, window, cooldown }', example: 'false' }))),
});

const certPair = v.strictObject({
  cert: v.pipe(v.string(), v.minLength(1), words({ allowed: 'the path of a PEM certificate (chain) file', example: "'/etc/ssl/example.pem'" })),
  key: v.pipe(v.string(), v.minLength(1), words({ allowed: 'the path of its PEM private key file', example: "'/etc/ssl/example.key'" })),
});

const tlsSchema = v.strictObject({
  /** Certificate/key pairs; with several, SNI picks the one whose names cover the requested host (first = default). */
  certs: v.pipe(v.array(certPair), v.minLength(1), words({ allowed: 'a non-empty array of { cert, key } file paths', example: "[{ cert: 'site.pem', key: 'site.key' }]" })),
  /** Strict-Transport-Security max-age in seconds on every proxied answer; 0 (default) sends none. */
  hsts: int(0, 63_072_000, 0, '31536000'),
  /** A plain-HTTP listener answering every request with a 308 to the same host and path over HTTPS. */
  redirect: v.optional(v.pipe(address, words({ allowed: 'a port number or { port, host }', example: '80' }))),
});

const RATE = /^([0-9]+(?:\.[0-9]+)?)\/(s|m)$/;

const rateLimitSchema = v.strictObject({
  /** Sustained requests per client address: a number per second, or '50/s' / '600/m'. */
  rate: v.pipe(
    v.union([v.pipe(v.number(), v.minValue(0.001), v.maxValue(1_000_000)), v.pipe(v.string(), v.regex(RATE), v.check((t) => Number(RATE.exec(t)?.[1] ?? 0) > 0))]),
    words({ allowed: "requests per second (a number) or '50/s' / '600/m'", example: "'50/s'" }),
  ),
  /** Requests a client may make at once above the rate (the bucket's size); default twice the per-second rate. */
  burst: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(1_000_000), words({ allowed: 'an integer from 1 to 1000000', example: '100' }))),
  /** Client addresses tracked at once; beyond, the longest-idle ones are forgotten (bounded memory). */
  maxClients: int(100, 10_000_000, 100_000),
});

/** Every option of createBalancer(), described once: the types, defaults and error words derive from here. */
const schema = v.strictObject({
  listen: address,
  upstreams: v.pipe(v.array(upstreamSchema), v.minLength(1), words({ allowed: 'a non-empty array of URLs', example: "['http://127.0.0.1:4001']" })),
  strategy: v.optional(v.pipe(v.picklist(STRATEGIES), words({ allowed: STRATEGIES.join(' | '), example: "'cookie'" })), 'round-robin'),
  /** Active health checks; false turns them off (passive checks still run unless health.passive is false). */
  health: v.optional(
    v.pipe(v.union([v.literal(false), healthSchema]), words({ allowed: 'false or { path, interval, fall, rise, timeout, passive }', example: "{ path: '/healthz' }" })),
  ),
  /** Status page (HTML at /, JSON at /status.json and /stack.json, Prometheus metrics at /metrics). Off unless given. */
  admin: v.optional(v.pipe(address, words({ allowed: 'a port number or { port, host }', example: '3010' }))),
  /** Prometheus metrics on the admin port; false records nothing per request and serves no /metrics. */
  metrics: bool(true, 'false'),
  timeouts: v.optional(
    v.strictObject({
      clientHeaders: ms(10, 10_000),
      keepAlive: ms(10, 5_000),
      connect: ms(10, 2_000),
      response: ms(10, 30_000),
      // Below Node's 5 s server keepAliveTimeout, so the instance never closes a socket we are about to reuse.
      upstreamIdle: ms(10, 4_000),
      tunnel: ms(10, 3_600_000),
    }),
    {},
  ),
  limits: v.optional(
    v.strictObject({
      headerSize: int(1024, 1 << 20, 16_384),
      bodySize: int(0, Number.MAX_SAFE_INTEGER, 0, '1048576'),
      idlePerUpstream: int(0, 100_000, 256),
      connections: int(1, 1_000_000, 10_000),
      perUpstream: int(0, 1_000_000, 0, '100'),
      /** Header fields a request may have (then 431). */
      headerCount: int(1, 10_000, 100),
      /** Open connections from one client address (then 429); 0 = no cap. Default: see defaultPerClient(). */
      perClient: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000), words({ allowed: 'an integer from 0 to 1000000', example: '64' }))),
    }),
    {},
  ),
  /** Extra attempts on other instances when a try fails in a way that is safe to repeat. */
  retries: int(0, 10, 2),
  /** Statuses of an instance's own answer that send a replayable request to another instance ([] off). */
  retryOn: v.optional(
    v.pipe(
      v.array(v.pipe(v.number(), v.integer(), v.minValue(500), v.maxValue(599))),
      words({ allowed: 'an array of 5xx statuses', example: '[502, 503, 504]', fix: 'use 5xx statuses, or [] to pass every answer through' }),
    ),
    [502, 503, 504],
  ),
  /**
   * How instance connections are shared (HAProxy `http-reuse`): 'shared' (default) pools them across clients;
   * 'client' gives each client connection its own, closed with it (for clusters that deal connections to workers).
   */
  reuse: v.optional(
    v.pipe(
      v.picklist(['shared', 'client']),
      words({ allowed: "'shared' or 'client'", example: "'client'", fix: "use 'client' in front of a cluster that deals connections to workers" }),
    ),
    'shared',
  ),
  /** Trust X-Forwarded-* (and X-Request-Id) from the client (only behind another proxy you control). */
  trustProxy: bool(false, 'true'),
  /**
   * Addresses or CIDR ranges of your own proxies: X-Forwarded-* are trusted from these peers only (finer than
   * trustProxy), and the rate limit keys on the client address they report.
   */
  trustedProxies: v.optional(
    v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), words({ allowed: 'IP addresses or CIDR ranges', example: "['10.0.0.0/8', '192.0.2.7']" })),
    [],
  ),
  /** TLS on the listener (HTTPS only; HTTP/1.1 by ALPN, TLS 1.2+). Off unless given. */
  tls: v.optional(v.pipe(tlsSchema, words({ allowed: '{ certs: [{ cert, key }], hsts, redirect }', example: "{ certs: [{ cert: 'site.pem', key: 'site.key' }] }" }))),
  /** Token bucket per client address: beyond it a request gets 429 with Retry-After. Off unless given. */
  rateLimit: v.optional(v.pipe(rateLimitSchema, words({ allowed: '{ rate, burst, maxClients }', example: "{ rate: '50/s', burst: 100 }" }))),
  /** Compress compressible answers (brotli or gzip, by Accept-Encoding) the instance sent uncompressed. */
  compress: bool(false, 'true'),
  /**
   * Send every request to its instance with an X-Request-Id: a new UUID, or the one a trusted proxy sent
   * (`trustProxy`). false forwards the client's header, if any, untouched.
   */
  requestId: bool(true, 'false'),
  /**
   * The access log: a file path or '-' (stdout), or { path, format } with format 'json' (one object a line) or
   * 'combined' (nginx's and Apache's, plus request time, upstream and request id). Reopened by reopenLogs()
   * (SIGUSR1 in `cluster-session balance`). Off unless given.
   */
  accessLog: v.optional(
    v.pipe(
      v.union([
        v.pipe(v.string(), v.minLength(1), v.transform((path) => ({ path, format: 'json' as const }))),
        v.strictObject({
          path: v.pipe(v.string(), v.minLength(1)),
          format: v.optional(v.picklist(['json', 'combined']), 'json'),
        }),
      ]),
      words({ allowed: "a file path, '-' for stdout, or { path, format: 'json' | 'combined' }", example: "{ path: '/var/log/cluster-session/access.log', format: 'combined' }" }),
    ),
  ),
  /** The sticky cookie of the `cookie` strategy. */
  cookie: v.optional(
    v.strictObject({
      name: v.optional(v.pipe(v.string(), v.regex(COOKIE_NAME), v.maxLength(64), words({ allowed: 'a cookie name (token characters, at most 64)', example: "'CSLB'" })), 'CSLB'),
      secure: bool(false, 'true'),
    }),
    {},
  ),
  /**
   * Proxy on this many threads (nginx's worker_processes): each binds the listen port with SO_REUSEPORT (Linux;
   * Node 22.12+) and the kernel spreads connections across them; health checks, the admin server and the
   * per-client limits stay one for the whole balancer. Default 1: the proxy runs in the calling thread.
   */
  workers: int(1, 64, 1, '2'),
  /** Receives state changes (instance down/up/ejected, retries). Default: silent. Never gets secrets. */
  log: v.optional(v.pipe(v.custom<(message: string) => void>((f) => typeof f === 'function'), words({ allowed: 'a function (message: string) => void' }))),
});

export type BalancerOptions = v.InferInput<typeof schema>;
export type HealthOptions = v.InferInput<typeof healthSchema>;
export type UpstreamInput = Exclude<v.InferInput<typeof upstreamSchema>, string>;

export interface UpstreamConfig {
  readonly id: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  /** The instance's cluster status base URL, for the status page. */
  readonly status: string | undefined;
}

export interface BalancerConfig {
  readonly host: string;
  readonly port: number;
  readonly upstreams: readonly UpstreamConfig[];
  readonly strategy: Strategy;
  readonly health: false | { readonly path: string; readonly interval: number; readonly fall: number; readonly rise: number; readonly timeout: number };
  readonly passive: false | { readonly failures: number; readonly window: number; readonly cooldown: number };
  readonly admin: false | { readonly host: string; readonly port: number };
  /** Record and serve /metrics (only with an admin address). */
  readonly metrics: boolean;
  readonly timeouts: {
    readonly clientHeaders: number;
    readonly keepAlive: number;
    readonly connect: number;
    readonly response: number;
    readonly upstreamIdle: number;
    readonly tunnel: number;
  };
  readonly limits: {
    readonly headerSize: number;
    readonly bodySize: number;
    readonly idlePerUpstream: number;
    readonly connections: number;
    readonly perUpstream: number;
    readonly headerCount: number;
    readonly perClient: number;
  };
  readonly retries: number;
  readonly retryOn: ReadonlySet<number>;
  readonly reuse: Reuse;
  readonly trustProxy: boolean;
  /** trustedProxies, ready to check a peer address against; undefined when none were given. */
  readonly trustedProxies: BlockList | undefined;
  readonly tls: false | { readonly certs: readonly { readonly cert: string; readonly key: string }[]; readonly hsts: number; readonly redirect: false | { readonly host: string; readonly port: number } };
  /** Tokens per millisecond and the bucket size. */
  readonly rateLimit: false | { readonly perMs: number; readonly burst: number; readonly maxClients: number };
  readonly compress: boolean;
  readonly requestId: boolean;
  readonly accessLog: false | { readonly path: string; readonly format: 'json' | 'combined' };
  readonly cookie: { readonly name: string; readonly secure: boolean };
  /** Proxy threads (1: the calling thread proxies). */
  readonly workers: number;
  readonly log: ((message: string) => void) | undefined;
}

/** The address part of an upstream URL, checked: what the I/O path connects to. */
function toUpstream(ctx: OptionContext, option: string, input: { url: string; weight: number; id?: string | undefined; status?: string | undefined }): UpstreamConfig {
  let url: URL;
  try {
    url = new URL(input.url);
  } catch {
    return fail(ctx, { option: `${option}.url`, value: input.url, allowed: 'an absolute URL like http://127.0.0.1:4001' });
  }
  if (url.protocol !== 'http:') {
    fail(ctx, { option: `${option}.url`, value: input.url, allowed: 'an http:// URL', fix: 'TLS to instances is not supported: end TLS at the balancer' });
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash || url.username || url.password) {
    fail(ctx, { option: `${option}.url`, value: input.url, allowed: 'scheme, host and port only', fix: 'drop the path, query and credentials' });
  }
  const base = `http://${url.host}`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  let status: string | undefined;
  if (input.status !== undefined) {
    const u = URL.canParse(input.status) ? new URL(input.status) : undefined;
    if (u?.protocol !== 'http:' || u.search || u.hash || u.username) {
      fail(ctx, { option: `${option}.status`, value: input.status, allowed: "an http:// URL of the instance's --metrics address", fix: 'pass e.g. http://127.0.0.1:3011' });
    }
    status = `http://${u.host}${u.pathname.replace(/\/$/, '')}`;
  }
  return Object.freeze({ id: input.id ?? `i-${hash32(base).toString(36)}`, url: base, host, port: url.port ? Number(url.port) : 80, weight: input.weight, status });
}

/**
 * Default cap on connections from one client address: a quarter of all slots, at most 256 (a browser opens 6 per
 * host; an office behind one NAT address many more), so one address can never take every slot. Behind a
 * trusted proxy every connection comes from that proxy's address, so there is no default cap.
 */
function defaultPerClient(connections: number, trustProxy: boolean): number {
  return trustProxy ? 0 : Math.max(1, Math.min(256, Math.floor(connections / 4)));
}

/** trustedProxies as a BlockList (node:net's matcher of addresses and subnets, both families). */
function trusted(ctx: OptionContext, list: readonly string[]): BlockList | undefined {
  if (list.length === 0) return undefined;
  const blocks = new BlockList();
  list.forEach((entry, i) => {
    const [address, bits, extra] = entry.split('/');
    const family = isIP(address ?? '');
    const prefix = bits === undefined ? (family === 6 ? 128 : 32) : /^[0-9]{1,3}$/.test(bits) ? Number(bits) : -1;
    if (family === 0 || extra !== undefined || prefix < 0 || prefix > (family === 6 ? 128 : 32)) {
      fail(ctx, { option: `trustedProxies[${i}]`, value: entry, allowed: 'an IP address or CIDR range', example: "'10.0.0.0/8'", fix: 'write the address of your proxy, e.g. 192.0.2.7 or 10.0.0.0/8' });
    }
    blocks.addSubnet(address!, prefix, family === 6 ? 'ipv6' : 'ipv4');
  });
  return blocks;
}

function rateLimit(r: { rate: number | string; burst?: number | undefined; maxClients: number }) {
  let perSecond: number;
  if (typeof r.rate === 'number') perSecond = r.rate;
  else {
    const m = RATE.exec(r.rate)!;
    perSecond = Number(m[1]) / (m[2] === 'm' ? 60 : 1);
  }
  return Object.freeze({ perMs: perSecond / 1000, burst: r.burst ?? Math.max(1, Math.ceil(perSecond * 2)), maxClients: r.maxClients });
}

/** Validates one upstream entry given to lb.add(). */
export function upstreamConfig(input: unknown, where = 'add()'): UpstreamConfig {
  const ctx = { where, error: BalancerConfigError };
  const { upstream } = parseOptions(v.strictObject({ upstream: upstreamSchema }), { upstream: input }, ctx);
  return toUpstream(ctx, 'upstream', upstream);
}

/** Validates everything once, at the boundary (`where` names the caller in errors); the rest of the package trusts the result. */
export function balancerConfig(options: BalancerOptions, where = 'createBalancer'): BalancerConfig {
  const ctx = { where, error: BalancerConfigError };
  const o = parseOptions(schema, options, ctx);
  const upstreams = o.upstreams.map((u, i) => toUpstream(ctx, `upstreams[${i}]`, u));
  const ids = new Set<string>();
  for (const u of upstreams) {
    if (ids.has(u.id)) fail(ctx, { option: 'upstreams', value: u.id, allowed: 'distinct ids', fix: 'two entries share an id or URL' });
    ids.add(u.id);
  }
  // SO_REUSEPORT with the kernel spreading connections (Node's reusePort): elsewhere listen() would fail later.
  if (o.workers > 1 && !['linux', 'freebsd', 'sunos', 'aix'].includes(process.platform)) {
    fail(ctx, { option: 'workers', value: o.workers, allowed: `1 on ${process.platform}`, fix: 'several proxy threads need SO_REUSEPORT (Linux, FreeBSD); run one balancer per core behind the OS instead' });
  }
  const h = o.health;
  return Object.freeze({
    host: o.listen.host,
    port: o.listen.port,
    upstreams: Object.freeze(upstreams),
    strategy: o.strategy,
    health: h === false || h?.active === false ? false : Object.freeze({ path: h?.path ?? '/healthz', interval: h?.interval ?? 2000, fall: h?.fall ?? 3, rise: h?.rise ?? 2, timeout: h?.timeout ?? 1000 }),
    // Passive checks stay on (with their defaults) when active checks are off, unless turned off themselves.
    passive: h !== false && h?.passive === false ? false : (h !== false && h?.passive) || Object.freeze({ failures: 3, window: 10_000, cooldown: 10_000 }),
    admin: o.admin ?? false,
    metrics: o.metrics && o.admin !== undefined,
    timeouts: o.timeouts,
    limits: Object.freeze({ ...o.limits, perClient: o.limits.perClient ?? defaultPerClient(o.limits.connections, o.trustProxy) }),
    retries: o.retries,
    retryOn: new Set(o.retryOn),
    reuse: o.reuse,
    trustProxy: o.trustProxy,
    trustedProxies: trusted(ctx, o.trustedProxies),
    tls: o.tls ? Object.freeze({ certs: o.tls.certs, hsts: o.tls.hsts, redirect: o.tls.redirect ?? false }) : false,
    rateLimit: o.rateLimit ? rateLimit(o.rateLimit) : false,
    compress: o.compress,
    requestId: o.requestId,
    accessLog: o.accessLog ?? false,
    cookie: o.cookie,
    workers: o.workers,
    log: o.log,
  });
}

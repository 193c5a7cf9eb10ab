import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fail, opt, parseOptions, s } from '@cluster-session/core';
import { ClusterConfigError } from './errors.ts';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** Parses a byte size: 1048576, '512M', '1.5G'. Returns undefined when the text is not a size. */
function parseBytes(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return n > 0 ? n : undefined;
}

const MS = (min: number) => `an integer number of milliseconds >= ${min}`;
const ms = (min: number, fallback: number, example: string) => opt(s.number().int().min(min).default(fallback), { allowed: MS(min), example });
/** A number, or its digits as text (flags and env variables are text). */
const digits = (n: ReturnType<typeof s.number>) => s.union([n, s.string().regex(/^\d+$/).transform(Number).pipe(n)]);
const port = () => digits(s.number().int().min(0).max(65535));

const stickySchema = s.strictObject({
  /** Port the primary accepts connections on (default: `port`, then the PORT environment variable). */
  port: opt(port().optional(), { allowed: 'a port number 0-65535', example: '3000' }),
  /** Address to bind (default: all interfaces, like `app.listen(port)`). */
  host: opt(s.string().min(1).optional(), { allowed: 'a host address', example: "'127.0.0.1'" }),
  /**
   * Route by the client address in `X-Forwarded-For` of a connection's first request. `true` trusts the direct
   * peer as the proxy; a list trusts only those proxy addresses (anything else is keyed by its own address).
   */
  trustProxy: opt(s.union([s.boolean(), s.array(s.string())]).default(false), {
    allowed: 'a boolean or a list of proxy addresses',
    example: "['127.0.0.1']",
  }),
});

/** Every option of startCluster(), described once: the types, defaults and error words derive from here. */
const schema = s.strictObject({
  /** The app's entry file (ESM, CommonJS or TypeScript). */
  entry: opt(s.string().min(1), { allowed: 'the path of the app entry file', example: "'./server.js'" }),
  /** Worker count: a number or 'max' (CPU count). Default: WORKERS env, else CPU count. */
  workers: opt(s.union([s.literal('max'), digits(s.number().int().min(1).max(1024))]).optional(), {
    env: 'WORKERS',
    allowed: "a positive integer (at most 1024) or 'max'",
    example: "'max'",
  }),
  /** Sets PORT for the workers (and is the sticky port unless `sticky.port` is given). */
  port: opt(port().optional(), { allowed: 'a port number 0-65535', example: '3000' }),
  /** Route connections by client address through the primary (fallback for state that is not shared). */
  sticky: opt(s.union([s.boolean(), stickySchema]).optional(), { allowed: 'true, false or { port, host, trustProxy }', example: 'true' }),
  /** Cluster name: prefixes logs, names the control socket. Default: the entry's base name. */
  name: opt(s.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/).optional(), {
    allowed: '1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit',
    example: "'app'",
  }),
  /** Wait for the app's explicit `ready()` instead of the first `listening` (PM2's wait_ready). */
  waitReady: opt(s.boolean().default(false), { allowed: 'a boolean', example: 'true' }),
  /** A worker not ready within this many ms has FAILED. */
  readyTimeout: ms(1, 10_000, '10000'),
  /** A retiring worker still alive this many ms after retirement began is killed. */
  killTimeout: ms(1, 5_000, '5000'),
  /** Replace (through the reload path) a worker whose RSS exceeds this: bytes, or '512M', '1G'. */
  maxMemory: opt(
    s
      .union([s.number(), s.string()])
      .transform((v) => parseBytes(v))
      .pipe(s.number().optional().refine((n) => n !== undefined))
      .optional(),
    { allowed: "bytes or a size like '512M' or '1G'", example: "'512M'" },
  ),
  /** How often to sample worker memory when `maxMemory` is set, in ms. */
  memoryCheckInterval: ms(50, 10_000, '10000'),
  /** Extra environment for the workers (merged over process.env). */
  env: opt(s.record(s.string().optional()).default({}), { allowed: 'an object of strings', example: "{ NODE_ENV: 'production' }" }),
  /** Arguments passed to the entry (process.argv.slice(2) in the worker). */
  args: opt(s.array(s.string()).default([]), { allowed: 'an array of strings', example: "['--verbose']" }),
  /** Extra Node flags for the workers. */
  execArgv: opt(s.array(s.string()).default([]), { allowed: 'an array of strings', example: "['--max-old-space-size=512']" }),
  backoff: s
    .strictObject({
      /** First restart delay in ms. Doubles on each consecutive crash. */
      initial: ms(1, 100, '100'),
      /** Ceiling of the restart delay in ms. */
      max: ms(1, 15_000, '15000'),
      /** Uptime in ms after which a worker counts as stable and the delay resets. */
      stableAfter: ms(1, 30_000, '30000'),
    })
    .prefault({}),
  /** Consecutive unstable crashes after which a slot is parked. A reload revives parked slots. */
  maxRestarts: opt(s.number().int().min(0).default(10), { allowed: 'an integer >= 0', example: '10' }),
  /** 'rr': the primary deals connections round robin; 'os': workers accept on a shared socket. */
  schedulingPolicy: opt(s.enum(['rr', 'os']).default('rr'), { allowed: "'rr' or 'os'", example: "'rr'" }),
  /** Control socket for `cluster-session reload|status|stop`: true (default), false, or a socket path. */
  control: opt(s.union([s.boolean(), s.string().min(1)]).default(true), { allowed: 'true, false or a unix socket path', example: 'true' }),
  /**
   * Serve Prometheus metrics (`/metrics`, every worker's figures labelled by `slot`) and the workers' status
   * (`/status.json`) on this address. Off unless given; binds 127.0.0.1 unless a host is given.
   */
  metrics: opt(
    s.union([port().transform((p) => ({ port: p, host: '127.0.0.1' })), s.strictObject({ port: port(), host: s.string().min(1).default('127.0.0.1') })]).optional(),
    { allowed: 'a port number or { port, host }', example: '9464' },
  ),
  /** Where the primary's own messages go (default: stderr, prefixed with the cluster name). */
  log: opt(s.custom<(line: string) => void>((v) => typeof v === 'function').optional(), { allowed: 'a function (line: string) => void' }),
  /** Handle SIGHUP (reload), SIGTERM/SIGINT (graceful stop, then exit 0; second SIGINT: now). */
  signals: opt(s.boolean().default(true), { allowed: 'a boolean', example: 'false' }),
});

/** What startCluster() accepts. */
export type ClusterOptions = s.input<typeof schema>;
export type StickyOptions = s.input<typeof stickySchema>;
export type BackoffOptions = NonNullable<s.input<typeof schema>['backoff']>;

export interface ResolvedOptions {
  readonly entry: string;
  readonly workers: number;
  readonly port: number | undefined;
  readonly sticky: { readonly port: number; readonly host: string | undefined; readonly trustProxy: boolean | readonly string[] } | undefined;
  readonly name: string;
  readonly waitReady: boolean;
  readonly readyTimeout: number;
  readonly killTimeout: number;
  readonly maxMemory: number | undefined;
  readonly memoryCheckInterval: number;
  /** The workers' extra environment (without the contract variables, which the primary adds). */
  readonly env: Readonly<Record<string, string>>;
  /** Generate one development SESSION_SECRET for every worker (none given, not production). */
  readonly generateSecret: boolean;
  readonly args: readonly string[];
  readonly execArgv: readonly string[];
  readonly backoff: { readonly initial: number; readonly max: number; readonly stableAfter: number };
  readonly maxRestarts: number;
  readonly schedulingPolicy: 'rr' | 'os';
  readonly control: string | false;
  readonly metrics: { readonly port: number; readonly host: string } | undefined;
  readonly signals: boolean;
  readonly log: ((line: string) => void) | undefined;
}

function defaultName(entry: string): string {
  return path.basename(entry).replace(/\.[cm]?[jt]sx?$/, '') || 'app';
}

const ctx = { where: 'startCluster', error: ClusterConfigError };
type Env = Readonly<Record<string, string | undefined>>;

/**
 * Validates everything once, where options enter; the rest of the package trusts the result. Pure: `env` is the
 * primary's environment (WORKERS, PORT, NODE_ENV, SESSION_SECRET), `controlPath` maps a name to its socket.
 */
export function resolveOptions(input: ClusterOptions, env: Env, controlPath: (name: string) => string): ResolvedOptions {
  const o = parseOptions(schema, input, ctx, { env });
  const entry = path.resolve(o.entry);
  if (!existsSync(entry)) fail(ctx, { option: 'entry', value: o.entry, allowed: 'the path of an existing file', fix: `no file at ${entry}: pass the path of your server file` });

  const workerEnv: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.env)) if (v !== undefined) workerEnv[k] = v;
  const seen = (name: string) => workerEnv[name] ?? env[name];

  let sticky: ResolvedOptions['sticky'];
  if (o.sticky !== undefined && o.sticky !== false) {
    const s = o.sticky === true ? { port: undefined, host: undefined, trustProxy: false } : o.sticky;
    const fromEnv = seen('PORT');
    const p = s.port ?? o.port ?? (fromEnv && /^\d+$/.test(fromEnv) && Number(fromEnv) <= 65535 ? Number(fromEnv) : undefined);
    if (p === undefined) {
      fail(ctx, { option: 'sticky.port', value: fromEnv || undefined, env: 'PORT', allowed: 'a port number 0-65535', fix: 'sticky mode needs a port: pass sticky: { port } or port, or set PORT' });
    }
    sticky = Object.freeze({ port: p, host: s.host, trustProxy: s.trustProxy });
  }
  if (o.backoff.max < o.backoff.initial) {
    fail(ctx, { option: 'backoff.max', value: o.backoff.max, allowed: `a delay >= backoff.initial (${o.backoff.initial} ms)`, fix: 'raise backoff.max or lower backoff.initial' });
  }
  const name = o.name ?? defaultName(entry);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    fail(ctx, { option: 'name', value: name, allowed: '1-64 characters of letters, digits, ".", "_" or "-"', fix: `the entry's base name cannot be used: pass a name` });
  }
  const production = (seen('NODE_ENV') ?? '') === 'production';

  return Object.freeze({
    entry,
    workers: o.workers === undefined || o.workers === 'max' ? os.availableParallelism() : o.workers,
    port: o.port,
    sticky,
    name,
    waitReady: o.waitReady,
    readyTimeout: o.readyTimeout,
    killTimeout: o.killTimeout,
    maxMemory: o.maxMemory,
    memoryCheckInterval: o.memoryCheckInterval,
    env: Object.freeze(workerEnv),
    generateSecret: !seen('SESSION_SECRET') && !production,
    args: o.args,
    execArgv: o.execArgv,
    backoff: o.backoff,
    maxRestarts: o.maxRestarts,
    schedulingPolicy: o.schedulingPolicy,
    control: o.control === true ? controlPath(name) : o.control === false ? false : path.resolve(o.control),
    metrics: o.metrics,
    signals: o.signals,
    log: o.log,
  });
}

/** Restart delay after the n-th consecutive unstable crash (n >= 1): initial, 2x, 4x, ... capped at max. */
export function backoffDelay(n: number, backoff: ResolvedOptions['backoff']): number {
  return Math.min(backoff.max, backoff.initial * 2 ** Math.min(n - 1, 30));
}

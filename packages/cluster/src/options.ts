import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { fail, parseOptions, words } from '@cluster-session/core';
import * as v from 'valibot';
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
const ms = (min: number, fallback: number, example: string) =>
  v.optional(v.pipe(v.number(), v.integer(), v.minValue(min), words({ allowed: MS(min), example })), fallback);
const bool = (fallback: boolean, example: string) => v.optional(v.pipe(v.boolean(), words({ allowed: 'a boolean', example })), fallback);
const strings = (example: string) => v.optional(v.pipe(v.array(v.string()), words({ allowed: 'an array of strings', example })), []);
/** An integer in [min, max], or its digits as text (flags and env variables are text). */
const digits = (min: number, max: number) => {
  const n = v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max));
  return v.union([n, v.pipe(v.string(), v.regex(/^\d+$/), v.transform(Number), n)]);
};
const port = () => v.optional(v.pipe(digits(0, 65535), words({ allowed: 'a port number 0-65535', example: '3000' })));

const stickySchema = v.strictObject({
  /** Port the primary accepts connections on (default: `port`, then the PORT environment variable). */
  port: port(),
  /** Address to bind (default: all interfaces, like `app.listen(port)`). */
  host: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a host address', example: "'127.0.0.1'" }))),
  /**
   * Route by the client address in `X-Forwarded-For` of a connection's first request. `true` trusts the direct
   * peer as the proxy; a list trusts only those proxy addresses (anything else is keyed by its own address).
   */
  trustProxy: v.optional(
    v.pipe(v.union([v.boolean(), v.array(v.string())]), words({ allowed: 'a boolean or a list of proxy addresses', example: "['127.0.0.1']" })),
    false,
  ),
});

/** Every option of startCluster(), described once: the types, defaults and error words derive from here. */
const schema = v.strictObject({
  /** The app's entry file (ESM, CommonJS or TypeScript). */
  entry: v.pipe(v.string(), v.minLength(1), words({ allowed: 'the path of the app entry file', example: "'./server.js'" })),
  /** Worker count: a number or 'max' (CPU count). Default: WORKERS env, else CPU count. */
  workers: v.optional(
    v.pipe(v.union([v.literal('max'), digits(1, 1024)]), words({ env: 'WORKERS', allowed: "a positive integer (at most 1024) or 'max'", example: "'max'" })),
  ),
  /** Sets PORT for the workers (and is the sticky port unless `sticky.port` is given). */
  port: port(),
  /** Route connections by client address through the primary (fallback for state that is not shared). */
  sticky: v.optional(v.pipe(v.union([v.boolean(), stickySchema]), words({ allowed: 'true, false or { port, host, trustProxy }', example: 'true' }))),
  /** Cluster name: prefixes logs, names the control socket. Default: the entry's base name. */
  name: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/),
      words({ allowed: '1-64 characters of letters, digits, ".", "_" or "-", starting with a letter or digit', example: "'app'" }),
    ),
  ),
  /** Wait for the app's explicit `ready()` instead of the first `listening` (PM2's wait_ready). */
  waitReady: bool(false, 'true'),
  /** A worker not ready within this many ms has FAILED. */
  readyTimeout: ms(1, 10_000, '10000'),
  /** A retiring worker still alive this many ms after retirement began is killed. */
  killTimeout: ms(1, 5_000, '5000'),
  /** Replace (through the reload path) a worker whose RSS exceeds this: bytes, or '512M', '1G'. */
  maxMemory: v.optional(
    v.pipe(v.union([v.number(), v.string()]), v.transform(parseBytes), v.number(), words({ allowed: "bytes or a size like '512M' or '1G'", example: "'512M'" })),
  ),
  /** How often to sample worker memory when `maxMemory` is set, in ms. */
  memoryCheckInterval: ms(50, 10_000, '10000'),
  /** Extra environment for the workers (merged over process.env). */
  env: v.optional(v.pipe(v.record(v.string(), v.optional(v.string())), words({ allowed: 'an object of strings', example: "{ NODE_ENV: 'production' }" })), {}),
  /** Arguments passed to the entry (process.argv.slice(2) in the worker). */
  args: strings("['--verbose']"),
  /** Extra Node flags for the workers. */
  execArgv: strings("['--max-old-space-size=512']"),
  backoff: v.optional(
    v.strictObject({
      /** First restart delay in ms. Doubles on each consecutive crash. */
      initial: ms(1, 100, '100'),
      /** Ceiling of the restart delay in ms. */
      max: ms(1, 15_000, '15000'),
      /** Uptime in ms after which a worker counts as stable and the delay resets. */
      stableAfter: ms(1, 30_000, '30000'),
    }),
    {},
  ),
  /** Consecutive unstable crashes after which a slot is parked. A reload revives parked slots. */
  maxRestarts: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), words({ allowed: 'an integer >= 0', example: '10' })), 10),
  /** 'rr': the primary deals connections round robin; 'os': workers accept on a shared socket. */
  schedulingPolicy: v.optional(v.pipe(v.picklist(['rr', 'os']), words({ allowed: "'rr' or 'os'", example: "'rr'" })), 'rr'),
  /** Control socket for `cluster-session reload|status|stop`: true (default), false, or a socket path. */
  control: v.optional(
    v.pipe(v.union([v.boolean(), v.pipe(v.string(), v.minLength(1))]), words({ allowed: 'true, false or a unix socket path', example: 'true' })),
    true,
  ),
  /**
   * Serve Prometheus metrics (`/metrics`, every worker's figures labelled by `slot`) and the workers' status
   * (`/status.json`) on this address. Off unless given; binds 127.0.0.1 unless a host is given.
   */
  metrics: v.optional(
    v.pipe(
      v.union([
        v.pipe(digits(0, 65535), v.transform((p) => ({ port: p, host: '127.0.0.1' }))),
        v.strictObject({ port: digits(0, 65535), host: v.optional(v.pipe(v.string(), v.minLength(1)), '127.0.0.1') }),
      ]),
      words({ allowed: 'a port number or { port, host }', example: '9464' }),
    ),
  ),
  /**
   * How worker output and the primary's own messages are written: 'text' (each line timestamped and prefixed
   * with its slot and pid) or 'json' (one JSON object a line: a worker's JSON line gains slot, pid and time; any
   * other line becomes { level, time, slot, pid, msg }). Workers get LOG_FORMAT unless their env sets it.
   */
  logFormat: v.optional(v.pipe(v.picklist(['text', 'json']), words({ env: 'LOG_FORMAT', allowed: "'text' or 'json'", example: "'json'" })), 'text'),
  /** Where the primary's own messages go (default: stderr, as `logFormat` says). */
  log: v.optional(v.pipe(v.custom<(line: string) => void>((f) => typeof f === 'function'), words({ allowed: 'a function (line: string) => void' }))),
  /**
   * Called at the start of every reload (SIGHUP, `cluster-session reload`, reload()) for the options the new
   * workers get: `cluster-session start --config FILE` re-reads its file here. What it returns is validated as
   * these options are; env, args, execArgv, entry, workers and the timeouts may change, the sockets (port,
   * sticky, policy, control, metrics, name) may not. A throw or an invalid result refuses the reload.
   */
  reconfigure: v.optional(
    // Its result is checked as the options are, where it is called (primary.ts): typed loosely here.
    v.pipe(v.custom<() => object | Promise<object>>((f) => typeof f === 'function'), words({ allowed: 'a function () => options' })),
  ),
  /** Handle SIGHUP (reload), SIGTERM/SIGINT (graceful stop, then exit 0; second SIGINT: now). */
  signals: bool(true, 'false'),
});

/** What startCluster() accepts. */
export type ClusterOptions = v.InferInput<typeof schema>;

export type StickyOptions = v.InferInput<typeof stickySchema>;
export type BackoffOptions = NonNullable<ClusterOptions['backoff']>;

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
  readonly logFormat: 'text' | 'json';
  readonly reconfigure: (() => object | Promise<object>) | undefined;
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
    logFormat: o.logFormat,
    reconfigure: o.reconfigure,
    log: o.log,
  });
}

/** Restart delay after the n-th consecutive unstable crash (n >= 1): initial, 2x, 4x, ... capped at max. */
export function backoffDelay(n: number, backoff: ResolvedOptions['backoff']): number {
  return Math.min(backoff.max, backoff.initial * 2 ** Math.min(n - 1, 30));
}

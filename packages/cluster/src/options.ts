import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { ClusterConfigError } from './errors.ts';

export interface StickyOptions {
  /** Port the primary accepts connections on (default: `port`, then the PORT environment variable). */
  port?: number;
  /** Address to bind (default: all interfaces, like `app.listen(port)`). */
  host?: string;
  /**
   * Route by the client address in `X-Forwarded-For` of a connection's first request. `true` trusts the direct
   * peer as the proxy; a list trusts only those proxy addresses (anything else is keyed by its own address).
   */
  trustProxy?: boolean | readonly string[];
}

export interface BackoffOptions {
  /** First restart delay in ms (default 100). Doubles on each consecutive crash. */
  initial?: number;
  /** Ceiling of the restart delay in ms (default 15000). */
  max?: number;
  /** Uptime in ms after which a worker counts as stable and the delay resets (default 30000). */
  stableAfter?: number;
}

export interface ClusterOptions {
  /** The app's entry file (ESM, CommonJS or TypeScript). */
  entry: string;
  /** Worker count: a number or 'max' (CPU count). Default: WORKERS env, else CPU count. */
  workers?: number | 'max';
  /** Sets PORT for the workers (and is the sticky port unless `sticky.port` is given). */
  port?: number;
  /** Route connections by client address through the primary (fallback for state that is not shared). */
  sticky?: boolean | StickyOptions;
  /** Cluster name: prefixes logs, names the control socket. Default: the entry's base name. */
  name?: string;
  /** Wait for the app's explicit `ready()` instead of the first `listening` (PM2's wait_ready). */
  waitReady?: boolean;
  /** A worker not ready within this many ms has FAILED (default 10000). */
  readyTimeout?: number;
  /** A retiring worker still alive this many ms after retirement began is killed (default 5000). */
  killTimeout?: number;
  /** Replace (through the reload path) a worker whose RSS exceeds this: bytes, or '512M', '1G'. */
  maxMemory?: number | string;
  /** How often to sample worker memory when `maxMemory` is set, in ms (default 10000). */
  memoryCheckInterval?: number;
  /** Extra environment for the workers (merged over process.env). */
  env?: Record<string, string | undefined>;
  /** Arguments passed to the entry (process.argv.slice(2) in the worker). */
  args?: readonly string[];
  /** Extra Node flags for the workers. */
  execArgv?: readonly string[];
  backoff?: BackoffOptions;
  /** Consecutive unstable crashes after which a slot is parked (default 10). A reload revives parked slots. */
  maxRestarts?: number;
  /** 'rr': the primary deals connections round robin (default); 'os': workers accept on a shared socket. */
  schedulingPolicy?: 'rr' | 'os';
  /** Control socket for `cluster-session reload|status|stop`: true (default), false, or a socket path. */
  control?: boolean | string;
  /** Where the primary's own messages go (default: stderr, prefixed with the cluster name). */
  log?: (line: string) => void;
  /** Handle SIGHUP (reload), SIGTERM/SIGINT (graceful stop, then exit 0; second SIGINT: now). Default true. */
  signals?: boolean;
}

export interface ResolvedOptions {
  entry: string;
  workers: number;
  port: number | undefined;
  sticky: { port: number; host: string | undefined; trustProxy: boolean | readonly string[] } | undefined;
  name: string;
  waitReady: boolean;
  readyTimeout: number;
  killTimeout: number;
  maxMemory: number | undefined;
  memoryCheckInterval: number;
  env: Record<string, string | undefined>;
  args: readonly string[];
  execArgv: readonly string[];
  backoff: Required<BackoffOptions>;
  maxRestarts: number;
  schedulingPolicy: 'rr' | 'os';
  control: string | false;
  log: ((line: string) => void) | undefined;
}

const KNOWN = new Set([
  'entry', 'workers', 'port', 'sticky', 'name', 'waitReady', 'readyTimeout', 'killTimeout', 'maxMemory',
  'memoryCheckInterval', 'env', 'args', 'execArgv', 'backoff', 'maxRestarts', 'schedulingPolicy', 'control', 'log', 'signals',
]);

function fail(option: string, value: unknown, allowed: string): never {
  let shown: string;
  try {
    shown = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value) ?? value);
  } catch {
    shown = String(value);
  }
  throw new ClusterConfigError(`startCluster: option "${option}" is ${shown}; ${allowed}`);
}

function ms(option: string, value: unknown, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail(option, value, `expected an integer number of milliseconds >= ${min}`);
  }
  return value;
}

function portOf(option: string, value: unknown): number | undefined {
  if (value === undefined || value === '') return undefined;
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) fail(option, value, 'expected a port number 0-65535');
  return n;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 };

/** Parses a byte size: 1048576, '512M', '1.5G'. Returns undefined when the text is not a size. */
export function parseBytes(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return undefined;
  const n = Math.floor(Number(m[1]) * unit);
  return n > 0 ? n : undefined;
}

/** Parses a worker count: a positive integer or 'max'. Returns undefined when invalid. */
export function parseWorkers(value: unknown): number | undefined {
  if (value === 'max') return os.availableParallelism();
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 1024 ? n : undefined;
}

export function defaultName(entry: string): string {
  return path.basename(entry).replace(/\.[cm]?[jt]sx?$/, '') || 'app';
}

/** Validates everything once, where options enter; the rest of the package trusts the result. */
export function resolveOptions(input: ClusterOptions, controlPath: (name: string) => string): ResolvedOptions {
  if (input === null || typeof input !== 'object') fail('options', input, 'expected an object like { entry: "./server.js" }');
  for (const key of Object.keys(input)) {
    if (!KNOWN.has(key)) fail(key, '(unknown option)', `known options are: ${[...KNOWN].join(', ')}`);
  }
  if (typeof input.entry !== 'string' || input.entry === '') fail('entry', input.entry, 'expected the path of the app entry file');
  const entry = path.resolve(input.entry);
  if (!existsSync(entry)) fail('entry', input.entry, `no file at ${entry}; pass the path of your server file`);

  let workers: number;
  if (input.workers !== undefined) {
    workers = parseWorkers(input.workers) ?? fail('workers', input.workers, "expected a positive integer or 'max'");
  } else if (process.env.WORKERS) {
    workers = parseWorkers(process.env.WORKERS) ?? fail('workers (WORKERS env)', process.env.WORKERS, "expected a positive integer or 'max'");
  } else {
    workers = os.availableParallelism();
  }

  const env = input.env ?? {};
  if (typeof env !== 'object' || env === null) fail('env', env, 'expected an object of strings');
  const port = portOf('port', input.port);

  let sticky: ResolvedOptions['sticky'];
  if (input.sticky !== undefined && input.sticky !== false) {
    const s: StickyOptions = input.sticky === true ? {} : input.sticky;
    if (typeof s !== 'object' || s === null) fail('sticky', input.sticky, 'expected true, false or { port, host, trustProxy }');
    const p = portOf('sticky.port', s.port) ?? port ?? portOf('PORT env', env.PORT ?? process.env.PORT);
    if (p === undefined) fail('sticky.port', undefined, 'sticky mode needs a port: pass sticky: { port } or port, or set PORT');
    const tp = s.trustProxy ?? false;
    if (typeof tp !== 'boolean' && !(Array.isArray(tp) && tp.every((a) => typeof a === 'string'))) {
      fail('sticky.trustProxy', tp, 'expected a boolean or a list of proxy addresses');
    }
    if (s.host !== undefined && typeof s.host !== 'string') fail('sticky.host', s.host, 'expected a host address string');
    sticky = { port: p, host: s.host, trustProxy: tp };
  }

  const name = input.name ?? defaultName(entry);
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    fail('name', name, 'expected 1-64 characters of letters, digits, ".", "_" or "-"');
  }

  let maxMemory: number | undefined;
  if (input.maxMemory !== undefined) {
    maxMemory = parseBytes(input.maxMemory) ?? fail('maxMemory', input.maxMemory, "expected bytes or a size like '512M' or '1G'");
  }

  const b = input.backoff ?? {};
  if (typeof b !== 'object' || b === null) fail('backoff', b, 'expected { initial, max, stableAfter } in ms');
  const backoff = {
    initial: ms('backoff.initial', b.initial, 100, 1),
    max: ms('backoff.max', b.max, 15_000, 1),
    stableAfter: ms('backoff.stableAfter', b.stableAfter, 30_000, 1),
  };
  if (backoff.max < backoff.initial) fail('backoff.max', backoff.max, `expected >= backoff.initial (${backoff.initial})`);

  const policy = input.schedulingPolicy ?? 'rr';
  if (policy !== 'rr' && policy !== 'os') fail('schedulingPolicy', policy, "expected 'rr' or 'os'");

  let control: string | false;
  if (input.control === undefined || input.control === true) control = controlPath(name);
  else if (input.control === false) control = false;
  else if (typeof input.control === 'string' && input.control !== '') control = path.resolve(input.control);
  else fail('control', input.control, 'expected true, false or a unix socket path');

  for (const [key, list] of [['args', input.args], ['execArgv', input.execArgv]] as const) {
    if (list !== undefined && !(Array.isArray(list) && list.every((a) => typeof a === 'string'))) fail(key, list, 'expected an array of strings');
  }
  if (input.log !== undefined && typeof input.log !== 'function') fail('log', input.log, 'expected a function (line: string) => void');
  for (const key of ['waitReady', 'signals'] as const) {
    if (input[key] !== undefined && typeof input[key] !== 'boolean') fail(key, input[key], 'expected a boolean');
  }
  const maxRestarts = input.maxRestarts ?? 10;
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) fail('maxRestarts', maxRestarts, 'expected an integer >= 0');

  return {
    entry,
    workers,
    port,
    sticky,
    name,
    waitReady: input.waitReady ?? false,
    readyTimeout: ms('readyTimeout', input.readyTimeout, 10_000, 1),
    killTimeout: ms('killTimeout', input.killTimeout, 5_000, 1),
    maxMemory,
    memoryCheckInterval: ms('memoryCheckInterval', input.memoryCheckInterval, 10_000, 50),
    env,
    args: input.args ?? [],
    execArgv: input.execArgv ?? [],
    backoff,
    maxRestarts,
    schedulingPolicy: policy,
    control,
    log: input.log,
  };
}

/** Restart delay after the n-th consecutive unstable crash (n >= 1): initial, 2x, 4x, ... capped at max. */
export function backoffDelay(n: number, backoff: Required<BackoffOptions>): number {
  return Math.min(backoff.max, backoff.initial * 2 ** Math.min(n - 1, 30));
}

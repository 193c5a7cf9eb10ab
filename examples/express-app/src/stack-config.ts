/**
 * `npm start`'s configuration, read from the environment once and checked before anything is started: the stack's
 * own variables here, the session variables by checkConfig() (the same check every worker would make).
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { checkConfig, ConfigError, redactUrl } from '@cluster-session/session';
import { createLogger, LogConfigError } from './logger.ts';

/** A failure `npm start` explains in two lines: what failed, and what to do about it. */
export class StackError extends Error {
  readonly fix: string;
  readonly exitCode: number;
  constructor(message: string, fix: string, exitCode = 1) {
    super(message);
    this.name = 'StackError';
    this.fix = fix;
    this.exitCode = exitCode;
  }
}

export type Strategy = 'round-robin' | 'least-conn' | 'ip-hash' | 'cookie';
const STRATEGIES: readonly Strategy[] = ['round-robin', 'least-conn', 'ip-hash', 'cookie'];

export interface InstanceSpec {
  id: 'a' | 'b';
  /** The cluster's name: its log prefix and control socket (`cluster-session status --name <cluster>`). */
  cluster: string;
  port: number;
  /** The instance's Prometheus /metrics and workers' /status.json (METRICS_PORTS; PORT+11 for a, PORT+12 for b). */
  metricsPort: number;
}

export interface StackConfig {
  name: string;
  host: string;
  port: number;
  adminPort: number;
  instances: InstanceSpec[];
  workers: string;
  mode: 'store' | 'jwt';
  store: string;
  /** Where the store lives, for the banner (a redis URL without its password, the SQLite file). */
  storeAddress: string | undefined;
  sticky: boolean;
  strategy: Strategy;
  /** Environment for both instances on top of the caller's: one secret and one SQLite file for the whole stack. */
  shared: Record<string, string>;
  /** TLS_CERT / TLS_KEY: the balancer speaks HTTPS (the files are checked by the balancer, which names them). */
  tls: { cert: string; key: string } | undefined;
}

// An env variable that is not a usable value is a configuration error: exit code 2, like the CLI's.
const bad = (message: string, fix: string) => new StackError(message, fix, 2);

function portFrom(env: NodeJS.ProcessEnv, name: string, fallback: number, room = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const port = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(port >= 1 && port + room <= 65535)) {
    const range = room ? ` (1-${65535 - room}: the stack also uses up to ${name}+${room})` : ' (1-65535)';
    throw bad(`${name} is ${JSON.stringify(raw)}: expected a port number${range}`, `set ${name} to a free port, e.g. ${name}=${fallback}, or unset it`);
  }
  return port;
}

/** The stack's name as far as it can be told before the rest is checked (for the prefix of the first lines). */
export function stackName(env: NodeJS.ProcessEnv = process.env): string {
  if (env.STACK_NAME && NAME.test(env.STACK_NAME)) return env.STACK_NAME;
  return /^\d+$/.test(env.PORT || '3000') ? `example-${env.PORT || 3000}` : 'npm start';
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Two ports, comma-separated (one per instance), or `first,first+1` when unset. */
function portPair(env: NodeJS.ProcessEnv, name: string, first: number): [number, number] {
  const listed = (env[name] ?? '').split(',').filter(Boolean);
  if (listed.length !== 0 && listed.length !== 2) {
    throw bad(`${name} is ${JSON.stringify(env[name])}: expected two ports, comma-separated`, `set ${name}=${first},${first + 1}, or unset it`);
  }
  return [0, 1].map((i) => (listed[i] === undefined ? first + i : portFrom({ [name]: listed[i] }, name, first + i))) as [number, number];
}

export function readStackConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): StackConfig {
  const port = portFrom(env, 'PORT', 3000, 12);
  const adminPort = portFrom(env, 'ADMIN_PORT', port + 10);
  const instancePorts = portPair(env, 'INSTANCE_PORTS', port + 1);
  const metricsPorts = portPair(env, 'METRICS_PORTS', port + 11);

  const name = env.STACK_NAME || `example-${port}`;
  if (!NAME.test(name)) {
    throw bad(`STACK_NAME is ${JSON.stringify(name)}: expected letters, digits, '.', '_' or '-' (at most 63)`, `set STACK_NAME=example-${port}, or unset it (the default derives from PORT)`);
  }
  const workers = env.WORKERS || String(availableParallelism());
  if (!/^(max|[1-9]\d{0,3})$/.test(workers)) {
    throw bad(`WORKERS is ${JSON.stringify(workers)}: expected a number of workers per instance or 'max'`, 'set WORKERS=2, or unset it for one per CPU');
  }
  try {
    createLogger(env, new PassThrough());
  } catch (err) {
    if (err instanceof LogConfigError) throw bad(err.message, err.fix);
    throw err;
  }
  const stickyRaw = env.STICKY ?? '';
  if (!['', '0', '1', 'true', 'false'].includes(stickyRaw)) {
    throw bad(`STICKY is ${JSON.stringify(stickyRaw)}: expected 1 or 0`, 'set STICKY=1 for the sticky fallback, or unset it');
  }
  const sticky = stickyRaw === '1' || stickyRaw === 'true';
  const strategy = (env.BALANCER_STRATEGY || (sticky ? 'cookie' : 'round-robin')) as Strategy;
  if (!STRATEGIES.includes(strategy)) {
    throw bad(`BALANCER_STRATEGY is ${JSON.stringify(strategy)}: expected one of ${STRATEGIES.join(', ')}`, 'set BALANCER_STRATEGY=round-robin, or unset it');
  }

  // Separate instances are separate primaries: each would invent its own development secret, and a cookie signed
  // by one would be refused by the other. So the secrets are made once here and both instances get the same ones.
  const production = env.NODE_ENV === 'production';
  const mode = env.SESSION_MODE || 'store';
  const shared: Record<string, string> = { SQLITE_PATH: path.resolve(cwd, env.SQLITE_PATH || path.join('.data', 'sessions.sqlite')) };
  if (!production) {
    shared.SESSION_SECRET = env.SESSION_SECRET || randomBytes(32).toString('base64url');
    if (mode === 'jwt' && !env.JWT_KEYS) shared.JWT_SECRET = env.JWT_SECRET || randomBytes(32).toString('base64url');
  }

  // What each worker will check, checked once here with the environment the workers get.
  const quiet = { warn() {}, error() {} };
  let session: ReturnType<typeof checkConfig>;
  try {
    session = checkConfig(
      { logger: quiet },
      { ...env, ...shared, CLUSTER_SESSION_WORKERS: workers === 'max' ? String(availableParallelism()) : workers, CLUSTER_SESSION_STICKY: sticky ? '1' : '0' },
      cwd,
    );
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const [what, fix] = splitFix(err.message.replace(/^clusterSession: /, ''));
    throw bad(what, fix ?? 'correct the variable named above');
  }

  const cert = env.TLS_CERT || '';
  const key = env.TLS_KEY || '';
  if ((cert === '') !== (key === '')) {
    throw bad(`${cert ? 'TLS_CERT is set without TLS_KEY' : 'TLS_KEY is set without TLS_CERT'}: HTTPS needs both`, 'set TLS_CERT=cert.pem and TLS_KEY=key.pem (PEM files), or unset both for plain HTTP');
  }

  const s = session.store;
  const storeAddress = s.type === 'sqlite' ? s.path : s.type === 'redis' ? redactUrl(s.url) : s.type === 'mongo' && s.url ? redactUrl(s.url) : undefined;
  return {
    name,
    host: env.HOST || '127.0.0.1',
    port,
    adminPort,
    instances: (['a', 'b'] as const).map((id, i) => ({ id, cluster: `${name}-${id}`, port: instancePorts[i]!, metricsPort: metricsPorts[i]! })),
    workers,
    mode: session.mode,
    store: s.type,
    storeAddress,
    sticky,
    strategy,
    shared,
    tls: cert ? { cert: path.resolve(cwd, cert), key: path.resolve(cwd, key) } : undefined,
  };
}

/** "X is wrong. Fix: do Y." -> ["X is wrong.", "do Y."]; several issues (one per line) stay together. */
function splitFix(message: string): [string, string | undefined] {
  if (message.includes('\n')) return [message, undefined];
  const at = message.search(/ Fix(, one of)?: /);
  if (at === -1) return [message, undefined];
  return [message.slice(0, at), message.slice(at).replace(/^ Fix(, one of)?: /, '')];
}

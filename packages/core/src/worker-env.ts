/**
 * The environment contract between a cluster primary, its workers and the session package in them: the cluster
 * primary writes these variables into every worker it forks; the worker side of the cluster package and
 * clusterSession() read them. Written and read only through this module, so the three sides cannot drift.
 *
 * | variable | written by | read by | meaning |
 * |---|---|---|---|
 * | CLUSTER_SESSION_SLOT | primary, per worker | cluster worker | slot number; its presence means "managed by a primary" |
 * | CLUSTER_SESSION_WORKERS | primary | session | worker count (memory store refused above 1 without sticky) |
 * | CLUSTER_SESSION_STICKY | primary | cluster worker, session | '1' when the primary routes by client address |
 * | CLUSTER_SESSION_NAME | primary | (the app) | cluster name |
 * | CLUSTER_SESSION_WAIT_READY | primary | cluster worker | '1': ready on the app's ready(), not on listening |
 * | CLUSTER_SESSION_POLICY | primary | cluster worker | 'rr' (primary deals connections) or 'os' |
 * | CLUSTER_SESSION_HOST | primary (sticky host) | cluster worker | address reported to the app in sticky mode |
 * | CLUSTER_SESSION_METRICS | primary (`metrics` on) | cluster worker | '1': keep Prometheus figures for the primary's /metrics |
 * | PORT | primary (port / sticky port) | the app, cluster worker | the port the app listens on |
 * | SESSION_SECRET | primary (development only) | session | one random secret shared by every worker |
 */
export const WORKER_ENV = {
  slot: 'CLUSTER_SESSION_SLOT',
  workers: 'CLUSTER_SESSION_WORKERS',
  sticky: 'CLUSTER_SESSION_STICKY',
  name: 'CLUSTER_SESSION_NAME',
  waitReady: 'CLUSTER_SESSION_WAIT_READY',
  policy: 'CLUSTER_SESSION_POLICY',
  host: 'CLUSTER_SESSION_HOST',
  metrics: 'CLUSTER_SESSION_METRICS',
  port: 'PORT',
  secret: 'SESSION_SECRET',
} as const;

/** What a primary tells all of its workers. */
export interface ClusterEnv {
  workers: number;
  sticky: boolean;
  name: string;
  waitReady: boolean;
  policy: 'rr' | 'os';
  /** The primary serves /metrics: each worker keeps prom-client figures and answers the primary's scrape. */
  metrics?: boolean | undefined;
  /** The sticky router's bind address, when one was given. */
  host?: string | undefined;
  port?: number | undefined;
  /** A development secret the primary generated for every worker (never set in production). */
  secret?: string | undefined;
}

/** What one worker reads: the cluster's settings plus its own slot. */
export interface WorkerEnv extends ClusterEnv {
  slot: number;
}

type Env = Readonly<Record<string, string | undefined>>;

/** The variables for every worker of a cluster (the slot is added per worker with slotEnv()). */
export function clusterEnv(c: ClusterEnv): Record<string, string> {
  const env: Record<string, string> = {
    [WORKER_ENV.workers]: String(c.workers),
    [WORKER_ENV.sticky]: c.sticky ? '1' : '0',
    [WORKER_ENV.name]: c.name,
    [WORKER_ENV.waitReady]: c.waitReady ? '1' : '0',
    [WORKER_ENV.policy]: c.policy,
  };
  if (c.host) env[WORKER_ENV.host] = c.host;
  if (c.metrics) env[WORKER_ENV.metrics] = '1';
  if (c.port !== undefined) env[WORKER_ENV.port] = String(c.port);
  if (c.secret !== undefined) env[WORKER_ENV.secret] = c.secret;
  return env;
}

export function slotEnv(slot: number): Record<string, string> {
  return { [WORKER_ENV.slot]: String(slot) };
}

const int = (text: string | undefined) => (text !== undefined && /^\d+$/.test(text) ? Number(text) : undefined);

/** This process's contract, or undefined when no primary started it (a plain `node server.js`). */
export function readWorkerEnv(env: Env): WorkerEnv | undefined {
  const slot = int(env[WORKER_ENV.slot]);
  if (slot === undefined) return undefined;
  return {
    slot,
    workers: int(env[WORKER_ENV.workers]) ?? 1,
    sticky: env[WORKER_ENV.sticky] === '1',
    name: env[WORKER_ENV.name] ?? '',
    waitReady: env[WORKER_ENV.waitReady] === '1',
    policy: env[WORKER_ENV.policy] === 'os' ? 'os' : 'rr',
    host: env[WORKER_ENV.host] || undefined,
    metrics: env[WORKER_ENV.metrics] === '1',
    port: int(env[WORKER_ENV.port]),
    secret: env[WORKER_ENV.secret] || undefined,
  };
}

import { ConfigError } from '../errors.ts';
import { redactUrl } from './url.ts';

// The Redis topologies a URL (or REDIS_CLUSTER_NODES) can name, parsed without loading a driver so that a wrong
// value is a startup error naming the part that is wrong. Credentials never appear in a message.

interface HostPort {
  host: string;
  port: number;
}

interface Auth {
  username?: string;
  password?: string;
}

/**
 * Where sessions live. `waitReplicas` > 0: every session write is followed by WAIT, and the request fails (503)
 * unless that many replicas confirmed it, so an acknowledged write survives a failover.
 */
export type RedisTarget =
  | ({ kind: 'standalone'; url: string; tls: boolean; waitReplicas: number } & Auth)
  | ({ kind: 'sentinel'; sentinels: HostPort[]; name: string; db: number; tls: boolean; waitReplicas: number; sentinelUsername?: string; sentinelPassword?: string } & Auth)
  | ({ kind: 'cluster'; nodes: HostPort[]; tls: boolean; waitReplicas: number } & Auth);

const SCHEMES: Record<string, { kind: RedisTarget['kind']; tls: boolean }> = {
  'redis:': { kind: 'standalone', tls: false },
  'rediss:': { kind: 'standalone', tls: true },
  'redis+sentinel:': { kind: 'sentinel', tls: false },
  'rediss+sentinel:': { kind: 'sentinel', tls: true },
  'redis+cluster:': { kind: 'cluster', tls: false },
  'rediss+cluster:': { kind: 'cluster', tls: true },
};
const DEFAULT_PORT = { standalone: 6379, sentinel: 26379, cluster: 6379 } as const;
const EXAMPLES = {
  standalone: 'redis://:password@10.0.0.5:6379/0',
  sentinel: 'redis+sentinel://:password@10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/mymaster/0',
  cluster: 'redis+cluster://:password@10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379',
} as const;
/** Query parameters this package reads; any other is a typo (standalone URLs pass theirs on to ioredis). */
const PARAMS = {
  standalone: ['waitReplicas'],
  sentinel: ['waitReplicas', 'sentinelUsername', 'sentinelPassword'],
  cluster: ['waitReplicas'],
} as const;

function fail(where: string, shown: string, problem: string, example: string): never {
  throw new ConfigError(`clusterSession: ${where} ${JSON.stringify(shown)}: ${problem}. Fix: write it like ${example}.`);
}

function decode(part: string, what: string, where: string, shown: string, example: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return fail(where, shown, `the ${what} has a broken %-escape`, example);
  }
}

/** One `host[:port]` entry (an IPv6 address in brackets), with `fallback` as the port when it has none. */
function hostPort(entry: string, n: number, fallback: number, where: string, shown: string, example: string): HostPort {
  if (entry === '') fail(where, shown, `host #${n} is empty (two commas in a row, or a trailing comma)`, example);
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]]+)(?::(.*))?$/.exec(entry);
  if (!m) fail(where, shown, `host #${n} "${entry}" is not host:port`, example);
  const host = m[1]!.replace(/^\[|\]$/g, '');
  if (!/^[A-Za-z0-9._:-]+$/.test(host)) fail(where, shown, `host #${n} "${m[1]}" has characters a host name cannot have`, example);
  if (m[2] === undefined) return { host, port: fallback };
  if (!/^\d{1,5}$/.test(m[2]) || Number(m[2]) < 1 || Number(m[2]) > 65_535) {
    fail(where, shown, `host #${n} "${entry}" has port "${m[2]}": a port is a number from 1 to 65535`, example);
  }
  return { host, port: Number(m[2]) };
}

function hostList(list: string, fallback: number, where: string, shown: string, example: string): HostPort[] {
  return list.split(',').map((entry, i) => hostPort(entry.trim(), i + 1, fallback, where, shown, example));
}

function dbIndex(segment: string, where: string, shown: string, example: string): number {
  if (!/^\d{1,4}$/.test(segment)) fail(where, shown, `the database "${segment}" is not a number (0, 1, ...)`, example);
  return Number(segment);
}

/**
 * Parses one of
 *   redis[s]://[user:pass@]host[:6379][/db]
 *   redis[s]+sentinel://[user:pass@]host[:26379],host2...[/master name][/db][?sentinelPassword=...]
 *   redis[s]+cluster://[user:pass@]host[:6379],host2...
 * (`rediss` = TLS; every form takes `?waitReplicas=N`). `where` names the option in messages, e.g. "REDIS_URL".
 */
function parseRedisUrl(url: string, where: string): RedisTarget {
  const shown = redactUrl(url);
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*:)\/\//.exec(url)?.[1]?.toLowerCase();
  if (!scheme) fail(where, shown, 'is not a URL (no scheme://)', `${EXAMPLES.standalone}, or ${EXAMPLES.sentinel}, or ${EXAMPLES.cluster}`);
  const form = SCHEMES[scheme];
  if (!form) {
    fail(where, shown, `the scheme "${scheme}//" is not one of ${Object.keys(SCHEMES).map((s) => `${s}//`).join(', ')}`, EXAMPLES.standalone);
  }
  const { kind, tls } = form;
  const example = EXAMPLES[kind].replace(/^redis/, tls ? 'rediss' : 'redis');
  if (url.includes('#')) fail(where, shown, 'has a #fragment, which no Redis URL has (a # in a password must be written %23)', example);

  const rest = url.slice(scheme.length + 2);
  const q = rest.indexOf('?');
  const beforeQuery = q === -1 ? rest : rest.slice(0, q);
  const slash = beforeQuery.indexOf('/');
  const authority = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  const path = slash === -1 ? '' : beforeQuery.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const auth: Auth = {};
  if (at !== -1) {
    const info = authority.slice(0, at);
    const colon = info.indexOf(':');
    const user = decode(colon === -1 ? info : info.slice(0, colon), 'user name', where, shown, example);
    if (colon === -1) fail(where, shown, 'has a user name but no password (user:password@, or :password@ without a user)', example);
    if (user) auth.username = user;
    auth.password = decode(info.slice(colon + 1), 'password', where, shown, example);
  }
  const hosts = authority.slice(at + 1);
  if (hosts === '') fail(where, shown, 'names no host', example);
  const list = hostList(hosts, DEFAULT_PORT[kind], where, shown, example);

  const params = new URLSearchParams(q === -1 ? '' : rest.slice(q + 1));
  const allowed: readonly string[] = PARAMS[kind];
  for (const key of params.keys()) {
    if (kind !== 'standalone' && !allowed.includes(key)) {
      fail(where, shown, `the parameter "${key}" is unknown here (${allowed.join(', ')} are read)`, example);
    }
  }
  const wait = params.get('waitReplicas');
  if (wait !== null && !/^\d{1,2}$/.test(wait)) fail(where, shown, `waitReplicas "${wait}" is not a number of replicas (0, 1, 2, ...)`, `${example}?waitReplicas=1`);
  const waitReplicas = wait === null ? 0 : Number(wait);
  const segments = path === '' ? [] : path.split('/');
  if (segments.at(-1) === '') segments.pop();

  switch (kind) {
    case 'standalone': {
      if (list.length > 1) {
        fail(where, shown, `${list.length} hosts, but redis:// names one server; several hosts are a Sentinel deployment or a Cluster`, `${EXAMPLES.sentinel} or ${EXAMPLES.cluster}`);
      }
      if (segments.length > 1) fail(where, shown, `the path "/${path}" has more than a database number`, example);
      if (segments.length === 1) dbIndex(segments[0]!, where, shown, example);
      // ioredis parses the URL itself (its own query options included); waitReplicas is ours, not an ioredis option.
      params.delete('waitReplicas');
      const query = params.toString();
      return { kind, url: (q === -1 ? url : url.slice(0, scheme.length + 2 + q)) + (query ? `?${query}` : ''), tls, waitReplicas, ...auth };
    }
    case 'sentinel': {
      if (segments.length === 0) {
        fail(where, shown, "the master name is missing: the path is /<name>[/<db>], the name in the sentinels' `sentinel monitor <name> ...`", example);
      }
      if (segments.length > 2) fail(where, shown, `the path "/${path}" has more than a master name and a database number`, example);
      const name = decode(segments[0]!, 'master name', where, shown, example);
      if (!/^[A-Za-z0-9._-]+$/.test(name)) fail(where, shown, `the master name "${name}" has characters Sentinel does not allow`, example);
      const db = segments.length === 2 ? dbIndex(segments[1]!, where, shown, example) : 0;
      const sentinelUsername = params.get('sentinelUsername') ?? undefined;
      const sentinelPassword = params.get('sentinelPassword') ?? undefined;
      return {
        kind,
        sentinels: list,
        name,
        db,
        tls,
        waitReplicas,
        ...auth,
        ...(sentinelUsername ? { sentinelUsername } : {}),
        ...(sentinelPassword !== undefined ? { sentinelPassword } : {}),
      };
    }
    case 'cluster': {
      if (segments.length > 1 || (segments.length === 1 && segments[0] !== '0')) {
        fail(where, shown, `the path "/${path}" selects a database, but a Redis Cluster has only database 0`, example);
      }
      return { kind, nodes: list, tls, waitReplicas, ...auth };
    }
  }
}

/** `REDIS_CLUSTER_NODES` / `store.clusterNodes`: seed nodes of a Cluster, `host:port` each (comma-separated or a list). */
function parseClusterNodes(nodes: string | readonly string[], where: string): RedisTarget {
  const shown = typeof nodes === 'string' ? nodes : nodes.join(',');
  const example = '10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379';
  if (shown.includes('@') || shown.includes('://')) {
    fail(where, shown.replace(/[^,@/]*@/g, '***@'), 'lists host:port entries only; credentials and TLS go in a redis+cluster:// or rediss+cluster:// URL instead', example);
  }
  if (shown.trim() === '') fail(where, shown, 'names no node', example);
  return { kind: 'cluster', nodes: hostList(shown, DEFAULT_PORT.cluster, where, shown, example), tls: false, waitReplicas: 0 };
}

/**
 * The target the config names: `url` or `clusterNodes` from the object, else REDIS_URL or REDIS_CLUSTER_NODES from
 * the environment (setting both of a pair is ambiguous, so an error), else a local Redis.
 */
export function resolveRedisTarget(input: { url?: string; clusterNodes?: string | readonly string[] }, env: Record<string, string | undefined>): { url: string; target: RedisTarget } {
  const pick = (url: string | undefined, nodes: string | readonly string[] | undefined, names: [string, string]) => {
    if (url !== undefined && nodes !== undefined) {
      throw new ConfigError(`clusterSession: ${names[0]} and ${names[1]} are both set: they name two different Redis deployments. Fix: keep one (a Cluster can also be written as ${names[0]}=redis+cluster://host:port,...).`);
    }
    if (nodes !== undefined) {
      const target = parseClusterNodes(nodes, names[1]);
      return { url: `redis+cluster://${(target as { nodes: HostPort[] }).nodes.map((n) => `${n.host.includes(':') ? `[${n.host}]` : n.host}:${n.port}`).join(',')}`, target };
    }
    return url === undefined ? undefined : { url, target: parseRedisUrl(url, names[0]) };
  };
  const fromEnv = (name: string) => (env[name] === '' ? undefined : env[name]);
  return (
    pick(input.url, input.clusterNodes, ['store.url', 'store.clusterNodes']) ??
    pick(fromEnv('REDIS_URL'), fromEnv('REDIS_CLUSTER_NODES'), ['REDIS_URL', 'REDIS_CLUSTER_NODES']) ?? {
      url: 'redis://127.0.0.1:6379',
      target: parseRedisUrl('redis://127.0.0.1:6379', 'REDIS_URL'),
    }
  );
}

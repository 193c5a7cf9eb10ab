import type * as Ioredis from 'ioredis';
import type { RedisTarget } from './redis-url.ts';
import { coalesceWrites } from './redis-coalesce.ts';
import { watchSentinels } from './sentinel-watch.ts';

/**
 * Fail-fast client options: a down Redis answers "no" at once instead of queueing commands forever
 * (tj/connect-redis#373). A command is sent once: ioredis would otherwise resend, after a reconnect, every command
 * still waiting on the old connection, including those that had long timed out and whose request was answered
 * 503 (after a Sentinel failover, writes the client was told failed would then happen on the new master).
 */
export function failFastOptions(storeTimeout: number): Ioredis.RedisOptions {
  return {
    // The commands of one event-loop turn go out in one write: with many requests in flight each one otherwise
    // paid a socket write per command. The clients clusterSession makes itself batch by coalesceWrites instead.
    enableAutoPipelining: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    commandTimeout: storeTimeout,
    connectTimeout: Math.max(storeTimeout, 1000),
    // The first attempt at once (a dropped connection, or a failover's reconnect, usually succeeds straight away:
    // waiting would only widen the window of fast 503s), then back off to at most 2 s and keep going for ever, so
    // service returns by itself.
    retryStrategy: (times: number) => (times === 1 ? 0 : Math.min(100 * 2 ** Math.min(times, 5), 2000)),
  };
}

/** failFastOptions for a client clusterSession makes: batched by coalesceWrites, not auto-pipelining. */
function ownOptions(storeTimeout: number): Ioredis.RedisOptions {
  return { ...failFastOptions(storeTimeout), enableAutoPipelining: false };
}

/**
 * The options a Sentinel deployment needs beyond fail-fast (see also sentinel-watch.ts). Dropping the connection
 * to a partitioned master must not wait `disconnectTimeout` (2 s by default) for a goodbye it can never
 * acknowledge. A master demoted under a live connection answers READONLY, also a reason to ask the sentinels again.
 */
function sentinelOptions(t: Extract<RedisTarget, { kind: 'sentinel' }>, storeTimeout: number): Ioredis.RedisOptions {
  return {
    ...ownOptions(storeTimeout),
    sentinels: t.sentinels,
    name: t.name,
    db: t.db,
    ...(t.username ? { username: t.username } : {}),
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.sentinelUsername ? { sentinelUsername: t.sentinelUsername } : {}),
    ...(t.sentinelPassword !== undefined ? { sentinelPassword: t.sentinelPassword } : {}),
    ...(t.tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
    disconnectTimeout: 100,
    sentinelCommandTimeout: storeTimeout,
    sentinelRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
    reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
  };
}

/**
 * The options a Cluster needs beyond fail-fast. ioredis learns a new slot owner from MOVED replies and from closed
 * connections; a master cut off by a partition gives neither, so the slot map is also re-read every second, which
 * is what bounds the error window of its slots once a replica has taken over.
 *
 * One redirection at most: ioredis Cluster retries a command on a MOVED, ASK, CLUSTERDOWN or closed-connection
 * error even when that error is the late answer to a command that had already timed out. When a partitioned master
 * comes back it answers the writes it got before the cut with CLUSTERDOWN or MOVED, and ioredis replayed them on
 * the new master, seconds later, over newer sessions (the partition suite saw ~100 acknowledged saves undone in 2
 * of 9 runs; a logout could be undone the same way). The timeout counts as the first redirection, so a late answer is
 * never followed; a live command still follows one redirect (a failover or a resharding step).
 */
function clusterOptions(t: Extract<RedisTarget, { kind: 'cluster' }>, storeTimeout: number, user: Record<string, unknown>): Ioredis.ClusterOptions {
  const redisOptions: Ioredis.RedisOptions = {
    ...ownOptions(storeTimeout),
    ...(t.username ? { username: t.username } : {}),
    ...(t.password !== undefined ? { password: t.password } : {}),
    ...(t.tls ? { tls: {} } : {}),
    ...(user.redisOptions as Ioredis.RedisOptions | undefined),
  };
  return {
    // As failFastOptions: each node's connection is batched by coalesceWrites.
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: storeTimeout,
    slotsRefreshInterval: 1000,
    maxRedirections: 1,
    ...user,
    redisOptions,
  };
}

/** The client with coalesceWrites, unless the user's options turned ioredis's own auto-pipelining back on. */
function batched(client: Ioredis.Redis, options: Record<string, unknown>): Ioredis.Redis {
  if (!options.enableAutoPipelining) coalesceWrites(client);
  return client;
}

/** The ioredis client for a target; `options` (the user's `store.options`) win over every default. */
export function createIoredis(ioredis: typeof Ioredis, t: RedisTarget, storeTimeout: number, options: Record<string, unknown>): Ioredis.Redis | Ioredis.Cluster {
  switch (t.kind) {
    case 'standalone':
      return batched(new ioredis.Redis(t.url, { ...ownOptions(storeTimeout), ...options }), options);
    case 'sentinel': {
      const client = new ioredis.Redis({ ...sentinelOptions(t, storeTimeout), ...options });
      // Errors of a sentinel subscription reach the store's log like the client's own.
      watchSentinels(ioredis, client, t, storeTimeout, (err) => client.emit('error', err));
      return batched(client, options);
    }
    case 'cluster': {
      const cluster = new ioredis.Cluster(t.nodes, clusterOptions(t, storeTimeout, options));
      if (!options.enableAutoPipelining) cluster.on('+node', (node: Ioredis.Redis) => coalesceWrites(node));
      return cluster;
    }
  }
}

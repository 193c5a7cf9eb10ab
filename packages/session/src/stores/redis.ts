import type * as Ioredis from 'ioredis';
import type { ResolvedConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { load } from '../load.ts';
import { denyKey, rawRedis, type RawRedis } from './redis-client.ts';
import type * as RedisStoreModule from './redis-store.ts';
import { createIoredis } from './redis-topology.ts';
import { redactUrl } from './url.ts';
import type { DenyFeed } from './deny-view.ts';
import { checkJti, type DenyList, type StoreHandle } from './types.ts';

export { failFastOptions } from './redis-topology.ts';

/** The client the config names: the user's (adopted, never closed by us) or a fail-fast ioredis we own. */
export function redisClient(config: ResolvedConfig): { client: unknown; raw: RawRedis; owned: boolean } {
  const s = config.store;
  if (s.type !== 'redis') throw new Error('unreachable');
  if (s.client !== undefined) {
    const raw = rawRedis(s.client);
    if (!raw) {
      throw new ConfigError(
        'store.client for redis is neither an ioredis client (Redis, Sentinel or Cluster) nor a node-redis 5 client. ' +
          'Fix: pass `new Redis(url)` / `new Cluster(nodes)` from ioredis or `createClient()` from redis, or pass ' +
          'store.url and let clusterSession create the client.',
      );
    }
    return { client: s.client, raw, owned: false };
  }
  const client = createIoredis(load<typeof Ioredis>('ioredis'), s.target, config.storeTimeout, s.options);
  return { client, raw: rawRedis(client)!, owned: true };
}

/** Wraps the client in a store that emits connect/disconnect, so express-session's readiness works. */
export function createRedisHandle(config: ResolvedConfig): StoreHandle {
  const { client, raw, owned } = redisClient(config);
  const s = config.store as Extract<ResolvedConfig['store'], { type: 'redis' }>;
  const address = owned ? redactUrl(s.url) : undefined;
  // Without a listener an 'error' event would crash the process; the request path reports errors instead.
  let lastError = '';
  raw.onError((err: Error) => {
    if (err.message !== lastError) {
      lastError = err.message;
      config.logger.warn(`cluster-session: redis store${address ? ` at ${address}` : ''}: ${err.message}`);
    }
  });
  const { ClusterRedisStore } = load<typeof RedisStoreModule>('./stores/redis-store.ts');
  const store = new ClusterRedisStore(client, {
    prefix: config.prefix,
    ttl: config.ttlSeconds,
    userKey: config.userKey,
    logger: config.logger,
    // WAIT gets half the request budget, so a missing confirmation is reported as such, not as a timeout.
    waitReplicas: config.store.type === 'redis' ? config.store.target.waitReplicas : 0,
    waitMs: Math.max(10, Math.floor(config.storeTimeout / 2)),
  });
  // Before the first connection a request may wait (bounded) for it; once an established connection is lost,
  // requests fail at once rather than each waiting out the reconnect.
  let everReady = raw.isReady();
  raw.onReady(() => {
    everReady = true;
    lastError = '';
    store.emit('connect');
  });
  raw.onClose(() => store.emit('disconnect'));

  return {
    name: 'redis',
    store,
    ...(address ? { address } : {}),
    lastError: () => (raw.isReady() ? undefined : lastError || undefined),
    isUp: () => raw.isReady(),
    whenUp: async (ms) => raw.isReady() || (!everReady && raw.waitReady(ms)),
    ping: () => raw.ping(),
    listUser: (userId) => store.listUser(userId),
    destroyUser: (userId) => store.destroyUser(userId),
    async close() {
      if (owned) await raw.close();
    },
  };
}

/** Revoked JWT ids as `<prefix>~deny:<jti>` keys with SET PX: each expires with its token. */
export function redisDenyList(config: ResolvedConfig): DenyList & DenyFeed {
  const { raw, owned } = redisClient(config);
  if (owned) raw.onError(() => {});
  // A fresh client refuses commands until connected (no offline queue): wait for the first connection, bounded.
  let connected = raw.isReady();
  const ready = async () => {
    if (!connected) connected = await raw.waitReady(config.storeTimeout);
  };
  // The feed (live entries by expiry, and a stamp) shares one hash tag, so the script runs in one slot on a Cluster.
  const feed = [`{${config.prefix}~deny-feed}:live`, `{${config.prefix}~deny-feed}:stamp`];
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      await ready();
      const ms = Math.ceil(expiresAtMs - Date.now());
      if (ms <= 0) return;
      await raw.setPx(denyKey(config.prefix, jti), '1', ms);
      await raw.script(FEED_ADD, feed, [jti, String(Math.ceil(expiresAtMs)), String(Date.now())]);
    },
    async has(jti) {
      checkJti(jti);
      await ready();
      return raw.exists(denyKey(config.prefix, jti));
    },
    async stamp() {
      await ready();
      return String((await raw.get(feed[1]!)) ?? '0');
    },
    async live() {
      await ready();
      const flat = (await raw.script(FEED_LIVE, [feed[0]!], [String(Date.now())])) as string[];
      const out: Array<[string, number]> = [];
      for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, Number(flat[i + 1])]);
      return out;
    },
    async close() {
      if (owned) await raw.close();
    },
  };
}

/** Drops expired entries, keeps the later expiry of a jti, bumps the stamp: one atomic step. */
const FEED_ADD =
  "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3]) " +
  "local old = redis.call('ZSCORE', KEYS[1], ARGV[1]) " +
  "if (not old) or tonumber(old) < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end " +
  "return redis.call('INCR', KEYS[2])";
const FEED_LIVE = "return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES')";

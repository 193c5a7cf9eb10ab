import { Redis, type RedisOptions } from 'ioredis';
import { RedisStore } from 'connect-redis';
import type { SessionData } from 'express-session';
import type { Logger, ResolvedConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { parseSession, userOf, expiresAt } from '../serializer.ts';
import { rawRedis, type RawRedis } from './redis-client.ts';
import type { StoreHandle } from './types.ts';

type Cb = (err?: unknown, data?: any) => void;

/** Fail-fast client options: a down Redis answers "no" at once instead of queueing commands forever (tj/connect-redis#373). */
export function failFastOptions(storeTimeout: number): RedisOptions {
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: storeTimeout,
    connectTimeout: Math.max(storeTimeout, 1000),
    // Keep reconnecting for ever, backing off to at most 2 s, so service returns by itself.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times, 5), 2000),
  };
}

/** Key-space helpers shared with the deny list. `~` never occurs in a generated session id, so no clash with sessions. */
export const userIndexKey = (prefix: string, userId: string) => `${prefix}~user:{${userId}}`;
export const denyKey = (prefix: string, jti: string) => `${prefix}~deny:${jti}`;

async function inChunks<T, R>(items: T[], size: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += size) out.push(...(await Promise.all(items.slice(i, i + size).map(fn))));
  return out;
}

function reply<T>(cb: Cb | undefined, p: Promise<T>): Promise<T> {
  if (!cb) return p;
  p.then((v) => cb(null, v), (e) => cb(e));
  return p;
}

/**
 * connect-redis 8 with what it lacks: Cluster-aware ids/all/length/clear (SCAN every master, per-key commands, so
 * no CROSSSLOT), a per-user index for logoutEverywhere() (hash-tagged set, one slot per user), and a parser that
 * treats a corrupt value as no session.
 */
export class ClusterRedisStore extends RedisStore {
  readonly raw: RawRedis;
  readonly userKey: string;
  readonly defaultTtl: number;

  constructor(client: unknown, opts: { prefix: string; ttl: number; userKey: string; logger: Logger }) {
    const raw = rawRedis(client);
    if (!raw) throw new ConfigError('redis store: the client is neither ioredis nor node-redis 5');
    super({ client, prefix: opts.prefix, ttl: opts.ttl, serializer: { parse: (s: string) => parseSession(s, opts.logger) as SessionData, stringify: JSON.stringify } });
    this.raw = raw;
    this.userKey = opts.userKey;
    this.defaultTtl = opts.ttl;
  }

  override set(sid: string, sess: SessionData, cb?: Cb): Promise<any> {
    return reply(cb, this.setAndIndex(sid, sess));
  }

  private async setAndIndex(sid: string, sess: SessionData): Promise<void> {
    const user = userOf(sess, this.userKey);
    if (!user) return void (await super.set(sid, sess));
    // The session write and its index update go out together: one round trip of latency, not two. The index
    // lives as long as its longest-lived session; stale members are harmless (DEL of a gone key counts 0).
    const ms = Math.max(1000, Math.ceil(expiresAt(sess, this.defaultTtl) - Date.now()));
    await Promise.all([super.set(sid, sess), this.raw.addToSet(userIndexKey(this.prefix, user), sid, ms)]);
  }

  private sessionKeys(): Promise<string[]> {
    return this.raw.scanAll(`${this.prefix}*`, this.scanCount).then((keys) => keys.filter((k) => !k.startsWith(`${this.prefix}~`)));
  }

  override ids(cb?: Cb): Promise<any> {
    return reply(cb, this.sessionKeys().then((keys) => keys.map((k) => k.slice(this.prefix.length))));
  }

  override length(cb?: Cb): Promise<any> {
    return reply(cb, this.sessionKeys().then((keys) => keys.length));
  }

  override clear(cb?: Cb): Promise<any> {
    const run = async () => {
      // Sessions and user indexes go; deny-list entries stay (clearing sessions must not un-revoke tokens).
      const keys = await this.raw.scanAll(`${this.prefix}*`, this.scanCount);
      const deny = denyKey(this.prefix, '');
      await inChunks(keys.filter((k) => !k.startsWith(deny)), 100, (k) => this.raw.del(k));
    };
    return reply(cb, run());
  }

  override all(cb?: Cb): Promise<any> {
    const run = async () => {
      const keys = await this.sessionKeys();
      const values = await inChunks(keys, 100, (k) => this.raw.get(k));
      const out: SessionData[] = [];
      values.forEach((v, i) => {
        if (v === null) return;
        const sess = this.serializer.parse(v) as SessionData | null;
        if (sess) out.push(Object.assign(sess, { id: keys[i]!.slice(this.prefix.length) }));
      });
      return out;
    };
    return reply(cb, run());
  }

  async destroyUser(userId: string): Promise<number> {
    const key = userIndexKey(this.prefix, userId);
    const sids = await this.raw.members(key);
    const deleted = await inChunks(sids, 100, (sid) => this.raw.del(this.prefix + sid));
    await this.raw.del(key);
    return deleted.reduce((a, b) => a + Number(b), 0);
  }
}

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
  const client = new Redis(s.url, { ...failFastOptions(config.storeTimeout), ...s.options });
  return { client, raw: rawRedis(client)!, owned: true };
}

/** Wraps the client in a store that emits connect/disconnect, so express-session's readiness works. */
export function createRedisHandle(config: ResolvedConfig): StoreHandle {
  const { client, raw, owned } = redisClient(config);
  // Without a listener an 'error' event would crash the process; the request path reports errors instead.
  let lastError = '';
  raw.onError((err: Error) => {
    if (err.message !== lastError) {
      lastError = err.message;
      config.logger.warn(`cluster-session: redis store: ${err.message}`);
    }
  });
  const store = new ClusterRedisStore(client, { prefix: config.prefix, ttl: config.ttl, userKey: config.userKey, logger: config.logger });
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
    isUp: () => raw.isReady(),
    whenUp: async (ms) => raw.isReady() || (!everReady && raw.waitReady(ms)),
    ping: () => raw.ping(),
    destroyUser: (userId) => store.destroyUser(userId),
    async close() {
      if (owned) await raw.close();
    },
  };
}

import { once } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisStore } from 'connect-redis';
import type { SessionData } from 'express-session';
import type { Logger, ResolvedConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { parseSession, userOf, expiresAt } from '../serializer.ts';
import type { StoreHandle } from './types.ts';

type Cb = (err?: unknown, data?: any) => void;

/** The subset of ioredis (standalone, Sentinel, Cluster) this module calls directly. */
export interface IoredisLike {
  status: string;
  isCluster?: boolean;
  nodes?(role: 'master'): IoredisLike[];
  scan(cursor: string, ...args: (string | number)[]): Promise<[string, string[]]>;
  get(key: string): Promise<string | null>;
  del(...keys: string[]): Promise<number>;
  sadd(key: string, member: string): Promise<number>;
  smembers(key: string): Promise<string[]>;
  pexpire(key: string, ms: number): Promise<number>;
  pttl(key: string): Promise<number>;
  set(...args: (string | number)[]): Promise<unknown>;
  exists(key: string): Promise<number>;
  ping(): Promise<string>;
  pipeline(): { sadd(key: string, member: string): any; pttl(key: string): any; exec(): Promise<Array<[Error | null, unknown]> | null> };
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, fn: (...a: any[]) => void): unknown;
  off(event: string, fn: (...a: any[]) => void): unknown;
}

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

const isIoredis = (c: unknown): c is IoredisLike =>
  typeof c === 'object' && c !== null && typeof (c as IoredisLike).scan === 'function' && typeof (c as IoredisLike).sadd === 'function';

/** Key-space helpers shared with the deny list. `~` never occurs in a generated session id, so no clash with sessions. */
export const userIndexKey = (prefix: string, userId: string) => `${prefix}~user:{${userId}}`;
export const denyKey = (prefix: string, jti: string) => `${prefix}~deny:${jti}`;

/** Every key matching `pattern`, scanning each master of a Cluster (SCAN on a Cluster client only sees one node). */
export async function scanAll(client: IoredisLike, pattern: string, count = 200): Promise<string[]> {
  const nodes = client.isCluster && client.nodes ? client.nodes('master') : [client];
  const keys = new Set<string>();
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, batch] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      for (const k of batch) keys.add(k);
      cursor = next;
    } while (cursor !== '0');
  }
  return [...keys];
}

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
  readonly raw: IoredisLike;
  readonly userKey: string;
  readonly defaultTtl: number;

  constructor(client: IoredisLike, opts: { prefix: string; ttl: number; userKey: string; logger: Logger }) {
    super({ client, prefix: opts.prefix, ttl: opts.ttl, serializer: { parse: (s: string) => parseSession(s, opts.logger) as SessionData, stringify: JSON.stringify } });
    this.raw = client;
    this.userKey = opts.userKey;
    this.defaultTtl = opts.ttl;
  }

  override set(sid: string, sess: SessionData, cb?: Cb): Promise<any> {
    return reply(cb, this.setAndIndex(sid, sess));
  }

  private async setAndIndex(sid: string, sess: SessionData): Promise<void> {
    const user = userOf(sess, this.userKey);
    if (!user) return void (await super.set(sid, sess));
    // The session write and its index update go out together: one round trip of latency, not two.
    await Promise.all([super.set(sid, sess), this.index(userIndexKey(this.prefix, user), sid, expiresAt(sess, this.defaultTtl) - Date.now())]);
  }

  /** Adds `sid` to a user's index set; the set lives as long as its longest-lived session (stale members are harmless). */
  private async index(key: string, sid: string, ttlMs: number): Promise<void> {
    const ms = Math.max(1000, Math.ceil(ttlMs));
    // Both commands touch one key (one slot), so this pipeline is valid on a Cluster too.
    const replies = (await this.raw.pipeline().sadd(key, sid).pttl(key).exec()) ?? [];
    for (const [err] of replies) if (err) throw err;
    if (Number(replies[1]?.[1]) < ms) await this.raw.pexpire(key, ms);
  }

  private sessionKeys(): Promise<string[]> {
    return scanAll(this.raw, `${this.prefix}*`, this.scanCount).then((keys) => keys.filter((k) => !k.startsWith(`${this.prefix}~`)));
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
      const keys = await scanAll(this.raw, `${this.prefix}*`, this.scanCount);
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
    const sids = await this.raw.smembers(key);
    const deleted = await inChunks(sids, 100, (sid) => this.raw.del(this.prefix + sid));
    await this.raw.del(key);
    return deleted.reduce((a, b) => a + b, 0);
  }
}

/** Resolves true once the client is ready, false after `ms` (never rejects). */
export async function waitReady(client: IoredisLike, ms: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    await once(client as unknown as NodeJS.EventEmitter, 'ready', { signal: ac.signal });
    return true;
  } catch {
    return client.status === 'ready';
  } finally {
    clearTimeout(timer);
  }
}

/** Creates (or adopts) the Redis client and wraps it in a store that emits connect/disconnect. */
export function createRedisHandle(config: ResolvedConfig): StoreHandle {
  const s = config.store;
  if (s.type !== 'redis') throw new Error('unreachable');
  let client: IoredisLike;
  let owned = false;
  if (s.client !== undefined) {
    if (!isIoredis(s.client)) {
      throw new ConfigError(
        'store.client for redis is not an ioredis client (Redis, Sentinel or Cluster). Fix: pass `new Redis(url)` / ' +
          '`new Cluster(nodes)` from ioredis, or pass store.url and let clusterSession create the client.',
      );
    }
    client = s.client;
  } else {
    client = new Redis(s.url, { ...failFastOptions(config.storeTimeout), ...s.options }) as unknown as IoredisLike;
    owned = true;
  }
  // Without a listener an ioredis 'error' event would crash the process; the request path reports errors instead.
  let lastError = '';
  client.on('error', (err: Error) => {
    if (err.message !== lastError) {
      lastError = err.message;
      config.logger.warn(`cluster-session: redis store: ${err.message}`);
    }
  });
  const store = new ClusterRedisStore(client, { prefix: config.prefix, ttl: config.ttl, userKey: config.userKey, logger: config.logger });
  // Before the first connection a request may wait (bounded) for it; once an established connection is lost,
  // requests fail at once rather than each waiting out the reconnect.
  let everReady = client.status === 'ready';
  client.on('ready', () => {
    everReady = true;
    lastError = '';
    store.emit('connect');
  });
  client.on('close', () => store.emit('disconnect'));
  const isUp = () => client.status === 'ready';

  return {
    name: 'redis',
    store,
    isUp,
    async whenUp(ms) {
      if (isUp()) return true;
      if (everReady) return false;
      return waitReady(client, ms);
    },
    async ping() {
      await client.ping();
    },
    destroyUser: (userId) => store.destroyUser(userId),
    async close() {
      if (!owned) return;
      try {
        await client.quit();
      } catch {
        client.disconnect();
      }
    },
  };
}

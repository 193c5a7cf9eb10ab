import { RedisStore } from 'connect-redis';
import type { SessionData } from 'express-session';
import type { Logger } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { parseSession, userOf, expiresAt } from '../serializer.ts';
import { denyKey, rawRedis, userIndexKey, type RawRedis } from './redis-client.ts';

type Cb = (err?: unknown, data?: any) => void;

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

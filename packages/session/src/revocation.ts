import type * as Mongodb from 'mongodb';
import type { ResolvedConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { load } from './load.ts';
import { withTimeout } from './middleware.ts';
import { mongoClientOptions } from './stores/mongo.ts';
import { redisClient } from './stores/redis.ts';
import { denyKey } from './stores/redis-client.ts';
import { openDatabase, retry } from './stores/sqlite.ts';

/** Revoked token ids (JWT `jti`), each remembered until its token would have expired anyway. */
export interface DenyList {
  add(jti: string, expiresAtMs: number): Promise<void>;
  has(jti: string): Promise<boolean>;
  close(): Promise<void>;
}

function checkJti(jti: string): void {
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 256) {
    throw new TypeError('jti must be a non-empty string of at most 256 characters');
  }
}

function redisDenyList(config: ResolvedConfig): DenyList {
  const { raw, owned } = redisClient(config);
  if (owned) raw.onError(() => {});
  // A fresh client refuses commands until connected (no offline queue): wait for the first connection, bounded.
  let connected = raw.isReady();
  const ready = async () => {
    if (!connected) connected = await raw.waitReady(config.storeTimeout);
  };
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      await ready();
      const ms = Math.ceil(expiresAtMs - Date.now());
      if (ms > 0) await raw.setPx(denyKey(config.prefix, jti), '1', ms);
    },
    async has(jti) {
      checkJti(jti);
      await ready();
      return raw.exists(denyKey(config.prefix, jti));
    },
    async close() {
      if (owned) await raw.close();
    },
  };
}

function mongoDenyList(config: ResolvedConfig & { store: { type: 'mongo' } }): DenyList {
  const s = config.store;
  const own = s.client === undefined;
  const { MongoClient } = load<typeof Mongodb>('mongodb');
  const client = own ? new MongoClient(s.url!, mongoClientOptions(config.storeTimeout)) : (s.client as Mongodb.MongoClient);
  const coll = client.db(s.dbName).collection<{ _id: string; expires: Date }>(`${config.collection}_denylist`);
  // The TTL index only tidies up; `has` checks the expiry itself (some servers run no TTL monitor).
  let indexed = false;
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      if (expiresAtMs <= Date.now()) return;
      if (!indexed) {
        await coll.createIndex({ expires: 1 }, { expireAfterSeconds: 0 });
        indexed = true;
      }
      await coll.updateOne({ _id: jti }, { $set: { expires: new Date(expiresAtMs) } }, { upsert: true });
    },
    async has(jti) {
      checkJti(jti);
      return (await coll.countDocuments({ _id: jti, expires: { $gt: new Date() } }, { limit: 1 })) > 0;
    },
    async close() {
      if (own) await client.close();
    },
  };
}

function sqliteDenyList(config: ResolvedConfig & { store: { type: 'sqlite' } }): DenyList {
  const db = openDatabase(config.store.path);
  const t = `${config.collection}_denylist`;
  db.exec(`CREATE TABLE IF NOT EXISTS ${t} (jti TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID`);
  const add = db.prepare(`INSERT INTO ${t} (jti, expires) VALUES (?, ?) ON CONFLICT(jti) DO UPDATE SET expires = max(expires, excluded.expires)`);
  const has = db.prepare(`SELECT 1 FROM ${t} WHERE jti = ? AND expires > ?`);
  const sweep = db.prepare(`DELETE FROM ${t} WHERE expires <= ?`);
  const timer = setInterval(() => void retry(() => sweep.run(Date.now()), config.storeTimeout).catch(() => {}), 60_000);
  timer.unref();
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      if (expiresAtMs > Date.now()) await retry(() => add.run(jti, Math.ceil(expiresAtMs)), config.storeTimeout);
    },
    async has(jti) {
      checkJti(jti);
      return (await retry(() => has.get(jti, Date.now()), config.storeTimeout)) !== undefined;
    },
    async close() {
      clearInterval(timer);
      if (db.isOpen) db.close();
    },
  };
}

function memoryDenyList(): DenyList {
  const entries = new Map<string, number>();
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      if (expiresAtMs > Date.now()) entries.set(jti, Math.max(expiresAtMs, entries.get(jti) ?? 0));
      // Amortised sweep: keeps the map bounded by the live revocations.
      if (entries.size % 256 === 0) for (const [k, exp] of entries) if (exp <= Date.now()) entries.delete(k);
    },
    async has(jti) {
      checkJti(jti);
      const exp = entries.get(jti);
      if (exp === undefined) return false;
      if (exp > Date.now()) return true;
      entries.delete(jti);
      return false;
    },
    async close() {
      entries.clear();
    },
  };
}

/**
 * A deny list for revoked JWTs on the configured store (Redis SET PX, a MongoDB collection, a SQLite table, or a
 * process-local map), each entry expiring with its token. Calls are bounded by `storeTimeout`.
 */
export function createDenyList(config: ResolvedConfig): DenyList {
  const s = config.store;
  const list =
    s.type === 'redis'
      ? redisDenyList(config)
      : s.type === 'mongo'
        ? mongoDenyList(config as ResolvedConfig & { store: typeof s })
        : s.type === 'sqlite'
          ? sqliteDenyList(config as ResolvedConfig & { store: typeof s })
          : s.type === 'memory'
            ? memoryDenyList()
            : undefined;
  if (!list) throw new ConfigError(`createDenyList: unknown store ${JSON.stringify(s)}`);
  const bounded = (what: string) => `${s.type} deny list ${what}`;
  return {
    add: (jti, exp) => withTimeout(list.add(jti, exp), config.storeTimeout, bounded('add')),
    has: (jti) => withTimeout(list.has(jti), config.storeTimeout, bounded('has')),
    close: () => list.close(),
  };
}

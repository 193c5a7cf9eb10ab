import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryStore } from 'express-session';
import type * as Mongodb from 'mongodb';
import type * as Flexible from 'rate-limiter-flexible';
import { deadline } from '@cluster-session/core';
import type { ResolvedConfig } from './config.ts';
import { ConfigError, StoreUnavailableError } from './errors.ts';
import { load } from './load.ts';
import { mongoClientOptions } from './stores/mongo-url.ts';
import { redisClient } from './stores/redis.ts';
import { isBusy, openDatabase, whileBusy } from './stores/sqlite-db.ts';

/** One counter kind in the shared store: `points` failures allowed per `durationSeconds` window. */
interface CounterSpec {
  keyPrefix: string;
  points: number;
  durationSeconds: number;
}

/**
 * rate-limiter-flexible limiters on the store clusterSession() is configured with, so a count made by one worker
 * is the count every worker and instance reads: RateLimiterRedis (atomic Lua INCR+PEXPIRE, ioredis or node-redis,
 * standalone/Sentinel/Cluster), RateLimiterMongo (findOneAndUpdate upsert), RateLimiterSQLite on node:sqlite (one
 * UPSERT ... RETURNING statement, through the better-sqlite3 calling convention it already speaks), and
 * RateLimiterMemory for the process-local memory store.
 */
export interface CounterStore {
  readonly kind: 'redis' | 'mongo' | 'sqlite' | 'memory';
  make(spec: CounterSpec): Flexible.RateLimiterAbstract;
  /** Runs one limiter call, bounded by storeTimeout (then StoreUnavailableError, 503), after the store is ready. */
  run<T>(what: string, fn: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * node:sqlite's DatabaseSync dressed as the part of better-sqlite3 that RateLimiterSQLite calls: `prepare()`
 * (statements cached by text) and `transaction(fn)`, which may run `fn` as is because every statement the limiter
 * sends is a single atomic UPSERT/SELECT/DELETE. No `run` property: the limiter tells the two drivers apart by it.
 */
function betterSqliteShape(db: DatabaseSync) {
  const cache = new Map<string, StatementSync>();
  return {
    prepare(sql: string) {
      let st = cache.get(sql);
      if (!st) cache.set(sql, (st = db.prepare(sql)));
      const stmt = st;
      return { run: (...a: never[]) => stmt.run(...a), get: (...a: never[]) => stmt.get(...a), all: (...a: never[]) => stmt.all(...a) };
    },
    transaction: <F extends (...a: never[]) => unknown>(fn: F) => fn,
  };
}

export function createCounterStore(config: ResolvedConfig, table: string): CounterStore {
  const rlf = load<typeof Flexible>('rate-limiter-flexible');
  const s = config.store;
  const timeout = config.storeTimeout;
  const bounded = <T>(what: string, work: Promise<T>) =>
    deadline(work, timeout, () => new StoreUnavailableError(`${s.type} store did not answer the login throttle's ${what} within ${timeout} ms`));
  const failed = (what: string, err: unknown) =>
    err instanceof StoreUnavailableError ? err : new StoreUnavailableError(`${s.type} store failed on the login throttle's ${what}: ${(err as Error)?.message ?? err}`, { cause: err });

  switch (s.type) {
    case 'redis': {
      const { client, raw, owned } = redisClient(config);
      if (owned) raw.onError(() => {});
      // Our own client has no offline queue: wait (bounded) for the first connection rather than fail at once.
      let connected = raw.isReady();
      return {
        kind: 'redis',
        make: (spec) =>
          new rlf.RateLimiterRedis({
            storeClient: client,
            useRedisPackage: raw.kind === 'node-redis',
            keyPrefix: `${config.prefix}~${spec.keyPrefix}`,
            points: spec.points,
            duration: spec.durationSeconds,
          }),
        async run(what, fn) {
          try {
            if (!connected) connected = await raw.waitReady(timeout);
            return await bounded(what, fn());
          } catch (err) {
            throw failed(what, err);
          }
        },
        close: async () => void (owned && (await raw.close())),
      };
    }
    case 'mongo': {
      const { MongoClient } = load<typeof Mongodb>('mongodb');
      const own = s.client === undefined;
      const client = own ? new MongoClient(s.url!, mongoClientOptions(timeout, s.url)) : (s.client as Mongodb.MongoClient);
      const dbName = s.dbName ?? client.db().databaseName;
      const coll = client.db(dbName).collection(table);
      // Created here, awaited, retried after a failure: the limiter's own attempt logs to the console and is never retried.
      let indexed: Promise<void> | undefined;
      const ensure = () =>
        (indexed ??= Promise.all([coll.createIndex({ expire: -1 }, { expireAfterSeconds: 0 }), coll.createIndex({ key: 1 }, { unique: true })]).then(
          () => undefined,
          (err) => {
            indexed = undefined;
            throw err;
          },
        ));
      return {
        kind: 'mongo',
        make: (spec) =>
          new rlf.RateLimiterMongo({
            storeClient: client,
            dbName,
            tableName: table,
            disableIndexesCreation: true,
            keyPrefix: spec.keyPrefix,
            points: spec.points,
            duration: spec.durationSeconds,
          }),
        async run(what, fn) {
          try {
            return await bounded(what, ensure().then(fn));
          } catch (err) {
            throw failed(what, err);
          }
        },
        close: async () => void (own && (await client.close())),
      };
    }
    case 'sqlite': {
      const db = openDatabase(s.path);
      // The limiter's own CREATE TABLE runs in a promise that throws, unhandled, when another process holds the
      // lock at that moment: create it here (the same columns), retrying as the session table is.
      whileBusy(() =>
        db.exec(`CREATE TABLE IF NOT EXISTS ${table} (key TEXT PRIMARY KEY, points INTEGER NOT NULL DEFAULT 0, expire INTEGER)`),
      );
      const shaped = betterSqliteShape(db);
      const timers: Array<{ _clearExpiredTimeoutId?: NodeJS.Timeout }> = [];
      return {
        kind: 'sqlite',
        make(spec) {
          const limiter = new rlf.RateLimiterSQLite({
            storeClient: shaped,
            storeType: 'better-sqlite3',
            tableName: table,
            tableCreated: true,
            clearExpiredByTimeout: true,
            keyPrefix: spec.keyPrefix,
            points: spec.points,
            duration: spec.durationSeconds,
          });
          timers.push(limiter as never);
          return limiter;
        },
        async run(what, fn) {
          // Another process holding the write lock: retry, as the session store does, within the budget.
          const until = Date.now() + timeout;
          for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
            try {
              return await fn();
            } catch (err) {
              if (!isBusy(err) || Date.now() + delay > until) throw failed(what, err);
              await sleep(delay);
            }
          }
        },
        async close() {
          for (const t of timers) clearTimeout(t._clearExpiredTimeoutId);
          if (db.isOpen) db.close();
        },
      };
    }
    case 'custom':
      // An express-session Store has get/set/destroy, not the atomic counters a limit shared by every worker needs;
      // a MemoryStore is process-local, and so are in-memory counters.
      if (s.instance instanceof MemoryStore) return memoryCounters(rlf);
      throw new ConfigError(
        `loginThrottle: the session store is a ${s.instance.constructor?.name ?? 'custom'} Store instance, which has no atomic counters to share the failure counts between workers. ` +
          "Fix: use store 'redis', 'mongo' or 'sqlite' (or a URL) for clusterSession, or drop loginThrottle and limit logins at the balancer (--rate-limit).",
      );
    case 'memory':
      return memoryCounters(rlf);
  }
}

function memoryCounters(rlf: typeof Flexible): CounterStore {
  return {
    kind: 'memory',
    make: (spec) => new rlf.RateLimiterMemory({ keyPrefix: spec.keyPrefix, points: spec.points, duration: spec.durationSeconds }),
    run: (_what, fn) => fn(),
    close: async () => {},
  };
}

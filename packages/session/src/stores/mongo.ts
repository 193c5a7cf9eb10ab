import type * as Mongodb from 'mongodb';
import type { ResolvedConfig } from '../config.ts';
import { ConfigError } from '../errors.ts';
import { load } from '../load.ts';
import type * as MongoStoreModule from './mongo-store.ts';
import { checkMongoUrl, mongoClientOptions } from './mongo-url.ts';
import { alwaysUp, checkJti, type DenyList, type StoreHandle } from './types.ts';
import { redactUrl } from './url.ts';

export function createMongoHandle(config: ResolvedConfig): StoreHandle {
  const s = config.store;
  if (s.type !== 'mongo') throw new Error('unreachable');
  const { MongoClient } = load<typeof Mongodb>('mongodb');
  const { ClusterMongoStore } = load<typeof MongoStoreModule>('./stores/mongo-store.ts');
  let client: Mongodb.MongoClient;
  let owned = false;
  if (s.client !== undefined) {
    if (!(s.client instanceof MongoClient)) {
      throw new ConfigError('store.client for mongo is not a MongoClient from the mongodb package. Fix: pass `new MongoClient(url)` or store.url.');
    }
    client = s.client;
  } else {
    // Not connected here: the driver connects on first use and reconnects by itself, so a MongoDB that is down at
    // startup only makes requests 503 until it is back. Its URL parser sees what checkMongoUrl() does not check.
    const where = 'MONGO_URL (or store.url)';
    for (const warning of checkMongoUrl(s.url!, where)) config.logger.warn(`cluster-session: mongo store: ${warning}`);
    try {
      client = new MongoClient(s.url!, mongoClientOptions(config.storeTimeout, s.url));
    } catch (err) {
      throw new ConfigError(`clusterSession: ${where} ${JSON.stringify(redactUrl(s.url!))}: the MongoDB driver refuses it: ${(err as Error).message}. Fix: correct that part of the URL.`, { cause: err });
    }
    owned = true;
  }
  const store = new ClusterMongoStore(client, {
    ...(s.dbName ? { dbName: s.dbName } : {}),
    collection: config.collection,
    ttl: config.ttlSeconds,
    userKey: config.userKey,
    logger: config.logger,
  });
  let indexed: Promise<void> | undefined;
  const ensure = () => {
    indexed ??= store.ensureIndexes().catch((err: Error) => {
      indexed = undefined;
      config.logger.warn(`cluster-session: mongo store: could not create indexes yet (${err.message}); will retry`);
    });
    return indexed;
  };
  void ensure();

  return {
    name: 'mongo',
    store,
    ...(owned ? { address: redactUrl(s.url!) } : {}),
    ...alwaysUp,
    async ping() {
      await client.db(s.dbName).command({ ping: 1 });
      await ensure();
    },
    listUser: (userId) => store.listUser(userId),
    destroyUser: (userId) => store.destroyUser(userId),
    async close() {
      if (owned) await client.close();
    },
  };
}

/** Revoked JWT ids in `<collection>_denylist`, with a TTL index to tidy up. */
export function mongoDenyList(config: ResolvedConfig & { store: { type: 'mongo' } }): DenyList {
  const s = config.store;
  const own = s.client === undefined;
  const { MongoClient } = load<typeof Mongodb>('mongodb');
  const client = own ? new MongoClient(s.url!, mongoClientOptions(config.storeTimeout, s.url)) : (s.client as Mongodb.MongoClient);
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

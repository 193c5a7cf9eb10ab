import { MongoClient } from 'mongodb';
import { conformance } from './conformance.ts';
import { startJongo } from './fixtures/jongodb.ts';

conformance('mongo', async () => {
  const mongo = await startJongo();
  const admin = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 2000 });
  // A collection of its own, so a shared MONGO_URL server is safe to clear.
  const collection = `sessions_conformance_${process.pid}`;
  const coll = admin.db().collection<{ _id: string; expires: Date; session: unknown }>(collection);
  return {
    store: { type: 'mongo', url: mongo.url },
    options: { collection },
    multiProcess: true,
    async expiryOf(_served, sid) {
      return (await coll.findOne({ _id: sid }))?.expires.getTime();
    },
    async corrupt(_served, sid) {
      await coll.updateOne({ _id: sid }, { $set: { session: '{"cookie": not json' } });
    },
    ...(mongo.controllable
      ? {
          outage: { stop: () => mongo.stop(), start: () => mongo.start(), failing: 'read' as const },
          restart: {
            persistent: false,
            async run() {
              await mongo.stop();
              await mongo.start();
            },
          },
        }
      : {}),
    async close() {
      await coll.deleteMany({}).catch(() => {});
      await admin.db().collection(`${collection}_denylist`).deleteMany({}).catch(() => {});
      await admin.close();
      await mongo.close();
    },
  };
});

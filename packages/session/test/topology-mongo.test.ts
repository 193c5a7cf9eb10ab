// Issue 7 item 4: the MongoDB store against a replica-set URL (?replicaSet=rs0). Locally that is jongodb's
// single-node replica-set profile; with MONGO_URL pointing at a real replica set the same test runs unchanged.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MongoClient } from 'mongodb';
import { cookieHeader, request, startMongo } from '@cluster-session/testkit';
import { serve as serveApp } from './fixtures/app.ts';

const SECRET = 'topology-secret-0123456789abcdef';

/** Cleanups run last-registered first (node:test runs `after` hooks in registration order). */
const cleanups: Array<() => Promise<unknown> | void> = [];
const defer = (fn: () => Promise<unknown> | void) => void cleanups.push(fn);
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

test('the mongo store works through a replica-set URL: login, read back from another app, logout', async () => {
  const mongo = await startMongo({ replicaSet: 'rs0' });
  defer(() => mongo.close());
  const url = new URL(mongo.url);
  if (!mongo.external) assert.equal(url.searchParams.get('replicaSet'), 'rs0');

  // The driver sees a replica set with a writable primary, not a standalone server.
  const probe = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5_000 });
  defer(() => probe.close());
  const hello = await probe.db('admin').command({ hello: 1 });
  assert.equal(hello.isWritablePrimary, true);
  assert.ok(hello.setName, `hello names the replica set: ${JSON.stringify(hello.setName)}`);
  const collection = `sessions_rs_${process.pid}`;
  defer(() => probe.db().collection(collection).deleteMany({}));

  // Two app instances on the same replica-set URL: a login on one is seen by the other (what a balancer relies on).
  const serve = async () => {
    const app = await serveApp({ secret: SECRET, store: { type: 'mongo', url: mongo.url }, collection });
    defer(() => app.close());
    return app.url;
  };
  const a = await serve();
  const b = await serve();

  const res = await request(`${a}/login`, { method: 'POST', body: { user: 'alice' } });
  assert.equal(res.status, 200, res.body);
  const cookie = cookieHeader(res.cookies);
  assert.equal((await request(`${b}/me`, { headers: { cookie } })).json.data.user, 'alice');

  // The session document is in the replica set's primary, with its expiry for the TTL index.
  const doc = await probe.db().collection(collection).findOne({ _id: res.json.id });
  assert.ok(doc, 'session stored');
  assert.ok(doc.expires instanceof Date, 'stored with an expiry');

  assert.equal((await request(`${b}/logout`, { method: 'POST', headers: { cookie } })).status, 200);
  assert.equal((await request(`${a}/me`, { headers: { cookie } })).json.data.user, undefined, 'logged out on the other app');
  assert.equal(await probe.db().collection(collection).countDocuments({ _id: res.json.id }), 0);
});

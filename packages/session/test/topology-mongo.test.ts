// Issue 7 item 4: the MongoDB store against a replica-set URL (?replicaSet=rs0). Locally that is jongodb's
// single-node replica-set profile; with MONGO_URL pointing at a real replica set the same test runs unchanged.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import express from 'express';
import { MongoClient } from 'mongodb';
import { clusterSession, login, logout } from '@cluster-session/session';
import { cookieHeader, request, startMongo } from '@cluster-session/testkit';

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
    const sessions = clusterSession({ secret: SECRET, store: { type: 'mongo', url: mongo.url }, collection });
    const app = express();
    app.use(express.json());
    app.use(sessions);
    app.get('/me', (req, res) => void res.json({ user: (req.session as unknown as { user?: string }).user ?? null }));
    app.post('/login', async (req, res) => {
      await login(req, { user: (req.body as { user: string }).user });
      res.json({ id: req.sessionID });
    });
    app.post('/logout', async (req, res) => {
      await logout(req);
      res.json({ ok: true });
    });
    app.use(sessions.errorHandler);
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    defer(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await sessions.close();
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const a = await serve();
  const b = await serve();

  const res = await request(`${a}/login`, { method: 'POST', body: { user: 'alice' } });
  assert.equal(res.status, 200, res.body);
  const cookie = cookieHeader(res.cookies);
  assert.equal((await request(`${b}/me`, { headers: { cookie } })).json.user, 'alice');

  // The session document is in the replica set's primary, with its expiry for the TTL index.
  const doc = await probe.db().collection(collection).findOne({ _id: res.json.id });
  assert.ok(doc, 'session stored');
  assert.ok(doc.expires instanceof Date, 'stored with an expiry');

  assert.equal((await request(`${b}/logout`, { method: 'POST', headers: { cookie } })).status, 200);
  assert.equal((await request(`${a}/me`, { headers: { cookie } })).json.user, null);
  assert.equal(await probe.db().collection(collection).countDocuments({ _id: res.json.id }), 0);
});

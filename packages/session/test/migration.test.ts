// Migration (issue #15): an app on express-session + connect-redis 8, or + connect-mongo 5/6, switches to
// cluster-session and nobody is logged out. Real data written by those packages, against a private redis-server and
// the Mongo-compatible server, is read by ours (same cookie, key prefix / collection, stored format), updated in
// place, and still read by the old store afterwards (a rollback keeps the logins too).
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { after, before, describe, test } from 'node:test';
import express, { type RequestHandler } from 'express';
import expressSession from 'express-session';
import { RedisStore } from 'connect-redis';
import MongoStore6 from 'connect-mongo';
import { createClient } from 'redis';
import { MongoClient } from 'mongodb';
import { request, startRedis, type RedisServer } from '@cluster-session/testkit';
import { clusterSession, type SessionConfigInput } from '@cluster-session/session';
import session from '@cluster-session/session/express-session';
import { startJongo, type Jongo } from './fixtures/jongodb.ts';

// connect-mongo 5 is CommonJS exporting the class (installed as connect-mongo-5 beside connect-mongo 6).
const MongoStore5 = createRequire(import.meta.url)('connect-mongo-5') as typeof MongoStore6;

const SECRET = 'keyboard cat'; // the express-session README's secret: what a migrating app may well have

interface App {
  url: string;
  close(): Promise<void>;
}

async function serve(middleware: RequestHandler, close: () => Promise<void> = async () => {}): Promise<App> {
  const app = express();
  app.use(middleware);
  app.get('/login', (req, res) => {
    (req.session as unknown as Record<string, unknown>).user = 'ann';
    (req.session as unknown as Record<string, unknown>).hits = 0;
    res.json({ id: req.sessionID });
  });
  app.get('/hit', (req, res) => {
    const s = req.session as unknown as { user?: string; hits?: number };
    s.hits = (s.hits ?? 0) + 1;
    res.json({ id: req.sessionID, user: s.user ?? null, hits: s.hits });
  });
  app.get('/me', (req, res) => {
    const s = req.session as unknown as { user?: string; hits?: number };
    res.json({ id: req.sessionID, user: s.user ?? null, hits: s.hits ?? null });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await close();
    },
  };
}

const get = (app: App, path: string, cookie: string) => request(`${app.url}${path}`, { headers: { cookie } });
const old = { secret: SECRET, resave: false, saveUninitialized: false, cookie: { maxAge: 3_600_000 } };

/** Logs in on the old app, then checks the new one reads, updates and keeps the session where it was. */
async function migrate(oldApp: App, newApp: App, stored: (id: string) => Promise<Record<string, unknown> | null>) {
  const login = await request(`${oldApp.url}/login`);
  const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
  assert.match(cookie, /^connect\.sid=s%3A/);
  const id = login.json.id as string;

  const me = await get(newApp, '/me', cookie);
  assert.deepEqual(me.json, { id, user: 'ann', hits: 0 }, 'the login written by the old store is read as it is');
  const hit = await get(newApp, '/hit', cookie);
  assert.deepEqual(hit.json, { id, user: 'ann', hits: 1 }, 'same id: updated in place, not a new session');
  const after = await stored(id);
  assert.equal(after?.hits, 1, 'the stored record under the old key holds the update');
  assert.equal(typeof (after?.cookie as { expires?: unknown })?.expires, 'string');

  // Rollback: the old store still reads what ours wrote.
  assert.deepEqual((await get(oldApp, '/me', cookie)).json, { id, user: 'ann', hits: 1 });
}

describe('from express-session + connect-redis 8', () => {
  let redis: RedisServer;
  let client: ReturnType<typeof createClient>;
  before(async () => {
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await client?.quit();
    await redis?.stop();
  });
  const stored = async (id: string) => JSON.parse((await client.get(`sess:${id}`)) ?? 'null') as Record<string, unknown> | null;

  const targets: Array<[string, () => RequestHandler & { close(): Promise<void> }]> = [
    ['the drop-in on its own Redis store (same prefix sess:)', () => session({ ...old, store: { type: 'redis', url: redis.url } } as never)],
    ['the drop-in given the connect-redis store instance', () => session({ ...old, store: new RedisStore({ client }) })],
    [
      'clusterSession() with name connect.sid',
      () => clusterSession({ secret: SECRET, allowWeakSecret: true, name: 'connect.sid', store: { type: 'redis', url: redis.url }, cookie: { maxAge: 3_600_000 } } as SessionConfigInput, {}),
    ],
  ];
  for (const [what, make] of targets) {
    test(what, async () => {
      const oldApp = await serve(expressSession({ ...old, store: new RedisStore({ client }) }));
      const mw = make();
      const newApp = await serve(mw, () => mw.close());
      try {
        await migrate(oldApp, newApp, stored);
      } finally {
        await newApp.close();
        await oldApp.close();
      }
    });
  }

  test('the stored value keeps connect-redis\'s format: its JSON (plus the user index stamp), its TTL from the cookie', async () => {
    const mw = session({ ...old, store: { type: 'redis', url: redis.url } } as never);
    const app = await serve(mw, () => mw.close());
    try {
      const login = await request(`${app.url}/login`);
      const id = login.json.id as string;
      const value = await stored(id);
      // Two keys more than connect-redis writes, both dropped on load by ours (connect-redis after a rollback shows
      // them as more session keys): "~idx", where the user index of logoutEverywhere() stands, and "~cs", what the
      // session records about itself for listSessions() and the absolute lifetime (when it began, where from).
      assert.deepEqual(Object.keys(value!).sort(), ['cookie', 'hits', 'user', '~cs', '~idx']);
      assert.equal((value!['~idx'] as { u?: string }).u, 'ann');
      assert.equal(typeof (value!['~cs'] as { c?: unknown }).c, 'number');
      const ttl = await client.ttl(`sess:${id}`);
      assert.ok(ttl > 3500 && ttl <= 3600, `TTL ${ttl}`);
    } finally {
      await app.close();
    }
  });
});

describe('from express-session + connect-mongo 5 and 6', () => {
  let mongo: Jongo;
  let client: MongoClient;
  before(async () => {
    mongo = await startJongo();
    client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5000 });
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await mongo?.close();
  });

  for (const [version, MongoStore] of [
    ['5', MongoStore5],
    ['6', MongoStore6],
  ] as const) {
    test(`connect-mongo ${version}: read, updated in place, and still read by connect-mongo`, async () => {
      const collection = `sessions_cm${version}_${process.pid}`;
      const coll = client.db().collection<{ _id: string; session: unknown; expires: Date }>(collection);
      const oldStore = MongoStore.create({ client, collectionName: collection, autoRemove: 'disabled' });
      const oldApp = await serve(expressSession({ ...old, store: oldStore }));
      const mw = session({ ...old, store: { type: 'mongo', url: mongo.url }, collection } as never);
      const newApp = await serve(mw, () => mw.close());
      try {
        await migrate(oldApp, newApp, async (id) => {
          const doc = await coll.findOne({ _id: id });
          assert.equal(typeof doc?.session, 'string', "connect-mongo's format: the session as JSON text");
          return JSON.parse(doc!.session as string) as Record<string, unknown>;
        });
      } finally {
        await newApp.close();
        await oldApp.close();
      }
    });
  }
});

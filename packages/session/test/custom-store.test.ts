// Any express-session Store instance as `store` (issue #15): wrapped like the built-in stores — a store that hangs
// or says 'disconnect' gets a 503 within storeTimeout, an oversized session a 413 before the store sees it, its
// touch used lazily — and, in JWT mode, the deny list of revoked tokens kept on it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import express from 'express';
import { MemoryStore, Store, type SessionData } from 'express-session';
import { client, request } from '@cluster-session/testkit';
import { clusterSession, type SessionConfigInput } from '@cluster-session/session';

/** A MemoryStore that can be made to hang (never call back), as a store whose server stopped answering. */
class FlakyStore extends MemoryStore {
  hang = false;
  /** The get with this call number fails after 280 ms with the store's own timeout error, as ioredis' commandTimeout does. */
  timeOutGet = 0;
  calls = { get: 0, set: 0, touch: 0 };
  override get(sid: string, cb: (err: unknown, s?: SessionData | null) => void): void {
    if (++this.calls.get === this.timeOutGet) return void setTimeout(() => cb(new Error('Command timed out')), 280);
    if (!this.hang) super.get(sid, cb);
  }
  override set(sid: string, sess: SessionData, cb?: (err?: unknown) => void): void {
    this.calls.set++;
    if (!this.hang) super.set(sid, sess, cb);
  }
  override touch(sid: string, sess: SessionData, cb?: () => void): void {
    this.calls.touch++;
    super.touch(sid, sess, cb);
  }
}

async function start(config: SessionConfigInput) {
  const sessions = clusterSession({ secret: 'custom-store-secret-0123456789', logger: { warn() {}, error() {} }, ...config }, {});
  const app = express();
  app.use(sessions);
  app.get('/set', (req, res) => {
    (req.session as unknown as Record<string, unknown>).user = String(req.query.u ?? 'ann');
    if (req.query.big) (req.session as unknown as Record<string, unknown>).big = 'x'.repeat(Number(req.query.big));
    res.json({ ok: true });
  });
  app.get('/me', (req, res) => void res.json({ user: (req.session as unknown as { user?: string }).user ?? null }));
  // A reload whose error the app ignores, then a save: the reload's outcome decides whether the save may run.
  app.get('/reload-then-save', (req, res, next) => {
    req.session.reload(() => {
      (req.session as unknown as Record<string, unknown>).after = true;
      req.session.save((err) => (err ? next(err) : res.json({ ok: true })));
    });
  });
  app.get('/logout', (req, res, next) => req.session.destroy((err) => (err ? next(err) : res.json({ ok: true }))));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await sessions.close();
    },
  };
}

describe('a custom Store instance', () => {
  const store = new FlakyStore();
  let app: Awaited<ReturnType<typeof start>>;
  after(() => app?.close());

  test('sessions live in it; an unchanged session is touched through its touch, lazily', async () => {
    app = await start({ store, storeTimeout: 300, touchAfterSeconds: 60 });
    const c = client(app.url);
    await c.get('/set');
    assert.equal(store.calls.set, 1);
    for (let i = 0; i < 3; i++) assert.deepEqual((await c.get('/me')).json, { user: 'ann' });
    assert.equal(store.calls.touch, 0, 'within touchAfter: no touch');
    assert.equal(await new Promise((r) => store.length((_e, n) => r(n))), 1);
  });

  test('over maxSessionBytes: 413 and the store never sees the write', async () => {
    const c = client(app.url);
    const before = store.calls.set;
    const res = await c.get('/set?big=70000');
    assert.equal(res.status, 413);
    assert.equal(res.json.code, 'CS_ERR_SESSION_TOO_LARGE');
    assert.equal(store.calls.set, before);
  });

  test('a store that hangs: 503 JSON within storeTimeout, not a hung request', async () => {
    const c = client(app.url);
    await c.get('/set');
    store.hang = true;
    try {
      const res = await c.get('/me');
      assert.equal(res.status, 503);
      assert.equal(res.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
    } finally {
      store.hang = false;
    }
    assert.deepEqual((await c.get('/me')).json, { user: 'ann' });
  });

  test("a step that fails on the store's own timeout just short of the budget leaves the request nothing: the save is not sent", async () => {
    const c = client(app.url);
    await c.get('/set');
    const sets = store.calls.set;
    // The load takes ~0 ms of the 300 ms budget; the reload then fails after 280 ms with the store's own timeout,
    // within the guard's slack (30 ms here) of its limit, as a client timer on the loop's cached clock can. Before,
    // the save was then sent with ~20 ms left.
    store.timeOutGet = store.calls.get + 2; // the load succeeds, the reload times out
    const res = await c.get('/reload-then-save');
    assert.equal(store.calls.set, sets, 'the save was refused without calling the store');
    assert.equal(res.status, 503);
    assert.equal(res.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
  });

  test("a store that says 'disconnect': 503 within storeTimeout without asking it, and back on 'connect'", async () => {
    const c = client(app.url);
    await c.get('/set');
    const gets = store.calls.get;
    store.emit('disconnect');
    const res = await c.get('/me');
    assert.equal(res.status, 503);
    assert.equal(store.calls.get, gets, 'the store was not asked while down');
    store.emit('connect');
    assert.deepEqual((await c.get('/me')).json, { user: 'ann' });
  });
});

test('JWT mode on a custom Store instance: a logged-out token is revoked there', async () => {
  const store = new MemoryStore();
  const app = await start({ mode: 'jwt', store, jwt: { secret: randomBytes(32).toString('base64url') } });
  try {
    const c = client(app.url);
    await c.get('/set');
    const token = c.jar.sid!;
    assert.equal((await c.get('/logout')).status, 200);
    const replay = await request(`${app.url}/me`, { headers: { cookie: `sid=${token}` } });
    assert.deepEqual(replay.json, { user: null });
    const ids = await new Promise<Record<string, unknown>>((r) => store.all((_e, all) => r((all ?? {}) as Record<string, unknown>)));
    assert.ok(Object.keys(ids).some((id) => id.startsWith('cs-deny:')), 'the deny-list entry is a record of that store');
  } finally {
    await app.close();
  }
});

/** A store that keeps the very objects it is given and hands the same object back on every get (a cache). */
class ObjectStore extends Store {
  readonly held = new Map<string, SessionData>();
  override get(sid: string, cb: (err: unknown, s?: SessionData | null) => void): void {
    setImmediate(() => cb(null, this.held.get(sid) ?? null));
  }
  override set(sid: string, sess: SessionData, cb?: (err?: unknown) => void): void {
    this.held.set(sid, sess);
    setImmediate(() => cb?.());
  }
  override destroy(sid: string, cb?: (err?: unknown) => void): void {
    this.held.delete(sid);
    setImmediate(() => cb?.());
  }
}

test("a store that returns the objects it keeps: loading a session leaves the store's object as stored (sealed, with its record)", async () => {
  const store = new ObjectStore();
  const app = await start({ store, encryptionKeys: [`k1:${randomBytes(32).toString('base64url')}`] });
  try {
    const c = client(app.url);
    await c.get('/set?u=ann');
    const [stored] = [...store.held.values()];
    const before = JSON.stringify(stored);
    assert.match(before, /"~enc":"v1\./, 'stored sealed');
    assert.doesNotMatch(before, /"~cs"/, 'the record is inside the seal');
    for (let i = 0; i < 3; i++) assert.deepEqual((await c.get('/me')).json, { user: 'ann' });
    assert.equal(JSON.stringify([...store.held.values()][0]), before, 'not opened in place: still sealed, nothing added');
  } finally {
    await app.close();
  }
});

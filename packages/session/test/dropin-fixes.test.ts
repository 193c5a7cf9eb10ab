// The bugs a migrating express-session app hit (issue #15), in store mode on memory and SQLite and in JWT mode:
// a second answer after a session change, plain loaded sessions, a non-string req.sessionID, and JWT mode's
// cookie (rolling, an enumerable cookie with writable attributes, maxAge = 0 ending the token).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import express from 'express';
import { client, request } from '@cluster-session/testkit';
import { clusterSession, type ClusterSession, type SessionConfigInput } from '@cluster-session/session';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-dropin-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = 'dropin-secret-0123456789abcdef';

interface App {
  url: string;
  sessions: ClusterSession;
  /** What the routes caught from a second answer. */
  caught: string[];
  close(): Promise<void>;
}

async function start(config: SessionConfigInput): Promise<App> {
  const sessions = clusterSession({ secret: SECRET, logger: { warn() {}, error() {} }, ...config });
  const caught: string[] = [];
  const app = express();
  app.use(sessions);
  app.get('/twice', (req, res) => {
    (req.session as unknown as Record<string, unknown>).n = 1;
    res.json({ first: true });
    try {
      res.json({ second: true });
    } catch (err) {
      caught.push((err as { code?: string }).code ?? String(err));
    }
  });
  // No try/catch: Express's final handler sees the error after the headers "went out", as with express-session.
  app.get('/twice-uncaught', (req, res) => {
    (req.session as unknown as Record<string, unknown>).n = 1;
    res.json({ first: true });
    res.json({ second: true });
  });
  app.get('/end-twice', (req, res) => {
    (req.session as unknown as Record<string, unknown>).n = 1;
    res.end('first');
    res.end('second');
    res.write('late');
  });
  app.get('/set', (req, res) => {
    (req.session as unknown as Record<string, unknown>).user = 'ann';
    res.json({ id: req.sessionID });
  });
  app.get('/bump', (req, res) => {
    const s = req.session as unknown as Record<string, number>;
    s.n = (s.n ?? 0) + 1;
    res.json({ n: s.n });
  });
  app.get('/symbols', (req, res) => {
    res.json({
      symbols: Object.getOwnPropertySymbols(req.session).length,
      keys: Object.keys(req.session as object).sort(),
    });
  });
  app.get('/bogus-id', (req, res) => {
    (req.session as unknown as Record<string, unknown>).user = 'x';
    (req as { sessionID: unknown }).sessionID = 42;
    res.json({ ok: true });
  });
  app.get('/cookie', (req, res) => {
    const c = req.session.cookie as unknown as Record<string, unknown>;
    const q = req.query as Record<string, string>;
    if (q.sameSite) c.sameSite = q.sameSite;
    if (q.domain) c.domain = q.domain;
    if (q.priority) c.priority = q.priority;
    if (q.maxAge !== undefined) c.maxAge = Number(q.maxAge);
    if (q.expires) c.expires = new Date(Date.now() + Number(q.expires));
    res.json({ keys: Object.keys(req.session as object), sameSite: c.sameSite, domain: c.domain ?? null, user: (req.session as unknown as { user?: string }).user ?? null });
  });
  app.get('/peek', (req, res) => void res.json({ user: (req.session as unknown as { user?: string } | undefined)?.user ?? null }));
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sessions,
    caught,
    async close() {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await sessions.close();
    },
  };
}

const modes: Array<[string, () => SessionConfigInput]> = [
  ['store mode, memory', () => ({ store: 'memory' })],
  ['store mode, sqlite', () => ({ store: { type: 'sqlite', path: path.join(dir, `s-${randomBytes(4).toString('hex')}.sqlite`) } })],
  ['JWT mode', () => ({ mode: 'jwt', store: 'memory', jwt: { secret: randomBytes(32).toString('base64url') } })],
];

for (const [name, config] of modes) {
  describe(`a second answer after a session change (${name})`, () => {
    let app: App;
    after(() => app?.close());

    test('the first answer reaches the client; the second res.json() throws ERR_HTTP_HEADERS_SENT to the caller', async () => {
      app = await start(config());
      const res = await request(`${app.url}/twice`);
      assert.equal(res.status, 200);
      assert.deepEqual(res.json, { first: true });
      assert.ok(res.cookies[name === 'JWT mode' ? 'sid' : 'sid'], 'the session cookie went out with the first answer');
      assert.deepEqual(app.caught, ['ERR_HTTP_HEADERS_SENT']);
    });

    test('a second res.end() and a late write are dropped: the first body, whole', async () => {
      const res = await request(`${app.url}/end-twice`);
      assert.deepEqual([res.status, res.body], [200, 'first']);
    });

    test('uncaught, the request fails as under express-session and the process keeps serving', async () => {
      await request(`${app.url}/twice-uncaught`).catch(() => undefined);
      const again = await request(`${app.url}/twice`);
      assert.deepEqual(again.json, { first: true });
    });
  });
}

for (const [name, config] of modes.slice(0, 2)) {
  describe(`loaded sessions are plain (${name})`, () => {
    let app: App;
    after(() => app?.close());

    test('no symbol keys on a loaded session; set() leaves the caller object as it was', async () => {
      app = await start(config());
      const c = client(app.url);
      await c.get('/set');
      const seen = await c.get('/symbols');
      assert.deepEqual(seen.json, { symbols: 0, keys: ['cookie', 'user'] });
      const mine = { cookie: { originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000).toISOString(), path: '/', httpOnly: true }, user: 'bo' };
      const copy = JSON.parse(JSON.stringify(mine));
      await new Promise<void>((resolve, reject) => app.sessions.store!.set('caller-object', mine as never, (err) => (err ? reject(err) : resolve())));
      assert.deepEqual(Object.getOwnPropertySymbols(mine), []);
      assert.deepEqual(mine, copy);
      const got = await new Promise<unknown>((resolve, reject) => app.sessions.store!.get('caller-object', (err, s) => (err ? reject(err) : resolve(s))));
      assert.deepEqual(Object.getOwnPropertySymbols(got as object), []);
      assert.deepEqual(Object.keys(got as object).sort(), ['cookie', 'user']);
    });

    test('nothing is written when req.sessionID is not a string', async () => {
      const count = () => new Promise<number>((resolve, reject) => app.sessions.store!.length!((err, n) => (err ? reject(err) : resolve(n as number))));
      const before = await count();
      const res = await request(`${app.url}/bogus-id`);
      assert.equal(res.status, 200);
      assert.equal(res.headers['set-cookie'], undefined);
      assert.equal(await count(), before);
    });
  });
}

describe('JWT mode: req.session.cookie as in store mode', () => {
  let app: App;
  let rolling: App;
  const jwt = () => ({ mode: 'jwt' as const, store: 'memory' as const, jwt: { secret: randomBytes(32).toString('base64url') } });
  after(async () => {
    await app?.close();
    await rolling?.close();
  });

  test('cookie is an enumerable key and its attributes are writable for this session, kept on renewals', async () => {
    app = await start(jwt());
    const c = client(app.url);
    await c.get('/set');
    const res = await c.get('/cookie?sameSite=strict&domain=127.0.0.1&priority=high');
    assert.ok(res.json.keys.includes('cookie'));
    assert.deepEqual([res.json.sameSite, res.json.domain], ['strict', '127.0.0.1']);
    const line = String(res.headers['set-cookie']);
    assert.match(line, /; Domain=127\.0\.0\.1;/);
    assert.match(line, /; Priority=High/);
    assert.match(line, /; SameSite=Strict$/);
    // The next issue of this session (a data change) keeps the attributes it chose.
    const later = await c.get('/bump');
    assert.match(String(later.headers['set-cookie']), /; Domain=127\.0\.0\.1;.*SameSite=Strict$/);
  });

  test('cookie.maxAge = 0 ends the token cleanly: 200, the cookie cleared, the old token logged out', async () => {
    const c = client(app.url);
    await c.get('/set');
    const token = c.jar.sid!;
    const res = await c.get('/cookie?maxAge=0');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['set-cookie']), /^sid=; .*Max-Age=0/);
    assert.equal(c.jar.sid, undefined);
    const replay = await request(`${app.url}/peek`, { headers: { cookie: `sid=${token}` } });
    assert.deepEqual(replay.json, { user: null }, 'revoked on the deny list');
  });

  test('cookie.expires in the past ends it the same way', async () => {
    const c = client(app.url);
    await c.get('/set');
    const res = await c.get('/cookie?expires=-1000');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['set-cookie']), /^sid=; .*Max-Age=0/);
  });

  for (const [name, config] of [['JWT mode', jwt], ['store mode', () => ({ store: 'memory' as const })]] as const) {
    test(`${name}: a cookie attribute that breaks the __Host- prefix rules is refused where it is set`, async () => {
      const host = await start({ ...config(), cookie: { name: '__Host-sid', secure: true } });
      try {
        const res = await request(`${host.url}/cookie?domain=example.com`);
        // A TypeError where the app sets it (as express-session's Cookie throws for a bad value), with the rule's words.
        assert.equal(res.status, 500);
        assert.match(res.body, /TypeError: req.session.cookie.domain: a &quot;__Host-&quot; cookie needs secure: true/);
        // What keeps to the rules is accepted.
        assert.equal((await request(`${host.url}/cookie?sameSite=strict`)).status, 200);
      } finally {
        await host.close();
      }
    });
  }

  test('rolling: every response of a session re-issues the token, none for an untouched new one', async () => {
    rolling = await start({ ...jwt(), rolling: true });
    const c = client(rolling.url);
    assert.equal((await c.get('/peek')).headers['set-cookie'], undefined);
    await c.get('/set');
    for (let i = 0; i < 2; i++) assert.match(String((await c.get('/peek')).headers['set-cookie']), /^sid=ey/);
  });
});

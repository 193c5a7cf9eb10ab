// clusterSession({ mode: 'jwt' }) runs the same app code as store mode (test/fixtures/app.ts): login, hits and
// logout across two OS processes, with logout revoked on the other process through the SQLite deny list.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { cookieHeader, request, startNode, startRedis, type Proc } from '@cluster-session/testkit';
import { clusterSession, ConfigError, type SessionConfigInput } from '@cluster-session/session';
import { serve, type Served } from './fixtures/app.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-jwt-mode-'));
const jwtSecret = randomBytes(32).toString('base64url');
const config: SessionConfigInput = {
  mode: 'jwt',
  store: { type: 'sqlite', path: path.join(dir, 'deny.sqlite') },
  jwt: { secret: jwtSecret }, // revocation is on by default, on the configured store
};

const post = (url: string, body: object, jar: Record<string, string>) =>
  request(url, { method: 'POST', body, headers: { cookie: cookieHeader(jar) } });

describe("clusterSession({ mode: 'jwt' })", () => {
  let here: Served;
  let child: Proc;
  let childUrl: string;
  before(async () => {
    here = await serve(config);
    child = startNode([path.join(import.meta.dirname, 'fixtures', 'server.ts')], {
      env: { ...process.env, FIXTURE_CONFIG: JSON.stringify(config) },
    });
    childUrl = (await child.waitFor(/listening (\S+)/))[1]!;
  });
  after(async () => {
    await here?.close();
    await child?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('login, then hits counted across two processes, on a signed token in the configured cookie', async () => {
    const login = await post(`${here.url}/login`, { user: 'alice' }, {});
    assert.equal(login.status, 200, login.body);
    assert.deepEqual(login.json.data, { user: 'alice' });
    let jar = login.cookies;
    assert.ok(jar.sid, 'the cookie keeps its store-mode name');
    assert.equal(decodeJwt(jar.sid!).user, 'alice');
    const pids = new Set<number>();
    for (let i = 1; i <= 4; i++) {
      const res = await post(`${i % 2 ? childUrl : here.url}/hit`, {}, jar);
      assert.deepEqual([res.status, res.json.hits, res.json.id], [200, i, login.json.id]);
      pids.add(res.json.pid);
      jar = { ...jar, ...res.cookies };
    }
    assert.equal(pids.size, 2);
  });

  it('logout on one process revokes the token at once there and within 1 s on the other', async () => {
    const jar = (await post(`${here.url}/login`, { user: 'bob' }, {})).cookies;
    const me = await request(`${here.url}/me`, { headers: { cookie: cookieHeader(jar) } });
    assert.equal(me.json.data.user, 'bob');
    const out = await post(`${childUrl}/logout`, {}, jar);
    const t0 = Date.now();
    assert.equal(out.status, 200);
    assert.match(String(out.headers['set-cookie']), /sid=;/);
    assert.deepEqual((await request(`${childUrl}/me`, { headers: { cookie: cookieHeader(jar) } })).json.data, {});
    // The other process reads the deny list from its in-memory view, refreshed from the store's stamp (< 1 s).
    let replay;
    do replay = await request(`${here.url}/me`, { headers: { cookie: cookieHeader(jar) } });
    while (replay.json.data.user !== undefined && Date.now() - t0 < 2000 && (await new Promise((r) => setTimeout(r, 20)), true));
    assert.equal(replay.status, 200);
    assert.deepEqual(replay.json.data, {}, 'the revoked token reads as logged out');
    assert.ok(Date.now() - t0 < 1000, `seen after ${Date.now() - t0} ms`);
  });

  it('login keeps chosen keys and changes the session id (against fixation)', async () => {
    const anon = await post(`${here.url}/set`, { cart: [1, 2] }, {});
    const jar = anon.cookies;
    const login = await post(`${here.url}/login`, { user: 'carol', keep: ['cart'] }, jar);
    assert.deepEqual(login.json.data, { cart: [1, 2], user: 'carol' });
    assert.notEqual(login.json.id, anon.json.id);
  });

  it('health reports the deny list store', async () => {
    const res = await request(`${here.url}/healthz`);
    assert.deepEqual(res.json, { ok: true, mode: 'jwt', store: 'sqlite' });
  });

  it('revocation: false gives store-free tokens: logout clears the cookie, a copied token stays valid until exp', async () => {
    const free = await serve({ mode: 'jwt', store: 'memory', jwt: { secret: jwtSecret, revocation: false } });
    try {
      assert.deepEqual((await request(`${free.url}/healthz`)).json, { ok: true, mode: 'jwt', store: 'none' });
      const jar = (await post(`${free.url}/login`, { user: 'dave' }, {})).cookies;
      await post(`${free.url}/logout`, {}, jar);
      assert.equal((await request(`${free.url}/me`, { headers: { cookie: cookieHeader(jar) } })).json.data.user, 'dave');
    } finally {
      await free.close();
    }
  });

  it('a deny list on Redis that goes down gives 503 with a code once the view is stale, and recovers', async () => {
    const redis = await startRedis();
    const app = await serve({ mode: 'jwt', store: { type: 'redis', url: redis.url }, storeTimeout: 300, jwt: { secret: jwtSecret } });
    try {
      const jar = (await post(`${app.url}/login`, { user: 'erin' }, {})).cookies;
      await redis.stop();
      const t0 = Date.now();
      // The in-memory view answers until it is 800 ms past its last refresh; then every lookup goes to the store.
      let down;
      do down = await request(`${app.url}/me`, { headers: { cookie: cookieHeader(jar) }, timeoutMs: 3000 });
      while (down.status === 200 && Date.now() - t0 < 3000);
      assert.equal(down.status, 503);
      assert.ok(Date.now() - t0 < 800 + 300 + 500, 'stale within the view bound plus the store timeout');
      assert.equal(down.json.code, 'CS_ERR_JWT_DENYLIST_UNAVAILABLE');
      assert.equal(down.headers['retry-after'], '1');
      assert.equal((await request(`${app.url}/healthz`, { timeoutMs: 3000 })).status, 503);
      // A logout that cannot be recorded fails without clearing the cookie, so the client can retry it.
      const logout = await post(`${app.url}/logout`, {}, jar);
      assert.equal(logout.status, 503);
      assert.equal(logout.headers['set-cookie'], undefined);
      await redis.start();
      let back;
      for (let i = 0; i < 50 && back?.status !== 200; i++) {
        back = await request(`${app.url}/me`, { headers: { cookie: cookieHeader(jar) }, timeoutMs: 3000 });
        if (back.status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(back?.json.data.user, 'erin');
    } finally {
      await app.close();
      await redis.close();
    }
  });

  it('falls back to SESSION_SECRET for keys; in production, no keys at all is a startup error', async () => {
    const app = await serve({ mode: 'jwt', store: 'memory', jwt: { revocation: false } }); // fixture's 33-byte secret
    try {
      const jar = (await post(`${app.url}/login`, { user: 'frank' }, {})).cookies;
      assert.equal((await request(`${app.url}/me`, { headers: { cookie: cookieHeader(jar) } })).json.data.user, 'frank');
    } finally {
      await app.close();
    }
    const saved = { ...process.env };
    try {
      process.env.NODE_ENV = 'production';
      for (const name of ['JWT_SECRET', 'JWT_KEYS', 'SESSION_SECRET']) delete process.env[name];
      assert.throws(
        () => clusterSession({ mode: 'jwt', store: 'memory' }),
        (err: unknown) => err instanceof ConfigError && /needs signing keys and NODE_ENV=production.*JWT_SECRET/.test(err.message),
      );
    } finally {
      for (const name of ['NODE_ENV', 'JWT_SECRET', 'JWT_KEYS', 'SESSION_SECRET']) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
    }
  });

  it('keys are validated at startup with a ConfigError naming the variable', () => {
    const saved = process.env.JWT_SECRET;
    process.env.JWT_SECRET = 'too-short';
    try {
      assert.throws(
        () => clusterSession({ mode: 'jwt', store: 'memory' }),
        (err: unknown) => err instanceof ConfigError && /JWT_SECRET.*at least 256 bits/.test(err.message),
      );
    } finally {
      if (saved === undefined) delete process.env.JWT_SECRET;
      else process.env.JWT_SECRET = saved;
    }
    assert.throws(
      () => clusterSession({ mode: 'jwt', store: 'memory', jwt: { secret: jwtSecret, ttl: 60, maxAge: 30 } }),
      (err: unknown) => err instanceof ConfigError && /mode 'jwt': option jwt\.maxAgeSeconds is 30: expected seconds, at least ttlSeconds \(60\)/.test(err.message),
    );
  });
});

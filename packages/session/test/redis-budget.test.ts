// storeTimeout is one budget per request, not one per store step: a request whose load is slow and whose save then
// hangs gets its 503 within about storeTimeout, not 2-3 x. Real Redis, hung with SIGSTOP at the step under test.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { clusterSession, login, type ClusterSession } from '@cluster-session/session';
import { cookieHeader, redisCli, request, sleep, startRedis, type RedisServer } from '@cluster-session/testkit';

const STORE_TIMEOUT = 1_000;
/** storeTimeout plus a margin for a loaded 2-core machine; the old per-step bound was 2-3 x storeTimeout. */
const BOUND_MS = 1_600;
const quiet = { warn: () => {}, error: () => {} };

describe('storeTimeout is one budget per request (real Redis, SIGSTOP)', () => {
  let redis: RedisServer;
  let sessions: ClusterSession;
  let server: Server;
  let url: string;
  const hang = () => void redis.proc.child.kill('SIGSTOP');
  const resume = () => void redis.proc.child.kill('SIGCONT');
  /** Hangs Redis now and lets it answer again after `ms`: a store step issued meanwhile takes about `ms`. */
  const slowFor = (ms: number) => {
    hang();
    setTimeout(resume, ms);
  };

  before(async () => {
    redis = await startRedis();
    sessions = clusterSession({ secret: 'budget-secret-0123456789abcdef', store: { type: 'redis', url: redis.url }, storeTimeout: STORE_TIMEOUT, logger: quiet });
    const app = express();
    app.use(express.json());
    app.use(sessions);
    app.post('/login', async (req, res) => {
      await login(req, { user: 'budget' });
      res.json({ id: req.sessionID });
    });
    app.get('/me', (req, res) => void res.json({ user: (req.session as unknown as { user?: string }).user ?? null }));
    // The load was slow (the test hung Redis before the request); the save now hangs.
    app.post('/hit-then-hang', (req, res) => {
      hang();
      const s = req.session as unknown as { hits?: number };
      s.hits = (s.hits ?? 0) + 1;
      res.json({ hits: s.hits });
    });
    // Three steps: a slow load (the test's), a slow destroy of the old id, then a save that hangs.
    app.post('/relogin-slow', (req, res, next) => {
      slowFor(400);
      req.session.regenerate((err) => {
        if (err) return next(err);
        hang();
        (req.session as unknown as { user: string }).user = 'budget';
        req.session.save((e) => (e ? next(e) : res.json({ ok: true })));
      });
    });
    // A reload that uses up the whole budget (the app ignores its error), then a save with nothing left.
    app.post('/reload-then-save', (req, res, next) => {
      slowFor(STORE_TIMEOUT + 500);
      req.session.reload(() => {
        (req.session as unknown as { after: boolean }).after = true;
        req.session.save((e) => (e ? next(e) : res.json({ ok: true })));
      });
    });
    // The app's own slow work is not store time: a handler taking longer than storeTimeout still saves.
    app.post('/slow-handler', async (req, res) => {
      await sleep(STORE_TIMEOUT + 300);
      (req.session as unknown as { slow: boolean }).slow = true;
      res.json({ ok: true });
    });
    app.use(sessions.errorHandler);
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    resume();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await sessions?.close();
    await redis?.close();
  });

  const setCalls = async () => Number(/cmdstat_set:calls=(\d+)/.exec(await redisCli(redis.port, ['INFO', 'commandstats']))?.[1] ?? 0);

  async function loggedIn(): Promise<string> {
    const r = await request(`${url}/login`, { method: 'POST', body: {} });
    assert.equal(r.status, 200);
    return cookieHeader(r.cookies);
  }

  async function recovered(cookie: string): Promise<void> {
    resume();
    const deadline = Date.now() + 10_000;
    while ((await request(`${url}/me`, { headers: { cookie }, timeoutMs: 5_000 })).json?.user !== 'budget') {
      assert.ok(Date.now() < deadline, 'service came back after SIGCONT');
      await sleep(100);
    }
  }

  async function timed(t: TestContext, path: string, cookie: string) {
    const started = Date.now();
    const r = await request(`${url}${path}`, { method: 'POST', headers: { cookie }, body: {}, timeoutMs: 5_000 });
    const took = Date.now() - started;
    t.diagnostic(`${path}: ${r.status} after ${took} ms`);
    return { r, took };
  }

  it('a slow load (800 ms) then a hung save: 503 within storeTimeout + margin, not load + storeTimeout', async (t) => {
    const cookie = await loggedIn();
    try {
      slowFor(800);
      const { r, took } = await timed(t, '/hit-then-hang', cookie);
      assert.equal(r.status, 503);
      assert.equal(r.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.headers['set-cookie'], undefined, 'a failed save sets no cookie');
      assert.ok(took < BOUND_MS, `503 after ${took} ms (bound ${BOUND_MS} ms)`);
      assert.ok(took >= 700, `the slow load was really waited for (${took} ms)`);
    } finally {
      await recovered(cookie);
    }
  });

  it('slow load, slow destroy, hung save (three steps): one budget for all three', async (t) => {
    const cookie = await loggedIn();
    try {
      slowFor(400);
      const { r, took } = await timed(t, '/relogin-slow', cookie);
      assert.equal(r.status, 503);
      assert.equal(r.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
      assert.ok(took < BOUND_MS, `503 after ${took} ms (bound ${BOUND_MS} ms)`);
    } finally {
      resume();
      // The old session was destroyed by the (slow, but completed) regenerate: recovery means a login works.
      const deadline = Date.now() + 10_000;
      while ((await request(`${url}/login`, { method: 'POST', body: {}, timeoutMs: 5_000 })).status !== 200) {
        assert.ok(Date.now() < deadline, 'service came back after SIGCONT');
        await sleep(100);
      }
    }
  });

  it('a step that starts with the budget spent fails at once, without reaching Redis', async (t) => {
    const cookie = await loggedIn();
    const setsBefore = await setCalls();
    try {
      const { r, took } = await timed(t, '/reload-then-save', cookie);
      assert.equal(r.status, 503);
      assert.ok(took < BOUND_MS, `503 after ${took} ms (bound ${BOUND_MS} ms)`);
    } finally {
      await sleep(600);
      await recovered(cookie);
    }
    // Redis was hung until after the budget ended, so a SET sent then would have run on SIGCONT: none was sent.
    assert.equal(await setCalls(), setsBefore, 'the save was refused without a command');
  });

  it('time spent in the app handler is not charged: a handler slower than storeTimeout still saves', async () => {
    const cookie = await loggedIn();
    const r = await request(`${url}/slow-handler`, { method: 'POST', headers: { cookie }, body: {}, timeoutMs: 5_000 });
    assert.equal(r.status, 200);
  });
});

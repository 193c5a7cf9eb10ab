/**
 * The example app's HTTP contract (ARCHITECTURE.md), over real HTTP, on a real Redis it can stop and restart.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cookieHeader, needs, request, startRedis, type RedisServer } from '@cluster-session/testkit';
import { PassThrough } from 'node:stream';
import { serveApp, type Served } from './support/serve.ts';
import { createLogger } from '../src/logger.ts';

const skip = needs('redis-server');

describe('example app HTTP contract', { skip }, () => {
  let redis: RedisServer;
  let served: Served;
  let url: string;
  // The app's pino lines, as LOG_FORMAT=json writes them.
  const logged: Array<Record<string, any>> = [];
  const logOut = new PassThrough();
  let partial = '';
  logOut.on('data', (c: Buffer) => {
    const lines = (partial + c.toString()).split('\n');
    partial = lines.pop()!;
    for (const line of lines) logged.push(JSON.parse(line));
  });

  before(async () => {
    // AOF on: the outage test restarts Redis and expects the logins made before it (as Redis in production keeps them).
    // `appendfsync no`: Redis still writes each command to the file before it replies, and a stopped process loses
    // nothing the kernel holds; an fsync per write only adds the disk's latency, which on a CI machine busy with
    // other suites has stalled for over a second (the store's timeout) and failed logins with 503.
    redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'no'] });
    served = await serveApp({
      instance: 'test',
      session: { store: { type: 'redis', url: redis.url }, secret: 'example-app-test-secret-0123456789' },
      logger: createLogger({ LOG_FORMAT: 'json', LOG_LEVEL: 'info' }, logOut),
    });
    url = served.url;
  });
  after(async () => {
    await served?.close();
    await redis?.close();
  });

  const login = (body: object | string, headers: Record<string, string> = {}) => request(`${url}/login`, { method: 'POST', body, headers });

  test('GET / shows the sign-in form with the serving worker and the sessions in use; strict page headers', async () => {
    const res = await request(`${url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type']!, /text\/html/);
    assert.match(res.body, /<form method="post" action="\/login">/);
    assert.match(res.body, new RegExp(`Served by worker <span id="worker">${process.pid}</span> on instance <span id="instance">test</span> · Redis store`));
    assert.match(res.body, /<label for="username">Username<\/label>\s*<input id="username" name="username" autocomplete="username" required/);
    assert.match(res.body, /<link rel="icon" href="\/favicon.svg"/);
    assert.match(res.headers['content-security-policy'] as string, /default-src 'self'; script-src 'self'/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['cache-control'], 'no-store');
    const cookies = ([] as string[]).concat(res.headers['set-cookie'] ?? []);
    assert.ok(!cookies.some((c) => c.startsWith('sid=')), 'an anonymous visit creates no session');
    assert.deepEqual(cookies.map((c) => c.split('=')[0]), ['csrf'], "only the form's CSRF cookie (signed, no store write)");
  });

  test('every answer is logged as one pino JSON line with the request id the balancer set; no cookie, no secret', async () => {
    const id = 'c0ffee00-1111-4222-8333-444455556666';
    const res = await request(`${url}/me`, { headers: { 'x-request-id': id, cookie: 'cs.sid=s%3Asecret-session-value' } });
    assert.equal(res.status, 401);
    assert.equal(res.headers['x-request-id'], id, 'the id goes back to the client too');
    let line: Record<string, any> | undefined;
    for (let i = 0; i < 100 && !line; i++) {
      line = logged.find((l) => l.req?.id === id);
      if (!line) await new Promise((r) => setTimeout(r, 10));
    }
    assert.ok(line, 'logged');
    assert.equal(line.level, 30);
    assert.equal(typeof line.time, 'number');
    assert.equal(line.pid, process.pid);
    assert.deepEqual(line.req, { id, method: 'GET', url: '/me' });
    assert.equal(line.res.statusCode, 401);
    assert.equal(line.msg, 'GET /me 401');
    assert.doesNotMatch(JSON.stringify(logged), /secret-session-value/);
    // An id that is not a plausible one is replaced, not logged as sent.
    const forged = await request(`${url}/me`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    assert.match(forged.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/);
  });

  test('stylesheet, script and icon are served without a session; /favicon.ico points at the SVG', async () => {
    for (const [route, type] of [['/style.css', /text\/css/], ['/hops.js', /javascript/], ['/favicon.svg', /image\/svg\+xml/]] as const) {
      const res = await request(`${url}${route}`);
      assert.equal(res.status, 200, route);
      assert.match(res.headers['content-type']!, type, route);
      assert.equal(res.headers['set-cookie'], undefined, `${route}: no cookie`);
    }
    const ico = await request(`${url}/favicon.ico`);
    assert.equal(ico.status, 301);
    assert.equal(ico.headers.location, '/favicon.svg');
  });

  test('404: a page for a browser, JSON for an API client', async () => {
    const page = await request(`${url}/nope`, { headers: { accept: 'text/html' } });
    assert.equal(page.status, 404);
    assert.match(page.body, /<h1>Not found<\/h1>/);
    const api = await request(`${url}/nope`, { headers: { accept: 'application/json' } });
    assert.equal(api.status, 404);
    assert.deepEqual(api.json, { error: 'not found' });
  });

  test('POST /login (JSON): 200, user, a hardened session cookie', async () => {
    const res = await login({ username: 'alice', password: 'wonderland' });
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { user: 'alice' });
    const cookie = res.headers['set-cookie']!.find((c) => c.startsWith('sid='))!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Lax/);
    assert.doesNotMatch(cookie, /Secure/, 'plain HTTP from a client: no Secure flag');
  });

  test('Secure cookie when a trusted (loopback) proxy says the client used HTTPS', async () => {
    const res = await login({ username: 'alice', password: 'wonderland' }, { 'x-forwarded-proto': 'https' });
    assert.match(res.headers['set-cookie']!.find((c) => c.startsWith('sid='))!, /Secure/);
  });

  test('wrong password 401, unknown user 401, malformed body 400, missing fields 400, huge body 413', async () => {
    assert.equal((await login({ username: 'alice', password: 'nope' })).status, 401);
    assert.equal((await login({ username: 'mallory', password: 'wonderland' })).status, 401);
    const malformed = await login('{"username":', { 'content-type': 'application/json' });
    assert.equal(malformed.status, 400);
    assert.deepEqual(malformed.json, { error: 'malformed request body' });
    assert.equal((await login({ username: 'alice' })).status, 400);
    assert.equal((await login({ username: 42, password: [] })).status, 400);
    const huge = await login({ username: 'alice', password: 'x'.repeat(64 * 1024) });
    assert.equal(huge.status, 413);
    assert.doesNotMatch(huge.body, /at .*\.ts:\d+/, 'no stack trace on the wire');
  });

  test('GET /me: 401 without a login; with one, hits count per call; logout makes the cookie useless', async () => {
    const anon = await request(`${url}/me`);
    assert.equal(anon.status, 401);
    assert.equal(anon.json.error, 'not logged in');

    const res = await login({ username: 'alice', password: 'wonderland' });
    const cookie = cookieHeader(res.cookies);
    for (let i = 1; i <= 3; i++) {
      const me = await request(`${url}/me`, { headers: { cookie } });
      assert.equal(me.status, 200);
      assert.deepEqual(me.json, { user: 'alice', hits: i, worker: process.pid, instance: 'test' });
    }
    const out = await request(`${url}/logout`, { method: 'POST', headers: { cookie } });
    assert.equal(out.status, 200);
    assert.equal((await request(`${url}/me`, { headers: { cookie } })).status, 401);
  });

  test('login regenerates the session id (no fixation)', async () => {
    const first = await login({ username: 'alice', password: 'wonderland' });
    const second = await login({ username: 'alice', password: 'wonderland' }, { cookie: cookieHeader(first.cookies) });
    assert.notEqual(second.cookies.sid, first.cookies.sid);
    assert.equal((await request(`${url}/me`, { headers: { cookie: cookieHeader(first.cookies) } })).status, 401, 'the pre-login id is gone');
  });

  test('a browser form: post-redirect-get; a wrong password comes back once as the form with the error and the username', async () => {
    // A browser first loads the page: the form carries the CSRF token, the csrf cookie its signed twin.
    const start = await request(`${url}/`);
    const token = /name="_csrf" value="([^"]+)"/.exec(start.body)![1]!;
    const form = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', cookie: cookieHeader(start.cookies) };
    const ok = await login(`username=alice&password=wonderland&_csrf=${token}`, form);
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.location, '/');
    const page = await request(`${url}/`, { headers: { cookie: cookieHeader(ok.cookies) } });
    assert.match(page.body, /Signed in as <span id="user">alice<\/span>/);
    // The serving worker and instance appear once, with the sessions in use and the live view's script.
    assert.equal(page.body.split(String(process.pid)).length - 1, 1, 'the pid once');
    assert.match(page.body, /served by worker <span class="pill" id="worker">\d+<\/span> on instance <span class="pill" id="instance">test<\/span>/);
    assert.match(page.body, /<dd id="sessions">Redis store/);
    assert.match(page.body, /<script src="\/hops.js" defer><\/script>/);

    const bad = await login(`username=alice&password=nope&_csrf=${token}`, form);
    assert.equal(bad.status, 303, 'no HTML or JSON answer to the POST itself: a reload cannot re-post');
    assert.equal(bad.headers.location, '/');
    assert.ok(bad.cookies.login_error, 'the message travels in a short-lived cookie');
    assert.match(bad.headers['set-cookie']!.join('\n'), /login_error=.*Max-Age=60.*HttpOnly.*SameSite=Lax/);
    assert.doesNotMatch(bad.cookies.login_error!, /nope/, 'never the password');
    const again = await request(`${url}/`, { headers: { cookie: `login_error=${bad.cookies.login_error}` } });
    assert.equal(again.status, 200);
    assert.match(again.body, /<div class="alert" role="alert" id="error">Wrong username or password.<\/div>/);
    assert.match(again.body, /value="alice"/);
    assert.match(again.body, /aria-invalid="true" aria-describedby="error"/);
    assert.match(again.headers['set-cookie']!.join('\n'), /login_error=;.*Expires=Thu, 01 Jan 1970/, 'read once, then cleared');
    assert.doesNotMatch((await request(`${url}/`)).body, /role="alert"/);

    const empty = await login(`username=&password=&_csrf=${token}`, form);
    assert.equal(empty.status, 303);
    const prompt = await request(`${url}/`, { headers: { cookie: `login_error=${empty.cookies.login_error}` } });
    assert.match(prompt.body, /Enter a username and a password./);
    // The same form from a client that asks for JSON keeps the API contract.
    assert.equal((await login(`username=alice&password=nope&_csrf=${token}`, { 'content-type': 'application/x-www-form-urlencoded', cookie: form.cookie })).status, 401);
  });

  test('a forged login_error cookie shows nothing it should not: unknown codes ignored, the username escaped', async () => {
    for (const forged of ['toString:x', 'bogus', '%E0%A4%A', encodeURIComponent('wrong:<script>alert(1)</script>')]) {
      const res = await request(`${url}/`, { headers: { cookie: `login_error=${forged}` } });
      assert.equal(res.status, 200, forged);
      assert.doesNotMatch(res.body, /<script>alert/, forged);
    }
    const escaped = await request(`${url}/`, { headers: { cookie: `login_error=${encodeURIComponent('wrong:"><b>x')}` } });
    assert.match(escaped.body, /value="&quot;&gt;&lt;b&gt;x"/);
  });

  test('tampered and garbage cookies are a fresh anonymous session, never a 500', async () => {
    const res = await login({ username: 'alice', password: 'wonderland' });
    const sid = res.cookies.sid!;
    for (const bad of [`${sid.slice(0, -2)}xx`, 's%3Aforged-id.bad-signature', 'garbage', '%E0%A4%A', 'x'.repeat(4000)]) {
      const me = await request(`${url}/me`, { headers: { cookie: `sid=${bad}` } });
      assert.equal(me.status, 401, `cookie sid=${bad.slice(0, 30)}`);
    }
  });

  test('Redis down: /healthz and /me answer 503 JSON within about a second; back by itself when Redis returns', async () => {
    const res = await login({ username: 'alice', password: 'wonderland' });
    const cookie = cookieHeader(res.cookies);
    await redis.stop();
    try {
      const started = Date.now();
      const health = await request(`${url}/healthz`, { timeoutMs: 5_000 });
      const me = await request(`${url}/me`, { headers: { cookie }, timeoutMs: 5_000 });
      const relogin = await login({ username: 'alice', password: 'wonderland' });
      assert.equal(health.status, 503);
      assert.equal(health.json.ok, false);
      assert.equal(me.status, 503);
      assert.equal(me.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
      assert.equal(relogin.status, 503);
      assert.ok(Date.now() - started < 5_000, 'three requests answered, none hung');
    } finally {
      await redis.start();
    }
    const deadline = Date.now() + 10_000;
    let me = await request(`${url}/me`, { headers: { cookie } });
    while (me.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      me = await request(`${url}/me`, { headers: { cookie } });
    }
    assert.equal(me.status, 200, 'the login made before the outage is still there');
    assert.equal((await request(`${url}/healthz`)).status, 200);
  });
});

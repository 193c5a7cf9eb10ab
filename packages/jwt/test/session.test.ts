// req.session semantics over real HTTP: the same routes an express-session app has.
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { client as httpClient, request } from '@cluster-session/testkit';
import { createKeyRing, createMemoryDenyList, jwtSession, JwtConfigError, type DenyList, type JwtSessionOptions } from '../src/index.ts';
import { buildApp, listen, type Running } from './fixtures/app.ts';
import { now } from './fixtures/forge.ts';

const secret = randomBytes(32).toString('base64url');
const ring = createKeyRing({ secret });
const running: Running[] = [];
const reported: Error[] = [];
after(() => Promise.all(running.map((r) => r.close())));

async function start(options: Partial<JwtSessionOptions> = {}): Promise<string> {
  const r = await listen(buildApp({ ring, ttl: 1800, maxAge: 7200, onError: (err) => reported.push(err), ...options }));
  running.push(r);
  return r.url;
}

/** testkit's cookie-jar client, with the session token read and set directly. */
function client(url: string) {
  const c = httpClient(url);
  return {
    send: c.send,
    get token() {
      return c.jar.session;
    },
    set token(v: string | undefined) {
      for (const k of Object.keys(c.jar)) delete c.jar[k];
      if (v !== undefined) c.jar.session = v;
    },
  };
}

describe('jwtSession: req.session like express-session', () => {
  test('login sets an HttpOnly, SameSite=Lax cookie; /me counts hits across requests', async () => {
    const c = client(await start());
    assert.equal((await c.send('GET', '/me')).status, 401);
    const login = await c.send('POST', '/login', { user: 'alice' });
    assert.equal(login.status, 200);
    const line = (login.headers['set-cookie'] as string[]).find((l) => l.startsWith('session='))!;
    assert.match(line, /; Path=\/; Max-Age=1800; Expires=[^;]+; HttpOnly; SameSite=Lax$/);
    assert.doesNotMatch(line, /Secure/);
    for (let i = 1; i <= 3; i++) {
      const me = await c.send('GET', '/me');
      assert.deepEqual([me.status, me.json.user, me.json.hits, me.json.id], [200, 'alice', i, login.json.id]);
    }
  });

  test('Expires names the instant Max-Age does, for cookies of different lifetimes in turn', async () => {
    // Expires= is kept for the second it names (cookie.ts): two lifetimes alternating must each get their own.
    const long = await start();
    const short = await start({ ttl: 60, maxAge: 120 });
    for (let i = 0; i < 6; i++) {
      const url = i % 2 ? short : long;
      const res = await request(`${url}/login`, { method: 'POST', body: { user: 'a' } });
      const at = Date.now();
      const line = (res.headers['set-cookie'] as string[]).find((l) => l.startsWith('session='))!;
      const maxAge = Number(/Max-Age=(\d+)/.exec(line)![1]);
      assert.equal(maxAge, i % 2 ? 60 : 1800);
      const expires = Date.parse(/Expires=([^;]+)/.exec(line)![1]!);
      // The text has whole seconds: up to a second early, never late, plus the time the answer took to arrive.
      assert.ok(expires <= at + maxAge * 1000 && expires > at + maxAge * 1000 - 2000, `${line} read at ${new Date(at).toISOString()}`);
    }
  });

  test('Secure behind TLS: with trustProxy, X-Forwarded-Proto: https marks the cookie Secure', async () => {
    const url = await start({ trustProxy: true });
    const tls = await request(`${url}/login`, { method: 'POST', body: { user: 'a' }, headers: { 'x-forwarded-proto': 'https' } });
    assert.match(String(tls.headers['set-cookie']), /; Secure;/);
    const untrusted = await start();
    const spoofed = await request(`${untrusted}/login`, { method: 'POST', body: { user: 'a' }, headers: { 'x-forwarded-proto': 'https' } });
    assert.doesNotMatch(String(spoofed.headers['set-cookie']), /Secure/);
  });

  test('only modified sessions are re-issued; an untouched anonymous session gets no cookie', async () => {
    const c = client(await start());
    const anon = await c.send('GET', '/peek');
    assert.equal(anon.headers['set-cookie'], undefined);
    await c.send('POST', '/login', { user: 'alice' });
    const peek = await c.send('GET', '/peek');
    assert.equal(peek.status, 200);
    assert.equal(peek.headers['set-cookie'], undefined);
    assert.ok((await c.send('GET', '/me')).headers['set-cookie']);
  });

  test('sliding renewal past half the lifetime keeps the jti and the session start', async () => {
    const c = client(await start());
    const iat0 = now() - 1000;
    c.token = await ring.sign({ user: 'alice', iat0, iat: now() - 1000, jti: 'sess-1' }, { expiresAt: now() + 800 });
    const renewed = await c.send('GET', '/peek');
    assert.equal(renewed.status, 200);
    const claims = decodeJwt(c.token!);
    assert.equal(claims.jti, 'sess-1');
    assert.equal(claims.iat0, iat0);
    assert.ok(claims.exp! >= now() + 1795, `exp renewed to a full ttl, got ${claims.exp! - now()} s left`);

    c.token = await ring.sign({ user: 'alice', iat0: now() - 100, iat: now() - 100, jti: 'sess-2' }, { expiresAt: now() + 1700 });
    assert.equal((await c.send('GET', '/peek')).headers['set-cookie'], undefined, 'no renewal before half the lifetime');
  });

  test('absolute max age: renewal never extends past iat0 + maxAge, and an older session is logged out', async () => {
    const c = client(await start());
    const iat0 = now() - 6600; // maxAge 7200: 600 s left
    c.token = await ring.sign({ user: 'alice', iat0, iat: now() - 1200, jti: 's' }, { expiresAt: iat0 + 7200 });
    const capped = await c.send('GET', '/peek');
    assert.equal(capped.status, 200);
    assert.equal(capped.headers['set-cookie'], undefined, 'nothing left to extend');
    const me = await c.send('GET', '/me'); // modified: re-issued, still capped
    assert.equal(me.status, 200);
    assert.equal(decodeJwt(c.token!).exp, iat0 + 7200);

    c.token = await ring.sign({ user: 'alice', iat0: now() - 7300, iat: now() - 60, jti: 's2' }, { expiresAt: now() + 600 });
    assert.equal((await c.send('GET', '/me')).status, 401);
  });

  test('destroy() clears the cookie; with a deny list the old token is refused at once', async () => {
    const denyList = createMemoryDenyList();
    const c = client(await start({ denyList }));
    await c.send('POST', '/login', { user: 'alice' });
    const stolen = c.token!;
    const out = await c.send('POST', '/logout');
    assert.equal(out.status, 200);
    assert.match(String(out.headers['set-cookie']), /^session=; Path=\/; Max-Age=0;/);
    assert.equal(c.token, undefined);
    assert.equal(denyList.size, 1);
    const replay = await request(`${(running.at(-1) as Running).url}/me`, { headers: { cookie: `session=${stolen}` } });
    assert.equal(replay.status, 401);
  });

  test('a logout the deny list cannot record fails (503) and keeps the cookie, so it can be retried', async () => {
    const working = createMemoryDenyList();
    let failing = true;
    const flaky: DenyList = {
      add: (jti, exp) => (failing ? Promise.reject(new Error('store down')) : working.add(jti, exp)),
      has: (jti) => working.has(jti),
    };
    const c = client(await start({ denyList: flaky }));
    await c.send('POST', '/login', { user: 'alice' });
    const failed = await c.send('POST', '/logout');
    assert.deepEqual([failed.status, failed.json.code], [503, 'CS_ERR_JWT_DENYLIST_UNAVAILABLE']);
    assert.equal(failed.headers['set-cookie'], undefined);
    assert.equal((await c.send('GET', '/me')).status, 200);
    failing = false;
    assert.equal((await c.send('POST', '/logout')).status, 200);
    assert.equal(working.size, 1);
  });

  test('without a deny list, logout clears the cookie but a copied token stays valid until it expires', async () => {
    const url = await start();
    const c = client(url);
    await c.send('POST', '/login', { user: 'alice' });
    const copy = c.token!;
    await c.send('POST', '/logout');
    assert.equal((await request(`${url}/me`, { headers: { cookie: `session=${copy}` } })).status, 200);
  });

  test('regenerate() issues a new jti and revokes the old one', async () => {
    const denyList = createMemoryDenyList();
    const url = await start({ denyList });
    const c = client(url);
    const first = await c.send('POST', '/login', { user: 'alice' });
    const firstToken = c.token!;
    const second = await c.send('POST', '/login', { user: 'bob' });
    assert.notEqual(second.json.id, first.json.id);
    assert.equal(decodeJwt(c.token!).jti, second.json.id);
    assert.equal((await c.send('GET', '/me')).json.user, 'bob');
    assert.equal((await request(`${url}/me`, { headers: { cookie: `session=${firstToken}` } })).status, 401);
  });

  test('a token over the 4 KB cookie limit is refused at save time, never truncated', async () => {
    const c = client(await start());
    await c.send('POST', '/login', { user: 'alice' });
    const before = c.token;
    const explicit = await c.send('POST', '/put-save', { blob: 'x'.repeat(4000) });
    assert.equal(explicit.status, 413);
    assert.equal(explicit.json.code, 'CS_ERR_JWT_TOO_LARGE');
    assert.match(explicit.json.error, /over the 4096-byte limit; it was not issued/);
    const implicit = await c.send('POST', '/put', { blob: 'x'.repeat(4000) });
    assert.equal(implicit.status, 413);
    assert.equal(implicit.json.code, 'CS_ERR_JWT_TOO_LARGE');
    assert.equal(c.token, before, 'the previous token is kept');
    assert.equal(reported.filter((e) => (e as { code?: string }).code === 'CS_ERR_JWT_TOO_LARGE').length, 1, 'only the implicit failure is reported');
    assert.equal((await c.send('GET', '/me')).status, 200);
  });

  test('storing data under a registered claim name is refused with a clear code', async () => {
    const c = client(await start());
    await c.send('POST', '/login', { user: 'alice' });
    const res = await c.send('POST', '/put', { exp: 99999999999 });
    assert.equal(res.json.code, 'CS_ERR_JWT_RESERVED_CLAIM');
    assert.equal((await c.send('GET', '/me')).status, 200);
    // What decides is the JSON that would be signed: a reserved name JSON drops is fine, a toJSON that adds one is not.
    const before = c.token;
    assert.equal((await c.send('POST', '/reserved-undefined')).status, 200);
    assert.notEqual(c.token, before, 'the note was signed into a new token');
    assert.equal(decodeJwt(c.token!).note, 'kept');
    const viaToJson = await c.send('POST', '/reserved-tojson');
    assert.equal(viaToJson.json.code, 'CS_ERR_JWT_RESERVED_CLAIM');
  });

  test('cookie.maxAge works as in express-session: remember-me lifetime, or null for a browser-session cookie', async () => {
    const c = client(await start());
    await c.send('POST', '/login', { user: 'alice' });
    const month = 30 * 86400;
    const remember = await c.send('POST', '/remember', { maxAge: month * 1000 });
    assert.ok(remember.json.maxAge > (month - 5) * 1000);
    assert.match(String(remember.headers['set-cookie']), new RegExp(`Max-Age=${month};`));
    const claims = decodeJwt(c.token!);
    assert.equal(claims.ttl, month);
    assert.ok(claims.exp! >= now() + month - 5, 'beyond the configured maxAge (2 h): the session asked for a month');
    const peek = await c.send('GET', '/peek');
    assert.equal(peek.headers['set-cookie'], undefined);
    assert.ok(peek.json.maxAge > (month - 5) * 1000, 'the lifetime is carried by the token');

    const browser = await c.send('POST', '/remember', { maxAge: null });
    assert.equal(browser.json.maxAge, null);
    const line = String(browser.headers['set-cookie']);
    assert.doesNotMatch(line, /Max-Age|Expires/);
    assert.equal(decodeJwt(c.token!).exp! - now() <= 1800, true, 'the token still expires after the configured ttl');
    assert.equal((await c.send('GET', '/me')).status, 200);

    const bad = await c.send('POST', '/remember', { maxAge: 'a month' });
    assert.equal(bad.status, 500, 'not a number: a TypeError, as express-session\'s Cookie throws');

    // 0 or less: the cookie expires, as in express-session; here the token ends with it (cleared, 200).
    const ended = await c.send('POST', '/remember', { maxAge: -5 });
    assert.equal(ended.status, 200);
    assert.match(String(ended.headers['set-cookie']), /^session=; Path=\/; Max-Age=0;/);
    assert.equal(c.token, undefined);
  });

  test('session data that JSON cannot encode fails loudly (500 with a code), not silently', async () => {
    const url = await start();
    const c = client(url);
    await c.send('POST', '/login', { user: 'alice' });
    const res = await c.send('GET', '/bigint');
    assert.equal(res.status, 500);
    assert.equal(res.json.code, 'CS_ERR_JWT_SAVE');
    assert.equal((await c.send('GET', '/me')).json.user, 'alice');
  });

  test('reload() discards unsaved changes; touch() re-issues', async () => {
    const c = client(await start());
    await c.send('POST', '/login', { user: 'alice' });
    assert.equal((await c.send('POST', '/reload')).json.user, 'alice');
    assert.ok((await c.send('POST', '/touch')).headers['set-cookie']);
  });

  test('a streamed response (writeHead, write, end) still gets its cookie before the headers', async () => {
    const c = client(await start());
    await c.send('POST', '/login', { user: 'alice' });
    const res = await c.send('GET', '/stream');
    assert.equal(res.body, 'abc');
    assert.equal(decodeJwt(c.token!).streamed, true);
  });

  test('encrypt: the token is a JWE (dir, A256GCM) the client cannot read, and the session still works', async () => {
    const url = await start({ encrypt: true });
    const c = client(url);
    await c.send('POST', '/login', { user: 'alice-secret-name' });
    const token = c.token!;
    assert.equal(token.split('.').length, 5);
    assert.deepEqual({ ...decodeProtectedHeader(token) }, { alg: 'dir', enc: 'A256GCM', kid: `enc-${ring.kids[0]}`, typ: 'JWT' });
    for (const part of token.split('.')) assert.ok(!Buffer.from(part, 'base64url').toString('latin1').includes('alice'));
    assert.equal((await c.send('GET', '/me')).json.user, 'alice-secret-name');
    const tampered = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    assert.equal((await request(`${url}/me`, { headers: { cookie: `session=${tampered}` } })).status, 401);
    // A signed (unencrypted) token from the same keys is not accepted where encryption is required.
    assert.equal((await request(`${url}/me`, { headers: { cookie: `session=${await ring.sign({ user: 'x', iat0: now() })}` } })).status, 401);
  });

  test('rotation over HTTP: the old kid verifies until removed; the next issued token carries the new kid', async () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const newKey = { kid: 'es-new', alg: 'ES256' as const, privateKey };
    const oldRing = createKeyRing({ keys: [{ kid: 'hs-old', alg: 'HS256', secret }] });
    const c = client(await start({ ring: oldRing }));
    await c.send('POST', '/login', { user: 'alice' });
    const oldToken = c.token!;
    assert.equal(decodeProtectedHeader(oldToken).kid, 'hs-old');
    const rotated = await start({ ring: createKeyRing({ keys: [newKey, { kid: 'hs-old', alg: 'HS256', secret }] }) });
    const me = await request(`${rotated}/me`, { headers: { cookie: `session=${oldToken}` } });
    assert.equal(me.status, 200);
    assert.equal(decodeProtectedHeader(me.cookies.session!).kid, 'es-new');
    const removed = await start({ ring: createKeyRing({ keys: [newKey] }) });
    assert.equal((await request(`${removed}/me`, { headers: { cookie: `session=${oldToken}` } })).status, 401);
    assert.equal((await request(`${removed}/me`, { headers: { cookie: `session=${me.cookies.session}` } })).status, 200);
  });

  test('encrypt with an asymmetric ring needs its own secret', async () => {
    const ring2 = createKeyRing({ keys: [{ kid: 'ed', alg: 'EdDSA', privateKey: generateKeyPairSync('ed25519').privateKey }] });
    assert.throws(() => jwtSession({ ring: ring2, encrypt: true }), /encrypt: true derives the encryption key.*encrypt: \{ secret/);
    const c = client(await start({ ring: ring2, encrypt: { secret: randomBytes(32) } }));
    await c.send('POST', '/login', { user: 'alice' });
    assert.equal(decodeProtectedHeader(c.token!).alg, 'dir');
    assert.equal((await c.send('GET', '/me')).json.user, 'alice');
  });

  test('bearer: tokens go back in the x-session-token header, not a cookie', async () => {
    const url = await start();
    const login = await request(`${url}/login`, { method: 'POST', body: { user: 'api' }, headers: { 'x-session-token': '1' } });
    assert.equal(login.headers['set-cookie'], undefined);
    const token = login.headers['x-session-token'] as string;
    assert.equal(decodeJwt(token).user, 'api');
    assert.equal(login.headers['cache-control'], 'no-store');
    const me = await request(`${url}/me`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual([me.status, me.json.hits], [200, 1]);
    assert.equal(me.headers['set-cookie'], undefined);
    assert.equal(decodeJwt(me.headers['x-session-token'] as string).hits, 1);
  });

  test('a deny list that does not answer gives a 503 with a code, within the timeout, not a hang', async () => {
    const hanging: DenyList = { add: () => new Promise(() => {}), has: () => new Promise(() => {}) };
    const url = await start({ denyList: hanging, denyListTimeout: 300 });
    const token = await ring.sign({ user: 'alice', iat0: now() }, { ttl: 600 });
    const res = await request(`${url}/me`, { headers: { cookie: `session=${token}` }, timeoutMs: 2000 });
    assert.equal(res.status, 503);
    assert.equal(res.json.code, 'CS_ERR_JWT_DENYLIST_UNAVAILABLE');
    assert.equal(res.headers['retry-after'], '1');
    assert.equal((await request(`${url}/me`, { timeoutMs: 2000 })).status, 401, 'requests without a token do not need the deny list');
  });

  test('options are validated at startup with errors naming the option', () => {
    const bad: [Partial<JwtSessionOptions>, RegExp][] = [
      [{ ring: undefined, secret: 'short' }, /at least 256 bits/],
      [{ ring, ttl: -1 }, /^jwtSession: option ttl is -1: expected seconds, or a duration/],
      [{ ring, ttl: '2h', maxAge: '1h' }, /option maxAgeSeconds is 3600: expected seconds, at least ttlSeconds \(7200\)/],
      [{ ring, cookie: { sameSite: 'none' } }, /cookie.sameSite.*secure: true/],
      [{ ring, cookie: { name: 'bad name' } }, /cookie.name/],
      [{ ring, cookie: { name: '__Host-s', secure: 'auto' } }, /__Host-/],
      [{ ring, clockTolerance: 3600 }, /clockTolerance/],
      [{ ring, tll: 5 } as never, /unknown option tll: did you mean ttlSeconds\?/],
      [{ ring, ttlSeconds: 60, ttl: 60 }, /ttl and ttlSeconds are both given/],
      [{ ring, secret }, /exactly one of ring, keys or secret \(got 2\)/],
      [{ ring, encrypt: { secret: 'short' } }, /encrypt.secret\[0\]/],
      [{ ring, denyList: {} as never }, /option denyList is \{\}: expected an object with add\(jti, expiresAtMs\) and has\(jti\)/],
    ];
    for (const [options, pattern] of bad)
      assert.throws(() => jwtSession({ ring, ...options } as JwtSessionOptions), (err: unknown) => err instanceof JwtConfigError && pattern.test(err.message));
  });
});

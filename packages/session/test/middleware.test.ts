// The middleware over real HTTP, on the embedded SQLite store (a real file shared by the apps of one test).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import express from 'express';
import { cookieHeader, request, startNode, type HttpResult } from '@cluster-session/testkit';
import { clusterSession, login, logout, NoSessionError } from '@cluster-session/session';
import { SECRET, serve, type Served } from './fixtures/app.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-mw-'));
const file = path.join(dir, 'sessions.sqlite');
const store = { type: 'sqlite' as const, path: file };
const quiet = { warn: () => {}, error: () => {} };

const post = (url: string, body: object, jar: Record<string, string> = {}) =>
  request(url, { method: 'POST', body, headers: { cookie: cookieHeader(jar) } });
const get = (url: string, jar: Record<string, string> = {}) => request(url, { headers: { cookie: cookieHeader(jar) } });
const setCookie = (r: HttpResult) => ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((l) => l.startsWith('sid=')) ?? '';
const sidOf = (jar: Record<string, string>) => decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
const sign = (id: string, secret: string) => `s:${id}.${createHmac('sha256', secret).update(id).digest('base64').replace(/=+$/, '')}`;

function row(sid: string): { sess: string; expires: number } | undefined {
  const db = new DatabaseSync(file, { timeout: 2000 });
  try {
    return db.prepare('SELECT sess, expires FROM sessions WHERE sid = ?').get(sid) as { sess: string; expires: number } | undefined;
  } finally {
    db.close();
  }
}

describe('clusterSession middleware over HTTP', () => {
  let app: Served;
  before(async () => {
    app = await serve({ store, logger: quiet, maxSessionBytes: 1024 });
  });
  after(async () => {
    await app.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('cookie defaults: sid, HttpOnly, SameSite=Lax, Path=/, an expiry, no Secure over plain HTTP', async () => {
    const r = await post(`${app.url}/login`, { user: 'cookie' });
    const line = setCookie(r);
    assert.match(line, /^sid=s%3A[\w-]+\.[\w+/%-]+;/);
    assert.match(line, /HttpOnly/);
    assert.match(line, /SameSite=Lax/);
    assert.match(line, /Path=\//);
    assert.match(line, /Expires=/);
    assert.doesNotMatch(line, /Secure/);
  });

  it("secure 'auto': Secure when a trusted proxy says HTTPS, not when an untrusted client claims it", async () => {
    const sessions = clusterSession({ store, secret: SECRET, logger: quiet });
    const make = (trust: boolean) => {
      const a = express();
      if (trust) a.set('trust proxy', 'loopback');
      a.use(sessions);
      a.get('/', (req, res) => {
        (req.session as unknown as Record<string, unknown>).x = 1;
        res.json({});
      });
      return a.listen(0, '127.0.0.1');
    };
    const trusted = make(true);
    const untrusted = make(false);
    try {
      await new Promise((r) => setImmediate(r));
      const hdr = { 'x-forwarded-proto': 'https' };
      const t = await request(`http://127.0.0.1:${(trusted.address() as AddressInfo).port}/`, { headers: hdr });
      assert.match(setCookie(t), /Secure/);
      const u = await request(`http://127.0.0.1:${(untrusted.address() as AddressInfo).port}/`, { headers: hdr });
      assert.ok(setCookie(u), 'cookie still set over plain HTTP');
      assert.doesNotMatch(setCookie(u), /Secure/);
    } finally {
      trusted.close();
      untrusted.close();
      await sessions.close();
    }
  });

  it('no cookie and no write for a visit that stores nothing; an unchanged session is not rewritten', async () => {
    const anon = await get(`${app.url}/me`);
    assert.equal(anon.status, 200);
    assert.equal(setCookie(anon), '', 'saveUninitialized: false');
    const jar = (await post(`${app.url}/login`, { user: 'lazy' })).cookies;
    const before = row(sidOf(jar));
    const again = await get(`${app.url}/me`, jar);
    assert.equal(again.json.data.user, 'lazy');
    assert.equal(setCookie(again), '', 'no Set-Cookie for an unchanged session');
    assert.deepEqual(row(sidOf(jar)), before, 'neither saved nor touched (lazy touch)');
  });

  it('secret rotation: the first secret signs, every listed secret verifies', async () => {
    const s1 = 'first-secret-first-secret-0001';
    const s2 = 'second-secret-second-secret-02';
    const a = await serve({ store, secret: s1, logger: quiet });
    const b = await serve({ store, secret: [s2, s1], logger: quiet });
    const c = await serve({ store, secret: s2, logger: quiet });
    try {
      const old = (await post(`${a.url}/login`, { user: 'rot' })).cookies;
      assert.equal((await get(`${b.url}/me`, old)).json.data.user, 'rot', 'old cookie verifies after rotation');
      assert.equal((await get(`${c.url}/me`, old)).json.data.user, undefined, 'retired secret no longer verifies');
      const fresh = (await post(`${b.url}/login`, { user: 'rot2' })).cookies;
      assert.equal((await get(`${c.url}/me`, fresh)).json.data.user, 'rot2', 'new cookies are signed with the first secret');
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('login regenerates the id, keeps only the named keys, and the old id is gone from the store', async () => {
    const anon = await post(`${app.url}/set`, { cart: ['tea'], scratch: 'drop me' });
    const oldSid = sidOf(anon.cookies);
    assert.ok(row(oldSid), 'anonymous session stored');
    const r = await post(`${app.url}/login`, { user: 'keeper', keep: ['cart'] }, anon.cookies);
    const jar = r.cookies;
    assert.notEqual(sidOf(jar), oldSid);
    assert.deepEqual(r.json.data, { cart: ['tea'], user: 'keeper' });
    assert.equal(row(oldSid), undefined, 'old session destroyed (no fixation)');
    assert.deepEqual((await get(`${app.url}/me`, jar)).json.data, { cart: ['tea'], user: 'keeper' });
  });

  it('logout destroys the session and clears the cookie', async () => {
    const jar = (await post(`${app.url}/login`, { user: 'leaver' })).cookies;
    const r = await post(`${app.url}/logout`, {}, jar);
    assert.equal(r.status, 200);
    assert.match(setCookie(r), /^sid=;.*Expires=Thu, 01 Jan 1970/);
    assert.equal(row(sidOf(jar)), undefined);
    assert.equal((await get(`${app.url}/me`, jar)).json.data.user, undefined);
  });

  it('malformed, unsigned, tampered and unknown-but-signed cookies get a fresh session, never the given id', async () => {
    const victim = (await post(`${app.url}/login`, { user: 'victim' })).cookies;
    const victimSid = sidOf(victim);
    const signed = decodeURIComponent(victim.sid!);
    const cases: Record<string, string> = {
      malformed: '%%%not-a-cookie',
      empty: '',
      unsigned: victimSid,
      tampered: encodeURIComponent(signed.slice(0, -2) + (signed.endsWith('AA') ? 'BB' : 'AA')),
      'signed with another secret': encodeURIComponent(sign(victimSid, 'attacker-secret-attacker-secret')),
      'unknown id, correctly signed': encodeURIComponent(sign('attacker-chosen-id-0123456789', SECRET)),
    };
    for (const [label, value] of Object.entries(cases)) {
      const me = await request(`${app.url}/me`, { headers: { cookie: `sid=${value}` } });
      assert.equal(me.status, 200, label);
      assert.equal(me.json.data.user, undefined, label);
      const w = await request(`${app.url}/set`, { method: 'POST', body: { n: 1 }, headers: { cookie: `sid=${value}` } });
      assert.equal(w.status, 200, label);
      const issued = sidOf(w.cookies);
      assert.notEqual(issued, victimSid, label);
      assert.notEqual(issued, 'attacker-chosen-id-0123456789', `${label}: unknown id adopted`);
    }
    assert.equal((await get(`${app.url}/me`, victim)).json.data.user, 'victim', 'the real session is untouched');
  });

  it('an oversized session is refused with 413 JSON and nothing of it is saved', async () => {
    const jar = (await post(`${app.url}/set`, { note: 'small' })).cookies;
    const big = await post(`${app.url}/set`, { blob: 'x'.repeat(2000) }, jar);
    assert.equal(big.status, 413);
    assert.deepEqual(big.json, { error: 'session too large', code: 'CS_ERR_SESSION_TOO_LARGE', limit: 1024 });
    assert.equal(setCookie(big), '');
    assert.deepEqual((await get(`${app.url}/me`, jar)).json.data, { note: 'small' });
    // Through login(): the explicit save rejects, errorHandler answers.
    const viaLogin = await post(`${app.url}/login`, { user: 'u'.repeat(1500) }, jar);
    assert.equal(viaLogin.status, 413);
    assert.equal(viaLogin.json.code, 'CS_ERR_SESSION_TOO_LARGE');
  });

  it("a save that fails after the route answered replaces the app's 200 with 503 JSON (nothing half-saved)", async () => {
    const jar = (await post(`${app.url}/set`, { step: 1 })).cookies;
    const locker = startNode([path.join(import.meta.dirname, 'fixtures', 'lock-sqlite.ts'), file]);
    try {
      await locker.waitFor(/locked/);
      const r = await post(`${app.url}/set`, { step: 2 }, jar);
      assert.equal(r.status, 503, r.body);
      assert.deepEqual(r.json, { error: 'session store unavailable', code: 'CS_ERR_SESSION_STORE_UNAVAILABLE' });
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(setCookie(r), '');
    } finally {
      await locker.stop('SIGTERM');
    }
    assert.deepEqual((await get(`${app.url}/me`, jar)).json.data, { step: 1 });
  });

  it('health reports the store', async () => {
    const h = await get(`${app.url}/healthz`);
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { ok: true, mode: 'store', store: 'sqlite' });
  });

  it('helpers on a request without the middleware throw NoSessionError', async () => {
    const req = {} as express.Request;
    await assert.rejects(login(req, { user: 'x' }), (e: NoSessionError) => e.code === 'CS_ERR_SESSION_MISSING');
    await assert.rejects(logout(req), NoSessionError);
  });
});

describe('maxSessionBytes: the limit is the stored JSON, to the byte', () => {
  const limit = 600;
  let server: ReturnType<express.Express['listen']>;
  let url: string;
  const sessions = clusterSession({ store: 'memory', secret: SECRET, logger: quiet, maxSessionBytes: limit });
  before(async () => {
    const a = express();
    a.use(sessions);
    // Pads the session so that JSON.stringify(req.session) takes exactly `to` bytes, with `ch` as the padding.
    a.get('/fill', (req, res) => {
      const s = req.session as unknown as Record<string, unknown>;
      const ch = String(req.query.ch ?? 'x');
      s.note = 'été ✓';
      s.pad = '';
      const base = Buffer.byteLength(JSON.stringify(req.session));
      const need = Number(req.query.to) - base;
      s.pad = ch.repeat(Math.floor(need / Buffer.byteLength(ch))) + 'x'.repeat(need % Buffer.byteLength(ch));
      res.json({ bytes: Buffer.byteLength(JSON.stringify(req.session)) });
    });
    a.use(sessions.errorHandler);
    server = a.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await sessions.close();
  });

  for (const ch of ['x', 'é', '✓']) {
    it(`padding with ${JSON.stringify(ch)}: ${limit} bytes are saved, ${limit + 1} are refused with 413`, async () => {
      const at = await request(`${url}/fill?to=${limit}&ch=${encodeURIComponent(ch)}`);
      assert.equal(at.status, 200, at.body);
      assert.ok(setCookie(at), 'saved: a cookie was set');
      const over = await request(`${url}/fill?to=${limit + 1}&ch=${encodeURIComponent(ch)}`);
      assert.equal(over.status, 413, over.body);
      assert.equal(over.json.limit, limit);
    });
  }
});

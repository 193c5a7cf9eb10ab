// The store conformance suite: one function, run by redis.test.ts, mongo.test.ts, sqlite.test.ts, memory.test.ts.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import type { SessionData } from 'express-session';
import { cookieHeader, request, sleep, startNode, until, type HttpResult, type Proc } from '@cluster-session/testkit';
import { clusterSession, createDenyList, type Logger, type SessionConfigInput, type StoreInput } from '@cluster-session/session';
import { serve, type Served } from './fixtures/app.ts';
import { cb } from './fixtures/callback.ts';
import { serveThrottle } from './fixtures/throttle-app.ts';

export interface StoreFixture {
  /** JSON-serializable store config (child processes get it through the environment). */
  store: StoreInput;
  /** More JSON-serializable options for every app of the suite (e.g. a collection of its own). */
  options?: Omit<SessionConfigInput, 'store' | 'logger'>;
  /** The expiry the store itself holds for a session (ms since epoch), read natively. */
  expiryOf(served: Served, sid: string): Promise<number | undefined>;
  /** Overwrites a session's stored value with text that is not JSON, natively (absent: nothing outside can). */
  corrupt?(served: Served, sid: string): Promise<void>;
  /** False for the process-local memory store. */
  multiProcess: boolean;
  /** Takes the store away and brings it back; `failing` is the request kind that must get 503. */
  outage?: { stop(): Promise<void>; start(): Promise<void>; failing: 'read' | 'write' };
  /** Restarts the store; `persistent` when data survives it. */
  restart?: { run(): Promise<void>; persistent: boolean };
  close(): Promise<void>;
}

function sessionData(ttlMs: number, extra: Record<string, unknown> = {}): SessionData {
  return {
    cookie: { originalMaxAge: ttlMs, expires: new Date(Date.now() + ttlMs), httpOnly: true, path: '/' },
    ...extra,
  } as unknown as SessionData;
}

const post = (url: string, body: object, jar: Record<string, string> = {}) =>
  request(url, { method: 'POST', body, headers: { cookie: cookieHeader(jar) } });
const get = (url: string, jar: Record<string, string> = {}) => request(url, { headers: { cookie: cookieHeader(jar) } });

async function login(url: string, user: string, jar: Record<string, string> = {}): Promise<Record<string, string>> {
  const r = await post(`${url}/login`, { user }, jar);
  assert.equal(r.status, 200, r.body);
  assert.ok(r.cookies.sid, 'login sets the session cookie');
  return { ...jar, ...r.cookies };
}

export function conformance(name: string, setup: () => Promise<StoreFixture>): void {
  describe(`store conformance: ${name}`, () => {
    let fx: StoreFixture;
    let app: Served;
    const logs: string[] = [];
    const logger: Logger = { warn: (m) => logs.push(m), error: (m) => logs.push(m) };

    before(async () => {
      fx = await setup();
      app = await serve({ ...fx.options, store: fx.store, logger });
    });
    after(async () => {
      await app?.close();
      await fx?.close();
    });

    it('set, get, destroy; an unknown id reads as no session', async () => {
      const store = app.sessions.store!;
      await cb((d) => store.set('conf-a', sessionData(60_000, { user: 'ann', n: 1 }), d));
      const got = (await cb<SessionData | null>((d) => store.get('conf-a', d))) as unknown as { user: string; n: number };
      assert.equal(got.user, 'ann');
      assert.equal(got.n, 1);
      assert.equal(await cb((d) => store.get('conf-missing', d)) ?? null, null);
      await cb((d) => store.destroy('conf-a', d));
      assert.equal(await cb((d) => store.get('conf-a', d)) ?? null, null);
    });

    it("each answer runs in its caller's async context, with many calls in one tick", async () => {
      // What a request's AsyncLocalStorage holds (the store budget, an app's request id) must still be there when
      // the store answers it: a store that answers a batch of calls from one place must not hand them all the
      // context of the first. 40 callers at once, each in its own context, through every step a request makes.
      const store = app.sessions.store!;
      const als = new AsyncLocalStorage<number>();
      const wrong: string[] = [];
      const step = (i: number, op: string, call: (d: (err?: unknown, v?: unknown) => void) => void) =>
        als.run(i, () =>
          cb((d) =>
            call((err, v) => {
              if (als.getStore() !== i) wrong.push(`${op} of caller ${i} answered in the context of ${als.getStore()}`);
              d(err, v);
            }),
          ),
        );
      const ids = Array.from({ length: 40 }, (_, i) => `ctx-${i}`);
      await Promise.all(ids.map((id, i) => step(i, 'set', (d) => store.set(id, sessionData(60_000, { user: `u${i}` }), d))));
      const got = await Promise.all(ids.map((id, i) => step(i, 'get', (d) => store.get(id, d))));
      assert.deepEqual(got.map((s) => (s as { user?: string } | null)?.user), ids.map((_, i) => `u${i}`));
      await Promise.all(ids.map((id, i) => step(i, 'touch', (d) => store.touch!(id, sessionData(120_000, { user: `u${i}` }), d))));
      await Promise.all(ids.map((id, i) => step(i, 'destroy', (d) => store.destroy(id, d))));
      assert.deepEqual(wrong, []);
    });

    it('length, all and clear see exactly the live sessions', async () => {
      const store = app.sessions.store!;
      await cb((d) => store.clear!(d));
      for (const id of ['l1', 'l2', 'l3']) await cb((d) => store.set(id, sessionData(60_000, { user: id }), d));
      assert.equal(await cb((d) => store.length!(d)), 3);
      const all = await cb<unknown>((d) => store.all!(d));
      const list = (Array.isArray(all) ? all : Object.values(all as object)) as Array<{ user: string }>;
      assert.deepEqual(list.map((s) => s.user).sort(), ['l1', 'l2', 'l3']);
      const ids = (store as unknown as { ids?: (d: (e: unknown, v: string[]) => void) => void }).ids;
      if (ids) assert.deepEqual((await cb<string[]>((d) => ids.call(store, d))).sort(), ['l1', 'l2', 'l3']);
      await cb((d) => store.clear!(d));
      assert.equal(await cb((d) => store.length!(d)), 0);
    });

    it('expired sessions are gone; touch pushes the expiry out', async () => {
      const store = app.sessions.store!;
      await cb((d) => store.clear!(d));
      await cb((d) => store.set('ttl-short', sessionData(1200, { user: 'x' }), d));
      await cb((d) => store.set('ttl-touched', sessionData(1200, { user: 'y' }), d));
      await cb((d) => store.touch!('ttl-touched', sessionData(60_000, { user: 'y' }), d));
      await sleep(2300);
      assert.equal(await cb((d) => store.get('ttl-short', d)) ?? null, null, 'expired session still readable');
      const touched = (await cb<SessionData | null>((d) => store.get('ttl-touched', d))) as unknown as { user: string } | null;
      assert.equal(touched?.user, 'y', 'touched session expired with its old expiry');
      assert.equal(await cb((d) => store.length!(d)), 1);
    });

    it('a touch never undoes a newer save, nor brings back a destroyed session', async () => {
      const store = app.sessions.store!;
      type Plain = SessionData & { n: number; cookie: { expires: Date | string } };
      const load = async () => (await cb<SessionData | null>((d) => store.get('cas-1', d))) as Plain | null;
      await cb((d) => store.set('cas-1', sessionData(60_000, { user: 'c', n: 1 }), d));
      const stale = (await load())!;
      // Another worker saves a change after this one loaded the session, then this one touches what it loaded.
      await cb((d) => store.set('cas-1', sessionData(60_000, { user: 'c', n: 2 }), d));
      stale.cookie.expires = new Date(Date.now() + 120_000);
      await cb((d) => store.touch!('cas-1', stale, d));
      assert.equal((await load())?.n, 2, 'the touch overwrote a newer save');
      const current = (await load())!;
      await cb((d) => store.destroy('cas-1', d));
      current.cookie.expires = new Date(Date.now() + 120_000);
      await cb((d) => store.touch!('cas-1', current, d));
      assert.equal((await load()) ?? null, null, 'the touch brought a destroyed session back');
    });

    it('rolling: the cookie and the store agree on the expiry, and both move forward', async () => {
      const rolling = await serve({ ...fx.options, store: fx.store, rolling: true, ttl: 3600, logger });
      try {
        const jar = await login(rolling.url, 'roll');
        const sid = decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
        const expiresOf = (r: HttpResult) => {
          const line = ([] as string[]).concat(r.headers['set-cookie'] ?? []).find((l) => l.startsWith('sid='));
          assert.ok(line, 'rolling re-sends the cookie');
          return Date.parse(/Expires=([^;]+)/.exec(line)![1]!);
        };
        const first = await get(`${rolling.url}/me`, jar);
        await sleep(1100);
        const second = await get(`${rolling.url}/me`, jar);
        assert.equal(second.json.data.user, 'roll');
        const cookieExp = expiresOf(second);
        assert.ok(cookieExp > expiresOf(first), 'the cookie expiry rolled forward');
        const storeExp = await fx.expiryOf(rolling, sid);
        assert.ok(storeExp !== undefined, 'session present in the store');
        assert.ok(Math.abs(storeExp - cookieExp) <= 2000, `store expiry ${storeExp} vs cookie ${cookieExp}`);
      } finally {
        await rolling.close();
      }
    });

    it('lazy touch: reads move the store expiry once per touchAfter, and the stored cookie follows', async () => {
      const lazy = await serve({ ...fx.options, store: fx.store, ttl: 3600, touchAfter: 1, logger });
      try {
        const jar = await login(lazy.url, 'lazy');
        const sid = decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
        const expiry = async () => {
          const e = await fx.expiryOf(lazy, sid);
          assert.ok(e !== undefined, 'session present in the store');
          return e;
        };
        const read = async () => assert.equal((await get(`${lazy.url}/me`, jar)).json.data.user, 'lazy');
        const atLogin = await expiry();
        await sleep(300);
        await read();
        assert.ok(Math.abs((await expiry()) - atLogin) < 150, 'a read within touchAfter does not touch');
        await sleep(1000);
        await read();
        const touched = await expiry();
        assert.ok(touched - atLogin >= 1000, `a read after touchAfter moves the expiry (${touched - atLogin} ms)`);
        // The touch must also move the expiry the stored session carries: it is what the next load compares
        // against. If it does not, every read from now on is "due" and touches again: lazy touch in name only.
        // The reads span ~450 ms, well inside the next touchAfter (1 s) even on a slow machine, and well past the
        // 150 ms allowed for the store's clock jitter.
        for (let i = 0; i < 3; i++) {
          await sleep(150);
          await read();
        }
        const later = await expiry();
        assert.ok(Math.abs(later - touched) < 150, `reads right after a touch do not touch again (moved ${later - touched} ms)`);
      } finally {
        await lazy.close();
      }
    });

    it('login regenerates the id, logoutEverywhere ends every session of that user only', async () => {
      const anon = await post(`${app.url}/set`, { cart: ['book'] });
      const a1 = await login(app.url, 'alice', anon.cookies);
      assert.notEqual(a1.sid, anon.cookies.sid, 'a new session id after login');
      const a2 = await login(app.url, 'alice');
      const b1 = await login(app.url, 'bob');
      const count = await post(`${app.url}/logout-everywhere`, { user: 'alice' });
      assert.equal(count.json.count, 2);
      for (const jar of [a1, a2]) assert.equal((await get(`${app.url}/me`, jar)).json.data.user, undefined);
      assert.equal((await get(`${app.url}/me`, b1)).json.data.user, 'bob');
      assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'alice' })).json.count, 0);
    });

    it('a stored value that is not JSON reads as no session (no 500 loop), logged once', async (t: TestContext) => {
      if (!fx.corrupt) return t.skip('nothing outside the process can write to this store');
      const jar = await login(app.url, 'corrupt');
      const sid = decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
      await fx.corrupt(app, sid);
      logs.length = 0;
      for (let i = 0; i < 2; i++) {
        const r = await post(`${app.url}/set`, { x: i }, jar);
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.data.user, undefined);
        assert.notEqual(r.json.id, sid, 'a fresh session, not the corrupt one');
      }
      assert.ok(logs.filter((l) => /not a valid JSON session/.test(l)).length <= 1, logs.join('\n'));
    });

    it('deny list: add/has, entries expire with their token', async () => {
      const deny = createDenyList(app.resolved);
      try {
        await deny.add('jti-live', Date.now() + 60_000);
        await deny.add('jti-short', Date.now() + 1000);
        await deny.add('jti-past', Date.now() - 1000);
        assert.equal(await deny.has('jti-live'), true);
        assert.equal(await deny.has('jti-short'), true);
        assert.equal(await deny.has('jti-past'), false);
        assert.equal(await deny.has('jti-never'), false);
        await sleep(2100);
        assert.equal(await deny.has('jti-short'), false);
        assert.equal(await deny.has('jti-live'), true);
        // Clearing the sessions must not un-revoke tokens.
        await cb((d) => app.sessions.store!.clear!(d));
        assert.equal(await deny.has('jti-live'), true, 'clear() kept the deny list');
      } finally {
        await deny.close();
      }
    });

    describe('session features', () => {
      const withUa = (ua: string, jar: Record<string, string> = {}) => ({ cookie: cookieHeader(jar), 'user-agent': ua });

      it('listSessions: created, last seen, address and user agent of each live session, the current one marked, no raw id', async () => {
        const user = `lister-${name}-${Date.now()}`;
        const phone = await post(`${app.url}/login`, { user }, {});
        const phoneJar = phone.cookies;
        await request(`${app.url}/login`, { method: 'POST', body: { user }, headers: { 'user-agent': 'PhoneBrowser/1.0' } });
        const laptop = await request(`${app.url}/login`, { method: 'POST', body: { user }, headers: { 'user-agent': 'LaptopBrowser/2.0' } });
        const r = await request(`${app.url}/sessions`, { headers: withUa('LaptopBrowser/2.0', laptop.cookies) });
        assert.equal(r.status, 200, r.body);
        const list = r.json.sessions as Array<{ handle: string; current: boolean; created: string; lastSeen: string; expires: string; address: string; userAgent?: string }>;
        assert.equal(list.length, 3);
        assert.equal(list.filter((s) => s.current).length, 1);
        const current = list.find((s) => s.current)!;
        assert.equal(current.userAgent, 'LaptopBrowser/2.0');
        assert.equal(current.address, '127.0.0.1');
        assert.ok(Date.now() - Date.parse(current.created) < 60_000, current.created);
        assert.ok(Math.abs(Date.parse(current.lastSeen) - Date.parse(current.created)) < 5000);
        assert.ok(Date.parse(current.expires) > Date.now());
        assert.deepEqual(list.map((s) => s.userAgent).filter(Boolean).sort(), ['LaptopBrowser/2.0', 'PhoneBrowser/1.0']);
        const sids = [phoneJar.sid, laptop.cookies.sid].map((c) => decodeURIComponent(c!).slice(2).split('.')[0]!);
        for (const s of list) for (const sid of sids) assert.ok(!r.body.includes(sid), 'a session id never appears in the listing');
        // One device ended by its handle, from another.
        const phoneEntry = list.find((s) => s.userAgent === 'PhoneBrowser/1.0')!;
        const ended = await post(`${app.url}/logout-session`, { handle: phoneEntry.handle }, laptop.cookies);
        assert.equal(ended.json.ended, true);
        const after = await request(`${app.url}/sessions`, { headers: withUa('x', laptop.cookies) });
        assert.equal(after.json.sessions.length, 2);
        assert.equal((await post(`${app.url}/logout-session`, { handle: phoneEntry.handle }, laptop.cookies)).json.ended, false);
      });

      it('logoutEverywhere(userId, { except: req.sessionID }) ends the other sessions only', async () => {
        const user = `except-${name}-${Date.now()}`;
        const jars = [await login(app.url, user), await login(app.url, user), await login(app.url, user)];
        const bystander = await login(app.url, `${user}-other`);
        const r = await post(`${app.url}/logout-others`, {}, jars[0]);
        assert.equal(r.json.count, 2);
        assert.equal((await get(`${app.url}/me`, jars[0])).json.data.user, user, 'this session stays');
        for (const jar of jars.slice(1)) assert.equal((await get(`${app.url}/me`, jar)).json.data.user, undefined);
        assert.equal((await get(`${app.url}/me`, bystander)).json.data.user, `${user}-other`);
        assert.equal((await post(`${app.url}/logout-others`, {}, jars[0])).json.count, 0);
      });

      it('absoluteTimeoutSeconds ends a session that old however active it is, rolling included', async () => {
        const short = await serve({ ...fx.options, store: fx.store, rolling: true, absoluteTimeoutSeconds: 2, logger });
        try {
          const user = `abs-${name}`;
          const jar = await login(short.url, user);
          const sid = decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
          const started = Date.now();
          let r;
          // Active all along: a request every 300 ms, each rolling the expiry forward.
          for (;;) {
            r = await get(`${short.url}/me`, jar);
            if (r.json.data.user !== user) break;
            assert.ok(Date.now() - started < 2000 + 1500, 'still signed in well past the absolute lifetime');
            await sleep(300);
          }
          assert.ok(Date.now() - started >= 1900, `ended after ${Date.now() - started} ms, not before the lifetime`);
          assert.notEqual(r.json.id, sid, 'a fresh session, not the old one');
          assert.equal(await cb((d) => short.sessions.store!.get(sid, d)) ?? null, null, 'the old session is gone from the store');
        } finally {
          await short.close();
        }
      });
    });

    describe('encryption of stored sessions', () => {
      const key = () => randomBytes(32).toString('base64');
      const sidOf = (jar: Record<string, string>) => decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;

      it('AES-256-GCM: the store holds sealed data (user and cookie readable for its indexes), the app reads it back; keys rotate by id', async () => {
        const k1 = `k1:${key()}`;
        const k2 = `k2:${key()}`;
        const enc = await serve({ ...fx.options, store: fx.store, encryptionKeys: [k1], logger });
        // What the store itself holds: read by an app without keys (same store), or the memory store's own map.
        const plain = fx.multiProcess ? await serve({ ...fx.options, store: fx.store, logger }) : undefined;
        const raw = async (sid: string): Promise<Record<string, unknown> | null> => {
          if (plain) return ((await cb<SessionData | null>((d) => plain.sessions.store!.get(sid, d))) ?? null) as unknown as Record<string, unknown> | null;
          const text = (enc.sessions.store as unknown as { sessions: Record<string, string> }).sessions[sid];
          return text ? JSON.parse(text) : null;
        };
        try {
          const jar = await login(enc.url, 'sealed-user');
          const w = await post(`${enc.url}/set`, { card: '4111-1111', note: 'private' }, jar);
          assert.equal(w.status, 200, w.body);
          const sid = sidOf(jar);
          const stored = (await raw(sid))!;
          assert.ok(stored, 'stored');
          assert.match(String(stored['~enc']), /^v1\.k1\./, 'sealed with the first key');
          assert.equal(stored.card, undefined);
          assert.doesNotMatch(JSON.stringify(stored), /4111|private|127\.0\.0\.1/, 'no data, address or agent in clear');
          assert.equal(stored.user, 'sealed-user', 'the indexed user stays readable');
          assert.ok((stored.cookie as { expires?: string }).expires, 'the expiry stays readable');
          const me = await get(`${enc.url}/me`, jar);
          assert.equal(me.json.data.card, '4111-1111');
          assert.equal(me.json.data.user, 'sealed-user');
          // listSessions opens them too (address and agent were sealed).
          const listed = await request(`${enc.url}/sessions`, { headers: { cookie: cookieHeader(jar) } });
          assert.equal(listed.json.sessions[0].address, '127.0.0.1');

          // Rotation: the new key first, the old one still listed: old sessions open, the next save seals with k2.
          const rotated = await serve({ ...fx.options, store: fx.store, encryptionKeys: [k2, k1], logger });
          try {
            if (!fx.multiProcess) return; // the memory store is this app's alone
            assert.equal((await get(`${rotated.url}/me`, jar)).json.data.card, '4111-1111');
            await post(`${rotated.url}/set`, { card: '5500-0000' }, jar);
            assert.match(String((await raw(sid))!['~enc']), /^v1\.k2\./, 're-sealed with the new key');
            assert.equal((await get(`${enc.url}/me`, jar)).json.data.user, undefined, 'an app without k2 cannot open it: no session');
            const jar2 = await login(rotated.url, 'sealed-two');
            assert.equal((await get(`${rotated.url}/me`, jar2)).json.data.user, 'sealed-two');
          } finally {
            await rotated.close();
          }
        } finally {
          await plain?.close();
          await enc.close();
        }
      });

      it('a sealed value moved under another session id does not open', async (t: TestContext) => {
        if (!fx.multiProcess) return t.skip('nothing outside the process writes to this store');
        const k = `k1:${key()}`;
        const enc = await serve({ ...fx.options, store: fx.store, encryptionKeys: [k], logger });
        const plain = await serve({ ...fx.options, store: fx.store, logger });
        try {
          const victim = await login(enc.url, 'victim-enc');
          const attacker = await login(enc.url, 'attacker-enc');
          const sealed = (await cb<SessionData | null>((d) => plain.sessions.store!.get(sidOf(victim), d)))!;
          // Someone with write access to the store copies the victim's sealed value onto the attacker's id.
          await cb((d) => plain.sessions.store!.set(sidOf(attacker), { ...(sealed as object), user: 'attacker-enc' } as SessionData, d));
          const me = await get(`${enc.url}/me`, attacker);
          assert.equal(me.json.data.user, undefined, 'the copy is bound to the victim id (AAD) and reads as no session');
        } finally {
          await plain.close();
          await enc.close();
        }
      });

      it('a wrong key list is refused at startup, naming the option and no key', () => {
        assert.throws(() => clusterSession({ secret: 'x'.repeat(32), store: 'memory', encryptionKeys: ['k1:short'] }), (err: Error) => {
          assert.match(err.message, /encryptionKeys \(or env SESSION_ENCRYPTION_KEYS\) entry 1/);
          assert.doesNotMatch(err.message, /short/);
          return true;
        });
      });
    });

    describe('login throttle', () => {
      const attempt = (url: string, user: string, password: string, ip = '203.0.113.7') =>
        request(`${url}/login`, { method: 'POST', body: { user, password }, headers: { 'x-forwarded-for': ip } });

      it('an account locks after maxFailures (429, Retry-After, before the password is checked); other accounts log in; success resets', async () => {
        const t = await serveThrottle(app.sessions, { maxFailures: 3, maxFailuresPerAddress: 1000, blockSeconds: 60 });
        try {
          const user = `victim-${name}-${Date.now()}`;
          const statuses: number[] = [];
          for (let i = 0; i < 6; i++) statuses.push((await attempt(t.url, user, 'wrong', `198.51.100.${i}`)).status);
          assert.deepEqual(statuses, [401, 401, 401, 429, 429, 429], 'locked after the third failure, whatever the address');
          const locked = await attempt(t.url, user, 'right');
          assert.equal(locked.status, 429, 'the right password is refused while the account is locked');
          assert.equal(locked.json.code, 'CS_ERR_SESSION_LOGIN_THROTTLED');
          assert.equal(locked.json.error, 'too many failed login attempts; try again later');
          const retry = Number(locked.headers['retry-after']);
          assert.ok(retry >= 1 && retry <= 60, `Retry-After ${locked.headers['retry-after']}`);
          assert.equal(locked.headers['cache-control'], 'no-store');
          assert.equal(locked.cookies.sid, undefined, 'no session for a refused attempt');
          // Case and Unicode variants of the name share the count.
          assert.equal((await attempt(t.url, user.toUpperCase(), 'right')).status, 429);
          const other = await attempt(t.url, `other-${name}-${Date.now()}`, 'right');
          assert.equal(other.status, 200, other.body);
          // Success resets: an admin unlock, then two failures and a success, then three more failures before a lock.
          await t.throttle.reset(user);
          assert.equal((await attempt(t.url, user, 'wrong')).status, 401);
          assert.equal((await attempt(t.url, user, 'wrong')).status, 401);
          assert.equal((await attempt(t.url, user, 'right')).status, 200);
          const after: number[] = [];
          for (let i = 0; i < 4; i++) after.push((await attempt(t.url, user, 'wrong')).status);
          assert.deepEqual(after, [401, 401, 401, 429], 'the success cleared the earlier failures');
        } finally {
          await t.close();
        }
      });

      it('an address locks after maxFailuresPerAddress across accounts; each further failure doubles the lock', async () => {
        const t = await serveThrottle(app.sessions, { maxFailures: 100, maxFailuresPerAddress: 4, blockSeconds: 1, maxBlockSeconds: 8 });
        try {
          const ip = `192.0.2.${Math.floor(Math.random() * 200) + 1}`;
          const stamp = `${name}-${Date.now()}`;
          for (let i = 0; i < 4; i++) assert.equal((await attempt(t.url, `spray${i}-${stamp}`, 'wrong', ip)).status, 401);
          const first = await attempt(t.url, `fresh-${stamp}`, 'right', ip);
          assert.equal(first.status, 429, 'a new account from a locked address is refused');
          assert.equal(first.headers['retry-after'], '1');
          assert.equal((await attempt(t.url, `fresh-${stamp}`, 'right', '192.0.2.250')).status, 200, 'another address is not locked');
          // After the 1 s lock, one more failure: locked for 2 s now (blockSeconds doubled once).
          await until('the first lock ends', async () => ((await attempt(t.url, `probe-${stamp}`, 'wrong', ip)).status === 401 ? true : undefined), 5000);
          const second = await attempt(t.url, `fresh-${stamp}`, 'right', ip);
          assert.equal(second.status, 429);
          assert.equal(second.headers['retry-after'], '2', 'the lock doubled');
          // The address's failures are not cleared by a success elsewhere (a known login must not buy guesses).
        } finally {
          await t.close();
        }
      });

      it('two apps with their own store clients share one count', async (t: TestContext) => {
        if (!fx.multiProcess) return t.skip('process-local store');
        const other = await serve({ ...fx.options, store: fx.store, logger });
        const a = await serveThrottle(app.sessions, { maxFailures: 4, blockSeconds: 60 });
        const b = await serveThrottle(other.sessions, { maxFailures: 4, blockSeconds: 60 });
        try {
          const user = `shared-${name}-${Date.now()}`;
          const statuses: number[] = [];
          for (let i = 0; i < 8; i++) statuses.push((await attempt(i % 2 ? b.url : a.url, user, 'wrong', `198.51.100.${i}`)).status);
          assert.deepEqual(statuses, [401, 401, 401, 401, 429, 429, 429, 429]);
        } finally {
          await a.close();
          await b.close();
          await other.close();
        }
      });
    });

    describe('across OS processes', { skip: false }, () => {
      const children: Proc[] = [];
      const urls: string[] = [];
      before(async () => {
        if (!fx.multiProcess) return;
        // These tests are about what four processes see and lose, not the per-request budget (its own tests above):
        // a generous storeTimeout keeps a loaded machine from turning slow saves into 503s.
        const env = { ...process.env, FIXTURE_CONFIG: JSON.stringify({ ...fx.options, store: fx.store, storeTimeout: 10_000 }) };
        const server = path.join(import.meta.dirname, 'fixtures', 'server.ts');
        for (let i = 0; i < 4; i++) children.push(startNode([server], { env }));
        for (const c of children) urls.push((await c.waitFor(/listening (\S+)/, 20_000))[1]!);
      });
      after(async () => {
        await Promise.all(children.map((c) => c.stop()));
      });

      it('a login made in one process is seen by three others', async (t: TestContext) => {
        if (!fx.multiProcess) return t.skip('process-local store');
        const jar = await login(urls[0]!, 'multi');
        const pids = new Set<number>();
        for (const url of urls.slice(1)) {
          const r = await get(`${url}/me`, jar);
          assert.equal(r.json?.data?.user, 'multi', `${url}: ${r.status} ${r.body}`);
          pids.add(r.json.pid);
        }
        assert.equal(pids.size, 3, 'three distinct processes answered');
      });

      it('concurrent writers in four processes lose no write', async (t: TestContext) => {
        if (!fx.multiProcess) return t.skip('process-local store');
        const perProcess = 12;
        const jars = await Promise.all(
          Array.from({ length: urls.length * perProcess }, (_, i) => login(urls[i % urls.length]!, `cw${i}`)),
        );
        // Each session then gets 5 writes in a row, all sessions at once, each write on another process.
        await Promise.all(
          jars.map(async (jar, i) => {
            for (let k = 0; k < 5; k++) {
              const r = await post(`${urls[(i + k + 1) % urls.length]}/hit`, {}, jar);
              assert.equal(r.status, 200, r.body);
            }
          }),
        );
        await Promise.all(
          jars.map(async (jar, i) => {
            const r = await get(`${urls[(i + 2) % urls.length]}/me`, jar);
            assert.equal(r.json?.data?.user, `cw${i}`, `${r.status} ${r.body}`);
            assert.equal(r.json.data.hits, 5);
          }),
        );
      });
    });

    it('store restart: sessions survive when the store persists, and service resumes by itself', async (t: TestContext) => {
      if (!fx.restart) return t.skip('no restartable server for this store');
      const jar = await login(app.url, 'restart');
      await fx.restart.run();
      const fresh = await serve({ ...fx.options, store: fx.store, logger });
      try {
        for (const url of [app.url, fresh.url]) {
          const r = await until('a 200 after the restart', async () => {
            const res = await get(`${url}/me`, jar);
            return res.status === 200 ? res : undefined;
          }, 10_000);
          assert.equal(r.json.data.user, fx.restart.persistent ? 'restart' : undefined);
        }
        await login(app.url, 'after-restart');
      } finally {
        await fresh.close();
      }
    });

    it('store down: 503 JSON within 2 s (no hang), health says so, then recovery without a restart', async (t: TestContext) => {
      if (!fx.outage) return t.skip('this store cannot go down');
      const jar = await login(app.url, 'outage');
      await fx.outage.stop();
      try {
        const started = Date.now();
        const r =
          fx.outage.failing === 'read'
            ? await request(`${app.url}/me`, { headers: { cookie: cookieHeader(jar) }, timeoutMs: 5000 })
            : await request(`${app.url}/login`, { method: 'POST', body: { user: 'x' }, headers: { cookie: cookieHeader(jar) }, timeoutMs: 5000 });
        const took = Date.now() - started;
        t.diagnostic(`${name}: 503 after ${took} ms with the store down`);
        assert.equal(r.status, 503, r.body);
        assert.equal(r.json.error, 'session store unavailable');
        assert.equal(r.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
        assert.ok(took < 2000, `answered in ${took} ms`);
        assert.doesNotMatch(r.body, /at .*\.ts|Error:/);
        const h = await get(`${app.url}/healthz`);
        assert.equal(h.status, 503);
        assert.equal(h.json.ok, false);
      } finally {
        await fx.outage.start();
      }
      await until('service back', async () => ((await login(app.url, 'back')) ? true : undefined), 10_000);
      assert.equal((await get(`${app.url}/healthz`)).json.ok, true);
    });
  });
}

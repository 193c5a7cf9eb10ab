// An all-HMAC ring verifies without a promise (codec.decodeSync), so the middleware hands the common request to the
// app in the same turn. What that must keep: every verdict the promise path gives. The same tokens (honest, forged,
// expired, revoked, past the absolute max age, garbage) go to one app on the synchronous path and to one on the
// promise path (the same ring behind a wrapper that only offers verify()), with deny lists answering from memory
// (the per-worker view's shape) and by promise; both must answer alike.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { request } from '@cluster-session/testkit';
import { createKeyRing, createMemoryDenyList, jwtSession, type DenyList, type KeyRing } from '../src/index.ts';
import { buildApp, listen } from './fixtures/app.ts';
import { forge, now } from './fixtures/forge.ts';

const SECRET = 'sync-path-secret-0123456789abcdefghijklmno';
const ring = createKeyRing({ secret: SECRET });
/** The same keys, seen only through the public interface: no synchronous verifier behind it. */
const promiseOnly: KeyRing = { kids: ring.kids, signingKid: ring.signingKid, jwks: () => ring.jwks(), sign: (c, o) => ring.sign(c, o), verify: (t, o) => ring.verify(t, o) };
const kid = ring.kids[0]!;

/** A deny list answering from memory, as the store's per-worker view does while fresh. */
function memoryView(): DenyList {
  const until = new Map<string, number>();
  return {
    add: async (jti, expiresAtMs) => void until.set(jti, expiresAtMs),
    has: (jti) => (until.get(jti) ?? 0) > Date.now(),
  };
}

/** Two plain node:http servers with the middleware on the HMAC ring and on the promise-only one: their URLs, sync first. */
function syncAndPromise(handler: (kind: 'sync' | 'promise', mw: ReturnType<typeof jwtSession>) => http.RequestListener): Promise<string[]> {
  return Promise.all(
    (['sync', 'promise'] as const).map(
      (kind) =>
        new Promise<string>((resolve) => {
          const server = http.createServer(handler(kind, jwtSession({ ring: kind === 'sync' ? ring : promiseOnly, denyList: memoryView() })));
          after(() => server.close());
          server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
        }),
    ),
  );
}

async function start(r: KeyRing, denyList: DenyList) {
  const app = await listen(buildApp({ ring: r, ttl: 1800, maxAge: 7200, denyList }));
  after(() => app.close());
  return app.url;
}

describe('the synchronous verify path gives the promise path’s verdicts', () => {
  for (const [label, makeList] of [
    ['deny list in memory (synchronous answer)', memoryView],
    ['deny list by promise', createMemoryDenyList],
  ] as const) {
    test(label, async () => {
      const list = makeList();
      const fast = await start(ring, list);
      const slow = await start(promiseOnly, list);
      const login = async () => `session=${(await request(`${fast}/login`, { method: 'POST', body: { user: 'ann' } })).cookies.session}`;
      const honest = await login();
      const revoked = await login();
      assert.equal((await request(`${fast}/logout`, { method: 'POST', headers: { cookie: revoked } })).status, 200);
      const t = now();
      const claims = { user: 'ann', iat: t, exp: t + 600, jti: 'j-1' };
      const token = honest.slice('session='.length);
      const [h, p] = token.split('.');
      const cases: Record<string, string> = {
        honest,
        revoked,
        tampered: `session=${h}.${Buffer.from(JSON.stringify({ ...claims, user: 'root' })).toString('base64url')}.${token.split('.')[2]}`,
        'wrong secret': `session=${forge({ alg: 'HS256', kid, typ: 'JWT' }, claims, { hmac: 'x'.repeat(43) })}`,
        expired: `session=${forge({ alg: 'HS256', kid, typ: 'JWT' }, { ...claims, iat: t - 900, exp: t - 60 }, { hmac: SECRET })}`,
        'past the absolute max age': `session=${forge({ alg: 'HS256', kid, typ: 'JWT' }, { ...claims, iat0: t - 8000 }, { hmac: SECRET })}`,
        'alg none': `session=${forge({ alg: 'none', kid }, claims)}`,
        'unknown kid': `session=${forge({ alg: 'HS256', kid: 'other', typ: 'JWT' }, claims, { hmac: SECRET })}`,
        'no jti': `session=${forge({ alg: 'HS256', kid, typ: 'JWT' }, { user: 'ann', iat: t, exp: t + 600 }, { hmac: SECRET })}`,
        garbage: `session=${h}.${p}`,
        oversized: `session=${'a'.repeat(9000)}`,
        forged: `session=${forge({ alg: 'HS256', kid, typ: 'JWT' }, claims, { hmac: SECRET })}`,
      };
      const verdicts: Record<string, number> = {};
      for (const [name, cookie] of Object.entries(cases)) {
        const [a, b] = [await request(`${fast}/peek`, { headers: { cookie } }), await request(`${slow}/peek`, { headers: { cookie } })];
        assert.equal(a.status, b.status, `${name}: ${a.body} vs ${b.body}`);
        // The session itself (maxAge is the time left, in ms: it moves between the two requests).
        assert.deepEqual([a.json.user, a.json.id, typeof a.json.maxAge], [b.json.user, b.json.id, typeof b.json.maxAge], name);
        verdicts[name] = a.status;
      }
      // Not a vacuous agreement: what must pass passes and what must not is refused.
      assert.deepEqual(
        Object.entries(verdicts).filter(([, s]) => s === 200).map(([n]) => n),
        ['honest', 'forged'],
      );
    });
  }

  test('an HMAC ring with a deny list in memory reaches the app in the same turn; a promise-only ring does not', async () => {
    const seen: Record<string, boolean> = {};
    const servers = await syncAndPromise((kind, mw) => (req, res) => {
      let called = false;
      mw(req, res, () => {
        called = true;
        res.end('ok');
      });
      seen[kind] = called;
    });
    const cookie = `session=${await ring.sign({ user: 'ann' }, { ttl: 600 })}`;
    for (const url of servers) assert.equal((await request(url, { headers: { cookie } })).body, 'ok');
    assert.deepEqual(seen, { sync: true, promise: false });
  });

  test('an HS256 ring issues the token in the same turn: the same claims as the promise path, the answer ended before res.end() returns', async () => {
    const ended: Record<string, boolean> = {};
    const tokens: Record<string, string> = {};
    const servers = await syncAndPromise((kind, mw) => (req, res) =>
      mw(req, res, () => {
        const s = (req as unknown as { session: Record<string, unknown> }).session;
        s.hits = Number(s.hits ?? 0) + 1;
        res.end('ok');
        ended[kind] = res.writableEnded;
        // A late write: dropped on both paths (held on one, past the end on the other), never a write after end.
        res.write('late');
        res.end('again');
      }),
    );
    const cookie = `session=${await ring.sign({ user: 'ann' }, { ttl: 600 })}`;
    for (const [i, url] of servers.entries()) {
      const r = await request(url, { headers: { cookie } });
      assert.equal(r.body, 'ok');
      tokens[i === 0 ? 'sync' : 'promise'] = r.cookies.session!;
    }
    assert.deepEqual(ended, { sync: true, promise: false });
    // Both verify, with the same claims; the promise path's token came through the ring's public sign().
    for (const t of Object.values(tokens)) {
      const { payload } = await ring.verify(t);
      assert.equal(payload.user, 'ann');
      assert.equal(payload.hits, 1);
    }
    const claims = (t: string) => JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(claims(tokens.sync!)), Object.keys(claims(tokens.promise!)));
    assert.equal(tokens.sync!.split('.')[0], tokens.promise!.split('.')[0]);
  });
});

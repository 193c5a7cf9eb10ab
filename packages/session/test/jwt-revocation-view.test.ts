// JWT revocation without a store lookup per request: each process keeps the deny list in memory and polls the
// store's stamp. A logout on one process must be refused on every other process within 1 s, on a real SQLite file
// and a real Redis, with three OS processes; and a process whose view cannot be refreshed asks the store again.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { cookieHeader, request, startNode, startRedis, type Proc } from '@cluster-session/testkit';
import type { SessionConfigInput } from '@cluster-session/session';
import { denyListView } from '../src/stores/deny-view.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-deny-view-'));
const jwtSecret = randomBytes(32).toString('base64url');
const procs: Proc[] = [];
const stops: Array<() => Promise<void>> = [];
after(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  for (const stop of stops) await stop();
  rmSync(dir, { recursive: true, force: true });
});

async function processes(config: SessionConfigInput, n: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const p = startNode([path.join(import.meta.dirname, 'fixtures', 'server.ts')], { env: { ...process.env, FIXTURE_CONFIG: JSON.stringify(config) } });
      procs.push(p);
      return (await p.waitFor(/listening (\S+)/))[1]!;
    }),
  );
}

const me = (url: string, jar: Record<string, string>) => request(`${url}/me`, { headers: { cookie: cookieHeader(jar) } });

/** Logs in on the first process, logs out there, and measures when each other process first refuses the token. */
async function logoutReachesEveryProcess(urls: string[]) {
  const [first, ...others] = urls as [string, ...string[]];
  const jar = (await request(`${first}/login`, { method: 'POST', body: { user: 'alice' } })).cookies;
  for (const url of urls) assert.equal((await me(url, jar)).json.data.user, 'alice', `logged in on ${url}`);
  const out = await request(`${first}/logout`, { method: 'POST', body: {}, headers: { cookie: cookieHeader(jar) } });
  assert.equal(out.status, 200);
  const t0 = Date.now();
  assert.deepEqual((await me(first, jar)).json.data, {}, 'refused at once where the logout happened');
  const seen = await Promise.all(
    others.map(async (url) => {
      // Bounded wait (2 s) for correctness; the assertion below is on the bound the feature promises.
      while (Date.now() - t0 < 2000) {
        const res = await me(url, jar);
        assert.equal(res.status, 200);
        if (res.json.data.user === undefined) return Date.now() - t0;
        await sleep(20);
      }
      return Infinity;
    }),
  );
  for (const ms of seen) assert.ok(ms < 1000, `a process still accepted the revoked token ${ms} ms after the logout`);
}

describe('JWT revocation: a per-process view of the deny list', () => {
  it('SQLite: a logout is refused on every process within 1 s', async () => {
    const urls = await processes({ mode: 'jwt', store: { type: 'sqlite', path: path.join(dir, 'deny.sqlite') }, jwt: { secret: jwtSecret } }, 3);
    await logoutReachesEveryProcess(urls);
    await logoutReachesEveryProcess(urls.toReversed()); // and from another process
  });

  it('Redis: a logout is refused on every process within 1 s', async () => {
    const redis = await startRedis();
    stops.push(() => redis.stop());
    const urls = await processes({ mode: 'jwt', store: { type: 'redis', url: redis.url }, jwt: { secret: jwtSecret } }, 3);
    await logoutReachesEveryProcess(urls);
    await logoutReachesEveryProcess(urls.toReversed());
    // And no lookup per request: 30 requests with a token add no EXISTS on the server.
    const client = new Redis(redis.url);
    stops.push(async () => void client.disconnect());
    const exists = async () => Number(/cmdstat_exists:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0);
    const jar = (await request(`${urls[0]}/login`, { method: 'POST', body: { user: 'bob' } })).cookies;
    const before = await exists();
    for (let i = 0; i < 30; i++) assert.equal((await me(urls[i % 3]!, jar)).json.data.user, 'bob');
    assert.equal(await exists(), before);
  });

  it('a view that cannot be refreshed falls back to the exact lookup, so a stale view never answers', async () => {
    const store = new Map<string, number>();
    let lookups = 0;
    let feedUp = true;
    const exact = {
      add: async (jti: string, exp: number) => void store.set(jti, exp),
      has: async (jti: string) => (lookups++, (store.get(jti) ?? 0) > Date.now()),
      close: async () => {},
    };
    const feed = {
      stamp: async () => {
        if (!feedUp) throw new Error('store down');
        return String(store.size);
      },
      live: async () => [...store],
    };
    const view = denyListView(exact, feed, 20, 100);
    await sleep(50);
    assert.equal(await view.has('a'), false);
    assert.equal(lookups, 0, 'a fresh view answers from memory');
    store.set('b', Date.now() + 60_000); // added by "another process"
    await sleep(60);
    assert.equal(await view.has('b'), true, 'seen after a poll');
    assert.equal(lookups, 0);
    feedUp = false;
    store.set('c', Date.now() + 60_000);
    await sleep(150);
    assert.equal(await view.has('c'), true, 'stale: the exact lookup answers');
    assert.ok(lookups > 0);
    await view.add('d', Date.now() + 60_000);
    feedUp = true;
    await sleep(60);
    lookups = 0;
    assert.equal(await view.has('c'), true);
    assert.equal(await view.has('d'), true);
    assert.equal(lookups, 0, 'fresh again: from memory');
    const expiring = Date.now() + 30;
    store.set('e', expiring);
    await sleep(60);
    assert.equal(await view.has('e'), false, 'an entry past its expiry is not revoked any more (as in the store)');
    await view.close();
  });
});

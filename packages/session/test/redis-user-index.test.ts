// The logoutEverywhere index (`sess:~user:{id}`) is written when a session's user changes, not on every save: an
// ordinary save is one SET on the session's own slot. Counted with INFO commandstats on a real Redis; the expiry
// invariant (the index outlives every session it lists) checked under saves and touches; on a real Redis Cluster a
// save still succeeds while the master holding the user's index is down.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster, Redis } from 'ioredis';
import { failFastOptions } from '@cluster-session/session';
import { cookieHeader, redisCli, request, sleep, startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '@cluster-session/testkit';
import { serve, type Served } from './fixtures/app.ts';

const quiet = { warn: () => {}, error: () => {} };
const post = (url: string, body: object, cookie = '') => request(url, { method: 'POST', body, headers: { cookie }, timeoutMs: 5_000 });
const get = (url: string, cookie = '') => request(url, { headers: { cookie }, timeoutMs: 5_000 });

async function loginAs(url: string, user: string): Promise<{ sid: string; cookie: string }> {
  const r = await post(`${url}/login`, { user });
  assert.equal(r.status, 200, `login ${user}: ${r.status} ${r.body}`);
  return { sid: r.json.id, cookie: cookieHeader(r.cookies) };
}

/** Calls per command since the last CONFIG RESETSTAT, from INFO commandstats. */
async function commandCalls(port: number): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await redisCli(port, ['INFO', 'commandstats'])).matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

describe('user index on a standalone Redis', () => {
  let redis: RedisServer;
  let app: Served;
  before(async () => {
    redis = await startRedis();
    app = await serve({ store: { type: 'redis', url: redis.url }, logger: quiet });
  });
  after(async () => {
    await app?.close();
    await redis?.close();
  });

  it('a save that keeps the user is one SET: no SADD/PTTL/PEXPIRE on the index', async (t: TestContext) => {
    const { cookie } = await loginAs(app.url, 'counted');
    await redisCli(redis.port, ['CONFIG', 'RESETSTAT']);
    const saves = 5;
    for (let i = 1; i <= saves; i++) assert.equal((await post(`${app.url}/hit`, {}, cookie)).json.hits, i);
    const calls = await commandCalls(redis.port);
    const writes = Object.entries(calls).filter(([c]) => !['get', 'info', 'config|resetstat'].includes(c));
    t.diagnostic(`commands for ${saves} unchanged-user saves: ${writes.map(([c, n]) => `${c}=${n}`).join(' ')} (plus get=${calls.get})`);
    assert.deepEqual(Object.fromEntries(writes), { set: saves }, 'exactly one SET per save, nothing else');
    // The login wrote the index; logoutEverywhere still finds the session.
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'counted' })).json.count, 1);
  });

  it('login, and the user changing in place, write the index; stale members are harmless', async () => {
    await redisCli(redis.port, ['CONFIG', 'RESETSTAT']);
    const a = await loginAs(app.url, 'alice');
    assert.equal((await commandCalls(redis.port)).sadd, 1, 'a login indexes its session');
    // The same session now belongs to bob: bob's index gets it, alice's keeps a stale member.
    assert.equal((await post(`${app.url}/set`, { user: 'bob' }, a.cookie)).status, 200);
    assert.equal((await commandCalls(redis.port)).sadd, 2, 'the user change indexes the session again');
    assert.equal(await redisCli(redis.port, ['SISMEMBER', 'sess:~user:{alice}', a.sid]), '1');
    // logoutEverywhere(alice) must not end what is now bob's session.
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'alice' })).json.count, 0);
    assert.equal((await get(`${app.url}/me`, a.cookie)).json.data.user, 'bob');
    assert.equal(await redisCli(redis.port, ['SISMEMBER', 'sess:~user:{alice}', a.sid]), '0', 'the stale member was pruned');
    // A member whose session is gone (logged out) counts nothing.
    const b2 = await loginAs(app.url, 'bob');
    assert.equal((await post(`${app.url}/logout`, {}, b2.cookie)).status, 200);
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'bob' })).json.count, 1);
    assert.equal((await get(`${app.url}/me`, a.cookie)).json.data.user, undefined);
  });
});

describe('user index expiry (ttl 2 s, rolling): never before a session it lists', () => {
  let redis: RedisServer;
  let pttlClient: Redis;
  let app: Served;
  before(async () => {
    redis = await startRedis();
    app = await serve({ store: { type: 'redis', url: redis.url }, ttl: 2, rolling: true, logger: quiet });
    pttlClient = new Redis(redis.url);
  });
  after(async () => {
    pttlClient?.disconnect();
    await app?.close();
    await redis?.close();
  });

  it('sessions kept alive by touches (reads) and by saves (writes) past 2 x ttl stay in their index', async () => {
    const reader = await loginAs(app.url, 'reader');
    const writer = await loginAs(app.url, 'writer');
    // One connection, not a redis-cli process per check: on a loaded machine a spawn can take longer than the ttl.
    const pttl = (key: string) => pttlClient.pttl(key);
    // Without refreshes the index (ttl of slack past the session) would expire 4 s after login; run past that.
    const until = Date.now() + 5_000;
    let checks = 0;
    while (Date.now() < until) {
      assert.equal((await get(`${app.url}/me`, reader.cookie)).json.data.user, 'reader');
      assert.equal((await post(`${app.url}/hit`, {}, writer.cookie)).status, 200);
      for (const [user, s] of [['reader', reader], ['writer', writer]] as const) {
        const [session, index] = await Promise.all([pttl(`sess:${s.sid}`), pttl(`sess:~user:{${user}}`)]);
        assert.ok(session > 0 && index >= session, `${user}: index PTTL ${index} ms >= session PTTL ${session} ms`);
        checks++;
      }
      await sleep(200);
    }
    assert.ok(checks >= 6, `${checks} checks`);
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'reader' })).json.count, 1);
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'writer' })).json.count, 1);
    // An index outlives its longest session by at most ttl (2 s) of slack plus the refresh step.
    const idle = await loginAs(app.url, 'idle');
    await sleep(4_800);
    assert.equal(await redisCli(redis.port, ['EXISTS', `sess:${idle.sid}`]), '0');
    assert.equal(await redisCli(redis.port, ['EXISTS', 'sess:~user:{idle}']), '0', 'the index expired after its session');
  });
});

describe('user index on a real Redis Cluster (3 masters, full coverage off)', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let app: Served;
  before(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0, args: ['--cluster-require-full-coverage', 'no'] });
    client = new Cluster(cluster.startupNodes, { enableOfflineQueue: false, redisOptions: failFastOptions(1000), retryDelayOnFailover: 100 });
    client.on('error', () => {});
    app = await serve({ store: { type: 'redis', client }, storeTimeout: 1000, logger: quiet });
  });
  after(async () => {
    await app?.close();
    client?.disconnect();
    await cluster?.close();
  });

  it("a save succeeds while the master of the user's index slot is down, when the session's master is up", async (t) => {
    // A user whose index and session live on different masters.
    let found: { user: string; sid: string; cookie: string; indexMaster: number } | undefined;
    const masters = await cluster.masters();
    for (let i = 0; i < 30 && !found; i++) {
      const user = `slot${i}`;
      const s = await loginAs(app.url, user);
      const [own, idx] = await Promise.all([cluster.nodeForKey(`sess:${s.sid}`), cluster.nodeForKey(`sess:~user:{${user}}`)]);
      if (own !== idx) found = { user, ...s, indexMaster: masters.indexOf(idx) };
    }
    assert.ok(found, 'a user with index and session on different masters');
    assert.equal((await post(`${app.url}/hit`, {}, found.cookie)).json.hits, 1);
    await cluster.killMaster(found.indexMaster);
    const answers: number[] = [];
    for (let i = 1; i <= 5; i++) {
      const r = await post(`${app.url}/hit`, {}, found.cookie);
      answers.push(r.status);
      assert.equal(r.status, 200, `save ${i} with the index master down: ${r.status} ${r.body}`);
      assert.equal(r.json.hits, i + 1);
    }
    assert.equal((await get(`${app.url}/me`, found.cookie)).json.data.user, found.user);
    t.diagnostic(`index master down: saves answered ${answers.join(',')}`);
    // A login for this user needs the index: it gets a clear 503, not a hang.
    const login = await post(`${app.url}/login`, { user: found.user });
    assert.equal(login.status, 503);
    assert.equal(login.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
  });
});

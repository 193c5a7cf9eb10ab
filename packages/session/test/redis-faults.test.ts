// Redis beyond the conformance suite: a hung server, a server missing at startup, a real Redis Cluster, a node-redis
// client and an ACL that refuses scripts.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { createClient, type RedisClientType } from 'redis';
import { cookieHeader, freePort, request, sleep, startRedis, startRedisCluster, until, type RedisCluster, type RedisServer } from '@cluster-session/testkit';
import { createDenyList, failFastOptions } from '@cluster-session/session';
import { serve, type Served } from './fixtures/app.ts';
import { cb } from './fixtures/callback.ts';

const quiet = { warn: () => {}, error: () => {} };
const post = (url: string, body: object, jar: Record<string, string> = {}) =>
  request(url, { method: 'POST', body, headers: { cookie: cookieHeader(jar) }, timeoutMs: 5000 });
const get = (url: string, jar: Record<string, string> = {}) => request(url, { headers: { cookie: cookieHeader(jar) }, timeoutMs: 5000 });

/** A TCP proxy to a local port that can swallow what clients send (it never arrives) and cut every connection. */
async function blackHoleProxy(port: number) {
  const sockets = new Set<net.Socket>();
  let swallowing = false;
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1');
    sockets.add(client).add(upstream);
    client.on('data', (chunk) => void (swallowing || upstream.write(chunk)));
    upstream.pipe(client);
    for (const s of [client, upstream]) {
      s.on('error', () => {});
      s.on('close', () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(s);
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    swallow: (on: boolean) => void (swallowing = on),
    cut: () => sockets.forEach((s) => s.destroy()),
    close: () => {
      sockets.forEach((s) => s.destroy());
      server.close();
    },
  };
}

describe('redis faults', () => {
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

  it('a hung Redis (SIGSTOP) answers 503 within 2 s instead of hanging (tj/connect-redis#373), then recovers', async (t: TestContext) => {
    const jar = (await post(`${app.url}/login`, { user: 'hung' })).cookies;
    redis.proc.child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const r = await get(`${app.url}/me`, jar);
      const took = Date.now() - started;
      t.diagnostic(`hung redis: 503 after ${took} ms`);
      assert.equal(r.status, 503);
      assert.equal(r.json.code, 'CS_ERR_SESSION_STORE_UNAVAILABLE');
      assert.ok(took < 2000, `answered in ${took} ms`);
    } finally {
      redis.proc.child.kill('SIGCONT');
    }
    await until('the session is readable again', async () => (await get(`${app.url}/me`, jar)).json?.data?.user === 'hung', 10_000);
  });

  it('a save answered 503 is not replayed after the reconnect (a command is sent once)', async () => {
    // What a partition does to a connection: what the app sends never arrives, then the connection dies. ioredis
    // by default resends the commands still pending on it after reconnecting, long after the request got its 503.
    const proxy = await blackHoleProxy(redis.port);
    const holed = await serve({ store: { type: 'redis', url: `redis://127.0.0.1:${proxy.port}` }, storeTimeout: 300, logger: quiet });
    try {
      await until('the client is connected', async () => (await get(`${holed.url}/healthz`)).status === 200, 5_000);
      proxy.swallow(true);
      const r = await post(`${holed.url}/set`, { marker: 'answered-503' });
      assert.equal(r.status, 503, r.body);
      proxy.swallow(false);
      proxy.cut();
      await until('the client reconnected', async () => (await get(`${holed.url}/healthz`)).status === 200, 5_000);
      await sleep(300);
      const admin = new Redis(redis.url, { lazyConnect: false });
      try {
        const keys = await admin.keys('sess:*');
        const values = keys.length ? await admin.mget(keys) : [];
        assert.ok(!values.some((v) => v?.includes('answered-503')), 'the failed save never reached Redis');
      } finally {
        admin.disconnect();
      }
    } finally {
      await holed.close();
      proxy.close();
    }
  });

  it('Redis missing at startup: requests get 503, then service starts by itself when Redis appears', async () => {
    const port = await freePort();
    const late = await serve({ store: { type: 'redis', url: `redis://127.0.0.1:${port}` }, logger: quiet });
    let server: RedisServer | undefined;
    try {
      const r = await post(`${late.url}/login`, { user: 'early' });
      assert.equal(r.status, 503);
      assert.equal((await get(`${late.url}/healthz`)).json.ok, false);
      server = await startRedis({ port });
      await until('login works', async () => (await post(`${late.url}/login`, { user: 'late' })).status === 200, 10_000);
    } finally {
      await late.close();
      await server?.close();
    }
  });
});

describe('redis cluster (real, 3 masters)', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  let app: Served;
  before(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    client = new Cluster(cluster.startupNodes, { redisOptions: failFastOptions(1000) });
    client.on('error', () => {});
    app = await serve({ store: { type: 'redis', client }, logger: quiet });
  });
  after(async () => {
    await app?.close();
    client?.disconnect();
    await cluster?.close();
  });

  it('sessions spread over every master; length/ids/all/clear see them all; logoutEverywhere works across slots', async () => {
    const store = app.sessions.store!;
    await cb((d) => store.clear!(d));
    const jars: Record<string, string>[] = [];
    for (let i = 0; i < 18; i++) jars.push((await post(`${app.url}/login`, { user: i < 3 ? 'carol' : `user${i}` })).cookies);
    const perMaster = await Promise.all((await cluster.masters()).map((m) => client.nodes('master').find((n) => n.options.port === m.port)!.dbsize()));
    assert.ok(perMaster.filter((n) => n > 0).length >= 2, `keys on several masters: ${perMaster.join(',')}`);
    assert.equal(await cb<number>((d) => store.length!(d)), 18);
    const ids = await cb<string[]>((d) => (store as unknown as { ids(d: unknown): void }).ids(d));
    assert.equal(ids.length, 18);
    const all = await cb<Array<{ user: string }>>((d) => store.all!(d as never));
    assert.equal(all.filter((s) => s.user === 'carol').length, 3);
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'carol' })).json.count, 3);
    for (const jar of jars.slice(0, 3)) assert.equal((await get(`${app.url}/me`, jar)).json.data.user, undefined);
    assert.equal((await get(`${app.url}/me`, jars[5]!)).json.data.user, 'user5');
    assert.equal(await cb<number>((d) => store.length!(d)), 15);
    await cb((d) => store.clear!(d));
    assert.equal(await cb<number>((d) => store.length!(d)), 0);
  });
});

describe('node-redis 5 client (bring your own)', () => {
  let redis: RedisServer;
  let client: RedisClientType;
  let app: Served;
  before(async () => {
    redis = await startRedis();
    client = createClient({ url: redis.url, socket: { reconnectStrategy: () => 200 } });
    client.on('error', () => {});
    await client.connect();
    app = await serve({ store: { type: 'redis', client }, logger: quiet });
  });
  after(async () => {
    await app?.close();
    client?.destroy();
    await redis?.close();
  });

  it('sessions, length/ids, logoutEverywhere and the deny list work over node-redis', async () => {
    const a = (await post(`${app.url}/login`, { user: 'nr' })).cookies;
    const b = (await post(`${app.url}/login`, { user: 'nr' })).cookies;
    assert.equal((await get(`${app.url}/me`, a)).json.data.user, 'nr');
    const store = app.sessions.store!;
    assert.equal(await new Promise((res, rej) => store.length!((e, n) => (e ? rej(e) : res(n)))), 2);
    assert.equal((await post(`${app.url}/logout-everywhere`, { user: 'nr' })).json.count, 2);
    assert.equal((await get(`${app.url}/me`, b)).json.data.user, undefined);
    const deny = createDenyList(app.resolved);
    await deny.add('nr-jti', Date.now() + 60_000);
    assert.equal(await deny.has('nr-jti'), true);
    assert.equal(await deny.has('other'), false);
    await deny.close();
    assert.equal(client.isOpen, true, 'a client you pass in is never closed for you');
  });

  it('a touch over node-redis moves the stored cookie and the key expiry together (compare-and-set script)', async () => {
    const store = app.sessions.store!;
    const cookie = () => ({ originalMaxAge: 60_000, expires: new Date(Date.now() + 60_000), httpOnly: true, path: '/' });
    await cb((d) => store.set('nr-touch', { cookie: cookie(), user: 't' } as never, d));
    const loaded = (await cb<{ cookie: { expires: Date } }>((d) => store.get('nr-touch', d as never)))!;
    const later = new Date(Date.now() + 600_000);
    loaded.cookie.expires = later;
    await cb((d) => store.touch!('nr-touch', loaded as never, d as never));
    assert.ok((await client.pTTL('sess:nr-touch')) > 500_000, 'key expiry moved');
    const stored = JSON.parse((await client.get('sess:nr-touch'))!) as { cookie: { expires: string }; user: string };
    assert.equal(stored.cookie.expires, later.toISOString(), 'stored cookie moved with it');
    assert.equal(stored.user, 't');
  });

  it('Redis stopped: 503 within 2 s, then recovery', async () => {
    const jar = (await post(`${app.url}/login`, { user: 'nr2' })).cookies;
    await redis.stop();
    try {
      const started = Date.now();
      const r = await get(`${app.url}/me`, jar);
      assert.equal(r.status, 503);
      assert.ok(Date.now() - started < 2000);
    } finally {
      await redis.start();
    }
    await until('login works again', async () => (await post(`${app.url}/login`, { user: 'nr3' })).status === 200, 10_000);
  });
});

describe('Redis ACL without scripting', () => {
  it('touches fall back to EXPIRE, logged once: an active session still stays alive', async () => {
    const redis = await startRedis();
    const admin = new Redis(redis.url);
    const logs: string[] = [];
    let app: Served | undefined;
    try {
      await admin.call('ACL', 'SETUSER', 'app', 'on', '>app-password', '~*', '+@all', '-@scripting');
      const url = redis.url.replace('redis://', 'redis://app:app-password@');
      app = await serve({ store: { type: 'redis', url }, ttl: 3600, touchAfter: 1, logger: { warn: (m) => logs.push(m), error: (m) => logs.push(m) } });
      const jar = (await post(`${app.url}/login`, { user: 'acl' })).cookies;
      const sid = decodeURIComponent(jar.sid!).slice(2).split('.')[0]!;
      const atLogin = await admin.pttl(`sess:${sid}`);
      await sleep(1200);
      for (let i = 0; i < 2; i++) assert.equal((await get(`${app.url}/me`, jar)).json.data.user, 'acl');
      assert.ok((await admin.pttl(`sess:${sid}`)) > atLogin - 500, 'the touch moved the key expiry');
      assert.equal(logs.filter((l) => /refuses EVAL/.test(l)).length, 1, logs.join('\n'));
    } finally {
      await app?.close();
      admin.disconnect();
      await redis.close();
    }
  });
});

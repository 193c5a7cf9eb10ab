import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { clusterSession, ConfigError } from '@cluster-session/session';

const run = promisify(execFile);
const fixture = fileURLToPath(new URL('./fixtures/loaded-modules.ts', import.meta.url));
const SECRET = 'lazy-loading-test-secret-0123456789';

/** The heavy modules, each recognised by where its files resolve. */
const heavy = {
  mongodb: /\/node_modules\/mongodb\//,
  'connect-mongo': /\/node_modules\/connect-mongo\//,
  ioredis: /\/node_modules\/ioredis\//,
  'connect-redis': /\/node_modules\/connect-redis\//,
  jose: /\/node_modules\/jose\//,
  '@cluster-session/jwt': /\/packages\/jwt\/|\/node_modules\/@cluster-session\/jwt\//,
};
type Heavy = keyof typeof heavy;

/** Which heavy modules a fresh process loaded for `config` (or for importing a specifier). */
async function loadedBy(what: 'create' | 'import', arg: unknown): Promise<{ heavy: Set<Heavy>; urls: string[] }> {
  const { stdout } = await run(
    process.execPath,
    [...process.execArgv.filter((a) => a.startsWith('--conditions')), fixture, what, typeof arg === 'string' ? arg : JSON.stringify(arg)],
    { timeout: 30_000, env: { ...process.env, NODE_ENV: 'development', SESSION_STORE: '', SESSION_MODE: '', REDIS_URL: '', MONGO_URL: '' } },
  );
  const urls = JSON.parse(stdout.trim().split('\n').at(-1)!) as string[];
  const found = new Set((Object.keys(heavy) as Heavy[]).filter((name) => urls.some((u) => heavy[name].test(u))));
  return { heavy: found, urls };
}

const expectOnly = (got: Set<Heavy>, wanted: Heavy[]) =>
  assert.deepEqual([...got].sort(), [...wanted].sort(), `loaded ${[...got].join(', ') || 'none'}; expected ${wanted.join(', ') || 'none'}`);

describe('drivers load only for the store the config names', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-lazy-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('importing the package loads no driver', async () => {
    const { heavy: got, urls } = await loadedBy('import', '@cluster-session/session');
    expectOnly(got, []);
    // The hook did see the package itself: an empty list above is not a broken probe.
    assert.ok(urls.some((u) => /\/session\/(src|dist)\/index\.(ts|js)$/.test(u)), 'the probe recorded the package entry');
  });

  it("store 'sqlite' (the default) loads none of mongodb, connect-mongo, ioredis, connect-redis, jose", async () => {
    const { heavy: got, urls } = await loadedBy('create', { store: { type: 'sqlite', path: path.join(dir, 'sessions.sqlite') }, secret: SECRET });
    expectOnly(got, []);
    assert.ok(urls.some((u) => /\/node_modules\/express-session\//.test(u)), 'express-session was loaded for store mode');
  });

  it("store 'memory' loads no driver", async () => {
    expectOnly((await loadedBy('create', { store: 'memory', secret: SECRET })).heavy, []);
  });

  it("store 'redis' loads ioredis and connect-redis, not mongodb nor jose", async () => {
    // Port 1: nothing listens, and nothing needs to: the client is created and closed.
    expectOnly((await loadedBy('create', { store: { type: 'redis', url: 'redis://127.0.0.1:1' }, secret: SECRET })).heavy, ['ioredis', 'connect-redis']);
  });

  it("store 'mongo' loads mongodb and connect-mongo, not ioredis nor jose", async () => {
    expectOnly((await loadedBy('create', { store: { type: 'mongo', url: 'mongodb://127.0.0.1:1/test' }, secret: SECRET })).heavy, ['mongodb', 'connect-mongo']);
  });

  it("mode 'jwt' loads jose, and no driver for a memory deny list", async () => {
    expectOnly((await loadedBy('create', { mode: 'jwt', store: 'memory', secret: SECRET })).heavy, ['jose', '@cluster-session/jwt']);
  });

  it("mode 'jwt' on redis loads jose and ioredis (the deny list), not connect-redis nor mongodb", async () => {
    const config = { mode: 'jwt', store: { type: 'redis', url: 'redis://127.0.0.1:1' }, secret: SECRET };
    expectOnly((await loadedBy('create', config)).heavy, ['jose', '@cluster-session/jwt', 'ioredis']);
  });

  it("mode 'jwt' on sqlite loads jose and no driver", async () => {
    const config = { mode: 'jwt', store: { type: 'sqlite', path: path.join(dir, 'deny.sqlite') }, secret: SECRET };
    expectOnly((await loadedBy('create', config)).heavy, ['jose', '@cluster-session/jwt']);
  });

  it('the /stores subpath exports the store classes (and loads their drivers, on purpose)', async () => {
    const { heavy: got } = await loadedBy('import', '@cluster-session/session/stores');
    expectOnly(got, ['mongodb', 'connect-mongo', 'connect-redis']);
    const stores = await import('@cluster-session/session/stores');
    const { RedisStore } = await import('connect-redis');
    const { MongoStore } = await import('connect-mongo');
    assert.equal(Object.getPrototypeOf(stores.ClusterRedisStore), RedisStore);
    assert.equal(Object.getPrototypeOf(stores.ClusterMongoStore), MongoStore);
    assert.equal(typeof stores.SqliteStore, 'function');
    assert.equal(stores.failFastOptions(500).commandTimeout, 500);
  });
});

describe('a store loaded on demand is the same module the /stores subpath exports', () => {
  const quiet = { warn() {}, error() {} };
  for (const [type, url] of [['redis', 'redis://127.0.0.1:1'], ['mongo', 'mongodb://127.0.0.1:1/test']] as const) {
    it(`clusterSession({ store: '${type}' }).store is an instance of the exported class`, async () => {
      const stores = await import('@cluster-session/session/stores');
      const sessions = clusterSession({ store: { type, url }, secret: SECRET, logger: quiet, storeTimeout: 200 });
      try {
        assert.ok(sessions.store instanceof (type === 'redis' ? stores.ClusterRedisStore : stores.ClusterMongoStore));
      } finally {
        await sessions.close();
      }
    });
  }
});

describe('startup errors stay synchronous with drivers loaded on demand', () => {
  const quiet = { warn() {}, error() {} };
  it('a mongo client that is not a MongoClient throws ConfigError from clusterSession() itself', () => {
    assert.throws(() => clusterSession({ store: { type: 'mongo', client: {} }, secret: SECRET, logger: quiet }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.code, 'CS_ERR_SESSION_CONFIG');
      assert.match(err.message, /store\.client for mongo is not a MongoClient.*Fix:/);
      return true;
    });
  });

  it('a redis client of neither family throws ConfigError from clusterSession() itself', () => {
    assert.throws(() => clusterSession({ store: { type: 'redis', client: { get() {} } }, secret: SECRET, logger: quiet }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /store\.client for redis is neither an ioredis client.*Fix:/);
      return true;
    });
  });

  it("a wrong JWT option throws ConfigError from clusterSession() itself (jose loaded on demand)", () => {
    assert.throws(() => clusterSession({ mode: 'jwt', store: 'memory', secret: SECRET, jwt: { revocation: 'maybe' }, logger: quiet }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /jwt\.revocation .*"maybe"/);
      return true;
    });
  });
});

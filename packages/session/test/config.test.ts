import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { ConfigError, clusterSession, resolveConfig, type Logger } from '@cluster-session/session';

const quiet: Logger = { warn: () => {}, error: () => {} };
const SECRET = 'config-test-secret-config-test';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.code, 'CS_ERR_SESSION_CONFIG');
    return err;
  }
  assert.fail('no ConfigError thrown');
}

describe('resolveConfig', () => {
  it('defaults: store mode on SQLite under .data/, cookie sid/HttpOnly/Lax/auto, one day', () => {
    const c = resolveConfig({ secret: SECRET }, {}, '/srv/app');
    assert.equal(c.mode, 'store');
    assert.deepEqual(c.store, { type: 'sqlite', path: path.join('/srv/app', '.data', 'sessions.sqlite') });
    assert.deepEqual(c.cookie, { name: 'sid', secure: 'auto', sameSite: 'lax', httpOnly: true, path: '/', partitioned: false });
    assert.equal(c.ttlSeconds, 86_400);
    assert.equal(c.storeTimeout, 1000);
    assert.equal(c.userKey, 'user');
    assert.deepEqual(c.secrets, [SECRET]);
  });

  it('reads the environment; the object wins over it', () => {
    const env = {
      SESSION_STORE: 'redis',
      REDIS_URL: 'redis://10.0.0.5:6380/2',
      SESSION_SECRET: `${SECRET}-new, ${SECRET}-old`,
      SESSION_TTL: '600',
      CLUSTER_SESSION_WORKERS: '4',
      CLUSTER_SESSION_STICKY: '1',
      JWT_SECRET: 'jwt-secret-jwt-secret-jwt-secret-123',
    };
    const c = resolveConfig({}, env);
    assert.equal(c.store.type, 'redis');
    assert.equal(c.store.type === 'redis' && c.store.url, 'redis://10.0.0.5:6380/2');
    assert.deepEqual(c.secrets, [`${SECRET}-new`, `${SECRET}-old`]);
    assert.equal(c.ttlSeconds, 600);
    assert.equal(c.workers, 4);
    assert.equal(c.sticky, true);
    assert.equal(c.jwt.secret, env.JWT_SECRET, 'JWT_SECRET passed through to the jwt options');
    const o = resolveConfig({ store: 'memory', ttl: 60, secret: SECRET }, env);
    assert.equal(o.store.type, 'memory');
    assert.equal(o.ttlSeconds, 60);
    assert.deepEqual(o.secrets, [SECRET]);
  });

  it('a wrong value names the key, the env variable, the value and what is allowed', () => {
    const e = configError(() => resolveConfig({}, { SESSION_STORE: 'postgres', SESSION_SECRET: SECRET }));
    assert.match(e.message, /SESSION_STORE/);
    assert.match(e.message, /"postgres"/);
    assert.match(e.message, /'redis', 'mongo', 'sqlite', 'memory'/);
    const t = configError(() => resolveConfig({}, { SESSION_TTL: '1d', SESSION_SECRET: SECRET }));
    assert.match(t.message, /option ttlSeconds \(env SESSION_TTL\) is "1d": expected a whole number of seconds.*Example: SESSION_TTL=86400\. Fix: set SESSION_TTL/);
    const m = configError(() => resolveConfig({ mode: 'cookie' as never, secret: SECRET }, {}));
    assert.match(m.message, /mode.*"cookie".*'store' or 'jwt'/);
    const u = configError(() => resolveConfig({ stroe: 'redis' } as never, {}));
    assert.match(u.message, /unknown option stroe: did you mean store\?/);
    const ck = configError(() => resolveConfig({ secret: SECRET, cookie: { sameSite: 'loose' as never } }, {}));
    assert.match(ck.message, /cookie\.sameSite.*"loose"/);
  });

  it('old option names are aliases: ttl and touchAfter mean ttlSeconds and touchAfterSeconds', () => {
    const c = resolveConfig({ secret: SECRET, ttl: 120, touchAfter: 7 }, {});
    assert.equal(c.ttlSeconds, 120);
    assert.equal(c.touchAfterSeconds, 7);
    assert.match(configError(() => resolveConfig({ secret: SECRET, ttl: 1, ttlSeconds: 2 }, {})).message, /ttl and ttlSeconds are both given/);
  });

  it('the resolved configuration is frozen; sessions.config shows no secret, key or store password', async () => {
    const c = resolveConfig({ secret: SECRET, store: 'memory' }, {});
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.cookie) && Object.isFrozen(c.secrets));
    assert.throws(() => {
      (c.cookie as { name: string }).name = 'other';
    }, TypeError);
    const sessions = clusterSession({ secret: SECRET, store: { type: 'redis', url: 'redis://:hunter2-password@127.0.0.1:1/0' }, jwt: { secret: 'k'.repeat(40) }, logger: quiet });
    try {
      const shown = JSON.stringify(sessions.config);
      assert.doesNotMatch(shown, /hunter2|config-test-secret|kkkkkkkk/);
      assert.equal(sessions.config.store.url, 'redis://:***@127.0.0.1:1/0');
      assert.equal((sessions.config as unknown as Record<string, unknown>).secrets, undefined);
      assert.ok(Object.isFrozen(sessions.config));
    } finally {
      await sessions.close();
    }
  });

  it("cookie rules are the JWT mode's: sameSite 'none' needs secure: true, 'auto' is not enough", () => {
    for (const secure of [false, 'auto'] as const) {
      const e = configError(() => resolveConfig({ secret: SECRET, cookie: { sameSite: 'none', secure } }, {}));
      assert.match(e.message, /option cookie\.sameSite is "none": expected 'none' only with secure: true/);
    }
    assert.equal(resolveConfig({ secret: SECRET, cookie: { sameSite: 'none', secure: true } }, {}).cookie.sameSite, 'none');
  });

  it('a wrong env value reads as one line a person can act on: the variable, the allowed values, an example, no schema dump', () => {
    const e = configError(() => resolveConfig({}, { SESSION_STORE: 'bogus', SESSION_SECRET: SECRET }));
    assert.match(e.message, /^clusterSession: option store \(env SESSION_STORE\) is "bogus": expected 'redis', 'mongo', 'sqlite', 'memory'.*Example: SESSION_STORE=sqlite\. Fix: /);
    assert.doesNotMatch(e.message, /\n/);
    assert.equal(e.cause, undefined, 'no schema error attached: printing the error prints no internals');
    const two = configError(() => resolveConfig({ ttl: 0, storeTimeout: 1, secret: SECRET }, {}));
    assert.match(two.message, /^clusterSession: invalid options:\n {2}- option ttl .*\n {2}- option storeTimeout /);
  });

  it('never prints a secret, even a rejected one', () => {
    const e = configError(() => resolveConfig({}, { SESSION_SECRET: 'tooshort-hunter2' .slice(0, 12) }));
    assert.match(e.message, /SESSION_SECRET/);
    assert.match(e.message, /\[redacted\]/);
    assert.doesNotMatch(e.message, /tooshort-hun/);
  });

  it('production without a secret is a startup error; outside production a random one with one warning', () => {
    const e = configError(() => resolveConfig({}, { NODE_ENV: 'production' }));
    assert.match(e.message, /SESSION_SECRET/);
    assert.match(e.message, /production/);
    assert.equal(resolveConfig({}, { NODE_ENV: 'production', SESSION_SECRET: SECRET }).secretGenerated, false);
    const warnings: string[] = [];
    const logger: Logger = { warn: (m) => warnings.push(m), error: () => {} };
    const a = resolveConfig({ logger }, {});
    const b = resolveConfig({ logger }, {});
    assert.equal(a.secretGenerated, true);
    assert.notEqual(a.secrets[0], b.secrets[0]);
    assert.ok(warnings.length <= 1, 'warned at most once per process');
  });

  it('memory store with several workers and no sticky routing is refused, naming the three ways out', () => {
    const e = configError(() => resolveConfig({ store: 'memory', secret: SECRET }, { CLUSTER_SESSION_WORKERS: '3' }));
    assert.match(e.message, /3 workers/);
    assert.match(e.message, /shared store/);
    assert.match(e.message, /jwt/);
    assert.match(e.message, /sticky/);
    assert.equal(resolveConfig({ store: 'memory', secret: SECRET }, { CLUSTER_SESSION_WORKERS: '3', CLUSTER_SESSION_STICKY: '1' }).store.type, 'memory');
    assert.equal(resolveConfig({ store: 'memory', secret: SECRET }, { CLUSTER_SESSION_WORKERS: '1' }).store.type, 'memory');
  });

  it('store addresses are checked where they enter', () => {
    assert.match(configError(() => resolveConfig({ store: 'mongo', secret: SECRET }, {})).message, /MONGO_URL/);
    assert.match(configError(() => resolveConfig({ store: 'redis', secret: SECRET }, { REDIS_URL: 'http://x' })).message, /REDIS_URL/);
    assert.match(configError(() => resolveConfig({ store: { type: 'redis', url: 'localhost:6379' }, secret: SECRET }, {})).message, /redis:\/\//);
    assert.match(configError(() => resolveConfig({ secret: SECRET, cookie: { sameSite: 'none', secure: false } }, {})).message, /SameSite=None/);
    assert.match(configError(() => resolveConfig({ secret: SECRET, collection: 'drop table' }, {})).message, /collection/);
  });

  it('clusterSession() throws the ConfigError at startup; a foreign redis client is refused', () => {
    configError(() => clusterSession({ store: 'memory', workers: 2, secret: SECRET, logger: quiet }));
    const e = configError(() => clusterSession({ store: { type: 'redis', client: { get() {} } }, secret: SECRET, logger: quiet }));
    assert.match(e.message, /ioredis/);
  });
});

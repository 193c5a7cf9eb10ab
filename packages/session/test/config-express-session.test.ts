// clusterSession() takes express-session's options object as it is (issue #15): each option resolves to the
// same meaning, and what cannot hold is refused at startup with the option named and the fix.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MemoryStore } from 'express-session';
import { ConfigError, resolveConfig, type SessionConfigInput } from '@cluster-session/session';

const env = {};
const resolve = (input: SessionConfigInput) => resolveConfig(input, env);

describe('resolveConfig: express-session options', () => {
  test('the whole express-session options object, verbatim', () => {
    const genid = () => 'fixed-id-0123456789';
    const store = new MemoryStore();
    const c = resolve({
      secret: [Buffer.from('0123456789abcdef0123'), 'second-secret-0123456789'],
      name: 'connect.sid',
      store,
      resave: true,
      saveUninitialized: true,
      rolling: true,
      unset: 'destroy',
      genid,
      proxy: true,
      cookie: { maxAge: 3_600_000, httpOnly: false, secure: true, sameSite: true, partitioned: true, priority: 'High', path: '/app', domain: 'example.com' },
    } as SessionConfigInput);
    assert.equal(c.cookie.name, 'connect.sid');
    assert.deepEqual([c.resave, c.saveUninitialized, c.rolling, c.unset, c.trustProxy], [true, true, true, 'destroy', true]);
    assert.equal(c.genid, genid);
    assert.equal(c.store.type, 'custom');
    assert.equal((c.store as { instance: unknown }).instance, store);
    assert.deepEqual([c.ttlSeconds, c.cookieMaxAge], [3600, 3_600_000]);
    assert.deepEqual(
      [c.cookie.httpOnly, c.cookie.secure, c.cookie.sameSite, c.cookie.partitioned, c.cookie.priority, c.cookie.path, c.cookie.domain],
      [false, true, 'strict', true, 'high', '/app', 'example.com'],
    );
    assert.ok(Buffer.isBuffer(c.secrets[0]));
  });

  test('cookie.maxAge null is a browser-session cookie; the store keeps ttlSeconds', () => {
    const c = resolve({ secret: 'x'.repeat(20), cookie: { maxAge: null } } as SessionConfigInput);
    assert.deepEqual([c.cookieMaxAge, c.ttlSeconds], [null, 86_400]);
  });

  test("sameSite 'auto' and secure 'auto' are express-session's", () => {
    const c = resolve({ secret: 'x'.repeat(20), cookie: { sameSite: 'auto', secure: 'auto' } } as SessionConfigInput);
    assert.deepEqual([c.cookie.sameSite, c.cookie.secure], ['auto', 'auto']);
  });

  const refused: Array<[string, SessionConfigInput, RegExp]> = [
    ['a short secret', { secret: 'keyboard cat' }, /option secret .*\[redacted\].*at least 16.*allowWeakSecret: true/],
    ['cookie.maxAge and ttlSeconds together', { secret: 'x'.repeat(20), ttlSeconds: 60, cookie: { maxAge: 1000 } }, /cookie\.maxAge.*not both/],
    ['partitioned without secure: true', { secret: 'x'.repeat(20), cookie: { partitioned: true } }, /cookie\.partitioned.*secure: true/],
    ['a __Host- name given as name without secure', { secret: 'x'.repeat(20), name: '__Host-sid' }, /option name .*__Host-/],
    ['a __Secure- cookie.name without secure', { secret: 'x'.repeat(20), cookie: { name: '__Secure-sid' } }, /__Secure-/],
    ['priority not low/medium/high', { secret: 'x'.repeat(20), cookie: { priority: 'urgent' } } as never, /cookie\.priority.*'low', 'medium' or 'high'/],
    ['unset other than keep/destroy', { secret: 'x'.repeat(20), unset: 'drop' } as never, /option unset .*'keep' or 'destroy'/],
    ['genid in JWT mode', { mode: 'jwt', genid: () => 'x' }, /option genid .*not in mode 'jwt'/],
    ['cookie.expires in JWT mode', { mode: 'jwt', cookie: { expires: new Date(Date.now() + 1e6) } }, /cookie\.expires .*not in mode 'jwt'/],
    ['a store object that is no Store', { secret: 'x'.repeat(20), store: { get() {} } } as never, /option store .*express-session Store instance/],
  ];
  for (const [what, input, message] of refused) {
    test(`refused: ${what}`, () => {
      assert.throws(() => resolve(input), (err: Error) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('keyboard cat'));
    });
  }

  test('a MemoryStore instance under several workers without sticky routing is refused, as store memory is', () => {
    assert.throws(
      () => resolveConfig({ secret: 'x'.repeat(20), store: new MemoryStore() }, { CLUSTER_SESSION_WORKERS: '4' }),
      (err: Error) => err instanceof ConfigError && /keeps sessions inside one process/.test(err.message),
    );
    assert.equal(resolveConfig({ secret: 'x'.repeat(20), store: new MemoryStore() }, { CLUSTER_SESSION_WORKERS: '4', CLUSTER_SESSION_STICKY: '1' }).store.type, 'custom');
  });

  test('allowWeakSecret keeps a short express-session secret', () => {
    assert.deepEqual(resolve({ secret: 'keyboard cat', allowWeakSecret: true }).secrets, ['keyboard cat']);
  });
});

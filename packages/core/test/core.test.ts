import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import {
  ClusterSessionError,
  clusterEnv,
  cookieSchema,
  deadline,
  isAnswerable,
  isClusterSessionError,
  parseOptions,
  rawAnswer,
  readWorkerEnv,
  sendAnswer,
  slotEnv,
  suggest,
  words,
} from '@cluster-session/core';
import * as v from 'valibot';

class DemoError<C extends string = string> extends ClusterSessionError<C> {
  static override readonly family = 'CS_ERR_DEMO_';
}
class DemoConfigError extends DemoError {
  static override readonly code = 'CS_ERR_DEMO_CONFIG';
}
class DemoDownError extends DemoError {
  static override readonly code = 'CS_ERR_DEMO_DOWN';
  readonly status = 503;
  readonly publicMessage = 'demo unavailable';
}

describe('errors', () => {
  test('a leaf class takes its code and name; instanceof follows the code and the family prefix', () => {
    const err = new DemoConfigError('bad');
    assert.equal(err.code, 'CS_ERR_DEMO_CONFIG');
    assert.equal(err.name, 'DemoConfigError');
    assert.ok(err instanceof DemoConfigError && err instanceof DemoError && err instanceof ClusterSessionError && err instanceof Error);
    assert.ok(!(err instanceof DemoDownError));
    assert.ok(isClusterSessionError(err));
    assert.ok(!isClusterSessionError(new Error('x')) && !isClusterSessionError({ code: 'CS_ERR_DEMO_CONFIG' }));
  });

  test('a family class cannot be constructed: only leaves carry a code', () => {
    assert.throws(() => new DemoError('x'), TypeError);
  });

  test('instanceof holds for an error made by another copy of the package (same brand, same code)', async () => {
    // A second copy of the module, as an app with two installed versions would have.
    const copy = (await import(`../src/errors.ts?copy=${Date.now()}`)) as typeof import('../src/errors.ts');
    assert.notEqual(copy.ClusterSessionError, ClusterSessionError);
    class OtherCopyDown extends copy.ClusterSessionError {
      static override readonly code = 'CS_ERR_DEMO_DOWN';
    }
    const foreign = new OtherCopyDown('down elsewhere');
    assert.ok(foreign instanceof DemoDownError, 'same code from another copy');
    assert.ok(foreign instanceof DemoError && foreign instanceof ClusterSessionError);
    assert.ok(!(foreign instanceof DemoConfigError));
    assert.ok(isClusterSessionError(foreign));
  });

  test('isAnswerable needs a status and a public message', () => {
    assert.ok(isAnswerable(new DemoDownError('internal detail')));
    assert.ok(!isAnswerable(new DemoConfigError('x')));
  });
});

describe('answers', () => {
  test('sendAnswer writes { error, code }, no-store, Retry-After on 503, limit on 413; a sent response is closed', async () => {
    const server = http.createServer((req, res) => {
      res.setHeader('set-cookie', 'sid=1');
      if (req.url === '/down') return sendAnswer(res, { status: 503, code: 'CS_ERR_DEMO_DOWN', error: 'demo unavailable' }, { replace: true });
      if (req.url === '/big') return sendAnswer(res, { status: 413, code: 'CS_ERR_DEMO_BIG', error: 'too large', limit: 10 });
      res.writeHead(200);
      res.write('partial');
      sendAnswer(res, { status: 503, code: 'CS_ERR_DEMO_DOWN', error: 'x' });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const down = await fetch(`${base}/down`);
      assert.equal(down.status, 503);
      assert.equal(down.headers.get('retry-after'), '1');
      assert.equal(down.headers.get('cache-control'), 'no-store');
      assert.equal(down.headers.get('set-cookie'), null, 'replace drops the half-built answer');
      assert.deepEqual(await down.json(), { error: 'demo unavailable', code: 'CS_ERR_DEMO_DOWN' });
      const big = await fetch(`${base}/big`);
      assert.equal(big.status, 413);
      assert.equal(big.headers.get('retry-after'), null);
      assert.deepEqual(await big.json(), { error: 'too large', code: 'CS_ERR_DEMO_BIG', limit: 10 });
      await assert.rejects(fetch(`${base}/late`).then((r) => r.text()), 'headers already sent: the connection is cut, not a lie');
    } finally {
      server.close();
    }
  });

  test('rawAnswer is a complete HTTP/1.1 answer; HEAD gets the length without the body', () => {
    const text = rawAnswer({ status: 502, code: 'CS_ERR_DEMO_GW', error: 'bad gateway' }, { close: true });
    const [head, body] = text.split('\r\n\r\n') as [string, string];
    assert.match(head, /^HTTP\/1\.1 502 Bad Gateway\r\n/);
    assert.match(head, /connection: close/);
    assert.match(head, new RegExp(`content-length: ${Buffer.byteLength(body)}`));
    assert.deepEqual(JSON.parse(body), { error: 'bad gateway', code: 'CS_ERR_DEMO_GW' });
    const headOnly = rawAnswer({ status: 503, code: 'C', error: 'e', retryAfter: 7 }, { head: true });
    assert.ok(headOnly.endsWith(`retry-after: 7\r\ncontent-length: ${'{"error":"e","code":"C"}'.length}\r\n\r\n`), headOnly);
  });
});

describe('deadline', () => {
  test('settles as the work does, or rejects with the timeout error; a late rejection is not unhandled', async () => {
    assert.equal(await deadline(Promise.resolve(1), 1000, () => new Error('late')), 1);
    await assert.rejects(deadline(Promise.reject(new Error('own')), 1000, () => new Error('late')), /own/);
    let fail!: (e: Error) => void;
    const slow = new Promise<never>((_, reject) => (fail = reject));
    await assert.rejects(deadline(slow, 20, () => new DemoConfigError('no answer within 20 ms')), DemoConfigError);
    fail(new Error('after the deadline'));
    await new Promise((r) => setImmediate(r));
  });
});

describe('suggest', () => {
  test('finds the near name, ignores the far ones', () => {
    assert.equal(suggest('stratgey', ['listen', 'strategy', 'retries']), 'strategy');
    assert.equal(suggest('--instnaces', ['--instances', '--port']), '--instances');
    assert.equal(suggest('Strategy', ['strategy']), 'strategy');
    assert.equal(suggest('zzz', ['listen', 'strategy']), undefined);
  });
});

class ToyConfigError extends DemoError {
  static override readonly code = 'CS_ERR_DEMO_TOY';
}
const ctx = { where: 'createToy', error: ToyConfigError };
const toy = v.strictObject({
  strategy: v.optional(v.pipe(v.picklist(['a', 'b']), words({ allowed: "'a' or 'b'", example: "'b'" })), 'a'),
  ttlSeconds: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), words({ allowed: 'whole seconds >= 1', example: '60', env: 'TOY_TTL', envType: 'int' })), 60),
  secret: v.optional(v.pipe(v.array(v.pipe(v.string(), v.minLength(8))), words({ allowed: 'strings of 8+ characters', env: 'TOY_SECRET', envType: 'list', secret: true }))),
  nested: v.optional(v.strictObject({ size: v.optional(v.pipe(v.number(), v.maxValue(5), words({ allowed: 'at most 5', example: '2' })), 1) }), {}),
  cookie: cookieSchema('toy'),
  logger: v.optional(v.pipe(v.custom<{ lines: string[] }>((x) => typeof x === 'object'), words({ allowed: 'a logger' }))),
});
const toyError = (input: unknown, env: Record<string, string> = {}, aliases?: Record<string, string>) => {
  try {
    parseOptions(toy, input, ctx, { env, ...(aliases ? { aliases } : {}) });
  } catch (err) {
    assert.ok(err instanceof ToyConfigError, String(err));
    assert.equal(err.cause, undefined, 'no ZodError attached: nothing prints a dump');
    return err.message;
  }
  return assert.fail('no error thrown');
};

describe('parseOptions', () => {
  test('defaults, env fill-in, aliases, and a deeply frozen result', () => {
    const r = parseOptions(toy, { ttl: 5 }, ctx, { env: { TOY_SECRET: ' abcdefgh , ijklmnop ' }, aliases: { ttl: 'ttlSeconds' } });
    assert.equal(r.strategy, 'a');
    assert.equal(r.ttlSeconds, 5);
    assert.deepEqual(r.secret, ['abcdefgh', 'ijklmnop']);
    assert.equal(r.cookie.sameSite, 'lax');
    assert.ok(Object.isFrozen(r) && Object.isFrozen(r.nested) && Object.isFrozen(r.secret));
    const logger = { lines: [] as string[] };
    const withLogger = parseOptions(toy, { logger }, ctx);
    assert.equal(withLogger.logger, logger, 'an object the app hands in is passed through as is');
    assert.ok(!Object.isFrozen(logger), 'and is not frozen: it belongs to the app');
    assert.equal(parseOptions(toy, {}, ctx, { env: { TOY_TTL: '90' } }).ttlSeconds, 90);
  });

  test('an unknown key is refused with a did-you-mean, at any depth', () => {
    assert.match(toyError({ stratgey: 'b' }), /^createToy: unknown option stratgey: did you mean strategy\? Fix: rename it to strategy\.$/);
    assert.match(toyError({ nested: { szie: 1 } }), /unknown option nested\.szie: did you mean nested\.size\?/);
    assert.match(toyError({ wholly: 1 }), /unknown option wholly\. Fix: remove it; the options here are strategy, ttlSeconds, secret, nested, cookie, logger/);
  });

  test('a wrong value names the option, its env variable, the value, what is allowed, an example and the fix', () => {
    assert.equal(
      toyError({ strategy: 'c' }),
      "createToy: option strategy is \"c\": expected 'a' or 'b'. Example: strategy: 'b'. Fix: change strategy to an allowed value.",
    );
    assert.equal(
      toyError({}, { TOY_TTL: '1d' }),
      'createToy: option ttlSeconds (env TOY_TTL) is "1d": expected whole seconds >= 1. Example: TOY_TTL=60. Fix: set TOY_TTL to an allowed value, or unset it.',
    );
    assert.match(toyError({ nested: { size: 9 } }), /option nested\.size is 9: expected at most 5\. Example: nested\.size: 2\./);
  });

  test('a secret is never shown, from the object or the environment', () => {
    const fromEnv = toyError({}, { TOY_SECRET: 'hunter2' });
    assert.match(fromEnv, /option secret\[0\] \(env TOY_SECRET\) is \[redacted\]: expected strings of 8\+ characters/);
    assert.doesNotMatch(fromEnv, /hunter2/);
    assert.doesNotMatch(toyError({ secret: ['short'] }), /short/);
  });

  test('several wrong options are listed one per line', () => {
    const message = toyError({ strategy: 'c', ttlSeconds: 0 });
    assert.match(message, /^createToy: invalid options:\n {2}- option strategy .*\n {2}- option ttlSeconds \(or env TOY_TTL\) is 0/);
  });

  test('an alias and its new name together are refused', () => {
    assert.match(toyError({ ttl: 1, ttlSeconds: 2 }, {}, { ttl: 'ttlSeconds' }), /ttl and ttlSeconds are both given.*keep only ttlSeconds/);
  });

  test('a record may be any object, process.env included (it is not a plain object)', () => {
    const env = v.strictObject({ env: v.optional(v.record(v.string(), v.optional(v.string())), {}) });
    assert.equal(parseOptions(env, { env: process.env }, ctx).env.PATH, process.env.PATH);
  });

  test('options that are not an object are refused plainly', () => {
    assert.match(toyError('a'), /^createToy: options must be an object, got "a"/);
    assert.match(toyError([1]), /options must be an object/);
  });

  test('cookie rules: SameSite=None needs Secure (auto is not enough), __Host- and __Secure- prefixes', () => {
    assert.match(toyError({ cookie: { sameSite: 'none' } }), /option cookie\.sameSite is "none": expected 'none' only with secure: true.*Fix: set cookie\.secure to true/);
    assert.equal(parseOptions(toy, { cookie: { sameSite: 'None', secure: true } }, ctx).cookie.sameSite, 'none');
    assert.match(toyError({ cookie: { name: '__Host-s', secure: true, path: '/x' } }), /__Host-/);
    assert.match(toyError({ cookie: { name: '__Secure-s' } }), /__Secure-/);
    assert.match(toyError({ cookie: { name: 'a b' } }), /option cookie\.name is "a b": expected a cookie name/);
  });
});

describe('worker environment contract', () => {
  test('what the primary writes, the worker reads back', () => {
    const env = { ...clusterEnv({ workers: 4, sticky: true, name: 'app', waitReady: false, policy: 'rr', host: '::1', port: 3000 }), ...slotEnv(2) };
    assert.deepEqual(readWorkerEnv(env), { slot: 2, workers: 4, sticky: true, name: 'app', waitReady: false, policy: 'rr', host: '::1', port: 3000, metrics: false, secret: undefined });
    assert.equal(readWorkerEnv({ CLUSTER_SESSION_WORKERS: '4' }), undefined, 'no slot: not under a primary');
  });
});

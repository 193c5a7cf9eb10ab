// The HS256 fast path remembers tokens whose signature matched (src/hs256.ts). What a repeat must still do: refuse
// it once it expired, check the claims against the options of this call, hand out claims no earlier caller can have
// changed, and never turn a token that differs by one character into a remembered one.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { afterEach, mock, test } from 'node:test';
import { createKeyRing } from '../src/index.ts';
import { verifierOf, verifyOptions } from '../src/ring.ts';

const SECRET = 'cache-test-secret-0123456789abcdefghij';
const ring = createKeyRing({ secret: SECRET });
const verify = verifierOf(ring);
const NOW = 1_780_000_000;
const b64 = (s: string) => Buffer.from(s).toString('base64url');
function token(claims: object): string {
  const input = `${b64(JSON.stringify({ alg: 'HS256', kid: ring.kids[0], typ: 'JWT' }))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}
const reason = async (t: string, o = verifyOptions({ clockTolerance: 0 })) =>
  verify(t, o).then(
    () => 'accepted',
    (err: { reason?: string }) => err.reason ?? 'not a JwtInvalidError',
  );

afterEach(() => mock.timers.reset());

test('a remembered token is refused once it expires, at the second it does', async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW * 1000 });
  const t = token({ user: 'ann', iat: NOW - 10, exp: NOW + 60, jti: 'exp-1' });
  assert.equal(await reason(t), 'accepted');
  assert.equal(await reason(t), 'accepted', 'a repeat, from memory');
  mock.timers.setTime((NOW + 60) * 1000);
  assert.equal(await reason(t), 'expired');
});

test("a repeat checks the claims against this call's options (issuer, audience)", async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW * 1000 });
  const t = token({ user: 'ann', iat: NOW - 10, exp: NOW + 600, jti: 'iss-1', iss: 'https://a.example', aud: 'app' });
  assert.equal(await reason(t), 'accepted');
  assert.equal(await reason(t, verifyOptions({ issuer: 'https://b.example' })), 'claim');
  assert.equal(await reason(t, verifyOptions({ audience: 'other' })), 'claim');
  assert.equal(await reason(t, verifyOptions({ issuer: 'https://a.example', audience: 'app' })), 'accepted');
});

test('each verification gets its own claims: a change made by one caller is not seen by the next', async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW * 1000 });
  const t = token({ cart: { items: ['tea'] }, iat: NOW - 10, exp: NOW + 600, jti: 'cart-1' });
  const first = await verify(t, verifyOptions({}));
  (first.payload.cart as { items: string[] }).items.push('cake');
  const second = await verify(t, verifyOptions({}));
  assert.deepEqual(second.payload.cart, { items: ['tea'] });
  assert.notEqual(second.payload, first.payload);
});

test('a remembered token does not vouch for one that differs from it: a changed signature or payload is refused', async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW * 1000 });
  const t = token({ user: 'ann', iat: NOW - 10, exp: NOW + 600, jti: 'sig-1' });
  assert.equal(await reason(t), 'accepted');
  const [h, p, s] = t.split('.') as [string, string, string];
  const flipped = `${h}.${p}.${s.slice(0, -2)}${s.at(-2) === 'A' ? 'B' : 'A'}${s.at(-1)}`;
  assert.equal(await reason(flipped), 'signature');
  const admin = b64(JSON.stringify({ user: 'admin', iat: NOW - 10, exp: NOW + 600, jti: 'sig-1' }));
  assert.equal(await reason(`${h}.${admin}.${s}`), 'signature');
  assert.equal(await reason(t), 'accepted', 'the genuine one still passes');
});

test('more distinct tokens than the memory holds: every one still verifies (the oldest are forgotten, not refused)', async () => {
  mock.timers.enable({ apis: ['Date'], now: NOW * 1000 });
  const tokens = Array.from({ length: 5000 }, (_, i) => token({ n: i, iat: NOW - 10, exp: NOW + 600, jti: `many-${i}` }));
  for (const t of tokens) assert.equal(await reason(t), 'accepted');
  for (const t of [tokens[0]!, tokens[4999]!]) assert.equal(await reason(t), 'accepted');
});

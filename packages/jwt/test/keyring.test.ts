import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { createKeyRing, JwtConfigError, JwtInvalidError, keyRingFromEnv } from '../src/index.ts';
import { forge, now } from './fixtures/forge.ts';

const secret = randomBytes(32).toString('base64url');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (k: { export: Function }, type: string) => k.export({ type, format: 'pem' }) as string;

async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof JwtInvalidError, `expected JwtInvalidError, got ${err}`);
    assert.equal(err.code, 'CS_ERR_JWT_INVALID');
    return err.reason;
  }
  assert.fail('token was accepted');
}

function configError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof JwtConfigError, `expected JwtConfigError, got ${err}`);
    assert.equal(err.code, 'CS_ERR_JWT_CONFIG');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('key ring', () => {
  test('every algorithm signs and verifies; the header carries kid, alg and typ', async () => {
    const cases = [
      { kid: 'hs', alg: 'HS256', secret },
      { kid: 'rs', alg: 'RS256', privateKey: pem(rsa.privateKey, 'pkcs8') },
      { kid: 'es', alg: 'ES256', privateKey: ec.privateKey.export({ format: 'jwk' }) },
      { kid: 'ed', alg: 'EdDSA', privateKey: ed.privateKey },
    ] as const;
    for (const key of cases) {
      const ring = createKeyRing({ keys: [key as never] });
      const token = await ring.sign({ user: 'alice' }, { ttl: 60 });
      assert.deepEqual(decodeProtectedHeader(token), { alg: key.alg, kid: key.kid, typ: 'JWT' });
      const { payload, kid } = await ring.verify(token);
      assert.equal(payload.user, 'alice');
      assert.equal(kid, key.kid);
      assert.ok(payload.exp - payload.iat === 60 && typeof payload.jti === 'string');
    }
  });

  test('HMAC secrets under 256 bits are refused at startup, naming the option and the fix', () => {
    configError(() => createKeyRing({ secret: 'too-short-secret' }), /secret\[0\].*128 bits.*at least 256 bits.*openssl rand/);
    configError(() => createKeyRing({ keys: [{ kid: 'a', alg: 'HS256', secret: 'x'.repeat(31) }] }), /kid "a".*248 bits/);
    configError(() => keyRingFromEnv({ JWT_SECRET: `${secret},short` }), /JWT_SECRET \(secret #2\)/);
  });

  test('a secret never appears in an error message', () => {
    const leaky = 'hunter2-hunter2-hunter2-but-short';
    for (const fn of [
      () => keyRingFromEnv({ JWT_SECRET: leaky.slice(0, 20) }),
      () => keyRingFromEnv({ JWT_KEYS: `{"keys": [${leaky}` }),
      () => keyRingFromEnv({ JWT_KEYS: `k1:${leaky.slice(0, 20)}` }),
    ])
      assert.throws(fn, (err: Error) => !err.message.includes('hunter2'));
  });

  test('keys whose type does not fit the alg are refused', () => {
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'RS256', privateKey: ec.privateKey }] }), /RS256 needs an RSA key/);
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'ES256', privateKey: ed.privateKey }] }), /ES256 needs an EC P-256 key/);
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'HS256', privateKey: rsa.privateKey }] }), /exactly one|HS256 needs "secret"/);
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'RS256', secret }] }), /RS256 needs "privateKey"/);
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'none' as never, secret }] }), /"alg" must be one of EdDSA, ES256, RS256, HS256/);
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'RS256', privateKey: small.privateKey }] }), /1024 bits; RS256 needs at least 2048/);
    configError(() => createKeyRing({ keys: [{ kid: 'x', alg: 'RS256', privateKey: 'not a pem' }] }), /cannot read the private key/);
  });

  test('kids must be unique and well-formed; exactly one of secret/keys', () => {
    configError(() => createKeyRing({ keys: [{ kid: 'a', secret }, { kid: 'a', secret }] }), /kid "a" appears twice/);
    configError(() => createKeyRing({ keys: [{ kid: 'a b', secret }] }), /"kid" must be/);
    configError(() => createKeyRing({}), /exactly one of "secret".*neither/);
    configError(() => createKeyRing({ secret, keys: [] }), /both/);
  });

  test('jwks() exports public keys only: never an HMAC secret or a private part', () => {
    const ring = createKeyRing({
      keys: [
        { kid: 'ed', alg: 'EdDSA', privateKey: ed.privateKey },
        { kid: 'hs', alg: 'HS256', secret },
        { kid: 'rs', alg: 'RS256', publicKey: pem(rsa.publicKey, 'spki') },
      ],
    });
    const { keys } = ring.jwks();
    assert.deepEqual(keys.map((k) => k.kid), ['ed', 'rs']);
    for (const k of keys) {
      assert.equal(k.d, undefined);
      assert.equal(k.use, 'sig');
    }
    assert.equal(keys[0]!.alg, 'EdDSA');
    assert.ok(!JSON.stringify(keys).includes(secret));
  });

  test('a JWKS from jwks() builds a verify-only ring that verifies but cannot sign', async () => {
    const signer = createKeyRing({ keys: [{ kid: 'ed', alg: 'EdDSA', privateKey: ed.privateKey }] });
    const verifier = keyRingFromEnv({ JWT_KEYS: JSON.stringify(signer.jwks()) });
    assert.equal(verifier.signingKid, undefined);
    const token = await signer.sign({ user: 'alice' });
    assert.equal((await verifier.verify(token)).payload.user, 'alice');
    await assert.rejects(verifier.sign({}), JwtConfigError);
  });

  test('rotation: old kid verifies until removed; new tokens carry the new kid', async () => {
    const oldKey = { kid: 'k-2025', alg: 'HS256' as const, secret };
    const newKey = { kid: 'k-2026', alg: 'ES256' as const, privateKey: ec.privateKey };
    const before = createKeyRing({ keys: [oldKey] });
    const during = createKeyRing({ keys: [newKey, oldKey] });
    const afterwards = createKeyRing({ keys: [newKey] });
    const oldToken = await before.sign({ user: 'alice' });
    assert.equal((await during.verify(oldToken)).kid, 'k-2025');
    const newToken = await during.sign({ user: 'alice' });
    assert.equal(decodeProtectedHeader(newToken).kid, 'k-2026');
    // Refused by kid, or earlier by the ring's algorithm allow-list (no HS256 key is left).
    assert.ok(['kid', 'alg'].includes(await reason(afterwards.verify(oldToken))));
    assert.equal((await afterwards.verify(newToken)).kid, 'k-2026');
  });

  test('secret lists rotate the same way, with kids derived from the secrets (equal in every process)', async () => {
    const other = randomBytes(32).toString('base64url');
    const a = createKeyRing({ secret });
    const b = createKeyRing({ secret: [other, secret] });
    assert.equal(b.kids[1], a.kids[0]);
    assert.match(a.kids[0]!, /^hs-[A-Za-z0-9_-]{12}$/);
    assert.equal((await b.verify(await a.sign({}))).kid, a.kids[0]);
    assert.equal(await reason(createKeyRing({ secret: other }).verify(await a.sign({}))), 'kid');
  });

  test('verify() gives a stable reason for each refusal', async () => {
    const ring = createKeyRing({ keys: [{ kid: 'rs', alg: 'RS256', privateKey: rsa.privateKey }] });
    const body = { iat: now(), exp: now() + 60, jti: 'j' };
    assert.equal(await reason(ring.verify(forge({ alg: 'none', kid: 'rs' }, body))), 'alg');
    assert.equal(await reason(ring.verify(forge({ alg: 'HS256', kid: 'rs' }, body, { hmac: pem(rsa.publicKey, 'spki') }))), 'alg');
    assert.equal(await reason(ring.verify(forge({ alg: 'RS256', kid: 'zz' }, body, { rsa: rsa.privateKey }))), 'kid');
    assert.equal(await reason(ring.verify(forge({ alg: 'RS256', kid: 'rs', jku: 'http://x' }, body, { rsa: rsa.privateKey }))), 'header');
    assert.equal(await reason(ring.verify(forge({ alg: 'RS256', kid: 'rs' }, { ...body, exp: now() - 30 }, { rsa: rsa.privateKey }))), 'expired');
    assert.equal(await reason(ring.verify(forge({ alg: 'RS256', kid: 'rs' }, { iat: now(), jti: 'j' }, { rsa: rsa.privateKey }))), 'claim');
    assert.equal(await reason(ring.verify(forge({ alg: 'RS256', kid: 'rs' }, body, { rsa: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey }))), 'signature');
    assert.equal(await reason(ring.verify('x'.repeat(9000))), 'too_large');
    assert.equal(await reason(ring.verify('not-a-token')), 'malformed');
    // Within the clock tolerance (5 s) an expiry a moment ago still passes.
    assert.ok(await ring.verify(forge({ alg: 'RS256', kid: 'rs' }, { ...body, exp: now() - 2 }, { rsa: rsa.privateKey })));
  });

  test('keyRingFromEnv: JWT_SECRET list, JWT_KEYS as JSON array, JWKS and kid:secret list', async () => {
    const s2 = randomBytes(32).toString('hex');
    assert.equal(keyRingFromEnv({ JWT_SECRET: ` ${secret} , ${s2} ` }).kids.length, 2);
    const ecJwk = { ...ec.privateKey.export({ format: 'jwk' }), kid: 'ec-1' };
    const fromArray = keyRingFromEnv({ JWT_KEYS: JSON.stringify([ecJwk, { kty: 'oct', kid: 'hs-1', k: Buffer.from(secret).toString('base64url') }]) });
    assert.deepEqual(fromArray.kids, ['ec-1', 'hs-1']);
    assert.equal(decodeProtectedHeader(await fromArray.sign({})).alg, 'ES256');
    assert.deepEqual(keyRingFromEnv({ JWT_KEYS: JSON.stringify({ keys: [ecJwk] }) }).kids, ['ec-1']);
    const pairs = keyRingFromEnv({ JWT_KEYS: `new:${s2},old:${secret}` });
    assert.deepEqual(pairs.kids, ['new', 'old']);
    configError(() => keyRingFromEnv({}), /JWT_SECRET.*JWT_KEYS/);
    configError(() => keyRingFromEnv({ JWT_SECRET: secret, JWT_KEYS: `a:${secret}` }), /both set/);
    configError(() => keyRingFromEnv({ JWT_KEYS: 'no-colon-here' }), /entry #1 is not "kid:secret"/);
    configError(() => keyRingFromEnv({ JWT_KEYS: '[]' }), /holds no keys/);
  });
});

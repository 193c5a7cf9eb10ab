// Attack suite over real HTTP: every forged, stale or broken token is a plain 401 from /me, never a 500.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { request } from '@cluster-session/testkit';
import { createKeyRing } from '../src/index.ts';
import { buildApp, listen, type Running } from './fixtures/app.ts';
import { forge, now } from './fixtures/forge.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ed = generateKeyPairSync('ed25519');
const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const ring = createKeyRing({
  keys: [
    { kid: 'rsa-1', alg: 'RS256', privateKey: rsa.privateKey },
    { kid: 'ed-1', alg: 'EdDSA', privateKey: ed.privateKey },
  ],
});
const ISS = 'https://login.example';
const AUD = 'example-app';
const claims = () => ({ user: 'alice', hits: 0, iat0: now(), jti: 'attack-jti' });

let app: Running;
before(async () => {
  app = await listen(buildApp({ ring, issuer: ISS, audience: AUD, ttl: 600 }));
});
after(() => app.close());

async function me(token: string) {
  const viaCookie = await request(`${app.url}/me`, { headers: { cookie: `session=${token}` } });
  const viaBearer = await request(`${app.url}/me`, { headers: { authorization: `Bearer ${token}` } });
  return [viaCookie, viaBearer];
}

async function assertRefused(token: string) {
  for (const res of await me(token)) {
    assert.equal(res.status, 401, `expected 401, got ${res.status}: ${res.body}`);
    assert.deepEqual(res.json, { error: 'not logged in' });
    assert.equal(res.headers['set-cookie'], undefined);
  }
}

describe('attack suite', () => {
  test('control: an honest token is accepted by cookie and by bearer', async () => {
    const token = await ring.sign(claims(), { ttl: 600, issuer: ISS, audience: AUD });
    for (const res of await me(token)) assert.equal(res.status, 200);
  });

  test('alg "none" (unsigned), with and without a known kid', async () => {
    await assertRefused(forge({ alg: 'none', kid: 'rsa-1', typ: 'JWT' }, { ...claims(), iss: ISS, aud: AUD, iat: now(), exp: now() + 600 }));
    await assertRefused(forge({ alg: 'none' }, { ...claims(), iss: ISS, aud: AUD, iat: now(), exp: now() + 600 }));
  });

  test('HS256 signed with the RSA public key as the HMAC secret', async () => {
    const body = { ...claims(), iss: ISS, aud: AUD, iat: now(), exp: now() + 600 };
    await assertRefused(forge({ alg: 'HS256', kid: 'rsa-1', typ: 'JWT' }, body, { hmac: publicPem }));
    await assertRefused(forge({ alg: 'HS256', typ: 'JWT' }, body, { hmac: publicPem }));
  });

  test('tampered payload with the original signature', async () => {
    const token = await ring.sign(claims(), { ttl: 600, issuer: ISS, audience: AUD });
    const [h, , s] = token.split('.');
    const evil = Buffer.from(JSON.stringify({ ...claims(), user: 'admin', iss: ISS, aud: AUD, iat: now(), exp: now() + 600 })).toString('base64url');
    await assertRefused(`${h}.${evil}.${s}`);
  });

  test('expired (beyond the clock tolerance)', async () => {
    await assertRefused(await ring.sign({ ...claims(), iat: now() - 700, iat0: now() - 700 }, { expiresAt: now() - 60, issuer: ISS, audience: AUD }));
  });

  test('nbf in the future', async () => {
    await assertRefused(await ring.sign({ ...claims(), nbf: now() + 3600 }, { ttl: 7200, issuer: ISS, audience: AUD }));
  });

  test('missing exp (validly signed)', async () => {
    const token = await new SignJWT({ ...claims(), iss: ISS, aud: AUD })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-1' })
      .setIssuedAt()
      .sign(rsa.privateKey);
    await assertRefused(token);
  });

  test('wrong iss, wrong aud, missing iss/aud', async () => {
    await assertRefused(await ring.sign(claims(), { ttl: 600, issuer: 'https://evil.example', audience: AUD }));
    await assertRefused(await ring.sign(claims(), { ttl: 600, issuer: ISS, audience: 'other-app' }));
    await assertRefused(await ring.sign(claims(), { ttl: 600 }));
  });

  test('unknown kid, missing kid, and a kid used with another algorithm', async () => {
    const body = { ...claims(), iss: ISS, aud: AUD };
    await assertRefused(await new SignJWT(body).setProtectedHeader({ alg: 'RS256', kid: 'rsa-9' }).setIssuedAt().setExpirationTime('10m').sign(attacker.privateKey));
    await assertRefused(await new SignJWT(body).setProtectedHeader({ alg: 'RS256', kid: 'rsa-9' }).setIssuedAt().setExpirationTime('10m').sign(rsa.privateKey));
    await assertRefused(await new SignJWT(body).setProtectedHeader({ alg: 'RS256' }).setIssuedAt().setExpirationTime('10m').sign(rsa.privateKey));
    // Real Ed25519 signature, but announced under the RSA kid.
    await assertRefused(await new SignJWT(body).setProtectedHeader({ alg: 'EdDSA', kid: 'rsa-1' }).setIssuedAt().setExpirationTime('10m').sign(ed.privateKey));
  });

  test('jwk / jku / x5u / x5c header injection', async () => {
    const body = { ...claims(), iss: ISS, aud: AUD };
    const jwk = attacker.publicKey.export({ format: 'jwk' });
    const signed = (header: Record<string, unknown>, key = attacker.privateKey) =>
      new SignJWT(body).setProtectedHeader({ alg: 'RS256', ...header }).setIssuedAt().setExpirationTime('10m').sign(key);
    await assertRefused(await signed({ jwk }));
    await assertRefused(await signed({ kid: 'rsa-1', jwk }));
    await assertRefused(await signed({ kid: 'rsa-1', jku: 'http://127.0.0.1:9/jwks.json' }));
    await assertRefused(await signed({ kid: 'rsa-1', x5u: 'http://127.0.0.1:9/cert.pem' }));
    // Even with the genuine key, a token that carries a key in its header is refused outright.
    await assertRefused(await signed({ kid: 'rsa-1', jwk: rsa.publicKey.export({ format: 'jwk' }) }, rsa.privateKey));
  });

  test('oversized token', async () => {
    const token = await ring.sign({ ...claims(), pad: 'x'.repeat(9000) }, { ttl: 600, issuer: ISS, audience: AUD });
    await assertRefused(token);
    await assertRefused('a'.repeat(12_000));
  });

  test('garbage in the cookie and the Authorization header', async () => {
    const junk = ['garbage', 'a.b.c', '...', '%%%', 'eyJhbGciOiJSUzI1NiJ9.%%%.###', 'e30.e30.', '\u00e9\u00e8', '"quoted"', 'null', '{}'];
    for (const value of junk) await assertRefused(value);
    const raw = await request(`${app.url}/me`, { headers: { cookie: 'session; =; session==; other=1' } });
    assert.equal(raw.status, 401);
    const empty = await request(`${app.url}/me`, { headers: { authorization: 'Bearer' } });
    assert.equal(empty.status, 401);
  });
});

/**
 * CPU time per HS256 verify and sign: the node:crypto fast path of an HMAC ring vs jose (WebCrypto) on the same
 * keys, in this process, alternating in rounds (medians). CPU time (process.cpuUsage), not wall time, so other load
 * on the machine inflates both sides less than it would a req/s figure.
 */
import { createSecretKey } from 'node:crypto';
import { SignJWT } from 'jose';
import { createKeyRing } from '@cluster-session/jwt';
// Internal: the jose verifier the fast path replaced for HMAC rings (the reference of its differential test).
import { joseVerifier, keysOf, verifierOf, verifyOptions } from '../../packages/jwt/src/ring.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const SECRET = 'bench-secret-bench-secret-bench-secret-0123';

async function cpuPerOp(n: number, op: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  for (let i = 0; i < n; i++) await op();
  const used = process.cpuUsage(start);
  return (used.user + used.system) / n; // µs
}

const scenario: Scenario = {
  name: 'jwt-crypto',
  title: 'HS256 CPU µs per verify / sign: node:crypto fast path vs jose (WebCrypto), same keys, same process',
  async run(ctx) {
    const ring = createKeyRing({ secret: SECRET });
    const o = verifyOptions({});
    const fast = verifierOf(ring);
    const jose = joseVerifier(keysOf(ring));
    const key = createSecretKey(Buffer.from(SECRET));
    const claims = { user: 'alice', hits: 3, iat0: Math.floor(Date.now() / 1000) };
    const token = await ring.sign(claims, { ttl: 3600 });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const joseSign = () =>
      new SignJWT({ ...claims }).setProtectedHeader({ alg: 'HS256', kid: ring.signingKid!, typ: 'JWT' }).setIssuedAt().setExpirationTime(exp).setJti('j').sign(key);
    const n = ctx.smoke ? 2000 : 20_000;
    for (const f of [() => fast(token, o), () => jose(token, o), () => ring.sign(claims, { ttl: 3600 }), joseSign]) await cpuPerOp(n, f); // warm-up
    const r = await alternate(ctx.rounds, {
      fastVerify: () => cpuPerOp(n, () => fast(token, o)),
      joseVerify: () => cpuPerOp(n, () => jose(token, o)),
      fastSign: () => cpuPerOp(n, () => ring.sign(claims, { expiresAt: exp, jti: 'j' })),
      joseSign: () => cpuPerOp(n, joseSign),
    });
    const m = (k: keyof typeof r) => median(r[k]);
    const note = `${n} ops x ${ctx.rounds} rounds, CPU time`;
    return [
      { scenario: 'jwt-crypto', metric: 'HS256 verify, CPU per token', unit: 'µs', ours: m('fastVerify'), peer: 'jose jwtVerify (WebCrypto)', peerValue: m('joseVerify'), ratio: ratio(m('joseVerify'), m('fastVerify')), note: `${note}; ratio = jose / ours` },
      { scenario: 'jwt-crypto', metric: 'HS256 sign, CPU per token', unit: 'µs', ours: m('fastSign'), peer: 'jose SignJWT (WebCrypto)', peerValue: m('joseSign'), ratio: ratio(m('joseSign'), m('fastSign')), note: `${note}; ratio = jose / ours` },
    ];
  },
};
export default scenario;

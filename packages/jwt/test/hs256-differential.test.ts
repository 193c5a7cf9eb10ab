// The HS256 fast path (node:crypto) against jose on the same keys: every token gets the same verdict (accepted with
// the same payload and kid, or refused with the same reason), and signing yields the same bytes.
import assert from 'node:assert/strict';
import { createHmac, createSecretKey, generateKeyPairSync, createSign } from 'node:crypto';
import { describe, mock, test } from 'node:test';
import { SignJWT } from 'jose';
import { createKeyRing } from '../src/index.ts';
import { checkLength, joseVerifier, keysOf, plainSignerOf, verifierOf, verifyOptions } from '../src/ring.ts';

const SECRET_A = 'differential-secret-A-0123456789abcdef';
const SECRET_B = 'differential-secret-B-0123456789abcdef';
const ring = createKeyRing({ secret: [SECRET_A, SECRET_B] });
const [KID_A, KID_B] = ring.kids as [string, string];
const fast = verifierOf(ring);
const joseOnly = joseVerifier(keysOf(ring));
/** The reference: what createKeyRing verified with before the fast path (length checks, then jose). */
const jose: typeof fast = async (token, o) => {
  checkLength(token, o);
  return joseOnly(token, o);
};
const NOW = 1_780_000_000; // frozen clock (mock.timers), so exp/nbf edges are exact for both sides
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');
const hmac = (input: string, secret: string | Buffer = SECRET_A) => createHmac('sha256', secret).update(input).digest('base64url');
/** A compact JWS from raw header/payload JSON text (so duplicate keys, BOMs and odd spacing survive), HMAC-signed. */
function raw(headerJson: string | Buffer, payloadJson: string | Buffer, secret: string | Buffer = SECRET_A): string {
  const input = `${typeof headerJson === 'string' ? b64(headerJson) : headerJson.toString('base64url')}.${typeof payloadJson === 'string' ? b64(payloadJson) : payloadJson.toString('base64url')}`;
  return `${input}.${hmac(input, secret)}`;
}
const signed = (header: object, payload: object, secret: string | Buffer = SECRET_A) => raw(JSON.stringify(header), JSON.stringify(payload), secret);
/** Signs over segments given as-is (padding, whitespace, non-ASCII), the way jose computes the signing input. */
const overSegments = (h: string, p: string, secret = SECRET_A) => `${h}.${p}.${createHmac('sha256', secret).update(Buffer.from(`${h}.${p}`, 'utf8')).digest('base64url')}`;

const header = (over: Record<string, unknown> = {}) => ({ alg: 'HS256', kid: KID_A, typ: 'JWT', ...over });
const claims = (over: Record<string, unknown> = {}) => ({ user: 'alice', iat: NOW - 10, exp: NOW + 600, jti: 'j-1', iss: 'https://login.example', aud: 'app', ...over });
const drop = (o: Record<string, unknown>, ...names: string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !names.includes(k)));

const OPTIONS = [
  verifyOptions({}),
  verifyOptions({ clockTolerance: 0 }),
  verifyOptions({ issuer: 'https://login.example', audience: 'app' }),
  verifyOptions({ issuer: ['https://other.example', 'https://login.example'], audience: ['x', 'app'], clockTolerance: 30 }),
];

type Verdict = { ok: true; payload: unknown; kid: string } | { ok: false; reason: string };
async function verdict(verify: typeof fast, token: string, o: (typeof OPTIONS)[number]): Promise<Verdict> {
  try {
    const { payload, kid } = await verify(token, o);
    return { ok: true, payload, kid };
  } catch (err) {
    return { ok: false, reason: (err as { reason?: string }).reason ?? `not a JwtInvalidError: ${(err as Error).message}` };
  }
}

/** Same verdict under every option set; returns how many tokens were accepted (so a corpus cannot be all-refused). */
async function sameVerdicts(tokens: readonly string[]): Promise<{ accepted: number; refused: number }> {
  let accepted = 0;
  let refused = 0;
  for (const token of tokens)
    for (const o of OPTIONS) {
      const expected = await verdict(jose, token, o);
      const actual = await verdict(fast, token, o);
      assert.deepEqual(actual, expected, `token ${JSON.stringify(token.length > 300 ? `${token.slice(0, 300)}...` : token)} with ${JSON.stringify(o)}`);
      if (expected.ok) accepted++;
      else refused++;
    }
  return { accepted, refused };
}

function withFrozenClock(fn: () => Promise<void>) {
  return async () => {
    mock.timers.enable({ apis: ['Date'], now: NOW * 1000 + 500 });
    try {
      await fn();
    } finally {
      mock.timers.reset();
    }
  };
}

/** Seeded PRNG (mulberry32) so a failure is reproducible. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('HS256 fast path vs jose', () => {
  test('the fast path is in use for an all-HMAC ring (a refusal carries no jose error as cause)', async () => {
    const err = await fast('a.b.c', OPTIONS[0]!).catch((e: unknown) => e as Error);
    assert.equal((err as { cause?: unknown }).cause, undefined);
    const viaJose = await jose('a.b.c', OPTIONS[0]!).catch((e: unknown) => e as Error);
    assert.notEqual((viaJose as { cause?: unknown }).cause, undefined);
  });

  test('attack suite: alg none/confusion, tampering, kid, key injection, time claims, garbage', withFrozenClock(async () => {
    const good = signed(header(), claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const publicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const rsInput = `${b64(JSON.stringify(header({ alg: 'RS256' })))}.${p}`;
    const tokens = [
      good,
      signed(header({ kid: KID_B }), claims(), SECRET_B),
      `${b64(JSON.stringify(header({ alg: 'none' })))}.${p}.`,
      `${b64(JSON.stringify({ alg: 'none' }))}.${p}.`,
      signed(header(), claims(), publicPem),
      signed(drop(header(), 'kid'), claims(), publicPem),
      `${h}.${b64(JSON.stringify(claims({ user: 'admin' })))}.${s}`,
      `${rsInput}.${createSign('RSA-SHA256').update(rsInput).sign(rsa.privateKey).toString('base64url')}`,
      signed(header({ kid: 'hs-unknown' }), claims()),
      signed(drop(header(), 'kid'), claims()),
      signed(header({ kid: KID_B }), claims()), // kid names B, signed with A
      signed(header({ kid: KID_A }), claims(), SECRET_B),
      signed(header({ jwk: { kty: 'oct', k: b64(SECRET_A) } }), claims()),
      signed(header({ jku: 'http://127.0.0.1:9/jwks.json' }), claims()),
      signed(header({ x5u: 'http://127.0.0.1:9/c.pem' }), claims()),
      signed(header({ x5c: [] }), claims()),
      signed(header({ jwk: null }), claims()),
      signed(header(), claims({ exp: NOW - 60, iat: NOW - 700 })),
      signed(header(), claims({ nbf: NOW + 3600 })),
      signed(header(), drop(claims(), 'exp')),
      signed(header(), claims({ iss: 'https://evil.example' })),
      signed(header(), claims({ aud: 'other-app' })),
      signed(header(), drop(claims(), 'iss', 'aud')),
      signed(header(), claims({ pad: 'x'.repeat(9000) })),
      'a'.repeat(12_000),
      ...['garbage', 'a.b.c', '...', '%%%', 'eyJhbGciOiJSUzI1NiJ9.%%%.###', 'e30.e30.', '\u00e9\u00e8', '"quoted"', 'null', '{}', '', 'a.b', 'a.b.c.d'],
    ];
    const counts = await sameVerdicts(tokens);
    assert.ok(counts.accepted > 0 && counts.refused > counts.accepted);
  }));

  test('header mutations: alg, kid, typ, crit, b64, duplicate keys, encodings', withFrozenClock(async () => {
    const c = claims();
    const tokens: string[] = [];
    for (const alg of ['HS256', 'hs256', 'HS384', 'HS512', 'RS256', 'ES256', 'EdDSA', 'none', '', null, 256, ['HS256'], undefined])
      tokens.push(signed(alg === undefined ? drop(header(), 'alg') : header({ alg }), c));
    for (const kid of [KID_A, KID_B, 'hs-nope', '', null, 1, [KID_A], undefined])
      tokens.push(signed(kid === undefined ? drop(header(), 'kid') : header({ kid }), c));
    for (const typ of ['JWT', 'jwt', 'at+jwt', 'application/jwt', '', 7, undefined])
      tokens.push(signed(typ === undefined ? drop(header(), 'typ') : header({ typ }), c));
    const crits: unknown[] = [[], ['b64'], ['exp'], ['b64', 'b64'], 'b64', [''], [1], ['b64', 'zip'], ['zip', 'b64'], null, {}];
    for (const crit of crits)
      for (const b64v of [true, false, 'false', null, undefined]) {
        const hd = header({ crit, ...(b64v === undefined ? {} : { b64: b64v }) });
        tokens.push(signed(hd, c));
        // b64:false tokens carry the payload unencoded: sign over the raw JSON as jose would.
        const hs = b64(JSON.stringify(hd));
        tokens.push(overSegments(hs, JSON.stringify(c)));
        tokens.push(overSegments(hs, 'plain.ascii'));
        tokens.push(overSegments(hs, 'caf\u00e9'));
      }
    tokens.push(signed(header({ b64: false }), c)); // b64 without crit is just an unknown header
    // jose checks an unencoded payload's characters before it looks up the kid: the order decides the reason.
    for (const kid of ['hs-nope', undefined])
      tokens.push(overSegments(b64(JSON.stringify({ ...drop(header(), 'kid'), ...(kid ? { kid } : {}), crit: ['b64'], b64: false })), 'caf\u00e9'));
    const H = JSON.stringify(header());
    const C = JSON.stringify(c);
    tokens.push(
      raw(`{"alg":"none","alg":"HS256","kid":"${KID_A}"}`, C),
      raw(`{"alg":"HS256","alg":"none","kid":"${KID_A}"}`, C),
      raw(`{"alg":"HS256","kid":"hs-nope","kid":"${KID_A}"}`, C),
      raw(`{"alg":"HS256","kid":"${KID_A}","__proto__":{"alg":"none"}}`, C),
      raw(`{"alg":"HS256","kid":"${KID_A}","jwk":{}, "jwk": null}`, C),
      raw(` \n{ "alg" : "HS256" , "kid" : "${KID_A}" }\t`, C),
      raw(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(H)]), C), // UTF-8 BOM
      raw(Buffer.concat([Buffer.from(H.slice(0, -1)), Buffer.from([0xff, 0xfe]), Buffer.from('}')]), C), // invalid UTF-8
      raw(`[${H}]`, C),
      raw('"HS256"', C),
      raw('null', C),
      raw('', C),
      raw(H.slice(0, -1), C),
    );
    // Base64url oddities in the header segment, signed over the odd text (so only decoding decides).
    const hs = b64(H);
    for (const odd of [`${hs}=`, `${hs}==`, `${hs}===`, ` ${hs}`, `${hs.slice(0, 4)} ${hs.slice(4)}`, `${hs.slice(0, 4)}\n${hs.slice(4)}`, hs.replace(/-/g, '+').replace(/_/g, '/'), Buffer.from(H).toString('base64'), `${hs}A`, `${hs}AA`, hs.slice(0, -1), `${hs.slice(0, 8)}=${hs.slice(8)}`])
      tokens.push(overSegments(odd, b64(C)));
    const counts = await sameVerdicts(tokens);
    assert.ok(counts.accepted > 0);
  }));

  test('claim mutations: exp/nbf/iat edges, jti, iss/aud, duplicate keys, non-objects', withFrozenClock(async () => {
    const tokens: string[] = [];
    for (const tol of [0, 5, 30])
      for (const d of [-2, -1, 0, 1, 2]) {
        tokens.push(signed(header(), claims({ exp: NOW - tol + d })));
        tokens.push(signed(header(), claims({ nbf: NOW + tol + d })));
        tokens.push(signed(header(), claims({ iat: NOW + tol + d })));
      }
    for (const v of [null, '1780000600', true, [], {}, 1.5e9 + 0.5, -1, 0, 1e308])
      for (const name of ['exp', 'nbf', 'iat']) tokens.push(signed(header(), claims({ [name]: v })));
    const REQUIRED = ['exp', 'iat', 'jti', 'iss', 'aud'];
    for (const name of REQUIRED) tokens.push(signed(header(), drop(claims(), name)));
    for (const [i, a] of REQUIRED.entries()) for (const b of REQUIRED.slice(i + 1)) tokens.push(signed(header(), drop(claims(), a, b)));
    for (const jti of ['', 'x'.repeat(128), 'x'.repeat(129), 5, null, ['j']]) tokens.push(signed(header(), claims({ jti })));
    for (const iss of ['https://login.example', 'https://other.example', '', null, ['https://login.example'], 1]) tokens.push(signed(header(), claims({ iss })));
    for (const aud of ['app', 'x', ['app'], ['y', 'app'], ['y'], [], null, 1, [1, 'app']]) tokens.push(signed(header(), claims({ aud })));
    const H = JSON.stringify(header());
    tokens.push(
      raw(H, `{"exp":${NOW - 100},"iat":${NOW},"jti":"a","exp":${NOW + 100},"iss":"https://login.example","aud":"app"}`),
      raw(H, `{"exp":${NOW + 100},"iat":${NOW},"jti":"a","exp":${NOW - 100}}`),
      raw(H, `{"exp":1e999,"iat":${NOW},"jti":"a"}`),
      raw(H, `{"exp":${NOW + 100},"iat":-1e999,"jti":"a"}`),
      raw(H, `{"exp":${NOW + 100},"iat":${NOW},"jti":"a","__proto__":{"admin":true}}`),
      raw(H, `\ufeff{"exp":${NOW + 100},"iat":${NOW},"jti":"a"}`),
      raw(H, `[{"exp":${NOW + 100}}]`),
      raw(H, '"claims"'),
      raw(H, '42'),
      raw(H, 'null'),
      raw(H, ''),
      raw(H, `{"exp":${NOW + 100},`),
      raw(Buffer.from(H), Buffer.concat([Buffer.from(`{"exp":${NOW + 100},"iat":${NOW},"jti":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])),
    );
    const C = b64(JSON.stringify(claims()));
    for (const odd of [`${C}=`, `${C}==`, ` ${C}`, `${C.slice(0, 5)}\t${C.slice(5)}`, `${C}A`, C.slice(0, -1), `${C}\u00e9`, `\u00e9${C}`])
      tokens.push(overSegments(b64(H), odd));
    const counts = await sameVerdicts(tokens);
    assert.ok(counts.accepted > 0);
  }));

  test('signature mutations: padding, whitespace, trailing bits, length, alphabet', withFrozenClock(async () => {
    const good = signed(header(), claims());
    const [h, p, s] = good.split('.') as [string, string, string];
    const A = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const sigs = [s, `${s}=`, `${s}==`, `${s}===`, ` ${s}`, `${s} `, `${s.slice(0, 10)} ${s.slice(10)}`, `${s.slice(0, 10)}\n${s.slice(10)}`,
      s.slice(0, -1), `${s}A`, `${s}AAAA`, '', s.replace(/-/g, '+').replace(/_/g, '/'), `${s.slice(0, 20)}=${s.slice(20)}`,
      createHmac('sha384', SECRET_A).update(`${h}.${p}`).digest('base64url'), createHmac('sha256', SECRET_A).update(`${h}.${p}`).digest('base64'),
      ...[...A].map((ch) => s.slice(0, -1) + ch)]; // the last character's low bits are not part of the 32 bytes
    const counts = await sameVerdicts(sigs.map((sig) => `${h}.${p}.${sig}`));
    assert.ok(counts.accepted > 4, 'jose accepts a few equivalent encodings of the right signature');
  }));

  test('random mutations of valid tokens (seeded)', withFrozenClock(async () => {
    const rand = prng(18);
    const bases = [signed(header(), claims()), signed(header({ kid: KID_B }), claims({ hits: 3 }), SECRET_B), signed(header(), drop(claims(), 'iss', 'aud'))];
    const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \t\u00e9';
    const tokens: string[] = [];
    for (let i = 0; i < 1500; i++) {
      const base = bases[i % bases.length]!;
      const at = Math.floor(rand() * base.length);
      const op = rand();
      const ch = ALPHABET[Math.floor(rand() * ALPHABET.length)]!;
      tokens.push(op < 0.4 ? base.slice(0, at) + ch + base.slice(at + 1) : op < 0.7 ? base.slice(0, at) + ch + base.slice(at) : base.slice(0, at) + base.slice(at + 1));
    }
    const counts = await sameVerdicts([...new Set(tokens)]);
    assert.ok(counts.accepted > 0 && counts.refused > 0);
  }));

  test('signing: the same bytes as jose SignJWT, and the same errors', withFrozenClock(async () => {
    const key = createSecretKey(Buffer.from(SECRET_A));
    const cases: [Record<string, unknown>, Parameters<typeof ring.sign>[1]][] = [
      [{ user: 'alice' }, { ttl: 60, jti: 'fixed' }],
      [{ user: 'b\u00e9', n: [1, { a: null }], iat: NOW - 5, jti: 'from-claims' }, { expiresAt: NOW + 10, issuer: 'i', audience: ['a', 'b'] }],
      [{ exp: 1, iat: 2, jti: 'x', iss: 'first', aud: 'first', nbf: NOW }, { expiresAt: NOW + 10, issuer: 'i', audience: 'a', jti: 'opt' }],
      [{ d: new Date(0), u: undefined, s: '\ud800' }, { ttl: 60, jti: 'fixed' }],
      [{ iat: Number.NaN }, { ttl: 60, jti: 'fixed' }],
      [{ nbf: Infinity }, { ttl: 60, jti: 'fixed' }],
      [{ f: () => 1 }, { ttl: 60, jti: 'fixed' }],
      [{ big: 1n }, { ttl: 60, jti: 'fixed' }],
      [{}, { expiresAt: Number.NaN, jti: 'fixed' }],
      [{}, { expiresAt: NOW + 1, issuer: 5 as never, jti: 'fixed' }],
      [{}, { expiresAt: NOW + 1, audience: [1] as never, jti: 'fixed' }],
      [{}, { expiresAt: NOW + 1, jti: 7 as never }],
    ];
    for (const [c, opts] of cases) {
      const now = NOW;
      const exp = opts?.expiresAt ?? now + Number(opts?.ttl ?? 900);
      const viaJose = await (async () => {
        const jwt = new SignJWT({ ...c })
          .setProtectedHeader({ alg: 'HS256', kid: KID_A, typ: 'JWT' })
          .setIssuedAt(typeof c.iat === 'number' ? c.iat : now)
          .setExpirationTime(exp)
          .setJti((opts?.jti ?? c.jti) as string);
        if (opts?.issuer !== undefined) jwt.setIssuer(opts.issuer);
        if (opts?.audience !== undefined) jwt.setAudience(opts.audience);
        return jwt.sign(key);
      })().then((t) => ({ t }), (e: Error) => ({ e: e.constructor.name + e.message }));
      const viaRing = await ring.sign(c, opts).then((t) => ({ t }), (e: Error) => ({ e: e.constructor.name + e.message }));
      assert.deepEqual(viaRing, viaJose, JSON.stringify(c, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)));
    }
  }));

  test('the middleware signer (no structuredClone, claims from JSON data) gives the same token as ring.sign', withFrozenClock(async () => {
    const sign = plainSignerOf(ring);
    const datas = [{}, { user: 'alice', hits: 3 }, { 2: 'two', 1: 'one', z: [1, { y: null }], u: '\u00e9\ud83d\ude00' }, JSON.parse('{"__proto__":{"x":1},"a":1}')];
    for (const data of datas)
      for (const o of [{}, { issuer: 'https://i.example', audience: 'app' }, { audience: ['a', 'b'] }]) {
        const claims = { ...data, iat0: NOW - 100, iat: NOW, exp: NOW + 60, jti: 'j-plain', ttl: 60 };
        assert.equal(await sign(claims, o), await ring.sign(claims, { ...o, expiresAt: claims.exp }));
      }
  }));
});

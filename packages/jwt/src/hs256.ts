import { createHmac, createSecretKey, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';
import { base64url, type JWTPayload } from 'jose';
import { JwtInvalidError } from './errors.ts';
import type { RingKey } from './keys.ts';

/**
 * HS256 on node:crypto for rings whose keys are all HMAC secrets. jose's HS256 goes through WebCrypto and costs
 * ~24 µs CPU per sign or verify under load; createHmac + timingSafeEqual costs 2-3 µs. Everything else stays on jose.
 *
 * This is a step-by-step copy of what jose 6's `jwtVerify` / `SignJWT` do for a compact HS256 JWS, in the same
 * order, so that it accepts and rejects exactly the same tokens with the same reason (test/hs256-differential.test.ts
 * compares the two over the attack suite and thousands of generated mutations). It reuses jose's own base64url
 * decoder (its quirks: padding and whitespace tolerated, trailing bits ignored) and the same strict UTF-8 decoder.
 */

type Claims = JWTPayload & { exp: number; iat: number; jti: string };
interface Hs256Verify {
  issuer?: string | string[];
  audience?: string | string[];
  clockTolerance: number;
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true });
const NON_ASCII = /[^\x00-\x7f]/;
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
/** Protected-header segments that passed every header check, by segment text: the checks are pure functions of it. */
const HEADER_CACHE_LIMIT = 64;
/**
 * Tokens whose signature matched, by their whole text, with their claims set as text: a client sends the same token
 * on every request until it is re-issued, and the HMAC (with its base64url and UTF-8 decoding) was the largest step
 * of a request in JWT mode. Only what is a pure function of the token's bytes and the ring is remembered; the
 * claims are parsed anew (so no request can change another's data) and checked against the clock on every use, so
 * expiry takes effect at once, and revocation is checked by the caller after this, as before. Bounded: the oldest
 * entry goes first.
 */
const VERIFIED_CACHE_LIMIT = 4096;

const malformed = (why: string) => new JwtInvalidError('malformed', why);
const claimFailed = (why: string) => new JwtInvalidError('claim', why);

/** jose's isObject: a plain object (JSON.parse only ever yields Object.prototype objects or arrays). */
const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function decodeSegment(value: string): Uint8Array {
  try {
    return base64url.decode(value);
  } catch {
    throw malformed('a token part is not base64url');
  }
}

function decodeText(bytes: Uint8Array, what: string): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw malformed(`the ${what} is not a JSON object`);
  }
}

function parseJsonText(text: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw malformed(`the ${what} is not a JSON object`);
  }
  if (!isPlainObject(parsed)) throw malformed(`the ${what} is not a JSON object`);
  return parsed;
}

const parseJson = (bytes: Uint8Array, what: string) => parseJsonText(decodeText(bytes, what), what);

interface HeaderVerdict {
  key: KeyObject;
  kid: string;
  b64: boolean;
}

/** Every kid of the ring must be HS256 (the caller checks); returns undefined otherwise. */
export function hs256Keys(keys: readonly RingKey[]): Map<string, KeyObject> | undefined {
  if (keys.length === 0 || keys.some((k) => k.alg !== 'HS256' || k.secretBytes === undefined)) return undefined;
  return new Map(keys.map((k) => [k.kid, createSecretKey(k.secretBytes!)]));
}

export function createHs256Verifier(keys: ReadonlyMap<string, KeyObject>): (token: string, o: Hs256Verify) => { payload: Claims; kid: string } {
  const headers = new Map<string, HeaderVerdict>();

  // jose's order: parseProtectedHeader, validateCrit, validateB64, alg present and allowed, an unencoded payload must
  // be ASCII, then the key resolver (checkHeader in ring.ts: no key-carrying headers, a known kid bound to the alg).
  function checkProtectedHeader(segment: string, payloadSegment: string): HeaderVerdict {
    const header = parseJson(decodeSegment(segment), 'header');
    let b64 = true;
    if (header.crit !== undefined) {
      const { crit } = header;
      if (!Array.isArray(crit) || crit.length === 0 || crit.some((p) => typeof p !== 'string' || p.length === 0))
        throw malformed('"crit" must be an array of non-empty strings');
      for (const p of crit as string[]) {
        if (p !== 'b64') throw new JwtInvalidError('alg', `extension header "${p}" is not recognized`);
        if (!Object.hasOwn(header, p) || header[p] === undefined) throw malformed(`extension header "${p}" is missing`);
      }
      if (crit.includes('b64')) {
        if (typeof header.b64 !== 'boolean') throw malformed('"b64" must be a boolean');
        b64 = header.b64;
      }
    }
    const { alg } = header;
    if (typeof alg !== 'string' || !alg) throw malformed('the "alg" header is missing');
    if (alg !== 'HS256') throw new JwtInvalidError('alg', '"alg" not allowed');
    if (!b64 && NON_ASCII.test(payloadSegment)) throw malformed('the payload is not ASCII');
    for (const name of FORBIDDEN_HEADERS)
      if (header[name] !== undefined) throw new JwtInvalidError('header', `the "${name}" header is not accepted: keys come from the key ring only`);
    const { kid } = header;
    if (typeof kid !== 'string') throw new JwtInvalidError('kid', 'the token has no "kid" header');
    const key = keys.get(kid);
    if (!key) throw new JwtInvalidError('kid', 'the token\'s "kid" is not in the key ring');
    return { key, kid, b64 };
  }

  const verified = new Map<string, { claims: string; kid: string }>();

  return function verifyHs256(token, o) {
    const known = verified.get(token);
    if (known !== undefined) return { payload: checkClaimsSet(parseJsonText(known.claims, 'claims set'), o), kid: known.kid };
    const parts = token.split('.');
    if (parts.length !== 3) throw malformed('not a compact JWS');
    const [h, p, s] = parts as [string, string, string];
    let verdict = headers.get(h);
    if (verdict === undefined) {
      // Only a header that passed is remembered; what passed depends on the segment alone (the payload check above
      // runs again below for every token), so a cached verdict gives the same answer as checking again.
      verdict = checkProtectedHeader(h, p);
      if (headers.size >= HEADER_CACHE_LIMIT) headers.delete(headers.keys().next().value!);
      headers.set(h, verdict);
    }
    // jose: the signing input must be ASCII (encodeAsciiMember), then the signature must decode, then match.
    if (NON_ASCII.test(p)) throw malformed('the payload is not ASCII');
    const signature = decodeSegment(s);
    const mac = createHmac('sha256', verdict.key).update(`${h}.${p}`).digest();
    if (signature.length !== mac.length || !timingSafeEqual(signature, mac))
      throw new JwtInvalidError('signature', 'the signature (or encryption tag) does not match');
    if (!verdict.b64) throw malformed('JWTs must not use an unencoded payload');
    const text = decodeText(decodeSegment(p), 'claims set');
    const payload = checkClaimsSet(parseJsonText(text, 'claims set'), o);
    // Remembered once it passed as a whole: a token refused for its claims (expired, say) is checked in full again.
    if (verified.size >= VERIFIED_CACHE_LIMIT) verified.delete(verified.keys().next().value!);
    verified.set(token, { claims: text, kid: verdict.kid });
    return { payload, kid: verdict.kid };
  };
}

/**
 * The claims jose requires, in the order it checks them: its requiredClaims (exp, iat, jti), then aud and iss when
 * configured, as a Set of the reversed list. Four fixed lists, built once instead of on every verify.
 */
const REQUIRED = [false, true].map((iss) => [false, true].map((aud) => [...(iss ? ['iss'] : []), ...(aud ? ['aud'] : []), 'jti', 'iat', 'exp'] as const));
const requiredClaims = (iss: boolean, aud: boolean) => REQUIRED[Number(iss)]![Number(aud)]!;

/** jose's validateClaimsSet with requiredClaims exp/iat/jti (+ iss/aud when configured), then checkClaims. */
function checkClaimsSet(claims: Record<string, unknown>, o: Hs256Verify): Claims {
  const { issuer, audience, clockTolerance } = o;
  for (const claim of requiredClaims(issuer !== undefined, audience !== undefined))
    if (!Object.hasOwn(claims, claim)) throw claimFailed(`missing required "${claim}" claim`);
  if (issuer !== undefined && !(Array.isArray(issuer) ? issuer : [issuer]).includes(claims.iss as string)) throw claimFailed('unexpected "iss" claim value');
  if (audience !== undefined) {
    const wanted = typeof audience === 'string' ? [audience] : audience;
    const aud = claims.aud;
    const ok = typeof aud === 'string' ? wanted.includes(aud) : Array.isArray(aud) ? wanted.some((a) => aud.includes(a)) : false;
    if (!ok) throw claimFailed('unexpected "aud" claim value');
  }
  const now = Math.floor(Date.now() / 1000);
  const numeric = (claim: string): number | undefined => {
    const value = claims[claim];
    if (value === undefined) return undefined;
    if (typeof value !== 'number') throw claimFailed(`"${claim}" claim must be a number`);
    return value;
  };
  numeric('iat');
  const nbf = numeric('nbf');
  if (nbf !== undefined && nbf > now + clockTolerance) throw claimFailed('"nbf" claim timestamp check failed');
  const exp = numeric('exp');
  if (exp !== undefined && exp <= now - clockTolerance) throw new JwtInvalidError('expired', 'the token has expired');
  // checkClaims (ring.ts), inlined to keep this module free of a cycle.
  if (typeof claims.exp !== 'number') throw claimFailed('the token has no "exp"');
  if (typeof claims.iat !== 'number') throw claimFailed('the token has no "iat"');
  if (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > 128) throw claimFailed('the token has no usable "jti"');
  return claims as Claims;
}

interface Hs256SignOptions {
  expiresAt: number;
  now: number;
  issuer?: string;
  audience?: string | string[];
  jti?: string;
}

/**
 * SignJWT({...claims}).setProtectedHeader({ alg, kid, typ }).setIssuedAt().setExpirationTime().setJti()[.setIssuer()
 * .setAudience()].sign(): the same bytes (test/hs256-differential.test.ts compares). Returns undefined for any
 * input jose would refuse, so the caller lets jose throw its own error.
 */
export function createHs256Signer(kid: string, secret: Uint8Array): (claims: JWTPayload, o: Hs256SignOptions, plain?: boolean) => string | undefined {
  const key = createSecretKey(secret);
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', kid, typ: 'JWT' })).toString('base64url');
  // `plain`: the caller built `claims` itself from JSON.parse output and numbers, so jose's structuredClone (1.4 µs,
  // the largest step) cannot change anything: a clone of plain JSON data serializes to the same text.
  return (claims, o, plain = false) => {
    const iat = typeof claims.iat === 'number' ? claims.iat : o.now;
    const jti = o.jti ?? (typeof claims.jti === 'string' ? claims.jti : randomUUID());
    if (!Number.isFinite(iat) || !Number.isFinite(o.expiresAt) || typeof jti !== 'string') return undefined;
    if (o.issuer !== undefined && typeof o.issuer !== 'string') return undefined;
    const { audience } = o;
    if (audience !== undefined && typeof audience !== 'string' && (!Array.isArray(audience) || audience.some((a) => typeof a !== 'string'))) return undefined;
    if (typeof claims.nbf === 'number' && !Number.isFinite(claims.nbf)) return undefined;
    let set: Record<string, unknown>;
    try {
      set = plain ? { ...claims } : (structuredClone({ ...claims }) as Record<string, unknown>);
    } catch {
      return undefined;
    }
    set.iat = iat;
    set.exp = o.expiresAt;
    set.jti = jti;
    if (o.issuer !== undefined) set.iss = o.issuer;
    if (audience !== undefined) set.aud = audience;
    const json = JSON.stringify(set);
    if (json === undefined) return undefined;
    const input = `${header}.${Buffer.from(json).toString('base64url')}`;
    return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
  };
}

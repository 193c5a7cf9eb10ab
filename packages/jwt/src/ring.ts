import { randomUUID } from 'node:crypto';
import { SignJWT, jwtVerify, type JWK, type JWTPayload, type JWSHeaderParameters } from 'jose';
import { seconds, type Duration } from './duration.ts';
import { JwtConfigError, JwtInvalidError } from './errors.ts';
import { createHs256Signer, createHs256Verifier, hs256Keys } from './hs256.ts';
import { buildKeys, publicJwk, type JwtAlgorithm, type KeyRingOptions, type RingKey } from './keys.ts';

export interface SignOptions {
  /** Lifetime; default 15 minutes. Ignored when `expiresAt` is given. */
  ttl?: Duration;
  /** Absolute expiry, in seconds since the epoch. */
  expiresAt?: number;
  issuer?: string;
  audience?: string | string[];
  /** Defaults to a random UUID. */
  jti?: string;
}

export interface VerifyOptions {
  /** When set, `iss` must equal it (or one of them). */
  issuer?: string | string[];
  /** When set, `aud` must contain it (or one of them). */
  audience?: string | string[];
  /** Leeway for exp/nbf between machines' clocks; default 5 s. */
  clockTolerance?: Duration;
  /** Tokens longer than this are refused before any parsing; default 8192 characters. */
  maxLength?: number;
}

export interface VerifiedToken {
  payload: JWTPayload & { exp: number; iat: number; jti: string };
  kid: string;
}

export interface KeyRing {
  /** Every kid, the signing one first. */
  readonly kids: readonly string[];
  /** The kid new tokens carry, or undefined for a verify-only ring (public keys only). */
  readonly signingKid: string | undefined;
  /** Public keys as a JWKS document, for services that verify with the public half. HMAC secrets are never included. */
  jwks(): { keys: JWK[] };
  /** Signs `claims` with the first key; sets iat, exp and jti (typ "JWT", kid in the header). */
  sign(claims: JWTPayload, options?: SignOptions): Promise<string>;
  /** Verifies a compact JWS; throws JwtInvalidError (with a `reason`) for every refusal. */
  verify(token: string, options?: VerifyOptions): Promise<VerifiedToken>;
}

/** Header parameters that would let a token choose its own key: refused outright (RFC 8725 §3.10). */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;
const DEFAULT_MAX_TOKEN_LENGTH = 8192;
const DEFAULT_CLOCK_TOLERANCE = 5;

type ResolvedVerify = ReturnType<typeof verifyOptions>;
const ringKeys = new WeakMap<KeyRing, readonly RingKey[]>();
const ringVerifiers = new WeakMap<KeyRing, (token: string, o: ResolvedVerify) => Promise<VerifiedToken>>();
type SyncVerifier = (token: string, o: ResolvedVerify) => VerifiedToken;
const ringSyncVerifiers = new WeakMap<KeyRing, SyncVerifier>();
type PlainClaims = JWTPayload & { iat: number; exp: number; jti: string };
type PlainSigner = (claims: PlainClaims, o: Pick<SignOptions, 'issuer' | 'audience'>) => Promise<string>;
const ringPlainSigners = new WeakMap<KeyRing, PlainSigner>();
/** The plain signer without a promise (an HS256 signing key): undefined for an input it leaves to jose. */
type SyncPlainSigner = (claims: PlainClaims, o: Pick<SignOptions, 'issuer' | 'audience'>) => string | undefined;
const ringSyncPlainSigners = new WeakMap<KeyRing, SyncPlainSigner>();

/**
 * sign() for claims the caller assembled from JSON data and numbers (the middleware's tokens): the same token
 * as ring.sign, minus the defensive structuredClone, which cannot change plain JSON data.
 */
export function plainSignerOf(ring: KeyRing): PlainSigner {
  return ringPlainSigners.get(ring) ?? ((claims, o) => ring.sign(claims, { ...o, expiresAt: claims.exp }));
}
/** plainSignerOf() without a promise, for a ring whose signing key is HS256 (node:crypto); undefined otherwise. */
export function syncPlainSignerOf(ring: KeyRing): SyncPlainSigner | undefined {
  return ringSyncPlainSigners.get(ring);
}

/** verify() with options parsed once by the caller (the middleware's hot path). */
export function verifierOf(ring: KeyRing): (token: string, o: ResolvedVerify) => Promise<VerifiedToken> {
  const verify = ringVerifiers.get(ring);
  if (verify) return verify;
  // A ring from elsewhere (duck-typed): only its public verify() is available.
  return (token, o) => ring.verify(token, o);
}
/**
 * The same verification without a promise, for a ring that needs none (all-HMAC: node:crypto, synchronous);
 * undefined otherwise. It throws where verify() rejects, with the same errors.
 */
export function syncVerifierOf(ring: KeyRing): SyncVerifier | undefined {
  return ringSyncVerifiers.get(ring);
}

/** The validated keys behind a ring (internal: used to derive encryption keys; never exported from the package). */
export function keysOf(ring: KeyRing): readonly RingKey[] {
  const keys = ringKeys.get(ring);
  if (!keys) throw new JwtConfigError('ring: expected a key ring from createKeyRing() or keyRingFromEnv().');
  return keys;
}

/** Maps jose's errors onto stable reasons; the message never contains the token. */
export function toInvalid(err: unknown): JwtInvalidError {
  if (err instanceof JwtInvalidError) return err;
  const e = err as { code?: string; claim?: string; message?: string };
  switch (e.code) {
    case 'ERR_JWT_EXPIRED':
      return new JwtInvalidError('expired', 'the token has expired', { cause: err });
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return new JwtInvalidError('claim', e.message ?? `claim ${e.claim} failed`, { cause: err });
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWE_DECRYPTION_FAILED':
      return new JwtInvalidError('signature', 'the signature (or encryption tag) does not match', { cause: err });
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return new JwtInvalidError('alg', e.message ?? 'algorithm not allowed', { cause: err });
    default:
      return new JwtInvalidError('malformed', 'not a well-formed token', { cause: err });
  }
}

/** Resolves the verification key from the ring only; the header may name a kid, never supply a key. */
export function checkHeader(header: JWSHeaderParameters, byKid: ReadonlyMap<string, { alg: string }>): string {
  for (const name of FORBIDDEN_HEADERS)
    if (header[name] !== undefined) throw new JwtInvalidError('header', `the "${name}" header is not accepted: keys come from the key ring only`);
  const { kid } = header;
  if (typeof kid !== 'string') throw new JwtInvalidError('kid', 'the token has no "kid" header');
  const key = byKid.get(kid);
  if (!key) throw new JwtInvalidError('kid', 'the token\'s "kid" is not in the key ring');
  if (header.alg !== key.alg) throw new JwtInvalidError('alg', `this kid is bound to ${key.alg}`);
  return kid;
}

/** Parses the shared verify options once (callers on the hot path keep the result). */
export function verifyOptions(options: VerifyOptions = {}): { clockTolerance: number; maxLength: number; issuer?: string | string[]; audience?: string | string[] } {
  const maxLength = options.maxLength ?? DEFAULT_MAX_TOKEN_LENGTH;
  if (!Number.isInteger(maxLength) || maxLength < 64) throw new JwtConfigError(`maxLength: expected an integer >= 64, got ${JSON.stringify(options.maxLength)}.`);
  const clockTolerance = seconds(options.clockTolerance ?? DEFAULT_CLOCK_TOLERANCE, 'clockTolerance', { allowZero: true });
  if (clockTolerance > 300) throw new JwtConfigError(`clockTolerance: ${clockTolerance} s is not small; use at most 300 s (default 5 s).`);
  return { clockTolerance, maxLength, issuer: options.issuer, audience: options.audience };
}

/** Checks the claims every session token carries, after the signature or decryption succeeded. */
export function checkClaims(payload: JWTPayload): asserts payload is JWTPayload & { exp: number; iat: number; jti: string } {
  if (typeof payload.exp !== 'number') throw new JwtInvalidError('claim', 'the token has no "exp"');
  if (typeof payload.iat !== 'number') throw new JwtInvalidError('claim', 'the token has no "iat"');
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 128)
    throw new JwtInvalidError('claim', 'the token has no usable "jti"');
}

/**
 * Builds a key ring from HMAC secrets or keys by kid. The first key signs; every key verifies, so rotation is:
 * add the new key first, keep the old one until its tokens have expired, then remove it.
 */
export function createKeyRing(options: KeyRingOptions, label?: string): KeyRing {
  const keys = buildKeys(options, label);
  const signer = keys[0]!.signKey ? keys[0] : undefined;
  // An all-HMAC ring (the `secret` option) verifies on node:crypto; any asymmetric key keeps the whole ring on jose.
  const hmacKeys = hs256Keys(keys);
  const hs256 = hmacKeys ? createHs256Verifier(hmacKeys) : undefined;
  const verifyToken = hs256 ?? joseVerifier(keys);
  const fastSign = signer?.alg === 'HS256' ? createHs256Signer(signer.kid, signer.secretBytes!) : undefined;

  const ring: KeyRing = {
    kids: keys.map((k) => k.kid),
    signingKid: signer?.kid,
    jwks: () => ({ keys: keys.filter((k) => k.publicKey !== undefined).map(publicJwk) }),
    async sign(claims, opts = {}) {
      if (!signer)
        throw new JwtConfigError(`sign: the first key of the ring (kid "${keys[0]!.kid}") has no private key or secret; this ring can only verify.`);
      const now = Math.floor(Date.now() / 1000);
      const exp = opts.expiresAt ?? now + seconds(opts.ttl ?? 900, 'ttl');
      const fast = fastSign?.(claims, { now, expiresAt: exp, issuer: opts.issuer, audience: opts.audience, jti: opts.jti });
      if (fast !== undefined) return fast;
      // Not HS256, or an input jose refuses: jose signs, or throws its own error.
      const jwt = new SignJWT({ ...claims })
        .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'JWT' })
        .setIssuedAt(typeof claims.iat === 'number' ? claims.iat : now)
        .setExpirationTime(exp)
        .setJti(opts.jti ?? (typeof claims.jti === 'string' ? claims.jti : randomUUID()));
      if (opts.issuer !== undefined) jwt.setIssuer(opts.issuer);
      if (opts.audience !== undefined) jwt.setAudience(opts.audience);
      return jwt.sign(signer.signKey!);
    },
    async verify(token, opts) {
      const o = verifyOptions(opts);
      return verifyWith(token, o);
    },
  };

  async function verifyWith(token: string, o: ResolvedVerify): Promise<VerifiedToken> {
    checkLength(token, o);
    return verifyToken(token, o);
  }

  ringKeys.set(ring, keys);
  ringVerifiers.set(ring, verifyWith);
  if (hs256)
    ringSyncVerifiers.set(ring, (token, o) => {
      checkLength(token, o);
      return hs256(token, o);
    });
  ringPlainSigners.set(ring, async (claims, o) => {
    const opts = { ...o, expiresAt: claims.exp };
    return fastSign?.(claims, { now: Math.floor(Date.now() / 1000), ...opts }, true) ?? ring.sign(claims, opts);
  });
  if (fastSign) ringSyncPlainSigners.set(ring, (claims, o) => fastSign(claims, { now: Math.floor(Date.now() / 1000), ...o, expiresAt: claims.exp }, true));
  return ring;
}

/** Refuses an absent or oversized token before any parsing (both verifiers). */
export function checkLength(token: unknown, o: { maxLength: number }): asserts token is string {
  if (typeof token !== 'string' || token.length === 0) throw new JwtInvalidError('malformed', 'no token');
  if (token.length > o.maxLength) throw new JwtInvalidError('too_large', `the token is over ${o.maxLength} characters`);
}

/**
 * Verification on jose (after the length checks): every ring with an asymmetric key, and the reference the HS256
 * fast path is compared against (test/hs256-differential.test.ts).
 */
export function joseVerifier(keys: readonly RingKey[]): (token: string, o: ResolvedVerify) => Promise<VerifiedToken> {
  const byKid = new Map(keys.map((k) => [k.kid, k]));
  const algorithms = [...new Set(keys.map((k) => k.alg))] as JwtAlgorithm[];
  return async (token, o) => {
    let kid = '';
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          kid = checkHeader(header, byKid);
          return byKid.get(kid)!.verifyKey;
        },
        { algorithms, issuer: o.issuer, audience: o.audience, clockTolerance: o.clockTolerance, requiredClaims: ['exp', 'iat', 'jti'] },
      );
      checkClaims(payload);
      return { payload, kid };
    } catch (err) {
      throw toInvalid(err);
    }
  };
}

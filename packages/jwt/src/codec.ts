import { createSecretKey, hkdfSync } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import { EncryptJWT, jwtDecrypt, type JWTPayload } from 'jose';
import { JwtConfigError, JwtInvalidError } from './errors.ts';
import { kidForSecret, MIN_SECRET_BYTES } from './keys.ts';
import {
  checkClaims,
  checkHeader,
  keysOf,
  plainSignerOf,
  syncPlainSignerOf,
  syncVerifierOf,
  toInvalid,
  verifierOf,
  verifyOptions,
  type KeyRing,
  type VerifiedToken,
  type VerifyOptions,
} from './ring.ts';

type WebCryptoKey = webcrypto.CryptoKey;

/**
 * `true`: encrypt with keys derived (HKDF-SHA256) from the ring's HMAC secrets, rotating with them.
 * `{ secret }`: dedicated 256-bit encryption secret(s); the first encrypts, all decrypt.
 */
export type EncryptOption = boolean | { secret: string | Uint8Array | readonly (string | Uint8Array)[] };

/** How the middleware turns claims into a token and back: signed (JWS) or encrypted (JWE dir + A256GCM). */
export interface TokenCodec {
  readonly encrypted: boolean;
  encode(claims: JWTPayload & { iat: number; exp: number; jti: string }): Promise<string>;
  decode(token: string): Promise<VerifiedToken>;
  /** decode() without a promise, when the keys allow it (an all-HMAC ring, not encrypted): throws where it rejects. */
  readonly decodeSync?: (token: string) => VerifiedToken;
  /** encode() without a promise, when the signing key allows it (HS256, not encrypted); undefined: use encode(). */
  readonly encodeSync?: (claims: JWTPayload & { iat: number; exp: number; jti: string }) => string | undefined;
}

interface CodecOptions extends VerifyOptions {
  issuer?: string;
  audience?: string;
  encrypt?: EncryptOption;
}

interface EncKey {
  kid: string;
  key: WebCryptoKey;
}

function deriveKey(secret: Uint8Array): WebCryptoKey {
  // A separate key per purpose: the HMAC secret itself never doubles as an AES key. Imported into WebCrypto once.
  const raw = Buffer.from(hkdfSync('sha256', secret, 'cluster-session/jwt', 'A256GCM session token', 32));
  return createSecretKey(raw).toCryptoKey({ name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt']) as WebCryptoKey;
}

function encryptionKeys(option: Exclude<EncryptOption, false>, ring: KeyRing): EncKey[] {
  if (option === true) {
    const hmac = keysOf(ring).filter((k) => k.secretBytes !== undefined);
    if (hmac.length === 0 || keysOf(ring)[0]!.secretBytes === undefined)
      throw new JwtConfigError(
        'encrypt: true derives the encryption key from the ring\'s HMAC secret, but the signing key is asymmetric. ' +
          'Pass encrypt: { secret: "<32+ random bytes>" } (e.g. from `openssl rand -base64 32`).',
      );
    return hmac.map((k) => ({ kid: `enc-${k.kid}`, key: deriveKey(k.secretBytes!) }));
  }
  if (typeof option !== 'object' || option === null || option.secret === undefined)
    throw new JwtConfigError('encrypt: expected true, false or { secret: string | string[] }.');
  const list = Array.isArray(option.secret) ? (option.secret as (string | Uint8Array)[]) : [option.secret as string | Uint8Array];
  if (list.length === 0) throw new JwtConfigError('encrypt.secret: the list is empty.');
  return list.map((s, i) => {
    const bytes = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    if (!(bytes instanceof Uint8Array) || bytes.byteLength < MIN_SECRET_BYTES)
      throw new JwtConfigError(`encrypt.secret[${i}]: needs at least ${MIN_SECRET_BYTES * 8} bits; generate one with \`openssl rand -base64 32\`.`);
    return { kid: kidForSecret(bytes, 'enc'), key: deriveKey(bytes) };
  });
}

export function createCodec(ring: KeyRing, options: CodecOptions = {}): TokenCodec {
  const o = verifyOptions(options);
  const { issuer, audience } = options;
  if (!options.encrypt) {
    if (ring.signingKid === undefined) throw new JwtConfigError('keys: the first key has no private key or secret, so sessions cannot be signed.');
    const verify = verifierOf(ring);
    const verifySync = syncVerifierOf(ring);
    const sign = plainSignerOf(ring);
    const signSync = syncPlainSignerOf(ring);
    return {
      encrypted: false,
      encode: (claims) => sign(claims, { issuer, audience }),
      decode: (token) => verify(token, o),
      ...(verifySync && { decodeSync: (token: string) => verifySync(token, o) }),
      ...(signSync && { encodeSync: (claims: JWTPayload & { iat: number; exp: number; jti: string }) => signSync(claims, { issuer, audience }) }),
    };
  }

  const keys = encryptionKeys(options.encrypt, ring);
  const byKid = new Map(keys.map((k) => [k.kid, { alg: 'dir', key: k.key }]));
  const current = keys[0]!;
  return {
    encrypted: true,
    encode(claims) {
      const jwt = new EncryptJWT({ ...claims })
        .setProtectedHeader({ alg: 'dir', enc: 'A256GCM', kid: current.kid, typ: 'JWT' })
        .setIssuedAt(claims.iat)
        .setExpirationTime(claims.exp)
        .setJti(claims.jti);
      if (issuer !== undefined) jwt.setIssuer(issuer);
      if (audience !== undefined) jwt.setAudience(audience);
      return jwt.encrypt(current.key);
    },
    async decode(token) {
      if (typeof token !== 'string' || token.length === 0) throw new JwtInvalidError('malformed', 'no token');
      if (token.length > o.maxLength) throw new JwtInvalidError('too_large', `the token is over ${o.maxLength} characters`);
      let kid = '';
      try {
        const { payload } = await jwtDecrypt(
          token,
          (header) => {
            if (header.zip !== undefined) throw new JwtInvalidError('header', 'compressed tokens are not accepted');
            kid = checkHeader(header, byKid);
            return byKid.get(kid)!.key;
          },
          {
            keyManagementAlgorithms: ['dir'],
            contentEncryptionAlgorithms: ['A256GCM'],
            issuer: o.issuer,
            audience: o.audience,
            clockTolerance: o.clockTolerance,
            requiredClaims: ['exp', 'iat', 'jti'],
          },
        );
        checkClaims(payload);
        return { payload, kid };
      } catch (err) {
        throw toInvalid(err);
      }
    },
  };
}

import { createHash, createPrivateKey, createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import type { webcrypto } from 'node:crypto';
import type { JWK } from 'jose';
import { JwtConfigError } from './errors.ts';

type WebCryptoKey = webcrypto.CryptoKey;

/** The only algorithms a ring accepts. Each kid is bound to exactly one of them, so HS/RS confusion cannot arise. */
export type JwtAlgorithm = 'EdDSA' | 'ES256' | 'RS256' | 'HS256';
const ALGORITHMS: readonly JwtAlgorithm[] = ['EdDSA', 'ES256', 'RS256', 'HS256'];

/** Key material: a PEM string, a JWK object, or a node:crypto KeyObject. */
export type KeyMaterial = string | JWK | KeyObject;

export interface KeyInput {
  kid: string;
  /** Required unless `privateKey`/`publicKey` is a JWK from which it can be inferred. */
  alg?: JwtAlgorithm;
  /** HS256: at least 32 bytes (256 bits). A string counts as its UTF-8 bytes. */
  secret?: string | Uint8Array;
  /** Asymmetric signing key (PEM PKCS#8 or JWK with `d`); its public half is derived. */
  privateKey?: KeyMaterial;
  /** Asymmetric verification-only key (PEM SPKI or public JWK): tokens of this kid verify but are never signed. */
  publicKey?: KeyMaterial;
}

export interface KeyRingOptions {
  /** One HMAC secret, or several: the first signs, all verify (rotation). Kids are derived from the secrets. */
  secret?: string | Uint8Array | readonly (string | Uint8Array)[];
  /** Keys by kid: the first one signs (it must hold a private key or secret), all verify. JWKs with `kid` also accepted. */
  keys?: readonly (KeyInput | JWK)[];
}

/** One entry of a ring. Inner code trusts these: they were validated when the ring was built. */
export interface RingKey {
  readonly kid: string;
  readonly alg: JwtAlgorithm;
  /** HMAC: the secret (as a WebCryptoKey, imported once); asymmetric: the private key. Absent for verify-only keys. */
  readonly signKey: KeyObject | WebCryptoKey | undefined;
  readonly verifyKey: KeyObject | WebCryptoKey;
  /** The public half of an asymmetric key, for jwks(). */
  readonly publicKey: KeyObject | undefined;
  /** Raw secret bytes of HMAC keys (for deriving an encryption key); never exported. */
  readonly secretBytes: Uint8Array | undefined;
}

export const MIN_SECRET_BYTES = 32;
const KID_RE = /^[A-Za-z0-9._:~-]{1,64}$/;

/** A kid derived from a secret: stable across processes, reveals nothing usable (a truncated hash of >= 256 bits). */
export function kidForSecret(secret: Uint8Array, prefix = 'hs'): string {
  return `${prefix}-${createHash('sha256').update('cluster-session/jwt kid\0').update(secret).digest('base64url').slice(0, 12)}`;
}

/**
 * jose re-imports a raw HMAC secret into WebCrypto on every call; a WebCryptoKey imported once skips that (it is the
 * difference between ~6k and ~14k verified requests/s on one core).
 */
function hmacKey(bytes: Uint8Array): WebCryptoKey {
  return createSecretKey(bytes).toCryptoKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']) as WebCryptoKey;
}

function secretBytes(value: string | Uint8Array, where: string): Uint8Array {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (!(bytes instanceof Uint8Array) || (typeof value === 'string' && value.length === 0))
    throw new JwtConfigError(`${where}: an HMAC secret must be a non-empty string or Uint8Array.`);
  if (bytes.byteLength < MIN_SECRET_BYTES)
    throw new JwtConfigError(
      `${where}: the HMAC secret is ${bytes.byteLength * 8} bits; at least ${MIN_SECRET_BYTES * 8} bits are required. ` +
        'Generate one with `openssl rand -base64 32` (or node -e "console.log(crypto.randomBytes(32).toString(\'base64url\'))").',
    );
  return bytes;
}

function inferAlg(jwk: JWK): JwtAlgorithm | undefined {
  if (jwk.kty === 'oct') return 'HS256';
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  if (jwk.kty === 'RSA') return 'RS256';
  return undefined;
}

const isJwk = (v: unknown): v is JWK => typeof v === 'object' && v !== null && typeof (v as JWK).kty === 'string';
const isKeyObject = (v: unknown): v is KeyObject => (v as KeyObject | null)?.[Symbol.toStringTag as never] === 'KeyObject';

function toKeyObject(material: KeyMaterial, kind: 'private' | 'public', where: string): KeyObject {
  try {
    if (isKeyObject(material)) {
      if (material.type !== kind) throw new Error(`a ${material.type} KeyObject was given`);
      return material;
    }
    if (typeof material === 'string') {
      if (!material.includes('-----BEGIN')) throw new Error('a string key must be PEM');
      return kind === 'private' ? createPrivateKey(material) : createPublicKey(material);
    }
    if (isJwk(material)) {
      if (kind === 'public' && material.d !== undefined) throw new Error('a private JWK was given as publicKey');
      return kind === 'private'
        ? createPrivateKey({ key: material as never, format: 'jwk' })
        : createPublicKey({ key: material as never, format: 'jwk' });
    }
    throw new Error('expected a PEM string, a JWK object or a KeyObject');
  } catch (err) {
    throw new JwtConfigError(`${where}: cannot read the ${kind} key (${(err as Error).message}). ` +
      `Give ${kind === 'private' ? 'a PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----") or a private JWK' : 'an SPKI PEM ("-----BEGIN PUBLIC KEY-----") or a public JWK'}.`);
  }
}

/** Refuses a key whose type does not fit its alg: this is what keeps each kid to one algorithm family. */
function checkKeyType(key: KeyObject, alg: JwtAlgorithm, where: string): void {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const ok =
    (alg === 'EdDSA' && type === 'ed25519') ||
    (alg === 'ES256' && type === 'ec' && details.namedCurve === 'prime256v1') ||
    (alg === 'RS256' && type === 'rsa');
  const want = { EdDSA: 'an Ed25519 key', ES256: 'an EC P-256 key', RS256: 'an RSA key', HS256: 'a secret' }[alg];
  if (!ok) throw new JwtConfigError(`${where}: alg ${alg} needs ${want}, got a ${type}${details.namedCurve ? ` ${details.namedCurve}` : ''} key.`);
  if (alg === 'RS256' && (details.modulusLength ?? 0) < 2048)
    throw new JwtConfigError(`${where}: the RSA key is ${details.modulusLength} bits; RS256 needs at least 2048 bits.`);
}

function normalizeEntry(entry: KeyInput | JWK, where: string): KeyInput {
  if (!isJwk(entry)) return entry;
  // A bare JWK: private part (`d`, or `k` for oct) makes it a signing key.
  const alg = (entry.alg as JwtAlgorithm | undefined) ?? inferAlg(entry);
  if (entry.kty === 'oct') {
    if (typeof entry.k !== 'string') throw new JwtConfigError(`${where}: an "oct" JWK needs "k" (the base64url secret).`);
    return { kid: entry.kid as string, alg: alg as JwtAlgorithm, secret: Buffer.from(entry.k, 'base64url') };
  }
  return entry.d !== undefined
    ? { kid: entry.kid as string, alg: alg as JwtAlgorithm, privateKey: entry }
    : { kid: entry.kid as string, alg: alg as JwtAlgorithm, publicKey: entry };
}

function buildKey(input: KeyInput | JWK, where: string): RingKey {
  if (typeof input !== 'object' || input === null) throw new JwtConfigError(`${where}: expected a key object { kid, alg, secret | privateKey | publicKey }.`);
  const entry = normalizeEntry(input, where);
  const { kid } = entry;
  if (typeof kid !== 'string' || !KID_RE.test(kid))
    throw new JwtConfigError(`${where}: "kid" must be 1-64 characters of A-Z a-z 0-9 . _ : ~ -, got ${JSON.stringify(kid)}.`);
  const at = `${where} (kid "${kid}")`;
  let alg = entry.alg;
  if (alg === undefined) {
    const material = entry.privateKey ?? entry.publicKey;
    alg = entry.secret !== undefined ? 'HS256' : isJwk(material) ? inferAlg(material) : undefined;
  }
  if (alg === undefined || !ALGORITHMS.includes(alg))
    throw new JwtConfigError(`${at}: "alg" must be one of ${ALGORITHMS.join(', ')}, got ${JSON.stringify(entry.alg)}.`);
  const given = [entry.secret, entry.privateKey, entry.publicKey].filter((v) => v !== undefined).length;
  if (given !== 1) throw new JwtConfigError(`${at}: give exactly one of "secret" (HS256), "privateKey" or "publicKey".`);

  if (alg === 'HS256') {
    if (entry.secret === undefined) throw new JwtConfigError(`${at}: HS256 needs "secret", not a private/public key.`);
    const bytes = secretBytes(entry.secret, at);
    const key = hmacKey(bytes);
    return { kid, alg, signKey: key, verifyKey: key, publicKey: undefined, secretBytes: bytes };
  }
  if (entry.secret !== undefined) throw new JwtConfigError(`${at}: ${alg} needs "privateKey" or "publicKey", not "secret".`);
  if (entry.privateKey !== undefined) {
    const priv = toKeyObject(entry.privateKey, 'private', at);
    checkKeyType(priv, alg, at);
    const pub = createPublicKey(priv);
    return { kid, alg, signKey: priv, verifyKey: pub, publicKey: pub, secretBytes: undefined };
  }
  const pub = toKeyObject(entry.publicKey as KeyMaterial, 'public', at);
  checkKeyType(pub, alg, at);
  return { kid, alg, signKey: undefined, verifyKey: pub, publicKey: pub, secretBytes: undefined };
}

/** Validates ring options into keys (first = signer). `label` names the option or env variable in errors. */
export function buildKeys(options: KeyRingOptions, label = 'keys'): RingKey[] {
  if (typeof options !== 'object' || options === null) throw new JwtConfigError('createKeyRing: pass { secret } or { keys }.');
  const { secret, keys } = options;
  if ((secret === undefined) === (keys === undefined))
    throw new JwtConfigError(`createKeyRing: pass exactly one of "secret" (HMAC) or "keys" (by kid); got ${secret === undefined ? 'neither' : 'both'}.`);
  let out: RingKey[];
  if (secret !== undefined) {
    const list = Array.isArray(secret) ? (secret as readonly (string | Uint8Array)[]) : [secret as string | Uint8Array];
    if (list.length === 0) throw new JwtConfigError(`${label === 'keys' ? 'secret' : label}: the list of secrets is empty.`);
    out = list.map((s, i) => {
      const where = label === 'keys' ? `secret[${i}]` : `${label} (secret #${i + 1})`;
      const bytes = secretBytes(s, where);
      const key = hmacKey(bytes);
      return { kid: kidForSecret(bytes), alg: 'HS256' as const, signKey: key, verifyKey: key, publicKey: undefined, secretBytes: bytes };
    });
  } else {
    if (!Array.isArray(keys) || keys.length === 0) throw new JwtConfigError(`${label}: give at least one key { kid, alg, ... }.`);
    out = keys.map((k, i) => buildKey(k, `${label}[${i}]`));
  }
  const seen = new Set<string>();
  for (const k of out) {
    if (seen.has(k.kid)) throw new JwtConfigError(`${label}: kid "${k.kid}" appears twice; each kid must name one key.`);
    seen.add(k.kid);
  }
  return out;
}

/** Public JWK of an asymmetric key, for a JWKS document. */
export function publicJwk(key: RingKey): JWK {
  const jwk = key.publicKey!.export({ format: 'jwk' }) as JWK;
  return { ...jwk, kid: key.kid, alg: key.alg, use: 'sig' };
}

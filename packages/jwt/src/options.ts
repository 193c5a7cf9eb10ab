import type { IncomingMessage } from 'node:http';
import { createCodec, type EncryptOption, type TokenCodec } from './codec.ts';
import { resolveCookie, type CookieOptions, type ResolvedCookie } from './cookie.ts';
import type { DenyList } from './deny-list.ts';
import { seconds, type Duration } from './duration.ts';
import { JwtConfigError } from './errors.ts';
import type { KeyRingOptions } from './keys.ts';
import { createKeyRing, type KeyRing } from './ring.ts';

export interface JwtSessionOptions {
  /** A key ring from createKeyRing()/keyRingFromEnv(). Or give `keys` or `secret` instead. */
  ring?: KeyRing;
  /** Keys by kid (see createKeyRing); a KeyRing is accepted here too. */
  keys?: KeyRingOptions['keys'] | KeyRing;
  /** HMAC secret(s), >= 32 bytes each; the first signs. */
  secret?: KeyRingOptions['secret'];
  /** Token lifetime, renewed (sliding) once half of it has passed. Default 30 minutes. */
  ttl?: Duration;
  /** Absolute session lifetime from login (regenerate), whatever the renewals. Default 24 hours. */
  maxAge?: Duration;
  cookie?: CookieOptions;
  /** Set as `iss` on issue and required on verify. */
  issuer?: string;
  /** Set as `aud` on issue and required on verify. */
  audience?: string;
  /** Encrypt tokens (JWE dir + A256GCM) so the client cannot read the session data. */
  encrypt?: EncryptOption;
  /** Revocation of logged-out tokens: checked on every request that carries a token. */
  denyList?: DenyList;
  /** How long a deny-list call may take before the request gets a 503; default 1000 ms. */
  denyListTimeout?: number;
  /** Trust X-Forwarded-Proto for cookie.secure 'auto'. Default: Express's req.secure when present, else TLS only. */
  trustProxy?: boolean;
  /** Leeway for exp/nbf between clocks; default 5 s, at most 300 s. */
  clockTolerance?: Duration;
  /** Accept `Authorization: Bearer <token>` (answered with the token header). Default true. */
  bearer?: boolean;
  /** Response header that carries new tokens to bearer clients (and the request header that opts in). Default "x-session-token". */
  tokenHeader?: string;
  /** Bearer token size limit, characters; default 8192. */
  maxTokenLength?: number;
  /** Errors the app cannot catch itself (a failed implicit save, a failed deny-list write). Default: one line on stderr. */
  onError?: (err: Error, req: IncomingMessage) => void;
}

export interface ResolvedOptions {
  ring: KeyRing;
  codec: TokenCodec;
  ttl: number;
  maxAge: number;
  cookie: ResolvedCookie;
  denyList: DenyList | undefined;
  denyListTimeout: number;
  trustProxy: boolean | undefined;
  clockTolerance: number;
  bearer: boolean;
  tokenHeader: string;
  maxTokenLength: number;
  onError: (err: Error, req: IncomingMessage) => void;
}

const KNOWN = new Set([
  'ring', 'keys', 'secret', 'ttl', 'maxAge', 'cookie', 'issuer', 'audience', 'encrypt', 'denyList', 'denyListTimeout',
  'trustProxy', 'clockTolerance', 'bearer', 'tokenHeader', 'maxTokenLength', 'onError',
]);

const isRing = (v: unknown): v is KeyRing =>
  typeof v === 'object' && v !== null && typeof (v as KeyRing).verify === 'function' && typeof (v as KeyRing).jwks === 'function';

function defaultOnError(err: Error): void {
  // Codes and sizes only: messages of this package never carry secrets or tokens.
  console.error(`@cluster-session/jwt: ${(err as { code?: string }).code ?? err.name}: ${err.message}`);
}

/** Validates every option once, where they enter; the request path trusts the result. */
export function resolveOptions(options: JwtSessionOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new JwtConfigError('jwtSession: expected an options object with ring, keys or secret.');
  for (const key of Object.keys(options))
    if (!KNOWN.has(key)) throw new JwtConfigError(`jwtSession: unknown option "${key}"; known options are ${[...KNOWN].join(', ')}.`);

  const sources = [options.ring, options.keys, options.secret].filter((v) => v !== undefined);
  if (sources.length !== 1) throw new JwtConfigError('jwtSession: give exactly one of "ring", "keys" or "secret" (or use keyRingFromEnv() with JWT_SECRET / JWT_KEYS).');
  let ring: KeyRing;
  if (options.ring !== undefined) {
    if (!isRing(options.ring)) throw new JwtConfigError('ring: expected a key ring from createKeyRing() or keyRingFromEnv().');
    ring = options.ring;
  } else if (isRing(options.keys)) ring = options.keys;
  else ring = options.keys !== undefined ? createKeyRing({ keys: options.keys }) : createKeyRing({ secret: options.secret });

  const ttl = seconds(options.ttl ?? 1800, 'ttl');
  const maxAge = seconds(options.maxAge ?? 86400, 'maxAge');
  if (maxAge < ttl) throw new JwtConfigError(`maxAge: ${maxAge} s is shorter than ttl (${ttl} s); set maxAge >= ttl.`);
  for (const name of ['issuer', 'audience'] as const) {
    const v = options[name];
    if (v !== undefined && (typeof v !== 'string' || v.length === 0)) throw new JwtConfigError(`${name}: expected a non-empty string, got ${JSON.stringify(v)}.`);
  }
  const maxTokenLength = options.maxTokenLength ?? 8192;
  const codec = createCodec(ring, {
    issuer: options.issuer,
    audience: options.audience,
    clockTolerance: options.clockTolerance,
    maxLength: maxTokenLength,
    encrypt: options.encrypt,
  });

  const { denyList } = options;
  if (denyList !== undefined && (typeof denyList?.add !== 'function' || typeof denyList?.has !== 'function'))
    throw new JwtConfigError('denyList: expected an object with add(jti, expiresAtMs) and has(jti), both returning promises.');
  const denyListTimeout = options.denyListTimeout ?? 1000;
  if (!Number.isInteger(denyListTimeout) || denyListTimeout < 1 || denyListTimeout > 60_000)
    throw new JwtConfigError(`denyListTimeout: expected milliseconds between 1 and 60000, got ${JSON.stringify(options.denyListTimeout)}.`);
  for (const name of ['trustProxy', 'bearer'] as const) {
    const v = options[name];
    if (v !== undefined && typeof v !== 'boolean') throw new JwtConfigError(`${name}: expected true or false, got ${JSON.stringify(v)}.`);
  }
  const tokenHeader = (options.tokenHeader ?? 'x-session-token').toLowerCase();
  if (!/^[a-z0-9-]+$/.test(tokenHeader) || tokenHeader === 'authorization' || tokenHeader === 'cookie' || tokenHeader === 'set-cookie')
    throw new JwtConfigError(`tokenHeader: ${JSON.stringify(options.tokenHeader)} is not a usable header name; use e.g. "x-session-token".`);
  if (options.onError !== undefined && typeof options.onError !== 'function') throw new JwtConfigError('onError: expected a function (err, req) => void.');

  return {
    ring,
    codec,
    ttl,
    maxAge,
    cookie: resolveCookie(options.cookie),
    denyList,
    denyListTimeout,
    trustProxy: options.trustProxy,
    clockTolerance: seconds(options.clockTolerance ?? 5, 'clockTolerance', { allowZero: true }),
    bearer: options.bearer ?? true,
    tokenHeader,
    maxTokenLength,
    onError: options.onError ?? defaultOnError,
  };
}

import type { IncomingMessage } from 'node:http';
import { cookieSchema, fail, parseOptions, words, type Frozen, type OptionMeta } from '@cluster-session/core';
import * as v from 'valibot';
import { createCodec, type EncryptOption, type TokenCodec } from './codec.ts';
import type { ResolvedCookie } from './cookie.ts';
import type { DenyList } from './deny-list.ts';
import { durationSchema } from './duration.ts';
import { JwtConfigError } from './errors.ts';
import type { KeyRingOptions } from './keys.ts';
import { createKeyRing, type KeyRing } from './ring.ts';

const isRing = (v: unknown): v is KeyRing =>
  typeof v === 'object' && v !== null && typeof (v as KeyRing).verify === 'function' && typeof (v as KeyRing).jwks === 'function';
const isDenyList = (v: unknown): v is DenyList =>
  typeof v === 'object' && v !== null && typeof (v as DenyList).add === 'function' && typeof (v as DenyList).has === 'function';
const DURATION = 'seconds, or a duration with its unit like "15m", "12h", "7d"';

/** The cookie of cookie transport; its rules are the session package's too (core's cookieSchema). */
const cookieOptions = cookieSchema('session', {
  /** false lets page script read the token: only for apps that need it (as express-session's cookie.httpOnly). */
  httpOnly: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'true' })), true),
});
/** An object the app hands in, checked by `ok` and passed through as it is. */
const given = <T>(ok: (x: unknown) => boolean, said: OptionMeta) => v.optional(v.pipe(v.custom<T>(ok), words(said)));

/** Every option of jwtSession(), described once: the types, defaults and error words derive from here. */
const schema = v.strictObject({
  /** A key ring from createKeyRing()/keyRingFromEnv(). Or give `keys` or `secret` instead. */
  ring: given<KeyRing>(isRing, { allowed: 'a key ring from createKeyRing() or keyRingFromEnv()', secret: true }),
  /** Keys by kid (see createKeyRing); a KeyRing is accepted here too. */
  keys: given<KeyRingOptions['keys'] | KeyRing>((x) => typeof x === 'object' && x !== null, {
    allowed: 'keys by kid: [{ kid, alg, secret | privateKey | publicKey }, ...] (see createKeyRing)',
    secret: true,
  }),
  /** HMAC secret(s), >= 32 bytes each; the first signs. */
  secret: given<NonNullable<KeyRingOptions['secret']>>((x) => x !== undefined, { allowed: 'an HMAC secret of at least 32 bytes, or a list of them', secret: true }),
  /** Token lifetime, renewed (sliding) once half of it has passed. Default 30 minutes. Old name: `ttl`. */
  ttlSeconds: v.optional(v.pipe(durationSchema(), words({ allowed: DURATION, example: "'30m'" })), 1800),
  /** Absolute session lifetime from login (regenerate), whatever the renewals. Default 24 hours. Old name: `maxAge`. */
  maxAgeSeconds: v.optional(v.pipe(durationSchema(), words({ allowed: DURATION, example: "'24h'" })), 86_400),
  cookie: cookieOptions,
  /** Set as `iss` on issue and required on verify. */
  issuer: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a non-empty string', example: "'https://app.example.com'" }))),
  /** Set as `aud` on issue and required on verify. */
  audience: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a non-empty string', example: "'app'" }))),
  /** Encrypt tokens (JWE dir + A256GCM) so the client cannot read the session data (validated with the ring). */
  encrypt: given<EncryptOption>((x) => typeof x === 'boolean' || (typeof x === 'object' && x !== null), { allowed: 'true, false or { secret: string | string[] }', secret: true }),
  /** Revocation of logged-out tokens: checked on every request that carries a token. */
  denyList: given<DenyList>(isDenyList, { allowed: 'an object with add(jti, expiresAtMs) and has(jti), both returning promises', example: 'createMemoryDenyList()' }),
  /** How long a deny-list call may take before the request gets a 503, in ms. */
  denyListTimeout: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(60_000), words({ allowed: 'milliseconds from 1 to 60000', example: '1000' })),
    1000,
  ),
  /** Re-issue the token (a fresh expiry) on every response of a session that has one, as express-session's rolling. */
  rolling: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'true' })), false),
  /** Trust X-Forwarded-Proto for cookie.secure 'auto'. Default: Express's req.secure when present, else TLS only. */
  trustProxy: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'true' }))),
  /** Leeway for exp/nbf between clocks; default 5 s, at most 300 s. Old name: `clockTolerance`. */
  clockToleranceSeconds: v.optional(v.pipe(durationSchema({ allowZero: true, max: 300 }), words({ allowed: `${DURATION}, at most 300 s`, example: '5' })), 5),
  /** Accept `Authorization: Bearer <token>` (answered with the token header). Default true. */
  bearer: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'false' })), true),
  /** Response header that carries new tokens to bearer clients (and the request header that opts in). */
  tokenHeader: v.optional(
    v.pipe(
      v.string(),
      v.toLowerCase(),
      v.regex(/^[a-z0-9-]+$/),
      v.check((h) => !['authorization', 'cookie', 'set-cookie'].includes(h)),
      words({ allowed: 'a header name of letters, digits and "-", other than authorization, cookie and set-cookie', example: "'x-session-token'" }),
    ),
    'x-session-token',
  ),
  /** Bearer token size limit, characters. */
  maxTokenLength: v.optional(v.pipe(v.number(), v.integer(), v.minValue(64), words({ allowed: 'an integer >= 64', example: '8192' })), 8192),
  /** Errors the app cannot catch itself (a failed implicit save, a failed deny-list write). Default: one line on stderr. */
  onError: given<(err: Error, req: IncomingMessage) => void>((f) => typeof f === 'function', { allowed: 'a function (err, req) => void' }),
});

type Input = v.InferInput<typeof schema>;
/** What jwtSession() accepts. */
export type JwtSessionOptions = Input & {
  /** @deprecated the old name of ttlSeconds. */
  ttl?: Input['ttlSeconds'];
  /** @deprecated the old name of maxAgeSeconds. */
  maxAge?: Input['maxAgeSeconds'];
  /** @deprecated the old name of clockToleranceSeconds. */
  clockTolerance?: Input['clockToleranceSeconds'];
};
export type CookieOptions = v.InferInput<typeof cookieOptions>;

/** Old option names, kept as documented aliases. */
const ALIASES = { ttl: 'ttlSeconds', maxAge: 'maxAgeSeconds', clockTolerance: 'clockToleranceSeconds' };

export interface ResolvedOptions {
  ring: KeyRing;
  codec: TokenCodec;
  ttl: number;
  maxAge: number;
  cookie: ResolvedCookie;
  denyList: DenyList | undefined;
  denyListTimeout: number;
  rolling: boolean;
  trustProxy: boolean | undefined;
  clockTolerance: number;
  bearer: boolean;
  tokenHeader: string;
  maxTokenLength: number;
  onError: (err: Error, req: IncomingMessage) => void;
}

function defaultOnError(err: Error): void {
  // Codes and sizes only: messages of this package never carry secrets or tokens.
  console.error(`@cluster-session/jwt: ${(err as { code?: string }).code ?? err.name}: ${err.message}`);
}

const SAME_SITE = { lax: 'Lax', strict: 'Strict', none: 'None', auto: 'auto' } as const;
const ctx = { where: 'jwtSession', error: JwtConfigError };

/** Validates every option once, where they enter; the request path trusts the result. */
export function resolveOptions(options: JwtSessionOptions): Frozen<ResolvedOptions> {
  const o = parseOptions(schema, options, ctx, { aliases: ALIASES });
  const sources = [o.ring, o.keys, o.secret].filter((v) => v !== undefined).length;
  if (sources !== 1) {
    throw new JwtConfigError(
      `jwtSession: give exactly one of ring, keys or secret (got ${sources}). Fix: pass one of them, or a ring from keyRingFromEnv() (JWT_SECRET / JWT_KEYS).`,
    );
  }
  const keys = o.keys as KeyRingOptions['keys'] | KeyRing | undefined;
  const ring = o.ring ?? (isRing(keys) ? keys : keys !== undefined ? createKeyRing({ keys }) : createKeyRing({ secret: o.secret }));
  if (o.maxAgeSeconds < o.ttlSeconds) {
    fail(ctx, { option: 'maxAgeSeconds', value: o.maxAgeSeconds, allowed: `seconds, at least ttlSeconds (${o.ttlSeconds})`, fix: 'raise maxAgeSeconds or lower ttlSeconds' });
  }
  const codec = createCodec(ring, {
    issuer: o.issuer,
    audience: o.audience,
    clockTolerance: o.clockToleranceSeconds,
    maxLength: o.maxTokenLength,
    encrypt: o.encrypt,
  });
  return Object.freeze({
    ring,
    codec,
    ttl: o.ttlSeconds,
    maxAge: o.maxAgeSeconds,
    cookie: Object.freeze({ ...o.cookie, sameSite: o.cookie.sameSite === false ? false : SAME_SITE[o.cookie.sameSite], domain: o.cookie.domain, priority: o.cookie.priority }),
    denyList: o.denyList,
    denyListTimeout: o.denyListTimeout,
    rolling: o.rolling,
    trustProxy: o.trustProxy,
    clockTolerance: o.clockToleranceSeconds,
    bearer: o.bearer,
    tokenHeader: o.tokenHeader,
    maxTokenLength: o.maxTokenLength,
    onError: o.onError ?? defaultOnError,
  });
}

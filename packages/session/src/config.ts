import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { COOKIE_NAME, cookieSchema, fail, parseOptions, prefixProblem, words, WORKER_ENV, type Frozen, type OptionMeta } from '@cluster-session/core';
import type { Request } from 'express';
import { MemoryStore, type Store } from 'express-session';
import * as v from 'valibot';
import { ConfigError } from './errors.ts';
import { checkMongoUrl } from './stores/mongo-url.ts';
import { resolveRedisTarget, type RedisTarget } from './stores/redis-url.ts';
import { redactUrl } from './stores/url.ts';

/** Where log lines go. Secrets are never passed to it. */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

export type StoreName = 'redis' | 'mongo' | 'sqlite' | 'memory' | 'custom';
export type Env = Readonly<Record<string, string | undefined>>;

/** A string or, as express-session takes it, a Buffer (cookie-signature signs with any HMAC key). */
const anySecret = v.union([v.pipe(v.string(), v.minLength(1)), v.pipe(v.instance(Buffer), v.check((b) => b.length > 0))]);

/** An express-session Store instance (connect-pg-simple, a DynamoDB store, the app's own, express-session's MemoryStore). */
const isStoreInstance = (s: unknown): s is Store =>
  typeof s === 'object' && s !== null && ['get', 'set', 'destroy'].every((m) => typeof (s as Record<string, unknown>)[m] === 'function');
const int = (min: number, max: number, said: OptionMeta) => v.pipe(v.number(), v.integer(), v.minValue(min), v.maxValue(max), words(said));
const bool = (example: string) => v.pipe(v.boolean(), words({ allowed: 'true or false', example }));

const storeSchema = v.optional(
  v.pipe(
    v.union([
      v.picklist(['redis', 'mongo', 'sqlite', 'memory']),
      v.variant('type', [
        v.strictObject({
          type: v.literal('redis'),
          // Checked part by part in resolveStore (stores/redis-url.ts), so that an error names the wrong part.
          url: v.optional(
            v.pipe(v.string(), words({ allowed: 'a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL', example: "'redis+sentinel://10.0.0.1,10.0.0.2,10.0.0.3/mymaster'" })),
          ),
          clusterNodes: v.optional(
            v.pipe(v.union([v.string(), v.array(v.string())]), words({ allowed: "Redis Cluster seeds, 'host:port,host:port' or a list", example: "['10.0.0.1:6379', '10.0.0.2:6379']" })),
          ),
          options: v.optional(v.pipe(v.record(v.string(), v.unknown()), words({ allowed: 'ioredis options', example: '{ db: 1 }' }))),
          client: v.optional(v.unknown()),
        }),
        v.strictObject({
          type: v.literal('mongo'),
          // Checked part by part in resolveStore (stores/mongo-url.ts), so that an error names the wrong part.
          url: v.optional(v.pipe(v.string(), words({ allowed: 'a mongodb:// or mongodb+srv:// URL', example: "'mongodb://127.0.0.1:27017/app'" }))),
          client: v.optional(v.unknown()),
          dbName: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a database name', example: "'app'" }))),
        }),
        v.strictObject({
          type: v.literal('sqlite'),
          path: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a file path', example: "'.data/sessions.sqlite'" }))),
        }),
        v.strictObject({ type: v.literal('memory') }),
      ]),
      v.custom<Store>(isStoreInstance),
    ]),
    words({
      env: 'SESSION_STORE',
      allowed: "'redis', 'mongo', 'sqlite', 'memory', or { type, url | client | path } (in code also an express-session Store instance)",
      example: "'sqlite'",
    }),
  ),
  'sqlite',
);

const cookieOptions = cookieSchema('sid', {
  httpOnly: v.optional(bool('true'), true),
  /** express-session's cookie lifetime in ms; null: a browser-session cookie (no Max-Age/Expires). Sets ttlSeconds. */
  maxAge: v.optional(
    v.pipe(
      v.nullable(v.pipe(v.number(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER))),
      words({ allowed: 'milliseconds (at least 1), or null for a browser-session cookie', example: '86400000' }),
    ),
  ),
  /** express-session's fixed expiry date of every session cookie (prefer maxAge). */
  expires: v.optional(v.pipe(v.date(), words({ allowed: 'a Date', example: "new Date('2030-01-01')" }))),
});

/** Every option of clusterSession(), described once: types, defaults, env variables and error words derive from it. */
const schema = v.strictObject({
  mode: v.optional(v.pipe(v.picklist(['store', 'jwt']), words({ env: 'SESSION_MODE', allowed: "'store' or 'jwt'", example: "'jwt'" })), 'store'),
  store: storeSchema,
  /** One secret, or a list (the first signs, all verify) to rotate without logging anyone out; strings or Buffers. */
  secret: v.optional(
    v.pipe(
      // At least 16 characters unless allowWeakSecret: checked in resolveConfig, which knows both options.
      v.union([anySecret, v.pipe(v.array(anySecret), v.minLength(1))]),
      words({
        env: 'SESSION_SECRET',
        envType: 'list',
        allowed: 'a string (or Buffer) of at least 16 characters, or a non-empty list of them (comma-separated in the env)',
        secret: true,
        fix: 'set SESSION_SECRET to a random string of at least 32 characters (`openssl rand -base64 48`)',
      }),
    ),
  ),
  /** Session lifetime in seconds (cookie Max-Age and store expiry agree). Old name: `ttl`. */
  ttlSeconds: v.optional(
    int(1, Number.MAX_SAFE_INTEGER, { env: 'SESSION_TTL', envType: 'int', allowed: 'a whole number of seconds, at least 1', example: '86400' }),
    86_400,
  ),
  cookie: cookieOptions,
  /** Trust X-Forwarded-Proto for `secure: 'auto'`; unset = follow Express's `trust proxy` setting. */
  trustProxy: v.optional(bool('true')),
  /** Re-send the cookie and extend the store expiry on every response. */
  rolling: v.optional(bool('true'), false),
  /** express-session's `name`: the cookie name (same as cookie.name; give one of them). */
  name: v.optional(v.pipe(v.string(), v.regex(COOKIE_NAME), words({ allowed: 'a cookie name of RFC 6265 token characters', example: "'connect.sid'" }))),
  /** express-session's resave: write an unchanged session back on every request (false: only changed ones). */
  resave: v.optional(bool('false'), false),
  /** express-session's saveUninitialized: store (and send a cookie for) a new session nothing was set on. */
  saveUninitialized: v.optional(bool('false'), false),
  /** express-session's unset: what `req.session = null` (or delete) does, 'keep' the stored session or 'destroy' it. */
  unset: v.optional(v.pipe(v.picklist(['keep', 'destroy']), words({ allowed: "'keep' or 'destroy'", example: "'destroy'" })), 'keep'),
  /** express-session's genid(req): makes new session ids (default: 24 random bytes, base64url). */
  genid: v.optional(v.pipe(v.custom<(req: Request) => string>((f) => typeof f === 'function'), words({ allowed: 'a function (req) => string', example: '(req) => randomUUID()' }))),
  /** Accept secrets shorter than 16 characters (express-session does; the express-session entry point sets it). */
  allowWeakSecret: v.optional(bool('true'), false),
  /** Store mode: end a session this many seconds after its login, however active (rolling or not). 0 = no limit. */
  absoluteTimeoutSeconds: v.optional(
    int(0, Number.MAX_SAFE_INTEGER, { env: 'SESSION_ABSOLUTE_TIMEOUT', envType: 'int', allowed: 'a whole number of seconds, 0 (no limit) or more', example: '43200' }),
    0,
  ),
  /** Store mode: AES-256-GCM of the stored session data, `id:base64key` entries (the first encrypts, all decrypt). */
  encryptionKeys: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.minLength(1))),
      words({
        env: 'SESSION_ENCRYPTION_KEYS',
        envType: 'list',
        secret: true,
        allowed: "a list of 'id:key' entries, each key 32 bytes in base64 (comma-separated in the env)",
        fix: 'set SESSION_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32); to rotate, put the new key first and keep the old one until its sessions expired',
      }),
    ),
    [],
  ),
  /** Skip the store touch of an unchanged session whose expiry moved by less than this (not with rolling). Old name: `touchAfter`. */
  touchAfterSeconds: v.optional(int(0, Number.MAX_SAFE_INTEGER, { allowed: 'a whole number of seconds, 0 or more', example: '60' })),
  maxSessionBytes: v.optional(int(256, 16 * 1024 * 1024, { allowed: 'a whole number of bytes between 256 and 16 MiB', example: '65536' }), 64 * 1024),
  /** Milliseconds a request's store calls may take in all before it gets 503. */
  storeTimeout: v.optional(int(50, 60_000, { allowed: 'milliseconds between 50 and 60000', example: '1000' }), 1000),
  /** Session key holding the user id, indexed for logoutEverywhere(). */
  userKey: v.optional(v.pipe(v.string(), v.minLength(1), words({ allowed: 'a non-empty string', example: "'user'" })), 'user'),
  /** Redis key prefix. */
  prefix: v.optional(v.pipe(v.string(), v.regex(/^\S*$/), words({ allowed: 'a string without spaces', example: "'sess:'" })), 'sess:'),
  /** MongoDB collection / SQLite table name. */
  collection: v.optional(
    v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/), words({ allowed: 'letters, digits and _ (starting with a letter or _)', example: "'sessions'" })),
    'sessions',
  ),
  /** Worker count of the cluster (its primary sets the env variable). */
  workers: v.optional(
    int(1, Number.MAX_SAFE_INTEGER, { env: WORKER_ENV.workers, envType: 'int', allowed: 'a whole number, at least 1', example: '1' }),
    1,
  ),
  /** Sticky routing of the cluster (its primary sets the env variable). */
  sticky: v.optional(
    v.pipe(v.boolean(), words({ env: WORKER_ENV.sticky, envType: 'bool', allowed: "true or false ('1' or '0' in the env)", example: 'true' })),
    false,
  ),
  /** Options of JWT mode, passed to @cluster-session/jwt which validates them. */
  jwt: v.optional(v.pipe(v.record(v.string(), v.unknown()), words({ allowed: 'an options object for @cluster-session/jwt', secret: true })), {}),
  logger: v.optional(
    v.pipe(
      v.custom<Logger>((l) => typeof l === 'object' && l !== null && typeof (l as Logger).warn === 'function' && typeof (l as Logger).error === 'function'),
      words({ allowed: 'an object with warn() and error()', example: 'console' }),
    ),
  ),
});

/** Old option names, kept as documented aliases. */
const ALIASES = { ttl: 'ttlSeconds', touchAfter: 'touchAfterSeconds', proxy: 'trustProxy' };

/** What `clusterSession()` accepts. Every field is optional; environment variables fill the gaps. */
export type SessionConfigInput = v.InferInput<typeof schema> & {
  /** @deprecated the old name of ttlSeconds. */
  ttl?: number;
  /** @deprecated the old name of touchAfterSeconds. */
  touchAfter?: number;
  /** express-session's name of trustProxy. */
  proxy?: boolean;
};
/** The name the example app and other packages import. */
export type ClusterSessionConfig = SessionConfigInput;
export type StoreInput = v.InferInput<typeof storeSchema>;
export type CookieInput = v.InferInput<typeof cookieOptions>;

export type ResolvedStore =
  | { readonly type: 'redis'; readonly url: string; readonly target: RedisTarget; readonly options: Readonly<Record<string, unknown>>; readonly client?: unknown }
  | { readonly type: 'mongo'; readonly url: string | undefined; readonly client?: unknown; readonly dbName?: string }
  | { readonly type: 'sqlite'; readonly path: string }
  | { readonly type: 'memory' }
  /** An express-session Store instance the app passed in, used as it is (wrapped by guard.ts like ours). */
  | { readonly type: 'custom'; readonly instance: Store };

/** The validated configuration, frozen. It holds the secrets: it stays inside the package (see publicView). */
export interface ResolvedConfig {
  readonly mode: 'store' | 'jwt';
  readonly store: ResolvedStore;
  readonly secrets: readonly (string | Buffer)[];
  /** True when no secret was configured and a random one was made for this process. */
  readonly secretGenerated: boolean;
  readonly ttlSeconds: number;
  readonly cookie: Frozen<v.InferOutput<typeof cookieOptions>>;
  readonly trustProxy: boolean | undefined;
  readonly rolling: boolean;
  readonly resave: boolean;
  readonly saveUninitialized: boolean;
  readonly unset: 'keep' | 'destroy';
  readonly genid: ((req: Request) => string) | undefined;
  /** The session cookie's lifetime in ms as express-session takes it (ttlSeconds * 1000 unless cookie.maxAge); null: browser-session cookie. */
  readonly cookieMaxAge: number | null;
  readonly cookieExpires: Date | undefined;
  readonly absoluteTimeoutSeconds: number;
  readonly encryptionKeys: readonly string[];
  readonly touchAfterSeconds: number;
  readonly maxSessionBytes: number;
  readonly storeTimeout: number;
  readonly userKey: string;
  readonly prefix: string;
  readonly collection: string;
  readonly workers: number;
  readonly sticky: boolean;
  readonly production: boolean;
  /** JWT mode options, with JWT_SECRET / JWT_KEYS / JWT_REVOCATION from the environment filled in. */
  readonly jwt: Readonly<Record<string, unknown>>;
  readonly logger: Logger;
}

/** `sessions.config`: what the app may read back. No secret, no key, no password of a store URL. */
export type SessionConfigView = Omit<ResolvedConfig, 'secrets' | 'jwt' | 'logger' | 'store' | 'genid' | 'encryptionKeys'> & {
  readonly store: { readonly type: StoreName; readonly url?: string; readonly path?: string; readonly dbName?: string };
};

const ctx = { where: 'clusterSession', error: ConfigError };

/** Why an express-session option has no meaning for stateless tokens (refused rather than silently ignored). */
const JWT_REFUSED = {
  'cookie.expires': 'a token carries its own expiry; use cookie.maxAge (ms) or ttlSeconds',
  'cookie.maxAge': 'a token needs an expiry; a browser-session cookie is per session: req.session.cookie.maxAge = null',
  genid: "a token's id is a random UUID (its jti)",
  resave: 'there is no store to write back to; use rolling to re-issue the token on every response',
  unset: 'there is no stored session to destroy; req.session.destroy() revokes the token',
  saveUninitialized: 'a token is issued only for a session with data (an empty token would only add bytes to every request)',
} as const;

function resolveStore(store: Frozen<v.InferOutput<typeof storeSchema>>, env: Env, cwd: string): ResolvedStore {
  if (isStoreInstance(store)) return { type: 'custom', instance: store };
  const s = typeof store === 'string' ? { type: store } : (store as Exclude<typeof store, Store>);
  switch (s.type) {
    case 'redis': {
      const r = s as { url?: string; clusterNodes?: string | readonly string[]; options?: Record<string, unknown>; client?: unknown };
      return { type: 'redis', ...resolveRedisTarget(r, env), options: r.options ?? {}, ...(r.client ? { client: r.client } : {}) };
    }
    case 'mongo': {
      const m = s as { url?: string; client?: unknown; dbName?: string };
      const url = m.url ?? env.MONGO_URL;
      if (!m.client && !url) {
        throw new ConfigError(
          "clusterSession: store 'mongo' needs a server. Example: MONGO_URL=mongodb://127.0.0.1:27017/app. Fix: set MONGO_URL, or pass { type: 'mongo', url } or { type: 'mongo', client }.",
        );
      }
      if (url) checkMongoUrl(url, m.url ? 'store.url' : 'MONGO_URL');
      return { type: 'mongo', url, ...(m.client ? { client: m.client } : {}), ...(m.dbName ? { dbName: m.dbName } : {}) };
    }
    case 'sqlite': {
      const p = (s as { path?: string }).path ?? env.SQLITE_PATH ?? path.join('.data', 'sessions.sqlite');
      return { type: 'sqlite', path: path.resolve(cwd, p) };
    }
    default:
      return { type: 'memory' };
  }
}

/**
 * The one boundary where configuration enters: validates `input` with `env` filling what it leaves out, applies
 * the defaults and returns the frozen result. Pure apart from a generated development secret: the environment is
 * the argument, nothing is logged. Throws ConfigError naming the option, its env variable, the value (never a
 * secret's), what is allowed, an example and the fix.
 */
export function resolveConfig(input: SessionConfigInput = {}, env: Env = process.env, cwd = process.cwd()): ResolvedConfig {
  const c = parseOptions(schema, input, ctx, { env, aliases: ALIASES });
  const logger: Logger = c.logger ?? { warn: (m) => console.warn(m), error: (m) => console.error(m) };
  const production = env.NODE_ENV === 'production';
  const store = resolveStore(c.store, env, cwd);

  // A MemoryStore instance passed in (the drop-in's habit) is as process-local as store 'memory'.
  const processLocal = store.type === 'memory' || (store.type === 'custom' && store.instance instanceof MemoryStore);
  if (c.mode === 'store' && processLocal && c.workers > 1 && !c.sticky) {
    throw new ConfigError(
      `clusterSession: store ${store.type === 'memory' ? "'memory' (env SESSION_STORE)" : 'MemoryStore (an instance passed as store)'} keeps sessions inside one process, but this app runs ${c.workers} workers ` +
        `(${WORKER_ENV.workers}) without sticky routing: a login made on one worker would be unknown to the others. ` +
        "Fix, one of: (1) a shared store: store 'sqlite' (one host), 'redis' or 'mongo'; (2) stateless tokens: mode 'jwt' " +
        '(SESSION_MODE=jwt); (3) sticky routing: start the cluster with --sticky so each client stays on one worker.',
    );
  }

  let secrets: readonly (string | Buffer)[] = c.secret === undefined ? [] : Array.isArray(c.secret) ? (c.secret as readonly (string | Buffer)[]) : [c.secret as string | Buffer];
  const weak = secrets.findIndex((x) => x.length < 16);
  if (weak >= 0 && !c.allowWeakSecret) {
    fail(ctx, {
      option: Array.isArray(c.secret) ? `secret[${weak}]` : 'secret',
      value: secrets[weak],
      secret: true,
      env: 'SESSION_SECRET',
      fromEnv: input.secret === undefined,
      allowed: 'a string (or Buffer) of at least 16 characters, or a non-empty list of them (comma-separated in the env)',
      fix: 'set SESSION_SECRET to a random string of at least 32 characters (`openssl rand -base64 48`); to keep a short secret of an express-session app, pass allowWeakSecret: true',
    });
  }
  const explicitTtl = input.ttlSeconds !== undefined || input.ttl !== undefined || (env.SESSION_TTL ?? '').trim() !== '';
  if (typeof c.cookie.maxAge === 'number' && explicitTtl) {
    fail(ctx, {
      option: 'cookie.maxAge',
      value: c.cookie.maxAge,
      allowed: 'one session lifetime: cookie.maxAge (ms, as express-session) or ttlSeconds (env SESSION_TTL), not both',
      fix: 'drop one of them',
    });
  }
  if (c.name !== undefined && input.cookie?.name !== undefined && c.name !== c.cookie.name) {
    fail(ctx, { option: 'name', value: c.name, allowed: `the same name as cookie.name (${JSON.stringify(c.cookie.name)}), or only one of them`, fix: 'drop one of them' });
  }
  const cookieName = c.name ?? c.cookie.name;
  if (cookieName !== c.cookie.name) {
    // The prefix rules of core's cookieSchema, for a name given at the top level as express-session takes it.
    const problem = prefixProblem({ ...c.cookie, name: cookieName });
    if (problem) fail(ctx, { option: 'name', value: cookieName, allowed: problem, fix: 'set cookie.secure to true (and for __Host-: path "/", no domain), or rename the cookie' });
  }
  const ttlSeconds = typeof c.cookie.maxAge === 'number' ? Math.max(1, Math.ceil(c.cookie.maxAge / 1000)) : c.ttlSeconds;
  let secretGenerated = false;
  if (c.mode === 'store' && secrets.length === 0) {
    if (production) {
      throw new ConfigError(
        'clusterSession: option secret (env SESSION_SECRET) is missing and NODE_ENV=production: sessions cannot be signed. ' +
          'Example: SESSION_SECRET=$(openssl rand -base64 48). Fix: set SESSION_SECRET to a random string of at least 32 characters; ' +
          'a comma-separated list rotates secrets (the first signs, all verify).',
      );
    }
    secrets = [randomBytes(32).toString('base64url')];
    secretGenerated = true;
  }

  const jwt: Record<string, unknown> = { ...c.jwt };
  if (jwt.secret === undefined && env.JWT_SECRET) jwt.secret = env.JWT_SECRET;
  if (jwt.keys === undefined && env.JWT_KEYS) jwt.keys = env.JWT_KEYS;
  if (jwt.revocation === undefined && env.JWT_REVOCATION) jwt.revocation = env.JWT_REVOCATION;
  if (jwt.ttlSeconds === undefined && jwt.ttl === undefined) jwt.ttlSeconds = ttlSeconds;
  if (c.mode === 'jwt') {
    for (const [option, given] of [['cookie.expires', c.cookie.expires], ['cookie.maxAge', c.cookie.maxAge === null ? null : undefined], ['genid', c.genid], ['resave', c.resave || undefined], ['unset', c.unset === 'destroy' || undefined], ['saveUninitialized', c.saveUninitialized || undefined]] as const) {
      if (given === undefined) continue;
      fail(ctx, {
        option,
        value: given,
        allowed: `not in mode 'jwt': ${JWT_REFUSED[option]}`,
        fix: `drop ${option}, or use mode 'store'`,
      });
    }
  }

  return Object.freeze({
    mode: c.mode,
    store: Object.freeze(store),
    secrets: Object.freeze([...secrets]),
    secretGenerated,
    ttlSeconds,
    cookie: c.name !== undefined ? Object.freeze({ ...c.cookie, name: cookieName }) : c.cookie,
    trustProxy: c.trustProxy,
    rolling: c.rolling,
    resave: c.resave,
    saveUninitialized: c.saveUninitialized,
    unset: c.unset,
    genid: c.genid,
    cookieMaxAge: c.cookie.maxAge === null ? null : (c.cookie.maxAge ?? ttlSeconds * 1000),
    cookieExpires: c.cookie.expires,
    // Under `rolling` the cookie is re-sent with a fresh expiry each response, so the store must follow every time.
    touchAfterSeconds: c.rolling ? 0 : (c.touchAfterSeconds ?? Math.min(60, Math.floor(ttlSeconds / 10))),
    maxSessionBytes: c.maxSessionBytes,
    storeTimeout: c.storeTimeout,
    absoluteTimeoutSeconds: c.absoluteTimeoutSeconds,
    encryptionKeys: Object.freeze([...c.encryptionKeys]),
    userKey: c.userKey,
    prefix: c.prefix,
    collection: c.collection,
    workers: c.workers,
    sticky: c.sticky,
    production,
    jwt: Object.freeze(jwt),
    logger,
  });
}


/** The part of the configuration an app can read back through `sessions.config`. */
export function publicView(config: ResolvedConfig): SessionConfigView {
  const { secrets: _secrets, jwt: _jwt, logger: _logger, genid: _genid, encryptionKeys: _keys, store, ...rest } = config;
  const s = store as { type: StoreName; url?: string; path?: string; dbName?: string };
  return Object.freeze({
    ...rest,
    store: Object.freeze({
      type: s.type,
      // Without its password: Sentinel and Cluster URLs list several hosts, which new URL() cannot parse.
      ...(s.url !== undefined ? { url: redactUrl(s.url) } : {}),
      ...(s.path !== undefined ? { path: s.path } : {}),
      ...(s.dbName !== undefined ? { dbName: s.dbName } : {}),
    }),
  });
}

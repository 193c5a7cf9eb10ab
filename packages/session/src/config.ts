import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { mergeEnv, show, toConfigError, type Env } from './config-env.ts';

/** Where log lines go. Secrets are never passed to it. */
export interface Logger {
  warn(message: string): void;
  error(message: string): void;
}

export type StoreName = 'redis' | 'mongo' | 'sqlite' | 'memory';

export type StoreInput =
  | StoreName
  | { type: 'redis'; url?: string; options?: Record<string, unknown>; client?: unknown }
  | { type: 'mongo'; url?: string; client?: unknown; dbName?: string }
  | { type: 'sqlite'; path?: string }
  | { type: 'memory' };

export interface CookieInput {
  name?: string;
  secure?: boolean | 'auto';
  sameSite?: 'lax' | 'strict' | 'none';
  httpOnly?: boolean;
  domain?: string;
  path?: string;
}

/** What `clusterSession()` accepts. Every field is optional; environment variables fill the gaps. */
export interface SessionConfigInput {
  mode?: 'store' | 'jwt';
  store?: StoreInput;
  /** One secret, or a list (the first signs, all verify) to rotate without logging anyone out. */
  secret?: string | string[];
  /** Session lifetime in seconds (cookie Max-Age and store expiry agree). */
  ttl?: number;
  cookie?: CookieInput;
  /** Trust X-Forwarded-Proto for `secure: 'auto'`; unset = follow Express's `trust proxy` setting. */
  trustProxy?: boolean;
  /** Re-send the cookie and extend the store expiry on every response. */
  rolling?: boolean;
  /** Skip the store touch of an unchanged session when its expiry moved by less than this many seconds (not with rolling). */
  touchAfter?: number;
  maxSessionBytes?: number;
  /** Milliseconds a store call may take before the request gets 503. */
  storeTimeout?: number;
  /** Session key holding the user id, indexed for logoutEverywhere(). */
  userKey?: string;
  /** Redis key prefix. */
  prefix?: string;
  /** MongoDB collection / SQLite table name. */
  collection?: string;
  /** Worker count and sticky flag of the cluster (the cluster primary sets CLUSTER_SESSION_WORKERS/STICKY). */
  workers?: number;
  sticky?: boolean;
  /** Options of JWT mode, passed to @cluster-session/jwt which validates them. */
  jwt?: Record<string, unknown>;
  logger?: Logger;
}

export type ResolvedStore =
  | { type: 'redis'; url: string; options: Record<string, unknown>; client?: unknown }
  | { type: 'mongo'; url: string | undefined; client?: unknown; dbName?: string }
  | { type: 'sqlite'; path: string }
  | { type: 'memory' };

export interface ResolvedConfig {
  mode: 'store' | 'jwt';
  store: ResolvedStore;
  secrets: string[];
  /** True when no secret was configured and a random one was made for this process. */
  secretGenerated: boolean;
  ttl: number;
  cookie: { name: string; secure: boolean | 'auto'; sameSite: 'lax' | 'strict' | 'none'; httpOnly: boolean; domain?: string; path: string };
  trustProxy: boolean | undefined;
  rolling: boolean;
  touchAfter: number;
  maxSessionBytes: number;
  storeTimeout: number;
  userKey: string;
  prefix: string;
  collection: string;
  workers: number;
  sticky: boolean;
  production: boolean;
  jwt: Record<string, unknown>;
  logger: Logger;
}


const secretString = z.string().min(16);
const urlString = (protocols: string[]) =>
  z.string().refine((s) => {
    try {
      return protocols.includes(new URL(s).protocol);
    } catch {
      return false;
    }
  }, `a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);

const storeSchema = z.union([
  z.enum(['redis', 'mongo', 'sqlite', 'memory']),
  z.strictObject({ type: z.literal('redis'), url: urlString(['redis:', 'rediss:']).optional(), options: z.record(z.string(), z.unknown()).optional(), client: z.any().optional() }),
  z.strictObject({ type: z.literal('mongo'), url: urlString(['mongodb:', 'mongodb+srv:']).optional(), client: z.any().optional(), dbName: z.string().min(1).optional() }),
  z.strictObject({ type: z.literal('sqlite'), path: z.string().min(1).optional() }),
  z.strictObject({ type: z.literal('memory') }),
]);

const schema = z.strictObject({
  mode: z.enum(['store', 'jwt']).default('store'),
  store: storeSchema.default('sqlite'),
  secret: z.union([secretString, z.array(secretString).min(1)]).optional(),
  ttl: z.number().int().min(1).default(86_400),
  cookie: z
    .strictObject({
      name: z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/).default('sid'),
      secure: z.union([z.boolean(), z.literal('auto')]).default('auto'),
      sameSite: z.enum(['lax', 'strict', 'none']).default('lax'),
      httpOnly: z.boolean().default(true),
      domain: z.string().min(1).optional(),
      path: z.string().startsWith('/').default('/'),
    })
    .prefault({}),
  trustProxy: z.boolean().optional(),
  rolling: z.boolean().default(false),
  touchAfter: z.number().int().min(0).optional(),
  maxSessionBytes: z.number().int().min(256).max(16 * 1024 * 1024).default(64 * 1024),
  storeTimeout: z.number().int().min(50).max(60_000).default(1000),
  userKey: z.string().min(1).default('user'),
  prefix: z.string().regex(/^\S*$/).default('sess:'),
  collection: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('sessions'),
  workers: z.number().int().min(1).default(1),
  sticky: z.boolean().default(false),
  jwt: z.record(z.string(), z.unknown()).default({}),
  logger: z.custom<Logger>((v) => typeof v === 'object' && v !== null && typeof (v as Logger).warn === 'function' && typeof (v as Logger).error === 'function').optional(),
});

/** The name the example app and other packages import. */
export type ClusterSessionConfig = SessionConfigInput;

let warnedGeneratedSecret = false;

function resolveStore(store: z.infer<typeof storeSchema>, env: Env, cwd: string): ResolvedStore {
  const s = typeof store === 'string' ? { type: store } : store;
  switch (s.type) {
    case 'redis': {
      const r = s as { url?: string; options?: Record<string, unknown>; client?: unknown };
      const url = r.url ?? env.REDIS_URL ?? 'redis://127.0.0.1:6379';
      const parsed = urlString(['redis:', 'rediss:']).safeParse(url);
      if (!parsed.success) {
        throw new ConfigError(`store url (env REDIS_URL) is not a redis:// or rediss:// URL. Fix: set REDIS_URL like redis://127.0.0.1:6379.`);
      }
      return { type: 'redis', url, options: r.options ?? {}, ...(r.client ? { client: r.client } : {}) };
    }
    case 'mongo': {
      const m = s as { url?: string; client?: unknown; dbName?: string };
      const url = m.url ?? env.MONGO_URL;
      if (!m.client && !url) {
        throw new ConfigError("store 'mongo' needs a server: set MONGO_URL (e.g. mongodb://127.0.0.1:27017/app), or pass { type: 'mongo', url } or { type: 'mongo', client }.");
      }
      if (url && !urlString(['mongodb:', 'mongodb+srv:']).safeParse(url).success) {
        throw new ConfigError('store url (env MONGO_URL) is not a mongodb:// or mongodb+srv:// URL. Fix: set MONGO_URL like mongodb://127.0.0.1:27017/app.');
      }
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
 * The one boundary where configuration enters: merges `input` over `env`, validates it and applies the defaults.
 * Throws ConfigError naming the option, its env variable, the value (never a secret's), what is allowed and the fix.
 */
export function resolveConfig(input: SessionConfigInput = {}, env: Env = process.env, cwd = process.cwd()): ResolvedConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new ConfigError(`clusterSession(config): config must be an object, got ${show(input)}. Fix: pass { store: 'redis' } or nothing.`);
  }
  const { merged, fromEnv } = mergeEnv(input, env);
  const parsed = schema.safeParse(merged);
  if (!parsed.success) throw toConfigError(parsed.error, merged, fromEnv);
  const c = parsed.data;
  const logger: Logger = c.logger ?? { warn: (m) => console.warn(m), error: (m) => console.error(m) };
  const production = env.NODE_ENV === 'production';
  const store = resolveStore(c.store, env, cwd);

  if (c.mode === 'store' && store.type === 'memory' && c.workers > 1 && !c.sticky) {
    throw new ConfigError(
      `store 'memory' (env SESSION_STORE) keeps sessions inside one process, but this app runs ${c.workers} workers ` +
        '(CLUSTER_SESSION_WORKERS) without sticky routing: a login made on one worker would be unknown to the others. ' +
        "Fix, one of: (1) a shared store: store 'sqlite' (one host), 'redis' or 'mongo'; (2) stateless tokens: mode 'jwt' " +
        '(SESSION_MODE=jwt); (3) sticky routing: start the cluster with --sticky so each client stays on one worker.',
    );
  }

  if (c.cookie.sameSite === 'none' && c.cookie.secure === false) {
    throw new ConfigError(
      "cookie.sameSite is 'none' with cookie.secure false: browsers drop SameSite=None cookies that are not Secure. " +
        "Fix: set cookie.secure to true or 'auto' (HTTPS), or use sameSite 'lax'.",
    );
  }

  let secrets = c.secret === undefined ? [] : Array.isArray(c.secret) ? c.secret : [c.secret];
  let secretGenerated = false;
  if (c.mode === 'store' && secrets.length === 0) {
    if (production) {
      throw new ConfigError(
        'secret (env SESSION_SECRET) is missing and NODE_ENV=production: sessions cannot be signed. ' +
          'Fix: set SESSION_SECRET to a random string of at least 32 characters (e.g. `openssl rand -base64 48`); ' +
          'a comma-separated list rotates secrets (the first signs, all verify).',
      );
    }
    secrets = [randomBytes(32).toString('base64url')];
    secretGenerated = true;
    if (!warnedGeneratedSecret) {
      warnedGeneratedSecret = true;
      logger.warn(
        'cluster-session: no SESSION_SECRET set; using a random secret for this process. Sessions will not survive a ' +
          'restart nor verify on other processes. Set SESSION_SECRET (required when NODE_ENV=production).',
      );
    }
  }

  const jwt: Record<string, unknown> = { ...c.jwt };
  if (jwt.secret === undefined && env.JWT_SECRET) jwt.secret = env.JWT_SECRET;
  if (jwt.keys === undefined && env.JWT_KEYS) jwt.keys = env.JWT_KEYS;
  if (jwt.ttl === undefined) jwt.ttl = c.ttl;

  return {
    mode: c.mode,
    store,
    secrets,
    secretGenerated,
    ttl: c.ttl,
    cookie: { ...c.cookie, ...(c.cookie.domain ? { domain: c.cookie.domain } : {}) },
    trustProxy: c.trustProxy,
    rolling: c.rolling,
    // Under `rolling` the cookie is re-sent with a fresh expiry each response, so the store must follow every time.
    touchAfter: c.rolling ? 0 : (c.touchAfter ?? Math.min(60, Math.floor(c.ttl / 10))),
    maxSessionBytes: c.maxSessionBytes,
    storeTimeout: c.storeTimeout,
    userKey: c.userKey,
    prefix: c.prefix,
    collection: c.collection,
    workers: c.workers,
    sticky: c.sticky,
    production,
    jwt,
    logger,
  };
}

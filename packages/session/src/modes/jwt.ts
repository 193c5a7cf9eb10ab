import { randomBytes } from 'node:crypto';
import type * as Jwt from '@cluster-session/jwt';
import { errorHandler } from '../answer.ts';
import { publicView, type ResolvedConfig } from '../config.ts';
import { ConfigError, NotSupportedError } from '../errors.ts';
import { load } from '../load.ts';
import { createDenyList } from '../stores/index.ts';
import type { DenyList } from '../stores/types.ts';
import type { ClusterSession, SessionHealth } from '../types.ts';

let warnedGeneratedKey = false;

/**
 * The key ring, from the first of: `jwt.ring`, `jwt.keys`/`jwt.secret` (objects, or the raw JWT_KEYS / JWT_SECRET
 * strings resolveConfig copied in), SESSION_SECRET (each >= 32 bytes), or, outside production only, a random
 * secret for this process (a warning says it will not verify on other processes).
 */
function ringFrom(config: ResolvedConfig, jwt: Record<string, unknown>): Jwt.KeyRing {
  const { createKeyRing, keyRingFromEnv } = load<typeof Jwt>('@cluster-session/jwt');
  const { ring, keys, secret } = jwt;
  delete jwt.ring;
  delete jwt.keys;
  delete jwt.secret;
  if (ring !== undefined) return ring as Jwt.KeyRing;
  if (typeof keys === 'string' || typeof secret === 'string')
    return keyRingFromEnv({ JWT_KEYS: typeof keys === 'string' ? keys : undefined, JWT_SECRET: typeof secret === 'string' ? secret : undefined });
  if (keys !== undefined) return createKeyRing({ keys: keys as never });
  if (secret !== undefined) return createKeyRing({ secret: secret as never });
  if (config.secrets.length > 0 && !config.secretGenerated) return createKeyRing({ secret: config.secrets }, 'SESSION_SECRET');
  if (config.production)
    throw new ConfigError(
      "clusterSession: mode 'jwt' (env SESSION_MODE) needs signing keys and NODE_ENV=production. Example: JWT_SECRET=$(openssl rand -base64 32). " +
        'Fix: set JWT_SECRET to a random secret of at least 32 bytes (a comma-separated list rotates), or JWT_KEYS (see @cluster-session/jwt).',
    );
  if (!warnedGeneratedKey) {
    warnedGeneratedKey = true;
    config.logger.warn(
      'cluster-session: no JWT_SECRET / JWT_KEYS set; using a random key for this process. Tokens will not survive a ' +
        'restart nor verify on other processes. Set JWT_SECRET (required when NODE_ENV=production).',
    );
  }
  return createKeyRing({ secret: randomBytes(32) });
}

/**
 * `jwt.revocation` (env JWT_REVOCATION, filled in by resolveConfig): a jti deny list on the configured store, so
 * logout takes effect at once on every process. On by default (security first; one store lookup per request that
 * carries a token); turn it off with `jwt: { revocation: false }` or JWT_REVOCATION=0 for fully store-free tokens.
 */
function revocationOn(jwt: Record<string, unknown>): boolean {
  const value = jwt.revocation;
  delete jwt.revocation;
  if (value === undefined || value === '' || value === true || value === '1' || value === 'true') return true;
  if (value === false || value === '0' || value === 'false') return false;
  throw new ConfigError(
    `clusterSession: option jwt.revocation (or env JWT_REVOCATION) is ${JSON.stringify(value)}: expected true or false ('1' or '0' in the env). Example: JWT_REVOCATION=0. Fix: change it to an allowed value.`,
  );
}

/** jwtSession()'s messages name its own options; here they sit under `jwt`. */
const underJwt = (message: string) => message.replace(/^jwtSession: /, '').replace(/\boption (?!jwt\.)/g, 'option jwt.');

/**
 * JWT mode: the stateless `req.session` of @cluster-session/jwt, configured from the resolved config (keys, ttl,
 * cookie, trustProxy) plus any `jwt: { ... }` options, which that package validates (and names) itself.
 */
export function createJwtMode(config: ResolvedConfig): ClusterSession {
  // jose and the token code load only in this mode.
  const { JwtError, jwtSession } = load<typeof Jwt>('@cluster-session/jwt');
  const jwt: Record<string, unknown> = { ...config.jwt };
  let denyList: DenyList | undefined;
  let middleware;
  try {
    const ring = ringFrom(config, jwt);
    const revocation = revocationOn(jwt);
    if (revocation && config.store.type === 'memory' && config.workers > 1)
      config.logger.warn("cluster-session: jwt revocation on store 'memory' is per process: a logout revokes on one worker only.");
    denyList = revocation ? createDenyList(config) : undefined;
    const { name, secure, sameSite, path, domain, httpOnly, partitioned, priority } = config.cookie;
    const ownMaxAge = jwt.maxAge !== undefined || jwt.maxAgeSeconds !== undefined;
    const options: Jwt.JwtSessionOptions = {
      ring,
      ...(ownMaxAge ? {} : { maxAgeSeconds: Math.max(config.ttlSeconds, 86_400) }),
      cookie: { name, secure, sameSite, path, httpOnly, partitioned, ...(domain ? { domain } : {}), ...(priority ? { priority } : {}) },
      rolling: config.rolling,
      ...(config.trustProxy !== undefined ? { trustProxy: config.trustProxy } : {}),
      ...(denyList ? { denyList, denyListTimeout: config.storeTimeout + 100 } : {}),
      onError: (err) => config.logger.error(`cluster-session: ${(err as { code?: string }).code ?? err.name}: ${err.message}`),
      ...(jwt as Jwt.JwtSessionOptions),
    };
    middleware = jwtSession(options);
  } catch (err) {
    void denyList?.close();
    if (err instanceof JwtError) throw new ConfigError(`clusterSession: mode 'jwt': ${underJwt(err.message)}`);
    throw err;
  }

  return Object.assign(middleware, {
    config: publicView(config),
    store: undefined,
    errorHandler,
    async health(): Promise<SessionHealth> {
      if (!denyList) return { ok: true, mode: 'jwt' as const, store: 'none' };
      try {
        await denyList.has('cluster-session-health');
        return { ok: true, mode: 'jwt' as const, store: config.store.type };
      } catch (err) {
        return { ok: false, mode: 'jwt' as const, store: config.store.type, error: `deny list unavailable: ${(err as Error).message}` };
      }
    },
    close: async () => denyList?.close(),
    destroyUser: async (): Promise<number> => {
      throw new NotSupportedError(
        "logoutEverywhere() needs sessions it can list; JWT mode keeps none. Fix: use mode 'store', or rotate the JWT keys to end every session.",
      );
    },
  }) as ClusterSession;
}

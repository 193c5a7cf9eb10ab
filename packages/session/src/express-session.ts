import { Cookie, MemoryStore, Session, Store, type SessionOptions } from 'express-session';
import { clusterSession } from './cluster-session.ts';
import type { Env, SessionConfigInput } from './config.ts';
import { ConfigError } from './errors.ts';
import type { ClusterSession } from './types.ts';

/**
 * `@cluster-session/session/express-session`: express-session's signature and defaults on clusterSession(), so
 * `import session from 'express-session'` becomes `import session from '@cluster-session/session/express-session'`
 * and nothing else changes — the app keeps its options, its cookie name (connect.sid), its store instance and its
 * logins, and gains the cluster guarantees (per-request store budget and fast 503, size limit, saves before the
 * answer, multi-worker safety checks, logoutEverywhere).
 *
 * The defaults are express-session's, not clusterSession's: resave and saveUninitialized true, cookie connect.sid,
 * not Secure, no SameSite, a browser-session cookie (maxAge null), MemoryStore, and any secret length.
 */
/**
 * What clusterSession() needs, over its own secure defaults, to behave as express-session: the migration table of
 * the README, as code. touchAfterSeconds 0: express-session touches the store on every request of a session.
 */
const EXPRESS_SESSION_DEFAULTS = {
  name: 'connect.sid',
  resave: true,
  saveUninitialized: true,
  allowWeakSecret: true,
  touchAfterSeconds: 0,
  cookie: { secure: false, sameSite: false, maxAge: null },
} as const;

function session(options: SessionOptions = {} as SessionOptions, env: Env = process.env): ClusterSession {
  if (typeof options.cookie === 'function') {
    throw new ConfigError(
      'express-session: option cookie is a function: expected an object of cookie options. cluster-session validates the cookie options once, at startup ' +
        '(a per-request function could turn out wrong on any request). Fix: pass the object, and change a session\'s own cookie in a route (req.session.cookie.maxAge = ...).',
    );
  }
  // An explicit undefined means "the default", as in express-session.
  const defined = (o: object | undefined) => Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
  const given = defined(options);
  const input: Record<string, unknown> = {
    ...EXPRESS_SESSION_DEFAULTS,
    // express-session keeps sessions in a MemoryStore unless given a store; SESSION_STORE still chooses ours.
    ...(env.SESSION_STORE ? {} : { store: 'memory' }),
    ...given,
    cookie: { ...EXPRESS_SESSION_DEFAULTS.cookie, ...defined(given.cookie as object | undefined) },
  };
  return clusterSession(input as SessionConfigInput, env);
}

/** express-session's named exports, as properties of the default export (its CommonJS shape). */
const dropIn = Object.assign(session, { Store, Cookie, Session, MemoryStore });
export default dropIn;
export { Store, Cookie, Session, MemoryStore };
export type { SessionOptions, SessionData, CookieOptions } from 'express-session';

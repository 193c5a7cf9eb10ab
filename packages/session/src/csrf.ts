import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { parseOptions, words } from '@cluster-session/core';
import * as v from 'valibot';
import { ConfigError, CsrfError } from './errors.ts';
import { configOf } from './resolved.ts';
import { userOf } from './serializer.ts';
import type { ClusterSession } from './types.ts';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by csrf(): the token to put in this page's forms (`<input type="hidden" name="_csrf">`). */
    csrfToken?: () => string;
  }
}

const name = (allowed: string, example: string) => v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,64}$/), words({ allowed, example }));

const schema = v.strictObject({
  /** Origins besides the request's own that may post (e.g. a separate front end), as `https://host[:port]`. */
  trustedOrigins: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.regex(/^https?:\/\/[^/\s]+$/))),
      words({ allowed: "a list of origins, each 'http(s)://host[:port]' without a path", example: "['https://app.example.com']" }),
    ),
    [],
  ),
  /** Accept `Sec-Fetch-Site: same-site` (a sibling subdomain). Off: a sibling is another site for this purpose. */
  allowSameSite: v.optional(v.pipe(v.boolean(), words({ allowed: 'true or false', example: 'true' })), false),
  field: v.optional(name('letters, digits, _ or -', "'_csrf'"), '_csrf'),
  header: v.optional(name('a header name', "'x-csrf-token'"), 'x-csrf-token'),
  cookie: v.optional(name('a cookie name', "'csrf'"), 'csrf'),
  /** The session key of the synchronizer token (store mode). */
  sessionKey: v.optional(name('a session key', "'csrfToken'"), 'csrfToken'),
});

export type CsrfOptions = v.InferInput<typeof schema>;

export interface CsrfProtection extends RequestHandler {
  /** The token for this request's forms (what `req.csrfToken()` returns). */
  token(req: Request, res: Response): string;
}

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** The bodies a cross-site page can send without a CORS preflight; anything else cannot come from another site's form. */
const SIMPLE = /^(application\/x-www-form-urlencoded|multipart\/form-data|text\/plain)\b/i;

const equal = (a: string, b: string) => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * CSRF protection for every state-changing request (POST, PUT, PATCH, DELETE), in two layers:
 *
 * 1. Where the request comes from: `Sec-Fetch-Site` (sent by every current browser) must be `same-origin` or
 *    `none` (`same-site` with `allowSameSite`); without it, an `Origin` header must be the request's own origin or
 *    one of `trustedOrigins`. A cross-site request is refused (403 CS_ERR_SESSION_CSRF) whatever it carries.
 * 2. A token, for the bodies a browser form can send (urlencoded, multipart, text/plain): the synchronizer
 *    token kept in the session in store mode once a user is signed in; otherwise (JWT mode, and the sign-in form
 *    before any session exists, so an anonymous visitor costs no store write) a signed double-submit cookie whose
 *    HMAC binds it to the signed-in user. JSON and other non-simple bodies need no token: a browser sends them
 *    cross-origin only after a CORS preflight this app does not answer, and layer 1 still applies.
 *
 * Mount after the body parsers and clusterSession(); put `req.csrfToken()` in a hidden `_csrf` field of each form
 * (or send it as `X-CSRF-Token`). Refusals reach `sessions.errorHandler`.
 */
export function csrf(sessions: ClusterSession, input: CsrfOptions = {}): CsrfProtection {
  const config = configOf(sessions, 'csrf');
  const o = parseOptions(schema, input, { where: 'csrf', error: ConfigError });
  // The cookie signing secrets in store mode; in JWT mode SESSION_SECRET when set, else a key derived from
  // JWT_SECRET (never the signing key itself), else, outside production, a key of this process (with a warning:
  // a token then verifies only on the process that made it).
  const jwtSecret = typeof config.jwt.secret === 'string' ? config.jwt.secret : undefined;
  let keys: readonly (string | Buffer)[] = config.secretGenerated ? [] : config.secrets;
  if (keys.length === 0 && jwtSecret) keys = [createHmac('sha256', jwtSecret).update('cluster-session csrf v1').digest('base64url')];
  if (keys.length === 0 && config.secrets.length > 0) keys = config.secrets;
  if (keys.length === 0) {
    if (config.production) {
      throw new ConfigError(
        'csrf: needs a secret to sign its tokens and NODE_ENV=production. Example: SESSION_SECRET=$(openssl rand -base64 48). Fix: set SESSION_SECRET (or JWT_SECRET in JWT mode).',
      );
    }
    config.logger.warn('cluster-session: csrf() has no SESSION_SECRET / JWT_SECRET; using a random key for this process: its form tokens will not verify on other processes.');
    keys = [randomBytes(32).toString('base64url')];
  }
  const trusted = new Set(o.trustedOrigins);
  const storeMode = config.mode === 'store';

  const userOfReq = (req: Request) => userOf(req.session, config.userKey) ?? '';
  const sign = (key: string | Buffer, nonce: string, user: string) => createHmac('sha256', key).update(`${nonce}|${user}`).digest('base64url');
  const signedToken = (user: string) => {
    const nonce = randomBytes(18).toString('base64url');
    return `${nonce}.${sign(keys[0]!, nonce, user)}`;
  };
  const validSigned = (token: string, user: string) => {
    const [nonce, mac, extra] = token.split('.');
    if (!nonce || !mac || extra !== undefined) return false;
    return keys.some((k) => equal(mac, sign(k, nonce, user)));
  };
  /** Store mode with a signed-in user: the token lives in the session (saved with it by the next answer). */
  const synchronized = (req: Request) => storeMode && userOfReq(req) !== '';

  const cookieOf = (req: Request): string | undefined => {
    for (const part of (req.headers.cookie ?? '').split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === o.cookie) return part.slice(eq + 1).trim();
    }
    return undefined;
  };

  const token = (req: Request, res: Response): string => {
    if (synchronized(req)) {
      const sess = req.session as unknown as Record<string, unknown>;
      if (typeof sess[o.sessionKey] !== 'string') sess[o.sessionKey] = randomBytes(24).toString('base64url');
      return sess[o.sessionKey] as string;
    }
    const user = userOfReq(req);
    const existing = cookieOf(req);
    if (existing && validSigned(existing, user)) return existing;
    const fresh = signedToken(user);
    // Readable by no script (the form carries the token); Lax so a top-level navigation keeps it.
    res.cookie(o.cookie, fresh, { httpOnly: true, sameSite: 'lax', secure: req.secure, path: '/' });
    return fresh;
  };

  /** Layer 1: where the request comes from, by the browser's own account. Undefined when the browser said nothing. */
  const fromElsewhere = (req: Request): string | undefined => {
    const site = req.get('sec-fetch-site');
    if (site !== undefined) {
      if (site === 'same-origin' || site === 'none' || (site === 'same-site' && o.allowSameSite)) return undefined;
      return `Sec-Fetch-Site: ${site}`;
    }
    const origin = req.get('origin');
    if (origin === undefined) return undefined;
    if (origin !== 'null' && (origin === `${req.protocol}://${req.get('host')}` || trusted.has(origin))) return undefined;
    return `Origin ${origin} is not this site's`;
  };

  const sent = (req: Request): string | undefined => {
    const fromHeader = req.get(o.header);
    if (fromHeader) return fromHeader;
    const body = req.body as Record<string, unknown> | undefined;
    const field = body && typeof body === 'object' ? body[o.field] : undefined;
    return typeof field === 'string' ? field : undefined;
  };

  const validToken = (req: Request, given: string): boolean => {
    if (synchronized(req)) {
      const stored = (req.session as unknown as Record<string, unknown>)[o.sessionKey];
      return typeof stored === 'string' && equal(given, stored);
    }
    const cookie = cookieOf(req);
    return cookie !== undefined && equal(given, cookie) && validSigned(given, userOfReq(req));
  };

  const middleware = ((req, res, next) => {
    req.csrfToken = () => token(req, res);
    if (!UNSAFE.has(req.method)) return next();
    const elsewhere = fromElsewhere(req);
    if (elsewhere) return next(new CsrfError(`${req.method} ${req.path} refused: ${elsewhere}`));
    const type = req.get('content-type');
    // No body type: not a form (a browser form always sends one; a bodiless cross-site fetch was stopped above).
    if (type === undefined || !SIMPLE.test(type)) return next();
    const given = sent(req);
    if (!given) return next(new CsrfError(`${req.method} ${req.path} refused: no CSRF token`, 'missing or invalid CSRF token'));
    if (!validToken(req, given)) return next(new CsrfError(`${req.method} ${req.path} refused: the CSRF token does not match`, 'missing or invalid CSRF token'));
    next();
  }) as CsrfProtection;
  return Object.assign(middleware, { token });
}

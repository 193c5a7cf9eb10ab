import type { IncomingMessage, ServerResponse } from 'node:http';
import { answerFrom, sendAnswer } from '@cluster-session/core';
import { readCookie } from './cookie.ts';
import { JwtDenyListUnavailableError, JwtInvalidError } from './errors.ts';
import { holdResponse } from './hold-response.ts';
import { resolveOptions, type JwtSessionOptions, type ResolvedOptions } from './options.ts';
import { bounded, RequestSession, type Transport } from './request-session.ts';
import type { VerifiedToken } from './ring.ts';

export type JwtSessionMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** Where the request's token comes from, and so where a new one goes back. */
function findToken(req: IncomingMessage, o: ResolvedOptions): { transport: Transport; token: string | undefined } {
  if (o.bearer) {
    const auth = req.headers.authorization;
    if (auth !== undefined && /^bearer(\s|$)/i.test(auth)) return { transport: 'bearer', token: auth.slice(6).trim() || undefined };
    // A client with no token yet opts into bearer transport with the token header. The cookie is ignored then, so
    // page script can never read an HttpOnly cookie's token back through the response header.
    if (req.headers[o.tokenHeader] !== undefined) return { transport: 'bearer', token: undefined };
  }
  return { transport: 'cookie', token: readCookie(req, o.cookie.name) || undefined };
}

/**
 * Verifies a token into a session, or undefined when it is refused for any reason (the request is logged out).
 * Without a promise when nothing asks for one (an HMAC ring and a deny list that answers from memory): the common
 * request then reaches the app in the same turn, with no microtask hops and no promise allocated for it.
 */
function load(token: string | undefined, o: ResolvedOptions): Promise<VerifiedToken | undefined> | VerifiedToken | undefined {
  if (token === undefined) return undefined;
  const { decodeSync } = o.codec;
  if (!decodeSync) return o.codec.decode(token).then((v) => admit(v, o), refused);
  let verified: VerifiedToken;
  try {
    verified = decodeSync(token);
  } catch (err) {
    return refused(err);
  }
  return admit(verified, o);
}

/** A JwtInvalidError logs the request out; anything else is the app's (or the deny list's) error. */
function refused(err: unknown): undefined {
  if (err instanceof JwtInvalidError) return undefined;
  throw err;
}

/** The checks after the signature: the absolute max age, then the deny list. */
function admit(verified: VerifiedToken, o: ResolvedOptions): Promise<VerifiedToken | undefined> | VerifiedToken | undefined {
  const { payload } = verified;
  const iat0 = typeof payload.iat0 === 'number' ? payload.iat0 : payload.iat;
  const now = Date.now() / 1000;
  const maxAge = Math.max(o.maxAge, typeof payload.ttl === 'number' ? payload.ttl : 0); // a remember-me session lives its ttl
  if (iat0 > now + o.clockTolerance || now > iat0 + maxAge + o.clockTolerance) return undefined; // past its absolute maximum age
  if (!o.denyList) return verified;
  const denied = bounded(o.denyList.has(payload.jti), o.denyListTimeout, 'has');
  if (denied instanceof Promise) return denied.then((d) => (d ? undefined : verified));
  return denied ? undefined : verified;
}

/**
 * Express/connect middleware giving `req.session` backed by a signed (or encrypted) token instead of a store.
 * A missing, invalid, expired or revoked token gives an empty, logged-out session: the app's own check answers
 * 401. Options are validated here, once; a wrong one throws JwtConfigError at startup.
 */
export function jwtSession(options: JwtSessionOptions): JwtSessionMiddleware {
  const o = resolveOptions(options);
  // During an outage every request fails the same way: report it once per 5 s, not once per request.
  let lastReport = 0;
  const reportOutage = (err: Error, req: IncomingMessage) => {
    const t = Date.now();
    if (t - lastReport < 5000) return;
    lastReport = t;
    o.onError(err, req);
  };
  return function jwtSessionMiddleware(req, res, next) {
    if ((req as { session?: unknown }).session !== undefined) return next(); // mounted twice: the first one owns it
    const { transport, token } = findToken(req, o);
    const proceed = (verified: VerifiedToken | undefined) => {
      const rs = new RequestSession(o, req, res, transport, verified);
      holdResponse(res, (hold) => rs.beforeHeaders(hold), (err) => rs.fail(err));
      next();
    };
    const fail = (err: unknown) => {
      if (err instanceof JwtDenyListUnavailableError) {
        reportOutage(err, req);
        sendAnswer(res, answerFrom(err));
      } else next(err);
    };
    let loaded: ReturnType<typeof load>;
    try {
      loaded = load(token, o);
    } catch (err) {
      return fail(err);
    }
    if (loaded instanceof Promise) loaded.then(proceed, fail);
    else proceed(loaded);
  };
}

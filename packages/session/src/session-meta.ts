import { createHash } from 'node:crypto';
import type { Request } from 'express';
import type { SessionData } from 'express-session';
import type { ResolvedConfig } from './config.ts';

/**
 * What a session records about itself for listSessions() and the absolute lifetime, under one key of the stored
 * session: when it began (the login, or its first save), from which address and user agent. Last seen is not
 * written per request (that would be a store write per read): it is when the expiry was last moved, the cookie's
 * expiry minus its max-age, so it is as fresh as `touchAfterSeconds` (or every request with `rolling`).
 */
const META = '~cs';

interface SessionMeta {
  /** ms since epoch the session began. */
  c: number;
  ip?: string;
  ua?: string;
}

type Bag = Record<string, unknown>;

const metaOf = (sess: unknown): SessionMeta | undefined => {
  const m = (sess as Bag | null | undefined)?.[META] as SessionMeta | undefined;
  return m && typeof m === 'object' && typeof m.c === 'number' ? m : undefined;
};

/** At login: a new lifetime, with the client's address and user agent (bounded, they are the client's words). */
export function stampLogin(req: Request, sess: object): void {
  const ua = req.get?.('user-agent');
  const ip = req.ip ?? req.socket?.remoteAddress;
  (sess as Bag)[META] = { c: Date.now(), ...(ip ? { ip: ip.slice(0, 64) } : {}), ...(ua ? { ua: ua.slice(0, 256) } : {}) } satisfies SessionMeta;
}

/** A session saved without a login (the app wrote to it): its lifetime starts with that first save. */
export function stampFirstSave(sess: object): void {
  if (!metaOf(sess)) (sess as Bag)[META] = { c: Date.now() } satisfies SessionMeta;
}

/** True when the session began more than `absoluteTimeoutSeconds` ago. */
export function pastAbsolute(sess: unknown, config: ResolvedConfig, now = Date.now()): boolean {
  const m = metaOf(sess);
  return config.absoluteTimeoutSeconds > 0 && m !== undefined && m.c + config.absoluteTimeoutSeconds * 1000 <= now;
}

/** One of a user's sessions, as listSessions() shows it. */
export interface SessionInfo {
  /** An opaque handle (a hash of the session id: the id itself is a bearer secret and never leaves the store). */
  readonly handle: string;
  /** True for the session of the request passed to listSessions(). */
  readonly current: boolean;
  readonly created: Date | undefined;
  readonly lastSeen: Date | undefined;
  readonly expires: Date | undefined;
  readonly address: string | undefined;
  readonly userAgent: string | undefined;
}

export const handleOfSid = (sid: string) => createHash('sha256').update(sid).digest('base64url').slice(0, 22);

export function describeSession(sid: string, sess: SessionData, currentSid: string | undefined): SessionInfo {
  const m = metaOf(sess);
  const exp = sess.cookie?.expires ? new Date(sess.cookie.expires) : undefined;
  const maxAge = (sess.cookie as { originalMaxAge?: number } | undefined)?.originalMaxAge;
  const seen = exp && typeof maxAge === 'number' ? new Date(exp.getTime() - maxAge) : undefined;
  return Object.freeze({
    handle: handleOfSid(sid),
    current: sid === currentSid,
    created: m ? new Date(m.c) : undefined,
    lastSeen: seen,
    expires: exp,
    address: m?.ip,
    userAgent: m?.ua,
  });
}

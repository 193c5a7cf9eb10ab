import type { Request } from 'express';
import type { Session, SessionData } from 'express-session';
import { NoSessionError } from './errors.ts';
import { kCookie, type CookieSettings } from './modes/store.ts';
import type { ClusterSession } from './types.ts';

export interface LoginOptions {
  /** Keys of the current (anonymous) session carried over to the new one, e.g. a cart. */
  keep?: readonly string[];
}

type SessionRecord = Session & Partial<SessionData> & Record<string, unknown>;

function sessionOf(req: Request, helper: string): SessionRecord {
  if (!req.session) throw new NoSessionError(helper);
  return req.session as SessionRecord;
}

/**
 * Logs a user in: a new session id (the old one is destroyed, against session fixation), the `keep` keys carried
 * over, `data` merged in, and saved before the promise resolves, so the next request already sees it.
 */
export async function login(req: Request, data: Record<string, unknown>, options: LoginOptions = {}): Promise<void> {
  const old = sessionOf(req, 'login');
  const kept: Record<string, unknown> = {};
  for (const key of options.keep ?? []) if (key !== 'cookie' && key in old) kept[key] = old[key];
  await new Promise<void>((resolve, reject) => old.regenerate((err) => (err ? reject(err) : resolve())));
  const fresh = sessionOf(req, 'login');
  Object.assign(fresh, kept, data);
  await new Promise<void>((resolve, reject) => fresh.save((err) => (err ? reject(err) : resolve())));
}

/** Logs out: destroys the session in the store and clears the cookie. */
export async function logout(req: Request): Promise<void> {
  const sess = sessionOf(req, 'logout');
  // Set by store mode only: JWT mode's destroy() clears its own cookie.
  const cookie = (req as unknown as Record<symbol, CookieSettings | undefined>)[kCookie];
  await new Promise<void>((resolve, reject) => sess.destroy((err) => (err ? reject(err) : resolve())));
  if (cookie && req.res && !req.res.headersSent) {
    const { name, path, domain, httpOnly, partitioned, priority } = cookie;
    // Same attributes as the cookie being cleared, or a browser may keep the original (e.g. a Secure one).
    const secure = cookie.secure === true || (cookie.secure === 'auto' && req.secure);
    const sameSite = cookie.sameSite === 'auto' ? (req.secure ? 'none' : 'lax') : cookie.sameSite;
    req.res.clearCookie(name, { path, httpOnly, sameSite, secure, ...(partitioned ? { partitioned } : {}), ...(priority ? { priority } : {}), ...(domain ? { domain } : {}) });
  }
}

/**
 * Destroys every live session of `userId` (as stored under the config's `userKey`) on every process and
 * instance sharing the store; resolves with how many there were (expressjs/session#865).
 */
export function logoutEverywhere(sessions: ClusterSession, userId: string | number): Promise<number> {
  return sessions.destroyUser(String(userId));
}

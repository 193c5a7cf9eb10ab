import type { Request } from 'express';
import type { Session, SessionData } from 'express-session';
import { deadline } from '@cluster-session/core';
import { NoSessionError, NotSupportedError, StoreUnavailableError } from './errors.ts';
import { kCookie, type CookieSettings } from './modes/store.ts';
import { configOf, handleOf } from './resolved.ts';
import { describeSession, handleOfSid, stampLogin, type SessionInfo } from './session-meta.ts';
import type { StoreHandle } from './stores/types.ts';
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
  // Store mode: when and where this session began (listSessions, absoluteTimeoutSeconds). Not in a JWT: its
  // claims travel in every request's cookie, and the token's own iat0/maxAge already bound its life.
  if ((req as unknown as Record<symbol, unknown>)[kCookie]) stampLogin(req, fresh);
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

export interface LogoutEverywhereOptions {
  /** A session id to keep (usually `req.sessionID`: "log out my other devices"). */
  except?: string;
}

function storeOf(sessions: ClusterSession, helper: string): StoreHandle {
  const handle = handleOf(sessions);
  if (handle) return handle;
  configOf(sessions, helper);
  throw new NotSupportedError(`${helper}() needs sessions it can list; JWT mode keeps none. Fix: use mode 'store', or rotate the JWT keys to end every session.`);
}

const bounded = <T>(sessions: ClusterSession, work: Promise<T>, what: string) => {
  const ms = configOf(sessions, what).storeTimeout * 5;
  return deadline(work, ms, () => new StoreUnavailableError(`${what}() did not finish within ${ms} ms`));
};

const destroyOne = (handle: StoreHandle, sid: string) =>
  new Promise<void>((resolve, reject) => handle.store.destroy(sid, (err?: unknown) => (err ? reject(err) : resolve())));

/**
 * Destroys every live session of `userId` (as stored under the config's `userKey`) on every process and
 * instance sharing the store; resolves with how many there were (expressjs/session#865). With `except`, that
 * session is kept ("log out everywhere else", expressjs/session#504).
 */
export async function logoutEverywhere(sessions: ClusterSession, userId: string | number, options: LogoutEverywhereOptions = {}): Promise<number> {
  if (options.except === undefined) return sessions.destroyUser(String(userId));
  const handle = storeOf(sessions, 'logoutEverywhere');
  const run = async () => {
    const mine = (await handle.listUser(String(userId))).filter((s) => s.sid !== options.except);
    await Promise.all(mine.map((s) => destroyOne(handle, s.sid)));
    return mine.length;
  };
  return bounded(sessions, run(), 'logoutEverywhere');
}

/**
 * The live sessions of `userId` on every store: created, last seen, expiry, address and user agent (recorded at
 * login()), and which one is `req`'s. Each has an opaque `handle` for logoutSession(); never the session id.
 */
export async function listSessions(sessions: ClusterSession, userId: string | number, req?: Request): Promise<SessionInfo[]> {
  const handle = storeOf(sessions, 'listSessions');
  const found = await bounded(sessions, handle.listUser(String(userId)), 'listSessions');
  return found
    .map((s) => describeSession(s.sid, s.sess, req?.sessionID))
    .sort((a, b) => (b.lastSeen?.getTime() ?? 0) - (a.lastSeen?.getTime() ?? 0));
}

/** Ends one session of `userId` by the `handle` listSessions() gave; resolves true when it existed. */
export async function logoutSession(sessions: ClusterSession, userId: string | number, sessionHandle: string): Promise<boolean> {
  const handle = storeOf(sessions, 'logoutSession');
  const run = async () => {
    const hit = (await handle.listUser(String(userId))).find((s) => handleOfSid(s.sid) === sessionHandle);
    if (hit) await destroyOne(handle, hit.sid);
    return hit !== undefined;
  };
  return bounded(sessions, run(), 'logoutSession');
}

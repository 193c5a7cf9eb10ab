import type { SessionData } from 'express-session';
import type { Logger } from './config.ts';
import { slot } from './side.ts';

const warned = new WeakSet<Logger>();

/**
 * The stored text a session was loaded from, by session object. A store's touch compares against it so that
 * rewriting the stored expiry can never overwrite a newer save or bring back a destroyed session. Kept beside the
 * session (side.ts): a loaded session is a plain object, as express-session's stores give it (issue #15).
 */
const loadedText = slot<string>('loaded');
export const loadedOf = (sess: object): string | undefined => loadedText.get(sess);
export function setLoaded(sess: object, text: string | undefined): void {
  if (text === undefined) loadedText.delete(sess);
  else loadedText.set(sess, text);
}

/**
 * Parses a stored session. Anything that is not a JSON object with a `cookie` object (corrupted by hand, another
 * app sharing the prefix, a truncated write) counts as no session: the client gets a fresh one instead of a 500
 * on every request. Logged once per logger so a bad key cannot flood the log.
 */
export function parseSession(raw: unknown, logger: Logger): SessionData | null {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = JSON.parse(raw);
    } catch {
      value = undefined;
    }
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const cookie = (value as { cookie?: unknown }).cookie;
    if (cookie && typeof cookie === 'object') return value as SessionData;
  }
  if (!warned.has(logger)) {
    warned.add(logger);
    logger.warn('cluster-session: a stored session is not a valid JSON session object; treating it as no session (logged once)');
  }
  return null;
}

/**
 * A session's data without its top-level cookie, as JSON: what express-session hashed to tell a modified session,
 * and what the guard and the engine compare to tell a changed one.
 */
export function dataJson(sess: object): string {
  const { cookie: _cookie, ...rest } = sess as Record<string, unknown>;
  return JSON.stringify(rest);
}

/** The user id a session belongs to, as indexed for logoutEverywhere(). */
export function userOf(sess: unknown, userKey: string): string | undefined {
  const v = (sess as Record<string, unknown> | null | undefined)?.[userKey];
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

/** Milliseconds since epoch the session expires at: the cookie's expiry, else now + ttl. */
export function expiresAt(sess: SessionData, ttlSeconds: number): number {
  const e = sess.cookie?.expires;
  if (e) {
    const t = new Date(e).getTime();
    if (Number.isFinite(t)) return t;
  }
  return Date.now() + ttlSeconds * 1000;
}

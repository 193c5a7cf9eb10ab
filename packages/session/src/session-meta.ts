import { createHash } from 'node:crypto';
import type { Request } from 'express';
import type { SessionData, Store } from 'express-session';
import type { StoreHandle } from './stores/types.ts';
import type { ResolvedConfig } from './config.ts';
import { slot, storeCopy } from './side.ts';

/**
 * What a session records about itself for listSessions() and the absolute lifetime, under one key of the stored
 * session: when it began (the login, or its first save), from which address and user agent. Last seen is not
 * written per request (that would be a store write per read): it is when the expiry was last moved, the cookie's
 * expiry minus its max-age, so it is as fresh as `touchAfterSeconds` (or every request with `rolling`).
 */
const META = '~cs';
/**
 * Where the live session keeps it: beside the object, not on it (side.ts), so `req.session` shows the app only its
 * own keys (no symbol either: a loaded session is plain, as under express-session).
 */
const metas = slot<SessionMeta>('meta');

interface SessionMeta {
  /** ms since epoch the session began. */
  c: number;
  ip?: string;
  ua?: string;
}

type Bag = Record<string | symbol, unknown>;

const metaOf = (sess: unknown): SessionMeta | undefined => {
  if (typeof sess !== 'object' || sess === null) return undefined;
  const m = metas.get(sess) ?? ((sess as Bag)[META] as SessionMeta | undefined);
  return m && typeof m === 'object' && typeof m.c === 'number' ? m : undefined;
};

/** At login: a new lifetime, with the client's address and user agent (bounded, they are the client's words). */
export function stampLogin(req: Request, sess: object): void {
  const ua = req.get?.('user-agent');
  const ip = req.ip ?? req.socket?.remoteAddress;
  metas.set(sess, { c: Date.now(), ...(ip ? { ip: ip.slice(0, 64) } : {}), ...(ua ? { ua: ua.slice(0, 256) } : {}) });
}

/** A session saved without a login (the app wrote to it): its lifetime starts with that first save. */
export function stampFirstSave(sess: object): void {
  if (!metaOf(sess)) metas.set(sess, { c: Date.now() });
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

type Cb = (err?: unknown, data?: any) => void;

/**
 * Moves the record between the stored form (a `~cs` key, sealed with the rest when encryption is on) and the
 * live session (the WeakMap above): wraps the store's get, createSession, set and touch, under the request guard.
 * A write hands the store a copy carrying the key, never the live session with a key added for the length of the
 * call: express-session hashes `req.session` for its "modified?" test while a touch is still in flight, and a key
 * seen there would send a cookie express-session would not (serializer.ts `storeCopy`).
 */
export function storeMeta(handle: StoreHandle): void {
  const store = handle.store as Store & Bag;
  // The built-in stores parse a new object for every get; a custom store may hand back one it keeps (a cache).
  const kept = handle.name === 'custom';
  const get = store.get.bind(store);
  store.get = (sid: string, cb: Cb) =>
    get(sid, (err, data) => {
      if (err) return cb(err);
      const bag = data as unknown as Bag | null | undefined;
      if (!bag || !(META in bag)) return cb(null, data);
      // The key comes off a copy when the object may be the store's own.
      const live = kept ? storeCopy(bag) : bag;
      const m = live[META] as SessionMeta | undefined;
      delete live[META];
      if (m && typeof m === 'object' && typeof m.c === 'number') metas.set(live, m);
      cb(null, live);
    });
  const createSession = store.createSession.bind(store);
  store.createSession = (req, sess) => {
    const s = createSession(req, sess);
    const meta = metas.get(sess);
    if (meta) metas.set(s, meta);
    return s;
  };
  for (const op of ['set', 'touch'] as const) {
    const original = store[op] as ((sid: string, sess: SessionData, cb?: Cb) => void) | undefined;
    if (typeof original !== 'function') continue;
    const bound = original.bind(store);
    store[op] = (sid: string, sess: SessionData, cb?: Cb) => {
      const meta = metas.get(sess);
      if (!meta) return bound(sid, sess, cb);
      const copy = storeCopy(sess);
      copy[META] = meta;
      return bound(sid, copy as SessionData, cb);
    };
  }
}

import { Store, type SessionData } from 'express-session';
import type { ResolvedConfig } from '../config.ts';
import { NotSupportedError } from '../errors.ts';
import { userOf } from '../serializer.ts';
import { checkJti, type DenyList, type StoreHandle } from './types.ts';

type Cb = (err?: unknown, value?: any) => void;
type Callable = (...args: any[]) => unknown;

/** A callback-style store method as a promise; a store that returns a promise instead is followed too. */
function call<T>(store: Store, method: string, ...args: unknown[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done: Cb = (err, value) => (err ? reject(err) : resolve(value as T));
    try {
      const r = ((store as unknown as Record<string, Callable>)[method]!).call(store, ...args, done) as Promise<T> | undefined;
      if (r && typeof r.then === 'function') r.then(resolve, reject);
    } catch (err) {
      reject(err);
    }
  });
}

/**
 * An express-session Store instance the app passed in (connect-pg-simple, a DynamoDB store, its own): used as it is,
 * wrapped by guard.ts like the built-in stores (per-request budget, fast 503, size limit, lazy touch through its
 * touch when it has one). Its readiness follows the 'connect'/'disconnect' events express-session itself listens
 * to. A store that does not inherit from express-session's Store gets Store's generic methods (createSession,
 * load, regenerate) instead of failing on the first request. It is never closed here: it is the app's.
 */
export function createCustomHandle(config: ResolvedConfig, store: Store): StoreHandle {
  const s = store as unknown as Record<string, unknown>;
  for (const m of ['createSession', 'load', 'regenerate'] as const) {
    if (typeof s[m] !== 'function') s[m] = (Store.prototype as unknown as Record<string, unknown>)[m];
  }
  if (typeof (store as { on?: unknown }).on !== 'function') s.on = () => store;
  let up = true;
  const waiting = new Set<() => void>();
  store.on('disconnect', () => void (up = false));
  store.on('connect', () => {
    up = true;
    for (const w of waiting) w();
    waiting.clear();
  });
  const name = (store.constructor?.name && store.constructor.name !== 'Object' ? store.constructor.name : 'custom') as string;
  /** Every stored session, through the store's optional all(): the per-user helpers need it. */
  const sessionsOf = async (what: string): Promise<Array<{ sid: string; sess: SessionData }>> => {
    if (typeof s.all !== 'function') {
      throw new NotSupportedError(`${what} needs a store that can list its sessions: ${name} has no all(). Fix: use a store with all(), or one of the built-in stores.`);
    }
    const all = await call<SessionData[] | Record<string, SessionData | string> | null>(store, 'all');
    // Stores answer as an object by id (MemoryStore) or an array whose items carry the id (connect-redis).
    return Array.isArray(all)
      ? all.flatMap((x) => {
          const id = (x as { id?: unknown }).id ?? (x as { _id?: unknown })._id;
          return typeof id === 'string' ? [{ sid: id, sess: x }] : [];
        })
      : Object.entries(all ?? {}).map(([sid, x]) => ({ sid, sess: typeof x === 'string' ? (JSON.parse(x) as SessionData) : x }));
  };
  return {
    name: 'custom',
    store,
    address: name,
    isUp: () => up,
    whenUp: (ms) =>
      up
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              resolve(true);
            };
            const timer = setTimeout(() => {
              waiting.delete(done);
              resolve(up);
            }, ms);
            waiting.add(done);
          }),
    async ping() {
      await call(store, 'get', 'cluster-session-health-probe');
    },
    async listUser(userId) {
      return (await sessionsOf('listSessions()')).filter(({ sess }) => userOf(sess, config.userKey) === userId);
    },
    async destroyUser(userId) {
      let n = 0;
      for (const { sid } of await this.listUser(userId)) {
        await call(store, 'destroy', sid);
        n++;
      }
      return n;
    },
    async close() {},
  };
}

/**
 * Revoked JWT ids on any express-session store: each entry is a session record (`cs-deny:<jti>`) whose cookie
 * expires with its token, so the store's own expiry removes it.
 */
export function customDenyList(store: Store): DenyList {
  const id = (jti: string) => `cs-deny:${jti}`;
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      const ms = expiresAtMs - Date.now();
      if (ms <= 0) return;
      const record = { cookie: { originalMaxAge: ms, expires: new Date(expiresAtMs), path: '/', httpOnly: true }, revoked: true };
      await call(store, 'set', id(jti), record);
    },
    async has(jti) {
      checkJti(jti);
      const rec = await call<{ revoked?: boolean; cookie?: { expires?: string | Date } } | null | undefined>(store, 'get', id(jti));
      if (!rec?.revoked) return false;
      const exp = rec.cookie?.expires ? new Date(rec.cookie.expires).getTime() : Infinity;
      return exp > Date.now();
    },
    async close() {},
  };
}

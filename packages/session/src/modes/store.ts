import type { Request, Response } from 'express';
import type { SessionData } from 'express-session';
import { deadline } from '@cluster-session/core';
import { sendSessionError, errorHandler } from '../answer.ts';
import { runWithBudget, StoreBudget } from '../budget.ts';
import { publicView, type ResolvedConfig } from '../config.ts';
import { SessionTooLargeError, StoreUnavailableError } from '../errors.ts';
import { guardCookiePrefix } from '../cookie-guard.ts';
import { encryptStore } from '../encryption.ts';
import { sessionEngine, type EngineOptions } from '../engine.ts';
import { guardStore, hasState, isDirty, isFresh, markState, wasSaved } from '../guard.ts';
import { attachHandle } from '../resolved.ts';
import { pastAbsolute, stampFirstSave, storeMeta } from '../session-meta.ts';
import { createStoreHandle } from '../stores/index.ts';
import type { ClusterSession, SessionHealth } from '../types.ts';

/** The cookie settings of the request's session, for logout() to clear the cookie with the same attributes. */
export const kCookie = Symbol('cluster-session.cookie');
export type CookieSettings = ResolvedConfig['cookie'];

/** Store mode: express-session's semantics (engine.ts) on the configured store, every store call bounded, changed sessions saved before the answer. */
export function createStoreMode(config: ResolvedConfig): ClusterSession {
  const handle = createStoreHandle(config);
  // Under the guard: the size limit and the request budget see the app's data, the store sees sealed data.
  encryptStore(handle, config);
  storeMeta(handle);
  guardStore(handle, config);
  const { cookie } = config;
  const inner = sessionEngine({
    store: handle.store,
    secrets: config.secrets,
    name: cookie.name,
    resave: config.resave,
    saveUninitialized: config.saveUninitialized,
    rolling: config.rolling,
    unset: config.unset,
    genid: config.genid,
    trustProxy: config.trustProxy,
    cookie: {
      httpOnly: cookie.httpOnly,
      sameSite: cookie.sameSite,
      secure: cookie.secure,
      path: cookie.path,
      // express-session: a fixed `expires` replaces the maxAge; null maxAge is a browser-session cookie.
      ...(config.cookieExpires ? { expires: new Date(config.cookieExpires) } : { maxAge: config.cookieMaxAge }),
      ...(cookie.partitioned ? { partitioned: true } : {}),
      ...(cookie.priority ? { priority: cookie.priority } : {}),
      ...(cookie.domain ? { domain: cookie.domain } : {}),
    } as EngineOptions['cookie'],
    saveFirst: (req, sess) => mustSave(sess, req.sessionID!),
    beforeSave: stampFirstSave,
    saveFailed: (req, res, err, end) => {
      if (!expected(err)) config.logger.error(`cluster-session: saving the session failed: ${(err as Error)?.message}`);
      sendSessionError(res as Response, err, { replace: true, end });
    },
  });
  // After sessionEngine(): it sets store.generate there.
  guardCookiePrefix(handle.store, cookie.name);
  let lastLogged = '';
  const logLate = (err: unknown) => {
    const msg = `cluster-session: after the response was sent: ${(err as Error)?.message ?? String(err)}`;
    if (msg !== lastLogged) config.logger.warn((lastLogged = msg));
  };
  const unavailable = () => new StoreUnavailableError(`${handle.name} store is not connected`);
  /** The store's own refusals, answered as such; anything else is a bug worth a log line and a 500. */
  const expected = (err: unknown) => err instanceof StoreUnavailableError || err instanceof SessionTooLargeError;

  /**
   * Whether express-session would write this session at the end of the request: changed, or new with
   * saveUninitialized, or loaded with resave, and not written in this request yet. The save is made here, before
   * the answer, rather than by express-session after the headers went out, so a failed save still changes the answer.
   */
  const mustSave = (sess: SessionData, id: string) =>
    isDirty(sess, id) || ((config.resave || config.saveUninitialized) && !wasSaved(sess) && (isFresh(sess) ? config.saveUninitialized : config.resave));

  const run = async (req: Request, res: Response, next: (err?: unknown) => void, budget: StoreBudget) => {
    (req as unknown as Record<symbol, unknown>)[kCookie] = cookie;
    if (!handle.isUp()) {
      const started = Date.now();
      const up = await handle.whenUp(budget.remaining());
      budget.charge(Date.now() - started);
      if (!up) return sendSessionError(res, unavailable());
    }
    let called = false;
    inner(req, res, (err?: unknown) => {
      if (called) return void (err && logLate(err));
      called = true;
      if (err) return expected(err) ? sendSessionError(res, err) : next(err);
      // express-session skips the session when its store said 'disconnect' after our check: same answer as above.
      if (!req.session && !handle.isUp()) return sendSessionError(res, unavailable());
      const proceed = () => {
        if (req.session) {
          if (!hasState(req.session)) markState(req.session as SessionData, req.sessionID, false, true);
        }
        next();
      };
      // absoluteTimeoutSeconds: a session older than that ends here however active it was (rolling included):
      // destroyed in the store, and the request goes on with a fresh, anonymous one.
      if (!req.session || !pastAbsolute(req.session, config)) return proceed();
      req.session.regenerate((regenErr?: unknown) => (regenErr ? sendSessionError(res, regenErr) : proceed()));
    });
  };

  const middleware = ((req, res, next) => {
    if (req.session) return next();
    // One store budget for the whole request: every store step below and in the app's handlers draws on it.
    const budget = new StoreBudget(config.storeTimeout);
    runWithBudget(req, budget, () => run(req, res, next, budget)).catch(next);
  }) as ClusterSession;

  const bounded = <T>(work: Promise<T>, ms: number) =>
    deadline(work, ms, () => new StoreUnavailableError(`${handle.name} store did not answer within ${ms} ms`));

  return Object.assign(attachHandle(middleware, handle), {
    config: publicView(config),
    store: handle.store,
    errorHandler,
    async health(): Promise<SessionHealth> {
      // The same words wherever they are read (/healthz, a launcher waiting for it, logs): which store, where, why.
      const label = `${handle.name} store${handle.address ? ` at ${handle.address}` : ''}`;
      try {
        await deadline(handle.ping(), config.storeTimeout, () => new StoreUnavailableError(`${label} did not answer within ${config.storeTimeout} ms`));
        return { ok: true, mode: 'store' as const, store: handle.name };
      } catch (err) {
        const cause = handle.lastError?.() ?? (handle.isUp() ? undefined : 'not connected yet');
        const error = cause ? `${label} is unreachable: ${cause}` : err instanceof StoreUnavailableError ? err.message : `${label} failed: ${(err as Error).message}`;
        return { ok: false, mode: 'store' as const, store: handle.name, error };
      }
    },
    close: () => handle.close(),
    destroyUser: (userId: string) => bounded(handle.destroyUser(userId), config.storeTimeout * 5),
  });
}

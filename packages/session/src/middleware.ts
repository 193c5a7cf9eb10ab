import type { ErrorRequestHandler, Request, RequestHandler, Response } from 'express';
import session, { type SessionData, type Store } from 'express-session';
import { runWithBudget, StoreBudget } from './budget.ts';
import { resolveConfig, type ResolvedConfig, type SessionConfigInput } from './config.ts';
import { ClusterSessionError, SessionTooLargeError, StoreUnavailableError } from './errors.ts';
import { guardStore, isDirty, markState, kState } from './guard.ts';
import { createJwtMode } from './jwt-mode.ts';
import { createStoreHandle } from './stores/index.ts';
import type { StoreHandle } from './stores/types.ts';

export interface SessionHealth {
  ok: boolean;
  mode: 'store' | 'jwt';
  store: string;
  error?: string;
}

/** The middleware clusterSession() returns: mount it with app.use(); the extras serve health checks and shutdown. */
export interface ClusterSession extends RequestHandler {
  readonly config: ResolvedConfig;
  /** The express-session Store (store mode). */
  readonly store: Store | undefined;
  /** One store round trip, bounded by storeTimeout. Never rejects. */
  health(): Promise<SessionHealth>;
  /** Closes the clients and files clusterSession created (never a client you passed in). */
  close(): Promise<void>;
  /** Express error middleware answering this package's errors (from login()/logout() in routes) as JSON. */
  readonly errorHandler: ErrorRequestHandler;
  /** Destroys every session of one user; see logoutEverywhere(). */
  destroyUser(userId: string): Promise<number>;
}

/** Set on each request that went through the middleware, so helpers find the cookie settings. */
export const kConfig = Symbol('cluster-session.config');

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The JSON body a client sees for one of our errors: a message and a code, never a stack or a store address. */
export function errorResponse(err: ClusterSessionError): { status: number; body: Record<string, unknown> } {
  if (err instanceof SessionTooLargeError) {
    return { status: 413, body: { error: 'session too large', code: err.code, limit: err.limit } };
  }
  return { status: 503, body: { error: 'session store unavailable', code: err.code } };
}

export function sendError(res: Response, err: ClusterSessionError): void {
  const { status, body } = errorResponse(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  if (status === 503) res.setHeader('Retry-After', '1');
  res.end(JSON.stringify(body));
}

const answerable = (err: unknown): err is ClusterSessionError =>
  err instanceof StoreUnavailableError || err instanceof SessionTooLargeError;

/**
 * Express middleware giving `req.session`, backed by the configured store or by JWT, from `config` merged over
 * the environment. Throws ConfigError at once for a wrong value.
 */
export function clusterSession(input?: SessionConfigInput): ClusterSession {
  const config = resolveConfig(input);
  if (config.mode === 'jwt') return createJwtMode(config);
  const handle = createStoreHandle(config);
  guardStore(handle, config);
  return storeMiddleware(config, handle);
}

function storeMiddleware(config: ResolvedConfig, handle: StoreHandle): ClusterSession {
  const { cookie } = config;
  const inner = session({
    store: handle.store,
    secret: config.secrets,
    name: cookie.name,
    resave: false,
    saveUninitialized: false,
    rolling: config.rolling,
    unset: 'keep',
    ...(config.trustProxy !== undefined ? { proxy: config.trustProxy } : {}),
    cookie: {
      httpOnly: cookie.httpOnly,
      sameSite: cookie.sameSite,
      secure: cookie.secure,
      path: cookie.path,
      maxAge: config.ttl * 1000,
      ...(cookie.domain ? { domain: cookie.domain } : {}),
    },
  });
  let lastLogged = '';
  const logLate = (err: unknown) => {
    const msg = `cluster-session: after the response was sent: ${(err as Error)?.message ?? String(err)}`;
    if (msg !== lastLogged) config.logger.warn((lastLogged = msg));
  };

  /** Saves a changed session before the response goes out, so a failed or refused save changes the answer. */
  const patchEnd = (req: Request, res: Response) => {
    const sessionEnd = res.end as (...a: unknown[]) => Response;
    res.end = function end(this: Response, ...args: unknown[]) {
      const sess = req.session;
      if (res.headersSent || !sess || !isDirty(sess as SessionData, req.sessionID)) return sessionEnd.apply(this, args);
      // express-session resets the expiry (touch) only when it writes the headers, after this save: do it first,
      // or the store keeps the expiry the session was loaded with and an active, writing user is logged out at it.
      sess.touch();
      sess.save((err?: unknown) => {
        if (!err) return void sessionEnd.apply(this, args);
        if (!answerable(err)) config.logger.error(`cluster-session: saving the session failed: ${(err as Error)?.message}`);
        // express-session then neither saves nor sets the cookie: nothing is half-saved.
        (req as { session?: unknown }).session = undefined;
        for (const h of res.getHeaderNames()) res.removeHeader(h);
        const { status, body } = answerable(err) ? errorResponse(err) : { status: 500, body: { error: 'session could not be saved' } };
        res.statusCode = status;
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Cache-Control', 'no-store');
        if (status === 503) res.setHeader('Retry-After', '1');
        sessionEnd.call(this, JSON.stringify(body));
      });
      return this;
    } as Response['end'];
  };

  const run = async (req: Request, res: Response, next: (err?: unknown) => void, budget: StoreBudget) => {
    (req as unknown as Record<symbol, unknown>)[kConfig] = config;
    if (!handle.isUp()) {
      const started = Date.now();
      const up = await handle.whenUp(budget.remaining());
      budget.charge(Date.now() - started);
      if (!up) return sendError(res, new StoreUnavailableError(`${handle.name} store is not connected`));
    }
    let called = false;
    inner(req, res, (err?: unknown) => {
      if (called) return void (err && logLate(err));
      called = true;
      if (err) return answerable(err) ? sendError(res, err) : next(err);
      // express-session skips the session when its store said 'disconnect' after our check: same answer as above.
      if (!req.session && !handle.isUp()) return sendError(res, new StoreUnavailableError(`${handle.name} store is not connected`));
      if (req.session) {
        if (!(req.session as unknown as Record<symbol, unknown>)[kState]) markState(req.session as SessionData, req.sessionID, false);
        patchEnd(req, res);
      }
      next();
    });
  };

  const middleware = ((req, res, next) => {
    if (req.session) return next();
    // One store budget for the whole request: every store step below and in the app's handlers draws on it.
    const budget = new StoreBudget(config.storeTimeout);
    runWithBudget(req, budget, () => run(req, res, next, budget)).catch(next);
  }) as ClusterSession;

  const errorHandler: ErrorRequestHandler = (err, req, res, next) => {
    if (!answerable(err)) return next(err);
    // The store just failed: answering must not try to save the session again.
    (req as { session?: unknown }).session = undefined;
    sendError(res, err);
  };

  return Object.assign(middleware, {
    config,
    store: handle.store,
    errorHandler,
    async health(): Promise<SessionHealth> {
      // The same words wherever they are read (/healthz, a launcher waiting for it, logs): which store, where, why.
      const label = `${handle.name} store${handle.address ? ` at ${handle.address}` : ''}`;
      try {
        await withTimeout(handle.ping(), config.storeTimeout, label);
        return { ok: true, mode: 'store' as const, store: handle.name };
      } catch (err) {
        const cause = handle.lastError?.() ?? (handle.isUp() ? undefined : 'not connected yet');
        const error = cause ? `${label} is unreachable: ${cause}` : err instanceof StoreUnavailableError ? err.message : `${label} failed: ${(err as Error).message}`;
        return { ok: false, mode: 'store' as const, store: handle.name, error };
      }
    },
    close: () => handle.close(),
    destroyUser: (userId: string) => withTimeout(handle.destroyUser(userId), config.storeTimeout * 5, `${handle.name} store`),
  });
}

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { clusterSession, csrf, login, loginThrottle, logout, LoginThrottledError, type ClusterSessionConfig } from '@cluster-session/session';
import type { Logger } from 'pino';
import { clearLoginFlash, readLoginFlash, setLoginFlash } from './flash.ts';
import { createLogger, requestLogger } from './logger.ts';
import { authenticate } from './users.ts';
import { loginPage, notFoundPage, profilePage, sessionLabel, type ServedBy } from './views.ts';

declare module 'express-session' {
  interface SessionData {
    user: string;
    hits: number;
  }
}

export interface AppOptions {
  /** Session configuration; by default everything comes from the environment (SESSION_STORE, SESSION_MODE, ...). */
  session?: ClusterSessionConfig;
  /** Shown on every page and in /me so you can watch requests hop between instances. */
  instance?: string;
  /** The app's pino logger; by default LOG_LEVEL and LOG_FORMAT from the environment (logger.ts). */
  logger?: Logger;
}

const MAX_FIELD = 256;
const PUBLIC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'public');

/** The pages load their stylesheet and script from this origin only: an injected tag could not run. */
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** True when the client is a browser form post, which wants redirects and HTML rather than JSON. */
const wantsHtml = (req: Request) => req.is('application/x-www-form-urlencoded') !== false && req.accepts(['json', 'html']) === 'html';

export function createApp(options: AppOptions = {}) {
  const sessions = clusterSession(options.session);
  // Failed sign-ins counted per account and per address in the session store, shared by every worker and
  // instance (LOGIN_MAX_FAILURES, LOGIN_BLOCK_SECONDS ...): a locked attempt costs no scrypt work.
  const throttle = loginThrottle(sessions);
  // Every form post must come from this site (Sec-Fetch-Site / Origin) and carry the page's token.
  const protect = csrf(sessions);
  const served: ServedBy = {
    worker: process.pid,
    instance: options.instance ?? process.env.INSTANCE ?? 'local',
    sessions: sessionLabel(sessions.config.mode, sessions.config.store.type),
    ...(process.env.CLUSTER_SESSION_NAME ? { cluster: process.env.CLUSTER_SESSION_NAME } : {}),
  };
  const logger = options.logger ?? createLogger();
  const app = express();
  app.disable('x-powered-by');
  // First, so every answer (errors and 404s included) is logged with its request id.
  app.use(requestLogger(logger));
  app.use((_req, res, next) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'same-origin');
    // Which instance and worker answered, on every response (the pages and /me show it too): lets a client and
    // the tests watch requests spread without reading each body.
    res.setHeader('X-Served-By', `${encodeURIComponent(served.instance)}/${served.worker}`);
    next();
  });
  // Behind the bundled balancer or nginx on this host: trust loopback proxies for the client address and protocol
  // (so Secure cookies are set when the proxy says the client used HTTPS). Override with TRUST_PROXY.
  app.set('trust proxy', process.env.TRUST_PROXY ?? 'loopback');

  // Health first and without a session: the balancer polls it, and it must say whether the store is reachable.
  app.get('/healthz', async (_req, res) => {
    const health = await sessions.health();
    res.status(health.ok ? 200 : 503).json({ ...health, ...served });
  });

  // Stylesheet, script and icon need no session: served before it, so they never touch the store.
  app.use(express.static(PUBLIC, { index: false }));
  app.get('/favicon.ico', (_req, res) => res.redirect(301, '/favicon.svg'));

  app.use(express.json({ limit: '16kb' }));
  app.use(express.urlencoded({ extended: false, limit: '16kb' }));
  app.use(sessions);
  app.use(protect);

  app.get('/', (req, res) => {
    // Pages show who served them: never from a cache.
    res.type('html').setHeader('Cache-Control', 'no-store');
    const user = req.session.user;
    if (user) return void res.send(profilePage(served, user, req.session.hits ?? 0, protect.token(req, res)));
    const flash = readLoginFlash(req);
    if (flash) clearLoginFlash(res);
    res.send(loginPage(served, flash, protect.token(req, res)));
  });

  // A browser's form gets post-redirect-get: success or failure, a 303 to / (a reload never re-posts the form),
  // and a failure's message travels in a short-lived cookie. API clients get the JSON contract: 200, 401, 400.
  app.post('/login', async (req: Request, res: Response) => {
    const { username, password } = (req.body ?? {}) as Record<string, unknown>;
    const html = wantsHtml(req);
    if (!isField(username) || !isField(password)) {
      if (html) return void setLoginFlash(req, res, 'missing', typeof username === 'string' ? username : '').redirect(303, '/');
      return void res.status(400).json({ error: 'body must be {"username": string, "password": string}' });
    }
    let attempt;
    try {
      attempt = await throttle.check(req, username);
    } catch (err) {
      // The form gets its message and Retry-After on the redirect; an API client the 429 JSON answer.
      if (!(html && err instanceof LoginThrottledError)) throw err;
      res.setHeader('Retry-After', String(err.retryAfter));
      return void setLoginFlash(req, res, 'throttled', username).redirect(303, '/');
    }
    const user = await authenticate(username, password);
    if (!user) {
      await attempt.failed();
      if (html) return void setLoginFlash(req, res, 'wrong', username).redirect(303, '/');
      return void res.status(401).json({ error: 'wrong username or password' });
    }
    await attempt.succeeded();
    await login(req, { user, hits: 0 });
    if (html) return void res.redirect(303, '/');
    res.json({ user });
  });

  app.get('/me', (req, res) => {
    const user = req.session.user;
    if (!user) return void res.status(401).json({ error: 'not logged in', worker: served.worker, instance: served.instance });
    const hits = (req.session.hits ?? 0) + 1;
    req.session.hits = hits;
    res.json({ user, hits, worker: served.worker, instance: served.instance });
  });

  app.post('/logout', async (req, res) => {
    await logout(req);
    if (wantsHtml(req)) return void res.redirect(303, '/');
    res.json({ ok: true });
  });

  app.use((req, res) => {
    res.status(404);
    if (req.accepts(['json', 'html']) === 'html') return void res.type('html').send(notFoundPage(served));
    res.json({ error: 'not found' });
  });

  // Every error becomes a short JSON answer with a precise status; the stack stays in the log, never on the wire.
  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    const status = httpStatus(err);
    if (status >= 500) req.log.error({ err }, `${req.method} ${req.originalUrl} failed`);
    if (res.headersSent) return void res.end();
    const error = status >= 500 && status !== 503 ? 'internal error' : publicMessage(err, status);
    res.status(status).json({ error, ...(typeof err?.code === 'string' ? { code: err.code } : {}) });
  };
  // Store failures from login()/logout() become 503 (store down) or 413 (session too large) with Retry-After.
  app.use(sessions.errorHandler);
  app.use(onError);

  return Object.assign(app, { sessions, throttle });
}

function isField(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_FIELD;
}

function httpStatus(err: any): number {
  const status = Number(err?.status ?? err?.statusCode);
  return Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
}

function publicMessage(err: any, status: number): string {
  if (err?.type === 'entity.parse.failed') return 'malformed request body';
  if (err?.type === 'entity.too.large') return 'request body too large';
  if (status === 503) return typeof err?.message === 'string' && err.expose !== false ? err.message : 'service unavailable';
  return typeof err?.message === 'string' && err.expose !== false ? err.message : 'bad request';
}

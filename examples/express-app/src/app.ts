import express, { type ErrorRequestHandler, type Request, type Response } from 'express';
import { clusterSession, login, logout, type ClusterSessionConfig } from '@cluster-session/session';
import { authenticate } from './users.ts';
import { loginPage, profilePage, type ServedBy } from './views.ts';

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
}

const MAX_FIELD = 256;

/** True when the client is a browser form post, which wants redirects and HTML rather than JSON. */
const wantsHtml = (req: Request) => req.is('application/x-www-form-urlencoded') !== false && req.accepts(['json', 'html']) === 'html';

export function createApp(options: AppOptions = {}) {
  const served: ServedBy = { worker: process.pid, instance: options.instance ?? process.env.INSTANCE ?? 'local' };
  const sessions = clusterSession(options.session);
  const app = express();
  app.disable('x-powered-by');
  // Behind the bundled balancer or nginx on this host: trust loopback proxies for the client address and protocol
  // (so Secure cookies are set when the proxy says the client used HTTPS). Override with TRUST_PROXY.
  app.set('trust proxy', process.env.TRUST_PROXY ?? 'loopback');

  // Health first and without a session: the balancer polls it, and it must say whether the store is reachable.
  app.get('/healthz', async (_req, res) => {
    const health = await sessions.health();
    res.status(health.ok ? 200 : 503).json({ ...health, ...served });
  });

  app.use(express.json({ limit: '16kb' }));
  app.use(express.urlencoded({ extended: false, limit: '16kb' }));
  app.use(sessions);

  app.get('/', (req, res) => {
    res.type('html');
    const user = req.session.user;
    res.send(user ? profilePage(served, user, req.session.hits ?? 0) : loginPage(served));
  });

  app.post('/login', async (req: Request, res: Response) => {
    const { username, password } = (req.body ?? {}) as Record<string, unknown>;
    const html = wantsHtml(req);
    if (!isField(username) || !isField(password)) {
      res.status(400);
      if (html) return void res.type('html').send(loginPage(served, 'Enter a username and a password.'));
      return void res.json({ error: 'body must be {"username": string, "password": string}' });
    }
    const user = await authenticate(username, password);
    if (!user) {
      res.status(401);
      if (html) return void res.type('html').send(loginPage(served, 'Wrong username or password.'));
      return void res.json({ error: 'wrong username or password' });
    }
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

  app.use((_req, res) => {
    res.status(404).json({ error: 'not found' });
  });

  // Every error becomes a short JSON answer with a precise status; the stack stays in the log, never on the wire.
  const onError: ErrorRequestHandler = (err, req, res, _next) => {
    const status = httpStatus(err);
    if (status >= 500) console.error(`${req.method} ${req.originalUrl}: ${err instanceof Error ? err.stack : String(err)}`);
    if (res.headersSent) return void res.end();
    const error = status >= 500 && status !== 503 ? 'internal error' : publicMessage(err, status);
    res.status(status).json({ error, ...(typeof err?.code === 'string' ? { code: err.code } : {}) });
  };
  // Store failures from login()/logout() become 503 (store down) or 413 (session too large) with Retry-After.
  app.use(sessions.errorHandler);
  app.use(onError);

  return Object.assign(app, { sessions });
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

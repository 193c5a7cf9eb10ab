import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { sendAnswer } from '@cluster-session/core';
import type { Registry } from 'prom-client';
import { BadRequestError } from './errors.ts';
import { statusPage } from './status-page.ts';

/** What the admin server serves beyond the balancer's status: Prometheus metrics and the stack view. */
interface AdminViews {
  /** Brings the status and the metrics up to date before an answer (a balancer with worker threads asks them). */
  refresh: (() => Promise<void>) | undefined;
  /** The balancer's registry (metrics.ts); undefined when `metrics: false`. */
  metrics: Registry | undefined;
  /** `/stack.json`: the balancer status, the charts' history and each instance's workers (stack.ts). */
  stack(): Promise<unknown>;
}

/**
 * The admin server: `/` is the live status page (status-page.ts) over `/stack.json`; `/status.json` is the
 * balancer's own state for scripts; `/metrics` is Prometheus' text format; `/healthz` is 200 while at least one
 * instance is up, else 503. Bound to 127.0.0.1 unless told otherwise: it shows internal addresses.
 */
export function createAdminServer(status: () => { upstreams: Array<{ state: string }> }, views: AdminViews): http.Server {
  const fresh = new Set(['/healthz', '/status.json', '/stack.json', '/metrics']);
  return http.createServer((req, res) => {
    const refresh = views.refresh;
    if (refresh && fresh.has((req.url ?? '/').split('?', 1)[0]!)) {
      // A refresh never fails: a thread that does not answer in time gives its previous report.
      void refresh().then(() => answer(req, res));
      return;
    }
    answer(req, res);
  });

  function answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      sendAnswer(res, { status: 405, code: BadRequestError.code, error: 'method not allowed' });
      return;
    }
    if (path === '/healthz') {
      // For whatever watches the balancer itself: healthy while at least one instance can take requests.
      const up = status().upstreams.filter((u) => u.state === 'up').length;
      res.writeHead(up > 0 ? 200 : 503, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ ok: up > 0, up }));
      return;
    }
    if (path === '/status.json') {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
      res.end(JSON.stringify(status(), null, 2));
      return;
    }
    if (path === '/stack.json') {
      void views.stack().then((body) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      });
      return;
    }
    if (path === '/metrics' && views.metrics) {
      const registry = views.metrics;
      void registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType, 'cache-control': 'no-store' });
          res.end(text);
        },
        (err: Error) => sendAnswer(res, { status: 500, code: BadRequestError.code, error: `metrics failed: ${err.message}` }),
      );
      return;
    }
    if (path === '/' || path === '/index.html') {
      const nonce = randomBytes(16).toString('base64');
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'`,
        'x-content-type-options': 'nosniff',
      });
      res.end(statusPage(nonce));
      return;
    }
    sendAnswer(res, { status: 404, code: BadRequestError.code, error: 'not found' });
  }
}

import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { sendAnswer } from '@cluster-session/core';
import { BadRequestError } from './errors.ts';

/**
 * The status page: `/` is HTML that renders `/status.json` and refreshes it every second; `/status.json` is the
 * same data for scripts; `/healthz` is 200 while at least one instance is up, else 503. Bound to 127.0.0.1 unless told otherwise: it shows internal addresses.
 */
export function createAdminServer(status: () => { upstreams: Array<{ state: string }> }): http.Server {
  return http.createServer((req, res) => {
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
    if (path === '/' || path === '/index.html') {
      const nonce = randomBytes(16).toString('base64');
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'`,
        'x-content-type-options': 'nosniff',
      });
      res.end(page(nonce));
      return;
    }
    sendAnswer(res, { status: 404, code: BadRequestError.code, error: 'not found' });
  });
}

function page(nonce: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cluster-session balancer</title>
<style nonce="${nonce}">
body{font:14px system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-top:1rem}th,td{padding:.35rem .8rem;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.up{color:#0a7d32;font-weight:600}.down{color:#c0262d;font-weight:600}.draining{color:#b26b00;font-weight:600}
#error{color:#c0262d}
</style></head>
<body>
<h1>cluster-session balancer</h1>
<p id="summary">loading…</p>
<p id="error" role="alert"></p>
<table id="upstreams"><thead><tr>
<th>instance</th><th>url</th><th>state</th><th>weight</th><th>active</th><th>requests</th><th>errors</th><th>retries</th><th>last check</th><th>last error</th>
</tr></thead><tbody></tbody></table>
<script nonce="${nonce}">
const tbody = document.querySelector('#upstreams tbody');
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = String(text); if (cls) td.className = cls; return td; }
async function refresh() {
  try {
    const res = await fetch('status.json', { cache: 'no-store' });
    const s = await res.json();
    document.getElementById('summary').textContent =
      'listening on ' + s.url + ' · strategy ' + s.strategy + ' · ' + s.totals.openConnections + ' open connections (' + s.totals.connections + ' since start) · ' +
      s.totals.requests + ' requests · ' + s.upstreams.filter((u) => u.state === 'up').length + '/' + s.upstreams.length + ' up';
    tbody.replaceChildren();
    for (const u of s.upstreams) {
      const row = tbody.insertRow();
      row.dataset.id = u.id;
      cell(row, u.id); cell(row, u.url);
      cell(row, u.state + (u.ejectedForMs > 0 ? ' (ejected ' + Math.ceil(u.ejectedForMs / 1000) + ' s)' : ''), u.state);
      cell(row, u.weight, 'num'); cell(row, u.active, 'num'); cell(row, u.requests, 'num');
      cell(row, u.errors, 'num'); cell(row, u.retries, 'num');
      cell(row, u.lastCheck ? (u.lastCheck.ok ? 'ok' : 'failed') + ' (' + u.lastCheck.detail + ')' : '—');
      cell(row, u.lastError || '—');
    }
    document.getElementById('error').textContent = '';
  } catch (err) {
    document.getElementById('error').textContent = 'status unavailable: ' + err.message;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
`;
}

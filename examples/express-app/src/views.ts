/**
 * The starter's pages: plain HTML from template strings (every value escaped), one stylesheet and one small
 * script from public/, so the Content-Security-Policy in app.ts can forbid inline code.
 */
const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** Who served this response, and with which session setup: shown so a visitor can watch requests move. */
export interface ServedBy {
  worker: number;
  instance: string;
  /** e.g. "sqlite store" or "JWT tokens"; see sessionLabel(). */
  sessions: string;
  /** The cluster's name when running under cluster-session (CLUSTER_SESSION_NAME): the page names its commands. */
  cluster?: string;
}

const STORES: Record<string, string> = {
  sqlite: 'SQLite store (one file for every process on this host)',
  redis: 'Redis store (shared by every instance)',
  mongo: 'MongoDB store (shared by every instance)',
  memory: 'memory store (this process only: sticky routing keeps you here)',
};

export function sessionLabel(mode: 'store' | 'jwt', store: string): string {
  return mode === 'jwt' ? 'JWT tokens (stateless; nothing stored per login)' : (STORES[store] ?? `${store} store`);
}

function page(title: string, body: string, script?: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} · cluster-session</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/style.css">
${script ? `<script src="${script}" defer></script>\n` : ''}</head>
<body>
<header class="site">
  <a class="brand" href="/"><img src="/favicon.svg" alt="" width="28" height="28">cluster-session <span>starter</span></a>
</header>
<main>
${body}
</main>
</body>
</html>
`;
}

export interface LoginForm {
  error?: string;
  username?: string;
}

export function loginPage(served: ServedBy, form: LoginForm = {}, csrfToken = ''): string {
  const invalid = form.error ? ' aria-invalid="true" aria-describedby="error"' : '';
  return page(
    'Sign in',
    `<div class="card narrow">
  <h1>Sign in</h1>
  ${form.error ? `<div class="alert" role="alert" id="error">${escape(form.error)}</div>` : ''}
  <form method="post" action="/login">
    <input type="hidden" name="_csrf" value="${escape(csrfToken)}">
    <label for="username">Username</label>
    <input id="username" name="username" autocomplete="username" required maxlength="256"${form.username ? ` value="${escape(form.username)}"` : ' autofocus'}${invalid}>
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256"${form.username ? ' autofocus' : ''}${invalid}>
    <button type="submit" class="full">Sign in</button>
  </form>
  <p class="muted">Demo account: <code>alice</code> / <code>wonderland</code></p>
  <p class="served">Served by worker <span id="worker">${served.worker}</span> on instance <span id="instance">${escape(served.instance)}</span> · ${escape(served.sessions)}</p>
</div>`,
  );
}

export function profilePage(served: ServedBy, user: string, hits: number, csrfToken = ''): string {
  const reload = served.cluster
    ? `<p>Replace every worker while you watch: <code>npx cluster-session reload --name ${escape(served.cluster)}</code></p>`
    : '<p>Reload the page: the worker and instance may change, the login stays.</p>';
  return page(
    'Signed in',
    `<div class="card">
  <div class="title-row">
    <h1>Signed in as <span id="user">${escape(user)}</span></h1>
    <form method="post" action="/logout"><input type="hidden" name="_csrf" value="${escape(csrfToken)}"><button type="submit" class="secondary">Sign out</button></form>
  </div>
  <p class="lead">This page was served by worker <span class="pill" id="worker">${served.worker}</span> on instance <span class="pill" id="instance">${escape(served.instance)}</span>.</p>
  <dl class="facts">
    <div><dt>Sessions</dt><dd id="sessions">${escape(served.sessions)}</dd></div>
    <div><dt>Calls to /me this session</dt><dd id="hits">${hits}</dd></div>
  </dl>
</div>
<section class="card" aria-labelledby="hops-title">
  <div class="hops-head">
    <h2 id="hops-title">Live hops</h2>
    <button type="button" class="secondary" id="hops-toggle" hidden>Pause</button>
  </div>
  <p class="muted">Once a second this page calls <code>GET /me</code>. Each answer names the worker and the instance that
  served it: they change, and every one of them knows you are signed in.</p>
  <p class="summary" id="hops-summary">Turn on JavaScript to watch the calls; reloading the page shows the same.</p>
  <div class="table-wrap">
    <table>
      <caption class="visually-hidden">The last ten calls to /me, newest first</caption>
      <thead><tr><th scope="col">Time</th><th scope="col">Instance</th><th scope="col">Worker</th><th scope="col">Signed in as</th><th scope="col">Came from</th></tr></thead>
      <tbody id="hops"></tbody>
    </table>
  </div>
  ${reload}
</section>`,
    '/hops.js',
  );
}

export function notFoundPage(served: ServedBy): string {
  return page('Not found', `<div class="card narrow">
  <h1>Not found</h1>
  <p>There is nothing at this address. <a href="/">Back to the start page</a>.</p>
  <p class="served">Served by worker ${served.worker} on instance ${escape(served.instance)}</p>
</div>`);
}

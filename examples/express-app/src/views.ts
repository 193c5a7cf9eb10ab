const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (value: unknown) => String(value).replace(/[&<>"']/g, (c) => ESCAPES[c]!);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)} · cluster-session</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem; color: #1a1a1a; }
  label { display: block; margin-top: .75rem; }
  input { font: inherit; padding: .4rem; width: 100%; box-sizing: border-box; }
  button { font: inherit; margin-top: 1rem; padding: .4rem 1rem; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
  dt { font-weight: 600; }
  [role=alert] { color: #a00; }
  footer { margin-top: 2rem; color: #555; font-size: .875rem; }
</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

export interface ServedBy {
  worker: number;
  instance: string;
}

const servedBy = (s: ServedBy) =>
  `<footer>Served by worker <span id="worker">${s.worker}</span> on instance <span id="instance">${escape(s.instance)}</span>.</footer>`;

export function loginPage(served: ServedBy, error?: string): string {
  return page(
    'Sign in',
    `<h1>Sign in</h1>
${error ? `<p role="alert" id="error">${escape(error)}</p>` : ''}
<form method="post" action="/login">
  <label for="username">Username</label>
  <input id="username" name="username" autocomplete="username" required>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password" required>
  <button type="submit">Sign in</button>
</form>
<p>Demo account: <code>alice</code> / <code>wonderland</code>.</p>
${servedBy(served)}`,
  );
}

export function profilePage(served: ServedBy, user: string, hits: number): string {
  return page(
    'Profile',
    `<h1>Signed in as <span id="user">${escape(user)}</span></h1>
<dl>
  <dt>Worker pid</dt><dd id="pid">${served.worker}</dd>
  <dt>Instance</dt><dd>${escape(served.instance)}</dd>
  <dt>API hits</dt><dd id="hits">${hits}</dd>
</dl>
<p>Reload the page: the worker may change, the login stays.</p>
<form method="post" action="/logout">
  <button type="submit">Sign out</button>
</form>
${servedBy(served)}`,
  );
}

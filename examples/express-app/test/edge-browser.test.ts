/**
 * The starter at the edge, as a browser sees it: `npm start` with TLS_CERT/TLS_KEY (the bundled balancer on
 * HTTPS in front of both instances), in store and in JWT mode, driven by real Chromium that trusts the test
 * certificate by its key (`--ignore-certificate-errors-spki-list`, not "ignore certificate errors"). The sign-in
 * form is throttled after LOGIN_MAX_FAILURES wrong passwords for that account (the form says so, the right
 * password too is refused meanwhile, whichever instance answers), another account still signs in and gets a Secure
 * session cookie, and a form posted from another site is refused by the CSRF check.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Page } from 'playwright-core';
import { chromiumOptions, freePort, needs, processTag, startNode, testCA } from '@cluster-session/testkit';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const START = path.join(SRC, 'start.ts');
const CHECK = path.join(SRC, 'check-node.js');
const MAX_FAILURES = 3;

const dir = mkdtempSync(path.join(tmpdir(), 'cs-edge-browser-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const ca = testCA(path.join(dir, 'tls'));
const cert = ca.issue('site', ['localhost', '127.0.0.1']);

/** Signs in through the starter's own form and waits for the page it lands on. */
async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForLoadState('load'), page.waitForURL(/\/$/), page.click('button[type=submit]')]);
}

for (const mode of ['store', 'jwt'] as const) {
  describe(`the starter over HTTPS in Chromium: ${mode} mode`, { skip: needs('chromium') }, () => {
    test('throttled sign-in, another account signs in with a Secure cookie, a cross-site post is refused', async (t) => {
      const [port, a, b, admin, ma, mb, evilPort] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
      const tag = processTag();
      const stack = startNode(['--import', CHECK, START], {
        cwd: dir,
        env: {
          ...process.env,
          ...tag.env,
          WORKERS: '1',
          CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, `run-${mode}`),
          SQLITE_PATH: path.join(dir, `${mode}.sqlite`),
          PORT: String(port),
          ADMIN_PORT: String(admin),
          INSTANCE_PORTS: `${a},${b}`,
          METRICS_PORTS: `${ma},${mb}`,
          SESSION_MODE: mode,
          TLS_CERT: cert.cert,
          TLS_KEY: cert.key,
          LOGIN_MAX_FAILURES: String(MAX_FAILURES),
          LOG_LEVEL: 'warn',
        },
      });
      const base = chromiumOptions();
      const browser = await chromium.launch({ ...base, args: [...base.args, `--ignore-certificate-errors-spki-list=${cert.spki}`] });
      // Another site (127.0.0.1 is not localhost's site): a page that posts the sign-in form as soon as it loads.
      const origin = `https://localhost:${port}`;
      const evil: Server = createServer((_req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(`<!doctype html><form id="f" method="post" action="${origin}/login">
          <input name="username" value="bob"><input name="password" value="builder"><input name="_csrf" value="guess">
          </form><script>document.getElementById('f').submit()</script>`);
      });
      try {
        await stack.waitFor(/is ready: open https:\/\/localhost:\d+/, 60_000);
        await new Promise<void>((r) => evil.listen(evilPort, '127.0.0.1', r));
        const context = await browser.newContext();
        const page = await context.newPage();
        const answer = await page.goto(`${origin}/`);
        assert.equal(answer?.status(), 200);
        assert.match(answer?.headers()['strict-transport-security'] ?? '', /max-age=\d+/);

        // Wrong passwords for alice, then the lock: the right one is refused too, with the form's own words.
        for (let i = 1; i <= MAX_FAILURES; i++) {
          await signIn(page, 'alice', `wrong-${i}`);
          assert.equal((await page.textContent('#error'))?.trim(), 'Wrong username or password.', `attempt ${i}`);
        }
        await signIn(page, 'alice', 'wonderland');
        assert.equal((await page.textContent('#error'))?.trim(), 'Too many failed sign-ins. Wait a little and try again.');
        assert.equal(await page.$('#user'), null, 'alice is not signed in while locked');

        // Another account is not locked out by alice's failures.
        await signIn(page, 'bob', 'builder');
        assert.equal((await page.textContent('#user'))?.trim(), 'bob');
        const cookies = await context.cookies(origin);
        const session = cookies.find((c) => c.name === 'sid');
        assert.ok(session?.httpOnly, `an HttpOnly session cookie: ${JSON.stringify(cookies.map((c) => c.name))}`);
        for (const c of cookies) assert.equal(c.secure, true, `cookie ${c.name} is Secure behind TLS`);

        // A form posted from another site, with the browser's own cookies: refused before any sign-in work.
        const cross = await context.newPage();
        const refused = cross.waitForResponse((r) => r.url() === `${origin}/login` && r.request().method() === 'POST');
        await cross.goto(`http://127.0.0.1:${evilPort}/`);
        const r = await refused;
        assert.equal(r.status(), 403);
        assert.equal((await r.json()).code, 'CS_ERR_SESSION_CSRF');
        t.diagnostic(`${mode}: ${MAX_FAILURES} wrong passwords then 'too many' on the form; bob signed in (Secure cookies ${cookies.map((c) => c.name).join(', ')}); cross-site POST ${r.status()}`);
        assert.equal(await stack.stop('SIGTERM', 20_000), 0);
      } finally {
        evil.close();
        await browser.close();
        await stack.stop('SIGKILL');
      }
      assert.deepEqual(tag.leftovers(), [], 'no process left behind');
    });
  });
}

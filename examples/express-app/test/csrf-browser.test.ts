/**
 * CSRF as a browser sees it (headless Chromium): a page on another site auto-submits a sign-in form to the
 * starter and gets 403 (Chromium sends Sec-Fetch-Site: cross-site); the starter's own form signs in and out.
 * Store mode and JWT mode.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { chromiumOptions, needs } from '@cluster-session/testkit';
import { createApp } from '../src/app.ts';

const skip = needs('chromium');
const SECRET = 'csrf-browser-secret-0123456789-abcdef';
let browser: Browser;

before(async () => {
  if (!skip) browser = await chromium.launch(chromiumOptions());
});
after(async () => {
  await browser?.close();
});

const listen = async (server: Server) => {
  server.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  return (server.address() as AddressInfo).port;
};

for (const mode of ['store', 'jwt'] as const) {
  describe(`csrf in Chromium: ${mode} mode`, { skip }, () => {
    let app: ReturnType<typeof createApp>;
    let appServer: Server;
    let evil: Server;
    let appUrl: string;
    let evilUrl: string;
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-csrf-browser-'));

    before(async () => {
      app = createApp({ instance: 'chromium', session: { mode, store: { type: 'sqlite', path: path.join(dir, 's.sqlite') }, secret: SECRET, ...(mode === 'jwt' ? { jwt: { secret: SECRET } } : {}) } });
      appServer = createServer(app);
      appUrl = `http://127.0.0.1:${await listen(appServer)}`;
      // Another site (localhost is not 127.0.0.1's site): a page that posts the sign-in form as soon as it loads.
      evil = createServer((_req, res) => {
        res.setHeader('content-type', 'text/html');
        res.end(`<!doctype html><form id="f" method="post" action="${appUrl}/login">
          <input name="username" value="alice"><input name="password" value="wonderland"><input name="_csrf" value="guess">
          </form><script>document.getElementById('f').submit()</script>`);
      });
      evilUrl = `http://localhost:${await listen(evil)}`;
    });
    after(async () => {
      evil?.close();
      appServer?.close();
      await app?.sessions.close();
      rmSync(dir, { recursive: true, force: true });
    });

    test('a form on another site posting to the app is refused (403); the app\'s own form works', async () => {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        page.setDefaultTimeout(30_000);
        const refused = page.waitForResponse((r) => r.url() === `${appUrl}/login`);
        await page.goto(evilUrl);
        const res = await refused;
        assert.equal(res.status(), 403);
        assert.equal(res.request().headers()['sec-fetch-site'] ?? (await res.request().allHeaders())['sec-fetch-site'], 'cross-site');
        assert.deepEqual(await res.json(), { error: 'cross-site request refused', code: 'CS_ERR_SESSION_CSRF' });
        const me = await context.request.get(`${appUrl}/me`);
        assert.equal(me.status(), 401, 'the forged sign-in did not sign anyone in');

        await page.goto(`${appUrl}/`);
        await page.fill('#username', 'alice');
        await page.fill('#password', 'wonderland');
        await Promise.all([page.waitForURL(`${appUrl}/`), page.click('button[type=submit]')]);
        assert.equal(await page.textContent('#user'), 'alice');
        await Promise.all([page.waitForLoadState('load'), page.click('text=Sign out')]);
        await page.waitForSelector('#username');
      } finally {
        await context.close();
      }
    });
  });
}

/**
 * The starter's forms under csrf(), in store mode (synchronizer token in the session once signed in) and JWT mode
 * (signed double-submit cookie), over real HTTP: a cross-site form POST is refused with 403, a form without the
 * page's token too, and the same-site flow (load the page, post its form) signs in and out.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cookieHeader, request } from '@cluster-session/testkit';
import { serveApp, type Served } from './support/serve.ts';

const SECRET = 'csrf-test-secret-0123456789-abcdefghij';
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' };
const tokenOf = (html: string) => /name="_csrf" value="([^"]+)"/.exec(html)?.[1];

for (const mode of ['store', 'jwt'] as const) {
  describe(`csrf in the starter: ${mode} mode`, () => {
    let served: Served;
    let url: string;
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-csrf-'));

    before(async () => {
      served = await serveApp({
        instance: 'csrf',
        session: { mode, store: { type: 'sqlite', path: path.join(dir, 's.sqlite') }, secret: SECRET, ...(mode === 'jwt' ? { jwt: { secret: SECRET } } : {}) },
      });
      url = served.url;
    });
    after(async () => {
      await served?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const post = (p: string, body: string, headers: Record<string, string>) => request(`${url}${p}`, { method: 'POST', body, headers: { ...FORM, ...headers } });

    test('same-site flow: the page\'s form signs in, the profile\'s form signs out', async () => {
      const page = await request(`${url}/`);
      const token = tokenOf(page.body);
      assert.ok(token, 'the sign-in form carries a token');
      assert.match(page.headers['set-cookie']!.join('\n'), /csrf=[^;]+; Path=\/; HttpOnly; SameSite=Lax/);
      let jar = { ...page.cookies };
      const signIn = await post('/login', `username=alice&password=wonderland&_csrf=${encodeURIComponent(token!)}`, {
        cookie: cookieHeader(jar),
        origin: url,
        'sec-fetch-site': 'same-origin',
      });
      assert.equal(signIn.status, 303, signIn.body);
      jar = { ...jar, ...signIn.cookies };
      const profile = await request(`${url}/`, { headers: { cookie: cookieHeader(jar) } });
      assert.match(profile.body, /Signed in as <span id="user">alice<\/span>/);
      jar = { ...jar, ...profile.cookies };
      const outToken = tokenOf(profile.body)!;
      assert.ok(outToken, 'the sign-out form carries a token');
      // The token before sign-in does not sign out: it was bound to nobody (double-submit) or is not the session's.
      const stale = await post('/logout', `_csrf=${encodeURIComponent(token!)}`, { cookie: cookieHeader(jar), 'sec-fetch-site': 'same-origin' });
      assert.equal(stale.status, 403, stale.body);
      const signOut = await post('/logout', `_csrf=${encodeURIComponent(outToken)}`, { cookie: cookieHeader(jar), 'sec-fetch-site': 'same-origin' });
      assert.equal(signOut.status, 303, signOut.body);
      jar = { ...jar, ...signOut.cookies };
      assert.equal((await request(`${url}/me`, { headers: { cookie: cookieHeader(jar) } })).status, 401);
    });

    test('a cross-site form POST is refused with 403, even with a valid token and cookie', async () => {
      const page = await request(`${url}/`);
      const token = encodeURIComponent(tokenOf(page.body)!);
      const body = `username=alice&password=wonderland&_csrf=${token}`;
      for (const headers of [{ 'sec-fetch-site': 'cross-site', origin: 'http://evil.example' }, { origin: 'http://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'same-site' }] as Array<Record<string, string>>) {
        const r = await post('/login', body, { cookie: cookieHeader(page.cookies), ...headers });
        assert.equal(r.status, 403, `${JSON.stringify(headers)}: ${r.body}`);
        assert.deepEqual(r.json, { error: 'cross-site request refused', code: 'CS_ERR_SESSION_CSRF' });
        assert.equal(r.cookies.sid, undefined, 'no session from a refused post');
      }
    });

    test('a form without the page\'s token, or with a forged one, is refused (login CSRF)', async () => {
      const page = await request(`${url}/`);
      const cookie = cookieHeader(page.cookies);
      const none = await post('/login', 'username=alice&password=wonderland', { cookie });
      assert.equal(none.status, 403);
      assert.deepEqual(none.json, { error: 'missing or invalid CSRF token', code: 'CS_ERR_SESSION_CSRF' });
      const forged = await post('/login', 'username=alice&password=wonderland&_csrf=abc.def', { cookie: 'csrf=abc.def' });
      assert.equal(forged.status, 403);
      const noCookie = await post('/login', `username=alice&password=wonderland&_csrf=${encodeURIComponent(tokenOf(page.body)!)}`, {});
      assert.equal(noCookie.status, 403, 'the token alone, without its cookie');
      // The JSON API needs no token (a browser cannot send JSON cross-site without a preflight), but the origin check holds.
      assert.equal((await request(`${url}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' } })).status, 200);
      const crossJson = await request(`${url}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' }, headers: { 'sec-fetch-site': 'cross-site' } });
      assert.equal(crossJson.status, 403);
    });
  });
}

/**
 * The login throttle on a real deployment: the starter as `npm start` runs it (balancer + 2 instances × 2
 * workers, cluster package), 30 wrong passwords for one account spread over both instances and every worker.
 * The count lives in the shared store, so the lock falls after LOGIN_MAX_FAILURES whichever worker answers, the
 * right password for that account is refused while locked, and another account still signs in.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from '@cluster-session/testkit';
import { modes } from './support/modes.ts';
import { startStack, type Stack } from './support/stack.ts';

const ATTEMPTS = 30;
const MAX = 5;

const MODES = modes('sqlite', 'redis');

for (const mode of MODES) {
  describe(`login throttle across 2 instances × 2 workers: ${mode.name}`, { concurrency: false }, () => {
    let stack: Stack;
    before(async () => {
      stack = await startStack({ ...(await mode.env()), LOGIN_MAX_FAILURES: String(MAX), LOGIN_BLOCK_SECONDS: '120' });
    });
    after(async () => {
      await stack?.close();
      await mode.cleanup();
    });

    test(`${ATTEMPTS} wrong passwords: throttled after ${MAX} whichever worker answers; other accounts still sign in`, async (t) => {
      const urls = stack.instancePorts.map((p) => `http://127.0.0.1:${p}`);
      // Through the balancer (which spreads over every worker) and straight at each instance, in turn.
      const targets = [stack.url, ...urls];
      const byStatus: Record<number, Set<string>> = {};
      const statuses: number[] = [];
      let retryAfter: string | undefined;
      for (let i = 0; i < ATTEMPTS; i++) {
        // A fresh connection each time, so each attempt may land on another worker.
        const r = await request(`${targets[i % targets.length]}/login`, { method: 'POST', body: { username: 'alice', password: `guess-${i}` } });
        statuses.push(r.status);
        (byStatus[r.status] ??= new Set()).add(String(r.headers['x-served-by']));
        if (r.status === 429) {
          retryAfter ??= String(r.headers['retry-after']);
          assert.equal(r.json.code, 'CS_ERR_SESSION_LOGIN_THROTTLED');
        }
      }
      const figures = {
        attempts: ATTEMPTS,
        wrong401: statuses.filter((s) => s === 401).length,
        throttled429: statuses.filter((s) => s === 429).length,
        firstThrottled: statuses.indexOf(429) + 1,
        workers401: byStatus[401]?.size ?? 0,
        workers429: byStatus[429]?.size ?? 0,
        retryAfter,
      };
      t.diagnostic(`${mode.name}: ${JSON.stringify(figures)}`);
      console.log(`# login throttle ${mode.name}: ${JSON.stringify(figures)}`);
      assert.deepEqual(statuses, [...Array(MAX).fill(401), ...Array(ATTEMPTS - MAX).fill(429)]);
      const everyWorker = new Set([...(byStatus[401] ?? []), ...(byStatus[429] ?? [])]);
      assert.ok(everyWorker.size >= 3, `the attempts spread over 3+ workers of both instances: ${[...everyWorker]}`);
      assert.equal(new Set([...everyWorker].map((w) => w.split('/')[0])).size, 2, 'both instances answered');
      assert.ok((byStatus[429]?.size ?? 0) >= 3, `the lock held on 3+ workers: ${[...(byStatus[429] ?? [])]}`);
      assert.ok(Number(retryAfter) > 0 && Number(retryAfter) <= 120, `Retry-After ${retryAfter}`);

      // Locked: the right password is refused too, through the balancer as well.
      const right = await request(`${stack.url}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' } });
      assert.equal(right.status, 429, right.body);
      // Another account from the same address: signs in on every instance.
      for (const url of [stack.url, ...urls]) {
        const bob = await request(`${url}/login`, { method: 'POST', body: { username: 'bob', password: 'builder' } });
        assert.equal(bob.status, 200, `${url}: ${bob.body}`);
        assert.deepEqual(bob.json, { user: 'bob' });
      }
      // A browser form (the page's CSRF token in it) gets the post-redirect-get answer with the message, not JSON.
      const page = await request(`${stack.url}/`);
      const token = /name="_csrf" value="([^"]+)"/.exec(page.body)![1]!;
      const form = await request(`${stack.url}/login`, {
        method: 'POST',
        body: `username=alice&password=wonderland&_csrf=${encodeURIComponent(token)}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html', cookie: `csrf=${page.cookies.csrf}`, 'sec-fetch-site': 'same-origin' },
      });
      assert.equal(form.status, 303);
      assert.ok(Number(form.headers['retry-after']) > 0);
      assert.match(decodeURIComponent(form.cookies.login_error ?? ''), /^throttled:alice/);
    });
  });
}

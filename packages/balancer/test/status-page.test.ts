import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { chromiumOptions, needs, request } from '@cluster-session/testkit';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, instances, type Instance } from './helpers.ts';

const noChromium = needs('chromium');

describe('status page', () => {
  let a: Instance, b: Instance;
  let lb: Balancer;
  let browser: Browser;
  before(async () => {
    [a, b] = await instances('a', 'b');
    lb = await balancer({
      upstreams: [{ url: a.url, id: 'alpha' }, { url: b.url, id: 'beta' }],
      health: { interval: 100, fall: 1, rise: 1, timeout: 500 },
      admin: 0,
    });
    if (!noChromium) browser = await chromium.launch(chromiumOptions());
  });
  after(async () => {
    await browser?.close();
    await lb.close();
    await Promise.all([a.close(), b.close()]);
  });

  test('JSON: each instance with health, in-flight, requests, errors, retries', async () => {
    for (let i = 0; i < 4; i++) await request(`${lb.url}/whoami`);
    const s = (await request(`${lb.adminUrl}/status.json`)).json;
    assert.equal(s.strategy, 'round-robin');
    assert.equal(s.totals.requests, 4);
    assert.deepEqual(
      s.upstreams.map((u: { id: string; state: string; requests: number }) => [u.id, u.state, u.requests]),
      [['alpha', 'up', 2], ['beta', 'up', 2]],
    );
    for (const key of ['active', 'errors', 'retries', 'responses', 'lastCheck']) assert.ok(key in s.upstreams[0], key);
    assert.deepEqual((await request(`${lb.adminUrl}/healthz`)).json, { ok: true, up: 2 });
    const missing = await request(`${lb.adminUrl}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(missing.json, { error: 'not found', code: 'CS_ERR_BALANCER_BAD_REQUEST' }, "core's JSON error answer");
    assert.equal(missing.headers['cache-control'], 'no-store');
    const post = await request(`${lb.adminUrl}/status.json`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
  });

  test('HTML in headless Chromium: renders the instances and follows a state change live', { skip: noChromium }, async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    try {
      await page.goto(lb.adminUrl!);
      await page.waitForSelector('.instance[data-id="beta"] .badge.up', { timeout: 15_000 });
      const cards = await page.$$eval('.instance', (els) => els.map((e) => (e as unknown as { dataset: { id: string } }).dataset.id));
      assert.deepEqual(cards, ['alpha', 'beta']);
      const alpha = page.locator('.instance[data-id="alpha"]');
      assert.equal(await alpha.locator('h2').textContent(), 'instance alpha');
      assert.match((await alpha.textContent())!, new RegExp(`${a.url.replace(/[.]/g, '\\.')} · \\d+ requests`));
      assert.match((await alpha.textContent())!, /workers: not reported \(start the instance with --metrics/);
      assert.equal(await page.textContent('#headline'), 'all well: 2/2 instances up');
      assert.match((await page.textContent('#meta'))!, /round-robin/);

      await request(`${b.url}/control/unhealthy`, { method: 'POST' });
      await page.waitForSelector('.instance[data-id="beta"] .badge.down', { timeout: 15_000 });
      assert.match((await page.textContent('.instance[data-id="beta"]'))!, /health check failed: HTTP 503/);
      await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): { textContent: string } } }).document.querySelector('#headline').textContent === '1 of 2 instances down');
      assert.equal(await page.getAttribute('#headline', 'class'), 'bad');
      const color = await page.$eval('.instance[data-id="beta"] .badge.down', (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
      assert.equal(color, 'rgb(192, 38, 45)', 'the stylesheet loaded under the CSP nonce');
      assert.deepEqual(errors, [], 'no script errors and no CSP violations');
    } finally {
      await request(`${b.url}/control/healthy`, { method: 'POST' });
      await page.close();
    }
  });
});

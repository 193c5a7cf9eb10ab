/**
 * The example stack as an operator sees it. A real Prometheus (Debian's package) scrapes the balancer's admin
 * port and both instances' `--metrics` ports with a generated configuration; after known traffic through the
 * balancer, its HTTP API must show every target up and counts that match what was sent, per instance and per
 * status code. `promtool check metrics` must find nothing to say about any of the three. Then the live status
 * page in real Chromium: the headline, both instances with their workers, the store, the charts; a screenshot
 * goes to SCREENSHOT_DIR (default /tmp/screens).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { chromiumOptions, client, needs, request, startPrometheus, until, type PrometheusServer } from '@cluster-session/testkit';
import { login, startStack, type Stack } from './support/stack.ts';

declare const document: any;

const skip = needs('prometheus', 'promtool', 'chromium');
const shots = process.env.SCREENSHOT_DIR ?? '/tmp/screens';
let stack: Stack;
let prom: PrometheusServer;

/** Unauthenticated /me calls (each a 401 from some worker) and signed-in ones (200). */
const ANONYMOUS = 40;
const SIGNED_IN = 25;

before(async () => {
  if (skip) return;
  stack = await startStack({ SESSION_STORE: 'sqlite' });
  prom = await startPrometheus({
    jobs: [
      { name: 'balancer', targets: [`127.0.0.1:${stack.adminPort}`] },
      { name: 'cluster', targets: stack.metricsPorts.map((p) => `127.0.0.1:${p}`) },
    ],
  });
});
after(async () => {
  await prom?.stop();
  await stack?.close();
});

const sum = async (expr: string) => (await prom.query(`sum(${expr})`))[0]?.value ?? 0;

test('Prometheus scrapes the stack: every target up, counts match the traffic sent', { skip }, async (t) => {
  await until('every target up', async () => {
    const t = await prom.targets();
    return t.length === 3 && t.every((x) => x.health === 'up') ? t : undefined;
  }, 30_000, 250);
  const up = await prom.query('up');
  assert.deepEqual(up.map((s) => s.value), [1, 1, 1], JSON.stringify(up));

  for (let i = 0; i < ANONYMOUS; i++) assert.equal((await request(`${stack.url}/me`)).status, 401);
  const alice = client(stack.url);
  assert.equal((await login(alice)).status, 200);
  for (let i = 0; i < SIGNED_IN; i++) assert.equal((await alice.get('/me')).status, 200);

  // Once a scrape after the traffic is in: the balancer answered every request, 401s exactly those sent.
  // (The 200s were sent last: once they are in, so are the 401s. Login and every /me through the balancer: 200.)
  await until('the balancer counts scraped', async () => (await sum('cluster_session_balancer_requests_total{code="200"}')) === SIGNED_IN + 1, 20_000, 250);
  assert.equal(await sum('cluster_session_balancer_requests_total{code="401"}'), ANONYMOUS);
  assert.equal(await sum('cluster_session_balancer_requests_total'), ANONYMOUS + SIGNED_IN + 1, 'and nothing else');
  // The instances saw the same 401s (health checks are 200s), split as the balancer sent them.
  await until('the instances counts scraped', async () => (await sum('cluster_session_http_requests_total{code="401"}')) === ANONYMOUS, 20_000, 250);
  // Every answer through the balancer reached an instance's worker: the instances' non-health-check 200s.
  await until('the instances 200s scraped', async () => (await sum('cluster_session_http_requests_total{code="200"}')) >= SIGNED_IN + 1, 20_000, 250);
  for (const [id, port] of [['a', stack.metricsPorts[0]], ['b', stack.metricsPorts[1]]] as const) {
    const atBalancer = await sum(`cluster_session_balancer_requests_total{code="401", upstream="${id}"}`);
    const atInstance = await sum(`cluster_session_http_requests_total{code="401", instance="127.0.0.1:${port}"}`);
    assert.equal(atInstance, atBalancer, `instance ${id}: the balancer sent ${atBalancer} 401s, the instance counted ${atInstance}`);
    assert.ok(atBalancer > 0, `round robin sent instance ${id} some of them`);
  }
  const histogramCount = await sum('cluster_session_balancer_request_duration_seconds_count');
  assert.equal(histogramCount, await sum('cluster_session_balancer_requests_total'), 'every answer is in the latency histogram');
  // Per-worker series, labelled by slot (2 workers per instance), and their default process metrics.
  const ready = await prom.query('cluster_session_workers{state="ready"}');
  assert.deepEqual(ready.map((s) => s.value), [2, 2]);
  assert.equal((await prom.query('process_resident_memory_bytes{job="cluster", slot="0"}')).length, 2, 'each worker has its process metrics');
  // The signed-in calls went through the SQLite store: timed per operation.
  await until('store operations scraped', async () => (await sum('cluster_session_store_operation_duration_seconds_count{store="sqlite", operation="get"}')) >= SIGNED_IN, 20_000, 250);
  assert.equal(await sum('cluster_session_store_errors_total'), 0);
  assert.deepEqual((await prom.query('cluster_session_balancer_upstream_up')).map((s) => s.value), [1, 1]);
  assert.equal(await sum('cluster_session_balancer_retries_total'), 0);
  // For the record (the test's diagnostics): what an operator's queries return here.
  for (const expr of ['up', 'sum by (upstream, code) (cluster_session_balancer_requests_total)', 'sum by (instance, code) (cluster_session_http_requests_total)']) {
    t.diagnostic(`${expr} => ${(await prom.query(expr)).map((x) => `${JSON.stringify(x.metric)} ${x.value}`).join('; ')}`);
  }
  const p99 = await prom.query('histogram_quantile(0.99, sum by (le) (rate(cluster_session_balancer_request_duration_seconds_bucket[1m])))');
  assert.ok(p99[0] && p99[0].value > 0, `a p99 is computed from the histogram: ${JSON.stringify(p99)}`);
});

test('promtool check metrics: nothing to say about any of the three endpoints', { skip }, async () => {
  for (const port of [stack.adminPort, ...stack.metricsPorts]) {
    const text = (await request(`http://127.0.0.1:${port}/metrics`)).body;
    assert.match(text, /^# HELP cluster_session_/m);
    const child = execFile('promtool', ['check', 'metrics']);
    const out: string[] = [];
    child.stdout?.on('data', (c) => out.push(String(c)));
    child.stderr?.on('data', (c) => out.push(String(c)));
    const code = await new Promise<number | null>((resolve) => {
      child.on('exit', resolve);
      child.stdin!.end(text);
    });
    assert.equal(code, 0, `promtool on :${port}: ${out.join('')}`);
    assert.equal(out.join('').trim(), '', `promtool on :${port} has remarks`);
  }
  // And a wrong path or method gets core's JSON answer, not a hang.
  const bad = await request(`http://127.0.0.1:${stack.metricsPorts[0]}/nope`);
  assert.equal(bad.status, 404);
  assert.equal(bad.json.code, 'CS_ERR_CLUSTER_METRICS');
  assert.equal((await request(`http://127.0.0.1:${stack.metricsPorts[0]}/metrics`, { method: 'POST' })).status, 405);
});

test('status --json has CPU, heap, event-loop delay, latency and the store', { skip }, async () => {
  const rows = JSON.parse(await stack.cli('status', 'a', '--json')) as Array<Record<string, any>>;
  assert.equal(rows.length, 2);
  for (const r of rows) {
    assert.equal(typeof r.cpuPercent, 'number');
    assert.ok(r.heapUsed > 0 && r.heapTotal >= r.heapUsed);
    assert.equal(typeof r.eventLoopDelayMs.p99, 'number');
    assert.equal(typeof r.latencyMs.p99, 'number');
    assert.equal(typeof r.requestsPerSecond, 'number');
  }
  const withStore = rows.filter((r) => r.store);
  assert.ok(withStore.length > 0, 'a worker that served a signed-in request reports the store');
  assert.equal(withStore[0]!.store.name, 'sqlite');
  assert.equal(withStore[0]!.store.healthy, true);
  const text = await stack.cli('status', 'a');
  assert.match(text.split('\n')[0]!, /cpu\s+requests\s+req\/s\s+p99\s+loop p99/);
  assert.match(text, /store sqlite: healthy/);
});

test('the live status page: instances, their workers, the store and the charts, in Chromium', { skip }, async () => {
  mkdirSync(shots, { recursive: true });
  // Some traffic while the page is open, so the charts have a line.
  const alice = client(stack.url);
  assert.equal((await login(alice)).status, 200);
  let going = true;
  const traffic = (async () => {
    while (going) {
      await alice.get('/me');
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const browser = await chromium.launch(chromiumOptions());
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.setDefaultTimeout(60_000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    await page.goto(`http://127.0.0.1:${stack.adminPort}/`);
    assert.equal(await page.title(), 'cluster-session status');
    await page.waitForSelector('body[data-ready="1"]');
    // Charts sampled every 2 s: wait for a few samples of the traffic (lines in all three, requests/s above zero).
    await page.waitForFunction(() => document.querySelectorAll('#c-rps polyline').length === 3 && Number(document.querySelector('#c-rps .now').textContent) > 0);
    await page.waitForFunction(() => (document.querySelector('#c-p99 polyline')?.getAttribute('points') ?? '').split(' ').length >= 5);
    const headline = await page.textContent('#headline');
    assert.match(headline!, /^all well: 2\/2 instances up, 4\/4 workers ready$/);
    assert.equal(await page.getAttribute('#headline', 'class'), 'ok');
    for (const id of ['a', 'b']) {
      const card = page.locator(`.instance[data-id="${id}"]`);
      assert.match((await card.locator('h2').textContent())!, new RegExp(`instance ${id}`));
      assert.equal(await card.locator('tbody tr').count(), 2, `instance ${id} shows its 2 workers`);
      const firstRow = await card.locator('tbody tr').first().locator('td').allTextContents();
      assert.match(firstRow[1]!, /^\d+$/, 'a pid');
      assert.equal(firstRow[2], 'ready');
      assert.match(firstRow[5]!, /^\d+ MB$/, 'memory');
    }
    await page.waitForFunction(() => [...document.querySelectorAll('.store')].some((e: any) => /session store sqlite healthy/.test(e.textContent)));
    assert.ok((await page.locator('#c-p99 polyline').count()) >= 1);
    assert.deepEqual(errors, []);
    await page.screenshot({ path: path.join(shots, 'status-page.png'), fullPage: true });
  } finally {
    going = false;
    await traffic;
    await browser.close();
  }
});

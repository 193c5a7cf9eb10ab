import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { needs, request, until } from '@cluster-session/testkit';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, instances, raw, type Instance } from './helpers.ts';

/** Prometheus text format to `name{labels}` -> value (labels as written, in order). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const scrape = async (lb: Balancer) => {
  const r = await request(`${lb.adminUrl}/metrics`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text: r.body, m: parse(r.body) };
};

function promtool(text: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', ['check', 'metrics'], (_err, stdout, stderr) => resolve({ code: child.exitCode, out: stdout + stderr }));
    child.stdin!.end(text);
  });
}

describe('balancer metrics on the admin port', () => {
  let a: Instance, b: Instance;
  let lb: Balancer;
  let dead: number;
  before(async () => {
    [a, b] = await instances('a', 'b');
    // An address nothing listens on: connections to it are refused, so a GET there is retried on another instance.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    dead = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));
    lb = await balancer({
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }, { url: `http://127.0.0.1:${dead}`, id: 'dead' }],
      health: { active: false, passive: false },
      admin: 0,
    });
  });
  after(async () => {
    await lb.close();
    await Promise.all([a.close(), b.close()]);
  });

  test('counts per instance and status code match the requests sent; the histogram holds every answer', async () => {
    for (let i = 0; i < 12; i++) assert.equal((await request(`${lb.url}/whoami`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await request(`${lb.url}/status/404`)).status, 404);
    // A head the balancer refuses itself: counted under upstream="none".
    const bad = await raw(lb.url, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n');
    assert.match(bad.text, /^HTTP\/1\.1 400/);

    const { m } = await scrape(lb);
    const sum = (prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);
    // Round robin over three: every third attempt went to the dead instance and was retried elsewhere.
    const ok = (m.get('cluster_session_balancer_requests_total{upstream="a",code="200"}') ?? 0) + (m.get('cluster_session_balancer_requests_total{upstream="b",code="200"}') ?? 0);
    assert.equal(ok, 12);
    assert.equal((m.get('cluster_session_balancer_requests_total{upstream="a",code="404"}') ?? 0) + (m.get('cluster_session_balancer_requests_total{upstream="b",code="404"}') ?? 0), 3);
    assert.equal(m.get('cluster_session_balancer_requests_total{upstream="none",code="400"}'), 1);
    assert.equal(sum('cluster_session_balancer_requests_total{upstream="dead"'), 0, 'nothing was answered by the dead instance');
    assert.equal(sum('cluster_session_balancer_requests_total'), 16);
    const retried = (m.get('cluster_session_balancer_retries_total{upstream="a"}') ?? 0) + (m.get('cluster_session_balancer_retries_total{upstream="b"}') ?? 0);
    assert.ok(retried >= 4, `the refused attempts were retried on a or b (${retried})`);
    assert.equal(a.hits.get('/whoami')! + b.hits.get('/whoami')!, 12);

    for (const id of ['a', 'b']) {
      const count = m.get(`cluster_session_balancer_request_duration_seconds_count{upstream="${id}"}`)!;
      const answered = sum(`cluster_session_balancer_requests_total{upstream="${id}"`);
      assert.equal(count, answered, `${id}: one observation per answer`);
      assert.equal(m.get(`cluster_session_balancer_request_duration_seconds_bucket{le="+Inf",upstream="${id}"}`), count);
      // Buckets are cumulative.
      let prev = 0;
      for (const le of ['0.001', '0.0025', '0.005', '0.01', '0.1', '1', '10']) {
        const v = m.get(`cluster_session_balancer_request_duration_seconds_bucket{le="${le}",upstream="${id}"}`)!;
        assert.ok(v >= prev, `bucket ${le} >= the one below`);
        prev = v;
      }
      assert.ok(m.get(`cluster_session_balancer_request_duration_seconds_sum{upstream="${id}"}`)! > 0);
    }
    assert.equal(m.get('cluster_session_balancer_upstream_up{upstream="a"}'), 1);
    assert.ok(m.has('process_cpu_user_seconds_total'), "the balancer process's own metrics");
  });

  test('a slow answer lands in a high bucket; open connections are a gauge', async () => {
    const before = (await scrape(lb)).m;
    const key = (le: string) => `cluster_session_balancer_request_duration_seconds_bucket{le="${le}",upstream="a"}`;
    const slowOn = async (): Promise<void> => {
      // Round robin: keep asking until instance a served the slow one.
      const r = await request(`${lb.url}/slow?ms=300`);
      assert.equal(r.status, 200);
      if ((await scrape(lb)).m.get(key('+Inf')) === before.get(key('+Inf'))) return slowOn();
    };
    await slowOn();
    const after = (await scrape(lb)).m;
    assert.equal(after.get(key('0.25'))! - before.get(key('0.25'))!, after.get(key('+Inf'))! - before.get(key('+Inf'))! - 1, 'the 300 ms answer is above the 0.25 s bucket');
    assert.equal(after.get(key('0.5'))! - before.get(key('0.5'))!, after.get(key('+Inf'))! - before.get(key('+Inf'))!, 'and within 0.5 s');

    const socket = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    try {
      await until('the open connection is counted', async () => ((await scrape(lb)).m.get('cluster_session_balancer_connections') ?? 0) >= 1, 5_000);
    } finally {
      socket.destroy();
    }
    await until('and uncounted once closed', async () => (await scrape(lb)).m.get('cluster_session_balancer_connections') === 0, 5_000);
  });

  test('an instance taken out shows upstream_up 0', async () => {
    await lb.drain('b');
    assert.equal((await scrape(lb)).m.get('cluster_session_balancer_upstream_up{upstream="b"}'), 0);
    lb.add({ url: b.url, id: 'b' });
    assert.equal((await scrape(lb)).m.get('cluster_session_balancer_upstream_up{upstream="b"}'), 1);
  });

  test('promtool check metrics has nothing to say', { skip: needs('promtool') }, async () => {
    const { code, out } = await promtool((await scrape(lb)).text);
    assert.equal(code, 0, out);
    assert.equal(out.trim(), '');
  });

  test("an instance's status URL is checked where it enters", async () => {
    await assert.rejects(balancer({ upstreams: [{ url: a.url, status: 'ftp://x' }], admin: 0 }), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'CS_ERR_BALANCER_CONFIG');
      assert.match(err.message, /upstreams\[0\]\.status .*ftp:\/\/x.*an http:\/\/ URL of the instance's --metrics address/);
      return true;
    });
  });

  test('metrics: false serves no /metrics', async () => {
    const quiet = await balancer({ upstreams: [a.url], health: false, admin: 0, metrics: false });
    try {
      assert.equal((await request(`${quiet.url}/whoami`)).status, 200);
      assert.equal((await request(`${quiet.adminUrl}/metrics`)).status, 404);
      assert.equal((await request(`${quiet.adminUrl}/status.json`)).json.totals.requests, 1);
    } finally {
      await quiet.close();
    }
  });
});

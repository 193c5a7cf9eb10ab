import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, request, until } from '@cluster-session/testkit';
import { cli, FIXTURES, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const app = path.join(FIXTURES, 'app.ts');

/** `name{labels}` -> value from Prometheus' text format. */
async function scrape(port: number): Promise<Map<string, number>> {
  const r = await request(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200, r.body);
  const out = new Map<string, number>();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

const total = (m: Map<string, number>, prefix: string) => [...m].filter(([k]) => k.startsWith(prefix)).reduce((n, [, v]) => n + v, 0);

describe('cluster metrics (start --metrics)', () => {
  test('per-slot request counts, slot states, restarts and reloads, as the primary sees them', async () => {
    const [port, metrics] = await Promise.all([freePort(), freePort()]);
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--metrics', String(metrics), '--name', 'metrics', '--restart-delay', '50'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    assert.match(proc.output(), new RegExp(`metrics on http://127\\.0\\.0\\.1:${metrics}/metrics`));

    const pids = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const r = await request(`http://127.0.0.1:${port}/`);
      assert.equal(r.status, 200);
      pids.set(r.json.slot, r.json.pid);
    }
    let m = await scrape(metrics);
    assert.equal(total(m, 'cluster_session_http_requests_total{code="200"'), 20);
    assert.equal((m.get('cluster_session_http_requests_total{code="200",slot="0"}') ?? 0) + (m.get('cluster_session_http_requests_total{code="200",slot="1"}') ?? 0), 20, 'one series per slot');
    assert.equal(m.get('cluster_session_http_request_duration_seconds_count{slot="0"}')! + m.get('cluster_session_http_request_duration_seconds_count{slot="1"}')!, 20);
    assert.equal(m.get('cluster_session_workers{state="ready"}'), 2);
    assert.equal(m.get('cluster_session_workers{state="backoff"}'), 0);
    assert.equal(m.get('cluster_session_worker_restarts_total{slot="0"}'), 0);
    assert.equal(m.get('cluster_session_reloads_total{result="ok"}'), 0);
    // Default process metrics per worker, and the primary's own.
    for (const slot of ['0', '1', 'primary']) assert.ok(m.get(`process_resident_memory_bytes{slot="${slot}"}`)! > 0, `RSS of ${slot}`);
    assert.ok(m.has('nodejs_eventloop_lag_p99_seconds{slot="0"}'));
    assert.ok(m.has('nodejs_heap_size_used_bytes{slot="1"}'));

    // A worker killed: its slot's restart is counted, and its new worker starts from zero.
    process.kill(pids.get('1')!, 'SIGKILL');
    await until('slot 1 restarted', async () => (await scrape(metrics)).get('cluster_session_worker_restarts_total{slot="1"}') === 1, 15_000, 100);
    await until('both ready again', async () => (await scrape(metrics)).get('cluster_session_workers{state="ready"}') === 2, 15_000, 100);

    const reload = await runCli(['reload', '--name', 'metrics'], s.env);
    assert.equal(reload.code, 0, reload.out);
    m = await scrape(metrics);
    assert.equal(m.get('cluster_session_reloads_total{result="ok"}'), 1);
    assert.equal(m.get('cluster_session_reloads_total{result="aborted"}'), 0);

    const json = (await request(`http://127.0.0.1:${metrics}/status.json`)).json;
    assert.equal(json.name, 'metrics');
    assert.deepEqual(json.slots.map((x: { state: string }) => x.state), ['ready', 'ready']);
    assert.equal(typeof json.slots[0].cpuPercent, 'number');
  });

  test('a taken metrics port fails the start with the option named, before any worker runs', async () => {
    const port = await freePort();
    const taken = cli(['start', app, '-i', '1', '--port', String(await freePort()), '--metrics', String(port), '--name', 'metrics-a'], s.env);
    after(() => taken.stop('SIGKILL'));
    await taken.waitFor(/1\/1 workers ready/);
    const r = await runCli(['start', app, '-i', '1', '--port', String(await freePort()), '--metrics', String(port), '--name', 'metrics-b'], s.env);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, new RegExp(`metrics cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE; choose a free port \\(--metrics / metrics\\)`));
    assert.doesNotMatch(r.out, /slot 0 ready/);
  });

  test('--metrics with a bad address is a usage error (exit 2)', async () => {
    const r = await runCli(['start', app, '--metrics', 'nope'], s.env);
    assert.equal(r.code, 2);
    assert.match(r.out, /--metrics "nope" is not a port or HOST:PORT/);
  });
});

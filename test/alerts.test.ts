/**
 * deploy/prometheus/alerts.yml against a real Prometheus: `promtool check rules` accepts it, and each alert fires
 * when its condition is provoked for real. The rules are loaded as shipped except their `for:` durations, set to
 * 0s so a test does not wait minutes (the expressions and windows are untouched); Prometheus scrapes and
 * evaluates every second.
 *
 *   cluster (2 workers of test/support/ops-app.ts, Redis store, --metrics) ◄── balancer (+ one dead instance)
 *
 * Provoked: an instance that refuses connections (upstream down), answers slower than 1 s (p99), Redis stopped
 * under signed-in traffic (store down), slot 1 crashing at every start (crash loop, then parked).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { createBalancer, type Balancer } from '@cluster-session/balancer';
import { client, freePort, needs, request, startNode, startPrometheus, startRedis, until, type Proc, type PrometheusServer, type RedisServer } from '@cluster-session/testkit';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RULES = path.join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const CLI = path.join(ROOT, 'packages', 'cli', 'bin', 'cluster-session.js');
const APP = path.join(ROOT, 'test', 'support', 'ops-app.ts');
const run = promisify(execFile);
const skip = needs('prometheus', 'promtool', 'redis-server');

const dir = mkdtempSync(path.join(tmpdir(), 'cs-alerts-'));
const crashFile = path.join(dir, 'crash');
let redis: RedisServer;
let cluster: Proc;
let lb: Balancer;
let prom: PrometheusServer;
let appPort: number;

before(async () => {
  if (skip) return;
  redis = await startRedis();
  const [port, metrics, dead] = await Promise.all([freePort(), freePort(), freePort()]);
  appPort = port;
  cluster = startNode([CLI, 'start', APP, '-i', '2', '--port', String(port), '--metrics', String(metrics), '--name', `alerts-${process.pid}`, '--restart-delay', '50', '--max-restarts', '6'], {
    env: { ...process.env, CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'run'), SESSION_STORE: 'redis', REDIS_URL: redis.url, OPS_CRASH_FILE: crashFile },
  });
  await cluster.waitFor(/2\/2 workers ready/, 30_000);
  lb = await createBalancer({
    listen: 0,
    upstreams: [{ url: `http://127.0.0.1:${port}`, id: 'app' }, { url: `http://127.0.0.1:${dead}`, id: 'dead' }],
    health: { interval: 200, fall: 1, rise: 1, timeout: 500 },
    admin: 0,
  });
  // The shipped rules, with every `for:` at 0s.
  const doc = parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ rules: Array<{ for?: string }> }> };
  for (const g of doc.groups) for (const r of g.rules) r.for = '0s';
  const rules = path.join(dir, 'alerts.yml');
  writeFileSync(rules, stringify(doc));
  prom = await startPrometheus({
    jobs: [
      { name: 'balancer', targets: [new URL(lb.adminUrl!).host] },
      { name: 'cluster', targets: [`127.0.0.1:${metrics}`] },
    ],
    ruleFiles: [rules],
  });
});
after(async () => {
  await prom?.stop();
  await lb?.close();
  await cluster?.stop('SIGTERM', 10_000);
  await redis?.close();
  rmSync(dir, { recursive: true, force: true });
});

const firing = async (name: string) => (await prom.alerts()).filter((a) => a.labels.alertname === name && a.state === 'firing');
const waitFiring = (name: string, timeoutMs = 45_000) => until(`${name} firing`, async () => ((await firing(name)).length > 0 ? firing(name) : undefined), timeoutMs, 500);

test('promtool check rules accepts the shipped file', { skip }, async () => {
  const { stdout } = await run('promtool', ['check', 'rules', RULES]);
  assert.match(stdout, /SUCCESS: 5 rules found/);
});

test('nothing fires on a healthy stack, then an instance that refuses connections fires UpstreamDown', { skip }, async () => {
  await until('both targets up', async () => (await prom.targets()).every((t) => t.health === 'up'), 30_000, 250);
  for (let i = 0; i < 10; i++) {
    const r = await request(`${lb.url}/me`);
    assert.equal(r.status, 401, r.body);
  }
  const down = await waitFiring('ClusterSessionUpstreamDown');
  assert.deepEqual(down.map((a) => a.labels.upstream), ['dead'], 'only the dead instance');
  const others = (await prom.alerts()).filter((a) => a.labels.alertname !== 'ClusterSessionUpstreamDown');
  assert.deepEqual(others.map((a) => `${a.labels.alertname} ${a.state}`), [], 'nothing else fires on a healthy stack');
});

test('answers slower than 1 s fire LatencyHigh', { skip }, async () => {
  await Promise.all(Array.from({ length: 12 }, () => request(`${lb.url}/slow?ms=1300`, { timeoutMs: 10_000 })));
  const [alert] = await waitFiring('ClusterSessionLatencyHigh');
  assert.match(alert!.annotations.summary!, /^p99 latency at balancer 127\.0\.0\.1:\d+ is \d+(\.\d+)?s$/);
});

test('Redis stopped under signed-in traffic fires StoreDown', { skip }, async () => {
  const alice = client(`http://127.0.0.1:${appPort}`);
  assert.equal((await alice.post('/login')).status, 200);
  assert.equal((await alice.get('/me')).status, 200);
  await redis.stop();
  for (let i = 0; i < 6; i++) assert.equal((await alice.get('/me')).status, 503, 'the store is down: 503, not a hang');
  const alerts = await waitFiring('ClusterSessionStoreDown');
  assert.ok(alerts.length >= 1);
  await redis.start();
});

test('a slot crashing at every start fires CrashLooping, then SlotParked', { skip }, async () => {
  writeFileSync(crashFile, '');
  // Slot 1's current worker must start again to read the marker: kill it; from then on it exits at each start.
  const status = JSON.parse((await run(process.execPath, [CLI, 'status', '--json', '--name', `alerts-${process.pid}`], { env: { ...process.env, CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'run') } })).stdout) as Array<{ slot: number; pid: number }>;
  process.kill(status.find((s) => s.slot === 1)!.pid, 'SIGKILL');
  const [loop] = await waitFiring('ClusterSessionSlotCrashLooping');
  assert.equal(loop!.labels.slot, '1');
  await waitFiring('ClusterSessionSlotParked', 60_000);
  rmSync(crashFile, { force: true });
});


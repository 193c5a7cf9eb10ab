// The deployment files: the Kubernetes manifests parsed and held to the invariants a zero-downtime rollout
// needs, and the systemd unit `cluster-session export systemd` writes, checked by the real systemd-analyze.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { needs } from '@cluster-session/testkit';

const ROOT = path.resolve(import.meta.dirname, '..');
const K8S = path.join(ROOT, 'deploy', 'kubernetes');
const BIN = path.join(ROOT, 'packages', 'cli', 'bin', 'cluster-session.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-deploy-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Doc = Record<string, any>;
const docs = (file: string): Doc[] => parseAllDocuments(readFileSync(path.join(K8S, file), 'utf8')).map((d) => {
  assert.deepEqual(d.errors, [], file);
  return d.toJS() as Doc;
});

/** RFC 6902 replace, the only op the Redis overlay uses, on a copy. */
function applyPatch(target: Doc, ops: Array<{ op: string; path: string; value: unknown }>): Doc {
  const out = structuredClone(target);
  for (const op of ops) {
    assert.equal(op.op, 'replace');
    const keys = op.path.split('/').slice(1);
    let at: any = out;
    for (const k of keys.slice(0, -1)) at = at[k];
    assert.ok(keys.at(-1)! in at, `${op.path} exists (a replace of a missing path fails in kustomize)`);
    at[keys.at(-1)!] = op.value;
  }
  return out;
}

describe('deploy/kubernetes', () => {
  const [deployment] = docs('deployment.yaml');
  const pod = deployment!.spec.template.spec;
  const app = pod.containers[0];
  const env = (name: string, list = app.env) => list.find((e: Doc) => e.name === name);

  test('the Deployment: probes on /healthz, preStop, a grace period above preStop + the drain, a rollout that keeps capacity', () => {
    assert.equal(deployment!.kind, 'Deployment');
    for (const probe of [app.readinessProbe, app.livenessProbe]) {
      assert.equal(probe.httpGet.path, '/healthz');
      assert.equal(probe.httpGet.port, 'http');
    }
    assert.ok(app.ports.some((p: Doc) => p.name === 'http' && p.containerPort === Number(env('PORT').value)), 'the http port is the PORT the app listens on');
    const preStop = app.lifecycle.preStop.exec.command;
    assert.equal(preStop[0], 'sleep');
    const killTimeout = Number(app.args[app.args.indexOf('--kill-timeout') + 1]);
    assert.ok(killTimeout > 0, 'the drain is bounded explicitly');
    assert.ok(pod.terminationGracePeriodSeconds * 1000 > Number(preStop[1]) * 1000 + killTimeout, 'SIGKILL never cuts the drain');
    assert.equal(deployment!.spec.strategy.rollingUpdate.maxUnavailable, 0);
    assert.equal(app.args[0], 'start');
  });

  test('-i from the CPU limit: WORKERS is limits.cpu of this container, in whole CPUs; requests = limits', () => {
    const workers = env('WORKERS').valueFrom.resourceFieldRef;
    assert.deepEqual(workers, { containerName: app.name, resource: 'limits.cpu', divisor: '1' });
    assert.ok(!app.args.includes('-i') && !app.args.includes('--instances'), 'no -i flag overriding WORKERS');
    assert.equal(app.resources.requests.cpu, app.resources.limits.cpu);
  });

  test('Service and PodDisruptionBudget select the Deployment pods; the secret is not inline in the Deployment', () => {
    const labels = deployment!.spec.template.metadata.labels;
    assert.deepEqual(deployment!.spec.selector.matchLabels, labels);
    const [service] = docs('service.yaml');
    assert.deepEqual(service!.spec.selector, labels);
    assert.ok(service!.spec.ports.some((p: Doc) => p.targetPort === 'http'));
    const [pdb] = docs('pdb.yaml');
    assert.equal(pdb!.kind, 'PodDisruptionBudget');
    assert.deepEqual(pdb!.spec.selector.matchLabels, labels);
    assert.ok(pdb!.spec.maxUnavailable < deployment!.spec.replicas);
    assert.equal(env('SESSION_SECRET').valueFrom.secretKeyRef.name, 'cluster-session-app');
    const kustomization = docs('kustomization.yaml')[0]!;
    assert.deepEqual(kustomization.resources.sort(), ['deployment.yaml', 'pdb.yaml', 'secret.yaml', 'service.yaml']);
  });

  test('the Redis option: a Redis Deployment and Service, and a patch that points the app at it', () => {
    const overlay = docs('redis/kustomization.yaml')[0]!;
    assert.deepEqual(overlay.resources, ['../', 'redis.yaml']);
    const [redis, redisService] = docs('redis/redis.yaml');
    assert.equal(redis!.kind, 'Deployment');
    assert.deepEqual(redisService!.spec.selector, redis!.spec.template.metadata.labels);
    const ops = parseAllDocuments(overlay.patches[0].patch)[0]!.toJS();
    const patched = applyPatch(deployment!, ops);
    const list = patched.spec.template.spec.containers[0].env;
    assert.equal(env('SESSION_STORE', list).value, 'redis');
    assert.equal(env('REDIS_URL', list).value, `redis://${redisService!.metadata.name}:${redisService!.spec.ports[0].port}`);
    assert.equal(env('SQLITE_PATH', list), undefined);
    assert.ok(env('SESSION_SECRET', list).valueFrom, 'the rest of the env is untouched');
  });
});

describe('cluster-session export systemd', { skip: needs('systemd-analyze') }, () => {
  const exportUnit = (args: string[]) => execFileSync(process.execPath, [BIN, 'export', 'systemd', ...args], { encoding: 'utf8', cwd: ROOT });

  test('a unit systemd-analyze verify accepts: reload = SIGHUP, stop = SIGTERM to the primary, above the drain, restart, sandbox', () => {
    const unit = exportUnit(['--name', 'shop', '--user', 'www-data', '--read-write', '.data', '--env', 'SESSION_STORE=redis', '--', 'examples/express-app/src/server.ts', '-i', 'max', '--kill-timeout', '20000']);
    const file = path.join(dir, 'cluster-session-shop.service');
    writeFileSync(file, unit);
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warning either');
    const value = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]);
    assert.deepEqual(value('ExecStart'), [`${process.execPath} ${BIN} start examples/express-app/src/server.ts -i max --kill-timeout 20000 --name shop`]);
    assert.deepEqual(value('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.deepEqual(value('KillSignal'), ['SIGTERM']);
    assert.deepEqual(value('KillMode'), ['mixed'], 'workers drain through the primary');
    assert.ok(Number(value('TimeoutStopSec')[0]) * 1000 > 20_000, 'above --kill-timeout');
    assert.deepEqual(value('Restart'), ['on-failure']);
    assert.deepEqual(value('RestartPreventExitStatus'), ['2']);
    assert.deepEqual(value('User'), ['www-data']);
    assert.deepEqual(value('ReadWritePaths'), [path.join(ROOT, '.data')]);
    for (const key of ['NoNewPrivileges', 'PrivateTmp', 'ProtectHome']) assert.deepEqual(value(key), ['yes'], key);
    assert.deepEqual(value('ProtectSystem'), ['strict']);
    assert.ok(value('Environment').includes('SESSION_STORE=redis'));
    assert.ok(value('Environment').includes('CLUSTER_SESSION_RUNTIME_DIR=/run/cluster-session-shop'));
    assert.deepEqual(value('RuntimeDirectory'), ['cluster-session-shop']);
    assert.doesNotMatch(unit, /MemoryDenyWriteExecute/, "V8's JIT needs it off");
  });

  test('the check bites: systemd-analyze refuses a unit whose ExecStart names no program', () => {
    const unit = exportUnit(['--name', 'x', '--node', '/nonexistent/node', '--', 'server.js']);
    const file = path.join(dir, 'cluster-session-x.service');
    writeFileSync(file, unit);
    const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /nonexistent\/node/);
  });

  test('without start arguments: a usage error', () => {
    const r = spawnSync(process.execPath, [BIN, 'export', 'systemd', '--name', 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /needs the start arguments after --/);
  });
});

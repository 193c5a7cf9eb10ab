/**
 * docker-compose.yml is for users (no Docker engine runs here): check its structure instead of running it —
 * every service, port, environment variable and referenced file — and that the nginx config it mounts is exactly
 * what `cluster-session export nginx` prints for those upstreams, and that nginx accepts it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { parse } from 'yaml';
import { exportConfig } from '@cluster-session/balancer';
import { needs, which } from '@cluster-session/testkit';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true });
const services = compose.services as Record<string, any>;
const APPS = ['app-a', 'app-b'];
const UPSTREAMS = APPS.map((a) => `http://${a}:3000`);

test('the stack has redis, mongo, two app instances and nginx', () => {
  assert.deepEqual(Object.keys(services).sort(), ['app-a', 'app-b', 'mongo', 'nginx', 'redis']);
  for (const [name, svc] of Object.entries(services)) {
    assert.ok(svc.image || svc.build, `${name} has an image or a build`);
    for (const dep of Object.keys(svc.depends_on ?? {}).concat(Array.isArray(svc.depends_on) ? svc.depends_on : [])) {
      if (typeof dep === 'string' && !/^\d+$/.test(dep)) assert.ok(dep in services, `${name} depends on unknown service ${dep}`);
    }
  }
  assert.deepEqual(services.nginx.ports, ['8080:8080']);
  assert.ok(services.redis.healthcheck && services.mongo.healthcheck, 'stores have health checks the apps wait on');
});

test('each app instance is a production cluster on the shared store with the contract environment', () => {
  const instances = new Set<string>();
  for (const name of APPS) {
    const env = services[name].environment;
    assert.equal(env.NODE_ENV, 'production');
    assert.equal(env.PORT, '3000');
    assert.equal(env.SESSION_STORE, 'redis');
    assert.equal(env.REDIS_URL, 'redis://redis:6379');
    assert.match(env.MONGO_URL, /^mongodb:\/\/mongo:27017\//);
    assert.match(env.SESSION_SECRET, /^\$\{SESSION_SECRET:\?/, 'the secret comes from the user, never from the file');
    assert.ok(Number(env.WORKERS) >= 2, 'each instance is a cluster');
    instances.add(env.INSTANCE);
    assert.deepEqual(services[name].expose, ['3000']);
  }
  assert.equal(instances.size, 2, 'instances are told apart');
});

test('every file the stack references exists', () => {
  const dockerfile = path.join(ROOT, services['app-a'].build.context, services['app-a'].build.dockerfile);
  assert.ok(existsSync(dockerfile), dockerfile);
  const cmd = readFileSync(dockerfile, 'utf8').match(/^CMD (\[.*\])$/m);
  assert.ok(cmd, 'the Dockerfile has an exec-form CMD');
  for (const arg of JSON.parse(cmd[1]!) as string[]) {
    if (/\.(js|ts)$/.test(arg)) assert.ok(existsSync(path.join(ROOT, arg)), `CMD runs ${arg}, which must exist`);
  }
  for (const copy of readFileSync(dockerfile, 'utf8').matchAll(/^COPY (\S+)/gm)) {
    for (const src of copy[1]!.split(' ')) assert.ok(existsSync(path.join(ROOT, src)), `COPY ${src}`);
  }
  for (const volume of services.nginx.volumes as string[]) {
    const host = volume.split(':')[0]!;
    assert.ok(existsSync(path.join(ROOT, host)), `nginx mounts ${host}`);
  }
});

test('deploy/nginx.conf is what `cluster-session export nginx` prints for the compose upstreams', () => {
  const expected = exportConfig('nginx', { upstreams: UPSTREAMS, listen: { host: '0.0.0.0', port: 8080 } });
  assert.equal(readFileSync(path.join(ROOT, 'deploy', 'nginx.conf'), 'utf8'), expected);
});

test('nginx accepts deploy/nginx.conf', { skip: needs('nginx') }, () => {
  // The compose hostnames do not resolve here: point them at loopback, keep everything else byte for byte.
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-compose-'));
  try {
    const conf = readFileSync(path.join(ROOT, 'deploy', 'nginx.conf'), 'utf8').replace(/app-[ab]:3000/g, '127.0.0.1:3000');
    writeFileSync(path.join(dir, 'nginx.conf'), conf);
    const out = execFileSync(which('nginx')!, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    assert.equal(typeof out, 'string');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * The starter's own test, shipped by `npm create cluster-session` (as JavaScript, or as is with --typescript):
 * nothing but node:test, fetch and the suite's public API, so it runs in any copy of the starter. It checks the
 * HTTP contract on one in-process app, then `npm start` itself: the balancer in front of two clustered instances,
 * a login made through it, and a clean stop on SIGINT. The repository's deeper suites (app.test.ts, start.test.ts)
 * use the private testkit and stay here.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createApp } from '../src/app.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'starter-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The cookie pair a response set, ready for a Cookie header. */
function cookieOf(res: Response): string {
  const set = res.headers.getSetCookie();
  assert.ok(set.length > 0, 'a session cookie is set');
  return set.map((c) => c.split(';')[0]).join('; ');
}

const json = (body: unknown) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('the HTTP contract', () => {
  let url: string;
  let close: () => Promise<void>;

  before(async () => {
    const app = createApp({
      instance: 'test',
      session: { store: { type: 'sqlite', path: path.join(dir, 'contract.sqlite') }, secret: 'starter-test-secret-0123456789abcdef' },
    });
    const server = app.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    close = async () => {
      server.closeAllConnections();
      server.close();
      await app.sessions.close();
    };
  });
  after(() => close?.());

  test('GET / is the sign-in page, and /healthz is healthy', async () => {
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await page.text(), /<form method="post" action="\/login">/);
    const health = await fetch(`${url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { ok: boolean }).ok, true);
  });

  test('a wrong password is 401, a malformed body 400, and neither signs in', async () => {
    const wrong = await fetch(`${url}/login`, json({ username: 'alice', password: 'nope' }));
    assert.equal(wrong.status, 401);
    const malformed = await fetch(`${url}/login`, json({ username: 'alice' }));
    assert.equal(malformed.status, 400);
    assert.equal((await fetch(`${url}/me`)).status, 401);
  });

  test('login, /me counts hits, logout ends the session', async () => {
    const res = await fetch(`${url}/login`, json({ username: 'alice', password: 'wonderland' }));
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { user: 'alice' });
    const cookie = cookieOf(res);
    const first = (await (await fetch(`${url}/me`, { headers: { cookie } })).json()) as { user: string; hits: number };
    const second = (await (await fetch(`${url}/me`, { headers: { cookie } })).json()) as { user: string; hits: number };
    assert.equal(first.user, 'alice');
    assert.equal(second.hits, first.hits + 1);
    assert.equal((await fetch(`${url}/logout`, { method: 'POST', headers: { cookie } })).status, 200);
    assert.equal((await fetch(`${url}/me`, { headers: { cookie } })).status, 401);
  });
});

/** A port nothing listens on right now (the stack binds it a moment later). */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('npm start', () => {
  test('serves a login through the balancer from both instances, and stops on SIGINT', { timeout: 90_000 }, async () => {
    const src = fileURLToPath(new URL('../src/', import.meta.url));
    const ext = path.extname(fileURLToPath(import.meta.url));
    const [port, a, b, admin, ma, mb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    // As package.json's start script runs it (plus the conditions this test runs with, if any).
    const child = spawn(process.execPath, [...process.execArgv.filter((arg) => !arg.startsWith('--test')), '--import', path.join(src, 'check-node.js'), path.join(src, `start${ext}`)], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PORT: String(port),
        ADMIN_PORT: String(admin),
        INSTANCE_PORTS: `${a},${b}`,
        METRICS_PORTS: `${ma},${mb}`,
        WORKERS: '1',
        SQLITE_PATH: path.join(dir, 'start.sqlite'),
        CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'run'),
      },
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    const exited = once(child, 'exit');
    let failure: unknown;
    try {
      const deadline = Date.now() + 60_000;
      // The banner (a waiting line may say "no worker is ready": not that).
      while (!/example is ready: open http/.test(output)) {
        assert.equal(child.exitCode, null, `npm start exited early:\n${output}`);
        assert.ok(Date.now() < deadline, `npm start not ready after 60 s:\n${output}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const url = `http://127.0.0.1:${port}`;
      const res = await fetch(`${url}/login`, json({ username: 'alice', password: 'wonderland' }));
      assert.equal(res.status, 200);
      const cookie = cookieOf(res);
      const seen = new Set<string>();
      // Round robin over two instances: a handful of requests reaches both, each still signed in.
      for (let i = 0; i < 6; i++) {
        const me = await fetch(`${url}/me`, { headers: { cookie } });
        assert.equal(me.status, 200);
        const body = (await me.json()) as { user: string; instance: string };
        assert.equal(body.user, 'alice');
        seen.add(body.instance);
      }
      assert.deepEqual([...seen].sort(), ['a', 'b']);
    } catch (err) {
      failure = err;
    }
    // Ctrl-C, as a user stops it; a second one stops the instances at once if the first is not enough.
    const exit = async (ms: number) => {
      let timer: NodeJS.Timeout | undefined;
      const [code] = await Promise.race([exited, new Promise<[null]>((resolve) => (timer = setTimeout(() => resolve([null]), ms)))]);
      clearTimeout(timer);
      return code as number | null;
    };
    child.kill('SIGINT');
    let code = await exit(20_000);
    if (code === null && child.exitCode === null) {
      child.kill('SIGINT');
      code = await exit(10_000);
    }
    if (failure) throw failure;
    assert.equal(code, 0, `npm start did not stop cleanly on SIGINT:\n${output}`);
  });
});

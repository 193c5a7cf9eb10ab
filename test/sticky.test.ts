/**
 * The sticky fallback, for state that cannot be shared: the memory store with sticky routing keeps each client on
 * its worker, so logins hold across fresh connections — and this suite also shows, rather than hides, what that
 * costs: when the worker holding a client's session dies, that login is gone. Clients are told apart by their
 * source address (127.0.0.x loopback aliases), as real clients are by theirs.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startNode, until } from '@cluster-session/testkit';
import { CLI, startStack, type Stack } from './support/stack.ts';

interface Res {
  status: number;
  json: any;
  cookies: string[];
}

function call(port: number, from: string, method: string, route: string, cookie?: string, body?: object): Promise<Res> {
  return new Promise((resolve, reject) => {
    const payload = body ? JSON.stringify(body) : undefined;
    const req = http.request(
      { host: '127.0.0.1', port, method, path: route, localAddress: from, agent: false, headers: { ...(cookie ? { cookie } : {}), ...(payload ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(data), cookies: (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]!) }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(payload);
  });
}

const CLIENTS = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

describe('sticky fallback: memory store pinned by client address', { concurrency: false }, () => {
  let stack: Stack;
  let port: number;
  const cookies = new Map<string, string>();
  const workerOf = new Map<string, number>();
  const hits = new Map<string, number>();

  before(async () => {
    stack = await startStack({ SESSION_STORE: 'memory', STICKY: '1' });
    port = stack.instancePorts[0]!;
    // Every worker up before the first login: one that becomes ready later takes over part of the addresses, and
    // with the memory store a client moved that way loses its login (the CI rehearsal on Node 22 saw it).
    await until('every worker ready', async () => {
      const slots = await stack.slots();
      return slots.length > 0 && slots.every((s) => s.state === 'ready');
    }, 30_000);
  });
  after(() => stack?.close());

  test('each client keeps its worker and its login across fresh connections', async () => {
    for (const from of CLIENTS) {
      const res = await call(port, from, 'POST', '/login', undefined, { username: 'alice', password: 'wonderland' });
      assert.equal(res.status, 200);
      cookies.set(from, res.cookies.join('; '));
      for (let i = 1; i <= 15; i++) {
        const me = await call(port, from, 'GET', '/me', cookies.get(from));
        assert.equal(me.status, 200, `${from} request ${i}: ${JSON.stringify(me.json)}`);
        assert.equal(me.json.hits, i);
        if (i === 1) workerOf.set(from, me.json.worker);
        assert.equal(me.json.worker, workerOf.get(from), `${from} stays on its worker`);
      }
      hits.set(from, 15);
    }
    const workers = new Set(workerOf.values());
    console.log(`# sticky: ${CLIENTS.length} clients x 16 requests, ${workers.size} workers, 0 failed`);
    assert.equal(workers.size, 2, 'clients spread over both workers');
  });

  test('what sticky cannot save: the dead worker\'s clients lose their login; everyone else keeps theirs and their worker', async () => {
    const victim = workerOf.get(CLIENTS[0]!)!;
    process.kill(victim, 'SIGKILL');
    const lost: string[] = [];
    const kept: string[] = [];
    const deadline = Date.now() + 30_000;
    for (const from of CLIENTS) {
      let me = await call(port, from, 'GET', '/me', cookies.get(from)).catch(() => undefined);
      // The slot restarts with backoff; until then its clients get 503 from the primary, never a wrong worker.
      while ((me === undefined || me.status === 503) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        me = await call(port, from, 'GET', '/me', cookies.get(from)).catch(() => undefined);
      }
      assert.ok(me, `${from} answered`);
      if (workerOf.get(from) === victim) {
        assert.equal(me.status, 401, `${from}'s session lived only in the killed worker`);
        assert.notEqual(me.json.worker, victim);
        lost.push(from);
      } else {
        assert.equal(me.status, 200);
        assert.equal(me.json.worker, workerOf.get(from), `${from} did not move: only the dead worker's clients do`);
        assert.equal(me.json.hits, hits.get(from)! + 1);
        kept.push(from);
      }
    }
    console.log(`# sticky: killed worker ${victim}: ${lost.length} logins lost (its clients), ${kept.length} kept`);
    assert.ok(lost.length >= 1 && kept.length >= 1);
  });
});

test('memory store with two workers and no sticky routing refuses to start, naming the three ways out', async () => {
  const app = path.join(path.dirname(CLI), '..', '..', '..', 'examples', 'express-app', 'src', 'server.ts');
  const proc = startNode([CLI, 'start', app, '-i', '2', '--name', `refuse-${process.pid}`, '--port', '0'], {
    env: { ...process.env, SESSION_STORE: 'memory', SESSION_SECRET: 'sticky-test-secret-0123456789abcdef' },
  });
  const code = await proc.exited;
  assert.notEqual(code, 0);
  const out = proc.output();
  assert.match(out, /memory/);
  assert.match(out, /sqlite|redis|mongo/i);
  assert.match(out, /jwt/i);
  assert.match(out, /sticky/i);
});

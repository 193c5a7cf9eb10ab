import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BalancerConfigError } from '@cluster-session/balancer';
import { WorkerGroup } from '../src/workers.ts';
import { balancer, instances, type Instance } from './helpers.ts';

/**
 * `workers: N`: N proxy threads on one port (SO_REUSEPORT). Real threads, real sockets: what must hold is that the
 * balancer still behaves as one — one per-client cap, one rate limit, one health verdict, one set of counters —
 * and that a thread that ends is replaced while the others serve.
 */

/** One request on a new connection; resolves with the status and the instance that answered. */
async function once(url: string, path = '/whoami'): Promise<{ status: number; instance: string | undefined }> {
  const res = await fetch(new URL(path, url), { headers: { connection: 'close' } });
  const text = await res.text();
  let instance: string | undefined;
  try {
    instance = (JSON.parse(text) as { instance?: string }).instance;
  } catch {
    // a balancer answer (429, 503): no instance
  }
  return { status: res.status, instance };
}

/** Opens `n` keep-alive connections at once, each sending one request; resolves with each first status line, and a closer. */
async function hold(url: string, n: number): Promise<{ statuses: number[]; close(): void }> {
  const u = new URL(url);
  const sockets: net.Socket[] = [];
  const statuses = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<number>((resolve, reject) => {
          const s = net.connect(Number(u.port), u.hostname);
          sockets.push(s);
          s.on('error', reject);
          s.once('data', (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 0)));
          s.write(`GET /whoami HTTP/1.1\r\nHost: t\r\n\r\n`);
        }),
    ),
  );
  return { statuses, close: () => sockets.forEach((s) => s.destroy()) };
}

const count = (xs: number[], x: number) => xs.filter((y) => y === x).length;

describe('workers: several proxy threads behave as one balancer', () => {
  let a: Instance;
  let b: Instance;
  before(async () => {
    [a, b] = await instances('a', 'b');
  });
  after(async () => {
    await a.close();
    await b.close();
  });

  test('connections are spread over the threads; counters, status and /metrics are their sum', async () => {
    const lb = await balancer({ upstreams: [a.url, b.url], workers: 2, admin: 0, health: false, limits: { perClient: 0 } });
    try {
      assert.equal(lb.workers, 2);
      const seen = new Map<string, number>();
      for (let i = 0; i < 40; i++) {
        const r = await once(lb.url);
        assert.equal(r.status, 200);
        seen.set(r.instance!, (seen.get(r.instance!) ?? 0) + 1);
      }
      assert.deepEqual([...seen.keys()].sort(), ['a', 'b']);
      const status = (await (await fetch(`${lb.adminUrl}/status.json`)).json()) as {
        totals: { requests: number; connections: number };
        upstreams: Array<{ requests: number; responses: { '2xx': number } }>;
        threads: Array<{ thread: number; connections: number }>;
      };
      assert.equal(status.totals.requests, 40);
      assert.equal(status.totals.connections, 40);
      assert.equal(status.upstreams.reduce((n, u) => n + u.responses['2xx'], 0), 40);
      assert.deepEqual(status.threads.map((t) => t.thread).sort(), [0, 1]);
      // 40 connections all on one thread would happen with probability 2^-39: the kernel did spread them.
      for (const t of status.threads) assert.ok(t.connections > 0, `thread ${t.thread} took no connection: ${JSON.stringify(status.threads)}`);
      const metrics = await (await fetch(`${lb.adminUrl}/metrics`)).text();
      const total = [...metrics.matchAll(/^cluster_session_balancer_requests_total\{[^}]*code="200"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
      assert.equal(total, 40, metrics);
    } finally {
      await lb.close(100);
    }
  });

  test('limits.perClient is one cap over all threads, not one per thread', async () => {
    const lb = await balancer({ upstreams: [a.url], workers: 2, admin: 0, health: false, limits: { perClient: 10 } });
    try {
      const held = await hold(lb.url, 30);
      try {
        assert.equal(count(held.statuses, 200), 10, `statuses: ${held.statuses.join(' ')}`);
        assert.equal(count(held.statuses, 429), 20);
        const status = (await (await fetch(`${lb.adminUrl}/status.json`)).json()) as { threads: Array<{ connections: number }> };
        for (const t of status.threads) assert.ok(t.connections > 0, 'both threads took connections');
      } finally {
        held.close();
      }
      // Closed connections give their slots back, in whichever thread they were.
      await sleep(200);
      const again = await hold(lb.url, 10);
      again.close();
      assert.equal(count(again.statuses, 200), 10, `statuses: ${again.statuses.join(' ')}`);
    } finally {
      await lb.close(100);
    }
  });

  test('rateLimit is one bucket per client over all threads', async () => {
    // 1 a minute refills nothing during the test: the burst is all there is, whichever thread takes each request.
    const lb = await balancer({ upstreams: [a.url], workers: 2, health: false, limits: { perClient: 0 }, rateLimit: { rate: '1/m', burst: 10 } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) statuses.push((await once(lb.url)).status);
      assert.equal(count(statuses, 200), 10, `statuses: ${statuses.join(' ')}`);
      assert.equal(count(statuses, 429), 20);
    } finally {
      await lb.close(100);
    }
  });

  test('a health verdict reaches every thread, both ways', async () => {
    const lb = await balancer({ upstreams: [a.url, b.url], workers: 2, limits: { perClient: 0 }, health: { interval: 50, fall: 1, rise: 1, timeout: 500 } });
    try {
      await fetch(`${b.url}/control/unhealthy`, { method: 'POST' });
      const down = Date.now() + 5_000;
      while (lb.status().upstreams.find((u) => u.url === b.url)?.state !== 'down' && Date.now() < down) await sleep(50);
      for (let i = 0; i < 30; i++) assert.equal((await once(lb.url)).instance, 'a', 'b is down for every thread');
      await fetch(`${b.url}/control/healthy`, { method: 'POST' });
      const seen = new Set<string>();
      const up = Date.now() + 5_000;
      while (seen.size < 2 && Date.now() < up) seen.add((await once(lb.url)).instance!);
      assert.deepEqual([...seen].sort(), ['a', 'b']);
    } finally {
      await lb.close(100);
    }
  });

  test('reconfigure and add() apply in every thread; a change of workers is refused', async () => {
    const lines: string[] = [];
    const lb = await balancer({ upstreams: [a.url, b.url], workers: 2, health: false, limits: { perClient: 0 }, log: (m) => lines.push(m) });
    try {
      const port = Number(new URL(lb.url).port);
      lb.reconfigure({ listen: port, upstreams: [a.url], workers: 2, health: false, limits: { perClient: 0 } });
      // The threads apply it once their message arrives: the next new connections see it.
      await sleep(100);
      for (let i = 0; i < 20; i++) assert.equal((await once(lb.url)).instance, 'a');
      lb.add({ url: b.url, id: 'b2' });
      await sleep(100);
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) seen.add((await once(lb.url)).instance!);
      assert.deepEqual([...seen].sort(), ['a', 'b']);
      assert.throws(() => lb.reconfigure({ listen: port, upstreams: [a.url], workers: 3 }), (err: Error) => err instanceof BalancerConfigError && /option workers cannot change/.test(err.message));
      assert.equal(lines.filter((l) => l.includes('added')).length, 1, `one "added" line, not one per thread: ${lines.join(' | ')}`);
    } finally {
      await lb.close(100);
    }
  });

  test('drain() resolves once every thread has finished its requests there; new ones go elsewhere', async () => {
    const lb = await balancer({ upstreams: [{ url: b.url, id: 'b' }], workers: 2, health: false, limits: { perClient: 0 } });
    try {
      const started = Date.now();
      const slow = Array.from({ length: 4 }, () => fetch(`${lb.url}/slow?ms=800`, { headers: { connection: 'close' } }).then((r) => r.status));
      await sleep(200);
      lb.add({ url: a.url, id: 'a' });
      await sleep(100);
      const drained = lb.drain('b').then(() => Date.now() - started);
      for (let i = 0; i < 10; i++) assert.equal((await once(lb.url)).instance, 'a', 'a draining instance takes no new request');
      assert.deepEqual(await Promise.all(slow), [200, 200, 200, 200]);
      assert.ok((await drained) >= 800, 'drain waited for the requests in flight on both threads');
    } finally {
      await lb.close(100);
    }
  });

  test('the access log: every thread writes whole lines to the one file; reopenLogs() moves them all to the new one', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-workers-log-'));
    const file = path.join(dir, 'access.log');
    const lb = await balancer({ upstreams: [a.url], workers: 2, admin: 0, health: false, limits: { perClient: 0 }, accessLog: file });
    try {
      for (let i = 0; i < 30; i++) assert.equal((await once(lb.url, `/whoami?n=${i}`)).status, 200);
      // Written in batches at least once a second: then the file is moved, as logrotate does, and reopened.
      await sleep(1_500);
      renameSync(file, `${file}.1`);
      lb.reopenLogs();
      await sleep(100);
      for (let i = 30; i < 40; i++) assert.equal((await once(lb.url, `/whoami?n=${i}`)).status, 200);
      const threads = ((await (await fetch(`${lb.adminUrl}/status.json`)).json()) as { threads: Array<{ requests: number }> }).threads;
      assert.ok(threads.every((t) => t.requests > 0), `both threads answered: ${JSON.stringify(threads)}`);
    } finally {
      await lb.close(100);
    }
    const lines = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { path: string; status: number });
    const before = lines(`${file}.1`);
    const after = lines(file);
    assert.deepEqual(before.map((l) => l.path).sort(), Array.from({ length: 30 }, (_, i) => `/whoami?n=${i}`).sort());
    assert.deepEqual(after.map((l) => l.path).sort(), Array.from({ length: 10 }, (_, i) => `/whoami?n=${i + 30}`).sort());
    assert.ok([...before, ...after].every((l) => l.status === 200));
    rmSync(dir, { recursive: true, force: true });
  });

  test('an invalid workers value is a startup error naming the option', async () => {
    await assert.rejects(balancer({ upstreams: [a.url], workers: 0 }), (err: Error) => err instanceof BalancerConfigError && /workers/.test(err.message));
    await assert.rejects(balancer({ upstreams: [a.url], workers: 65 }), (err: Error) => err instanceof BalancerConfigError && /workers/.test(err.message));
  });

  test('a port in use is one ListenError, and no thread is left running', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await assert.rejects(balancer({ listen: port, upstreams: [a.url], workers: 2 }), (err: Error & { code?: string }) => err.code === 'CS_ERR_BALANCER_LISTEN' && /EADDRINUSE/.test(err.message));
    } finally {
      blocker.close();
    }
  });
});

describe('workers: a thread that ends is started again', () => {
  test('the other thread serves meanwhile; the new one takes connections; counters do not go back', async () => {
    const [a] = await instances('a');
    const lines: string[] = [];
    const retired: unknown[] = [];
    const options = { listen: 0, upstreams: [a.url], health: false as const, limits: { perClient: 0 } };
    const group = await WorkerGroup.start(2, 10_000, undefined, {
      options: () => options,
      unhealthy: () => [],
      draining: () => [],
      retire: (r) => retired.push(r),
      log: (m) => lines.push(m),
    });
    try {
      for (let i = 0; i < 10; i++) assert.equal((await once(group.url)).status, 200);
      await group.reports();
      group.terminate(0);
      const gone = Date.now() + 5_000;
      while (!lines.some((l) => /worker 0 ended/.test(l)) && Date.now() < gone) await sleep(20);
      assert.ok(lines.some((l) => /worker 0 ended .*starting it again in 1000 ms/.test(l)), lines.join(' | '));
      assert.equal(retired.length, 1, 'its last report is kept, so its counters stay counted');
      // Thread 1 alone holds the port now: every new connection is answered.
      for (let i = 0; i < 10; i++) assert.equal((await once(group.url)).status, 200);
      const back = Date.now() + 5_000;
      while (!lines.some((l) => /worker 0 started again/.test(l)) && Date.now() < back) await sleep(20);
      assert.ok(lines.some((l) => /worker 0 started again/.test(l)), lines.join(' | '));
      for (let i = 0; i < 40; i++) assert.equal((await once(group.url)).status, 200);
      const threads = (await group.reports()).map((r) => ({ thread: r.thread, connections: r.status.totals.connections }));
      assert.deepEqual(threads.map((t) => t.thread).sort(), [0, 1]);
      assert.ok(threads.find((t) => t.thread === 0)!.connections > 0, `the new thread 0 takes connections: ${JSON.stringify(threads)}`);
    } finally {
      await group.close(100);
      await a.close();
    }
  });
});

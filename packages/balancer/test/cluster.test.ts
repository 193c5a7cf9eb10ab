import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, request, startNode, type Proc } from '@cluster-session/testkit';
import { balancer, createInstance, instances, type Instance } from './helpers.ts';

/**
 * A keep-alive HTTP server that answers every request, but resets each connection when its *second* request
 * arrives: what a pooled connection looks like when the worker holding it was killed.
 */
async function resetsReused(): Promise<{ url: string; connections: () => number; close(): Promise<void> }> {
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    let served = 0;
    socket.on('data', (d) => {
      seen += d.toString('latin1');
      while (seen.includes('\r\n\r\n')) {
        seen = seen.slice(seen.indexOf('\r\n\r\n') + 4);
        if (served++ > 0) return socket.resetAndDestroy();
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    connections: () => connections,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

/** A keep-alive server that answers 503 to everything (a cluster primary with no worker ready). */
async function unavailable(): Promise<{ url: string; hits: () => number; close(): Promise<void> }> {
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    req.resume();
    res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1', 'content-length': 10 }).end('no worker\n');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    hits: () => hits,
    close: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

describe('in front of clusters', () => {
  test('a reused pooled connection reset before any answer is retried on a fresh one and never ejects', async () => {
    const up = await resetsReused();
    const lb2 = await balancer({ upstreams: [{ url: up.url, id: 'a' }], health: { active: false, passive: { failures: 1, window: 10_000, cooldown: 60_000 } } });
    try {
      for (let i = 0; i < 5; i++) {
        const r = await request(`${lb2.url}/x`);
        assert.equal(r.status, 200, `request ${i}: ${r.body}`);
      }
      const s = lb2.status().upstreams[0]!;
      assert.equal(s.state, 'up', 'stale connections are not evidence the instance is down');
      assert.equal(s.errors, 0);
      assert.ok(s.retries >= 4, `${s.retries} retries on fresh connections`);
      assert.match(s.lastError, /stale pooled connection/);
      assert.ok(up.connections() >= 5);
    } finally {
      await lb2.close();
      await up.close();
    }
  });

  test('a failure on a fresh connection still counts (passive ejection stays meaningful)', async () => {
    const [good] = await instances('good');
    const dead = `http://127.0.0.1:${await freePort()}`;
    const lb = await balancer({
      upstreams: [{ url: dead, id: 'dead' }, { url: good.url, id: 'good' }],
      health: { active: false, passive: { failures: 1, window: 10_000, cooldown: 60_000 } },
    });
    try {
      for (let i = 0; i < 2; i++) assert.equal((await request(`${lb.url}/whoami`)).status, 200);
      const s = lb.status().upstreams[0]!;
      assert.equal(s.state, 'down');
      assert.equal(s.errors, 1);
    } finally {
      await lb.close();
      await good.close();
    }
  });

  describe('retryOn', () => {
    let b: Instance;
    let a: Awaited<ReturnType<typeof unavailable>>;
    before(async () => {
      a = await unavailable();
      b = await createInstance('b');
    });
    after(async () => {
      await a.close();
      await b.close();
    });

    test("an instance's own 503 sends a replayable request to another instance, counted as a retry", async () => {
      const lb = await balancer({ strategy: 'cookie', health: false, upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] });
      try {
        const r = await request(`${lb.url}/whoami`, { headers: { cookie: 'CSLB=a' } });
        assert.equal(r.status, 200, r.body);
        assert.equal(r.json.instance, 'b');
        const [sa, sb] = lb.status().upstreams;
        assert.equal(sa!.responses['5xx'], 1);
        assert.equal(sb!.retries, 1);
        // Not replayable (a body, POST): the instance's answer goes out as it is.
        const post = await request(`${lb.url}/whoami`, { method: 'POST', headers: { cookie: 'CSLB=a' }, body: 'x=1' });
        assert.equal(post.status, 503);
        assert.equal(post.body, 'no worker\n');
      } finally {
        await lb.close();
      }
    });

    test('retryOn: [] passes the 503 through; a bad value is a clear startup error', async () => {
      const lb = await balancer({ strategy: 'cookie', health: false, retryOn: [], upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] });
      try {
        const r = await request(`${lb.url}/whoami`, { headers: { cookie: 'CSLB=a' } });
        assert.equal(r.status, 503);
        assert.equal(r.body, 'no worker\n');
      } finally {
        await lb.close();
      }
      await assert.rejects(balancer({ upstreams: [b.url], retryOn: [404] }), { code: 'CS_ERR_BALANCER_CONFIG', message: /option retryOn\[0\] is 404: expected an array of 5xx statuses.*Fix: use 5xx statuses, or \[\] to pass every answer through/ });
      await assert.rejects(balancer({ upstreams: [b.url], reuse: 'never' as never }), { code: 'CS_ERR_BALANCER_CONFIG', message: /option reuse is "never": expected 'shared' or 'client'/ });
    });
  });

  test('every instance passively ejected (none actively down): requests still go to them, no 503', async () => {
    const [a, b] = await instances('a', 'b');
    const lb = await balancer({
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
      health: { active: false, passive: { failures: 1, window: 10_000, cooldown: 60_000 } },
      retries: 0,
    });
    try {
      // A dropped POST on a fresh connection: a counted failure on each instance.
      for (let i = 0; i < 2; i++) assert.equal((await request(`${lb.url}/drop`, { method: 'POST', body: 'x' })).status, 502);
      assert.deepEqual(lb.status().upstreams.map((u) => u.state), ['down', 'down']);
      const r = await request(`${lb.url}/whoami`);
      assert.equal(r.status, 200, r.body);
      assert.equal(lb.status().upstreams.find((u) => u.id === r.json.instance)!.state, 'up', 'a good answer ends the ejection');
    } finally {
      await lb.close();
      await a.close();
      await b.close();
    }
  });

  describe('reuse, over a real 2-worker Node cluster', () => {
    let proc: Proc;
    let url: string;
    before(async () => {
      const port = await freePort();
      proc = startNode([path.join(import.meta.dirname, 'fixtures', 'cluster.ts'), String(port)]);
      await proc.waitFor(/listening/, 20_000);
      url = `http://127.0.0.1:${port}`;
    });
    after(() => proc.stop('SIGTERM', 5_000));

    /** `clients` keep-alive client connections, each sending `each` requests; the answers. */
    async function traffic(lbUrl: string, clients: number, each: number): Promise<Array<{ pid: number; conn: number; client: string }>> {
      const out: Array<{ pid: number; conn: number; client: string }> = [];
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
          for (let i = 0; i < each; i++) {
            const r = await request(`${lbUrl}/who`, { headers: { 'x-client': String(c) }, agent });
            assert.equal(r.status, 200, r.body);
            out.push(r.json);
          }
          agent.destroy();
        }),
      );
      return out;
    }

    /** Instance connections (by their port) that carried requests of more than one client. */
    const mixed = (answers: Array<{ conn: number; client: string }>) => {
      const by = new Map<number, Set<string>>();
      for (const a of answers) (by.get(a.conn) ?? by.set(a.conn, new Set()).get(a.conn)!).add(a.client);
      return [...by.values()].filter((s) => s.size > 1).length;
    };

    test("'shared' (default): sequential fresh client connections ride one pooled connection, so one worker", async () => {
      const lb = await balancer({ upstreams: [url], health: false });
      try {
        const pids = new Set<number>();
        for (let i = 0; i < 20; i++) pids.add((await request(`${lb.url}/who`)).json.pid);
        assert.equal(pids.size, 1, 'the known limit that reuse: client exists for');
        assert.ok(mixed(await traffic(lb.url, 4, 5)) > 0, 'a shared pool carries several clients on one connection');
      } finally {
        await lb.close();
      }
    });

    test("'client': each client connection gets its own instance connection, dealt over both workers, never shared", async () => {
      const lb = await balancer({ upstreams: [url], health: false, reuse: 'client' });
      try {
        const pids = new Set<number>();
        for (let i = 0; i < 20; i++) pids.add((await request(`${lb.url}/who`)).json.pid);
        assert.equal(pids.size, 2, 'fresh client connections reach both workers');
        const answers = await traffic(lb.url, 4, 5);
        assert.equal(mixed(answers), 0, 'no instance connection carried two clients');
        // Keep-alive clients keep their instance connection: 4 clients, 4 instance connections (not 20).
        assert.equal(new Set(answers.map((a) => a.conn)).size, 4);
      } finally {
        await lb.close();
      }
    });
  });
});

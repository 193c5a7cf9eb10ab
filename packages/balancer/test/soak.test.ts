import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { until } from '@cluster-session/testkit';
import { balancer, instances } from './helpers.ts';
import { connectWs } from './ws.ts';

test('mixed traffic for 3 s (pipelining, bodies, aborts, broken instances, WebSocket): no internal error, nothing leaks', async () => {
  const [a, b] = await instances('a', 'b');
  const logs: string[] = [];
  const lb = await balancer({
    upstreams: [a.url, b.url],
    strategy: 'least-conn',
    health: { interval: 200, passive: false },
    timeouts: { response: 1000 },
    log: (m) => logs.push(m),
  });
  const port = Number(new URL(lb.url).port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
  const paths = ['/whoami', '/slow?ms=30', '/drop', '/half', '/status/204', '/hop', '/echo'];
  const statuses = new Map<number, number>();
  const deadline = Date.now() + 3_000;
  const one = async (i: number) => {
    const path = paths[i % paths.length]!;
    if (i % 7 === 0) {
      // Three pipelined requests (length body, GET, chunked body), then the client vanishes mid-way.
      await new Promise<void>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.write(
          `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET ${path} HTTP/1.1\r\nHost: x\r\n\r\n` +
            'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n',
        );
        s.on('data', () => {});
        s.on('error', () => resolve());
        setTimeout(() => (s.destroy(), resolve()), 20 + (i % 40));
      });
      return;
    }
    if (i % 7 === 1) {
      const ws = await connectWs(`${lb.url}/ws`);
      assert.match(await ws.send('x'), /^[ab]:x$/);
      ws.close();
      return;
    }
    await new Promise<void>((resolve) => {
      const req = http.request(`${lb.url}${path}`, { agent, method: path === '/echo' ? 'POST' : 'GET' }, (res) => {
        statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
        res.resume();
        res.on('end', resolve);
        res.on('error', () => resolve());
      });
      req.on('error', () => resolve());
      if (path === '/echo') req.write('z'.repeat(i % 3 ? 10 : 70_000));
      if (i % 7 === 2) setTimeout(() => req.destroy(), i % 20);
      req.end();
    });
  };
  try {
    await Promise.all(
      Array.from({ length: 20 }, async (_, w) => {
        for (let i = w; Date.now() < deadline; i += 20) await one(i);
      }),
    );
    agent.destroy();
    assert.deepEqual(logs.filter((l) => l.includes('internal error')), []);
    assert.ok((statuses.get(200) ?? 0) > 10, `answers: ${JSON.stringify([...statuses])}`);
    assert.deepEqual([...statuses.keys()].filter((s) => ![200, 204, 502].includes(s)), [], 'only expected statuses');
    await until('every slot and client connection released', () => {
      const s = lb.status();
      return s.upstreams.every((u) => u.active === 0) && s.totals.openConnections === 0;
    });
  } finally {
    agent.destroy();
    await lb.close();
    await Promise.all([a.close(), b.close()]);
  }
});

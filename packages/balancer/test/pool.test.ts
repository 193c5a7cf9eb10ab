// The shared upstream pool under more concurrent clients than its idle cap: connections are reused, not closed and
// reopened on every request (the churn that cost 0.73x of nginx at 5,000 clients).
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { balancer } from './helpers.ts';

const servers: http.Server[] = [];
after(() => Promise.all(servers.map((s) => new Promise((r) => s.close(r)))));

/** A real instance that counts the TCP connections it accepts. */
async function countingInstance() {
  let connections = 0;
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (_req, res) => setTimeout(() => res.end('ok'), 2));
  server.on('connection', () => connections++);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections };
}

async function run(url: string, clients: number, each: number): Promise<number> {
  let ok = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      for (let i = 0; i < each; i++) {
        const status = await new Promise<number>((resolve, reject) =>
          http.get(`${url}/x`, { agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          }).on('error', reject),
        );
        if (status === 200) ok++;
      }
      agent.destroy();
    }),
  );
  return ok;
}

test('more clients than idlePerUpstream: instance connections are kept for the requests in flight', async () => {
  const up = await countingInstance();
  const lb = await balancer({ upstreams: [up.url], health: false, limits: { idlePerUpstream: 2 } as never });
  try {
    const clients = 24;
    const each = 15;
    assert.equal(await run(lb.url, clients, each), clients * each);
    // A fixed cap of 2 would close ~22 connections per round and reopen them: 168 over 360 requests (measured). Kept
    // for the peak in flight, 42-52 in runs on Node 24 (a connection a client's next request races the release of);
    // on Node 22, 76 and 119 were seen (CI rehearsal, two suites at once). The bound is well below the fixed cap's.
    assert.ok(up.connections() <= clients * 6, `${up.connections()} instance connections for ${clients} clients`);
    const idle = lb.status().upstreams[0]!.idleSockets;
    assert.ok(idle >= 1 && idle <= clients, `${idle} idle after the load`);
  } finally {
    await lb.close();
  }
});

test('idlePerUpstream: 0 still keeps no idle connection at all', async () => {
  const up = await countingInstance();
  const lb = await balancer({ upstreams: [up.url], health: false, limits: { idlePerUpstream: 0 } as never });
  try {
    assert.equal(await run(lb.url, 4, 5), 20);
    assert.equal(up.connections(), 20, 'one instance connection per request');
    assert.equal(lb.status().upstreams[0]!.idleSockets, 0);
  } finally {
    await lb.close();
  }
});

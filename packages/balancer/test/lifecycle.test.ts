import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request } from '@cluster-session/testkit';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, createInstance, raw, statusOf, until, type Instance } from './helpers.ts';

describe('connection lifecycle and limits', () => {
  let a: Instance;
  let lb: Balancer;
  before(async () => {
    a = await createInstance('a');
    lb = await balancer({ upstreams: [a.url], health: false, timeouts: { keepAlive: 300 }, limits: { bodySize: 1024 } });
  });
  after(async () => {
    await lb.close();
    await a.close();
  });

  test('a body over limits.bodySize gets 413 before anything reaches the instance', async () => {
    const before = a.hits.get('/echo') ?? 0;
    const r = await request(`${lb.url}/echo`, { method: 'POST', body: 'x'.repeat(2048) });
    assert.equal(r.status, 413);
    assert.equal(r.json.code, 'CS_ERR_BALANCER_BODY_TOO_LARGE');
    const chunked = await raw(lb.url, `POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'y'.repeat(2048)}\r\n0\r\n\r\n`);
    assert.equal(statusOf(chunked.text), 413);
    assert.equal(a.hits.get('/echo') ?? 0, before);
  });

  test('a client that goes away mid-request frees its instance slot and socket', async () => {
    const socket = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
    socket.write('GET /slow?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n');
    await until('request in flight', () => lb.status().upstreams[0]!.active === 1);
    socket.destroy();
    await until('slot released', () => lb.status().upstreams[0]!.active === 0);
    await until('client connection gone', () => lb.status().totals.openConnections === 0);
    assert.equal((await request(`${lb.url}/whoami`)).status, 200);
  });

  test('idle keep-alive clients are closed after timeouts.keepAlive', async () => {
    const { text, closed } = await raw(lb.url, 'GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n', 3_000);
    assert.equal(statusOf(text), 200);
    assert.ok(closed, 'the balancer closed the idle connection');
  });

  test('Expect: 100-continue is relayed, then the body flows', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const req = http.request(`${lb.url}/echo`, { method: 'POST', agent: false, headers: { expect: '100-continue', 'content-length': '5' } });
      req.on('continue', () => req.end('hello'));
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
    });
    assert.equal(body, 'hello');
  });

  test('a burst with aborted clients leaves nothing behind', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    try {
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          if (i % 5 === 0) {
            const s = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
            s.write('GET /slow?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n');
            await new Promise((r) => setTimeout(r, 10));
            s.destroy();
            return;
          }
          assert.equal((await request(`${lb.url}/whoami`, { agent })).status, 200);
        }),
      );
    } finally {
      agent.destroy();
    }
    await until('all released', () => lb.status().upstreams[0]!.active === 0 && lb.status().totals.openConnections === 0);
    // At most one pooled socket per request that could be in flight at once (20 agent sockets + 40 raw clients).
    assert.ok(lb.status().upstreams[0]!.idleSockets <= 60, `pool size ${lb.status().upstreams[0]!.idleSockets}`);
  });
});

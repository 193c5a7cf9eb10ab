import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { request, until } from '@cluster-session/testkit';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, createInstance, raw, statusOf, type Instance } from './helpers.ts';
import { connectWs } from './ws.ts';

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
    // On a keep-alive connection the unread body must not be taken for the next request: the connection closes.
    const keptAlive = await raw(lb.url, `POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n${'GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(2048, ' ')}`);
    assert.equal(statusOf(keptAlive.text), 413);
    assert.equal(keptAlive.text.match(/HTTP\/1\.1 /g)!.length, 1, 'nothing in the body was answered as a request');
    assert.ok(keptAlive.closed);
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

describe('timeouts follow whoever is being waited on', () => {
  let a: Instance;
  let lb: Balancer;
  before(async () => {
    a = await createInstance('a');
    lb = await balancer({ upstreams: [a.url], health: false, timeouts: { response: 2500, clientHeaders: 300, tunnel: 2000 } });
  });
  after(async () => {
    await lb.close();
    await a.close();
  });

  const download = (pauseMs: number) =>
    new Promise<number>((resolve) => {
      http.get(`${lb.url}/big?mb=24`, { agent: false }, (res) => {
        let n = 0;
        let paused = false;
        res.on('data', (d: Buffer) => {
          n += d.length;
          if (!paused) {
            paused = true;
            res.pause();
            setTimeout(() => res.resume(), pauseMs);
          }
        });
        res.on('end', () => resolve(n));
        res.on('error', () => resolve(n));
        res.on('aborted', () => resolve(n));
      }).on('error', () => resolve(-1));
    });

  test('a client that reads slowly gets a large answer whole', async () => {
    assert.equal(await download(500), 24 * 1048576);
  });

  test('a client that stops reading is cut after timeouts.response, and that is not held against the instance', async () => {
    const got = await download(6_000);
    assert.ok(got < 24 * 1048576, 'cut');
    assert.equal(lb.status().upstreams[0]!.errors, 0, 'a slow client is not an instance failure');
    assert.equal(lb.status().upstreams[0]!.state, 'up');
  });

  test('a client is not timed out while the balancer waits on an instance that reads slowly', async () => {
    const body = Buffer.alloc(24 * 1048576, 97);
    const r = await new Promise<{ status: number; length: number }>((resolve, reject) => {
      // The instance reads nothing for 1 s: longer than timeouts.clientHeaders, within timeouts.response.
      const req = http.request(`${lb.url}/slow-read?ms=1000`, { method: 'POST', agent: false, headers: { 'content-length': String(body.length) } }, (res) => {
        let length = 0;
        res.on('data', (d: Buffer) => (length += d.length));
        res.on('end', () => resolve({ status: res.statusCode!, length }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    assert.deepEqual(r, { status: 200, length: body.length });
  });

  test('an idle WebSocket tunnel is closed after timeouts.tunnel; an active one stays', async () => {
    const active = await connectWs(`${lb.url}/socket`);
    const idle = await connectWs(`${lb.url}/socket`);
    // Talk on one while the other stays silent, until the silent one is closed (bounded wait).
    const deadline = Date.now() + 15_000;
    for (let i = 0; !idle.closed(); i++) {
      assert.ok(Date.now() < deadline, 'the idle tunnel was never closed');
      assert.equal(await active.send(`m${i}`), `a:m${i}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await assert.rejects(idle.send('late'), /connection closed/);
    assert.equal(await active.send('still here'), 'a:still here');
    active.close();
  });
});

test("pooled sockets are given up before the instance's own Keep-Alive timeout", async () => {
  const a = await createInstance('a');
  a.server.keepAliveTimeout = 2_500; // Node then sends Keep-Alive: timeout=2
  const lb = await balancer({ upstreams: [a.url], health: false, timeouts: { upstreamIdle: 60_000 } });
  try {
    assert.equal((await request(`${lb.url}/whoami`)).status, 200);
    assert.equal(lb.status().upstreams[0]!.idleSockets, 1);
    await until('pooled socket dropped', () => lb.status().upstreams[0]!.idleSockets === 0, 5_000);
    await until('the instance saw the close', () => a.peerClosed === 1, 5_000);
    assert.equal(a.peerClosed, 1, 'the balancer closed it first (1 s before the hint), not the instance on its timeout');
    assert.equal((await request(`${lb.url}/whoami`, { method: 'POST', body: 'x' })).status, 200);
  } finally {
    await lb.close();
    await a.close();
  }
});

test('limits.connections: connections beyond the limit are closed at once, the others keep working', async () => {
  const a = await createInstance('a');
  const lb = await balancer({ upstreams: [a.url], health: false, limits: { connections: 2 } });
  const port = Number(new URL(lb.url).port);
  const open = () =>
    new Promise<net.Socket>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
    });
  try {
    const [s1, s2] = [await open(), await open()];
    await until('two held', () => lb.status().totals.openConnections === 2);
    const third = await raw(lb.url, 'GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n', 1_000);
    assert.equal(third.text, '', 'no answer on a connection over the limit');
    assert.ok(third.closed);
    assert.ok(lb.status().totals.rejected >= 1);
    s1.destroy();
    s2.destroy();
    await until('released', () => lb.status().totals.openConnections === 0);
    assert.equal((await request(`${lb.url}/whoami`)).status, 200);
  } finally {
    await lb.close();
    await a.close();
  }
});

test('limits.perUpstream: a full instance is skipped; when all are full the answer is 503 at once', async () => {
  const [a, b] = await Promise.all([createInstance('a'), createInstance('b')]);
  const lb = await balancer({ upstreams: [a.url, b.url], health: false, limits: { perUpstream: 1 } });
  try {
    const slow = [request(`${lb.url}/slow?ms=1500`), request(`${lb.url}/slow?ms=1500`)];
    await until('both instances busy', () => lb.status().upstreams.every((u) => u.active === 1));
    const busy = await request(`${lb.url}/whoami`, { timeoutMs: 1_000 });
    assert.equal(busy.status, 503);
    assert.equal(busy.headers['retry-after'], '1');
    assert.match(busy.json.error, /limits\.perUpstream/);
    const done = await Promise.all(slow);
    assert.deepEqual(done.map((r) => r.json.instance).sort(), ['a', 'b'], 'the two slow requests went to different instances');
    assert.equal((await request(`${lb.url}/whoami`)).status, 200);
  } finally {
    await lb.close();
    await a.close();
    await b.close();
  }
});

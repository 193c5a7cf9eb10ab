import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { freePort, request } from '@cluster-session/testkit';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, createInstance, type Instance } from './helpers.ts';

/** A real TCP server that misbehaves: reads a request head, then drops the connection or never answers. */
async function misbehaving(mode: 'drop' | 'blackhole'): Promise<{ url: string; requests: () => number; close(): Promise<void> }> {
  let requests = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let seen = '';
    socket.on('data', (d) => {
      seen += d.toString('latin1');
      if (seen.includes('\r\n\r\n')) {
        requests++;
        seen = '';
        if (mode === 'drop') socket.destroy();
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    requests: () => requests,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    }),
  };
}

const pinTo = (id: string) => ({ cookie: `CSLB=${id}` });

describe('retries are safe', () => {
  let good: Instance;
  before(async () => (good = await createInstance('good')));
  after(() => good.close());

  test('never reached (connection refused): any method goes to another instance, body included', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const lb = await balancer({ strategy: 'cookie', health: false, upstreams: [{ url: dead, id: 'dead' }, { url: good.url, id: 'good' }] });
    try {
      const r = await request(`${lb.url}/whoami`, { method: 'POST', headers: pinTo('dead'), body: 'payload=1' });
      assert.equal(r.status, 200);
      assert.equal(r.json.instance, 'good');
      assert.equal(r.json.body, 'payload=1', 'the held body was replayed');
      assert.equal(r.cookies.CSLB, 'good', 're-pinned to the instance that answered');
      const [deadStatus, goodStatus] = lb.status().upstreams;
      assert.equal(deadStatus!.errors, 1);
      assert.equal(goodStatus!.retries, 1);
    } finally {
      await lb.close();
    }
  });

  describe('sent, then the connection dropped before any answer', () => {
    let drop: Awaited<ReturnType<typeof misbehaving>>;
    let lb: Balancer;
    before(async () => {
      drop = await misbehaving('drop');
      lb = await balancer({
        strategy: 'cookie',
        health: { active: false, passive: false },
        upstreams: [{ url: drop.url, id: 'drop' }, { url: good.url, id: 'good' }],
      });
    });
    after(async () => {
      await lb.close();
      await drop.close();
    });

    for (const [method, body, retried] of [
      ['GET', undefined, true],
      ['HEAD', undefined, true],
      ['DELETE', undefined, true],
      ['PUT', undefined, true],
      ['PUT', 'x=1', false],
      ['POST', undefined, false],
      ['POST', 'x=1', false],
      ['PATCH', 'x=1', false],
    ] as const) {
      test(`${method} ${body ? 'with' : 'without'} a body: ${retried ? 'retried elsewhere' : '502, not repeated'}`, async () => {
        const dropBefore = drop.requests();
        const goodBefore = good.hits.get('/whoami') ?? 0;
        const r = await request(`${lb.url}/whoami`, { method, headers: pinTo('drop'), body });
        assert.equal(drop.requests() - dropBefore, 1, 'the first instance received it once');
        if (retried) {
          assert.equal(r.status, 200);
          assert.equal((good.hits.get('/whoami') ?? 0) - goodBefore, 1);
        } else {
          assert.equal(r.status, 502);
          assert.equal(r.json.code, 'CS_ERR_BALANCER_BAD_GATEWAY');
          assert.equal((good.hits.get('/whoami') ?? 0) - goodBefore, 0, 'never sent to a second instance');
        }
      });
    }
  });

  test('never once the response has started: a broken answer is cut, not repeated', async () => {
    const other = await createInstance('other');
    const lb = await balancer({ strategy: 'cookie', health: false, upstreams: [{ url: good.url, id: 'good' }, { url: other.url, id: 'other' }] });
    try {
      await assert.rejects(request(`${lb.url}/half`, { headers: pinTo('good') }), /aborted|ECONNRESET|socket hang up/);
      assert.equal(other.hits.get('/half') ?? 0, 0);
    } finally {
      await lb.close();
      await other.close();
    }
  });

  test('no answer in time: idempotent requests go elsewhere, others get 504', async () => {
    const hole = await misbehaving('blackhole');
    const lb = await balancer({
      strategy: 'cookie',
      health: { active: false, passive: false },
      timeouts: { response: 300 },
      upstreams: [{ url: hole.url, id: 'hole' }, { url: good.url, id: 'good' }],
    });
    try {
      const get = await request(`${lb.url}/whoami`, { headers: pinTo('hole'), timeoutMs: 3_000 });
      assert.equal(get.status, 200);
      assert.equal(get.json.instance, 'good');
      const post = await request(`${lb.url}/whoami`, { method: 'POST', body: 'a=1', headers: pinTo('hole'), timeoutMs: 3_000 });
      assert.equal(post.status, 504);
      assert.equal(post.json.code, 'CS_ERR_BALANCER_GATEWAY_TIMEOUT');
    } finally {
      await lb.close();
      await hole.close();
    }
  });
});

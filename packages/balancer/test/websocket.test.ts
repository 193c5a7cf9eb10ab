import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { request, until } from '@cluster-session/testkit';
import { after, before, describe, test } from 'node:test';
import { balancer, instances, type Instance } from './helpers.ts';
import { connectWs } from './ws.ts';

describe('WebSocket', () => {
  let a: Instance, b: Instance;
  before(async () => ([a, b] = await instances('a', 'b')));
  after(() => Promise.all([a.close(), b.close()]));

  test('upgrades are proxied and frames flow both ways', async () => {
    const lb = await balancer({ upstreams: [a.url, b.url], health: false });
    try {
      const ws = await connectWs(`${lb.url}/socket`);
      assert.match(ws.head, /^HTTP\/1\.1 101 /);
      assert.match(ws.head, /\r\nupgrade: websocket/i);
      assert.match(ws.head, /\r\nsec-websocket-accept: /i);
      const first = await ws.send('hello');
      assert.match(first, /^[ab]:hello$/);
      for (let i = 0; i < 5; i++) assert.equal(await ws.send(`m${i}`), `${first[0]}:m${i}`, 'one tunnel, one instance');
      assert.equal(lb.status().upstreams.reduce((n, u) => n + u.active, 0), 1, 'an open tunnel counts as in flight');
      ws.close();
      await until('tunnel released', () => lb.status().upstreams.every((u) => u.active === 0));
    } finally {
      await lb.close();
    }
  });

  test('close() ends open tunnels at once instead of waiting for them', async () => {
    const lb = await balancer({ upstreams: [a.url], health: false });
    const ws = await connectWs(`${lb.url}/socket`);
    assert.equal(await ws.send('hi'), 'a:hi');
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('close() waited for the open tunnel')), 5_000)));
    await Promise.race([lb.close(30_000), stuck]); // grace 30 s: only a tunnel left open would make it wait
    clearTimeout(timer);
    await until('client sees the close', () => ws.closed(), 2_000);
  });

  test('sticky cookie routing holds for WebSocket handshakes', async () => {
    const lb = await balancer({ strategy: 'cookie', upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }], health: false });
    try {
      const ws = await connectWs(`${lb.url}/socket`);
      const pin = /set-cookie: CSLB=(\w+)/i.exec(ws.head)?.[1];
      assert.ok(pin, 'the handshake answer pins the client');
      const name = (await ws.send('x')).split(':')[0];
      assert.equal(name, pin);
      ws.close();
      for (let i = 0; i < 6; i++) {
        const again = await connectWs(`${lb.url}/socket`, { cookie: `CSLB=${pin}` });
        assert.equal((await again.send('y')).split(':')[0], pin);
        again.close();
      }
    } finally {
      await lb.close();
    }
  });

  test('an upgrade refused by the instance is passed through as a normal answer', async () => {
    const plain = http.createServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('no websockets here'));
    plain.on('upgrade', (_req, socket: net.Socket) => socket.end('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 18\r\n\r\nno websockets here'));
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const lb = await balancer({ upstreams: [`http://127.0.0.1:${(plain.address() as net.AddressInfo).port}`], health: false });
    try {
      await assert.rejects(connectWs(`${lb.url}/socket`), /handshake refused: HTTP\/1\.1 426/);
      assert.equal((await request(`${lb.url}/after`)).status, 426, 'the balancer keeps serving');
    } finally {
      await lb.close();
      plain.close();
    }
  });
});

// The per-client token bucket: real requests from distinct client addresses (127.0.0.x on Linux), X-Forwarded-For
// believed only from the configured proxies, and the bucket table bounded.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Balancer } from '@cluster-session/balancer';
import { RateLimiter } from '../src/rate-limit.ts';
import { balancer, instances, type Instance } from './helpers.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One GET from `localAddress` on a fresh connection. */
function get(url: string, localAddress: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { localAddress, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function burst(url: string, from: string, n: number, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(url, from, headers)).status);
  return out;
}

describe('rate limit', () => {
  let a: Instance;
  let lb: Balancer;
  before(async () => {
    [a] = await instances('a');
    // 1 request per 10 s refills nothing during the test: the burst is all a client gets.
    lb = await balancer({ upstreams: [a.url], health: false, rateLimit: { rate: '6/m', burst: 3 }, trustedProxies: ['127.0.0.50', '127.0.1.0/24'] });
  });
  after(async () => {
    await lb.close(100);
    await a.close();
  });

  test('burst requests pass, the next gets 429 with Retry-After and the code; another address is unaffected', async () => {
    assert.deepEqual(await burst(`${lb.url}/whoami`, '127.0.0.10', 3), [200, 200, 200]);
    const over = await get(`${lb.url}/whoami`, '127.0.0.10');
    assert.equal(over.status, 429);
    assert.equal(JSON.parse(over.body).code, 'CS_ERR_BALANCER_RATE_LIMITED');
    assert.equal(over.headers['cache-control'], 'no-store');
    const wait = Number(over.headers['retry-after']);
    assert.ok(wait >= 1 && wait <= 10, `Retry-After ${over.headers['retry-after']}: the seconds until one token is back (one per 10 s)`);
    assert.equal((await get(`${lb.url}/whoami`, '127.0.0.11')).status, 200);
    assert.equal(a.hits.get('/whoami'), 4, 'the limited request never reached the instance');
  });

  test('a pipelined request behind a limited one is answered too, in order, on the same connection', async () => {
    const { exchange } = await import('./helpers.ts');
    const two = 'GET /whoami HTTP/1.1\r\nHost: x\r\n\r\nGET /whoami HTTP/1.1\r\nHost: x\r\n\r\n';
    const r = await exchange(lb.url, two, { localAddress: '127.0.0.10' });
    assert.equal(r.text.match(/HTTP\/1\.1 429/g)?.length, 2, r.text);
  });

  test('X-Forwarded-For is believed only from a trusted proxy: spoofing it from elsewhere does not buy requests', async () => {
    // An untrusted peer rotating X-Forwarded-For still has one bucket: its own address.
    const spoofed = [];
    for (let i = 0; i < 5; i++) spoofed.push((await get(`${lb.url}/whoami`, '127.0.0.20', { 'x-forwarded-for': `198.51.100.${i}` })).status);
    assert.deepEqual(spoofed, [200, 200, 200, 429, 429]);
    const seen = JSON.parse((await get(`${lb.url}/whoami`, '127.0.0.21', { 'x-forwarded-for': '198.51.100.9' })).body).headers;
    assert.equal(seen['x-forwarded-for'], '127.0.0.21', 'nor is it forwarded');

    // A trusted proxy (exact address or CIDR) carries many clients: each its own bucket, keyed on the address it reports.
    for (const [p, proxy] of ['127.0.0.50', '127.0.1.7'].entries()) {
      for (let c = 0; c < 3; c++) assert.deepEqual(await burst(`${lb.url}/whoami`, proxy, 3, { 'x-forwarded-for': `203.0.113.${p * 10 + c}` }), [200, 200, 200], `${proxy} client ${c}`);
      assert.equal((await get(`${lb.url}/whoami`, proxy, { 'x-forwarded-for': `203.0.113.${p * 10}` })).status, 429);
    }
    // A chain through two trusted proxies: the right-most untrusted entry is the client; entries left of it are not believed.
    const chain = await burst(`${lb.url}/whoami`, '127.0.0.50', 4, { 'x-forwarded-for': '10.9.9.9, 192.0.2.44, 127.0.1.9' });
    assert.deepEqual(chain, [200, 200, 200, 429]);
    const echo = JSON.parse((await get(`${lb.url}/whoami`, '127.0.0.50', { 'x-forwarded-for': '192.0.2.45' })).body).headers;
    assert.equal(echo['x-forwarded-for'], '192.0.2.45, 127.0.0.50', 'a trusted proxy\'s list is kept and extended');
  });

  test('limits.perClient does not cap a trusted proxy (it carries many clients), and still caps anyone else', async () => {
    const capped = await balancer({ upstreams: [a.url], health: false, limits: { perClient: 1 }, trustedProxies: ['127.0.0.50'] });
    try {
      const hold = (from: string) =>
        new Promise<net.Socket>((resolve) => {
          const s = net.connect({ port: Number(new URL(capped.url).port), host: '127.0.0.1', localAddress: from }, () => resolve(s));
        });
      const held = [await hold('127.0.0.50'), await hold('127.0.0.60')];
      assert.equal((await get(`${capped.url}/whoami`, '127.0.0.50')).status, 200, 'second connection of the trusted proxy');
      assert.equal((await get(`${capped.url}/whoami`, '127.0.0.60')).status, 429, 'second connection of another address');
      for (const s of held) s.destroy();
    } finally {
      await capped.close(100);
    }
  });

  test('a bad trustedProxies entry or rate is a startup error naming the option', async () => {
    await assert.rejects(balancer({ upstreams: [a.url], trustedProxies: ['10.0.0.0/33'] }), /option trustedProxies\[0\] is "10\.0\.0\.0\/33": expected an IP address or CIDR range/);
    await assert.rejects(balancer({ upstreams: [a.url], rateLimit: { rate: '50 per second' } }), /option rateLimit\.rate is "50 per second": expected requests per second \(a number\) or '50\/s'/);
    await assert.rejects(balancer({ upstreams: [a.url], rateLimit: { rate: '0/s' } }), /option rateLimit\.rate/);
  });
});

describe('RateLimiter (the bucket table)', () => {
  test('refills at the rate, never above the burst', () => {
    const r = new RateLimiter({ perMs: 1 / 1000, burst: 2, maxClients: 100 });
    assert.deepEqual([r.take('a', 0), r.take('a', 0)], [0, 0]);
    assert.equal(r.take('a', 0), 1, 'one token per second: 1 s to wait');
    assert.equal(r.take('a', 999), 1);
    assert.equal(r.take('a', 2000), 0, 'refilled');
    assert.deepEqual([r.take('a', 100_000), r.take('a', 100_000), r.take('a', 100_000)], [0, 0, 1], 'a long idle gives the burst, not more');
  });

  test('bounded: full buckets are swept, and past maxClients the oldest go first', () => {
    const r = new RateLimiter({ perMs: 1 / 1000, burst: 5, maxClients: 100 });
    for (let i = 0; i < 1000; i++) r.take(`10.0.${i >> 8}.${i & 255}`, 0);
    assert.ok(r.size <= 100, `size ${r.size}`);
    r.sweep(10_000); // every bucket refilled by now: the same as no bucket
    assert.equal(r.size, 0);
  });
});

// Opt-in compression through the real balancer: real HTTP clients (node:http, whose parser is llhttp) decode what
// arrives, so a framing error or a corrupt stream fails here.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import type { Balancer } from '@cluster-session/balancer';
import { acceptEncoding, Dechunker, ENC_BR, ENC_GZIP, ENC_NONE, pickEncoding } from '../src/compress.ts';
import { balancer, exchange } from './helpers.ts';

const JSON_BODY = JSON.stringify({ items: Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] })) });
const TEXT_MIB = 'the quick brown fox jumps over the lazy dog\n'.repeat(Math.ceil(2 ** 20 / 44));

async function app(): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    const path = req.url!.split('?')[0];
    switch (path) {
      case '/json':
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(JSON_BODY), etag: '"v1"' });
        return res.end(JSON_BODY);
      case '/stream': {
        // Chunked from the instance, in pieces with pauses.
        res.writeHead(200, { 'content-type': 'text/html' });
        let n = 0;
        const t = setInterval(() => {
          res.write(`<p>part ${n}</p>\n`.repeat(50));
          if (++n === 5) {
            clearInterval(t);
            res.end();
          }
        }, 10);
        return;
      }
      case '/big': {
        const mib = Number(new URL(req.url!, 'http://x').searchParams.get('mib') ?? 2);
        res.writeHead(200, { 'content-type': 'text/plain' });
        let left = mib;
        const more = () => {
          while (left > 0) {
            left--;
            if (!res.write(TEXT_MIB)) return res.once('drain', more);
          }
          res.end();
        };
        return more();
      }
      case '/already': {
        const z = gzipSync(JSON_BODY);
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': z.length });
        return res.end(z);
      }
      case '/png':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': 4096 });
        return res.end(Buffer.alloc(4096, 7));
      case '/tiny':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 });
        return res.end('{}');
      case '/no-transform':
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-transform', 'content-length': Buffer.byteLength(JSON_BODY) });
        return res.end(JSON_BODY);
      case '/vary':
        res.writeHead(200, { 'content-type': 'text/plain', vary: 'Accept-Encoding, Cookie', 'content-length': Buffer.byteLength(JSON_BODY) });
        return res.end(JSON_BODY);
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  raw: Buffer;
  socketPort: number;
}

function get(url: string, headers: Record<string, string>, options: { agent?: http.Agent; method?: string; slowMs?: number } = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { headers, agent: options.agent ?? false, method: options.method ?? 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      const socketPort = res.socket.localPort ?? 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (options.slowMs) {
          res.pause();
          setTimeout(() => res.resume(), options.slowMs);
        }
      });
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, raw: Buffer.concat(chunks), socketPort }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const decode = (g: Got) => {
  const enc = g.headers['content-encoding'];
  return (enc === 'br' ? brotliDecompressSync(g.raw) : enc === 'gzip' ? gunzipSync(g.raw) : g.raw).toString();
};

describe('compression', () => {
  let upstream: Awaited<ReturnType<typeof app>>;
  let lb: Balancer;
  let plain: Balancer;
  before(async () => {
    upstream = await app();
    lb = await balancer({ upstreams: [upstream.url], health: false, compress: true });
    plain = await balancer({ upstreams: [upstream.url], health: false });
  });
  after(async () => {
    await lb.close(100);
    await plain.close(100);
    upstream.close();
  });

  test('brotli or gzip by Accept-Encoding and q-values; chunked, Vary, a weak ETag; the body decodes to the original', async () => {
    const cases: Array<[string, string | undefined]> = [
      ['br', 'br'],
      ['gzip, deflate', 'gzip'],
      ['gzip, deflate, br', 'br'],
      ['gzip;q=0.8, br;q=0.5', 'gzip'],
      ['br;q=0, gzip', 'gzip'],
      ['*', 'br'],
      ['*;q=0.5, br;q=0', 'gzip'],
      ['identity', undefined],
      ['br;q=0, gzip;q=0', undefined],
      ['GZIP;Q=1', 'gzip'],
    ];
    for (const [accept, expected] of cases) {
      const g = await get(`${lb.url}/json`, { 'accept-encoding': accept });
      assert.equal(g.status, 200);
      assert.equal(g.headers['content-encoding'], expected, accept);
      assert.equal(g.headers.vary, 'Accept-Encoding', accept);
      assert.equal(decode(g), JSON_BODY, accept);
      if (expected) {
        assert.equal(g.headers['transfer-encoding'], 'chunked');
        assert.equal(g.headers['content-length'], undefined);
        assert.equal(g.headers.etag, 'W/"v1"');
        assert.ok(g.raw.length < JSON_BODY.length / 4, `${accept}: ${g.raw.length} bytes for ${JSON_BODY.length}`);
      } else {
        assert.equal(g.headers['content-length'], String(JSON_BODY.length));
        assert.equal(g.headers.etag, '"v1"');
      }
    }
    // Without the option nothing changes.
    const off = await get(`${plain.url}/json`, { 'accept-encoding': 'br' });
    assert.equal(off.headers['content-encoding'], undefined);
    assert.equal(off.headers.vary, undefined);
  });

  test('left alone: the instance\'s own encoding, images, tiny bodies, no-transform, HEAD, HTTP/1.0; Vary not doubled', async () => {
    const already = await get(`${lb.url}/already`, { 'accept-encoding': 'br' });
    assert.equal(already.headers['content-encoding'], 'gzip', 'not compressed twice');
    assert.equal(gunzipSync(already.raw).toString(), JSON_BODY);
    for (const path of ['/png', '/tiny', '/no-transform']) {
      const g = await get(`${lb.url}${path}`, { 'accept-encoding': 'gzip, br' });
      assert.equal(g.headers['content-encoding'], undefined, path);
      assert.ok(g.headers['content-length'], path);
    }
    const vary = await get(`${lb.url}/vary`, { 'accept-encoding': 'gzip' });
    assert.equal(vary.headers.vary, 'Accept-Encoding, Cookie');
    assert.equal(decode(vary), JSON_BODY);
    const head = await get(`${lb.url}/json`, { 'accept-encoding': 'br' }, { method: 'HEAD' });
    assert.equal(head.headers['content-encoding'], undefined);
    assert.equal(head.raw.length, 0);
    const old = await exchange(lb.url, 'GET /json HTTP/1.0\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n');
    assert.doesNotMatch(old.text, /content-encoding/i, 'an HTTP/1.0 client cannot read chunked: sent as is');
    assert.ok(old.text.endsWith(JSON_BODY));
  });

  test('a chunked, paced answer and 2 MiB to a slow reader arrive whole (back-pressure through zlib)', async () => {
    const s = await get(`${lb.url}/stream`, { 'accept-encoding': 'gzip' });
    assert.equal(s.headers['content-encoding'], 'gzip');
    assert.equal(decode(s), Array.from({ length: 5 }, (_, n) => `<p>part ${n}</p>\n`.repeat(50)).join(''));
    const big = await get(`${lb.url}/big?mib=2`, { 'accept-encoding': 'br' }, { slowMs: 2 });
    assert.equal(big.headers['content-encoding'], 'br');
    assert.equal(decode(big), TEXT_MIB.repeat(2));
  });

  test('keep-alive and pipelining go on after a compressed answer, in order', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number>();
      for (const accept of ['br', 'gzip', 'identity', 'br']) {
        const g = await get(`${lb.url}/json`, { 'accept-encoding': accept }, { agent });
        assert.equal(decode(g), JSON_BODY);
        ports.add(g.socketPort);
      }
      assert.equal(ports.size, 1, 'one connection carried all four');
    } finally {
      agent.destroy();
    }
    const two = 'GET /json HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\nGET /tiny HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n';
    const r = await exchange(lb.url, two);
    const first = r.text.indexOf('HTTP/1.1 200');
    const second = r.text.indexOf('HTTP/1.1 200', first + 1);
    assert.ok(first === 0 && second > 0, r.text.slice(0, 300));
    assert.match(r.text.slice(0, second), /\r\n0\r\n\r\n$/, 'the compressed answer ends with its last chunk before the next answer');
    assert.ok(r.text.endsWith('\r\n\r\n{}'));
  });
});

describe('Dechunker (canonical chunks back to data)', () => {
  test('split at every byte boundary, the data comes out whole; anything non-canonical throws', () => {
    const stream = Buffer.from('5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n', 'latin1');
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new Dechunker();
      const out: Buffer[] = [];
      d.feed(stream.subarray(0, cut), out);
      d.feed(stream.subarray(cut), out);
      assert.equal(Buffer.concat(out).toString(), 'helloabcdefghijklmnopqrstuvwxyz', `cut at ${cut}`);
    }
    for (const bad of ['5;x=1\r\nhello\r\n', '5\nhello', '5\r\nhelloX', '0\r\n\r\nmore', 'G\r\n']) {
      assert.throws(() => new Dechunker().feed(Buffer.from(bad, 'latin1'), []), /compress: /, JSON.stringify(bad));
    }
  });
});

describe('Accept-Encoding parsing', () => {
  test('q-values, wildcards, case, malformed weights, several fields', () => {
    assert.equal(pickEncoding(''), ENC_NONE);
    assert.equal(pickEncoding('br;q=0.9, gzip;q=1'), ENC_GZIP);
    assert.equal(pickEncoding('br;q=1.0, gzip;q=1'), ENC_BR);
    assert.equal(pickEncoding('gzip;q=2'), ENC_NONE, 'a weight above 1 is malformed');
    assert.equal(pickEncoding('gzip;q=abc'), ENC_NONE);
    assert.equal(pickEncoding('x-gzip'), ENC_GZIP);
    assert.equal(pickEncoding('deflate, compress'), ENC_NONE);
    assert.equal(acceptEncoding('Accept: */*\r\naccept-encoding: gzip\r\nAccept-Encoding: br\r\n'), 'gzip,br');
  });
});

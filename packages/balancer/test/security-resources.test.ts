/**
 * Regression tests for the resource findings of issue #12: the CRLF trickle (finding 2), the pipelining client
 * that never reads (finding 3) and one address taking every connection slot (limits.perClient). Waits here are
 * bounds ("closed within 3 s, not held open"), never speed measurements.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Balancer } from '@cluster-session/balancer';
import { balancerConfig } from '../src/options.ts';
import { balancer, codeOf, exchange, statusOf } from './helpers.ts';
import { until } from '@cluster-session/testkit';
import { Oracle } from './fixtures/oracle.ts';
import { startRecorder, type Recorder } from './fixtures/recorder.ts';

const H = 'Host: localhost\r\n';

/** Connects and sends CRLF every `everyMs` until the balancer closes; resolves with what it answered and when. */
function trickle(url: string, everyMs: number, prefix = ''): Promise<{ text: string; afterMs: number }> {
  const u = new URL(url);
  const started = Date.now();
  return new Promise((resolve) => {
    const socket = net.connect(Number(u.port), u.hostname);
    let text = '';
    const timer = setInterval(() => socket.write('\r\n'), everyMs);
    const done = () => {
      clearInterval(timer);
      socket.destroy();
      resolve({ text, afterMs: Date.now() - started });
    };
    const cap = setTimeout(done, 6_000); // the bound: held open this long is the bug
    socket.on('connect', () => socket.write(prefix));
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(cap);
      done();
    });
    socket.on('error', () => {});
  });
}

describe('finding 2: the head deadline cannot be extended by data', () => {
  let rec: Recorder;
  let lb: Balancer;
  before(async () => {
    rec = await startRecorder();
    lb = await balancer({ upstreams: [rec.url], health: false, timeouts: { clientHeaders: 1_000, keepAlive: 1_000 } });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });

  test('20 connections sending CRLF every 200 ms are all closed with 408 at the head deadline', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, () => trickle(lb.url, 200)));
    for (const r of results) {
      assert.equal(statusOf(r.text), 408, r.text);
      assert.ok(r.afterMs < 3_000, `held open ${r.afterMs} ms by a trickle (deadline 1 s)`);
    }
  });

  test('a keep-alive connection trickling CRLF after a request is closed with 408 too', async () => {
    const r = await trickle(lb.url, 200, `GET /first HTTP/1.1\r\n${H}\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.match(r.text, /HTTP\/1\.1 408 /);
    assert.ok(r.afterMs < 4_000, `held open ${r.afterMs} ms`);
  });

  test('a head sent one byte at a time still gets the deadline set when it began', async () => {
    const head = `GET /slow HTTP/1.1\r\n${H}X-Pad: ${'a'.repeat(200)}\r\n\r\n`;
    const u = new URL(lb.url);
    const started = Date.now();
    const text = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(u.port), u.hostname);
      let out = '';
      let i = 0;
      const timer = setInterval(() => (i < head.length ? socket.write(head[i++]!) : undefined), 20);
      socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
      socket.on('close', () => {
        clearInterval(timer);
        resolve(out);
      });
      socket.on('error', () => {});
    });
    assert.equal(statusOf(text), 408);
    assert.ok(Date.now() - started < 3_000);
    assert.deepEqual(rec.seen('/slow'), []);
  });
});

describe('finding 3: a pipelining client that never reads', () => {
  let rec: Recorder;
  let lb: Balancer;
  // Answers small enough to arrive in one read, big enough to fill the client socket's buffer: each completes at
  // once, so only the balancer's own check stops it taking the next pipelined request (the reported case).
  const body = 'x'.repeat(20 * 1024);
  before(async () => {
    rec = await startRecorder();
    rec.script = (m) => ({ bytes: `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Path: ${m.url}\r\n\r\n${body}` });
    lb = await balancer({ upstreams: [rec.url], health: false });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });

  test('requests stop being taken while its socket must drain, and all are answered in order once it reads', async (t) => {
    const n = 1_000;
    const u = new URL(lb.url);
    const socket = net.connect(Number(u.port), u.hostname);
    socket.pause(); // never reads, for now
    await new Promise((r) => socket.once('connect', r));
    socket.write(Array.from({ length: n }, (_, i) => `GET /p${i} HTTP/1.1\r\n${H}\r\n`).join(''));
    // Wait until forwarding stops: no new request reached the instance for 500 ms.
    let last = -1;
    await until('forwarding to stop', async () => {
      const now = rec.seen('/p').length;
      const stable = now === last;
      last = now;
      if (!stable) await new Promise((r) => setTimeout(r, 500));
      return stable;
    }, 10_000);
    const forwarded = rec.seen('/p').length;
    t.diagnostic(`${forwarded} of ${n} pipelined requests forwarded while the client read nothing`);
    assert.ok(forwarded < n / 2, `${forwarded} of ${n} pipelined requests were forwarded to a client that reads nothing`);

    const oracle = new Oracle('response');
    socket.on('data', (d: Buffer) => oracle.execute(d));
    socket.resume();
    await until('every pipelined request answered', () => oracle.messages.length === n || oracle.error !== null, 20_000);
    socket.destroy();
    assert.equal(oracle.error, null);
    assert.deepEqual(
      oracle.messages.map((m) => m.headers[m.headers.indexOf('X-Path') + 1]),
      Array.from({ length: n }, (_, i) => `/p${i}`),
      'answered in order',
    );
    assert.equal(rec.seen('/p').length, n);
  });
});

describe('limits.perClient: one address cannot take every slot', () => {
  let rec: Recorder;
  let lb: Balancer;
  before(async () => {
    rec = await startRecorder();
    lb = await balancer({ upstreams: [rec.url], health: false, limits: { perClient: 3 } });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });

  test('the connection over the cap gets 429; another address and a freed slot are served', async () => {
    const u = new URL(lb.url);
    const held = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<net.Socket>((resolve) => {
        const s = net.connect(Number(u.port), u.hostname, () => resolve(s));
      })),
    );
    await until('the three connections to be counted', () => lb.status().totals.openConnections === 3);
    const over = await exchange(lb.url, `GET / HTTP/1.1\r\n${H}\r\n`);
    assert.equal(statusOf(over.text), 429, over.text);
    assert.equal(codeOf(over.text), 'CS_ERR_BALANCER_TOO_MANY_CONNECTIONS');
    assert.match(over.text, /Retry-After: 1\r\n/);
    const other = await exchange(lb.url, `GET /other HTTP/1.1\r\n${H}\r\n`, { localAddress: '127.0.0.2' });
    assert.equal(statusOf(other.text), 200, 'another client address is not affected');
    held[0]!.destroy();
    await until('a slot to be freed', () => lb.status().totals.openConnections === 2);
    assert.equal(statusOf((await exchange(lb.url, `GET /again HTTP/1.1\r\n${H}\r\n`)).text), 200);
    for (const s of held) s.destroy();
  });

  test('default: a quarter of limits.connections, at most 256; none behind a trusted proxy', () => {
    const config = (limits: object, trustProxy = false) => balancerConfig({ listen: 0, upstreams: ['http://127.0.0.1:1'], limits, trustProxy }).limits.perClient;
    assert.equal(config({}), 256);
    assert.equal(config({ connections: 100 }), 25);
    assert.equal(config({}, true), 0);
    assert.equal(config({ perClient: 0 }), 0);
  });
});

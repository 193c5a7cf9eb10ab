// The wire parsers on their own: pure functions, so every split of the bytes can be tried.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ChunkedTracker } from '../src/chunked.ts';
import { parseRequestHead, parseResponseHead } from '../src/http1.ts';

describe('chunked framing', () => {
  const message = Buffer.from('5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: yes\r\n\r\nNEXT');
  const end = message.length - 4;

  test('finds the end whatever the split, byte by byte or all at once', () => {
    const whole = new ChunkedTracker();
    assert.equal(whole.advance(message, 0, message.length), end);
    for (const step of [1, 2, 3, 7, 13]) {
      const t = new ChunkedTracker();
      let found = -1;
      for (let i = 0; i < message.length && found === -1; i += step) {
        const r = t.advance(message, i, Math.min(message.length, i + step));
        assert.notEqual(r, -2, `split ${step} at ${i}`);
        if (r >= 0) found = r;
      }
      assert.equal(found, end, `split every ${step} bytes`);
    }
  });

  test('rejects broken framing', () => {
    for (const bad of ['zz\r\n', '5\r\nhelloXX', '5\nhello\r\n', '\r\n', `${'f'.repeat(13)}\r\n`]) {
      assert.equal(new ChunkedTracker().advance(Buffer.from(bad), 0, bad.length), -2, JSON.stringify(bad));
    }
  });
});

describe('request head', () => {
  test('keeps end-to-end headers, removes hop-by-hop ones and the headers Connection names', () => {
    const r = parseRequestHead('GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nX-Keep: 2\r\nTE: trailers\r\nContent-Length: 0\r\n');
    assert.ok(!('reason' in r));
    assert.equal(r.headers, 'Host: h\r\nX-Keep: 2\r\n');
    assert.equal(r.contentLength, 0);
    assert.equal(r.keepAlive, true);
  });

  test('Upgrade counts only with Connection: upgrade', () => {
    const yes = parseRequestHead('GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n');
    const no = parseRequestHead('GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n');
    assert.equal(!('reason' in yes) && yes.upgrade, 'websocket');
    assert.equal(!('reason' in no) && no.upgrade, '');
  });
});

describe('response head', () => {
  test('strips hop-by-hop headers, reads framing and keep-alive', () => {
    const r = parseResponseHead('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n');
    assert.ok(r);
    assert.equal(r.head, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n');
    assert.equal(r.chunked, true);
    assert.equal(r.close, false);
    assert.equal(r.keepAliveMs, 5000, 'the instance keep-alive hint is kept for the pool');
    const old = parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 3\r\n');
    assert.ok(old);
    assert.equal(old.close, true, 'HTTP/1.0 without keep-alive closes');
    assert.ok(old.head.startsWith('HTTP/1.1 200 OK'), 'answered as HTTP/1.1');
  });

  test('non-HTTP bytes are refused', () => {
    assert.equal(parseResponseHead('SSH-2.0-OpenSSH\r\n'), undefined);
    assert.equal(parseResponseHead('HTTP/1.1 2000 OK\r\n'), undefined);
    assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: x\r\n'), undefined);
  });
});

// The wire pieces on their own: pure functions and state machines, so every split of the bytes can be tried.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CHUNKED_ERROR, CHUNKED_MORE, ChunkedCodec } from '../src/chunked.ts';
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, requestFraming, responseFraming } from '../src/framing.ts';
import { HEAD_BAD, HEAD_DONE, HEAD_MORE, HEAD_TOO_LARGE, HeadReader } from '../src/head.ts';
import { parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../src/http1.ts';
import { listElements, trimOws } from '../src/syntax.ts';
import { parseTarget } from '../src/target.ts';

/** Runs the codec over `message` in pieces of `step` bytes: [index past the end or the error, bytes to forward]. */
function reframe(message: string, step: number): [number | string, string] {
  const buf = Buffer.from(message, 'latin1');
  const codec = new ChunkedCodec();
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += step) {
    // A fresh buffer per piece, as sockets deliver them.
    const piece = Buffer.from(buf.subarray(i, Math.min(buf.length, i + step)));
    const r = codec.advance(piece, 0, piece.length, out);
    if (r === CHUNKED_ERROR) return [codec.error, ''];
    if (r >= 0) return [i + r, Buffer.concat(out).toString('latin1')];
  }
  return [CHUNKED_MORE, Buffer.concat(out).toString('latin1')];
}

describe('chunked codec', () => {
  const canonical = '5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n';
  const steps = [1, 2, 3, 5, 7, 13, 1000];

  test('a canonical body is forwarded unchanged and its end found, whatever the split', () => {
    for (const step of steps) assert.deepEqual(reframe(`${canonical}NEXT`, step), [canonical.length, canonical], `split every ${step} bytes`);
  });

  test('in one buffer, a canonical body is forwarded as that buffer (no copy)', () => {
    const buf = Buffer.from(canonical);
    const out: Buffer[] = [];
    assert.equal(new ChunkedCodec().advance(buf, 0, buf.length, out), buf.length);
    assert.equal(out.length, 1);
    assert.equal(out[0], buf);
  });

  test('extensions, leading zeros and trailers are validated, then dropped: the output is canonical', () => {
    const message = '5;name=value;q="a \\" b"\r\nhello\r\n001A;x\r\nabcdefghijklmnopqrstuvwxyz\r\n0;last\r\nX-Trailer: yes\r\nServer-Timing: a;dur=1\r\nContent-Lengths: 1\r\n\r\n';
    for (const step of steps) {
      assert.deepEqual(reframe(message, step), [message.length, '5\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n'], `split every ${step} bytes`);
    }
  });

  const broken: Array<[string, string]> = [
    ['zz\r\n', 'invalid chunk size'],
    ['\r\n', 'invalid chunk size'],
    ['5\r\nhelloXX', 'missing CRLF after chunk data'],
    ['5\nhello\r\n', 'bare LF after the chunk size'],
    ['5\r\rhello\r\n', 'missing LF after the chunk size'],
    ['5 junk\r\n', 'invalid character after the chunk size'],
    ['5 ;a\r\n', 'invalid character after the chunk size'],
    ['5;\r\n', 'malformed chunk extension'],
    ['5;a=\r\n', 'malformed chunk extension'],
    ['5;a=\0\r\n', 'malformed chunk extension'],
    ['5;a="\0"\r\n', 'malformed chunk extension'],
    ['5;a b\r\n', 'malformed chunk extension'],
    [`${'f'.repeat(13)}\r\n`, 'chunk size too large'],
    ['0\r\nX-T: a\n\nGET /smuggled HTTP/1.1\r\n', 'invalid character in a trailer'],
    ['0\r\nnocolon\r\n\r\n', 'malformed trailer name'],
    ['0\r\nContent-Length: 5\r\n\r\n', 'framing field in the trailers'],
    ['0\r\ntransfer-encoding: chunked\r\n\r\n', 'framing field in the trailers'],
    ['0\r\nX-A: a\0b\r\n\r\n', 'invalid character in a trailer'],
    ['0\r\nX-A: a\r\n b\r\n\r\n', 'malformed trailer line'],
    ['0\r\nX-A: a\rb\r\n\r\n', 'bare CR in a trailer'],
    ['0\r\n\n', 'malformed trailer line'],
    ['0\r\n\r\r', 'missing LF after the last chunk'],
    [`0\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`, 'trailer section too large'],
  ];
  for (const [message, reason] of broken) {
    test(`refuses ${JSON.stringify(message.slice(0, 40))}: ${reason}`, () => {
      for (const step of [1, 3, 1000]) assert.deepEqual(reframe(message, step), [reason, ''], `split every ${step} bytes`);
    });
  }
});

describe('head reader', () => {
  test('finds the head across chunks and hands over the bytes after it', () => {
    const reader = new HeadReader(1024, 2);
    assert.equal(reader.feed(Buffer.from('\r\nGET / HTTP/1.1\r\nHost: a\r')), HEAD_MORE);
    assert.equal(reader.started, true);
    assert.equal(reader.feed(Buffer.from('\n\r\nBODY')), HEAD_DONE);
    assert.equal(reader.head, 'GET / HTTP/1.1\r\nHost: a\r\n');
    assert.equal(reader.data.subarray(reader.offset).toString(), 'BODY');
  });

  test('caps empty lines before the head and counts them toward its size', () => {
    assert.equal(new HeadReader(1024, 2).feed(Buffer.from('\r\n\r\n\r\nGET')), HEAD_BAD);
    assert.equal(new HeadReader(64, 100).feed(Buffer.from(`${'\r\n'.repeat(40)}GET / HTTP/1.1\r\n\r\n`)), HEAD_TOO_LARGE);
    const trickle = new HeadReader(1024, 3);
    for (let i = 0; i < 3; i++) assert.equal(trickle.feed(Buffer.from('\r\n')), HEAD_MORE);
    assert.equal(trickle.feed(Buffer.from('\r\n')), HEAD_BAD, 'one CRLF at a time counts the same');
  });

  test('a bare LF line end is refused at once instead of waiting for a CRLF CRLF that never comes', () => {
    const reader = new HeadReader(1024, 0);
    assert.equal(reader.feed(Buffer.from('HTTP/1.1 200 OK\nContent-Length: 0\n\n')), HEAD_BAD);
    assert.equal(reader.error, 'bare LF in the head');
  });
});

function request(head: string): RequestHead {
  const r = parseRequestHead(head, 100);
  assert.ok(!('reason' in r), `refused: ${'reason' in r ? r.reason : ''}`);
  return r;
}

function refused(head: string): number {
  const r = parseRequestHead(head, 100);
  assert.ok('reason' in r, `accepted: ${JSON.stringify(head)}`);
  return r.status;
}

describe('field names in any letter case', () => {
  test('a mixed-case framing or hop-by-hop name is recognised as its lower-case self', () => {
    const r = request('GET / HTTP/1.1\r\nhOST: h\r\ncONNECTION: close\r\ntRANSFER-eNCODING: chunked\r\nX-Keep: 1\r\n');
    assert.equal(r.host, 'h');
    assert.equal(r.keepAlive, false);
    assert.equal(r.framing.kind, BODY_CHUNKED);
    assert.equal(r.headers, 'X-Keep: 1\r\n');
    const res = response('HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 3\r\nkEEP-aLIVE: timeout=7\r\nConnection: KEEP-ALIVE\r\n');
    assert.equal(res.framing.kind, BODY_LENGTH);
    assert.equal(res.keepAliveMs, 7000);
    assert.equal(res.close, false);
    assert.equal(res.head, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n');
  });
});

describe('request head', () => {
  test('keeps end-to-end fields, removes Host (re-written), framing, hop-by-hop ones and those Connection names', () => {
    const r = request('GET /a?b HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop, Host\r\nX-Drop: 1\r\nX-Keep: 2\r\nTE: trailers\r\nContent-Length: 0\r\n');
    assert.equal(r.headers, 'X-Keep: 2\r\n');
    assert.equal(r.host, 'h', 'Connection: Host cannot remove Host: the balancer writes it');
    assert.equal(r.framing.header, 'Content-Length: 0\r\n');
    assert.equal(r.keepAlive, true);
  });

  test('only a WebSocket handshake (GET, HTTP/1.1, Connection: upgrade, no body) is an upgrade', () => {
    assert.equal(request('GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n').upgrade, 'websocket');
    assert.equal(request('GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n').upgrade, '');
    const h2c = request('GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMA\r\n');
    assert.equal(h2c.upgrade, '');
    assert.equal(h2c.headers, '', 'Upgrade and the fields Connection names are not forwarded');
    assert.equal(request('POST / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 0\r\n').upgrade, '');
  });

  test('absolute-form becomes origin-form with Host from the authority', () => {
    const r = request('GET http://Example.com:8080?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n');
    assert.equal(r.target, '/?q=1');
    assert.equal(r.host, 'Example.com:8080');
    assert.equal(request('GET HTTPS://a.example HTTP/1.1\r\nHost: a.example\r\n').target, '/');
    assert.deepEqual(parseTarget('GET', 'http://a@b/'), 'userinfo in the request target');
    assert.equal(refused('GET http://evil.example/abs HTTP/1.1\r\nHost: localhost\r\n'), 400);
  });

  const statuses: Array<[string, string, number]> = [
    ['Host list', 'GET / HTTP/1.1\r\nHost: a, b\r\n', 400],
    ['Host with space', 'GET / HTTP/1.1\r\nHost: a b\r\n', 400],
    ['Host with slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n', 400],
    ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n', 400],
    ['U+00A0 inside chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chu\xA0nked\r\n', 400],
    ['U+00A0 around chunked', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \xA0chunked\r\n', 400],
    ['chunked twice', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n', 400],
    ['an empty coding (chunked,)', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n', 400],
    ['gzip coding', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n', 501],
    ['two equal Content-Length headers', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n', 400],
    ['Content-Length list', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n', 400],
    ['lower-case method', 'get / HTTP/1.1\r\nHost: h\r\n', 400],
    ['unknown method', 'FOO / HTTP/1.1\r\nHost: h\r\n', 501],
    ['TRACE', 'TRACE / HTTP/1.1\r\nHost: h\r\n', 405],
    ['asterisk outside OPTIONS', 'GET * HTTP/1.1\r\nHost: h\r\n', 400],
    ['fragment', 'GET /a#b HTTP/1.1\r\nHost: h\r\n', 400],
    ['space before colon', 'GET / HTTP/1.1\r\nHost: h\r\nX-A : 1\r\n', 400],
    ['bare CR in a value', 'GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n', 400],
    ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: h\r\n', 505],
  ];
  for (const [name, head, status] of statuses) test(`${name} → ${status}`, () => assert.equal(refused(head), status));

  test('more header fields than the limit → 431', () => {
    const head = `GET / HTTP/1.1\r\nHost: h\r\n${'X-A: 1\r\n'.repeat(10)}`;
    assert.ok(!('reason' in parseRequestHead(head, 11)));
    assert.deepEqual(parseRequestHead(head, 10), { status: 431, reason: 'more than 10 header fields' });
  });

  test('OWS is SP and HT only', () => {
    assert.equal(trimOws(' \t a \t'), 'a');
    assert.equal(trimOws('\xA0a\xA0'), '\xA0a\xA0');
    assert.deepEqual(listElements(' a ,, b\t,'), ['a', 'b']);
  });
});

function response(head: string, noBody = false): ResponseHead {
  const r = parseResponseHead(head, noBody);
  assert.ok(typeof r !== 'string', `refused: ${r}`);
  return r;
}

describe('response head', () => {
  test('strips hop-by-hop fields, re-writes framing, reads keep-alive', () => {
    const r = response('HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nX-A: 1\r\n');
    assert.equal(r.head, 'HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n');
    assert.equal(r.framing.kind, BODY_CHUNKED);
    assert.equal(r.close, false);
    assert.equal(r.keepAliveMs, 5000, 'the instance keep-alive hint is kept for the pool');
    const old = response('HTTP/1.0 200 OK\r\nContent-Length: 3\r\n');
    assert.equal(old.close, true, 'HTTP/1.0 without keep-alive closes');
    assert.equal(old.head, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n', 'answered as HTTP/1.1');
  });

  test('normalises what nginx and HAProxy normalise', () => {
    const both = response('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n');
    assert.equal(both.head, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n', 'Content-Length removed (RFC 9112 6.3)');
    assert.equal(both.noReuse, true);
    assert.equal(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n').head, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n');
    assert.equal(response('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n').head, 'HTTP/1.1 204 No Content\r\n');
    assert.equal(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n', true).framing.kind, BODY_NONE, 'HEAD: no body read');
    assert.equal(response('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n', true).head, 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n');
    assert.equal(response('HTTP/1.1 200 OK\r\n').framing.kind, BODY_UNTIL_CLOSE);
  });

  const refusedResponses: Array<[string, string]> = [
    ['non-HTTP', 'SSH-2.0-OpenSSH\r\n'],
    ['four-digit status', 'HTTP/1.1 2000 OK\r\n'],
    ['bad length', 'HTTP/1.1 200 OK\r\nContent-Length: x\r\n'],
    ['two different lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n'],
    ['one length spelled two ways', 'HTTP/1.1 200 OK\r\nContent-Length: 030, 30\r\n'],
    ['space before colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n'],
    ['NUL', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\n'],
    ['bare CR', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\n'],
    ['bare LF', 'HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n'],
    ['xchunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n'],
    ['gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n'],
    ['chunked in HTTP/1.0', 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n'],
    ['an empty coding (chunked,)', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked,\r\n'],
    ['an interim answer in HTTP/1.0', 'HTTP/1.0 100 Continue\r\n'],
  ];
  for (const [name, head] of refusedResponses) {
    test(`${name} → 502`, () => assert.equal(typeof parseResponseHead(head, false), 'string'));
  }
});

describe('framing rules', () => {
  test('requests: one length or chunked alone', () => {
    assert.deepEqual(requestFraming(1, ['12'], undefined), { kind: BODY_LENGTH, length: 12, header: 'Content-Length: 12\r\n' });
    assert.equal((requestFraming(1, undefined, ['Chunked']) as { kind: number }).kind, BODY_CHUNKED);
    assert.deepEqual(requestFraming(1, ['3'], ['chunked']), { status: 400, reason: 'both Transfer-Encoding and Content-Length' });
    assert.deepEqual(requestFraming(0, undefined, ['chunked']), { status: 400, reason: 'Transfer-Encoding in an HTTP/1.0 request' });
  });

  test('responses: 1xx and 204 carry no framing', () => {
    assert.deepEqual(responseFraming(1, 100, false, ['5'], undefined), { kind: BODY_NONE, length: -1, header: '' });
    assert.equal(responseFraming(1, 200, false, ['-1'], undefined), 'invalid Content-Length');
  });
});

/**
 * Regression tests for the response-side findings of issue #12 (finding 4, and finding 1's response path): an
 * instance answers with the reported bytes (fixtures/recorder.ts scripts them); the client must get either a
 * clean 502 from the balancer or one answer that Node's strict parser reads as the instance meant it, and never a
 * second answer hidden in the first (response splitting), not even for the next request on the connection.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, codeOf, exchange } from './helpers.ts';
import { fields, parseAll } from './fixtures/oracle.ts';
import { startRecorder, type Recorder } from './fixtures/recorder.ts';

const H = 'Host: localhost\r\n';
const NEXT = 'HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext';

describe('response framing (findings 1 and 4)', () => {
  let rec: Recorder;
  let lb: Balancer;
  let answer = '';
  before(async () => {
    rec = await startRecorder();
    // `answer` for /case, a plain good answer for /next (the request after it on the same client connection).
    rec.script = (m) => (m.url === '/case' ? { bytes: answer, end: !/content-length|chunked/i.test(answer) } : m.url === '/next' ? { bytes: NEXT } : undefined);
    lb = await balancer({ upstreams: [rec.url], health: false, retries: 0 });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });

  /** GET /case then GET /next on one client connection: the client's bytes, parsed strictly. */
  async function fetchCase(bytes: string) {
    answer = bytes;
    const r = await exchange(lb.url, `GET /case HTTP/1.1\r\n${H}\r\nGET /next HTTP/1.1\r\n${H}\r\n`);
    const parsed = parseAll('response', r.bytes, { methods: ['GET', 'GET'] });
    assert.equal(parsed.error, null, `the client's bytes parse strictly: ${r.text}`);
    assert.notEqual(r.how, 'reset', 'a broken answer is a 502, not a reset');
    const [first, second] = parsed.messages;
    assert.ok(first, r.text);
    // Whatever the first answer was, the second request gets its own answer (or the connection is closed).
    if (second) assert.equal(second.body.toString(), 'next', `no answer was smuggled into the next one: ${r.text}`);
    assert.equal(parsed.messages.length <= 2, true);
    return { first, text: r.text };
  }

  async function expect502(bytes: string) {
    const { first, text } = await fetchCase(bytes);
    assert.equal(first.status, 502, text);
    assert.equal(codeOf(first.body.toString()), 'CS_ERR_BALANCER_BAD_GATEWAY');
    assert.match(first.body.toString(), /invalid response/);
  }

  test('finding 1, response path: a trailer with a bare LF (and a second answer behind it) → 502, never passed on', async () => {
    await expect502('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\n\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
  });

  test('finding 4: Content-Length with Transfer-Encoding → the length is removed (RFC 9112 6.3)', async () => {
    const { first, text } = await fetchCase('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(first.body.toString(), 'hello');
    assert.deepEqual(fields(first.headers, 'content-length'), [], text);
    assert.deepEqual(fields(first.headers, 'transfer-encoding'), ['chunked']);
  });

  test('finding 4, response splitting: two different Content-Length values → 502', async () => {
    await expect502('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil');
  });

  test('finding 4: repeated equal lengths become one Content-Length', async () => {
    for (const lengths of ['Content-Length: 5\r\nContent-Length: 5\r\n', 'Content-Length: 5, 5\r\n']) {
      const { first, text } = await fetchCase(`HTTP/1.1 200 OK\r\n${lengths}\r\nhello`);
      assert.deepEqual(fields(first.headers, 'content-length'), ['5'], text);
      assert.equal(first.body.toString(), 'hello');
    }
  });

  const invalid: Array<[string, string]> = [
    ['Content-Length : (space before the colon)', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello'],
    ['NUL in a field', 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\nContent-Length: 5\r\n\r\nhello'],
    ['CR in a field', 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 5\r\n\r\nhello'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello'],
    ['a bare LF line end', 'HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 5\r\n\r\nhello'],
    ['chunk size zz', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n'],
    ['Transfer-Encoding: xchunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\nhello'],
    ['Transfer-Encoding: gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  ];
  for (const [name, bytes] of invalid) test(`finding 4: ${name} → 502, not a reset`, () => expect502(bytes));

  test('chunk extensions and trailers of an answer are dropped, the size lines re-emitted', async () => {
    answer = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n';
    const r = await exchange(lb.url, `GET /case HTTP/1.1\r\n${H}\r\n`);
    assert.ok(r.text.endsWith('\r\n\r\n5\r\nhello\r\n0\r\n\r\n'), JSON.stringify(r.text));
    assert.doesNotMatch(r.text, /trailer/i);
  });

  test('a 204 carries no framing fields', async () => {
    const { first, text } = await fetchCase('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n');
    assert.equal(first.status, 204);
    assert.deepEqual(fields(first.headers, 'content-length'), [], text);
  });
});

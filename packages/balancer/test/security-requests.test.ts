/**
 * Regression tests for the request-side findings of issue #12, each with its payload exactly as reported, against a
 * real back end that records the raw bytes it receives (fixtures/recorder.ts). For each: what the client gets, and
 * what reached the instance (nothing at all for a refused request, never a byte the balancer did not validate).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Balancer } from '@cluster-session/balancer';
import { balancer, codeOf, exchange, statusOf } from './helpers.ts';
import { fields, parseAll } from './fixtures/oracle.ts';
import { startRecorder, type Recorder } from './fixtures/recorder.ts';

const H = 'Host: localhost\r\n';

/** What the recorder received since the test began, as one string. */
function received(rec: Recorder, from: number): string {
  return rec.conns.map((c) => c.bytes().toString('latin1')).join('').slice(from);
}

for (const backEnd of ['strict (Node)', 'bare-LF tolerant (as nginx, HAProxy)'] as const) {
  describe(`finding 1 (High): smuggling through chunked trailers, ${backEnd} back end`, () => {
    let rec: Recorder;
    let lb: Balancer;
    before(async () => {
      rec = await startRecorder({ lenientLf: backEnd !== 'strict (Node)' });
      lb = await balancer({ upstreams: [rec.url], health: false });
    });
    after(async () => {
      await lb.close();
      await rec.close();
    });

    test('the two-connection hijack: the smuggled request never exists, the victim gets its own answer', async () => {
      const attacker = `POST /attacker HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\n\nGET /smuggled HTTP/1.1\r\n${H}Content-Length: 40\r\n\r\n`;
      const victim = `GET /victim HTTP/1.1\r\n${H}Cookie: secret=victim-session\r\n\r\n`;
      const a = await exchange(lb.url, attacker);
      assert.equal(statusOf(a.text), 400, a.text);
      assert.equal(codeOf(a.text), 'CS_ERR_BALANCER_BAD_REQUEST');
      const v = await exchange(lb.url, victim);
      const answers = parseAll('response', v.bytes, { methods: ['GET'] }).messages;
      assert.equal(answers.length, 1);
      assert.equal(JSON.parse(answers[0]!.body.toString()).url, '/victim', 'the victim got the answer to its own request');
      assert.deepEqual(rec.seen('/smuggled'), [], 'no instance ever parsed the smuggled request');
      assert.deepEqual(rec.seen('/attacker'), [], 'the request with the bad trailer was refused before it was sent');
      const victims = rec.seen('/victim');
      assert.equal(victims.length, 1);
      assert.deepEqual(fields(victims[0]!.headers, 'cookie'), ['secret=victim-session']);
      assert.equal(victims[0]!.body.length, 0, "the victim's request is nobody's body");
      for (const conn of rec.conns) assert.equal(conn.oracle.error, null, 'every byte the instance got parses strictly');
    });

    test('valid trailers are validated, then dropped: the instance gets canonical chunked framing', async () => {
      const from = received(rec, 0).length;
      const r = await exchange(lb.url, `POST /trailers HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Check: 1\r\nServer-Timing: a;dur=1\r\n\r\n`);
      assert.equal(statusOf(r.text), 200);
      const got = received(rec, from);
      assert.ok(got.endsWith('\r\n\r\n5\r\nhello\r\n0\r\n\r\n'), JSON.stringify(got));
      assert.deepEqual(rec.seen('/trailers')[0]!.trailers, []);
    });
  });
}

describe('request findings 5 and 6: what reaches the instance', () => {
  let rec: Recorder;
  let lb: Balancer;
  before(async () => {
    rec = await startRecorder();
    lb = await balancer({ upstreams: [rec.url], health: false, limits: { headerCount: 100 } });
  });
  after(async () => {
    await lb.close();
    await rec.close();
  });
  /** Sends `bytes`, expects `status` and, for a refusal, that not one byte reached the instance. */
  async function expect(bytes: string, status: number): Promise<string> {
    const from = received(rec, 0).length;
    const r = await exchange(lb.url, bytes);
    assert.equal(statusOf(r.text), status, r.text.slice(0, 300));
    assert.notEqual(r.how, 'timeout');
    const got = received(rec, from);
    if (status >= 400) {
      assert.match(codeOf(r.text), /^CS_ERR_BALANCER_/);
      assert.equal(got, '', 'nothing of a refused request is forwarded');
    }
    for (const conn of rec.conns) assert.equal(conn.oracle.error, null, 'every byte the instance got parses strictly');
    return got;
  }

  test('finding 5: absolute-form naming another host than Host → 400', async () => {
    await expect(`GET http://evil.example/abs HTTP/1.1\r\n${H}\r\n`, 400);
  });

  test('finding 5: absolute-form is rewritten to origin-form, Host taken from the authority', async () => {
    const got = await expect(`GET http://localhost/abs?q=1 HTTP/1.1\r\n${H}\r\n`, 200);
    assert.ok(got.startsWith('GET /abs?q=1 HTTP/1.1\r\nHost: localhost\r\n'), got);
    assert.ok((await expect(`GET http://localhost HTTP/1.1\r\n${H}\r\n`, 200)).startsWith('GET / HTTP/1.1\r\n'));
  });

  test('finding 5: userinfo in the target (http://a@b/) → 400', async () => {
    await expect(`GET http://a@localhost/ HTTP/1.1\r\n${H}\r\n`, 400);
  });

  const refused: Array<[string, string, number]> = [
    ['Host list', 'GET / HTTP/1.1\r\nHost: a, b\r\n\r\n', 400],
    ['Host with a space', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
    ['Host with a slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400],
    ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 400],
    ['chu\\xA0nked (U+00A0 is not whitespace in HTTP)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chu\xA0nked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`, 400],
    ['chunk size with junk (5 junk)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5 junk\r\nhello\r\n0\r\n\r\n`, 400],
    ['empty chunk extension (5;)', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;\r\nhello\r\n0\r\n\r\n`, 400],
    ['NUL in a chunk extension', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=\0\r\nhello\r\n0\r\n\r\n`, 400],
    ['trailer without a colon', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nnocolon\r\n\r\n`, 400],
    ['NUL in a trailer', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-A: a\0b\r\n\r\n`, 400],
    ['Content-Length as a trailer', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n`, 400],
    ['Transfer-Encoding as a trailer', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n`, 400],
    ['obs-fold in a trailer', `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-A: a\r\n b\r\n\r\n`, 400],
    ['101 header fields (limit 100)', `GET / HTTP/1.1\r\n${H}${Array.from({ length: 100 }, (_, i) => `X-${i}: v\r\n`).join('')}\r\n`, 431],
    ['lower-case method', `get / HTTP/1.1\r\n${H}\r\n`, 400],
    ['unknown method', `FOO / HTTP/1.1\r\n${H}\r\n`, 501],
    ['TRACE (refused, as nginx does)', `TRACE / HTTP/1.1\r\n${H}\r\n`, 405],
    ['two Content-Length headers, even equal', `POST / HTTP/1.1\r\n${H}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`, 400],
    ['a fragment in the target', `GET /a#b HTTP/1.1\r\n${H}\r\n`, 400],
    ['100 KB of CRLF before the request line', `${'\r\n'.repeat(51_200)}GET / HTTP/1.1\r\n${H}\r\n`, 400],
  ];
  for (const [name, bytes, status] of refused) test(`finding 6: ${name} → ${status}, nothing forwarded`, () => expect(bytes, status).then(() => {}));

  test('finding 6: a valid chunk extension is dropped, the size line re-emitted', async () => {
    const got = await expect(`POST /ext HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5;a=b;c="d e"\r\nhello\r\n000\r\n\r\n`, 200);
    assert.ok(got.endsWith('\r\n\r\n5\r\nhello\r\n0\r\n\r\n'), JSON.stringify(got));
  });

  test('finding 6: Connection: Host cannot strip Host', async () => {
    const got = await expect(`GET /c HTTP/1.1\r\n${H}Connection: Host\r\n\r\n`, 200);
    assert.deepEqual(fields(rec.seen('/c')[0]!.headers, 'host'), ['localhost'], got);
  });

  test('finding 6: Upgrade: h2c is not tunnelled: a plain request without Upgrade or HTTP2-Settings', async () => {
    const got = await expect(`GET /h2c HTTP/1.1\r\n${H}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n`, 200);
    assert.doesNotMatch(got, /upgrade|http2-settings/i);
    assert.equal(rec.seen('/h2c')[0]!.upgrade, false);
  });

  test('up to 16 empty lines before a request line are tolerated (RFC 9112 2.2), and counted toward the head size', async () => {
    await expect(`${'\r\n'.repeat(16)}GET / HTTP/1.1\r\n${H}\r\n`, 200);
    await expect(`${'\r\n'.repeat(17)}GET / HTTP/1.1\r\n${H}\r\n`, 400);
  });
});

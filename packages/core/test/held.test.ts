import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { heldResponse } from '@cluster-session/core';
import { youngGcSurvival } from '@cluster-session/testkit';

/**
 * A response as middleware leave it: `writeHead` an own closure over something large (on-headers does this). Not
 * an http.ServerResponse: one made without a socket is itself kept by Node's own objects for a while, which would
 * hide what the hold keeps.
 */
function response(payload: unknown): http.ServerResponse {
  return {
    headersSent: false,
    write: () => true,
    end() {
      return this;
    },
    writeHead() {
      void payload;
      return this;
    },
  } as unknown as http.ServerResponse;
}

describe('heldResponse', () => {
  test('a held response looks sent; released, it answers as before', async () => {
    const server = http.createServer((req, res) => {
      const hold = heldResponse(res);
      assert.equal(res.headersSent, true);
      assert.throws(() => res.setHeader('x-late', '1'), { code: 'ERR_HTTP_HEADERS_SENT' });
      assert.equal(res.write('dropped'), false);
      assert.equal(res.end('dropped'), res);
      hold.unguarded(() => res.setHeader('x-holder', 'yes'));
      hold.release();
      assert.equal(res.headersSent, false);
      res.setHeader('x-after', 'yes');
      res.end('answer');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    after(() => server.close());
    const r = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
    assert.equal(await r.text(), 'answer');
    assert.equal(r.headers.get('x-holder'), 'yes');
    assert.equal(r.headers.get('x-after'), 'yes');
    assert.equal(r.headers.get('x-late'), null);
  });

  // The hold state references the response's own wrapped members (closures over the request). Were it an object
  // literal, V8 would pretenure its allocation site once held responses survive young collections, and each dead
  // state, old, would keep its request alive until a full collection.
  test('a dead held response does not outlive a young collection', async () => {
    const { allocated, survived } = await youngGcSurvival(
      () => heldResponse(response(null)),
      () => {
        for (let i = 0; i < 200; i++) heldResponse(response(new Array(500).fill(i))).release();
      },
    );
    assert.ok(allocated > 500_000, `the garbage was allocated (${allocated} B)`);
    assert.ok(survived < allocated / 4, `${survived} of ${allocated} B survived two young collections`);
  });
});

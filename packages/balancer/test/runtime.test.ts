import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';
import { request, until } from '@cluster-session/testkit';
import { UnknownUpstreamError } from '@cluster-session/balancer';
import { balancer, instances } from './helpers.ts';

describe('runtime changes', () => {
  test('add, drain and remove under load drop no request', async () => {
    const [a, b, c] = await instances('a', 'b', 'c');
    const lb = await balancer({ upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }], health: false });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    try {
      const statuses = new Map<number, number>();
      let sent = 0;
      const TOTAL = 480;
      const worker = async () => {
        while (sent < TOTAL) {
          sent++;
          const r = await request(`${lb.url}/slow?ms=10`, { agent }).catch(() => ({ status: -1 }));
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        }
      };
      const load = Promise.all(Array.from({ length: 8 }, worker));

      const waitSent = async (n: number) => {
        while (sent < n) await new Promise((r) => setTimeout(r, 5));
      };
      await waitSent(60);
      lb.add({ url: c.url, id: 'c' });
      await waitSent(140);
      const inFlight = lb.status().upstreams.find((u) => u.id === 'a')!.active;
      await lb.drain('a');
      assert.equal(lb.status().upstreams.find((u) => u.id === 'a')!.active, 0, 'drain resolves once nothing is in flight');
      const aAfterDrain = a.total();
      await waitSent(260);
      assert.equal(a.total(), aAfterDrain, 'a drained instance gets no new requests');
      await lb.remove('a');
      await waitSent(320);
      await lb.remove('b');
      await load;

      assert.deepEqual([...statuses.entries()], [[200, TOTAL]], `every request answered 200 (a had ${inFlight} in flight at drain)`);
      assert.ok(c.total() > 0, 'the added instance took traffic');
      assert.deepEqual(
        lb.status().upstreams.map((u) => u.id),
        ['c'],
      );
      await assert.rejects(lb.drain('a'), UnknownUpstreamError);
    } finally {
      agent.destroy();
      await lb.close();
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  test('close() lets in-flight requests finish, then stops accepting', async () => {
    const [a] = await instances('a');
    const lb = await balancer({ upstreams: [a.url], health: false });
    try {
      const slow = request(`${lb.url}/slow?ms=300`);
      await until('in flight', () => lb.status().upstreams[0]!.active === 1);
      const closing = lb.close();
      const r = await slow;
      assert.equal(r.status, 200);
      assert.equal(r.headers.connection, 'close');
      await closing;
      await assert.rejects(request(`${lb.url}/whoami`, { timeoutMs: 2_000 }), /ECONNREFUSED/);
    } finally {
      await lb.close();
      await a.close();
    }
  });

  test('invalid options fail at startup with the option, the value and the fix', async () => {
    const { createBalancer } = await import('@cluster-session/balancer');
    await assert.rejects(createBalancer({ listen: 0, upstreams: [] }), { code: 'CS_ERR_BALANCER_CONFIG', message: /^createBalancer: option upstreams is \[\]: expected a non-empty array of URLs\. Example: upstreams: \['http:/ });
    await assert.rejects(createBalancer({ listen: 0, upstreams: ['ftp://x'] }), { code: 'CS_ERR_BALANCER_CONFIG', message: /option upstreams\[0\]\.url is "ftp:\/\/x": expected an http:\/\/ URL/ });
    await assert.rejects(createBalancer({ listen: 0, upstreams: ['http://127.0.0.1:1'], strategy: 'random' as never }), {
      message: /option strategy is "random": expected round-robin \| least-conn \| ip-hash \| cookie/,
    });
    // Unknown keys are refused with the key they most likely meant, at any depth.
    await assert.rejects(createBalancer({ listen: 0, upstreams: ['http://127.0.0.1:1'], stratgey: 'cookie' } as never), {
      code: 'CS_ERR_BALANCER_CONFIG',
      message: /^createBalancer: unknown option stratgey: did you mean strategy\? Fix: rename it to strategy\.$/,
    });
    await assert.rejects(createBalancer({ listen: 0, upstreams: ['http://127.0.0.1:1'], timeouts: { conect: 5 } } as never), {
      message: /unknown option timeouts\.conect: did you mean timeouts\.connect\?/,
    });
    await assert.rejects(createBalancer({ listen: 0, upstreams: ['http://127.0.0.1:1'], health: { interval: -1 } }), { message: /option health\.interval is -1: expected milliseconds, at least 50/ });
    await assert.rejects(createBalancer({ listen: 70000, upstreams: ['http://127.0.0.1:1'] }), { message: /option listen is 70000: expected a port number or \{ port, host \}/ });
    const lb = await balancer({ upstreams: ['http://127.0.0.1:1'], health: false });
    try {
      await assert.rejects(createBalancer({ listen: Number(new URL(lb.url).port), upstreams: ['http://127.0.0.1:1'] }), {
        code: 'CS_ERR_BALANCER_LISTEN',
        message: /EADDRINUSE.*pick a free one/,
      });
      assert.throws(() => lb.add('http://127.0.0.1:1'), /already exists/);
      assert.equal((await request(`${lb.url}/`)).status, 502, 'a refused instance is a 502 with a reason');
    } finally {
      await lb.close();
    }
  });
});

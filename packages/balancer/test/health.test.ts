import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { freePort, type Proc, request, startNode, until } from '@cluster-session/testkit';
import { balancer, instances, raw, type Instance } from './helpers.ts';

const fixture = new URL('./fixtures/instance.ts', import.meta.url).pathname;

async function spawnInstance(name: string, port: number): Promise<Proc> {
  const proc = startNode([fixture, String(port), name]);
  await proc.waitFor(/listening \d+/);
  return proc;
}

describe('health', () => {
  test('active checks eject an instance after `fall` failures and bring it back after `rise` passes', async () => {
    const [a, b] = await instances('a', 'b');
    const lines: string[] = [];
    const lb = await balancer({
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
      health: { interval: 100, fall: 2, rise: 2, timeout: 500, passive: false },
      log: (m) => lines.push(m),
    });
    try {
      await request(`${a.url}/control/unhealthy`, { method: 'POST' });
      await until('a marked down', () => lb.status().upstreams[0]!.state === 'down');
      assert.match(lines.join('\n'), /instance a .* is down: 2 checks failed \(HTTP 503\)/);
      const before = b.total();
      for (let i = 0; i < 10; i++) assert.equal((await request(`${lb.url}/whoami`)).json.instance, 'b');
      assert.equal(b.total() - before, 10);
      await request(`${a.url}/control/healthy`, { method: 'POST' });
      await until('a back up', () => lb.status().upstreams[0]!.state === 'up');
      const seen = new Set<string>();
      for (let i = 0; i < 4; i++) seen.add((await request(`${lb.url}/whoami`)).json.instance);
      assert.deepEqual([...seen].sort(), ['a', 'b']);
    } finally {
      await lb.close();
      await a.close();
      await b.close();
    }
  });

  describe('with real instance processes', () => {
    let ports: number[];
    let procs: Proc[];
    before(async () => {
      ports = [await freePort(), await freePort()];
      procs = await Promise.all(ports.map((p, i) => spawnInstance(`p${i}`, p)));
    });
    after(() => Promise.all(procs.map((p) => p.stop())));

    test('a killed instance: requests keep succeeding, it is ejected (passive), then returns when restarted', async () => {
      const lb = await balancer({
        upstreams: ports.map((p, i) => ({ url: `http://127.0.0.1:${p}`, id: `p${i}` })),
        // Passive checks only: live traffic alone must notice the dead instance.
        health: { active: false, passive: { failures: 1, window: 5_000, cooldown: 3_000 } },
      });
      try {
        await procs[0]!.stop('SIGKILL');
        // The first request that meets the dead instance is retried elsewhere and ejects it.
        for (let i = 0; i < 2; i++) assert.equal((await request(`${lb.url}/whoami`)).json.instance, 'p1');
        assert.equal(lb.status().upstreams[0]!.state, 'down');
        for (let i = 0; i < 20; i++) {
          const r = await request(`${lb.url}/whoami`, { method: i % 2 ? 'POST' : 'GET', body: i % 2 ? 'x=1' : undefined });
          assert.equal(r.status, 200, `request ${i} must not see the dead instance`);
          assert.equal(r.json.instance, 'p1');
        }
        assert.ok(lb.status().upstreams[0]!.errors >= 1);
        procs[0] = await spawnInstance('p0', ports[0]!);
        await until('p0 back', () => lb.status().upstreams[0]!.state === 'up', 10_000);
        const seen = new Set<string>();
        for (let i = 0; i < 4; i++) seen.add((await request(`${lb.url}/whoami`)).json.instance);
        assert.deepEqual([...seen].sort(), ['p0', 'p1'], JSON.stringify(lb.status().upstreams));
      } finally {
        await lb.close();
      }
    });
  });

  test('passive: 502/503/504 answers within the window eject an instance for the cooldown', async () => {
    const [a, b] = await instances('a', 'b');
    const lb = await balancer({
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
      health: false,
      strategy: 'cookie',
      retryOn: [], // this test is about ejection: each 503 must reach the client and count once
    });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await request(`${lb.url}/status/503`, { headers: { cookie: 'CSLB=a' } });
        assert.equal(r.status, 503, 'the instance answer is passed through, not retried');
      }
      const s = lb.status().upstreams[0]!;
      assert.equal(s.state, 'down');
      assert.ok(s.ejectedForMs > 0);
      assert.equal((await request(`${lb.url}/whoami`, { headers: { cookie: 'CSLB=a' } })).json.instance, 'b');
      // An application 500 is not an instance failure.
      for (let i = 0; i < 5; i++) await request(`${lb.url}/status/500`, { headers: { cookie: 'CSLB=b' } });
      assert.equal(lb.status().upstreams[1]!.state, 'up');
    } finally {
      await lb.close();
      await a.close();
      await b.close();
    }
  });

  test('every instance ejected for its answers: their answers still reach clients, and a good answer ends the ejection', async () => {
    const [a, b] = await instances('a', 'b');
    const lb = await balancer({
      upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
      health: { active: false, passive: { failures: 2, window: 10_000, cooldown: 60_000 } },
    });
    try {
      for (let i = 0; i < 4; i++) assert.equal((await request(`${lb.url}/status/503`)).status, 503);
      assert.deepEqual(lb.status().upstreams.map((u) => u.state), ['down', 'down']);
      // Like a session store outage: every instance says 503. The instance answer (not the balancer's) goes out.
      const during = await request(`${lb.url}/status/503`);
      assert.equal(during.status, 503);
      assert.match(during.json.instance, /^[ab]$/);
      // The outage ends: the first good answer brings that instance back without waiting out the 60 s cooldown.
      const after = await request(`${lb.url}/whoami`);
      assert.equal(after.status, 200);
      assert.equal(lb.status().upstreams.find((u) => u.id === after.json.instance)!.state, 'up');
    } finally {
      await lb.close();
      await a.close();
      await b.close();
    }
  });

  test('all instances down: 503 with Retry-After at once, and the balancer recovers', async () => {
    const [a] = await instances('a');
    const lb = await balancer({ upstreams: [a.url], health: { interval: 100, fall: 1, rise: 1, timeout: 300 } });
    try {
      await request(`${a.url}/control/unhealthy`, { method: 'POST' });
      await until('a down', () => lb.status().upstreams[0]!.state === 'down');
      const r = await request(`${lb.url}/whoami`, { timeoutMs: 2_000 });
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers['retry-after']) >= 1);
      assert.equal(r.json.code, 'CS_ERR_BALANCER_NO_UPSTREAM');
      // HEAD then GET on one connection: the HEAD answer has no body, so the GET answer is read correctly.
      const both = await raw(lb.url, 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const answers = both.text.split('HTTP/1.1 503 ');
      assert.equal(answers.length, 3, both.text);
      assert.ok(answers[1]!.endsWith('\r\n\r\n'), 'no body after the HEAD answer');
      await request(`${a.url}/control/healthy`, { method: 'POST' });
      await until('a up', () => lb.status().upstreams[0]!.state === 'up');
      assert.equal((await request(`${lb.url}/whoami`)).status, 200);
    } finally {
      await lb.close();
      await a.close();
    }
  });
});

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { request, until } from '@cluster-session/testkit';
import { balancer, instances, type Instance } from './helpers.ts';

const NO_HEALTH = { health: false as const };

describe('strategies', () => {
  let a: Instance, b: Instance, c: Instance;
  before(async () => ([a, b, c] = await instances('a', 'b', 'c')));
  after(() => Promise.all([a, b, c].map((i) => i.close())));

  test('weighted round robin is smooth and exact (weights 3:1)', async () => {
    const lb = await balancer({ ...NO_HEALTH, upstreams: [{ url: a.url, weight: 3 }, { url: b.url, weight: 1 }] });
    try {
      const order: string[] = [];
      for (let i = 0; i < 40; i++) order.push((await request(`${lb.url}/whoami`)).json.instance);
      assert.equal(order.filter((x) => x === 'a').length, 30);
      assert.equal(order.filter((x) => x === 'b').length, 10);
      // nginx's smooth algorithm interleaves: never more than 3 a's in a row.
      assert.ok(!order.join('').includes('aaaa'), order.join(''));
    } finally {
      await lb.close();
    }
  });

  test('least-conn sends new requests to the instance with fewer in flight', async () => {
    const lb = await balancer({ ...NO_HEALTH, strategy: 'least-conn', upstreams: [a.url, b.url] });
    try {
      // Two slow requests occupy... whichever instances they land on; then every quick request goes elsewhere.
      const agent = new http.Agent({ keepAlive: false });
      const slow = [request(`${lb.url}/slow?ms=2500`, { agent }), request(`${lb.url}/slow?ms=2500`, { agent }), request(`${lb.url}/slow?ms=2500`, { agent })];
      await until('3 requests in flight', () => lb.status().upstreams.reduce((n, u) => n + u.active, 0) === 3);
      const busy = lb.status().upstreams.map((u) => u.active);
      assert.deepEqual([...busy].sort(), [1, 2], `3 slow requests spread 2+1, got ${busy}`);
      const idleUrl = lb.status().upstreams.find((u) => u.active === 1)!.url;
      const quick: string[] = [];
      for (let i = 0; i < 5; i++) quick.push((await request(`${lb.url}/whoami`)).json.instance);
      const expected = idleUrl === a.url ? 'a' : 'b';
      assert.deepEqual(quick, Array(5).fill(expected));
      const answers = await Promise.all(slow);
      assert.ok(answers.every((r) => r.status === 200));
    } finally {
      await lb.close();
    }
  });

  test('ip-hash: a client address always lands on the same instance; losing one moves only its clients', async () => {
    const lb = await balancer({ ...NO_HEALTH, strategy: 'ip-hash', trustProxy: true, upstreams: [a.url, b.url, c.url] });
    try {
      const ip = (i: number) => `10.0.${i >> 8}.${i & 255}`;
      const where = async (i: number) => (await request(`${lb.url}/whoami`, { headers: { 'x-forwarded-for': ip(i) } })).json.instance as string;
      const first = new Map<number, string>();
      for (let i = 0; i < 90; i++) first.set(i, await where(i));
      for (let i = 0; i < 90; i += 3) assert.equal(await where(i), first.get(i), `client ${ip(i)} moved`);
      const counts = { a: 0, b: 0, c: 0 } as Record<string, number>;
      for (const v of first.values()) counts[v]!++;
      for (const n of ['a', 'b', 'c']) assert.ok(counts[n]! >= 15, `every instance gets a share: ${JSON.stringify(counts)}`);

      const cId = lb.status().upstreams.find((u) => u.url === c.url)!.id;
      await lb.drain(cId);
      for (let i = 0; i < 90; i++) {
        const now = await where(i);
        if (first.get(i) === 'c') assert.notEqual(now, 'c');
        else assert.equal(now, first.get(i), `client ${ip(i)} of ${first.get(i)} moved although its instance stayed`);
      }
      lb.add({ url: c.url, id: cId });
      for (let i = 0; i < 90; i += 2) assert.equal(await where(i), first.get(i), 'clients return when their instance returns');
    } finally {
      await lb.close();
    }
  });

  test('cookie: inserted once, instance never sees it, client stays; redispatched when its instance is down', async () => {
    const lb = await balancer({ ...NO_HEALTH, strategy: 'cookie', upstreams: [{ url: a.url, id: 'alpha' }, { url: b.url, id: 'beta' }] });
    try {
      const first = await request(`${lb.url}/whoami`);
      const pinned = first.cookies.CSLB!;
      assert.ok(pinned === 'alpha' || pinned === 'beta');
      assert.match(String(first.headers['set-cookie']), /CSLB=\w+; Path=\/; HttpOnly; SameSite=Lax/);
      assert.equal(first.headers['cache-control'], 'private', 'nocache: a pinning answer is not cacheable');
      const name = pinned === 'alpha' ? 'a' : 'b';
      assert.equal(first.json.instance, name);
      for (let i = 0; i < 10; i++) {
        const r = await request(`${lb.url}/whoami`, { headers: { cookie: `CSLB=${pinned}; app=1` } });
        assert.equal(r.json.instance, name);
        assert.equal(r.headers['set-cookie'], undefined, 'no new cookie while the pin holds');
        assert.equal(r.json.headers.cookie, 'app=1', 'indirect: the balancer cookie is stripped before the instance');
      }
      // Its instance goes away: the client is sent to the other one and re-pinned there.
      await lb.drain(pinned);
      const moved = await request(`${lb.url}/whoami`, { headers: { cookie: `CSLB=${pinned}` } });
      assert.equal(moved.status, 200);
      assert.notEqual(moved.json.instance, name);
      assert.notEqual(moved.cookies.CSLB, pinned);
      const unknown = await request(`${lb.url}/whoami`, { headers: { cookie: 'CSLB=nope' } });
      assert.equal(unknown.status, 200);
      assert.ok(unknown.cookies.CSLB, 'an unknown pin gets a fresh cookie');
    } finally {
      await lb.close();
    }
  });
});

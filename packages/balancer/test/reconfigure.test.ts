// reconfigure(): a running balancer takes a new configuration in place, or refuses it whole.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BalancerConfigError } from '@cluster-session/balancer';
import { request } from '@cluster-session/testkit';
import { balancer, instances, type Instance } from './helpers.ts';

let a: Instance;
let b: Instance;
before(async () => {
  [a, b] = await instances('a', 'b');
});
after(() => Promise.all([a.close(), b.close()]));

describe('reconfigure()', () => {
  it('keeps an instance (its counters) when only its weight changes; weights then steer traffic', async () => {
    const base = { listen: 0, health: false as const };
    const lb = await balancer({ ...base, upstreams: [{ id: 'a', url: a.url }, { id: 'b', url: b.url }] });
    try {
      for (let i = 0; i < 4; i++) await request(`${lb.url}/whoami`);
      const port = Number(new URL(lb.url).port);
      const report = lb.reconfigure({ ...base, listen: port, upstreams: [{ id: 'a', url: a.url, weight: 3 }, { id: 'b', url: b.url }] });
      assert.deepEqual(report, { added: [], removed: [], changed: ['a'], options: [] });
      const s = lb.status();
      assert.equal(s.upstreams.find((u) => u.id === 'a')!.requests, 2, 'the same instance object, counters kept');
      const seen: string[] = [];
      for (let i = 0; i < 8; i++) seen.push(JSON.parse((await request(`${lb.url}/whoami`)).body).instance);
      assert.equal(seen.filter((x) => x === 'a').length, 6);
    } finally {
      await lb.close();
    }
  });

  it('refuses invalid options or a new listen address as a whole: nothing changes', async () => {
    const lb = await balancer({ health: false, upstreams: [{ id: 'a', url: a.url }] });
    try {
      const port = Number(new URL(lb.url).port);
      assert.throws(() => lb.reconfigure({ listen: port, upstreams: [{ id: 'b', url: b.url }], strategy: 'fastest' as never }), (err: Error) => {
        assert.ok(err instanceof BalancerConfigError);
        assert.match(err.message, /^reconfigure: option strategy is "fastest"/);
        return true;
      });
      assert.throws(() => lb.reconfigure({ listen: port + 1, upstreams: [{ id: 'b', url: b.url }] }), /option listen cannot change while the balancer runs/);
      assert.deepEqual(lb.status().upstreams.map((u) => u.id), ['a']);
      assert.equal(JSON.parse((await request(`${lb.url}/whoami`)).body).instance, 'a');
    } finally {
      await lb.close();
    }
  });
});

// Issue 19: the replication gap of a Sentinel failover, made deterministic. Redis replicates asynchronously, so a
// save the master acknowledged but its replica had not received is gone once the replica is promoted. Here the
// replica is held (SIGSTOP) and its replication link dropped (CLIENT KILL TYPE replica), then a save is made and the
// master killed: with the default configuration the acknowledged save is lost; with waitReplicas=1 it is answered
// 503 instead, so nothing answered 200 is lost.
import assert from 'node:assert/strict';
import dc from 'node:diagnostics_channel';
import { after, describe, test } from 'node:test';
import { CHANNELS, type StoreOperation } from '@cluster-session/core';
import { cookieHeader, redisCli, request, startRedisCluster, startRedisSentinel, until, type RedisSentinel } from '@cluster-session/testkit';
import { serve, type Served } from './fixtures/app.ts';

const quiet = { warn: () => {}, error: () => {} };
const STORE_TIMEOUT = 1_000;
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

interface Setup {
  sentinel: RedisSentinel;
  app: Served;
  cookie: string;
  hit(): Promise<{ status: number; hits?: number }>;
  /** `fn` runs while the replicas are cut off: held (SIGSTOP), their replication links dropped by the master. */
  lagging<T>(fn: () => Promise<T>): Promise<T>;
  /** Kills the master, lets the held replicas go, and waits until the app reads through the promoted one. */
  failOver(): Promise<void>;
}

async function setup(query: string, replicas: number): Promise<Setup> {
  const sentinel = await startRedisSentinel({ replicas, quorum: 2 });
  cleanups.push(() => sentinel.close());
  await sentinel.waitForReplication();
  const url = `redis+sentinel://${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${sentinel.masterName}${query}`;
  const app = await serve({ store: { type: 'redis', url }, storeTimeout: STORE_TIMEOUT, logger: quiet });
  cleanups.push(() => app.close());
  const login = await request(`${app.url}/login`, { method: 'POST', body: { user: 'alice' } });
  assert.equal(login.status, 200, login.body);
  const cookie = cookieHeader(login.cookies);
  const held = sentinel.servers.slice(1);
  const resume = () => held.forEach((r) => process.kill(r.proc.pid, 'SIGCONT'));
  const hit = async () => {
    const res = await request(`${app.url}/hit`, { method: 'POST', headers: { cookie }, timeoutMs: 5_000 });
    return { status: res.status, hits: res.json?.hits };
  };
  return {
    sentinel,
    app,
    cookie,
    hit,
    async lagging(fn) {
      for (const r of held) process.kill(r.proc.pid, 'SIGSTOP');
      try {
        const master = await sentinel.master();
        assert.equal(await redisCli(master.address, ['CLIENT', 'KILL', 'TYPE', 'replica']), String(held.length), 'the replication links were dropped');
        return await fn();
      } catch (err) {
        resume();
        throw err;
      }
    },
    async failOver() {
      const old = await sentinel.killMaster();
      resume();
      await sentinel.waitForFailover(old, 30_000);
      await until('the app reads through the promoted replica', async () => {
        const me = await request(`${app.url}/me`, { headers: { cookie } });
        return me.status === 200 && me.json.data.user === 'alice';
      }, 15_000, 100);
    },
  };
}

const hitsNow = async (s: Setup) => (await request(`${s.app.url}/me`, { headers: { cookie: s.cookie } })).json.data.hits as number;

describe('writes in the replication gap of a failover', () => {
  test('default: a save the master acknowledged while its replica was cut off is lost by the failover', async (t) => {
    const s = await setup('', 1);
    assert.equal((await s.hit()).status, 200);
    await s.sentinel.waitForReplication();
    const gap = await s.lagging(() => s.hit());
    assert.equal(gap.status, 200, 'the master acknowledged the save without its replica');
    await s.failOver();
    const after = await hitsNow(s);
    t.diagnostic(`acknowledged hits ${gap.hits}, after the failover ${after}: ${gap.hits! - after} acknowledged save(s) lost`);
    assert.equal(after, gap.hits! - 1, 'the acknowledged save did not survive the failover (the documented caveat)');
  });

  test('waitReplicas=1: that save is answered 503 instead, and every save answered 200 survives', async (t) => {
    // Two replicas: after the failover the promoted one still has a replica to confirm saves.
    const s = await setup('?waitReplicas=1', 2);
    const confirmed = await s.hit();
    assert.equal(confirmed.status, 200);
    const started = Date.now();
    const gap = await s.lagging(() => s.hit());
    const took = Date.now() - started;
    t.diagnostic(`unconfirmed save answered ${gap.status} after ${took} ms`);
    assert.equal(gap.status, 503, 'not confirmed by a replica: not acknowledged');
    assert.ok(took < STORE_TIMEOUT + 600, `answered within the store budget (${took} ms)`);
    await s.failOver();
    assert.equal(await hitsNow(s), confirmed.hits, 'the last save answered 200 is there after the failover (the unconfirmed one is not)');
    const next = await s.hit();
    assert.equal(next.status, 200, 'saves are confirmed again by the promoted master');
  });

  test('on a Cluster, waitReplicas=1 waits for the replica of the master holding the session', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    cleanups.push(() => cluster.close());
    const url = `redis+cluster://${cluster.startupNodes.map((n) => `${n.host}:${n.port}`).join(',')}?waitReplicas=1`;
    // Every store call, kept: a 503 on the healthy cluster then says which call failed and why (it once did, under
    // load, unexplained).
    const lines: string[] = [];
    const record = (m: unknown) => {
      const op = m as StoreOperation;
      lines.push(`${op.operation} ${op.ok ? 'ok' : `failed: ${op.error}`} in ${Math.round(op.seconds * 1000)} ms`);
    };
    dc.subscribe(CHANNELS.storeOperation, record);
    after(() => dc.unsubscribe(CHANNELS.storeOperation, record));
    const app = await serve({ store: { type: 'redis', url }, storeTimeout: STORE_TIMEOUT, logger: quiet });
    cleanups.push(() => app.close());
    const login = await request(`${app.url}/login`, { method: 'POST', body: { user: 'alice' } });
    assert.equal(login.status, 200, `${login.body}; store: ${lines.join(' | ')}`);
    const cookie = cookieHeader(login.cookies);
    const hit = () => request(`${app.url}/hit`, { method: 'POST', headers: { cookie }, timeoutMs: 5_000 });
    const first = await hit();
    assert.equal(first.status, 200, `confirmed by the replica of the session's master; store: ${lines.join(' | ')}`);

    // Cut off that master's replica only: this session's saves are no longer confirmed.
    const owner = await cluster.nodeForKey(`sess:${login.json.id}`);
    const [replica] = await cluster.replicasOf(owner);
    process.kill(replica!.proc.pid, 'SIGSTOP');
    try {
      assert.equal(await redisCli(owner.address, ['CLIENT', 'KILL', 'TYPE', 'replica']), '1');
      assert.equal((await hit()).status, 503);
    } finally {
      process.kill(replica!.proc.pid, 'SIGCONT');
    }
    await until('the replica is back and confirms', async () => (await hit()).status === 200, 15_000, 100);
  });
});

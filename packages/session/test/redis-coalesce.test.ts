// The clients clusterSession makes send the commands of one event-loop turn in one write (src/stores/redis-coalesce.ts),
// over a private redis-server.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';
import { after, describe, test } from 'node:test';
import * as Ioredis from 'ioredis';
import { redisCli, startRedis, startRedisCluster, until, type RedisAddress, type RedisServer } from '@cluster-session/testkit';
import { createIoredis } from '../src/stores/redis-topology.ts';

let redis: RedisServer;
const clients: Array<Ioredis.Redis | Ioredis.Cluster> = [];
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of clients) c.disconnect();
  await redis?.stop();
  for (const fn of cleanups) await fn();
});

async function client(options: Record<string, unknown> = {}): Promise<Ioredis.Redis> {
  redis ??= await startRedis();
  const c = createIoredis(Ioredis, { kind: 'standalone', url: redis.url, tls: false, waitReplicas: 0 }, 1_000, options) as Ioredis.Redis;
  clients.push(c);
  c.on('error', () => {}); // the dropped connection of the third test
  await until('connected', () => c.status === 'ready');
  return c;
}

const reads = async (at: RedisAddress) => Number(/total_reads_processed:(\d+)/.exec(await redisCli(at, ['INFO', 'stats']))![1]);

/** The read events each server processed for what `fn` sent (less the INFO that took the first count). */
async function readsBy(at: RedisAddress[], fn: () => Promise<unknown>): Promise<number[]> {
  const before = await Promise.all(at.map(reads));
  await fn();
  return (await Promise.all(at.map(reads))).map((n, i) => n - before[i]! - 1);
}

describe('one write per event-loop turn', () => {
  test('a turn’s commands wait in the socket until the turn ends, then are answered in order', async () => {
    const c = await client();
    const socket = c.stream as Socket;
    const replies: Array<Promise<unknown>> = [];
    for (let i = 0; i < 200; i++) replies.push(c.set(`k${i}`, String(i)), c.get(`k${i}`));
    // Not written yet: a write of its own per command would have reached the loopback at once.
    assert.ok(socket.writableLength > 200 * 20, `${socket.writableLength} bytes held for the turn`);
    await turn();
    assert.equal(socket.writableCorked, 0, 'uncorked after the turn');
    const got = await Promise.all(replies);
    for (let i = 0; i < 200; i++) assert.deepEqual([got[2 * i], got[2 * i + 1]], ['OK', String(i)]);
  });

  test('redis-server reads a turn’s 400 commands in three reads at most, and a pipeline and MULTI still work', async () => {
    const c = await client();
    const [n] = await readsBy([redis.address], async () => {
      const all: Array<Promise<unknown>> = [];
      for (let i = 0; i < 200; i++) all.push(c.set(`r${i}`, 'v'), c.get(`r${i}`));
      all.push(c.pipeline().set('p', '1').get('p').exec(), c.multi().incr('m').incr('m').exec());
      await Promise.all(all);
    });
    assert.ok(n! <= 3, `${n} read events for one turn's commands`);
    assert.equal(await c.get('p'), '1');
    assert.equal(await c.get('m'), '2');
  });

  test('a connection dropped while corked: the next turn goes out on the new socket', async () => {
    const c = await client();
    const first = c.stream;
    const pending = c.get('k1');
    await redisCli(redis.address, ['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes']);
    await pending.catch(() => {});
    await until('a new connection', () => c.status === 'ready' && c.stream !== first);
    assert.equal(await c.set('after', 'yes'), 'OK');
    assert.equal(await c.get('after'), 'yes');
  });

  test('a Cluster: each master reads its share of a turn’s commands in three reads at most', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 0 });
    cleanups.push(() => cluster.close());
    const c = createIoredis(Ioredis, { kind: 'cluster', nodes: cluster.startupNodes, tls: false, waitReplicas: 0 }, 1_000, {}) as Ioredis.Cluster;
    clients.push(c);
    c.on('error', () => {});
    await until('cluster ready', () => c.status === 'ready');
    for (let i = 0; i < 30; i++) await c.set(`c${i}`, 'warm'); // a connection to every master
    const masters = (await cluster.masters()).map((m) => m.address);
    const counts = await readsBy(masters, () => Promise.all(Array.from({ length: 300 }, (_, i) => c.set(`c${i}`, String(i)))));
    for (const n of counts) assert.ok(n <= 3, `${counts.join(', ')} read events per master for one turn's commands`);
    assert.equal(await c.get('c299'), '299');
  });

  test('enableAutoPipelining in store.options gives ioredis its own batching back', async () => {
    const c = await client({ enableAutoPipelining: true });
    const socket = c.stream as Socket;
    const reply = c.get('k1');
    assert.equal(socket.writableCorked, 0);
    assert.equal(await reply, '1');
  });
});

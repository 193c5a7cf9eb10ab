import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { Cluster, Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { redisCli, startMongo, startRedisCluster, startRedisSentinel } from '@cluster-session/testkit';

describe('startRedisCluster', () => {
  test('3 masters + 3 replicas: keys land on every master, a killed master is replaced by its replica', async () => {
    const cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
    assert.equal(cluster.nodes.length, 6);
    const masters = await cluster.masters();
    assert.equal(masters.length, 3);
    for (const m of masters) {
      assert.equal(await m.role(), 'master');
      assert.equal((await cluster.replicasOf(m)).length, 1);
    }

    const client = new Cluster(cluster.startupNodes, { redisOptions: { commandTimeout: 2_000 } });
    client.on('error', () => {}); // reconnect attempts to the killed node are expected
    // node:test runs after() hooks in registration order: one hook, client first, then the servers.
    after(async () => {
      client.disconnect();
      await cluster.close();
    });
    for (let i = 0; i < 60; i++) await client.set(`k:${i}`, String(i));
    const perMaster = await Promise.all(masters.map(async (m) => Number(await redisCli(m.port, ['DBSIZE']))));
    assert.equal(perMaster.reduce((a, b) => a + b, 0), 60);
    assert.ok(perMaster.every((n) => n > 0), `keys on every master: ${perMaster.join(',')}`);

    const owner = await cluster.nodeForKey('k:0');
    const [replica] = await cluster.replicasOf(owner);
    await cluster.waitForReplication();
    const index = masters.indexOf(owner);
    const killed = await cluster.killMaster(index);
    assert.equal(killed, owner);
    const after_ = await cluster.waitForFailover(killed);
    assert.equal(after_.length, 3);
    assert.ok(after_.includes(replica!), 'the replica of the killed master was promoted');
    assert.equal(await replica!.role(), 'master');
    // The client follows the new slot map and the data written before the kill is there.
    assert.equal(await client.get('k:0'), '0');
    for (let i = 0; i < 60; i++) assert.equal(await client.get(`k:${i}`), String(i));

    // The old master comes back as a replica of its successor.
    await killed.start();
    await cluster.waitForHealthy();
    assert.equal(await killed.role(), 'slave');
  });
});

describe('startRedisSentinel', () => {
  test('1 master, 1 replica, 3 sentinels: a sentinel-discovered master takes writes and fails over', async () => {
    const sentinel = await startRedisSentinel({ quorum: 2 });
    assert.equal(sentinel.sentinels.length, 3);
    const first = await sentinel.master();
    assert.equal(first, sentinel.servers[0]);

    const client = new Redis({ sentinels: sentinel.sentinels, name: sentinel.masterName, commandTimeout: 2_000 });
    client.on('error', () => {});
    after(async () => {
      client.disconnect();
      await sentinel.close();
    });
    await client.set('login', 'alice');
    assert.equal(await redisCli(first.port, ['GET', 'login']), 'alice');
    await sentinel.waitForReplication();

    const old = await sentinel.killMaster();
    const promoted = await sentinel.waitForFailover(old);
    assert.equal(promoted, sentinel.servers[1]);
    assert.equal(await redisCli(promoted.port, ['GET', 'login']), 'alice');
    // ioredis asks the sentinels again on reconnect and lands on the promoted master.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await client.set('after', 'failover');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.equal(await redisCli(promoted.port, ['GET', 'after']), 'failover');
  });
});

describe('startMongo({ replicaSet })', () => {
  test('the mongodb driver connects through a replica-set URL and reads its writes', async () => {
    const mongo = await startMongo({ replicaSet: 'rs0' });
    if (!mongo.external) assert.match(mongo.url, /replicaSet=rs0/);
    const client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5_000 });
    after(async () => {
      await client.close();
      await mongo.close();
    });
    const hello = await client.db('admin').command({ hello: 1 });
    assert.equal(hello.isWritablePrimary, true);
    if (!mongo.external) assert.equal(hello.setName, 'rs0');
    const col = client.db().collection<{ _id: string; n: number }>('topology_probe');
    await col.insertOne({ _id: 'a', n: 1 }, { writeConcern: { w: 'majority' } });
    assert.equal((await col.findOne({ _id: 'a' }, { readPreference: 'primary' }))?.n, 1);
    await col.deleteMany({});
  });
});

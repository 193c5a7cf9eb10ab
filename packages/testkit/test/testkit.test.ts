import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { startMongo, startRedis } from '@cluster-session/testkit';

function redisCommand(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const payload = `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
    socket.on('error', reject);
    socket.once('data', (d) => {
      socket.end();
      resolve(d.toString().trim());
    });
    socket.write(payload);
  });
}

test('startRedis gives a private server that survives stop/start with AOF', async () => {
  const redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  after(() => redis.close());
  assert.notEqual(redis.port, 6379);
  assert.equal(await redisCommand(redis.port, 'SET', 'k', 'v'), '+OK');
  await redis.stop();
  await assert.rejects(redisCommand(redis.port, 'PING'));
  await redis.start();
  assert.equal(await redisCommand(redis.port, 'GET', 'k'), '$1\r\nv');
});

test('startMongo answers the MongoDB wire protocol', async () => {
  const { MongoClient } = await import('mongodb');
  const mongo = await startMongo();
  after(() => mongo.close());
  const client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5_000 });
  try {
    const col = client.db().collection('probe');
    await col.insertOne({ _id: 'a' as never, n: 1 });
    assert.equal((await col.findOne({ _id: 'a' as never }))?.n, 1);
    await col.deleteMany({});
  } finally {
    await client.close();
  }
});

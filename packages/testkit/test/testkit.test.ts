import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { after, test } from 'node:test';
import { freePort, processTag, startMongo, startNode, startRedis, until } from '@cluster-session/testkit';

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
  const redis = await startRedis({ args: ['--appendonly', 'yes', '--appendfsync', 'no'] });
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

test('client keeps cookies like a browser: set ones go back, emptied or expired ones are dropped', async () => {
  const { createServer } = await import('node:http');
  const seen: string[] = [];
  const server = createServer((req, res) => {
    seen.push(req.headers.cookie ?? '');
    if (req.url === '/set') res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
    if (req.url === '/clear') res.setHeader('set-cookie', ['a=; Path=/', 'b=2; Max-Age=0']);
    res.end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  after(() => server.close());
  const { client } = await import('@cluster-session/testkit');
  const c = client(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  await c.get('/set');
  await c.post('/again', { x: 1 });
  assert.equal(seen[1], 'a=1; b=2');
  await c.get('/clear');
  assert.deepEqual(c.jar, {});
  await c.get('/after');
  assert.equal(seen[3], '');
});

test('until resolves with the first truthy value, retries through throws, and names what it waited for', async () => {
  const { until } = await import('@cluster-session/testkit');
  let n = 0;
  assert.equal(await until('third try', () => (++n === 3 ? 'done' : undefined)), 'done');
  let calls = 0;
  assert.equal(await until('after a throw', () => (calls++ === 0 ? Promise.reject(new Error('not yet')) : 7)), 7);
  await assert.rejects(until('never', () => false, 100), /never: not reached within 100 ms/);
});

test('freePort: below the ephemeral range, never the same port twice in a process, bindable on 127.0.0.1 and ::', async () => {
  const ephemeral = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const ports = await Promise.all(Array.from({ length: 50 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length, 'all different');
  for (const port of ports) assert.ok(port > 1024 && port < ephemeral, `${port} is below ${ephemeral}`);
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(ports[0], '::', resolve));
  server.close();
});

test('waitFor on a process that exits without printing the pattern rejects at its exit, not at the timeout', async () => {
  const proc = startNode(['-e', 'console.log("bye")']);
  const started = Date.now();
  await assert.rejects(proc.waitFor(/never printed/, 30_000), /exited before printing \/never printed\/; output:\nbye/);
  assert.ok(Date.now() - started < 20_000, 'rejected once the process was gone');
});

test('processTag: kill() takes every tagged process, however deep, even reparented', async () => {
  const tag = processTag();
  // A parent that starts a detached grandchild and exits: the grandchild is reparented and still tagged.
  const script = `require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { detached: true, stdio: 'ignore' }).unref(); console.log('started')`;
  const parent = startNode(['-e', script], { env: { ...process.env, ...tag.env } });
  await parent.waitFor(/started/);
  await parent.exited;
  await until('the reparented grandchild', () => tag.leftovers().length === 1);
  tag.kill();
  await until('no tagged process left', () => tag.leftovers().length === 0);
});

/**
 * Issue 19: the starter (examples/express-app, `npm start`) on Redis Sentinel and on Redis Cluster by environment
 * alone: REDIS_URL=redis+sentinel://... (password in the URL) or REDIS_CLUSTER_NODES, nothing in the app's code
 * (redis+cluster:// URLs with a password run in the partition suite). On 127.0.0.1, so it runs everywhere; test/serial/partitions.test.ts runs the
 * same configuration across simulated hosts.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { client as httpClient, redisCli, request, startRedisCluster, startRedisSentinel, type Client } from '@cluster-session/testkit';
import { login, startStack, type Stack } from './support/stack.ts';

const PASSWORD = 'starter-topology-pw';
const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

/** Logs in through the stack's balancer and hops `n` times; every answer is the same login, counting on. */
async function loginAndHop(stack: Stack, n = 20): Promise<{ client: Client; instances: Set<string> }> {
  const client = httpClient(stack.url);
  const res = await login(client);
  assert.equal(res.status, 200, res.body);
  const instances = new Set<string>();
  for (let i = 1; i <= n; i++) {
    const me = await client.send('GET', '/me');
    assert.equal(me.status, 200, me.body);
    assert.equal(me.json.user, 'alice');
    assert.equal(me.json.hits, i);
    instances.add(me.json.instance);
  }
  return { client, instances };
}

const sid = (client: Client) => decodeURIComponent(client.jar.sid!).slice(2).split('.')[0]!;

describe('the starter on Redis topologies, configured by environment alone', () => {
  test('Sentinel: REDIS_URL=redis+sentinel://:password@s1,s2,s3/mymaster', async () => {
    const sentinel = await startRedisSentinel({ password: PASSWORD });
    cleanups.push(() => sentinel.close());
    const url = `redis+sentinel://:${PASSWORD}@${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${sentinel.masterName}`;
    const stack = await startStack({ SESSION_STORE: 'redis', REDIS_URL: url });
    cleanups.push(() => stack.close());

    const { client, instances } = await loginAndHop(stack);
    assert.equal(instances.size, 2, 'requests hopped across both instances');
    const master = await sentinel.master();
    assert.equal(await redisCli(master.address, ['EXISTS', `sess:${sid(client)}`]), '1', 'the session is on the master the sentinels name');
    assert.ok(!stack.proc.output().includes(PASSWORD), 'the password is never printed');
  });

  test('Cluster: REDIS_CLUSTER_NODES=n1:port,n2:port,n3:port', async () => {
    const cluster = await startRedisCluster({ args: ['--cluster-require-full-coverage', 'no'] });
    cleanups.push(() => cluster.close());
    const seeds = cluster.startupNodes.slice(0, 3).map((n) => `${n.host}:${n.port}`).join(',');
    const stack = await startStack({ SESSION_STORE: 'redis', REDIS_CLUSTER_NODES: seeds });
    cleanups.push(() => stack.close());

    const users = await Promise.all(Array.from({ length: 6 }, () => loginAndHop(stack, 5)));
    const owners = await Promise.all(users.map((u) => cluster.nodeForKey(`sess:${sid(u.client)}`)));
    for (const [i, u] of users.entries()) assert.equal(await redisCli(owners[i]!.address, ['EXISTS', `sess:${sid(u.client)}`]), '1');
    assert.ok(new Set(owners).size >= 2, `sessions spread over the masters (${new Set(owners).size} of 3 used)`);

    // One master hung (SIGSTOP: its connections stay open and silent, as behind a partition): every instance still
    // reports healthy (any master answering is enough; failures are per slot), so a balancer keeps both in
    // rotation rather than ejecting healthy instances.
    const [hung] = await cluster.masters();
    process.kill(hung!.proc.pid, 'SIGSTOP');
    try {
      for (let i = 0; i < 10; i++) {
        for (const port of stack.instancePorts) {
          const res = await request(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 5_000 });
          assert.equal(res.status, 200, `instance :${port} /healthz with one master hung: ${res.status} ${res.body}`);
        }
      }
    } finally {
      process.kill(hung!.proc.pid, 'SIGCONT');
    }
  });
});

/**
 * The headline proof, per session backend: log in once through the balancer, then hop across instances and workers
 * (fresh connections every request) while workers are SIGKILLed and instances reload, and never lose the login.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { alive, client as httpClient, sleep, type Client } from '@cluster-session/testkit';
import { modes } from './support/modes.ts';
import { login, startStack, type Stack } from './support/stack.ts';

const HOPS = 200;

interface Seen {
  workers: Set<number>;
  instances: Set<string>;
  failed: number;
}

/**
 * Sequential /me calls, each on a fresh client connection, at least `n` of them and on until `until` settles;
 * asserts every one is logged in and hits count on without a gap or a repeat.
 */
async function hop(client: Client, n: number, between?: (i: number, pid: number) => Promise<void>, until?: Promise<unknown>): Promise<Seen & { requests: number }> {
  const seen = { workers: new Set<number>(), instances: new Set<string>(), failed: 0, requests: 0 };
  let settled = until === undefined;
  void until?.finally(() => (settled = true));
  const first = (await client.send('GET', '/me')).json?.hits as number;
  assert.equal(typeof first, 'number', 'logged in before the hops');
  for (let i = 1; i <= n || !settled; i++) {
    const res = await client.send('GET', '/me');
    seen.requests = i;
    if (res.status !== 200) {
      seen.failed++;
      assert.fail(`hop ${i}: ${res.status} ${res.body}`);
    }
    assert.equal(res.json.user, 'alice');
    assert.equal(res.json.hits, first + i, `hop ${i}: hits must count on without a gap or a repeat`);
    seen.workers.add(res.json.worker);
    seen.instances.add(res.json.instance);
    if (between) await between(i, res.json.worker);
  }
  return seen;
}

async function killAndWait(pid: number) {
  process.kill(pid, 'SIGKILL');
  while (alive(pid)) await new Promise((r) => setTimeout(r, 10));
}

async function allReady(stack: Stack, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const slots = await stack.slots();
    if (slots.every((s) => s.state === 'ready')) return;
    if (Date.now() > deadline) throw new Error(`workers not all ready: ${JSON.stringify(slots)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MODES = modes('sqlite', 'redis', 'mongo', 'jwt');

for (const mode of MODES) {
  describe(`e2e through the balancer: ${mode.name}`, { concurrency: false }, () => {
    let stack: Stack;
    let client: Client;
    const report: Record<string, unknown> = {};

    before(async () => {
      stack = await startStack(await mode.env());
      client = httpClient(stack.url);
      const res = await login(client);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json, { user: 'alice' });
    });
    after(async () => {
      await stack?.close();
      await mode.cleanup();
      console.log(`# ${mode.name}: ${JSON.stringify(report)}`);
    });

    test(`${HOPS} hops land on 2 instances and 3+ workers, every one logged in`, async () => {
      const seen = await hop(client, HOPS);
      report.hops = { requests: seen.requests, failed: seen.failed, workers: seen.workers.size, instances: seen.instances.size };
      assert.equal(seen.instances.size, 2, `instances seen: ${[...seen.instances]}`);
      assert.ok(seen.workers.size >= 3, `distinct workers seen: ${seen.workers.size}`);
    });

    test(`${HOPS} hops while workers are SIGKILLed: 0 failed, 0 lost`, async () => {
      let kills = 0;
      const seen = await hop(client, HOPS, async (i, pid) => {
        if (i % 25 === 0) {
          // One worker at a time, as crashes come in production: the previous victim's replacement is serving
          // before the next kill (killing every worker of both instances at once is an outage, not a hop).
          await allReady(stack);
          kills++;
          await killAndWait(pid);
        }
      });
      report.kills = { requests: seen.requests, killed: kills, failed: seen.failed, workers: seen.workers.size, instances: seen.instances.size };
      assert.ok(seen.workers.size >= 3);
    });

    test(`${HOPS} hops while both instances run rolling reloads: 0 failed, 0 lost`, async () => {
      const before = await stack.slots();
      const reloads = (async () => {
        await stack.cli('reload', 'a');
        await stack.cli('reload', 'b');
      })();
      const seen = await hop(client, HOPS, undefined, reloads);
      await reloads;
      const after = await stack.slots();
      const oldPids = new Set(before.map((s) => s.pid));
      report.reload = { requests: seen.requests, reloads: 2, failed: seen.failed, workers: seen.workers.size, instances: seen.instances.size };
      assert.ok(after.every((s) => !oldPids.has(s.pid)), 'every worker was replaced by the reloads');
      assert.ok(seen.workers.size >= 3);
    });

    test('logout: the old cookie gets 401 on every worker of every instance', async () => {
      const stale = { ...client.jar };
      const res = await client.send('POST', '/logout');
      assert.equal(res.status, 200);
      // JWT mode: a revocation holds at once on the worker that made it and within 1 s on every other (each keeps a
      // view of the deny list, refreshed from a store stamp, and stops trusting it after 800 ms: packages/session
      // README, createDenyList). The bound is the contract, so the replays start once it has passed.
      if (mode.name === 'jwt mode') await sleep(1_000);
      const replay = httpClient(stack.url);
      Object.assign(replay.jar, stale);
      const workers = new Set<number>();
      const instances = new Set<string>();
      for (let i = 0; i < 40; i++) {
        const r = await replay.send('GET', '/me');
        assert.equal(r.status, 401, `replayed cookie after logout: ${r.status} ${r.body}`);
        workers.add(r.json.worker);
        instances.add(r.json.instance);
      }
      report.logout = { requests: 40, refused: 40, workers: workers.size, instances: instances.size };
      assert.equal(instances.size, 2);
      assert.ok(workers.size >= 3, `401 seen on ${workers.size} workers`);
    });
  });
}

/**
 * The fault suite under load, through the balancer, with the example app on Redis: logged-in clients keep calling
 * /me while workers are SIGKILLed every 500 ms, a whole instance is killed and brought back, an instance is
 * paused (SIGSTOP: it hangs rather than dies), and the store turns slow. Per scenario it reports requests made,
 * failed and logins lost. The target is 0 and 0: what never reached a worker, or was idempotent, is retried by the
 * balancer; nothing is allowed to hang.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { createBalancer, type Balancer } from '@cluster-session/balancer';
import { client as httpClient, freePort, needs, sleep, startNode, startRedis, type Client, type Proc, type RedisServer } from '@cluster-session/testkit';
import { CLI, login } from '../support/stack.ts';

const run = promisify(execFile);
const SERVER = path.join(path.dirname(CLI), '..', '..', '..', 'examples', 'express-app', 'src', 'server.ts');
const SECRET = 'fault-suite-secret-0123456789abcdef';
const CLIENTS = 6;
const node = (args: string[]) => [...process.execArgv.filter((a) => !a.startsWith('--test')), ...args];

interface Instance {
  name: string;
  port: number;
  proc: Proc;
}

interface Tally {
  requests: number;
  failed: number;
  lost: number;
  statuses: Record<string, number>;
  /** The first failed answer, so a report says who refused and why. */
  sample?: string;
}


describe('fault suite through the balancer (redis store)', { skip: needs('redis-server'), concurrency: false }, () => {
  let redis: RedisServer;
  let lb: Balancer;
  const instances: Instance[] = [];
  const clients: Client[] = [];
  const report: Record<string, Tally> = {};

  async function startInstance(name: string, port: number): Promise<Instance> {
    // The storm below kills healthy, serving workers on purpose; that is not the crash loop restart backoff guards
    // against, so a worker that served for a second restarts without paying for its predecessors' deaths.
    const backoff = ['--restart-delay', '100', '--max-restart-delay', '1000', '--stable-after', '1000'];
    const proc = startNode([CLI, 'start', SERVER, '-i', '2', '--name', `${name}-${process.pid}`, '--port', String(port), ...backoff], {
      env: { ...process.env, NODE_ENV: 'production', SESSION_STORE: 'redis', REDIS_URL: redis.url, SESSION_SECRET: SECRET, INSTANCE: name },
    });
    await proc.waitFor(/2\/2 workers ready/, 60_000);
    return { name, port, proc };
  }

  async function workerPids(i: Instance): Promise<number[]> {
    const { stdout } = await run(process.execPath, node([CLI, 'status', '--name', `${i.name}-${process.pid}`, '--json']));
    return (JSON.parse(stdout) as Array<{ pid: number | null; state: string }>).filter((s) => s.state === 'ready' && s.pid).map((s) => s.pid!);
  }

  /** Worker pids that answered in the last moment, and where: the kill storm's victims (a status call per kill is too slow). */
  const recent = new Map<number, { at: number; instance: string }>();

  /** Every client calls /me in a loop until `fault` settles, then for `tailMs` more. */
  async function underLoad(name: string, fault: () => Promise<void>, tailMs = 1_000): Promise<Tally> {
    const tally: Tally = { requests: 0, failed: 0, lost: 0, statuses: {} };
    let stop = false;
    const loops = clients.map(async (client) => {
      while (!stop) {
        let status: string;
        try {
          const res = await client.send('GET', '/me');
          status = String(res.status);
          if (res.status === 200) recent.set(res.json.worker, { at: Date.now(), instance: res.json.instance });
          if (res.status === 401) tally.lost++;
          else if (res.status !== 200) {
            tally.failed++;
            tally.sample ??= `${res.status} ${res.body.slice(0, 200)}`;
          }
        } catch (err) {
          status = (err as Error).message.includes('timed out') ? 'timeout' : 'network error';
          tally.failed++;
        }
        tally.requests++;
        tally.statuses[status] = (tally.statuses[status] ?? 0) + 1;
      }
    });
    await fault();
    await sleep(tailMs);
    stop = true;
    await Promise.all(loops);
    report[name] = tally;
    console.log(`# ${name}: ${JSON.stringify(tally)}`);
    return tally;
  }

  before(async () => {
    redis = await startRedis({ args: ['--appendonly', 'yes'] });
    const ports = await Promise.all([freePort(), freePort()]);
    instances.push(...(await Promise.all([startInstance('a', ports[0]!), startInstance('b', ports[1]!)])));
    lb = await createBalancer({
      listen: { port: await freePort(), host: '127.0.0.1' },
      upstreams: instances.map((i) => ({ id: i.name, url: `http://127.0.0.1:${i.port}` })),
      health: { path: '/healthz', interval: 250, fall: 2, rise: 2, timeout: 500 },
      timeouts: { response: 3_000 },
      // As in the example stack: each client connection gets its own instance connection, so every worker serves.
      reuse: 'client',
    });
    for (let i = 0; i < CLIENTS; i++) {
      const client = httpClient(lb.url);
      const res = await login(client);
      assert.equal(res.status, 200, res.body);
      clients.push(client);
    }
  });

  after(async () => {
    await lb?.close(1_000);
    await Promise.all(instances.map((i) => i.proc.stop('SIGTERM', 15_000)));
    await redis?.close();
    console.log(`# fault suite: ${JSON.stringify(report)}`);
  });

  test('a slow store (Redis paused 300 ms in every 500 ms for 8 s): 0 failed, 0 lost', async () => {
    const tally = await underLoad('slow store', async () => {
      const end = Date.now() + 8_000;
      while (Date.now() < end) {
        await run('redis-cli', ['-p', String(redis.port), 'CLIENT', 'PAUSE', '300', 'ALL']);
        await sleep(500);
      }
    });
    assert.ok(tally.requests > 100);
    assert.equal(tally.lost, 0);
    assert.equal(tally.failed, 0, JSON.stringify(tally.statuses));
  });

  test('an instance paused with SIGSTOP for 5 s (hangs, not dead): 0 failed, 0 lost', async () => {
    const victim = instances[0]!;
    const pids = [victim.proc.pid, ...(await workerPids(victim))];
    const tally = await underLoad('instance paused', async () => {
      await sleep(500);
      for (const pid of pids) process.kill(pid, 'SIGSTOP');
      await sleep(5_000);
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }, 2_000);
    assert.equal(tally.lost, 0);
    assert.equal(tally.failed, 0, JSON.stringify(tally.statuses));
  });

  test('a whole instance SIGKILLed, then brought back: 0 failed, 0 lost, and it serves again', async () => {
    const victim = instances[0]!;
    const tally = await underLoad('instance killed and restarted', async () => {
      await sleep(500);
      const workers = await workerPids(victim);
      for (const pid of [victim.proc.pid, ...workers]) process.kill(pid, 'SIGKILL');
      await victim.proc.exited;
      await sleep(2_000);
      instances[0] = await startInstance(victim.name, victim.port);
      // Until the balancer's health check lets it back in (rise: 2 checks).
      await sleep(1_500);
    });
    assert.equal(tally.lost, 0);
    assert.equal(tally.failed, 0, JSON.stringify(tally.statuses));
    const back = lb.status().upstreams.find((u) => u.id === 'a')!;
    assert.equal(back.healthy, true, 'the restarted instance is back in rotation');
  });

  test('SIGKILL a random serving worker every 500 ms until 20 are killed: 0 failed, 0 lost', async () => {
    let kills = 0;
    const tally = await underLoad('worker kill storm', async () => {
      // 20 kills, however long the restarts take (a tick finds no candidate while an instance has one serving
      // worker): a fixed 20 s gave 29 kills on one run and 19 on a slower machine, the same storm either way.
      const end = Date.now() + 60_000;
      while (kills < 20 && Date.now() < end) {
        await sleep(500);
        // Any serving worker, except the last one an instance was just seen with: killing every worker of every
        // instance at once is an outage, which no retry can hide, not a worker dying.
        const now = Date.now();
        const serving = [...recent].filter(([, r]) => now - r.at < 300);
        const perInstance = (instance: string) => serving.filter(([, r]) => r.instance === instance).length;
        const candidates = serving.filter(([, r]) => perInstance(r.instance) >= 2).map(([pid]) => pid);
        const pid = candidates[Math.floor(Math.random() * candidates.length)];
        if (pid === undefined) continue;
        recent.delete(pid);
        try {
          process.kill(pid, 'SIGKILL');
          kills++;
        } catch {
          // already gone
        }
      }
    }, 2_000);
    console.log(`# worker kill storm: ${kills} workers killed`);
    // The storm happened: 20 serving workers killed within the minute.
    assert.ok(kills >= 20, `${kills} kills`);
    assert.equal(tally.lost, 0);
    assert.equal(tally.failed, 0, JSON.stringify(tally.statuses));
  });
});

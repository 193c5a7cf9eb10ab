import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort, sleep, until } from '@cluster-session/testkit';
import { apiPrimary, cli, count, FIXTURES, get, load, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const app = path.join(FIXTURES, 'app.ts');

async function pids(name: string): Promise<number[]> {
  const r = await runCli(['status', '--json', '--name', name], s.env);
  assert.equal(r.code, 0, r.out);
  return (JSON.parse(r.out) as Array<{ pid: number }>).map((row) => row.pid);
}

describe('rolling reload', () => {
  test('3 reloads (SIGHUP, CLI, SIGHUP) under 20 keep-alive connections of autocannon: 0 failed requests', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--name', 'loaded'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const before = await pids('loaded');

    const { result } = load(`http://127.0.0.1:${port}/`, { connections: 20, seconds: 8, rate: 2000 });
    // A second, stricter client: Node's keep-alive agent reports a request lost on a closing socket as an error
    // (autocannon silently re-sends on a new connection), and it sends with pauses, so it exercises idle closing.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    after(() => agent.destroy());
    let strictOk = 0;
    const strictErrors: string[] = [];
    let loading = true;
    const strict = Array.from({ length: 4 }, async (_, i) => {
      while (loading) {
        try {
          const res = await get(`http://127.0.0.1:${port}/`, { agent });
          if (res.status === 200) strictOk++;
          else strictErrors.push(`status ${res.status}`);
        } catch (err) {
          strictErrors.push((err as Error).message);
        }
        await sleep(i * 40);
      }
    });
    await sleep(1000);
    proc.child.kill('SIGHUP');
    await until('first reload', () => count(proc.output(), /reload complete/) >= 1, 15_000);
    await sleep(500);
    const viaCli = await runCli(['reload', '--name', 'loaded'], s.env);
    assert.equal(viaCli.code, 0, viaCli.out);
    assert.match(viaCli.out, /reloaded 2 workers/);
    await sleep(500);
    proc.child.kill('SIGHUP');
    await until('third reload', () => count(proc.output(), /reload complete/) >= 3, 15_000);
    const r = await result;
    loading = false;
    await Promise.all(strict);

    process.stderr.write(`# reload under load: autocannon ${JSON.stringify(r)}; keep-alive agent ok=${strictOk} failed=${strictErrors.length}\n`);
    assert.deepEqual(strictErrors, []);
    assert.ok(strictOk > 100);
    assert.ok(r.total > 1000, `load ran (${r.total} requests)`);
    assert.equal(r.errors, 0, 'socket errors');
    assert.equal(r.timeouts, 0, 'timeouts');
    assert.equal(r.non2xx, 0, 'non-2xx answers');
    const afterPids = await pids('loaded');
    assert.ok(afterPids.every((p) => !before.includes(p)), 'every worker was replaced');
    assert.equal(count(proc.output(), /retiring pid/), 6);
  });

  test('a broken new build aborts the reload and the old workers keep serving; a reload during a reload is queued', async () => {
    const port = await freePort();
    const breakFile = path.join(s.dir, 'broken');
    const hangFile = path.join(s.dir, 'hang');
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--name', 'broken', '--ready-timeout', '2500'], { ...s.env, FIXTURE_BREAK_FILE: breakFile, FIXTURE_HANG_FILE: hangFile });
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const before = await pids('broken');

    writeFileSync(breakFile, '');
    const r = await runCli(['reload', '--name', 'broken'], s.env);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /reload aborted at slot 0: exited with code 1; 0 replaced, the old workers keep serving/);
    assert.match(proc.output(), /Error: broken build: cannot start/);
    assert.deepEqual(await pids('broken'), before);
    for (let i = 0; i < 4; i++) {
      const res = await get(`http://127.0.0.1:${port}/`);
      assert.equal(res.status, 200);
      assert.ok(before.includes(res.json.pid));
    }

    rmSync(breakFile);

    // A new worker that never gets ready within readyTimeout has FAILED: the reload aborts the same way.
    writeFileSync(hangFile, '');
    const hung = await runCli(['reload', '--name', 'broken'], s.env);
    assert.equal(hung.code, 1, hung.out);
    assert.match(hung.out, /reload aborted at slot 0: not ready within 2500 ms \(readyTimeout\): FAILED/);
    assert.deepEqual(await pids('broken'), before);
    assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200);
    rmSync(hangFile);

    const [a, b] = await Promise.all([runCli(['reload', '--name', 'broken'], s.env), sleep(100).then(() => runCli(['reload', '--name', 'broken'], s.env))]);
    assert.equal(a.code, 0, a.out);
    assert.equal(b.code, 0, b.out);
    assert.match(proc.output(), /reload requested while one is running: queued/);
    assert.equal(count(proc.output(), /reload complete/), 2);
  });

  test('retirement kills a worker still busy after killTimeout, and the reload completes', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '1', '--port', String(port), '--name', 'retire', '--kill-timeout', '1500'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/1\/1 workers ready/);
    const second = await get(`http://127.0.0.1:${port}/`);

    // A request that outlives killTimeout: the worker is killed at killTimeout, the reload still completes.
    const busyPid = second.json.pid as number;
    const stuck = get(`http://127.0.0.1:${port}/slow?ms=20000`).catch((err: Error) => err);
    await sleep(200);
    const forced = await runCli(['reload', '--name', 'retire'], s.env);
    assert.equal(forced.code, 0, forced.out);
    assert.match(proc.output(), new RegExp(`pid ${busyPid} retired \\(still running 1500 ms after retirement \\(killTimeout\\): killed\\)`));
    assert.ok((await stuck) instanceof Error, 'the stuck request was cut when its worker was killed');
  });

  test('a worker above maxMemory is replaced through the reload path', async () => {
    const port = await freePort();
    const primary = apiPrimary({ entry: app, workers: 2, port, name: 'memory', maxMemory: '180M', memoryCheckInterval: 300 }, s.env);
    after(() => primary.stop('SIGKILL'));
    await primary.waitFor(/2\/2 workers ready/);
    const before = await pids('memory');
    const big = await get(`http://127.0.0.1:${port}/balloon?mb=200`);
    assert.equal(big.status, 200);
    const slot = Number(big.json.slot);
    await primary.waitFor(new RegExp(`slot ${slot} \\(pid ${big.json.pid}\\) uses \\d+ MB > maxMemory 180 MB: replacing`));
    await primary.waitFor(new RegExp(`pid ${big.json.pid} retired`));
    const now = await pids('memory');
    assert.notEqual(now[slot], before[slot]);
    assert.equal(now[1 - slot], before[1 - slot], 'the other worker stays');
    assert.equal((await get(`http://127.0.0.1:${port}/`)).status, 200);
  });
});

describe('graceful stop', () => {
  test('SIGTERM under load: every in-flight request on keep-alive connections completes, exit code 0', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--name', 'stopping'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    after(() => agent.destroy());
    // Warm 20 keep-alive connections, then put a slow request on each of them.
    await Promise.all(Array.from({ length: 20 }, () => get(`http://127.0.0.1:${port}/`, { agent })));
    const inflight = Array.from({ length: 20 }, () => get(`http://127.0.0.1:${port}/slow?ms=800`, { agent }).catch((err: Error) => err));
    await sleep(250);
    proc.child.kill('SIGTERM');
    const results = await Promise.all(inflight);
    const failed = results.filter((r) => r instanceof Error || r.status !== 200);
    process.stderr.write(`# stop under load: ${failed.length} of ${results.length} in-flight requests failed\n`);
    assert.equal(failed.length, 0, String(failed[0]));
    assert.ok(results.every((r) => !(r instanceof Error) && r.headers.connection === 'close'), 'keep-alive clients told to close');
    assert.equal(await proc.exited, 0);
    await assert.rejects(get(`http://127.0.0.1:${port}/`), /ECONNREFUSED/);
  });

  test('cluster-session stop drains and the primary exits 0', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--port', String(port), '--name', 'remote-stop'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const slow = get(`http://127.0.0.1:${port}/slow?ms=600`);
    await sleep(150);
    const r = await runCli(['stop', '--name', 'remote-stop'], s.env);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /stopped/);
    assert.equal((await slow).status, 200);
    assert.equal(await proc.exited, 0);
  });
});

/**
 * The acknowledged handoff: SIGKILL workers while fresh connections keep arriving, and check that no client is
 * left hanging. A connection the primary handed to a worker that died before taking it is re-routed to the next
 * worker (or answered 503 when none is ready); only a request a worker had already taken can be lost, and then
 * the client learns it at once (the connection closes) instead of waiting for its own timeout.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { after, test } from 'node:test';
import { freePort, sleep } from '@cluster-session/testkit';
import { alive, apiPrimary, FIXTURES, get, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const app = path.join(FIXTURES, 'app.ts');

type Outcome = { kind: 'status'; status: number; pid?: number } | { kind: 'closed'; code: string } | { kind: 'hang' };

/** One GET on a fresh connection; a client that waits 2 s without any answer counts as a hang. */
function probe(port: number, localAddress: string, forwardedFor?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const headers = forwardedFor ? { 'x-forwarded-for': forwardedFor } : {};
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent: false, localAddress, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let pid: number | undefined;
        try {
          pid = (JSON.parse(body) as { pid: number }).pid;
        } catch {}
        resolve({ kind: 'status', status: res.statusCode ?? 0, pid });
      });
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'closed', code: err.code ?? err.message }));
    });
    req.setTimeout(2_000, () => {
      req.destroy();
      resolve({ kind: 'hang' });
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'closed', code: err.code ?? err.message }));
  });
}

/**
 * 500 requests from 4 concurrent clients over ~3 s, a SIGKILL of the worker that answered last every 0.5 s.
 * Returns the tally; the caller asserts.
 */
async function killStorm(port: number, clients: string[], forwarded: boolean): Promise<{ ok: number; refused: number; closed: number; hangs: number; other: number; kills: number; codes: string[] }> {
  const tally = { ok: 0, refused: 0, closed: 0, hangs: 0, other: 0, kills: 0, codes: [] as string[] };
  const total = 500;
  const concurrency = 4;
  let sent = 0;
  let lastPid: number | undefined;
  const killed = new Set<number>();
  const started = Date.now();
  let running = true;
  const killer = (async () => {
    while (running) {
      await sleep(500);
      if (running && lastPid !== undefined && !killed.has(lastPid) && alive(lastPid)) {
        killed.add(lastPid);
        process.kill(lastPid, 'SIGKILL');
        tally.kills++;
      }
    }
  })();
  const loop = async (n: number) => {
    while (sent < total && Date.now() - started < 8_000) {
      const i = sent++;
      const at = started + (i * 3_000) / total; // ~170 requests a second in all
      if (at > Date.now()) await sleep(at - Date.now());
      const r = await probe(port, clients[(i + n) % clients.length]!, forwarded ? `10.0.0.${i % 16}` : undefined);
      if (r.kind === 'hang') tally.hangs++;
      else if (r.kind === 'closed') {
        tally.closed++;
        tally.codes.push(r.code);
      }
      else if (r.status === 200) {
        tally.ok++;
        lastPid = r.pid;
      } else if (r.status === 503) tally.refused++;
      else tally.other++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, n) => loop(n)));
  running = false;
  await killer;
  return tally;
}

const clients = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);
const base = { entry: app, workers: 2, control: false, backoff: { initial: 50, max: 100 }, maxRestarts: 1000 };

const modes = {
  sticky: (port: number) => ({ ...base, sticky: { port } }),
  // The primary reads each connection's first request head to key on X-Forwarded-For; re-dealt sockets carry it.
  'sticky behind a proxy': (port: number) => ({ ...base, sticky: { port, trustProxy: true } }),
  rr: (port: number) => ({ ...base, port, schedulingPolicy: 'rr' }),
};

for (const [mode, optionsFor] of Object.entries(modes)) {
  test(`${mode}: SIGKILL a worker every 0.5 s under fresh connections: every client gets an answer, none hangs`, async () => {
    const port = await freePort();
    const primary = apiPrimary(optionsFor(port), s.env);
    after(() => primary.stop('SIGKILL'));
    await primary.waitFor(/2\/2 workers ready/);
    const t = await killStorm(port, clients, mode === 'sticky behind a proxy');
    process.stderr.write(`# ${mode} kill storm: ${JSON.stringify(t)}\n`);
    assert.ok(t.kills >= 3, `workers were killed during the run (${t.kills})`);
    assert.equal(t.hangs, 0, 'no client waited 2 s without an answer');
    assert.equal(t.other, 0, 'answers are 200, or 503 when no worker was ready');
    // Only a request a killed worker had already taken can be lost, and its client learns it at once (a close,
    // not a hang): at most the clients in flight at each kill.
    assert.ok(t.closed <= t.kills * 4, `closed connections (${t.closed}) bounded by kills x concurrency`);
    // Service goes on between the kills: a share of the answered requests, not a count, since how many requests
    // fit in the run's 8 s and how fast a killed worker comes back both depend on the machine's load (quiet: ~490
    // of 500 served; at load average 20+: 143 of 500, the rest honest 503s while no worker was ready). A primary
    // that stopped handing connections to restarted workers would serve next to none.
    const answered = t.ok + t.refused + t.closed;
    assert.ok(t.ok >= answered / 10, `requests served between the kills (${t.ok} of ${answered})`);
    assert.ok(alive(primary.pid), 'the primary stays up');
  });
}

test('rr: with no worker ready a plain HTTP client gets 503 from the primary (not a hang, not a reset)', async () => {
  const port = await freePort();
  const crashFile = path.join(s.dir, 'crash-rr');
  writeFileSync(crashFile, '');
  // The worker listens (so the primary binds PORT for it), then crashes; maxRestarts 0 parks the slot.
  const primary = apiPrimary(
    { entry: app, workers: 1, port, control: false, maxRestarts: 0 },
    { ...s.env, FIXTURE_CRASH_FILE: crashFile, FIXTURE_CRASH_SLOT: '0' },
  );
  after(() => primary.stop('SIGKILL'));
  await primary.waitFor(/PARKED/);
  const r = await get(`http://127.0.0.1:${port}/`);
  assert.equal(r.status, 503);
  assert.equal(r.headers['retry-after'], '1');
  assert.deepEqual(r.json, { error: 'no worker is ready to take this request', code: 'CS_ERR_CLUSTER_NO_WORKER' }, "core's JSON error answer");
  assert.ok(alive(primary.pid));
});

test('rr: connections dealt to a stuck worker go to another one; the stuck worker, once free, declines them', async () => {
  const port = await freePort();
  const primary = apiPrimary({ ...base, port, schedulingPolicy: 'rr' }, s.env);
  after(() => primary.stop('SIGKILL'));
  await primary.waitFor(/2\/2 workers ready/);
  const url = `http://127.0.0.1:${port}/`;
  // One worker's event loop is blocked for 3 s; meanwhile fresh connections keep being dealt to both in turn.
  const blocked = get(`${url}block?ms=3000`);
  await sleep(200);
  const during = await Promise.all(Array.from({ length: 4 }, () => get(url)));
  const stuck = (await blocked).json.pid as number;
  for (const r of during) {
    assert.equal(r.status, 200);
    assert.notEqual(r.json.pid, stuck, 'served by the worker that was free, not by the stuck one after it woke up');
  }
  // The stuck worker serves again once free (it declined the stale sockets rather than serving them twice).
  const pids = new Set<number>();
  for (let i = 0; i < 4; i++) pids.add((await get(url)).json.pid);
  assert.ok(pids.has(stuck));
});

test('rr: a PORT already in use reaches the app as its own EADDRINUSE, and the start fails naming it', async () => {
  const port = await freePort();
  const squatter = net.createServer().listen(port, '127.0.0.1');
  await once(squatter, 'listening');
  after(() => squatter.close());
  const r = await runCli(['start', app, '-i', '1', '--port', String(port), '--name', 'in-use'], s.env);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /code: 'EADDRINUSE'/, 'the app saw the failed bind as a normal server error');
  assert.match(r.out, /no worker became ready.*CS_ERR_CLUSTER_START/);
});

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { freePort, sleep, testCA, until } from '@cluster-session/testkit';
import { clientFromForwarded } from '../src/sticky.ts';
import { alive, apiPrimary, cli, FIXTURES, get, load, runCli, scratch } from './helpers.ts';

const s = scratch();
after(() => s.cleanup());
const app = path.join(FIXTURES, 'app.ts');
const clients = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 2}`);

async function status(name: string): Promise<Array<{ slot: number; pid: number; state: string }>> {
  const r = await runCli(['status', '--json', '--name', name], s.env);
  assert.equal(r.code, 0, r.out);
  return JSON.parse(r.out);
}

describe('sticky mode', () => {
  test('each client address keeps its worker; a restarted worker takes back only its own clients', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--sticky', '--port', String(port), '--name', 'sticky'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready \(sticky on port \d+\)/);

    const owner = new Map<string, { pid: number; slot: string }>();
    for (const addr of clients) {
      const seen = new Set<number>();
      for (let i = 0; i < 3; i++) {
        const r = await get(`http://127.0.0.1:${port}/`, { localAddress: addr });
        assert.equal(r.status, 200);
        assert.equal(r.json.sticky, '1');
        seen.add(r.json.pid);
        owner.set(addr, { pid: r.json.pid, slot: r.json.slot });
      }
      assert.equal(seen.size, 1, `${addr} stayed on one worker over 3 connections`);
    }
    const slots = new Set([...owner.values()].map((o) => o.slot));
    assert.equal(slots.size, 2, 'clients spread over both workers');

    const victim = (await status('sticky'))[0]!.pid;
    process.kill(victim, 'SIGKILL');
    await proc.waitFor(new RegExp(`slot 0 \\(pid ${victim}\\) killed by SIGKILL`));
    // While slot 0 restarts its clients fall over to slot 1; slot 1's clients never move.
    const replacement = await until('slot 0 restarted', async () => {
      const row = (await status('sticky'))[0]!;
      return row.state === 'ready' && row.pid !== victim ? row.pid : undefined;
    }, 10_000);
    assert.notEqual(replacement, victim);
    for (const addr of clients) {
      const r = await get(`http://127.0.0.1:${port}/`, { localAddress: addr });
      const was = owner.get(addr)!;
      if (was.slot === '1') assert.equal(r.json.pid, was.pid, `${addr} (slot 1) did not move`);
      else assert.equal(r.json.pid, replacement, `${addr} went back to slot 0's new worker`);
    }
  });

  test('a reload in sticky mode under keep-alive load fails no request', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--sticky', '--port', String(port), '--name', 'sticky-reload'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const { result } = load(`http://127.0.0.1:${port}/`, { connections: 10, seconds: 4, rate: 1000 });
    await sleep(1000);
    const reload = await runCli(['reload', '--name', 'sticky-reload'], s.env);
    assert.equal(reload.code, 0, reload.out);
    const r = await result;
    process.stderr.write(`# sticky reload under load: ${JSON.stringify(r)}\n`);
    assert.ok(r.total > 500);
    assert.deepEqual([r.errors, r.timeouts, r.non2xx], [0, 0, 0]);
  });

  test('behind a trusted proxy the key is X-Forwarded-For of the first request; a spoofed leftmost entry is ignored', async () => {
    const port = await freePort();
    const proc = cli(['start', app, '-i', '2', '--sticky', '--trust-proxy', '--port', String(port), '--name', 'proxied'], s.env);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/2\/2 workers ready/);
    const slotsSeen = new Set<string>();
    for (let n = 1; n <= 12; n++) {
      const client = `10.0.0.${n}`;
      const a = await get(`http://127.0.0.1:${port}/`, { headers: { 'x-forwarded-for': client } });
      const b = await get(`http://127.0.0.1:${port}/`, { headers: { 'x-forwarded-for': `203.0.113.66, ${client}` } });
      assert.equal(a.status, 200);
      assert.equal(a.json.forwarded, client, 'the worker still sees the request untouched');
      assert.equal(b.json.pid, a.json.pid, `${client}: same worker whatever the client claims on the left`);
      slotsSeen.add(a.json.slot);
    }
    assert.equal(slotsSeen.size, 2, 'forwarded clients spread over both workers although all come from 127.0.0.1');
  });

  test('with no worker ready a plain HTTP client gets 503 from the primary (not a hang), and the primary stays up', async () => {
    const port = await freePort();
    const crashFile = path.join(s.dir, 'crash-sticky');
    writeFileSync(crashFile, '');
    const primary = apiPrimary(
      { entry: app, workers: 1, name: 'sticky-empty', sticky: { port, trustProxy: true }, maxRestarts: 0 },
      { ...s.env, FIXTURE_CRASH_FILE: crashFile, FIXTURE_CRASH_SLOT: '0' },
    );
    after(() => primary.stop('SIGKILL'));
    await primary.waitFor(/PARKED/);
    const r = await get(`http://127.0.0.1:${port}/`, { headers: { 'x-forwarded-for': '10.9.9.9' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.deepEqual(r.json, { error: 'no worker is ready to take this request', code: 'CS_ERR_CLUSTER_NO_WORKER' }, "core's JSON error answer");
    assert.ok(alive(primary.pid));
  });

  test('clientFromForwarded trusts only the listed proxies', () => {
    const head = 'GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.7, 10.1.1.1\r\n\r\n';
    assert.equal(clientFromForwarded(head, '10.0.0.9', ['10.0.0.9']), '10.1.1.1');
    assert.equal(clientFromForwarded(head, '10.0.0.9', ['10.0.0.9', '10.1.1.1']), '198.51.100.7');
    assert.equal(clientFromForwarded(head, '192.0.2.1', ['10.0.0.9']), '192.0.2.1', 'an untrusted peer is its own key');
    assert.equal(clientFromForwarded('GET / HTTP/1.1\r\n\r\n', '10.0.0.9', true), '10.0.0.9');
  });

  describe('HTTPS', () => {
    let key = '';
    let cert = '';
    before(() => {
      ({ key, cert } = testCA(path.join(s.dir, 'ca')).issue('server', ['127.0.0.1', 'localhost']));
    });

    test('an https server works in sticky mode: TLS is handed to the worker untouched, clients stay put', async () => {
      const port = await freePort();
      const proc = cli(['start', app, '-i', '2', '--sticky', '--port', String(port), '--name', 'tls'], { ...s.env, FIXTURE_TLS_KEY: key, FIXTURE_TLS_CERT: cert });
      after(() => proc.stop('SIGKILL'));
      await proc.waitFor(/2\/2 workers ready/);
      const fetchTls = (localAddress: string) =>
        new Promise<{ status: number; json: any; encrypted: boolean }>((resolve, reject) => {
          const req = https.get(`https://127.0.0.1:${port}/`, { rejectUnauthorized: false, agent: false, localAddress }, (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(body), encrypted: Boolean((res.socket as { encrypted?: boolean }).encrypted) }));
          });
          req.on('error', reject);
        });
      for (const addr of clients.slice(0, 4)) {
        const a = await fetchTls(addr);
        const b = await fetchTls(addr);
        assert.equal(a.status, 200);
        assert.equal(a.encrypted, true);
        assert.equal(a.json.pid, b.json.pid);
      }
    });
  });
});

// `cluster-session balance --config FILE` and SIGHUP: the real binary, real instances, a real load while the
// file changes under it. The figure that matters: 0 failed requests across every reload.
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { freePort, request, sleep, startNode, steadyLoad } from '@cluster-session/testkit';

const BIN = new URL('../bin/cluster-session.js', import.meta.url).pathname;
const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-balance-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Inst {
  name: string;
  url: string;
  hits: number;
  close(): Promise<void>;
}

/** An instance that answers after a few ms, so requests are in flight while upstreams come and go. */
async function instance(name: string): Promise<Inst> {
  const inst = { name, url: '', hits: 0, close: async () => {} } as Inst;
  const server = http.createServer((req, res) => {
    if (req.url !== '/healthz') inst.hits++;
    setTimeout(() => res.end(JSON.stringify({ instance: name })), 5);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  inst.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  inst.close = () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); });
  return inst;
}

describe('balance --config and SIGHUP', () => {
  test('SIGHUP under load: upstreams added and removed, strategy changed, an invalid file refused; 0 failed', async () => {
    const [a, b, c] = await Promise.all([instance('a'), instance('b'), instance('c')]);
    after(() => Promise.all([a.close(), b.close(), c.close()]));
    const [port, admin] = await Promise.all([freePort(), freePort()]);
    const file = path.join(dir, 'balancer.yaml');
    const config = (ups: Inst[], strategy: string) =>
      stringify({ listen: port, admin, strategy, health: { path: '/healthz', interval: 200 }, limits: { connections: 500 }, upstreams: ups.map((u) => ({ id: u.name, url: u.url })) });
    writeFileSync(file, config([a, b], 'round-robin'));
    const proc = startNode([BIN, 'balance', '--config', file]);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/balancer listening on .*\(round-robin, 2 instances\)/);
    const base = `http://127.0.0.1:${port}`;

    const load = steadyLoad(`${base}/`, 8);
    await sleep(700);
    // Add c, take a out, change the strategy.
    writeFileSync(file, config([b, c], 'least-conn'));
    proc.child.kill('SIGHUP');
    await proc.waitFor(/reconfigured: added c; removing a \(draining\); options strategy/);
    await proc.waitFor(/instance a .* removed \(drained\)/);
    const aAfterRemoval = a.hits;
    await sleep(700);
    // An invalid file: one line, nothing changes.
    writeFileSync(file, config([b, c], 'fastest'));
    proc.child.kill('SIGHUP');
    await proc.waitFor(/SIGHUP: .*balancer\.yaml refused, the running configuration stays: .*strategy.*"fastest"/);
    // A file that does not parse: refused the same way.
    writeFileSync(file, 'listen: [unclosed');
    proc.child.kill('SIGHUP');
    await proc.waitFor(/refused, the running configuration stays: --config .* not valid YAML/);
    // listen cannot move under running clients.
    writeFileSync(file, config([b, c], 'least-conn').replace(`listen: ${port}`, `listen: ${port === 65535 ? port - 1 : port + 1}`));
    proc.child.kill('SIGHUP');
    await proc.waitFor(/refused, the running configuration stays: option listen cannot change while the balancer runs/);
    await sleep(500);
    const { ok, failures } = await load.stop();

    assert.deepEqual(failures, [], `${failures.length} failed of ${ok + failures.length}`);
    assert.ok(ok > 100, `${ok} requests`);
    assert.ok(c.hits > 0, 'the added instance took traffic');
    assert.equal(a.hits, aAfterRemoval, 'the removed one got nothing after its drain');
    const status = JSON.parse((await request(`http://127.0.0.1:${admin}/status.json`)).body);
    assert.equal(status.strategy, 'least-conn');
    assert.deepEqual(status.upstreams.map((u: { id: string }) => u.id), ['b', 'c']);
    // Exactly one line per refused reload.
    assert.equal(proc.output().match(/refused, the running configuration stays/g)?.length, 3);
    assert.equal(await proc.stop('SIGTERM'), 0);
    console.log(`SIGHUP under load: ${ok} requests, ${failures.length} failed`);
  });

  test('SIGHUP without --config does not stop the balancer', async () => {
    const a = await instance('a');
    after(() => a.close());
    const port = await freePort();
    const proc = startNode([BIN, 'balance', '--listen', String(port), '--upstream', a.url, '--no-health']);
    after(() => proc.stop('SIGKILL'));
    await proc.waitFor(/balancer listening/);
    proc.child.kill('SIGHUP');
    await proc.waitFor(/SIGHUP: nothing to reload \(no --config\)/);
    assert.equal((await request(`http://127.0.0.1:${port}/`)).status, 200);
    assert.equal(await proc.stop('SIGTERM'), 0);
  });

  test('a bad --config at start: exit 2, one line naming the file or the option', async () => {
    const missing = startNode([BIN, 'balance', '--config', path.join(dir, 'nope.yaml')]);
    assert.equal(await missing.exited, 2);
    assert.match(missing.output(), /^cluster-session balance: --config .*nope\.yaml: cannot read it \(ENOENT\)/);
    const file = path.join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify({ listen: 0, upstreams: ['http://127.0.0.1:1'], strategy: 'fastest' }));
    const bad = startNode([BIN, 'balance', '--config', file]);
    assert.equal(await bad.exited, 2);
    assert.match(bad.output(), /option strategy is "fastest": expected round-robin \| least-conn \| ip-hash \| cookie/);
    writeFileSync(file, '[1, 2]');
    const list = startNode([BIN, 'balance', '--config', file]);
    assert.equal(await list.exited, 2);
    assert.match(list.output(), /expected an object of options at the top \(got a list\)/);
  });
});

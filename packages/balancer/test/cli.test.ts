import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { freePort, request, startNode, waitForPort } from '@cluster-session/testkit';
import { instances } from './helpers.ts';

const cli = new URL('./fixtures/cli.ts', import.meta.url).pathname;

async function run(args: string[]): Promise<{ code: number | string; out: string }> {
  const proc = startNode([cli, ...args]);
  const code = await proc.exited;
  return { code, out: proc.output() };
}

describe('CLI', () => {
  test('balance: serves, shows the status page, and stops cleanly on SIGTERM', async () => {
    const [a, b] = await instances('a', 'b');
    const [port, admin] = [await freePort(), await freePort()];
    const proc = startNode([cli, 'balance', '--listen', String(port), '--upstream', a.url, '--upstream', `${b.url}#2`, '--strategy', 'least-conn', '--admin', `127.0.0.1:${admin}`]);
    try {
      await proc.waitFor(/balancer listening on http:\/\/127\.0\.0\.1:\d+ \(least-conn, 2 instances\), status page/);
      await waitForPort(port);
      const r = await request(`http://127.0.0.1:${port}/whoami`);
      assert.equal(r.status, 200);
      const s = (await request(`http://127.0.0.1:${admin}/status.json`)).json;
      assert.deepEqual(s.upstreams.map((u: { weight: number }) => u.weight), [1, 2]);
      assert.equal(await proc.stop('SIGTERM'), 0);
    } finally {
      await proc.stop('SIGKILL');
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('export prints a config', async () => {
    const { code, out } = await run(['export', 'haproxy', '--upstream', 'http://127.0.0.1:4001', '--strategy', 'cookie', '--listen', '8081']);
    assert.equal(code, 0);
    assert.match(out, /bind 127\.0\.0\.1:8081/);
    assert.match(out, /cookie CSLB insert indirect nocache/);
  });

  test('--help on both commands', async () => {
    for (const command of ['balance', 'export']) {
      const { code, out } = await run([command, '--help']);
      assert.equal(code, 0);
      assert.match(out, new RegExp(`usage: cluster-session ${command}`));
    }
  });

  for (const [args, reason] of [
    [['balance', '--listen', '3000'], /at least one --upstream URL is required/],
    [['balance', '--upstream', 'http://127.0.0.1:1'], /--listen PORT is required/],
    [['balance', '--listen', 'abc', '--upstream', 'http://127.0.0.1:1'], /--listen "abc" is not a port/],
    [['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--strategy', 'random'], /--strategy "random" is not one of/],
    [['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--bogus'], /Unknown option '--bogus'/],
    [['balance', '--listen', '0', '--upstream', 'not a url'], /upstreams\[0\]\.url = "not a url" is invalid/],
    [['export', 'apache', '--upstream', 'http://127.0.0.1:1'], /nginx or haproxy \(got apache\)/],
  ] as const) {
    test(`${args.join(' ')} → exit 2 with one line`, async () => {
      const { code, out } = await run([...args]);
      assert.equal(code, 2);
      assert.match(out, reason);
      assert.equal(out.trim().split('\n').length, 1, out);
    });
  }
});

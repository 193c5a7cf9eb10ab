// The cluster-session binary as users run it: a real child process per command; exit codes, one-line errors,
// help, --version, and the balance/export commands end to end. (The cluster's own suites drive start, reload,
// status and stop through this binary too.)
import assert from 'node:assert/strict';
import http from 'node:http';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import tls from 'node:tls';
import { Agent, fetch } from 'undici';
import { freePort, request, startNode, testCA, waitForPort } from '@cluster-session/testkit';

const BIN = new URL('../bin/cluster-session.js', import.meta.url).pathname;
const APP = new URL('../../cluster/test/fixtures/app.ts', import.meta.url).pathname;
const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-cli-test-'));
const env = { ...process.env, CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'run') };
after(() => rmSync(dir, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ code: number | string; out: string }> {
  const proc = startNode([BIN, ...args], { env });
  const code = await proc.exited;
  return { code, out: proc.output() };
}

/** A plain instance for the balancer to send to: /whoami names it, /healthz is 200. */
/**
 * A test CA and a certificate at fixed paths (`live`) the balancer is started with: `first` now, `second` once
 * renew() copies it over them (a renewal, for SIGHUP to pick up).
 */
function renewable(name: string) {
  const ca = testCA(path.join(dir, name));
  const first = ca.issue('first', ['localhost', '127.0.0.1']);
  const second = ca.issue('second', ['localhost', '127.0.0.1']);
  const live = { cert: path.join(dir, name, 'live.pem'), key: path.join(dir, name, 'live.key') };
  const put = (c: { cert: string; key: string }) => {
    copyFileSync(c.cert, live.cert);
    copyFileSync(c.key, live.key);
  };
  put(first);
  return { ca, first, second, live, renew: () => put(second) };
}

/** The certificate fingerprint each of `n` new TLS connections to 127.0.0.1:port gets. */
function fingerprints(port: number, ca: string, n: number): Promise<string[]> {
  const one = () =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca }, () => {
        resolve(s.getPeerCertificate().fingerprint256);
        s.end();
      });
      s.on('error', reject);
    });
  return Promise.all(Array.from({ length: n }, one));
}

async function instance(name: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => res.end(JSON.stringify({ instance: name, path: req.url })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('help and version', () => {
  test('--help of the binary and of every command, in one style, exit 0', async () => {
    for (const args of [['--help'], ['start', '--help'], ['reload', '--help'], ['scale', '--help'], ['status', '--help'], ['stop', '--help'], ['balance', '--help'], ['export', '--help']]) {
      const { code, out } = await run(args);
      assert.equal(code, 0, args.join(' '));
      const command = args.length === 2 ? ` ${args[0]}` : '';
      assert.match(out, new RegExp(`^Usage: cluster-session${command} `), args.join(' '));
      assert.match(out, /\nOptions:\n/, `${args.join(' ')}: an Options section`);
      assert.match(out, /-h, --help/);
    }
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'))) as { version: string };
    for (const flag of ['--version', '-v']) {
      const { code, out } = await run([flag]);
      assert.equal(code, 0);
      assert.equal(out.trim(), `cluster-session ${version}`);
    }
  });
});

describe('usage and configuration errors: exit 2, one line, naming the fix', () => {
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /^cluster-session: unknown command "frobnicate"; commands: start, reload/],
    [['stauts'], /unknown command "stauts"; did you mean status\?/],
    [['start', APP, '--bogus'], /^cluster-session start: unknown flag --bogus \(see 'cluster-session start --help'\)$/],
    [['start', APP, '--instnaces', '2'], /unknown flag --instnaces; did you mean --instances\?/],
    [['status', '--nme', 'x'], /^cluster-session status: unknown flag --nme; did you mean --name\?/],
    [['start', APP, '-i', 'lots'], /-i "lots" is not a positive integer or 'max'/],
    [['start', APP, '--restart-delay', 'soon'], /--restart-delay "soon" is not a whole number/],
    [['start', APP, '--stable-after', '-5'], /--stable-after/],
    [['start', APP, '--policy', 'random'], /--policy "random" is not one of rr, os/],
    [['start', APP, '--max-memory', 'huge'], /^cluster-session start: option maxMemory is "huge": expected bytes or a size like '512M'.* \[CS_ERR_CLUSTER_CONFIG\]$/],
    [['start', APP, '-i', '2000'], /option workers \(or env WORKERS\) is 2000: expected a positive integer \(at most 1024\).*\[CS_ERR_CLUSTER_CONFIG\]/],
    [['start', '/nope/server.js'], /no file at \/nope\/server\.js/],
    [['balance', '--listen', '3000'], /at least one --upstream URL is required/],
    [['balance', '--upstream', 'http://127.0.0.1:1'], /--listen PORT is required/],
    [['balance', '--listen', 'abc', '--upstream', 'http://127.0.0.1:1'], /--listen "abc" is not a port/],
    [['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--strategy', 'cokie'], /--strategy "cokie" is not one of round-robin, least-conn, ip-hash, cookie; did you mean cookie\?/],
    [['balance', '--listen', '0', '--upstream', 'not a url'], /option upstreams\[0\]\.url is "not a url".*\[CS_ERR_BALANCER_CONFIG\]/],
    [['export', 'caddy', '--upstream', 'http://127.0.0.1:1'], /nginx, haproxy, apache or systemd \(got caddy\)/],
  ];
  for (const [args, reason] of cases) {
    test(args.join(' '), async () => {
      const { code, out } = await run(args);
      assert.equal(code, 2, out);
      assert.equal(out.trim().split('\n').length, 1, out);
      assert.match(out.trim(), reason);
    });
  }
});

describe('runtime failures: exit 1', () => {
  test('no cluster of that name', async () => {
    const { code, out } = await run(['status', '--name', 'nobody']);
    assert.equal(code, 1);
    assert.match(out, /^cluster-session status: no cluster is running at .* \[CS_ERR_CLUSTER_NOT_RUNNING\]\n$/);
  });

  test('no cluster at all', async () => {
    const { code, out } = await run(['reload']);
    assert.equal(code, 1);
    assert.match(out, /no cluster is running \(no control socket in .*\) \[CS_ERR_CLUSTER_NOT_RUNNING\]/);
  });

  test('a balancer port already taken', async () => {
    const busy = http.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    try {
      const { code, out } = await run(['balance', '--listen', String((busy.address() as AddressInfo).port), '--upstream', 'http://127.0.0.1:1']);
      assert.equal(code, 1, out);
      assert.match(out, /^cluster-session balance: balancer option listen = 127\.0\.0\.1:\d+ cannot be bound \(EADDRINUSE\).*\[CS_ERR_BALANCER_LISTEN\]\n$/, 'one line');
    } finally {
      busy.close();
    }
  });
});

describe('several clusters', () => {
  test('status with no name lists each; reload and stop name the choices; a stale socket is listed', { timeout: 90_000 }, async () => {
    const own = { ...env, CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'several') };
    const run2 = async (args: string[]) => {
      const proc = startNode([BIN, ...args], { env: own });
      return { code: await proc.exited, out: proc.output() };
    };
    const [pa, pb] = await Promise.all([freePort(), freePort()]);
    const a = startNode([BIN, 'start', APP, '-i', '1', '--port', String(pa), '--name', 'shop-a'], { env: own });
    const b = startNode([BIN, 'start', APP, '-i', '2', '--port', String(pb), '--name', 'shop-b'], { env: own });
    try {
      await Promise.all([a.waitFor(/1\/1 workers ready/), b.waitFor(/2\/2 workers ready/)]);
      const listed = await run2(['status']);
      assert.equal(listed.code, 0, listed.out);
      assert.match(listed.out, /^2 clusters \(cluster-session status --name NAME for one\):\n\ncluster shop-a: 1\/1 workers ready\nslot +pid/);
      assert.match(listed.out, /\n\ncluster shop-b: 2\/2 workers ready\nslot +pid[^\n]*\n0 +\d+ +ready[^\n]*\n1 +\d+ +ready/);
      const json = JSON.parse((await run2(['status', '--json'])).out) as { clusters: Array<{ name: string; slots: unknown[] }> };
      assert.deepEqual(json.clusters.map((c) => [c.name, c.slots.length]), [['shop-a', 1], ['shop-b', 2]]);
      for (const command of ['reload', 'stop']) {
        const r = await run2([command]);
        assert.equal(r.code, 2, command);
        assert.match(r.out, new RegExp(`^cluster-session ${command}: several clusters run: shop-a, shop-b; pass one with --name, e.g. cluster-session ${command} --name shop-a`));
      }
      // A primary killed with SIGKILL leaves its socket: listed as not answering, the others still shown.
      await a.stop('SIGKILL');
      const stale = await run2(['status']);
      assert.equal(stale.code, 0, stale.out);
      assert.match(stale.out, /cluster shop-a: not answering \(/);
      assert.match(stale.out, /cluster shop-b: 2\/2 workers ready/);
    } finally {
      await Promise.all([a.stop('SIGKILL'), b.stop('SIGTERM')]);
    }
  });
});

describe('balance and export', () => {
  test('balance: serves, shows the status page, and stops cleanly on SIGTERM', async () => {
    const [a, b] = await Promise.all([instance('a'), instance('b')]);
    const [port, admin] = [await freePort(), await freePort()];
    const proc = startNode([BIN, 'balance', '--listen', String(port), '--upstream', a.url, '--upstream', `${b.url}#2`, '--strategy', 'least-conn', '--admin', `127.0.0.1:${admin}`], { env });
    try {
      await proc.waitFor(/balancer listening on http:\/\/127\.0\.0\.1:\d+ \(least-conn, 2 instances\), status page/);
      await waitForPort(port);
      const r = await request(`http://127.0.0.1:${port}/whoami`);
      assert.equal(r.status, 200);
      assert.match(r.json.instance, /^[ab]$/);
      const s = (await request(`http://127.0.0.1:${admin}/status.json`)).json;
      assert.deepEqual(s.upstreams.map((u: { weight: number }) => u.weight), [1, 2]);
      assert.equal(await proc.stop('SIGTERM'), 0);
    } finally {
      await proc.stop('SIGKILL');
      await Promise.all([a.close(), b.close()]);
    }
  });

  test('balance over TLS: HTTPS with the CA, 308 from the plain port, SIGHUP reloads the certificate, a missing key names the flag', async () => {
    const { ca, first, second, live, renew } = renewable('tls');
    const missing = await run(['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--tls-cert', live.cert, '--tls-key', path.join(dir, 'none.key')]);
    assert.equal(missing.code, 2, missing.out);
    assert.match(missing.out, /^cluster-session balance: .*option tls\.certs\[0\]\.key \(--tls-key\) is ".*none\.key": expected a readable PEM private key file \(ENOENT\).*\[CS_ERR_BALANCER_CONFIG\]\n$/);
    const unpaired = await run(['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--tls-cert', live.cert]);
    assert.match(unpaired.out, /1 --tls-cert for 0 --tls-key: give them in pairs/);

    const a = await instance('a');
    const [port, plain] = [await freePort(), await freePort()];
    const proc = startNode([BIN, 'balance', '--listen', String(port), '--upstream', a.url, '--tls-cert', live.cert, '--tls-key', live.key, '--redirect-http', String(plain), '--hsts', '600'], { env });
    try {
      await proc.waitFor(/balancer listening on https:\/\/127\.0\.0\.1:\d+ \(round-robin, 1 instances\), redirecting http:\/\/127\.0\.0\.1:\d+ to HTTPS/);
      const agent = new Agent({ connect: { ca: ca.pem } });
      const r = await fetch(`https://127.0.0.1:${port}/whoami`, { dispatcher: agent });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('strict-transport-security'), 'max-age=600');
      await agent.close();
      const redirect = await request(`http://127.0.0.1:${plain}/p?q`, { headers: { host: `127.0.0.1:${plain}` } });
      assert.equal(redirect.status, 308);
      assert.equal(redirect.headers.location, `https://127.0.0.1:${port}/p?q`);
      assert.deepEqual(await fingerprints(port, ca.pem, 1), [first.fingerprint]);
      renew();
      process.kill(proc.pid, 'SIGHUP');
      await proc.waitFor(/TLS certificates reloaded/);
      assert.deepEqual(await fingerprints(port, ca.pem, 1), [second.fingerprint]);
      assert.equal(await proc.stop('SIGTERM'), 0);
    } finally {
      await proc.stop('SIGKILL');
      await a.close();
    }
  });

  test('balance --workers 2 over TLS: both threads serve HTTPS, SIGHUP reloads the certificate in each, SIGTERM exits 0', async () => {
    const { ca, first, second, live, renew } = renewable('tls-workers');
    const bad = await run(['balance', '--listen', '0', '--upstream', 'http://127.0.0.1:1', '--workers', '0']);
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, /--workers/);
    const a = await instance('a');
    const [port, admin] = [await freePort(), await freePort()];
    const proc = startNode([BIN, 'balance', '--listen', String(port), '--upstream', a.url, '--workers', '2', '--admin', String(admin), '--tls-cert', live.cert, '--tls-key', live.key], { env });
    try {
      await proc.waitFor(/balancer listening on https:\/\/127\.0\.0\.1:\d+ \(round-robin, 1 instances, 2 worker threads\), status page/);
      const agent = new Agent({ connect: { ca: ca.pem }, pipelining: 0 });
      for (let i = 0; i < 20; i++) {
        const r = await fetch(`https://127.0.0.1:${port}/whoami`, { dispatcher: agent, headers: { connection: 'close' } });
        assert.equal(r.status, 200);
        await r.text();
      }
      await agent.close();
      const s = (await request(`http://127.0.0.1:${admin}/status.json`)).json as { totals: { requests: number }; threads: Array<{ connections: number }> };
      assert.equal(s.totals.requests, 20);
      assert.equal(s.threads.length, 2);
      assert.ok(s.threads.every((t) => t.connections > 0), JSON.stringify(s.threads));
      assert.deepEqual(new Set(await fingerprints(port, ca.pem, 20)), new Set([first.fingerprint]));
      renew();
      process.kill(proc.pid, 'SIGHUP');
      await Promise.all([proc.waitFor(/worker 0: TLS certificates reloaded/), proc.waitFor(/worker 1: TLS certificates reloaded/)]);
      // New handshakes on either thread get the new certificate.
      assert.deepEqual(new Set(await fingerprints(port, ca.pem, 20)), new Set([second.fingerprint]));
      assert.equal(await proc.stop('SIGTERM'), 0);
    } finally {
      await proc.stop('SIGKILL');
      await a.close();
    }
  });

  test('export with the edge flags: TLS, HSTS, redirect, rate limit, gzip and cache in the file', async () => {
    const ca = testCA(path.join(dir, 'tls-export'));
    const c = ca.issue('site', ['localhost']);
    const { code, out } = await run(['export', 'nginx', '--upstream', 'http://127.0.0.1:4001', '--listen', '8443', '--tls-cert', c.cert, '--tls-key', c.key, '--hsts', '600', '--redirect-http', '8080', '--rate-limit', '20/s', '--burst', '40', '--compress', '--cache']);
    assert.equal(code, 0, out);
    for (const line of [/listen 127\.0\.0\.1:8443 ssl;/, /max-age=600/, /return 308 https:\/\/\$host:8443\$request_uri;/, /limit_req zone=cs_rate burst=40 nodelay;/, /gzip on;/, /proxy_cache cs_static;/]) assert.match(out, line);
    const bad = await run(['export', 'nginx', '--upstream', 'http://127.0.0.1:4001', '--rate-limit', 'lots']);
    assert.equal(bad.code, 2);
    assert.match(bad.out, /--rate-limit "lots" is not a rate like 50\/s or 600\/m/);
  });

  test('export prints a config', async () => {
    const { code, out } = await run(['export', 'haproxy', '--upstream', 'http://127.0.0.1:4001', '--strategy', 'cookie', '--listen', '8081']);
    assert.equal(code, 0);
    assert.match(out, /bind 127\.0\.0\.1:8081/);
    assert.match(out, /cookie CSLB insert indirect nocache/);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { exportConfig, STRATEGIES } from '@cluster-session/balancer';
import { freePort, needs, request, startProcess, until, waitForPort } from '@cluster-session/testkit';
import { instances, type Instance } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-export-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function check(target: 'nginx' | 'haproxy' | 'apache', file: string): string {
  const cmd =
    target === 'nginx' ? ['nginx', ['-t', '-c', file, '-p', dir]] : target === 'haproxy' ? ['haproxy', ['-c', '-f', file]] : ['apache2ctl', ['-t', '-f', file, '-d', dir]];
  return execFileSync(cmd[0] as string, cmd[1] as string[], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

describe('export', () => {
  const upstreams = ['http://127.0.0.1:4001', { url: 'http://127.0.0.1:4002', weight: 3, id: 'second' }];

  for (const target of ['nginx', 'haproxy'] as const) {
    for (const strategy of STRATEGIES) {
      test(`${target} / ${strategy}: accepted by the real ${target} binary`, { skip: needs(target) }, () => {
        const text = exportConfig(target, { upstreams, strategy, listen: 3000 });
        const file = path.join(dir, `${target}-${strategy}.conf`);
        writeFileSync(file, text);
        check(target, file); // throws with the binary's complaint on a bad config
        assert.match(text, /127\.0\.0\.1:4001/);
        assert.match(text, target === 'nginx' ? /127\.0\.0\.1:4002 weight=3/ : /server second 127\.0\.0\.1:4002 weight 3/);
        const method = {
          nginx: { 'round-robin': /default \(smooth weighted round robin/, 'least-conn': /least_conn;/, 'ip-hash': /hash \$remote_addr consistent;/, cookie: /hash \$cs_sticky_key consistent;/ },
          haproxy: { 'round-robin': /balance roundrobin/, 'least-conn': /balance leastconn/, 'ip-hash': /balance source\n\s+hash-type consistent/, cookie: /cookie CSLB insert indirect nocache/ },
        }[target][strategy];
        assert.match(text, method);
        if (target === 'nginx' && strategy === 'cookie') assert.match(text, /only from 1\.29\.6/, 'says why there is no sticky directive');
        if (target === 'haproxy') assert.match(text, /option httpchk\n\s+http-check send meth GET uri \/healthz/);
      });
    }
  }

  test("reuse 'client' becomes HAProxy http-reuse never and nginx without a keepalive pool; retryOn maps to both; accepted by both binaries", { skip: needs('nginx', 'haproxy') }, () => {
    for (const target of ['nginx', 'haproxy'] as const) {
      for (const reuse of ['shared', 'client'] as const) {
        const text = exportConfig(target, { upstreams, reuse, retryOn: [502, 503] });
        const file = path.join(dir, `${target}-reuse-${reuse}.conf`);
        writeFileSync(file, text);
        check(target, file);
        if (target === 'haproxy') {
          assert.equal(/http-reuse never/.test(text), reuse === 'client');
          assert.match(text, /retry-on conn-failure empty-response response-timeout 502 503\n/);
        } else {
          assert.equal(/^\s+keepalive \d+;/m.test(text), reuse === 'shared');
          assert.match(text, /proxy_next_upstream error timeout http_502 http_503;/);
        }
      }
    }
  });

  test('workers becomes nginx worker_processes and HAProxy nbthread (auto / the default without it), accepted by both binaries', { skip: needs('nginx', 'haproxy') }, () => {
    for (const workers of [undefined, 3]) {
      const nginx = exportConfig('nginx', { upstreams: ['http://127.0.0.1:4001'], ...(workers ? { workers } : {}) });
      const haproxy = exportConfig('haproxy', { upstreams: ['http://127.0.0.1:4001'], ...(workers ? { workers } : {}) });
      assert.match(nginx, workers ? /^worker_processes 3;$/m : /^worker_processes auto;$/m);
      assert.equal(/^\s+nbthread 3$/m.test(haproxy), workers === 3);
      for (const [target, text] of [['nginx', nginx], ['haproxy', haproxy]] as const) {
        const file = path.join(dir, `${target}-workers-${workers ?? 'default'}.conf`);
        writeFileSync(file, text);
        check(target, file);
      }
    }
  });

  test('limits.perUpstream becomes max_conns (nginx) and maxconn (HAProxy), accepted by both binaries', { skip: needs('nginx', 'haproxy') }, () => {
    for (const target of ['nginx', 'haproxy'] as const) {
      const text = exportConfig(target, { upstreams, limits: { perUpstream: 50 } });
      const file = path.join(dir, `${target}-cap.conf`);
      writeFileSync(file, text);
      check(target, file);
      assert.match(text, target === 'nginx' ? /max_conns=50;/ : / maxconn 50 /);
    }
  });

  test('limits.perClient becomes nginx limit_conn and an HAProxy conn_cur stick table (429 beyond), absent when 0', { skip: needs('nginx', 'haproxy') }, () => {
    for (const target of ['nginx', 'haproxy'] as const) {
      const text = exportConfig(target, { upstreams, limits: { perClient: 7 } });
      const file = path.join(dir, `${target}-per-client.conf`);
      writeFileSync(file, text);
      check(target, file);
      assert.match(text, target === 'nginx' ? /limit_conn cs_per_client 7;\n\s+limit_conn_status 429;/ : /http-request deny deny_status 429 if \{ sc_conn_cur\(0\) gt 7 \}/);
      assert.doesNotMatch(exportConfig(target, { upstreams, trustProxy: true }), /limit_conn|conn_cur/, 'no default cap behind a trusted proxy');
    }
  });

  describe('the exported per-client cap really answers 429 (nginx and HAProxy running)', { skip: needs('nginx', 'haproxy') }, () => {
    let a: Instance;
    before(async () => ([a] = await instances('a')));
    after(() => a.close());

    for (const target of ['nginx', 'haproxy'] as const) {
      test(target, async () => {
        const port = await freePort();
        const file = path.join(dir, `${target}-per-client-run.conf`);
        writeFileSync(file, exportConfig(target, { upstreams: [a.url], listen: port, health: false, limits: { perClient: 2 } }));
        const proc = target === 'nginx' ? startProcess('nginx', ['-c', file, '-p', dir, '-g', 'daemon off;']) : startProcess('haproxy', ['-f', file]);
        try {
          await waitForPort(port);
          // Two slow requests hold two connections (nginx counts connections with a request in progress).
          const slow = [0, 1].map(() => request(`http://127.0.0.1:${port}/slow?ms=1500`));
          await new Promise((r) => setTimeout(r, 500));
          assert.equal((await request(`http://127.0.0.1:${port}/whoami`)).status, 429);
          assert.deepEqual((await Promise.all(slow)).map((r) => r.status), [200, 200]);
        } finally {
          await proc.stop('SIGTERM');
        }
      });
    }
  });

  test('an unknown target or bad option is a clear error', () => {
    assert.throws(() => exportConfig('caddy' as never, { upstreams }), { code: 'CS_ERR_BALANCER_CONFIG', message: /nginx, haproxy or apache/ });
    assert.throws(() => exportConfig('nginx', { upstreams: [] }), { code: 'CS_ERR_BALANCER_CONFIG' });
  });

  describe('the exported sticky setup really pins clients (nginx and HAProxy running)', { skip: needs('nginx', 'haproxy') }, () => {
    let a: Instance, b: Instance;
    before(async () => ([a, b] = await instances('a', 'b')));
    after(() => Promise.all([a.close(), b.close()]));

    for (const target of ['nginx', 'haproxy'] as const) {
      test(target, async () => {
        const port = await freePort();
        const file = path.join(dir, `${target}-run.conf`);
        writeFileSync(file, exportConfig(target, { upstreams: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }], strategy: 'cookie', listen: port }));
        const proc =
          target === 'nginx'
            ? startProcess('nginx', ['-c', file, '-p', dir, '-g', 'daemon off;'])
            : startProcess('haproxy', ['-f', file]);
        try {
          await waitForPort(port);
          const first = await request(`http://127.0.0.1:${port}/whoami`);
          assert.equal(first.status, 200);
          const pin = first.cookies.CSLB;
          assert.ok(pin, `${target} set the sticky cookie`);
          const seen = new Set<string>();
          for (let i = 0; i < 8; i++) {
            const r = await request(`http://127.0.0.1:${port}/whoami`, { headers: { cookie: `CSLB=${pin}` } });
            seen.add(r.json.instance);
            assert.equal(r.headers['set-cookie'], undefined);
          }
          assert.equal(seen.size, 1, `${target} kept the client on one instance: ${[...seen]}`);
        } finally {
          await proc.stop('SIGTERM');
        }
      });
    }
  });

  describe('apache (mod_proxy_balancer)', { skip: needs('apache2ctl', 'apache2') }, () => {
    for (const strategy of STRATEGIES) {
      test(`${strategy}: accepted by apache2ctl -t`, () => {
        const text = exportConfig('apache', { upstreams, strategy, listen: 3000 });
        const file = path.join(dir, `apache-${strategy}.conf`);
        writeFileSync(file, text);
        check('apache', file); // throws with httpd's complaint (its "Syntax OK" goes to stderr)
        assert.match(text, new RegExp(`lbmethod=${strategy === 'least-conn' ? 'bybusyness' : 'byrequests'}`));
        assert.match(text, /BalancerMember http:\/\/127\.0\.0\.1:4002 route=second .*loadfactor=3 hcmethod=GET hcuri=\/healthz/);
        assert.equal(/stickysession=CSLB/.test(text), strategy === 'cookie');
        if (strategy === 'ip-hash') assert.match(text, /no client-address hashing/);
      });
    }

    let a: Instance, b: Instance;
    before(async () => ([a, b] = await instances('a', 'b')));
    after(() => Promise.all([a.close(), b.close()]));

    test('a real httpd on a free port: spreads requests, pins a client by its route cookie, sends X-Request-Id, logs each request', async () => {
      const port = await freePort();
      const root = mkdtempSync(path.join(dir, 'httpd-'));
      const file = path.join(root, 'httpd.conf');
      const ups = [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }];
      // As root httpd drops to a user for its children: one that exists on Debian.
      const user = process.getuid?.() === 0 ? 'User www-data\nGroup www-data\n' : '';
      writeFileSync(file, user + exportConfig('apache', { upstreams: ups, strategy: 'cookie', listen: port, health: { interval: 1000 } }));
      const proc = startProcess('apache2', ['-f', file, '-d', root, '-DFOREGROUND']);
      try {
        await waitForPort(port);
        const first = await request(`http://127.0.0.1:${port}/whoami`, { headers: { 'user-agent': 'probe/2', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' } });
        assert.equal(first.status, 200);
        const pin = first.cookies.CSLB;
        assert.ok(pin, 'httpd set the route cookie');
        assert.match(pin, /^\.(a|b)$/);
        assert.equal(first.json.instance, pin.slice(1), 'the cookie names the member that served');
        assert.match(first.json.headers['x-request-id'], /^[A-Za-z0-9@_-]{20,}$/, 'mod_unique_id id reached the instance');
        assert.equal(first.json.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
        const pinned = new Set<string>();
        for (let i = 0; i < 6; i++) pinned.add((await request(`http://127.0.0.1:${port}/whoami`, { headers: { cookie: `CSLB=${pin}` } })).json.instance);
        assert.deepEqual([...pinned], [pin.slice(1)]);
        const spread = new Set<string>();
        for (let i = 0; i < 10; i++) spread.add((await request(`http://127.0.0.1:${port}/whoami`)).json.instance);
        assert.deepEqual([...spread].sort(), ['a', 'b'], `byrequests uses both members: ${[...spread]} ${readFileSync(path.join(root, 'error.log'), 'utf8').slice(-2000)}`);
        const line = new RegExp(`127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "GET /whoami HTTP/1\\.1" 200 \\d+ "-" "probe/2" rt=\\d+ ua="http://127\\.0\\.0\\.1:\\d+" rid=${first.json.headers['x-request-id']}`);
        await until('the access log line', () => existsSync(path.join(root, 'access.log')) && line.test(readFileSync(path.join(root, 'access.log'), 'utf8')), 5_000);
      } finally {
        await proc.stop('SIGTERM');
      }
    });
  });

  test('nginx and HAProxy exports log each request in the balancer format and send X-Request-Id', { skip: needs('nginx', 'haproxy') }, () => {
    const ng = exportConfig('nginx', { upstreams, accessLog: { path: '/var/log/cs/access.log', format: 'combined' } });
    assert.match(ng, /log_format cluster_session '\$remote_addr - \$remote_user \[\$time_local\] "\$request" \$status \$bytes_sent "\$http_referer" "\$http_user_agent" rt=\$request_time ua="\$upstream_addr" rid=\$cs_request_id';/);
    assert.match(ng, /access_log \/var\/log\/cs\/access\.log cluster_session;/);
    assert.match(ng, /proxy_set_header X-Request-Id \$cs_request_id;/);
    assert.doesNotMatch(ng, /access_log off/);
    assert.match(exportConfig('nginx', { upstreams }), /access_log access\.log cluster_session;/);
    assert.match(exportConfig('nginx', { upstreams, accessLog: { path: '-', format: 'json' } }), /log_format cluster_session escape=json '\{"time":"\$time_iso8601"/);
    assert.match(exportConfig('nginx', { upstreams, trustProxy: true }), /map \$http_x_request_id \$cs_request_id/);
    const ha = exportConfig('haproxy', { upstreams });
    assert.match(ha, /log stdout format raw local0 info/);
    assert.match(ha, /unique-id-format %\[uuid\(\)\][\s\S]*?http-request del-header X-Request-Id\n\s+unique-id-header X-Request-Id/);
    assert.match(ha, /log-format ".*rid=%ID"/);
  });

  describe('the exported access log and request id, nginx and HAProxy running', { skip: needs('nginx', 'haproxy') }, () => {
    let a: Instance;
    before(async () => ([a] = await instances('a')));
    after(() => a.close());
    for (const target of ['nginx', 'haproxy'] as const) {
      test(target, async () => {
        const port = await freePort();
        const file = path.join(dir, `${target}-log-run.conf`);
        writeFileSync(file, exportConfig(target, { upstreams: [a.url], listen: port, health: false }));
        const proc = target === 'nginx' ? startProcess('nginx', ['-c', file, '-p', dir, '-g', 'daemon off;']) : startProcess('haproxy', ['-f', file]);
        try {
          await waitForPort(port);
          const r = await request(`http://127.0.0.1:${port}/whoami?q=1`, { headers: { 'user-agent': 'probe/3', 'x-request-id': 'client-chosen' } });
          const id = r.json.headers['x-request-id'];
          assert.ok(id && id !== 'client-chosen', `${target} set its own id: ${id}`);
          const line = new RegExp(`127\\.0\\.0\\.1 - - \\[[^\\]]+\\] "GET /whoami\\?q=1 HTTP/1\\.1" 200 \\d+ "-" "probe/3" rt=[\\d.]+ ua="127\\.0\\.0\\.1:${a.port}" rid=${id}`);
          if (target === 'haproxy') await proc.waitFor(line, 5_000);
          else await until('the access log line', () => existsSync(path.join(dir, 'access.log')) && line.test(readFileSync(path.join(dir, 'access.log'), 'utf8')), 5_000);
        } finally {
          await proc.stop('SIGTERM');
        }
      });
    }
  });
});

// The edge part of the exports (TLS with SNI, redirect, HSTS, rate limit, gzip, static cache), checked by the real
// binaries (`nginx -t`, `haproxy -c`) and then run: real nginx and HAProxy answering over TLS with a CA made here.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, fetch } from 'undici';
import { exportConfig } from '@cluster-session/balancer';
import { freePort, needs, request, startProcess, testCA, waitForPort, type TestCA, type TestCert } from '@cluster-session/testkit';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-export-edge-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function check(target: 'nginx' | 'haproxy', file: string): void {
  if (target === 'nginx') execFileSync('nginx', ['-t', '-c', file, '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  else execFileSync('haproxy', ['-c', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
}

function run(target: 'nginx' | 'haproxy', file: string) {
  // `user root`: the workers must reach the cache directory inside this test's private (0700) temporary directory.
  return target === 'nginx' ? startProcess('nginx', ['-c', file, '-p', dir, '-g', 'daemon off; user root;']) : startProcess('haproxy', ['-f', file]);
}

const pair = (c: TestCert) => ({ cert: c.cert, key: c.key });

/** An app with a page, a static asset (cacheable) and a large JSON answer (compressible). */
async function app(): Promise<{ url: string; hits: Map<string, number>; close(): void }> {
  const hits = new Map<string, number>();
  const server = http.createServer((req, res) => {
    hits.set(req.url!, (hits.get(req.url!) ?? 0) + 1);
    if (req.url === '/app.css') {
      res.writeHead(200, { 'content-type': 'text/css', 'cache-control': 'public, max-age=600' });
      return res.end('body { color: red }\n'.repeat(200));
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ proto: req.headers['x-forwarded-proto'], pad: 'x'.repeat(4000) }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits, close: () => server.close() };
}

describe('export: edge features', { skip: needs('nginx', 'haproxy') }, () => {
  let ca: TestCA;
  let main: TestCert;
  let other: TestCert;
  before(() => {
    ca = testCA(path.join(dir, 'pki'));
    main = ca.issue('main', ['localhost', '127.0.0.1', '*.main.test']);
    other = ca.issue('other', ['other.test']);
    // HAProxy 2.6 reads a key from <certificate>.key (the generated config says so).
    symlinkSync(main.key, `${main.cert}.key`);
    symlinkSync(other.key, `${other.cert}.key`);
  });

  test('TLS (two certificates), redirect, HSTS, rate limit, trusted proxies, gzip and cache: accepted by both binaries', () => {
    for (const target of ['nginx', 'haproxy'] as const) {
      const text = exportConfig(target, {
        upstreams: ['http://127.0.0.1:4001'],
        listen: 8443,
        tls: { certs: [pair(main), pair(other)], hsts: 600, redirect: 8080 },
        rateLimit: { rate: '50/s', burst: 100 },
        trustedProxies: ['10.0.0.0/8', '192.0.2.7'],
        compress: true,
        cache: true,
      });
      const file = path.join(dir, `${target}-edge.conf`);
      writeFileSync(file, text);
      check(target, file);
      if (target === 'nginx') {
        assert.match(text, /listen 127\.0\.0\.1:8443 ssl;\n\s+# TLS[^\n]*\n\s+ssl_certificate .*main\.pem;\n\s+ssl_certificate_key .*main\.key;\n\s+ssl_protocols TLSv1\.2 TLSv1\.3;/);
        assert.match(text, /server_name other\.test;\n\s+ssl_certificate .*other\.pem;/, 'the second certificate is its own server, picked by SNI');
        assert.match(text, /add_header Strict-Transport-Security "max-age=600" always;/);
        assert.match(text, /server_name localhost 127\.0\.0\.1 \*\.main\.test other\.test;\n\s+return 308 https:\/\/\$host:8443\$request_uri;/);
        assert.match(text, /listen 127\.0\.0\.1:8080 default_server;\n\s+return 400;/, 'an unknown Host is not redirected');
        assert.match(text, /limit_req_zone \$binary_remote_addr zone=cs_rate:10m rate=50r\/s;/);
        assert.match(text, /limit_req zone=cs_rate burst=100 nodelay;/);
        assert.match(text, /set_real_ip_from 10\.0\.0\.0\/8;\n\s+set_real_ip_from 192\.0\.2\.7;/);
        assert.match(text, /gzip on;[\s\S]*gzip_vary on;/);
        assert.match(text, /proxy_cache cs_static;/);
      } else {
        assert.match(text, /bind 127\.0\.0\.1:8443 ssl crt .*main\.pem crt .*other\.pem alpn http\/1\.1 ssl-min-ver TLSv1\.2/);
        assert.match(text, /http-request set-header X-Forwarded-Proto https/);
        assert.match(text, /Strict-Transport-Security "max-age=600"/);
        assert.match(text, /stick-table type ipv6 size 100000 expire \d+s store http_req_rate\(2s\)/);
        assert.match(text, /http-request return status 429 .*hdr Retry-After 1 .*if \{ sc_http_req_rate\(1\) gt 100 \}/);
        assert.match(text, /acl cs_trusted_proxy src 10\.0\.0\.0\/8 192\.0\.2\.7/);
        assert.match(text, /compression algo gzip/);
        assert.match(text, /set-var\(txn\.cs_static\) bool\(true\) if \{ path_end .*\.css/);
        assert.match(text, /http-request cache-use cs_static if \{ var\(txn\.cs_static\) -m bool \}/);
        assert.match(text, /http-request redirect location https:\/\/%\[req\.hdr\(host\),field\(1,:\)\]:8443%\[capture\.req\.uri\] code 308/);
      }
    }
  });

  test('a certificate path that does not exist is a clear error', () => {
    assert.throws(() => exportConfig('nginx', { upstreams: ['http://127.0.0.1:4001'], tls: { certs: [{ cert: path.join(dir, 'none.pem'), key: main.key }] } }), {
      code: 'CS_ERR_BALANCER_CONFIG',
      message: /option tls\.certs\[0\]\.cert \(--tls-cert\) is ".*none\.pem": expected a readable PEM certificate file \(ENOENT\)/,
    });
  });

  describe('running: HTTPS with the CA, HSTS, X-Forwarded-Proto, 308 redirect, 429 + Retry-After, gzip, a cache hit', () => {
    let upstream: Awaited<ReturnType<typeof app>>;
    before(async () => (upstream = await app()));
    after(() => upstream.close());

    for (const target of ['nginx', 'haproxy'] as const) {
      test(target, async () => {
        const [port, plain] = [await freePort(), await freePort()];
        const file = path.join(dir, `${target}-edge-run.conf`);
        writeFileSync(
          file,
          exportConfig(target, {
            upstreams: [upstream.url],
            listen: port,
            health: false,
            tls: { certs: [pair(main), pair(other)], hsts: 600, redirect: plain },
            rateLimit: { rate: '5/s', burst: 10 },
            compress: true,
            cache: true,
          }),
        );
        const proc = run(target, file);
        const dispatcher = new Agent({ connect: { ca: ca.pem } });
        try {
          await waitForPort(port);
          await waitForPort(plain);
          const r = await fetch(`https://127.0.0.1:${port}/x`, { dispatcher, headers: { 'accept-encoding': 'gzip' } });
          assert.equal(r.status, 200);
          assert.equal(r.headers.get('strict-transport-security'), 'max-age=600');
          assert.equal(r.headers.get('content-encoding'), 'gzip');
          // undici's fetch decodes gzip itself: the JSON arriving whole is the check that the encoding is real.
          assert.equal(((await r.json()) as { proto: string }).proto, 'https');
          const raw = await request(`http://127.0.0.1:${plain}/a?b`, { headers: { host: 'localhost' } });
          assert.equal(raw.status, 308);
          assert.equal(raw.headers.location, `https://localhost:${port}/a?b`);
          assert.equal((await request(`http://127.0.0.1:${plain}/a`, { headers: { host: 'evil.example' } })).status, 400);
          // The stylesheet twice: the second comes from the cache.
          for (let i = 0; i < 2; i++) assert.equal((await fetch(`https://127.0.0.1:${port}/app.css`, { dispatcher })).status, 200);
          assert.equal(upstream.hits.get('/app.css'), 1, `${target} served the second /app.css from its cache`);
          upstream.hits.delete('/app.css');
          // Over the burst at once: 429 with Retry-After.
          const statuses: number[] = [];
          let retryAfter: string | null = null;
          for (let i = 0; i < 30; i++) {
            const res = await fetch(`https://127.0.0.1:${port}/y`, { dispatcher });
            statuses.push(res.status);
            if (res.status === 429) retryAfter = res.headers.get('retry-after');
            await res.arrayBuffer();
          }
          assert.ok(statuses.includes(429), `${target} limited: ${statuses.join(' ')}`);
          assert.equal(retryAfter, '1');
        } finally {
          await dispatcher.close();
          await proc.stop('SIGTERM');
        }
      });
    }
  });
});

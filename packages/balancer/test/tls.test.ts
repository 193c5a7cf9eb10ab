// TLS at the balancer with real clients and a CA made at test time: undici trusting that CA, node:tls for SNI,
// versions and ALPN, Chromium pinned to the certificate's key (never told to ignore certificate errors).
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import { Agent, fetch } from 'undici';
import { BalancerConfigError, type Balancer } from '@cluster-session/balancer';
import { chromiumOptions, needs, request, testCA, type TestCA, type TestCert } from '@cluster-session/testkit';
import { balancer, raw, statusOf } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** An instance that shows what the balancer told it and sets a Secure cookie, as a session would. */
async function app(): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    const body = JSON.stringify({ proto: req.headers['x-forwarded-proto'], cookie: req.headers.cookie ?? '', host: req.headers.host });
    res.writeHead(200, { 'content-type': req.url === '/page' ? 'text/html' : 'application/json', 'set-cookie': 'sid=s1; Path=/; Secure; HttpOnly; SameSite=Lax' });
    res.end(req.url === '/page' ? `<title>over tls</title><pre id="seen">${body}</pre>` : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

/** The certificate a fresh handshake gets for `servername` (no SNI for an IP, as browsers do). */
function peer(url: string, ca: string, servername?: string, extra: tls.ConnectionOptions = {}): Promise<{ cert: tls.PeerCertificate; protocol: string | null; alpn: string | false | null }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: u.hostname, port: Number(u.port), ca, ALPNProtocols: ['http/1.1'], ...(servername ? { servername } : {}), ...extra }, () => {
      resolve({ cert: s.getPeerCertificate(), protocol: s.getProtocol(), alpn: s.alpnProtocol });
      s.end();
    });
    s.on('error', reject);
  });
}

describe('TLS', () => {
  let ca: TestCA;
  let main: TestCert;
  let other: TestCert;
  let upstream: Awaited<ReturnType<typeof app>>;
  let lb: Balancer;
  const logs: string[] = [];
  // The files the balancer reads; tests swap their contents and reload.
  const live = { cert: path.join(dir, 'live.pem'), key: path.join(dir, 'live.key') };

  before(async () => {
    ca = testCA(dir);
    main = ca.issue('main', ['localhost', '127.0.0.1', '*.main.test']);
    other = ca.issue('other', ['other.test']);
    copyFileSync(main.cert, live.cert);
    copyFileSync(main.key, live.key);
    upstream = await app();
    lb = await balancer({
      upstreams: [upstream.url],
      health: false,
      tls: { certs: [live, { cert: other.cert, key: other.key }], hsts: 31_536_000, redirect: 0 },
      log: (m) => logs.push(m),
    });
  });
  after(async () => {
    await lb?.close(100);
    upstream?.close();
  });

  test('undici trusting the CA: HTTPS through the balancer, X-Forwarded-Proto https, HSTS, the Secure cookie', async () => {
    assert.match(lb.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const dispatcher = new Agent({ connect: { ca: ca.pem } });
    try {
      const res = await fetch(`${lb.url}/x`, { dispatcher });
      assert.equal(res.status, 200);
      const seen = (await res.json()) as { proto: string };
      assert.equal(seen.proto, 'https', 'the instance learns the client spoke https');
      assert.equal(res.headers.get('strict-transport-security'), 'max-age=31536000');
      assert.match(res.headers.get('set-cookie') ?? '', /Secure/);
      // A forged X-Forwarded-Proto from the client changes nothing: TLS ends here.
      const forged = await fetch(`${lb.url}/x`, { dispatcher, headers: { 'x-forwarded-proto': 'http' } });
      assert.equal(((await forged.json()) as { proto: string }).proto, 'https');
      // Without the CA the same client refuses the certificate: the trust above is real.
      await assert.rejects(fetch(`${lb.url}/x`, { dispatcher: new Agent() }), (err: Error & { cause?: { code?: string } }) => /CERT|SIGNATURE|ISSUER/.test(err.cause?.code ?? ''));
    } finally {
      await dispatcher.close();
    }
  });

  test('SNI picks the certificate by its names (wildcards too); no SNI or an unknown name gets the first; TLS 1.2+ and ALPN http/1.1 only', async () => {
    assert.equal((await peer(lb.url, ca.pem)).cert.fingerprint256, main.fingerprint, 'no SNI (an IP): the default');
    assert.equal((await peer(lb.url, ca.pem, 'other.test')).cert.fingerprint256, other.fingerprint);
    assert.equal((await peer(lb.url, ca.pem, 'a.main.test')).cert.fingerprint256, main.fingerprint, 'wildcard');
    assert.equal((await peer(lb.url, ca.pem, 'localhost')).cert.fingerprint256, main.fingerprint);
    const h = await peer(lb.url, ca.pem, 'localhost');
    assert.equal(h.alpn, 'http/1.1');
    assert.match(h.protocol ?? '', /^TLSv1\.[23]$/);
    await assert.rejects(peer(lb.url, ca.pem, 'localhost', { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }), 'TLS 1.1 is refused');
    await assert.rejects(peer(lb.url, ca.pem, 'localhost', { ALPNProtocols: ['h2'] }), 'a client offering only h2 is refused, not spoken to in HTTP/1.1');
    // Plain HTTP on the TLS port: the handshake fails, the connection closes, the balancer goes on.
    const plain = await request(`${lb.url.replace('https:', 'http:')}/x`).catch((err: Error) => err);
    assert.ok(plain instanceof Error || plain.status >= 400);
    assert.equal((await peer(lb.url, ca.pem)).cert.fingerprint256, main.fingerprint);
  });

  test('the plain listener redirects to the same host and path over HTTPS (308), only for names the certificates cover', async () => {
    assert.ok(lb.redirectUrl);
    const port = new URL(lb.url).port;
    const r = await request(`${lb.redirectUrl}/a/b?c=1`, { headers: { host: `localhost:${new URL(lb.redirectUrl).port}` } });
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, `https://localhost:${port}/a/b?c=1`);
    assert.equal(r.headers['strict-transport-security'], undefined, 'HSTS is meaningless over plain HTTP');
    const wild = await request(`${lb.redirectUrl}//evil.example/x`, { headers: { host: 'shop.main.test' } });
    assert.equal(wild.status, 308);
    assert.equal(wild.headers.location, `https://shop.main.test:${port}//evil.example/x`, 'the host stays the one asked for');
    for (const host of ['evil.example', 'localhost.evil.example', 'a.b.main.test', 'localhost:99999', 'local host', 'localhost@evil.example']) {
      const bad = await request(`${lb.redirectUrl}/x`, { headers: { host } });
      assert.equal(bad.status, 400, `Host ${JSON.stringify(host)}`);
      assert.equal(JSON.parse(bad.body).code, 'CS_ERR_BALANCER_BAD_REQUEST');
      assert.equal(bad.headers.location, undefined);
    }
    const noHost = await raw(lb.redirectUrl, 'GET /x HTTP/1.0\r\n\r\n');
    assert.equal(statusOf(noHost.text), 400, 'HTTP/1.0 without Host');
  });

  test('reloadTls(): open connections keep going, new handshakes get the new certificate; a bad file keeps the old one and logs one line', async () => {
    const dispatcher = new Agent({ connect: { ca: ca.pem, servername: 'localhost' }, keepAliveTimeout: 30_000 });
    const got = (await fetch(`${lb.url}/before`, { dispatcher })).status;
    assert.equal(got, 200);
    const renewed = ca.issue('renewed', ['localhost', '127.0.0.1']);
    copyFileSync(renewed.cert, live.cert);
    copyFileSync(renewed.key, live.key);
    assert.equal(lb.reloadTls(), true);
    assert.match(logs.at(-1) ?? '', /TLS certificates reloaded/);
    // The kept-alive connection of before the reload still serves (undici reuses it).
    assert.equal((await fetch(`${lb.url}/after`, { dispatcher })).status, 200);
    await dispatcher.close();
    assert.equal((await peer(lb.url, ca.pem)).cert.fingerprint256, renewed.fingerprint, 'default context replaced');
    assert.equal((await peer(lb.url, ca.pem, 'localhost')).cert.fingerprint256, renewed.fingerprint, 'SNI context replaced');
    assert.equal((await peer(lb.url, ca.pem, 'other.test')).cert.fingerprint256, other.fingerprint);

    // A truncated certificate, then a key of another certificate: neither is taken.
    const before = logs.length;
    writeFileSync(live.cert, '-----BEGIN CERTIFICATE-----\nMIIB\n');
    assert.equal(lb.reloadTls(), false);
    copyFileSync(renewed.cert, live.cert);
    copyFileSync(other.key, live.key);
    assert.equal(lb.reloadTls(), false);
    assert.equal(logs.length, before + 2, 'one line per failed reload');
    assert.match(logs.at(-1)!, /TLS reload failed, the previous certificates stay in use: .*tls\.certs\[0\]\.key \(--tls-key\)/);
    assert.doesNotMatch(logs.join('\n'), /PRIVATE KEY/, 'never the key material');
    assert.equal((await peer(lb.url, ca.pem)).cert.fingerprint256, renewed.fingerprint, 'still the last good one');
    copyFileSync(renewed.key, live.key);
  });

  test('Chromium loads a page over HTTPS, pinned to the certificate key, and sends the Secure cookie back', { skip: needs('chromium') }, async () => {
    const pinned = ca.issue('pinned', ['localhost', '127.0.0.1']);
    copyFileSync(pinned.cert, live.cert);
    copyFileSync(pinned.key, live.key);
    assert.equal(lb.reloadTls(), true);
    const base = chromiumOptions();
    // The SPKI pin trusts exactly this key (Chromium has no way to take a CA file on Linux without an NSS db).
    const browser = await chromium.launch({ ...base, args: [...base.args, `--ignore-certificate-errors-spki-list=${pinned.spki}`] });
    try {
      const page = await browser.newPage();
      const url = `https://localhost:${new URL(lb.url).port}/page`;
      const res = await page.goto(url);
      assert.equal(res?.status(), 200);
      assert.equal(await page.title(), 'over tls');
      assert.equal(res?.headers()['strict-transport-security'], 'max-age=31536000');
      assert.match((await res?.securityDetails())?.protocol ?? '', /^TLS 1\.[23]$/);
      await page.goto(url);
      const seen = JSON.parse((await page.textContent('#seen')) ?? '{}') as { proto: string; cookie: string };
      assert.equal(seen.proto, 'https');
      assert.equal(seen.cookie, 'sid=s1', 'the Secure cookie came back over HTTPS');
      // A certificate the pin does not cover is refused by the same browser: the pin is what trusts it.
      copyFileSync(other.cert, live.cert);
      copyFileSync(other.key, live.key);
      assert.equal(lb.reloadTls(), true);
      const page2 = await browser.newContext().then((c) => c.newPage());
      await assert.rejects(page2.goto(url), /ERR_CERT/);
    } finally {
      await browser.close();
      copyFileSync(main.cert, live.cert);
      copyFileSync(main.key, live.key);
      lb.reloadTls();
    }
  });
});

describe('TLS options', () => {
  test('a missing key file, a key of another certificate, a non-PEM certificate: startup errors naming the flag and the path', async () => {
    const ca = testCA(path.join(dir, 'opts'));
    const a = ca.issue('a', ['localhost']);
    const b = ca.issue('b', ['localhost']);
    const cases: Array<[{ cert: string; key: string }, RegExp]> = [
      [{ cert: a.cert, key: path.join(dir, 'nope.key') }, /option tls\.certs\[0\]\.key \(--tls-key\) is ".*nope\.key": expected a readable PEM private key file \(ENOENT\)/],
      [{ cert: path.join(dir, 'nope.pem'), key: a.key }, /option tls\.certs\[0\]\.cert \(--tls-cert\) is ".*nope\.pem": expected a readable PEM certificate file \(ENOENT\)/],
      [{ cert: a.cert, key: b.key }, /option tls\.certs\[0\]\.key \(--tls-key\) is ".*b\.key": expected the PEM private key of .*a\.pem/],
      [{ cert: a.key, key: a.key }, /option tls\.certs\[0\]\.cert \(--tls-cert\) is ".*a\.key": expected a PEM certificate/],
    ];
    for (const [pair, message] of cases) {
      await assert.rejects(balancer({ upstreams: ['http://127.0.0.1:1'], health: false, tls: { certs: [pair] } }), (err: Error) => err instanceof BalancerConfigError && message.test(err.message) && !/PRIVATE KEY|MII/.test(err.message));
    }
    await assert.rejects(balancer({ upstreams: ['http://127.0.0.1:1'], tls: { certs: [] } }), /option tls\.certs is \[\]/);
    await assert.rejects(balancer({ upstreams: ['http://127.0.0.1:1'], tls: { certs: [{ cert: a.cert, key: a.key }], hsts: -1 } }), /option tls\.hsts/);
  });
});

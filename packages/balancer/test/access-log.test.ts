// The access log and the request id, through a real balancer in front of real instances; the log files are
// real files, rotated as logrotate does (rename, then reopen).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, existsSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request, until } from '@cluster-session/testkit';
import { AccessLog } from '../src/access-log.ts';
import { balancer, exchange, instances, type Instance } from './helpers.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-access-log-'));
let a: Instance;
before(async () => {
  [a] = await instances('a');
});
after(async () => {
  await a.close();
  rmSync(dir, { recursive: true, force: true });
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const lines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

describe('request id', () => {
  it('a new UUID per request reaches the instance; a client cannot choose it; traceparent passes unchanged', async () => {
    const lb = await balancer({ upstreams: [a.url], health: false });
    try {
      const trace = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
      const one = await request(`${lb.url}/whoami`, { headers: { 'x-request-id': 'client-chosen', traceparent: trace } });
      const two = await request(`${lb.url}/whoami`);
      const h1 = JSON.parse(one.body).headers;
      const h2 = JSON.parse(two.body).headers;
      assert.match(h1['x-request-id'], UUID);
      assert.match(h2['x-request-id'], UUID);
      assert.notEqual(h1['x-request-id'], h2['x-request-id']);
      assert.equal(h1.traceparent, trace);
    } finally {
      await lb.close();
    }
  });

  it('behind a trusted proxy its id is kept when it looks like one, replaced when not', async () => {
    const lb = await balancer({ upstreams: [a.url], health: false, trustProxy: true });
    try {
      const kept = JSON.parse((await request(`${lb.url}/whoami`, { headers: { 'x-request-id': 'edge-7f3a.42' } })).body).headers;
      assert.equal(kept['x-request-id'], 'edge-7f3a.42');
      const bad = JSON.parse((await request(`${lb.url}/whoami`, { headers: { 'x-request-id': 'two words' } })).body).headers;
      assert.match(bad['x-request-id'], UUID);
    } finally {
      await lb.close();
    }
  });

  it('requestId: false forwards the client header untouched and adds none', async () => {
    const lb = await balancer({ upstreams: [a.url], health: false, requestId: false });
    try {
      assert.equal(JSON.parse((await request(`${lb.url}/whoami`, { headers: { 'x-request-id': 'as-sent' } })).body).headers['x-request-id'], 'as-sent');
      assert.equal(JSON.parse((await request(`${lb.url}/whoami`)).body).headers['x-request-id'], undefined);
    } finally {
      await lb.close();
    }
  });
});

describe('access log', () => {
  it('json: one object per answer with time, client, method, path, status, bytes, upstream, duration, request id', async () => {
    const file = path.join(dir, 'json', 'access.log');
    const lb = await balancer({ upstreams: [a.url], health: false, accessLog: file });
    try {
      const ok = await request(`${lb.url}/whoami?x=1`, { headers: { 'user-agent': 'probe/1.0', referer: 'http://example.test/' } });
      const missing = await request(`${lb.url}/status/404`);
      const bad = await exchange(lb.url, 'GET /\r\nbroken\r\n\r\n');
      assert.equal(ok.status, 200);
      assert.equal(missing.status, 404);
      assert.match(bad.text, /^HTTP\/1\.1 400/);
      await lb.close();
      const entries = lines(file).map((l) => JSON.parse(l));
      assert.equal(entries.length, 3, lines(file).join('\n'));
      const [first, second, third] = entries;
      assert.equal(first.method, 'GET');
      assert.equal(first.path, '/whoami?x=1');
      assert.equal(first.status, 200);
      assert.equal(first.client, '127.0.0.1');
      assert.equal(first.upstream, `127.0.0.1:${a.port}`);
      assert.equal(first.userAgent, 'probe/1.0');
      assert.equal(first.referer, 'http://example.test/');
      assert.equal(first.requestId, JSON.parse(ok.body).headers['x-request-id'], 'the id the instance saw');
      assert.ok(first.bytes > Buffer.byteLength(ok.body), 'head and body');
      assert.ok(first.duration >= 0 && first.duration < 10);
      assert.ok(Math.abs(Date.parse(first.time) - Date.now()) < 60_000);
      assert.equal(second.status, 404);
      assert.equal(third.status, 400);
      assert.equal(third.upstream, '-');
      assert.equal(third.bytes, Buffer.byteLength(bad.text, 'latin1'));
    } finally {
      await lb.close();
    }
  });

  it('combined: nginx combined format plus rt=, ua= and rid=, with quotes escaped', async () => {
    const file = path.join(dir, 'combined.log');
    const lb = await balancer({ upstreams: [a.url], health: false, accessLog: { path: file, format: 'combined' } });
    try {
      await request(`${lb.url}/whoami`, { headers: { 'user-agent': 'say "hi"' } });
      await lb.close();
      const [line] = lines(file);
      assert.match(
        line!,
        new RegExp(
          `^127\\.0\\.0\\.1 - - \\[\\d\\d/[A-Z][a-z]{2}/\\d{4}:\\d\\d:\\d\\d:\\d\\d \\+0000\\] "GET /whoami HTTP/1\\.1" 200 \\d+ "-" "say \\\\x22hi\\\\x22" rt=\\d+\\.\\d{3} ua="127\\.0\\.0\\.1:${a.port}" rid=[0-9a-f-]{36}$`,
        ),
      );
    } finally {
      await lb.close();
    }
  });

  it('lines gathered into batches: 3,000 answers from 30 clients at once, each logged once, none lost', async () => {
    const file = path.join(dir, 'burst.log');
    const lb = await balancer({ upstreams: [a.url], health: false, accessLog: file });
    try {
      await Promise.all(
        Array.from({ length: 30 }, async (_, c) => {
          for (let i = 0; i < 100; i++) assert.equal((await request(`${lb.url}/whoami?c=${c}&i=${i}`)).status, 200);
        }),
      );
      await lb.close();
      const paths = lines(file).map((l) => JSON.parse(l).path as string);
      assert.equal(paths.length, 3000);
      assert.equal(new Set(paths).size, 3000, 'each answer once');
    } finally {
      await lb.close();
    }
  });

  // Bounded: were the pipe never opened by its reader, close() would wait for the open.
  it('a disk that takes nothing more: beyond 16 MiB waiting, lines are dropped, counted and reported once', { timeout: 30_000 }, async () => {
    // A pipe whose reader never reads stands for the stalled disk: once its 64 KiB are full, the write waits.
    const fifo = path.join(dir, 'stalled.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = spawn('sh', ['-c', `exec 3<"${fifo}"; exec sleep 60`], { stdio: 'ignore' });
    const said: string[] = [];
    const log = new AccessLog(fifo, 'json', (m) => said.push(m));
    try {
      const entry = { client: '127.0.0.1', method: 'GET', path: `/${'x'.repeat(1000)}`, minor: 1, status: 200, bytes: 100, upstream: '127.0.0.1:1', seconds: 0.001, requestId: '', headers: '' };
      for (let i = 0; i < 20_000; i++) log.write(entry); // about 21 MiB of lines
      assert.ok(log.dropped > 3000 && log.dropped < 10_000, `${log.dropped} dropped: what does not fit in 16 MiB`);
      await until('the drops are reported', () => said.length > 0, 3_000);
      assert.equal(said.length, 1, 'one line for them all');
      assert.match(said[0]!, new RegExp(`^access log .*stalled\\.fifo: ${log.dropped} lines dropped, the disk is not keeping up`));
    } finally {
      reader.kill('SIGKILL'); // the waiting write fails (EPIPE), and close() can finish
      await log.close();
    }
    assert.match(said.at(-1)!, /EPIPE/);
  });

  it('reopenLogs() after a rename (logrotate) writes on in a new file at the same path', async () => {
    const file = path.join(dir, 'rotate.log');
    const lb = await balancer({ upstreams: [a.url], health: false, accessLog: file });
    try {
      await request(`${lb.url}/whoami?n=1`);
      await until('the first line is written', () => lines(file).length === 1, 5_000);
      renameSync(file, `${file}.1`);
      lb.reopenLogs();
      await request(`${lb.url}/whoami?n=2`);
      await lb.close();
      assert.deepEqual(lines(`${file}.1`).map((l) => JSON.parse(l).path), ['/whoami?n=1']);
      assert.deepEqual(lines(file).map((l) => JSON.parse(l).path), ['/whoami?n=2']);
    } finally {
      await lb.close();
    }
  });

  it('a client that leaves before its answer is logged as 499', async () => {
    const file = path.join(dir, 'gone.log');
    const lb = await balancer({ upstreams: [a.url], health: false, accessLog: file });
    try {
      // A reset, not a FIN: a half-closed client is still answered (HTTP/1.1 allows it).
      const socket = net.connect(Number(new URL(lb.url).port), '127.0.0.1');
      await once(socket, 'connect');
      socket.write('GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\n\r\n');
      await until('the instance has the request', () => (a.hits.get('/slow') ?? 0) > 0, 5_000);
      socket.resetAndDestroy();
      await lb.close();
      const entry = JSON.parse(lines(file)[0]!);
      assert.equal(entry.status, 499);
      assert.equal(entry.path, '/slow?ms=2000');
    } finally {
      await lb.close();
    }
  });
});

/**
 * `npm start` failing well: every failure path with real processes on real ports. Each one exits non-zero within
 * about 15 s, says what failed and the fix in two lines, and leaves no process behind: every process it starts
 * carries a tag in its environment (inherited by primaries and workers), and a scan of /proc afterwards finds none.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Agent, fetch } from 'undici';
import { cookieHeader, freePort, needs, oldNode, processTag, request, startNode, startProcess, startRedis, testCA, type Proc } from '@cluster-session/testkit';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));
const START = path.join(SRC, 'start.ts');
const CHECK = path.join(SRC, 'check-node.js');
const CLI = fileURLToPath(import.meta.resolve('@cluster-session/cli/package.json')).replace(/package\.json$/, 'bin/cluster-session.js');
const SERVER = path.join(SRC, 'server.ts');

const dir = mkdtempSync(path.join(tmpdir(), 'cs-start-'));
const runtime = path.join(dir, 'run');
after(() => rmSync(dir, { recursive: true, force: true }));

/** Free ports for one stack: the balancer, its status page, both instances and their metrics (passed as the stack's env). */
async function ports(): Promise<{ env: Record<string, string>; port: number; a: number; b: number; admin: number; ma: number; mb: number }> {
  const [port, a, b, admin, ma, mb] = (await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()])) as [number, number, number, number, number, number];
  return { port, a, b, admin, ma, mb, env: { PORT: String(port), ADMIN_PORT: String(admin), INSTANCE_PORTS: `${a},${b}`, METRICS_PORTS: `${ma},${mb}` } };
}

interface Launch {
  proc: Proc;
  started: number;
  /** Resolves with the exit code and how long the whole run took. */
  result(): Promise<{ code: number | string; ms: number; out: string }>;
}

/**
 * `npm start` as package.json runs it (node --import check-node.js start.ts), one worker per instance. Whatever
 * carries the tag is killed when the calling test ends, so a test that fails half-way leaves no stack running.
 */
function launch(env: Record<string, string>, tag: ReturnType<typeof processTag>): Launch {
  after(() => tag.kill());
  const started = Date.now();
  const proc = startNode(['--import', CHECK, START], {
    cwd: dir,
    env: { ...process.env, WORKERS: '1', CLUSTER_SESSION_RUNTIME_DIR: runtime, SQLITE_PATH: path.join(dir, 'sessions.sqlite'), ...tag.env, ...env },
  });
  return {
    proc,
    started,
    result: async () => {
      const code = await proc.exited;
      return { code, ms: Date.now() - started, out: proc.output() };
    },
  };
}

/** The launcher's own lines (its prefix is the stack name), without the instances' and balancer's output. */
const own = (out: string, name: string) => out.split('\n').filter((l) => l.startsWith(`[${name}] `));

/** No process left, no control socket or stack record left in the runtime directory. */
function assertClean(tag: ReturnType<typeof processTag>, name: string, out = ''): void {
  assert.deepEqual(tag.leftovers(), [], `no process left behind\n${out}`);
  const left = existsSync(runtime) ? readdirSync(runtime).filter((f) => f.startsWith(`${name}`)) : [];
  assert.deepEqual(left, [], `no control socket or stack record left\n${out}`);
}

/** A TCP listener the test holds, to take a port (or to be a store that accepts and never answers). */
async function hold(port: number, host = '127.0.0.1'): Promise<net.Server> {
  const server = net.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  after(() => server.close());
  return server;
}

describe('npm start: configuration errors', () => {
  test('SESSION_STORE=bogus: the fix in two lines, once, no stack, exit 2, nothing started', async () => {
    const tag = processTag();
    const p = await ports();
    const { code, ms, out } = await launch({ ...p.env, SESSION_STORE: 'bogus' }, tag).result();
    const name = `example-${p.port}`;
    assert.equal(code, 2, out);
    assert.deepEqual(own(out, name), [
      `[${name}] cannot start: option store (env SESSION_STORE) is "bogus": expected 'redis', 'mongo', 'sqlite', 'memory', or { type, url | client | path } (in code also an express-session Store instance). Example: SESSION_STORE=sqlite.`,
      `[${name}] fix: set SESSION_STORE to an allowed value, or unset it.`,
    ]);
    assert.equal(out.trim().split('\n').length, 2, `nothing else printed:\n${out}`);
    assert.ok(ms < 15_000, `${ms} ms`);
    assertClean(tag, name);
  });

  test('NODE_ENV=production without SESSION_SECRET, a bad PORT, a bad WORKERS: each one plain message, exit 2', async () => {
    const tag = processTag();
    const p = await ports();
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...p.env, NODE_ENV: 'production', SESSION_SECRET: '' }, /cannot start: option secret \(env SESSION_SECRET\) is missing and NODE_ENV=production.*\n.*fix: set SESSION_SECRET to a random string/],
      [{ ...p.env, PORT: 'abc' }, /cannot start: PORT is "abc": expected a port number.*\n.*fix: set PORT to a free port, e.g\. PORT=3000/],
      [{ ...p.env, WORKERS: 'lots' }, /cannot start: WORKERS is "lots".*\n.*fix: set WORKERS=2/],
      [{ ...p.env, SESSION_MODE: 'jwt', NODE_ENV: 'production', SESSION_SECRET: '', JWT_SECRET: '' }, /cannot start: mode 'jwt' \(env SESSION_MODE\) needs signing keys.*\n.*fix: set JWT_SECRET/],
    ];
    for (const [env, message] of cases) {
      const { code, out } = await launch(env, tag).result();
      assert.equal(code, 2, out);
      assert.match(out, message);
      assert.doesNotMatch(out, /\n\s+at |ZodError|invalid_union/, 'no stack, no schema dump');
    }
    assertClean(tag, 'example-');
  });
});

describe('npm start: ports and names', () => {
  test('the balancer port taken: says which port and the fix, exit 1, nothing started', async () => {
    const tag = processTag();
    const p = await ports();
    await hold(p.port);
    const { code, ms, out } = await launch(p.env, tag).result();
    assert.equal(code, 1, out);
    const name = `example-${p.port}`;
    assert.deepEqual(own(out, name), [
      `[${name}] cannot start: port ${p.port} (the balancer, PORT) cannot be used: another process listens on it (another npm start?)`,
      `[${name}] fix: stop that process, or start the stack elsewhere: PORT=${p.port + 100} npm start (the stack uses PORT, PORT+1, PORT+2, PORT+10, PORT+11, PORT+12)`,
    ]);
    assert.ok(ms < 15_000, `${ms} ms`);
    assertClean(tag, name);
  });

  test('an instance port or the status page port taken: named the same way', async () => {
    const tag = processTag();
    for (const which of ['a', 'admin'] as const) {
      const p = await ports();
      const server = await hold(which === 'a' ? p.a : p.admin);
      const { code, out } = await launch(p.env, tag).result();
      assert.equal(code, 1, out);
      assert.match(out, which === 'a' ? new RegExp(`port ${p.a} \\(instance a\\) cannot be used`) : new RegExp(`port ${p.admin} \\(the balancer status page, ADMIN_PORT\\)`));
      server.close();
    }
    assertClean(tag, 'example-');
  });

  test('two stacks side by side on two ports; a third under a running name is refused; Ctrl-C stops each with exit 0', async () => {
    const tag = processTag();
    const [p1, p2, p3] = [await ports(), await ports(), await ports()];
    const one = launch(p1.env, tag);
    const two = launch(p2.env, tag);
    await Promise.all([one.proc.waitFor(/is ready: open/, 60_000), two.proc.waitFor(/is ready: open/, 60_000)]);
    // The banner names the clusters and the commands to use on them.
    assert.match(one.proc.output(), new RegExp(`clusters example-${p1.port}-a, example-${p1.port}-b`));
    assert.match(one.proc.output(), new RegExp(`npx cluster-session status --name example-${p1.port}-a`));
    assert.match(one.proc.output(), /npx cluster-session status {17}\(every running cluster\)/);
    for (const p of [p1, p2]) {
      const res = await request(`http://127.0.0.1:${p.port}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' } });
      assert.equal(res.status, 200);
      assert.equal((await request(`http://127.0.0.1:${p.port}/me`, { headers: { cookie: cookieHeader(res.cookies) } })).json.user, 'alice');
    }
    const three = await launch({ ...p3.env, STACK_NAME: `example-${p1.port}` }, tag).result();
    assert.equal(three.code, 1, three.out);
    assert.match(three.out, new RegExp(`cannot start: a stack named example-${p1.port} already runs \\(npm start, pid ${one.proc.pid}, port ${p1.port}\\)\\n.*fix: stop it`));
    assert.equal((await request(`http://127.0.0.1:${p1.port}/healthz`)).status, 200, 'the running stack is untouched');
    assert.deepEqual(await Promise.all([one.proc.stop('SIGINT', 20_000), two.proc.stop('SIGINT', 20_000)]), [0, 0]);
    assert.doesNotMatch(one.proc.output() + two.proc.output(), /ExperimentalWarning/);
    assertClean(tag, 'example-');
  });

  test('a cluster name in use by another running cluster: refused before anything starts, with the stop command', async () => {
    const tag = processTag();
    const p = await ports();
    const name = `example-${p.port}`;
    const other = startNode([CLI, 'start', SERVER, '-i', '1', '--name', `${name}-a`], {
      cwd: dir,
      env: { ...process.env, ...tag.env, CLUSTER_SESSION_RUNTIME_DIR: runtime, PORT: String(await freePort()), SQLITE_PATH: path.join(dir, 'other.sqlite') },
    });
    await other.waitFor(/1\/1 workers ready/, 30_000);
    const { code, out } = await launch(p.env, tag).result();
    assert.equal(code, 1, out);
    assert.deepEqual(own(out, name), [
      `[${name}] cannot start: the cluster name ${name}-a is in use by a running cluster (control socket ${path.join(runtime, `${name}-a.sock`)})`,
      `[${name}] fix: stop that cluster (npx cluster-session stop --name ${name}-a), or give this stack another name: STACK_NAME=other npm start`,
    ]);
    assert.equal(await other.stop('SIGTERM'), 0);
    assertClean(tag, name);
  });

  test('instances left running by a SIGKILLed npm start are stopped and replaced by the next one', async () => {
    const tag = processTag();
    const p = await ports();
    const name = `example-${p.port}`;
    const first = launch(p.env, tag);
    await first.proc.waitFor(/is ready: open/, 60_000);
    first.proc.child.kill('SIGKILL');
    await first.proc.exited;
    const orphans = tag.leftovers();
    assert.ok(orphans.length >= 4, `the primaries and workers outlive a SIGKILLed npm start: ${orphans.length}`);

    const second = launch(p.env, tag);
    await second.proc.waitFor(/is ready: open/, 60_000);
    assert.match(second.proc.output(), new RegExp(`instance ${name}-a \\(pid \\d+\\) was left running by an npm start that was killed: stopping it`));
    const alive = new Set(tag.leftovers().map((x) => x.pid));
    for (const o of orphans) assert.ok(!alive.has(o.pid), `orphan ${o.pid} (${o.command}) is gone`);
    assert.equal((await request(`http://127.0.0.1:${p.port}/healthz`)).status, 200);
    assert.equal(await second.proc.stop('SIGTERM', 20_000), 0);
    assertClean(tag, name);
  });

  test('an instance primary SIGKILLed while the stack runs: said, the rest stopped, exit 1, its control socket removed', async () => {
    const tag = processTag();
    const p = await ports();
    const name = `example-${p.port}`;
    const run = launch(p.env, tag);
    await run.proc.waitFor(/is ready: open/, 60_000);
    const record = JSON.parse(readFileSync(path.join(runtime, `${name}.stack.json`), 'utf8')) as { primaries: Array<{ pid: number; cluster: string }> };
    const b = record.primaries.find((x) => x.cluster === `${name}-b`)!;
    const socket = path.join(runtime, `${name}-b.sock`);
    assert.ok(existsSync(socket), 'the primary listens on its control socket');
    // SIGKILL: the primary cannot remove its socket; its workers notice the lost primary and exit on their own.
    process.kill(b.pid, 'SIGKILL');
    const { code, out } = await run.result();
    assert.equal(code, 1, out);
    assert.match(out, new RegExp(`\\[${name}\\] instance b \\(cluster ${name}-b\\) stopped \\(SIGKILL\\); stopping the stack`));
    assert.match(out, new RegExp(`\\[${name}\\] removed the control socket ${socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} that instance ${name}-b \\(pid ${b.pid}\\) left`));
    assertClean(tag, name, out);
  });
});

describe('npm start over HTTPS (TLS_CERT / TLS_KEY)', () => {
  test('the balancer speaks HTTPS with the certificate: login over TLS gets a Secure session cookie and HSTS; a missing key is a two-line error', async () => {
    const ca = testCA(path.join(dir, 'tls'));
    const cert = ca.issue('site', ['localhost', '127.0.0.1']);
    const tag = processTag();
    const bad = await launch({ ...(await ports()).env, TLS_CERT: cert.cert }, tag).result();
    assert.equal(bad.code, 2, bad.out);
    assert.match(bad.out, /TLS_CERT is set without TLS_KEY: HTTPS needs both/);

    const p = await ports();
    const run = launch({ ...p.env, TLS_CERT: cert.cert, TLS_KEY: cert.key }, tag);
    const dispatcher = new Agent({ connect: { ca: ca.pem } });
    try {
      await run.proc.waitFor(/is ready: open https:\/\/localhost:\d+/, 30_000);
      assert.match(run.proc.output(), /balancer : round-robin, HTTPS/);
      const login = await fetch(`https://127.0.0.1:${p.port}/login`, { dispatcher, method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password: 'wonderland' }) });
      assert.equal(login.status, 200, await login.clone().text());
      const cookie = login.headers.getSetCookie().find((c) => /HttpOnly/i.test(c)) ?? '';
      assert.match(cookie, /; Secure/i, `the session cookie is Secure behind TLS: ${cookie}`);
      assert.equal(login.headers.get('strict-transport-security'), 'max-age=86400');
      const me = await fetch(`https://127.0.0.1:${p.port}/me`, { dispatcher, headers: { cookie: cookie.split(';')[0]! } });
      assert.equal(me.status, 200);
      assert.equal(await run.proc.stop('SIGTERM', 20_000), 0);
    } finally {
      await dispatcher.close();
      await run.proc.stop('SIGKILL');
    }
    assertClean(tag, `example-${p.port}`);
  });
});

describe('npm start: instances that do not come up', () => {
  test('Redis unreachable: within seconds a line naming the store, its address and ECONNREFUSED (the words /healthz uses); exit 1 within 15 s of an instance being up', async () => {
    const tag = processTag();
    const p = await ports();
    const redisPort = await freePort();
    const name = `example-${p.port}`;
    const run = launch({ ...p.env, SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}` }, tag);
    const words = `redis store at redis://127.0.0.1:${redisPort} is unreachable: connect ECONNREFUSED 127.0.0.1:${redisPort}`;
    await run.proc.waitFor(/workers ready/, 15_000);
    const up = Date.now();
    // The line names the instance that is up; the other may not listen yet, so its own /healthz is asked.
    const waiting = await run.proc.waitFor(new RegExp(`\\[${name}\\] waiting for instance [ab] \\(:(\\d+)\\): ${words.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), 15_000);
    console.log(`# waiting line ${Date.now() - run.started} ms after npm start began, ${Date.now() - up} ms after an instance was up`);
    assert.ok(Date.now() - up < 2_000, 'said within 2 s of the instance answering');
    const health = await request(`http://127.0.0.1:${waiting[1]}/healthz`);
    assert.equal(health.status, 503);
    assert.equal(health.json.error, words, '/healthz says the same');
    const { code, ms, out } = await run.result();
    assert.equal(code, 1, out);
    const lines = own(out, name);
    assert.match(lines.at(-2)!, new RegExp(`cannot start: instance [ab] is not healthy after 10 s: redis store at redis://127\\.0\\.0\\.1:${redisPort}`));
    assert.match(lines.at(-1)!, new RegExp(`fix: start Redis at redis://127\\.0\\.0\\.1:${redisPort} \\(e\\.g\\. redis-server --port ${redisPort}\\)`));
    // 10 s of waiting for health, then every child stopped; the time to boot the workers before depends on the load.
    const sinceUp = Date.now() - up;
    assert.ok(sinceUp < 15_000, `exited ${sinceUp} ms after an instance was up (${ms} ms after npm start began)`);
    assertClean(tag, name);
  });

  test('Redis comes up while npm start waits for it: the stack starts and serves the login', { skip: needs('redis-server') }, async () => {
    const tag = processTag();
    const p = await ports();
    const redisPort = await freePort();
    const run = launch({ ...p.env, SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}` }, tag);
    await run.proc.waitFor(/waiting for instance .*ECONNREFUSED/, 15_000);
    const redis = await startRedis({ port: redisPort });
    after(() => redis.close());
    await run.proc.waitFor(/is ready: open/, 30_000);
    const res = await request(`http://127.0.0.1:${p.port}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' } });
    assert.equal(res.status, 200, res.body);
    assert.equal(await run.proc.stop('SIGTERM', 20_000), 0);
    assertClean(tag, `example-${p.port}`);
  });

  test('the balancer port taken while the instances started: said the same way, the instances stopped', { skip: needs('redis-server') }, async () => {
    const tag = processTag();
    const p = await ports();
    const redisPort = await freePort();
    const name = `example-${p.port}`;
    const run = launch({ ...p.env, SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${redisPort}` }, tag);
    // The instances wait for Redis, so the port is free when checked and taken by the time the balancer binds it.
    await run.proc.waitFor(/waiting for instance .*ECONNREFUSED/, 15_000);
    await hold(p.port);
    const redis = await startRedis({ port: redisPort });
    after(() => redis.close());
    const { code, out } = await run.result();
    assert.equal(code, 1, out);
    assert.match(own(out, name).at(-2)!, new RegExp(`cannot start: balancer option listen = 127\\.0\\.0\\.1:${p.port} cannot be bound \\(EADDRINUSE\\)`));
    assert.match(own(out, name).at(-1)!, /fix: stop that process, or start the stack elsewhere/);
    assertClean(tag, name);
  });

  test('a store that accepts connections and never answers: unhealthy, then exit 1 with the same kind of message', async () => {
    const tag = processTag();
    const p = await ports();
    const silent = await freePort();
    await hold(silent);
    const name = `example-${p.port}`;
    const run = launch({ ...p.env, SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${silent}` }, tag);
    await run.proc.waitFor(/workers ready/, 30_000);
    const up = Date.now();
    const { code, ms, out } = await run.result();
    assert.equal(code, 1, out);
    assert.match(out, new RegExp(`\\[${name}\\] waiting for instance [ab] \\(:\\d+\\): redis store at redis://127\\.0\\.0\\.1:${silent} `));
    assert.match(own(out, name).at(-2)!, /cannot start: instance [ab] is not healthy after 10 s: redis store at/);
    // As for Redis unreachable: 10 s of waiting for health, then every child stopped; booting before that depends
    // on the load (16.4 s in all was seen in CI).
    assert.ok(Date.now() - up < 15_000, `exited ${Date.now() - up} ms after an instance was up (${ms} ms after npm start began)`);
    assertClean(tag, name);
  });

  test('an unusable SQLITE_PATH: a configuration error before anything starts', async () => {
    const tag = processTag();
    const p = await ports();
    const { code, out } = await launch({ ...p.env, SQLITE_PATH: '/dev/null/sessions.sqlite' }, tag).result();
    assert.equal(code, 2, out);
    assert.match(out, /cannot start: SQLITE_PATH \/dev\/null\/sessions\.sqlite cannot be used: EEXIST on \/dev\/null\n.*fix: set SQLITE_PATH to a file in a writable directory/);
    assertClean(tag, `example-${p.port}`);
  });

  test('an instance that dies during start (its SQLite file is not a database): says which and stops the rest', async () => {
    const tag = processTag();
    const p = await ports();
    const name = `example-${p.port}`;
    const garbage = path.join(dir, 'not-a-database.sqlite');
    writeFileSync(garbage, 'this is not an SQLite database, '.repeat(200));
    const { code, ms, out } = await launch({ ...p.env, SQLITE_PATH: garbage }, tag).result();
    assert.equal(code, 1, out);
    assert.match(out, /file is not a database/, "the workers' own error is shown");
    const lines = own(out, name);
    assert.match(lines.at(-2)!, /cannot start: instance [ab] \(cluster example-\d+-[ab]\) stopped during start \(exit code 1\)/);
    assert.equal(lines.at(-1), `[${name}] fix: see its output above for the cause`);
    // As soon as the instance dies, not after the 45 s an instance gets to listen (the margin is for a loaded CI).
    assert.ok(ms < 30_000, `exited after ${ms} ms`);
    assertClean(tag, name);
  });

  test('Ctrl-C during start stops everything it started, at once, exit 130', async () => {
    const tag = processTag();
    const p = await ports();
    const name = `example-${p.port}`;
    const run = launch({ ...p.env, SESSION_STORE: 'redis', REDIS_URL: `redis://127.0.0.1:${await freePort()}` }, tag);
    await run.proc.waitFor(/waiting for instance/, 15_000);
    const interrupted = Date.now();
    // The terminal sends SIGINT to the whole foreground process group; here the launcher's primaries get it too.
    run.proc.child.kill('SIGINT');
    const { code, out } = await run.result();
    assert.equal(code, 130, out);
    assert.match(out, new RegExp(`\\[${name}\\] SIGINT during start: stopping everything it started`));
    assert.doesNotMatch(out, /cannot start/, 'an interruption is not reported as a failure');
    assert.ok(Date.now() - interrupted < 10_000, `stopped ${Date.now() - interrupted} ms after Ctrl-C`);
    assertClean(tag, name, out);
  });
});

const old = oldNode();

describe('npm start on an old Node', { skip: old ? false : 'no Node older than 22 on this machine' }, () => {
  test('one line: needed, found, how to get Node 24 (not ERR_UNKNOWN_FILE_EXTENSION)', async () => {
    const proc = startProcess(old!, ['--import', CHECK, '--conditions=source', START], { cwd: dir });
    assert.equal(await proc.exited, 1);
    const found = execFileSync(old!, ['--version'], { encoding: 'utf8' }).trim();
    assert.equal(
      proc.output(),
      `This starter needs Node.js 22.18 or newer (24 LTS recommended), found ${found}. Get Node 24: \`nvm install\` (reads .nvmrc), or https://nodejs.org/en/download\n`,
    );
  });
});

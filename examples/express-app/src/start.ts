/**
 * `npm start`: the whole example stack on one machine, with nothing installed but Node.
 *
 *   balancer :PORT  ──►  instance a :PORT+1 (a cluster of WORKERS workers)
 *                   └─►  instance b :PORT+2 (a cluster of WORKERS workers)
 *
 * Both instances share one session store (SESSION_STORE, default the embedded SQLite file) and one secret, so a
 * login made through any worker of any instance is seen by all of them.
 *
 * Every way of failing to start ends the same way: what failed and the fix, in two lines, every process this
 * started stopped, and a non-zero exit (2 for a configuration error, 1 otherwise, 128+n for a signal).
 */
import { accessSync, constants, mkdirSync } from 'node:fs';
import net from 'node:net';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBalancer, type Balancer } from '@cluster-session/balancer';
import { startInstance, waitHealthy, type Instance } from './instances.ts';
import { claimStack, type StackLock } from './stack-lock.ts';
import { readStackConfig, stackName, StackError, type StackConfig } from './stack-config.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
// server.ts here, server.js in the JavaScript starter (`npm create cluster-session` ships both variants).
const SERVER = path.join(here, `server${path.extname(fileURLToPath(import.meta.url))}`);
const cli = path.join(path.dirname(fileURLToPath(import.meta.resolve('@cluster-session/cli/package.json'))), 'bin', 'cluster-session.js');
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

const prefix = `[${stackName()}]`;
const log = (line: string) => process.stderr.write(`${prefix} ${line}\n`);

let balancer: Balancer | undefined;
let lock: StackLock | undefined;
const instances: Instance[] = [];
const starting = new AbortController();
let interruptedBy: NodeJS.Signals | undefined;
let running = false;
let stopping: Promise<never> | undefined;

/** Stops the balancer, then the instances (drained, killed if they take too long); every caller gets the same stop. */
function stop(code: number): Promise<never> {
  stopping ??= (async () => {
    await Promise.race([balancer?.close(1_000), new Promise((r) => setTimeout(r, 2_000))]);
    await Promise.all(instances.map((i) => i.stop(7_000)));
    await lock?.release();
    process.exit(code);
  })();
  return stopping;
}

// Installed before anything starts, so Ctrl-C at any moment stops what has been started so far. Ctrl-C also
// reaches the instances (one process group): they begin draining on their own; the second Ctrl-C stops them now.
let signals = 0;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    signals++;
    if (signals > 1) {
      for (const i of instances) i.child.kill('SIGINT');
      return;
    }
    if (!running) {
      log(`${signal} during start: stopping everything it started`);
      interruptedBy = signal;
      starting.abort();
      return;
    }
    log(`${signal}: stopping the stack (${signal === 'SIGINT' ? 'Ctrl-C again to stop at once' : 'gracefully'})`);
    void stop(0);
  });
}

/** Fails before binding anything when a port the stack needs is taken, naming the port and what it was for. */
async function assertFree(c: StackConfig, port: number, host: string | undefined, what: string): Promise<void> {
  const server = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, resolve);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new StackError(
      `port ${port} (${what}) cannot be used: ${code === 'EADDRINUSE' ? 'another process listens on it (another npm start?)' : code}`,
      `stop that process, or start the stack elsewhere: PORT=${c.port + 100} npm start (the stack uses PORT, PORT+1, PORT+2, PORT+10, PORT+11, PORT+12)`,
    );
  } finally {
    server.close();
  }
}

/** The embedded store's directory must be creatable and writable: otherwise every worker would crash on it. */
function assertWritable(c: StackConfig): void {
  const file = c.shared.SQLITE_PATH!;
  if (c.store !== 'sqlite') return;
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    accessSync(path.dirname(file), constants.W_OK);
  } catch (err) {
    throw new StackError(
      `SQLITE_PATH ${file} cannot be used: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} on ${path.dirname(file)}`,
      'set SQLITE_PATH to a file in a writable directory, or unset it for .data/sessions.sqlite',
      2,
    );
  }
}

/** The fix to print when an instance stays unhealthy: what to do about its store. */
function storeAdvice(c: StackConfig): string {
  const at = c.storeAddress ? ` at ${c.storeAddress}` : '';
  if (c.store === 'redis') return `start Redis${at} (e.g. redis-server --port ${portOf(c.storeAddress, 6379)}), point REDIS_URL at a running one, or unset SESSION_STORE for the embedded store`;
  if (c.store === 'mongo') return `start MongoDB${at} (e.g. docker compose up -d mongo), point MONGO_URL at a running one, or unset SESSION_STORE for the embedded store`;
  if (c.store === 'sqlite') return `check that SQLITE_PATH (${c.storeAddress}) is a writable file on a local disk`;
  return "see the instances' output above";
}

const portOf = (url: string | undefined, fallback: number) => {
  try {
    return Number(new URL(url!).port) || fallback;
  } catch {
    return fallback;
  }
};

function banner(c: StackConfig): string {
  const scheme = c.tls ? 'https' : 'http';
  const open = c.host === '0.0.0.0' || c.host === '::' ? `${scheme}://${hostname()}:${c.port}` : `${scheme}://${c.host === '127.0.0.1' ? 'localhost' : c.host}:${c.port}`;
  const sessions = c.mode === 'jwt' ? `JWT (stateless; revocation on the ${c.store} store)` : `${c.store} store${c.storeAddress ? ` at ${c.storeAddress}` : ''}`;
  const [a, b] = c.instances as [StackConfig['instances'][0], StackConfig['instances'][0]];
  return [
    '',
    `cluster-session example is ready: open ${open}`,
    `  sessions : ${sessions}`,
    `  instances: a on :${a.port}, b on :${b.port}, ${c.workers} workers each (clusters ${a.cluster}, ${b.cluster})`,
    `  balancer : ${c.strategy}${c.tls ? ', HTTPS (TLS_CERT; Secure cookies, HSTS)' : ''}, status page http://localhost:${c.adminPort}`,
    `  metrics  : balancer http://localhost:${c.adminPort}/metrics, a http://localhost:${a.metricsPort}/metrics, b http://localhost:${b.metricsPort}/metrics`,
    `  try      : npx cluster-session status                 (every running cluster)`,
    `             npx cluster-session status --name ${a.cluster}`,
    `             npx cluster-session reload --name ${b.cluster}   (new workers, no request lost, still signed in)`,
    '  stop with Ctrl-C',
    '',
  ].join('\n');
}

async function startBalancer(c: StackConfig): Promise<Balancer> {
  try {
    return await createBalancer({
      listen: { port: c.port, host: c.host },
      upstreams: c.instances.map((i) => ({ id: i.id, url: `http://127.0.0.1:${i.port}`, status: `http://127.0.0.1:${i.metricsPort}` })),
      strategy: c.strategy,
      health: { path: '/healthz' },
      // Each instance is a cluster whose primary deals *connections* to workers: a pool shared by all clients
      // would pin everyone to one worker per instance, and --sticky --trust-proxy keys on a connection's first
      // X-Forwarded-For, which is only right when a connection carries one client. So one instance connection per
      // client connection (HAProxy `http-reuse never`).
      reuse: 'client',
      admin: { port: c.adminPort, host: '127.0.0.1' },
      // HTTPS at the balancer: the instances learn it from X-Forwarded-Proto (they trust loopback proxies), so the
      // session cookie gets Secure; HSTS for a day (a development certificate should not pin a browser for a year).
      ...(c.tls ? { tls: { certs: [c.tls], hsts: 86_400 } } : {}),
      log: (line) => console.error(`[balancer] ${line}`),
    });
  } catch (err) {
    // A TLS file that does not load: the balancer's message names the variable's file; a configuration error.
    if ((err as { code?: string }).code === 'CS_ERR_BALANCER_CONFIG' && c.tls) {
      throw new StackError((err as Error).message.replace(/\(--tls-cert\)/, '(TLS_CERT)').replace(/\(--tls-key\)/, '(TLS_KEY)'), 'point TLS_CERT and TLS_KEY at a PEM certificate and its key', 2);
    }
    // Taken since the check above (another process was quicker): the balancer's own message names the port.
    if ((err as { code?: string }).code === 'CS_ERR_BALANCER_LISTEN') throw new StackError((err as Error).message, `stop that process, or start the stack elsewhere: PORT=${c.port + 100} npm start`);
    throw err;
  }
}

async function main(): Promise<void> {
  const c = readStackConfig();
  assertWritable(c);
  lock = await claimStack(c, log);
  await assertFree(c, c.port, c.host, 'the balancer, PORT');
  await assertFree(c, c.adminPort, '127.0.0.1', 'the balancer status page, ADMIN_PORT');
  for (const i of c.instances) await assertFree(c, i.port, undefined, `instance ${i.id}`);
  for (const i of c.instances) await assertFree(c, i.metricsPort, '127.0.0.1', `instance ${i.id}'s metrics, METRICS_PORTS`);
  if (starting.signal.aborted) throw starting.signal.reason;

  const env = { ...process.env, ...c.shared };
  for (const spec of c.instances) {
    instances.push(startInstance(spec, { cli, entry: SERVER, workers: c.workers, sticky: c.sticky, env }));
  }
  lock.primaries(instances.map((i) => ({ pid: i.child.pid!, cluster: i.spec.cluster })));
  const advice = storeAdvice(c);
  await Promise.all(instances.map((i) => waitHealthy(i, { signal: starting.signal, advice, log })));
  // Only now: a balancer started earlier would have counted the instances' boot as failed health checks and
  // sent its first clients a 503 until they passed again. Its port was checked above.
  balancer = await startBalancer(c);

  running = true;
  console.log(banner(c));
  for (const i of instances) {
    void i.exited.then((how) => {
      if (stopping) return;
      log(`instance ${i.spec.id} (cluster ${i.spec.cluster}) stopped (${how}); stopping the stack`);
      void stop(1);
    });
  }
}

try {
  await main();
} catch (err) {
  // Once interrupted, whatever the start was waiting for fails too: the interruption, said above, is the news.
  if (interruptedBy) await stop(SIGNAL_EXIT[interruptedBy] ?? 1);
  if (err instanceof StackError) {
    log(`cannot start: ${err.message}`);
    log(`fix: ${err.fix}`);
  } else {
    log(`cannot start: ${(err as Error)?.stack ?? String(err)}`);
  }
  await stop(err instanceof StackError ? err.exitCode : 1);
}

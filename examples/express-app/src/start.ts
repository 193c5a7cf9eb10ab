/**
 * `npm start`: the whole example stack on one machine, with nothing installed but Node.
 *
 *   balancer :PORT  ──►  instance a :PORT+1 (a cluster of WORKERS workers)
 *                   └─►  instance b :PORT+2 (a cluster of WORKERS workers)
 *
 * Both instances share one session store (SESSION_STORE, default the embedded SQLite file) and one secret, so a
 * login made through any worker of any instance is seen by all of them.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, type ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createBalancer, type Balancer } from '@cluster-session/balancer';

const env = process.env;
const port = Number(env.PORT ?? 3000);
const workers = env.WORKERS ?? String(availableParallelism());
const mode = env.SESSION_MODE ?? 'store';
const store = env.SESSION_STORE ?? 'sqlite';
const production = env.NODE_ENV === 'production';
// The fallback for state that cannot be shared (STICKY=1, e.g. with the memory store): the balancer pins each
// client to an instance with a cookie, and each instance's primary pins it to a worker by the client address the
// balancer forwards (it trusts X-Forwarded-For from the balancer on loopback only).
const sticky = env.STICKY === '1';
const balancerStrategy = (env.BALANCER_STRATEGY ?? (sticky ? 'cookie' : 'round-robin')) as 'round-robin' | 'least-conn' | 'ip-hash' | 'cookie';
const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(path.dirname(fileURLToPath(import.meta.resolve('@cluster-session/cli/package.json'))), 'bin', 'cluster-session.js');

// Separate instances are separate primaries: each would invent its own development secret, and a cookie signed by
// one would be refused by the other. Generate the secrets once here and hand the same ones to both.
const shared: Record<string, string> = {
  SQLITE_PATH: path.resolve(env.SQLITE_PATH ?? '.data/sessions.sqlite'),
};
if (!production) {
  shared.SESSION_SECRET = env.SESSION_SECRET ?? randomBytes(32).toString('base64url');
  if (mode === 'jwt') shared.JWT_SECRET = env.JWT_SECRET ?? randomBytes(32).toString('base64url');
}

const stack = env.STACK_NAME ?? 'example';
const instancePorts = (env.INSTANCE_PORTS ?? `${port + 1},${port + 2}`).split(',').map(Number);
const adminPort = Number(env.ADMIN_PORT ?? port + 10);
const instances = ['a', 'b'].map((name, i) => ({ name, port: instancePorts[i] ?? port + 1 + i }));
const children: ChildProcess[] = instances.map(({ name, port: instancePort }) =>
  spawn(process.execPath, [...process.execArgv, cli, 'start', path.join(here, 'server.ts'), '-i', workers, '--name', `${stack}-${name}`, ...(sticky ? ['--sticky', '--trusted-proxy', '127.0.0.1'] : [])], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...env, ...shared, PORT: String(instancePort), INSTANCE: name },
  }),
);
let stopping = false;
for (const child of children) {
  child.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`an instance exited (${code ?? signal}); stopping the stack`);
      void stop(1);
    }
  });
}

// Wait until every instance answers its health check, so the banner below is printed when the app really serves.
let balancer: Balancer | undefined;
try {
  await Promise.all(instances.map((i) => waitHealthy(`http://127.0.0.1:${i.port}/healthz`)));
} catch (err) {
  console.error(`the example stack did not start: ${(err as Error).message}`);
  await stop(1);
}

balancer = await createBalancer({
  listen: { port, host: env.HOST ?? '127.0.0.1' },
  upstreams: instances.map((i) => ({ id: i.name, url: `http://127.0.0.1:${i.port}` })),
  strategy: balancerStrategy,
  health: { path: '/healthz' },
  // Each instance is a cluster whose primary deals *connections* to workers: a pool shared by all clients would
  // pin everyone to one worker per instance, and --sticky --trust-proxy keys on a connection's first
  // X-Forwarded-For, which is only right when a connection carries one client. So one instance connection per
  // client connection (HAProxy `http-reuse never`).
  reuse: 'client',
  admin: { port: adminPort, host: '127.0.0.1' },
  log: (line) => console.error(`[balancer] ${line}`),
});

const where = store === 'sqlite' ? ` at ${shared.SQLITE_PATH}` : store === 'redis' ? ` at ${env.REDIS_URL ?? 'redis://127.0.0.1:6379'}` : '';
console.log(
  [
    '',
    `cluster-session example is ready: open http://localhost:${port}`,
    `  sessions : ${mode === 'jwt' ? 'JWT (stateless, revocation on the embedded store)' : `${store} store${where}`}`,
    `  instances: ${instances.map((i) => `${i.name} on :${i.port}`).join(', ')}, ${workers} workers each`,
    `  balancer : ${balancerStrategy}, status page http://localhost:${adminPort}`,
    '  stop with Ctrl-C',
    '',
  ].join('\n'),
);

async function waitHealthy(url: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    if (stopping) throw new Error('stack is stopping');
    if (Date.now() > deadline) throw new Error(`${url} was not healthy within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
let stopped: Promise<never> | undefined;
/** Stops the balancer, then drains both instances; every caller waits for the same stop, which ends the process. */
function stop(code: number): Promise<never> {
  stopping = true;
  return (stopped ??= (async () => {
    await balancer?.close();
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    process.exit(code);
  })());
}
process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));

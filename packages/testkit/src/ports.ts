import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { alive } from './process.ts';

/**
 * The kernel's ephemeral range (ip_local_port_range): every `listen(0)` and every outgoing connection of every
 * process on the machine takes its port from there, so a port picked in it can be taken by someone else between
 * the pick and the bind (seen in CI: a stack's instance port, picked a moment before, was already in use).
 * freePort() picks below it instead, where only explicit binds land.
 */
function ephemeralStart(): number {
  try {
    return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  } catch {
    return 32768;
  }
}
const HIGH = Math.min(ephemeralStart(), 65536) - 1;
const LOW = Math.max(HIGH - 12_000, 1025);
/** Ports this process handed out: never twice, even once the test that had one closed it. */
const given = new Set<number>();

/**
 * Ports handed out by any test file of this run. `node --test` runs each file in a process of its own, all children
 * of one runner, so the runner's pid names the run; a port is claimed by creating its file there (exclusive
 * create, atomic between processes). Without this, a port a test had released for a moment (a Redis master killed
 * and started again on its port, in the Sentinel failover test) was picked by another file and the restart failed
 * with EADDRINUSE. The directories of runs whose runner is gone are removed as the next run starts.
 */
const CLAIMS = path.join(tmpdir(), `cs-test-ports-${process.ppid}`);
try {
  for (const name of readdirSync(tmpdir())) {
    const m = /^cs-test-ports-(\d+)$/.exec(name);
    if (m && !alive(Number(m[1]))) rmSync(path.join(tmpdir(), name), { recursive: true, force: true });
  }
  mkdirSync(CLAIMS, { recursive: true });
} catch {
  // A tmpdir we cannot list or write: the claims below then fail open, and the random pick is all there is.
}

/** True when no other test file of this run has claimed `port` (claimed for this one now). */
function claim(port: number): boolean {
  try {
    writeFileSync(path.join(CLAIMS, String(port)), '', { flag: 'wx' });
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EEXIST';
  }
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(host === '::' && err.code === 'EAFNOSUPPORT'));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * A TCP port free a moment ago on 127.0.0.1 and on every address (servers under test bind `::` too), outside the
 * ephemeral range and never handed out before by this process nor by another test file of this run (CLAIMS).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (given.has(port)) continue;
    given.add(port);
    if (!claim(port)) continue;
    if ((await bindable(port, '127.0.0.1')) && (await bindable(port, '::'))) return port;
  }
  throw new Error(`no free port found between ${LOW} and ${HIGH}`);
}

/** Resolves once something accepts TCP connections on host:port, rejects after `timeoutMs`. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

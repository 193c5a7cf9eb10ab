import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { startProcess, type Proc } from './process.ts';

/** Where a Redis (or Sentinel) process listens, and how `redisCli` reaches it. */
export interface RedisAddress {
  /** Default 127.0.0.1. */
  readonly host?: string;
  readonly port: number;
  /** The network namespace it runs in (redis-cli is run there too). */
  readonly netns?: string;
  readonly password?: string;
}

export interface RedisServer {
  readonly port: number;
  readonly host: string;
  readonly address: RedisAddress;
  readonly url: string;
  readonly dir: string;
  proc: Proc;
  /** Stops the server (SIGTERM, or SIGKILL for a crash). The port stays reserved for `start()`. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and directory (with AOF on, data written before the stop is back). */
  start(): Promise<void>;
  /** Stops it and removes its directory. */
  close(): Promise<void>;
}

export interface RedisOptions {
  /** Extra `redis-server` arguments, e.g. ['--appendonly', 'yes']. */
  args?: readonly string[];
  port?: number;
  /**
   * Run inside this network namespace (root only), listening on `host` (an address of the namespace) and on the
   * namespace's own 127.0.0.1. Without it the server listens on 127.0.0.1 of this host only.
   */
  netns?: string;
  host?: string;
  /** `requirepass` and `masterauth` (so replicas of it authenticate too). */
  password?: string;
}

/**
 * A private redis-server on a free port in its own temporary directory: never the shared 6379, so a test may
 * stop, restart and fail it. Uses `REDIS_SERVER` as the binary when set.
 */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-redis-'));
  const host = options.host ?? '127.0.0.1';
  if (host !== '127.0.0.1' && !options.netns) throw new Error('startRedis: host needs netns (tests listen on 127.0.0.1 or inside their own namespaces)');
  // A fresh namespace has every port free; on this host's loopback, pick one.
  const port = options.port ?? (options.netns ? 6379 : await freePort());
  const bin = process.env.REDIS_SERVER ?? 'redis-server';
  const bind = host === '127.0.0.1' ? ['127.0.0.1'] : [host, '127.0.0.1'];
  // Without a password Redis only answers loopback clients (protected mode); a namespace is the test's own network.
  const auth = options.password ? ['--requirepass', options.password, '--masterauth', options.password] : options.netns ? ['--protected-mode', 'no'] : [];
  const args = ['--port', String(port), '--bind', ...bind, '--dir', dir, '--save', '', '--appendonly', 'no', ...auth, ...(options.args ?? [])];
  const launch = async (): Promise<Proc> => {
    const proc = startProcess(bin, args, { netns: options.netns });
    await Promise.race([
      proc.waitFor(/Ready to accept connections/, 10_000),
      proc.exited.then((code) => {
        throw new Error(`redis-server exited (${code}):\n${proc.output()}`);
      }),
    ]);
    // Redis prints the line once it listens; the extra check is for this host's loopback only (a namespace's
    // addresses are not reachable from here).
    if (!options.netns) await waitForPort(port);
    return proc;
  };
  const credentials = options.password ? `:${encodeURIComponent(options.password)}@` : '';
  const server: RedisServer = {
    port,
    host,
    address: { host, port, ...(options.netns ? { netns: options.netns } : {}), ...(options.password ? { password: options.password } : {}) },
    url: `redis://${credentials}${host}:${port}`,
    dir,
    proc: await launch(),
    async stop(signal = 'SIGTERM') {
      await server.proc.stop(signal);
    },
    async start() {
      server.proc = await launch();
    },
    async close() {
      await server.proc.stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return server;
}

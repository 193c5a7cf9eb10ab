import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, waitForPort } from './ports.ts';
import { startProcess, type Proc } from './process.ts';

export interface RedisServer {
  readonly port: number;
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
}

/**
 * A private redis-server on a free port in its own temporary directory: never the shared 6379, so a test may
 * stop, restart and fail it. Uses `REDIS_SERVER` as the binary when set.
 */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-redis-'));
  const port = options.port ?? (await freePort());
  const bin = process.env.REDIS_SERVER ?? 'redis-server';
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...(options.args ?? [])];
  const launch = async (): Promise<Proc> => {
    const proc = startProcess(bin, args);
    await Promise.race([
      proc.waitFor(/Ready to accept connections/, 10_000),
      proc.exited.then((code) => {
        throw new Error(`redis-server exited (${code}):\n${proc.output()}`);
      }),
    ]);
    await waitForPort(port);
    return proc;
  };
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
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

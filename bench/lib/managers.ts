import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request, startProcess, type Proc } from '@cluster-session/testkit';
import { sharedInstall } from './built.ts';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES = path.join(here, '..', 'fixtures');
/** The CLI of a built install (built.ts): workers start as a user's do, without the TypeScript stripper. */
const cli = () => path.join(sharedInstall(), 'node_modules', '@cluster-session', 'cli', 'bin', 'cluster-session.js');

/** Polls until `url` answers 200 `times` in a row with `distinct` different pids (all workers up). */
export async function waitServing(url: string, distinct = 1, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pids = new Set<number>();
  while (Date.now() < deadline) {
    try {
      const res = await request(url, { timeoutMs: 1_000 });
      if (res.status === 200) pids.add(res.json?.pid);
      if (pids.size >= distinct) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not serve from ${distinct} workers within ${timeoutMs} ms`);
}

export interface Managed {
  /** The manager's own process (our primary, PM2's God daemon): its children are the workers. */
  readonly pid?: number;
  reload(): Promise<void>;
  stop(): Promise<void>;
}

/** Our cluster, through the public CLI: `cluster-session start <entry> -i N [--sticky]`. */
export async function startOurs(entry: string, workers: number, port: number, extra: string[] = []): Promise<Managed> {
  const name = `bench-${process.pid}-${port}`;
  const bin = cli();
  const proc: Proc = startProcess(process.execPath, [bin, 'start', entry, '-i', String(workers), '--name', name, '--port', String(port), ...extra], {
    env: { ...process.env, PORT: String(port), NODE_ENV: 'production' },
  });
  // Ready means every slot says so: counting pids seen from one client cannot work in sticky mode.
  await proc.waitFor(new RegExp(`${workers}/${workers} workers ready`), 30_000);
  await waitServing(`http://127.0.0.1:${port}/`);
  return {
    pid: proc.pid,
    async reload() {
      await run(process.execPath, [bin, 'reload', '--name', name]);
    },
    async stop() {
      await proc.stop('SIGTERM', 15_000);
    },
  };
}

/** PM2 in cluster mode with a private PM2_HOME, so the bench never touches a user's own PM2 daemon. */
export async function startPm2(entry: string, workers: number, port: number): Promise<Managed> {
  const pm2 = path.join(path.dirname(createRequire(import.meta.url).resolve('pm2/package.json')), 'bin', 'pm2');
  const home = mkdtempSync(path.join(tmpdir(), 'cs-pm2-'));
  const env = { ...process.env, PM2_HOME: home, PORT: String(port), NODE_ENV: 'production' };
  const pm2run = (...args: string[]) => run(process.execPath, [pm2, ...args], { env });
  await pm2run('start', entry, '-i', String(workers), '--name', 'bench');
  await waitServing(`http://127.0.0.1:${port}/`, workers);
  return {
    // The God daemon: its children are the workers.
    pid: Number(readFileSync(path.join(home, 'pm2.pid'), 'utf8')),
    async reload() {
      await pm2run('reload', 'bench');
    },
    async stop() {
      await pm2run('kill');
      rmSync(home, { recursive: true, force: true });
    },
  };
}

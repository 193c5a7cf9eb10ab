import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { freePort, startNode, type Client, type HttpResult, type Proc } from '@cluster-session/testkit';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const START = path.join(ROOT, 'examples', 'express-app', 'src', 'start.ts');
export const CLI = path.join(ROOT, 'packages', 'cli', 'bin', 'cluster-session.js');
const run = promisify(execFile);

export interface Stack {
  readonly url: string;
  readonly name: string;
  readonly proc: Proc;
  readonly instancePorts: number[];
  /** The balancer's admin port (status page, /metrics). */
  readonly adminPort: number;
  /** Each instance's `--metrics` port (/metrics, /status.json). */
  readonly metricsPorts: number[];
  /** `cluster-session <command> --name <stack>-<instance>` against one instance's primary. */
  cli(command: 'reload' | 'status' | 'stop', instance: 'a' | 'b', ...args: string[]): Promise<string>;
  /** Every slot of both instances, from `cluster-session status --json`. */
  slots(): Promise<Array<{ slot: number; pid: number; state: string }>>;
  close(): Promise<void>;
}

let counter = 0;

/** The example stack exactly as `npm start` runs it (balancer + 2 instances × `workers`), on free ports. */
export async function startStack(env: Record<string, string> = {}, workers = 2): Promise<Stack> {
  const [port, a, b, admin, ma, mb] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-e2e-'));
  const name = `e2e-${process.pid}-${++counter}`;
  const proc = startNode([START], {
    cwd: dir,
    env: {
      ...process.env,
      PORT: String(port),
      INSTANCE_PORTS: `${a},${b}`,
      ADMIN_PORT: String(admin),
      METRICS_PORTS: `${ma},${mb}`,
      WORKERS: String(workers),
      STACK_NAME: name,
      SQLITE_PATH: path.join(dir, 'sessions.sqlite'),
      ...env,
    },
  });
  await proc.waitFor(/is ready: open/, 90_000);
  const stack: Stack = {
    url: `http://127.0.0.1:${port}`,
    name,
    proc,
    instancePorts: [a!, b!],
    adminPort: admin!,
    metricsPorts: [ma!, mb!],
    async cli(command, instance, ...args) {
      const { stdout } = await run(process.execPath, [...process.execArgv.filter((x) => !x.startsWith('--test')), CLI, command, '--name', `${name}-${instance}`, ...args]);
      return stdout;
    },
    async slots() {
      const both = await Promise.all((['a', 'b'] as const).map(async (i) => JSON.parse(await stack.cli('status', i, '--json')) as Array<{ slot: number; pid: number; state: string }>));
      return both.flat();
    },
    async close() {
      await proc.stop('SIGTERM', 20_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return stack;
}

/** Logs a testkit client (cookie jar) in with the demo account, as a user of the example would. */
export function login(c: Client, username = 'alice', password = 'wonderland'): Promise<HttpResult> {
  return c.send('POST', '/login', { username, password });
}

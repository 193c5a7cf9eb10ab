import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startNode, startProcess, type Proc } from '@cluster-session/testkit';
export { alive } from '@cluster-session/testkit';

/** The `cluster-session` binary (@cluster-session/cli): these suites drive the cluster through it, as users do. */
export const BIN = fileURLToPath(new URL('bin/cluster-session.js', import.meta.resolve('@cluster-session/cli/package.json')));
export const FIXTURES = new URL('./fixtures/', import.meta.url).pathname;
const AUTOCANNON = new URL('../../../node_modules/autocannon/autocannon.js', import.meta.url).pathname;

/** A private runtime dir (control sockets) and scratch dir per suite, removed by cleanup(). */
export function scratch(): { dir: string; env: Record<string, string>; cleanup(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'cs-cluster-test-'));
  return {
    dir,
    env: { CLUSTER_SESSION_RUNTIME_DIR: path.join(dir, 'run') },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** `cluster-session <args>` as a real child process. */
export function cli(args: string[], env: Record<string, string> = {}): Proc {
  return startNode([BIN, ...args], { env: { ...process.env, ...env } });
}

/** Runs a short CLI command to completion: exit code and combined output. */
export async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; out: string }> {
  const proc = cli(args, env);
  const code = await proc.exited;
  return { code, out: proc.output() };
}

/** The API-driven primary fixture: startCluster(options) with options passed as JSON. */
export function apiPrimary(options: object, env: Record<string, string> = {}): Proc {
  return startNode([path.join(FIXTURES, 'primary.ts')], { env: { ...process.env, ...env, CS_TEST_OPTIONS: JSON.stringify(options) } });
}

export interface GetResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: any;
}

/** One GET over a fresh connection, optionally from a given loopback source address (127.0.0.x). */
export function get(url: string, options: { localAddress?: string; headers?: Record<string, string>; agent?: http.Agent } = {}): Promise<GetResult> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: options.agent ?? false, localAddress: options.localAddress, headers: options.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

export interface LoadResult {
  total: number;
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
}

/** A real load generator (autocannon, its own process), keep-alive connections, bounded in time and rate. */
export function load(url: string, opts: { connections: number; seconds: number; rate: number }): { proc: Proc; result: Promise<LoadResult> } {
  const proc = startProcess(process.execPath, [
    AUTOCANNON, '-j', '-c', String(opts.connections), '-d', String(opts.seconds), '-R', String(opts.rate), url,
  ]);
  const result = proc.exited.then(() => {
    const out = proc.output();
    const r = JSON.parse(out.slice(out.indexOf('{'))) as { requests: { total: number }; errors: number; timeouts: number; non2xx: number; '2xx': number };
    return { total: r.requests.total, ok2xx: r['2xx'], non2xx: r.non2xx, errors: r.errors, timeouts: r.timeouts };
  });
  return { proc, result };
}

/** Count of non-overlapping matches of `re` in `text`. */
export function count(text: string, re: RegExp): number {
  return text.match(new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`))?.length ?? 0;
}


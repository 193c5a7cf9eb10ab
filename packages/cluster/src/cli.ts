import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { controlPath, controlRequest, listControlNames, runtimeDir } from './control.ts';
import { ClusterConfigError, ClusterError } from './errors.ts';
import { parseBytes, parseWorkers, type ClusterOptions } from './options.ts';
import { startCluster } from './start.ts';
import type { ReloadReport, SlotStatus } from './types.ts';

const HELP: Record<string, string> = {
  main: `Usage: cluster-session <command> [options]

Commands:
  start <entry>     run <entry> on N workers in the foreground (SIGHUP reloads, SIGTERM/SIGINT drain and stop)
  reload            zero-downtime rolling reload of a running cluster
  status            show each worker: pid, state, uptime, restarts, memory, requests
  stop              graceful stop of a running cluster
  balance           run the HTTP load balancer (see: cluster-session balance --help)
  export            print nginx or HAProxy configuration (see: cluster-session export --help)

Run 'cluster-session <command> --help' for a command's options.
Control sockets live in ${runtimeDir()} (CLUSTER_SESSION_RUNTIME_DIR overrides).`,
  start: `Usage: cluster-session start <entry> [options] [-- app args]

  -i, --instances N|max   worker count (default: WORKERS env, else CPU count)
      --port P            PORT for the workers; the port the primary listens on with --sticky
      --sticky            route each client address to the same worker (primary accepts connections)
      --host H            address to bind in sticky mode (default: all)
      --trust-proxy       sticky: key on X-Forwarded-For of the first request (direct peer is the proxy)
      --trusted-proxy A   sticky: trust X-Forwarded-For only from proxy address A (repeatable)
      --name NAME         cluster name: log prefix and control socket (default: entry base name)
      --wait-ready        a worker is ready when the app calls ready(), not on listening
      --ready-timeout MS  a worker not ready by then has failed (default 10000)
      --kill-timeout MS   retiring workers are killed after this (default 5000)
      --max-memory SIZE   replace a worker above this RSS, e.g. 512M (via the reload path)
      --max-restarts N    consecutive crashes before a slot is parked (default 10)
      --restart-delay MS  first restart delay after a crash; doubles per crash in a row (default 100)
      --max-restart-delay MS  cap of that delay (default 15000)
      --stable-after MS   uptime after which a worker's next crash starts again at --restart-delay (default 30000)
      --policy rr|os      connection scheduling (default rr)
  -h, --help`,
  reload: `Usage: cluster-session reload [--name NAME]\n\nRolling reload: one worker at a time, new one ready before the old one drains. Exit 1 if aborted.`,
  status: `Usage: cluster-session status [--json] [--name NAME]`,
  stop: `Usage: cluster-session stop [--name NAME]\n\nGraceful stop: drain every worker, then the primary exits 0.`,
};

class UsageError extends Error {}

type Flags = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;
type Parsed = { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] };

function parse(command: string, argv: string[], options: Flags, positionals = false): Parsed {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: positionals, strict: true });
    return { values: r.values as Parsed['values'], positionals: r.positionals };
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0]!.split('. To specify')[0];
    throw new UsageError(`cluster-session ${command}: ${reason}; see --help`);
  }
}

function int(command: string, flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`cluster-session ${command}: --${flag} ${JSON.stringify(value)} is not an integer >= ${min}`);
  }
  return Number(value);
}

async function start(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const appArgs = dash === -1 ? [] : argv.slice(dash + 1);
  const { values: v, positionals } = parse('start', dash === -1 ? argv : argv.slice(0, dash), {
    instances: { type: 'string', short: 'i' },
    port: { type: 'string' },
    sticky: { type: 'boolean' },
    host: { type: 'string' },
    'trust-proxy': { type: 'boolean' },
    'trusted-proxy': { type: 'string', multiple: true },
    name: { type: 'string' },
    'wait-ready': { type: 'boolean' },
    'ready-timeout': { type: 'string' },
    'kill-timeout': { type: 'string' },
    'max-memory': { type: 'string' },
    'max-restarts': { type: 'string' },
    'restart-delay': { type: 'string' },
    'max-restart-delay': { type: 'string' },
    'stable-after': { type: 'string' },
    policy: { type: 'string' },
  }, true);
  if (v.help) return help('start');
  if (positionals.length !== 1) throw new UsageError(`cluster-session start: expected one entry file, got ${positionals.length}; see --help`);
  const entry = positionals[0]!;
  const opts: ClusterOptions = { entry, args: appArgs };
  if (v.instances !== undefined) {
    opts.workers = parseWorkers(v.instances) ?? fail('start', `-i ${JSON.stringify(v.instances)} is not a positive integer or 'max'`);
  }
  const port = int('start', 'port', v.port as string | undefined, 0);
  if (port !== undefined && port > 65535) fail('start', `--port ${port} is not a port number (0-65535)`);
  if (port !== undefined) opts.port = port;
  const trusted = v['trusted-proxy'] as string[] | undefined;
  if ((v['trust-proxy'] || trusted || v.host) && !v.sticky) fail('start', '--trust-proxy, --trusted-proxy and --host only apply with --sticky');
  if (v.sticky) opts.sticky = { host: v.host as string | undefined, trustProxy: trusted ?? Boolean(v['trust-proxy']) };
  if (v.name !== undefined) opts.name = v.name as string;
  if (v['wait-ready']) opts.waitReady = true;
  const readyTimeout = int('start', 'ready-timeout', v['ready-timeout'] as string | undefined, 1);
  if (readyTimeout !== undefined) opts.readyTimeout = readyTimeout;
  const killTimeout = int('start', 'kill-timeout', v['kill-timeout'] as string | undefined, 1);
  if (killTimeout !== undefined) opts.killTimeout = killTimeout;
  const maxRestarts = int('start', 'max-restarts', v['max-restarts'] as string | undefined, 0);
  if (maxRestarts !== undefined) opts.maxRestarts = maxRestarts;
  const backoff = {
    initial: int('start', 'restart-delay', v['restart-delay'] as string | undefined, 1),
    max: int('start', 'max-restart-delay', v['max-restart-delay'] as string | undefined, 1),
    stableAfter: int('start', 'stable-after', v['stable-after'] as string | undefined, 1),
  };
  if (Object.values(backoff).some((x) => x !== undefined)) {
    opts.backoff = Object.fromEntries(Object.entries(backoff).filter(([, x]) => x !== undefined));
  }
  if (v['max-memory'] !== undefined) {
    opts.maxMemory = parseBytes(v['max-memory'] as string) ?? fail('start', `--max-memory ${JSON.stringify(v['max-memory'])} is not a size like 512M or 1G`);
  }
  if (v.policy !== undefined) {
    if (v.policy !== 'rr' && v.policy !== 'os') fail('start', `--policy ${JSON.stringify(v.policy)} is not 'rr' or 'os'`);
    opts.schedulingPolicy = v.policy;
  }
  if (!existsSync(entry)) fail('start', `no file at ${entry}`);
  try {
    const cluster = await startCluster({ ...opts, signals: true });
    await cluster.stopped;
    return 0;
  } catch (err) {
    if (err instanceof ClusterConfigError) throw new UsageError(`cluster-session start: ${err.message}`);
    throw err;
  }
}

function fail(command: string, reason: string): never {
  throw new UsageError(`cluster-session ${command}: ${reason}`);
}

function resolveSocket(command: string, name: string | undefined): string {
  if (name !== undefined) return controlPath(name);
  const names = listControlNames();
  if (names.length === 1) return controlPath(names[0]!);
  if (names.length === 0) throw new ClusterError(`cluster-session ${command}: no cluster is running (no control socket in ${runtimeDir()})`, 'CS_ERR_CLUSTER_NOT_RUNNING');
  throw new UsageError(`cluster-session ${command}: several clusters run (${names.join(', ')}); pass --name`);
}

function formatStatus(rows: SlotStatus[]): string {
  const dur = (ms: number) => (ms < 60_000 ? `${Math.round(ms / 1000)}s` : ms < 3_600_000 ? `${Math.round(ms / 60_000)}m` : `${(ms / 3_600_000).toFixed(1)}h`);
  const table = [['slot', 'pid', 'state', 'uptime', 'restarts', 'memory', 'requests']];
  for (const r of rows) {
    table.push([
      String(r.slot), r.pid === null ? '-' : String(r.pid), r.state + (r.nextRestartIn !== undefined ? ` (${r.nextRestartIn} ms)` : ''),
      r.pid === null ? '-' : dur(r.uptime), String(r.restarts), r.memory === null ? '-' : `${Math.round(r.memory / 1048576)} MB`,
      r.requests === null ? '-' : String(r.requests),
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const lines = table.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  for (const r of rows) if (r.lastExit && r.state !== 'ready') lines.push(`slot ${r.slot}: last exit: ${r.lastExit}`);
  return lines.join('\n');
}

async function client(command: 'reload' | 'status' | 'stop', argv: string[]): Promise<number> {
  const { values: v } = parse(command, argv, command === 'status' ? { name: { type: 'string' }, json: { type: 'boolean' } } : { name: { type: 'string' } });
  if (v.help) return help(command);
  const socketPath = resolveSocket(command, v.name as string | undefined);
  // A reload takes as long as its slowest workers' boot and drain; it is bounded by readyTimeout/killTimeout there.
  const result = await controlRequest(socketPath, command, command === 'reload' ? 3_600_000 : 30_000);
  if (command === 'status') {
    process.stdout.write(v.json ? `${JSON.stringify(result, null, 2)}\n` : `${formatStatus(result as SlotStatus[])}\n`);
    return 0;
  }
  if (command === 'reload') {
    const r = result as ReloadReport;
    if (r.ok) process.stdout.write(`reloaded ${r.replaced.length} workers in ${r.durationMs} ms\n`);
    else process.stderr.write(`reload aborted at slot ${r.failed?.slot}: ${r.failed?.reason}; ${r.replaced.length} replaced, the old workers keep serving\n`);
    return r.ok ? 0 : 1;
  }
  // stop: the primary answered and is draining; it removes its socket when done.
  for (let i = 0; existsSync(socketPath) && i < 1200; i++) await new Promise((r) => setTimeout(r, 100));
  process.stdout.write(existsSync(socketPath) ? 'stop requested; the cluster is still draining\n' : 'stopped\n');
  return 0;
}

async function delegate(command: 'balance' | 'export', argv: string[]): Promise<number> {
  // A variable specifier: the balancer package provides this subpath; builds without it still run the rest.
  const specifier = '@cluster-session/balancer/cli';
  let mod: { balanceMain?: (argv: string[]) => Promise<number>; exportMain?: (argv: string[]) => Promise<number> };
  try {
    mod = (await import(specifier)) as typeof mod;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw err;
    process.stderr.write(`cluster-session ${command}: not available (this build has no @cluster-session/balancer/cli)\n`);
    return 1;
  }
  const fn = command === 'balance' ? mod.balanceMain : mod.exportMain;
  if (typeof fn !== 'function') {
    process.stderr.write(`cluster-session ${command}: not available (@cluster-session/balancer/cli lacks ${command}Main)\n`);
    return 1;
  }
  return fn(argv);
}

function help(topic: string): number {
  process.stdout.write(`${HELP[topic]}\n`);
  return 0;
}

/** The CLI: returns the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await start(rest);
      case 'reload':
      case 'status':
      case 'stop':
        return await client(command, rest);
      case 'balance':
      case 'export':
        return await delegate(command, rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        return help('main');
      default:
        throw new UsageError(`cluster-session: unknown command ${JSON.stringify(command)}; commands: start, reload, status, stop, balance, export`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`${e.message.startsWith('cluster-session') ? '' : `cluster-session ${command}: `}${e.message}${e.code ? ` [${e.code}]` : ''}\n`);
    return 1;
  }
}

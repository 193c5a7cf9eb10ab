import { existsSync } from 'node:fs';
import {
  ClusterNotRunningError,
  controlPath,
  controlRequest,
  listControlNames,
  runtimeDir,
  type ControlBody,
  type ReloadReport,
  type ScaleReport,
  type SlotStatus,
} from '@cluster-session/cluster';
import { CliUsageError } from '../errors.ts';
import { intFlag, parseFlags } from '../flags.ts';
import { help } from '../help.ts';

function socketOf(command: string, name: string | undefined): string {
  if (name !== undefined) return controlPath(name);
  const names = listControlNames();
  if (names.length === 1) return controlPath(names[0]!);
  if (names.length === 0) throw new ClusterNotRunningError(`no cluster is running (no control socket in ${runtimeDir()})`);
  throw new CliUsageError(`several clusters run: ${names.join(', ')}; pass one with --name, e.g. cluster-session ${command} --name ${names[0]}`);
}

/**
 * `status` with no --name while several clusters run: each one's table under its name. A socket left by a
 * killed primary is listed as not answering rather than failing the whole listing.
 */
type Listed = { name: string; slots: SlotStatus[] } | { name: string; error: string };

async function statusOfAll(names: string[], json: boolean): Promise<number> {
  const clusters = await Promise.all(
    names.map(async (name): Promise<Listed> => {
      try {
        return { name, slots: (await controlRequest(controlPath(name), 'status', 30_000)) as SlotStatus[] };
      } catch (err) {
        return { name, error: (err as Error).message };
      }
    }),
  );
  if (json) {
    process.stdout.write(`${JSON.stringify({ clusters }, null, 2)}\n`);
  } else {
    const blocks = clusters.map((c) => {
      if (!('slots' in c)) return `cluster ${c.name}: not answering (${c.error})`;
      const ready = c.slots.filter((r) => r.state === 'ready').length;
      return `cluster ${c.name}: ${ready}/${c.slots.length} workers ready\n${formatStatus(c.slots)}`;
    });
    process.stdout.write(`${clusters.length} clusters (cluster-session status --name NAME for one):\n\n${blocks.join('\n\n')}\n`);
  }
  return clusters.some((c) => 'slots' in c) ? 0 : 1;
}

function formatStatus(rows: SlotStatus[]): string {
  const dur = (ms: number) => (ms < 60_000 ? `${Math.round(ms / 1000)}s` : ms < 3_600_000 ? `${Math.round(ms / 60_000)}m` : `${(ms / 3_600_000).toFixed(1)}h`);
  const mb = (n: number | null | undefined) => (n == null ? '-' : `${Math.round(n / 1048576)} MB`);
  const num = (n: number | undefined, unit = '') => (n === undefined ? '-' : `${n}${unit}`);
  const ms = (n: number | undefined) => (n === undefined ? '-' : `${n.toFixed(1)} ms`);
  const table = [['slot', 'pid', 'state', 'uptime', 'restarts', 'memory', 'heap', 'cpu', 'requests', 'req/s', 'p99', 'loop p99']];
  for (const r of rows) {
    table.push([
      String(r.slot), r.pid === null ? '-' : String(r.pid), r.state + (r.nextRestartIn !== undefined ? ` (${r.nextRestartIn} ms)` : ''),
      r.pid === null ? '-' : dur(r.uptime), String(r.restarts), mb(r.memory), mb(r.heapUsed), num(r.cpuPercent, '%'),
      r.requests === null ? '-' : String(r.requests), num(r.requestsPerSecond), ms(r.latencyMs?.p99), ms(r.eventLoopDelayMs?.p99),
    ]);
  }
  const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
  const lines = table.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
  for (const r of rows) if (r.lastExit && r.state !== 'ready') lines.push(`slot ${r.slot}: last exit: ${r.lastExit}`);
  const store = rows.find((r) => r.store)?.store;
  if (store) {
    const errors = rows.reduce((n, r) => n + (r.store?.errors ?? 0), 0);
    const healthy = rows.every((r) => r.store?.healthy !== false);
    lines.push(`store ${store.name}: ${healthy ? 'healthy' : 'FAILING'}, ${errors} errors, p99 ${Math.max(...rows.map((r) => r.store?.latencyMs.p99 ?? 0))} ms`);
  }
  return lines.join('\n');
}

const FLAGS = {
  status: { name: { type: 'string' }, json: { type: 'boolean' } },
  reload: { name: { type: 'string' }, 'update-env': { type: 'boolean' } },
  stop: { name: { type: 'string' } },
  scale: { name: { type: 'string' } },
} as const;

/** `cluster-session reload|status|stop|scale [--name NAME]`: one command to a running primary over its control socket. */
export async function control(command: 'reload' | 'status' | 'stop' | 'scale', argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(argv, FLAGS[command], command === 'scale');
  if (v.help) return help(command);
  if (command === 'status' && v.name === undefined) {
    const names = listControlNames();
    if (names.length > 1) return statusOfAll(names, Boolean(v.json));
  }
  let body: ControlBody = {};
  if (command === 'scale') {
    if (positionals.length !== 1) throw new CliUsageError(`expected one worker count, got ${positionals.length}`);
    body = { workers: intFlag('scale', positionals[0], 1, 1024)! };
  }
  // PM2's --update-env: the new workers start from this shell's environment, not the one the primary started with.
  if (v['update-env']) body = { env: Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined)) };
  const socketPath = socketOf(command, v.name as string | undefined);
  // A reload or a scale takes as long as its slowest workers' boot and drain; readyTimeout/killTimeout bound it there.
  const result = await controlRequest(socketPath, command, command === 'reload' || command === 'scale' ? 3_600_000 : 30_000, body);
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
  if (command === 'scale') {
    const r = result as ScaleReport;
    if (r.ok) process.stdout.write(`scaled ${r.from} -> ${r.to} workers in ${r.durationMs} ms\n`);
    else process.stderr.write(`scale stopped at slot ${r.failed?.slot}: ${r.failed?.reason}; ${r.started.length} started\n`);
    return r.ok ? 0 : 1;
  }
  // stop: the primary answered and is draining; it removes its socket when done.
  for (let i = 0; existsSync(socketPath) && i < 1200; i++) await new Promise((r) => setTimeout(r, 100));
  process.stdout.write(existsSync(socketPath) ? 'stop requested; the cluster is still draining\n' : 'stopped\n');
  return 0;
}

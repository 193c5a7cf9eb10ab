import { existsSync } from 'node:fs';
import { startCluster, type ClusterOptions } from '@cluster-session/cluster';
import { CliUsageError } from '../errors.ts';
import { addressFlag, choiceFlag, intFlag, parseFlags } from '../flags.ts';
import { help } from '../help.ts';

/** `cluster-session start <entry> [options] [-- app args]`: resolves with the exit code once the cluster stopped. */
export async function start(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const { values: v, positionals } = parseFlags(
    dash === -1 ? argv : argv.slice(0, dash),
    {
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
      metrics: { type: 'string' },
      'log-format': { type: 'string' },
    },
    true,
  );
  if (v.help) return help('start');
  if (positionals.length !== 1) throw new CliUsageError(`expected one entry file, got ${positionals.length}`);
  const entry = positionals[0]!;
  const flag = (name: string) => v[name] as string | undefined;
  const int = (name: string, min: number, max?: number) => intFlag(name, v[name], min, max);

  const instances = flag('instances');
  if (instances !== undefined && instances !== 'max' && !/^[1-9]\d*$/.test(instances)) {
    throw new CliUsageError(`-i ${JSON.stringify(instances)} is not a positive integer or 'max'`);
  }
  const trusted = v['trusted-proxy'] as string[] | undefined;
  if ((v['trust-proxy'] || trusted || v.host) && !v.sticky) throw new CliUsageError('--trust-proxy, --trusted-proxy and --host only apply with --sticky');
  const backoff = { initial: int('restart-delay', 1), max: int('max-restart-delay', 1), stableAfter: int('stable-after', 1) };
  if (!existsSync(entry)) throw new CliUsageError(`no file at ${entry}`);

  // Flags become startCluster() options, which validate them (a wrong one is a configuration error: exit 2).
  const options: ClusterOptions = {
    entry,
    args: dash === -1 ? [] : argv.slice(dash + 1),
    signals: true,
    ...(instances !== undefined ? { workers: instances === 'max' ? 'max' : Number(instances) } : {}),
    ...(flag('port') !== undefined ? { port: int('port', 0, 65535)! } : {}),
    ...(v.sticky ? { sticky: { ...(v.host ? { host: v.host as string } : {}), trustProxy: trusted ?? Boolean(v['trust-proxy']) } } : {}),
    ...(flag('name') !== undefined ? { name: flag('name')! } : {}),
    ...(v['wait-ready'] ? { waitReady: true } : {}),
    ...(flag('ready-timeout') !== undefined ? { readyTimeout: int('ready-timeout', 1)! } : {}),
    ...(flag('kill-timeout') !== undefined ? { killTimeout: int('kill-timeout', 1)! } : {}),
    ...(flag('max-restarts') !== undefined ? { maxRestarts: int('max-restarts', 0)! } : {}),
    ...(flag('max-memory') !== undefined ? { maxMemory: flag('max-memory')! } : {}),
    ...(Object.values(backoff).some((x) => x !== undefined)
      ? { backoff: Object.fromEntries(Object.entries(backoff).filter(([, x]) => x !== undefined)) }
      : {}),
    ...(flag('policy') !== undefined ? { schedulingPolicy: choiceFlag('policy', flag('policy'), ['rr', 'os'] as const)! } : {}),
    ...(flag('metrics') !== undefined ? { metrics: addressFlag('metrics', flag('metrics')!) } : {}),
    ...(flag('log-format') !== undefined ? { logFormat: choiceFlag('log-format', flag('log-format'), ['text', 'json'] as const)! } : {}),
  };
  const cluster = await startCluster(options);
  await cluster.stopped;
  return 0;
}

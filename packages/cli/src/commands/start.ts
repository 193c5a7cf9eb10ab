import { existsSync } from 'node:fs';
import path from 'node:path';
import { startCluster, type ClusterOptions } from '@cluster-session/cluster';
import { readConfigFile } from '../config-file.ts';
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
      config: { type: 'string' },
    },
    true,
  );
  if (v.help) return help('start');
  const file = v.config as string | undefined;
  if (positionals.length > 1 || (positionals.length === 0 && !file)) throw new CliUsageError(`expected one entry file, got ${positionals.length}`);
  const entry = positionals[0];
  const flag = (name: string) => v[name] as string | undefined;
  const int = (name: string, min: number, max?: number) => intFlag(name, v[name], min, max);

  const instances = flag('instances');
  if (instances !== undefined && instances !== 'max' && !/^[1-9]\d*$/.test(instances)) {
    throw new CliUsageError(`-i ${JSON.stringify(instances)} is not a positive integer or 'max'`);
  }
  const trusted = v['trusted-proxy'] as string[] | undefined;
  if ((v['trust-proxy'] || trusted || v.host) && !v.sticky) throw new CliUsageError('--trust-proxy, --trusted-proxy and --host only apply with --sticky');
  const backoff = { initial: int('restart-delay', 1), max: int('max-restart-delay', 1), stableAfter: int('stable-after', 1) };
  if (entry !== undefined && !existsSync(entry)) throw new CliUsageError(`no file at ${entry}`);

  // Flags become startCluster() options, which validate them (a wrong one is a configuration error: exit 2).
  // Over a --config file, a flag given wins for its own key.
  const flags: Partial<ClusterOptions> = {
    ...(entry !== undefined ? { entry } : {}),
    ...(dash !== -1 ? { args: argv.slice(dash + 1) } : {}),
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
  /** The options now: the file (read again on every reload: SIGHUP, `cluster-session reload`), then the flags. */
  const current = (): ClusterOptions => {
    const fromFile = file ? readConfigFile(file) : {};
    // An entry in the file is relative to the file, as a path in any configuration file is.
    if (file && typeof fromFile.entry === 'string') fromFile.entry = path.resolve(path.dirname(file), fromFile.entry);
    const merged = { ...fromFile, ...flags } as ClusterOptions;
    if (merged.entry === undefined) throw new CliUsageError(`--config ${file} has no entry, and no entry file was given`);
    return merged;
  };
  const options: ClusterOptions = { ...current(), signals: true, ...(file ? { reconfigure: current } : {}) };
  const cluster = await startCluster(options);
  await cluster.stopped;
  return 0;
}

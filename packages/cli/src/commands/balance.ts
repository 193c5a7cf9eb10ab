import { createBalancer, exportConfig, STRATEGIES, type Strategy } from '@cluster-session/balancer';
import { CliUsageError } from '../errors.ts';
import { addressFlag, choiceFlag, intFlag, parseFlags, type Values } from '../flags.ts';
import { help } from '../help.ts';

function upstreams(values: string[] | undefined): Array<{ url: string; weight?: number }> {
  if (!values?.length) throw new CliUsageError('at least one --upstream URL is required');
  return values.map((v) => {
    const [url, weight] = v.split('#', 2) as [string, string | undefined];
    if (weight !== undefined && !/^\d+$/.test(weight)) throw new CliUsageError(`--upstream ${JSON.stringify(v)}: the weight after # must be a whole number`);
    return weight === undefined ? { url } : { url, weight: Number(weight) };
  });
}

const shared = (v: Values) => ({
  upstreams: upstreams(v.upstream as string[] | undefined),
  strategy: choiceFlag<Strategy>('strategy', v.strategy, STRATEGIES),
  reuse: choiceFlag('reuse', v.reuse, ['shared', 'client'] as const) ?? 'shared',
});

/** `cluster-session balance ...`: resolves with the exit code once the balancer has stopped. */
export async function balance(argv: string[]): Promise<number> {
  const { values: v } = parseFlags(argv, {
    listen: { type: 'string' },
    upstream: { type: 'string', multiple: true },
    strategy: { type: 'string' },
    admin: { type: 'string' },
    'health-path': { type: 'string' },
    'no-health': { type: 'boolean' },
    retries: { type: 'string' },
    reuse: { type: 'string' },
    'trust-proxy': { type: 'boolean' },
    'upstream-status': { type: 'string', multiple: true },
    'no-metrics': { type: 'boolean' },
    'access-log': { type: 'string' },
    'access-log-format': { type: 'string' },
    'no-request-id': { type: 'boolean' },
  });
  if (v.help) return help('balance');
  if (!v.listen) throw new CliUsageError('--listen PORT is required');
  const retries = intFlag('retries', v.retries, 0);
  const accessFormat = choiceFlag('access-log-format', v['access-log-format'], ['json', 'combined'] as const);
  if (accessFormat && !v['access-log']) throw new CliUsageError('--access-log-format needs --access-log - or --access-log FILE');
  const { upstreams: ups, ...rest } = shared(v);
  // --upstream-status URL, in --upstream order: the instance's `start --metrics` address for the status page.
  const statuses = (v['upstream-status'] as string[] | undefined) ?? [];
  if (statuses.length > ups.length) throw new CliUsageError(`${statuses.length} --upstream-status for ${ups.length} --upstream: give at most one per instance, in the same order`);
  const lb = await createBalancer({
    listen: addressFlag('listen', v.listen as string),
    upstreams: ups.map((u, i) => (statuses[i] ? { ...u, status: statuses[i] } : u)),
    ...rest,
    ...(v['no-metrics'] ? { metrics: false } : {}),
    health: v['no-health'] ? false : { path: (v['health-path'] as string | undefined) ?? '/healthz' },
    ...(v.admin ? { admin: addressFlag('admin', v.admin as string) } : {}),
    ...(retries !== undefined ? { retries } : {}),
    trustProxy: v['trust-proxy'] === true,
    ...(v['no-request-id'] ? { requestId: false } : {}),
    ...(v['access-log'] ? { accessLog: { path: v['access-log'] as string, format: accessFormat ?? 'json' } } : {}),
    log: (message) => console.error(`[balancer] ${message}`),
  });
  const s = lb.status();
  console.log(`balancer listening on ${lb.url} (${s.strategy}, ${s.upstreams.length} instances)${lb.adminUrl ? `, status page ${lb.adminUrl}` : ''}`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      console.error(`[balancer] ${signal}: finishing in-flight requests`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void lb.close().then(resolve);
    };
    // logrotate's postrotate (as for nginx): the access log goes on in a new file at the same path.
    const reopen = () => lb.reopenLogs();
    process.on('SIGUSR1', reopen);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

/** `cluster-session export nginx|haproxy ...`: prints the configuration; resolves with the exit code. */
export async function exportCommand(argv: string[]): Promise<number> {
  const { values: v, positionals } = parseFlags(
    argv,
    {
      listen: { type: 'string' },
      upstream: { type: 'string', multiple: true },
      strategy: { type: 'string' },
      'health-path': { type: 'string' },
      reuse: { type: 'string' },
    },
    true,
  );
  if (v.help) return help('export');
  const target = positionals[0];
  if (positionals.length !== 1 || (target !== 'nginx' && target !== 'haproxy')) {
    throw new CliUsageError(`needs exactly one target, nginx or haproxy (got ${positionals.length ? positionals.join(' ') : 'none'})`);
  }
  process.stdout.write(
    exportConfig(target, {
      ...(v.listen ? { listen: addressFlag('listen', v.listen as string) } : {}),
      ...shared(v),
      health: { path: (v['health-path'] as string | undefined) ?? '/healthz' },
    }),
  );
  return 0;
}

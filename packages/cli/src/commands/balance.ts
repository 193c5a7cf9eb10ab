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

/** --tls-cert/--tls-key pairs, in order: the first is the default certificate, the others are picked by SNI. */
function tlsFlags(v: Values) {
  const certs = (v['tls-cert'] as string[] | undefined) ?? [];
  const keys = (v['tls-key'] as string[] | undefined) ?? [];
  if (certs.length !== keys.length) throw new CliUsageError(`${certs.length} --tls-cert for ${keys.length} --tls-key: give them in pairs, each --tls-cert followed by its --tls-key`);
  const hsts = intFlag('hsts', v.hsts, 0, 63_072_000);
  if (certs.length === 0) {
    if (v['redirect-http'] !== undefined || hsts !== undefined) throw new CliUsageError('--redirect-http and --hsts need TLS: add --tls-cert FILE --tls-key FILE');
    return {};
  }
  return {
    tls: {
      certs: certs.map((cert, i) => ({ cert, key: keys[i]! })),
      ...(hsts !== undefined ? { hsts } : {}),
      ...(v['redirect-http'] !== undefined ? { redirect: addressFlag('redirect-http', v['redirect-http'] as string) } : {}),
    },
  };
}

/** --rate-limit N/s|N/m [--burst N], --trusted-proxy, --compress, --max-conn-per-client, --max-header-count. */
function edgeFlags(v: Values) {
  const rate = v['rate-limit'] as string | undefined;
  if (rate !== undefined && !/^[0-9]+(?:\.[0-9]+)?\/(s|m)$/.test(rate)) throw new CliUsageError(`--rate-limit ${JSON.stringify(rate)} is not a rate like 50/s or 600/m`);
  const burst = intFlag('burst', v.burst, 1, 1_000_000);
  if (burst !== undefined && rate === undefined) throw new CliUsageError('--burst needs --rate-limit, e.g. --rate-limit 50/s --burst 100');
  const perClient = intFlag('max-conn-per-client', v['max-conn-per-client'], 0, 1_000_000);
  const headerCount = intFlag('max-header-count', v['max-header-count'], 1, 10_000);
  const trusted = v['trusted-proxy'] as string[] | undefined;
  return {
    ...(rate !== undefined ? { rateLimit: { rate, ...(burst !== undefined ? { burst } : {}) } } : {}),
    ...(trusted?.length ? { trustedProxies: trusted } : {}),
    ...(v.compress ? { compress: true } : {}),
    ...(perClient !== undefined || headerCount !== undefined
      ? { limits: { ...(perClient !== undefined ? { perClient } : {}), ...(headerCount !== undefined ? { headerCount } : {}) } }
      : {}),
  };
}

const EDGE_FLAGS = {
  'tls-cert': { type: 'string', multiple: true },
  'tls-key': { type: 'string', multiple: true },
  hsts: { type: 'string' },
  'redirect-http': { type: 'string' },
  'rate-limit': { type: 'string' },
  burst: { type: 'string' },
  'trusted-proxy': { type: 'string', multiple: true },
  compress: { type: 'boolean' },
  'max-conn-per-client': { type: 'string' },
  'max-header-count': { type: 'string' },
} as const;

const shared = (v: Values) => ({
  upstreams: upstreams(v.upstream as string[] | undefined),
  strategy: choiceFlag<Strategy>('strategy', v.strategy, STRATEGIES),
  reuse: choiceFlag('reuse', v.reuse, ['shared', 'client'] as const) ?? 'shared',
  ...tlsFlags(v),
  ...edgeFlags(v),
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
    ...EDGE_FLAGS,
  });
  if (v.help) return help('balance');
  if (!v.listen) throw new CliUsageError('--listen PORT is required');
  const retries = intFlag('retries', v.retries, 0);
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
    log: (message) => console.error(`[balancer] ${message}`),
  });
  const s = lb.status();
  console.log(
    `balancer listening on ${lb.url} (${s.strategy}, ${s.upstreams.length} instances)${lb.redirectUrl ? `, redirecting ${lb.redirectUrl} to HTTPS` : ''}${lb.adminUrl ? `, status page ${lb.adminUrl}` : ''}`,
  );
  // SIGHUP re-reads the certificate files (renewal without a restart). A --config reload may be chained here.
  const hup = () => {
    if (lb.url.startsWith('https:')) lb.reloadTls();
  };
  process.on('SIGHUP', hup);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      console.error(`[balancer] ${signal}: finishing in-flight requests`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', hup);
      void lb.close().then(resolve);
    };
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
      ...EDGE_FLAGS,
      cache: { type: 'boolean' },
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
      ...(v.cache ? { cache: true } : {}),
    }),
  );
  return 0;
}

import { createBalancer, exportConfig, STRATEGIES, type CreateBalancerOptions, type Strategy } from '@cluster-session/balancer';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readConfigFile } from '../config-file.ts';
import { systemdUnit } from '../systemd.ts';
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

/**
 * The balancer's options that flags gave, and only those: over a --config file, a flag wins for its own key;
 * without one, the balancer's defaults fill in the rest.
 */
function balanceFlags(v: Values): Partial<CreateBalancerOptions> {
  const retries = intFlag('retries', v.retries, 0);
  const workers = intFlag('workers', v.workers, 1, 64);
  const accessFormat = choiceFlag('access-log-format', v['access-log-format'], ['json', 'combined'] as const);
  if (accessFormat && !v['access-log']) throw new CliUsageError('--access-log-format needs --access-log - or --access-log FILE');
  const given = v.upstream as string[] | undefined;
  const ups = given?.length ? upstreams(given) : undefined;
  // --upstream-status URL, in --upstream order: the instance's `start --metrics` address for the status page.
  const statuses = (v['upstream-status'] as string[] | undefined) ?? [];
  if (statuses.length > (ups?.length ?? 0)) throw new CliUsageError(`${statuses.length} --upstream-status for ${ups?.length ?? 0} --upstream: give at most one per instance, in the same order`);
  return {
    ...(v.listen ? { listen: addressFlag('listen', v.listen as string) } : {}),
    ...(ups ? { upstreams: ups.map((u, i) => (statuses[i] ? { ...u, status: statuses[i] } : u)) } : {}),
    ...(v.strategy !== undefined ? { strategy: choiceFlag<Strategy>('strategy', v.strategy, STRATEGIES)! } : {}),
    ...(v.reuse !== undefined ? { reuse: choiceFlag('reuse', v.reuse, ['shared', 'client'] as const)! } : {}),
    ...(v['no-metrics'] ? { metrics: false } : {}),
    ...(v['no-health'] ? { health: false as const } : v['health-path'] !== undefined ? { health: { path: v['health-path'] as string } } : {}),
    ...(v.admin ? { admin: addressFlag('admin', v.admin as string) } : {}),
    ...(retries !== undefined ? { retries } : {}),
    ...(workers !== undefined ? { workers } : {}),
    ...(v['trust-proxy'] ? { trustProxy: true } : {}),
    ...(v['no-request-id'] ? { requestId: false } : {}),
    ...(v['access-log'] ? { accessLog: { path: v['access-log'] as string, format: accessFormat ?? 'json' } } : {}),
    // TLS and edge flags: each present only when given, so a --config file's keys stay unless a flag names them.
    ...tlsFlags(v),
    ...edgeFlags(v),
  };
}

/**
 * What SIGHUP runs, in order, after the configuration was re-read and applied: other parts of the balancer that
 * reload from disk on SIGHUP (TLS certificates, say) add a hook here. A hook that throws is reported in one
 * line; the others still run.
 */
type ReloadHook = { name: string; run(): void | Promise<void> };

/** `cluster-session balance ...`: resolves with the exit code once the balancer has stopped. */
export async function balance(argv: string[]): Promise<number> {
  const { values: v } = parseFlags(argv, {
    config: { type: 'string' },
    listen: { type: 'string' },
    upstream: { type: 'string', multiple: true },
    strategy: { type: 'string' },
    admin: { type: 'string' },
    'health-path': { type: 'string' },
    'no-health': { type: 'boolean' },
    retries: { type: 'string' },
    workers: { type: 'string' },
    reuse: { type: 'string' },
    'trust-proxy': { type: 'boolean' },
    'upstream-status': { type: 'string', multiple: true },
    'no-metrics': { type: 'boolean' },
    ...EDGE_FLAGS,
    'access-log': { type: 'string' },
    'access-log-format': { type: 'string' },
    'no-request-id': { type: 'boolean' },
  });
  if (v.help) return help('balance');
  const file = v.config as string | undefined;
  const flags = balanceFlags(v);
  const log = (message: string) => console.error(`[balancer] ${message}`);
  // The options as they stand now: the file (read again on every reload), then the flags over it.
  const options = (): CreateBalancerOptions => {
    const merged = { ...(file ? readConfigFile(file) : {}), ...flags } as CreateBalancerOptions;
    if (merged.listen === undefined) throw new CliUsageError(file ? `--config ${file} has no listen, and no --listen PORT was given` : '--listen PORT is required');
    if (merged.upstreams === undefined) throw new CliUsageError(file ? `--config ${file} has no upstreams, and no --upstream URL was given` : 'at least one --upstream URL is required');
    return { ...merged, log };
  };
  const lb = await createBalancer(options());
  const hooks: ReloadHook[] = [];

  /**
   * The one reload (SIGHUP): re-read --config, apply it (nothing changes if it is refused), then run the
   * hooks. Reloads never overlap: a SIGHUP during one runs once it ended.
   */
  let reloading: Promise<void> = Promise.resolve();
  const reload = () =>
    (reloading = reloading.then(async () => {
      if (file) {
        try {
          lb.reconfigure(options());
        } catch (err) {
          // One line, whatever the error: the options' own messages have one line per wrong option.
          const message = (err instanceof Error ? err.message : String(err)).replace(/^reconfigure: /, '').split('\n').join('; ');
          log(`SIGHUP: ${file} refused, the running configuration stays: ${message}`);
        }
      } else if (hooks.length === 0) log('SIGHUP: nothing to reload (no --config)');
      for (const hook of hooks) {
        try {
          await hook.run();
        } catch (err) {
          log(`SIGHUP: reloading ${hook.name} failed: ${(err as Error).message}`);
        }
      }
    }));

  // SIGHUP also re-reads the certificate files (renewal without a restart); reloadTls() logs a file it refuses.
  if (lb.url.startsWith('https:')) hooks.push({ name: 'the TLS certificates', run: () => void lb.reloadTls() });
  // Signals first, the ready line after: whoever reads that line (a supervisor, a test) may signal at once, and a
  // SIGHUP that arrives before its handler takes the default action, which ends the process.
  const stopped = new Promise<void>((resolve) => {
    const onHup = () => void reload();
    // logrotate's postrotate (as for nginx): the access log goes on in a new file at the same path.
    const reopen = () => lb.reopenLogs();
    const stop = (signal: NodeJS.Signals) => {
      console.error(`[balancer] ${signal}: finishing in-flight requests`);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', onHup);
      process.off('SIGUSR1', reopen);
      void lb.close().then(resolve);
    };
    process.on('SIGHUP', onHup);
    process.on('SIGUSR1', reopen);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const s = lb.status();
  console.log(
    `balancer listening on ${lb.url} (${s.strategy}, ${s.upstreams.length} instances${lb.workers > 1 ? `, ${lb.workers} worker threads` : ''})${lb.redirectUrl ? `, redirecting ${lb.redirectUrl} to HTTPS` : ''}${lb.adminUrl ? `, status page ${lb.adminUrl}` : ''}`,
  );
  await stopped;
  return 0;
}

/** `cluster-session export systemd [options] -- <start arguments>`: prints a unit running `cluster-session start`. */
function exportSystemd(argv: string[]): number {
  const dash = argv.indexOf('--');
  const { values: v } = parseFlags(dash === -1 ? argv : argv.slice(0, dash), {
    name: { type: 'string' },
    user: { type: 'string' },
    'working-directory': { type: 'string' },
    'kill-timeout': { type: 'string' },
    'read-write': { type: 'string', multiple: true },
    env: { type: 'string', multiple: true },
    node: { type: 'string' },
  });
  if (v.help) return help('export');
  const args = dash === -1 ? [] : argv.slice(dash + 1);
  if (args.length === 0) throw new CliUsageError('export systemd needs the start arguments after --, e.g. export systemd --name app -- server.js -i max');
  const name = (v.name as string | undefined) ?? 'app';
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new CliUsageError(`--name ${JSON.stringify(name)}: letters, digits, ".", "_" or "-" only`);
  const env: Record<string, string> = {};
  for (const e of (v.env as string[] | undefined) ?? []) {
    const eq = e.indexOf('=');
    if (eq < 1) throw new CliUsageError(`--env ${JSON.stringify(e)} is not NAME=VALUE`);
    env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  const killTimeout = intFlag('kill-timeout', v['kill-timeout'], 1) ?? Number(/--kill-timeout[= ](\d+)/.exec(args.join(' '))?.[1] ?? 5000);
  const hasName = args.some((a) => a === '--name' || a.startsWith('--name='));
  process.stdout.write(
    systemdUnit({
      name,
      workingDirectory: path.resolve((v['working-directory'] as string | undefined) ?? process.cwd()),
      args: hasName ? args : [...args, '--name', name],
      node: path.resolve((v.node as string | undefined) ?? process.execPath),
      bin: fileURLToPath(new URL('../../bin/cluster-session.js', import.meta.url)),
      user: v.user as string | undefined,
      killTimeout,
      writable: (v['read-write'] as string[] | undefined) ?? [],
      env,
    }),
  );
  return 0;
}

/** `cluster-session export nginx|haproxy|apache|systemd ...`: prints the configuration; resolves with the exit code. */
export async function exportCommand(argv: string[]): Promise<number> {
  if (argv[0] === 'systemd') return exportSystemd(argv.slice(1));
  const { values: v, positionals } = parseFlags(
    argv,
    {
      listen: { type: 'string' },
      upstream: { type: 'string', multiple: true },
      strategy: { type: 'string' },
      'health-path': { type: 'string' },
      reuse: { type: 'string' },
      workers: { type: 'string' },
      ...EDGE_FLAGS,
      cache: { type: 'boolean' },
    },
    true,
  );
  if (v.help) return help('export');
  const target = positionals[0];
  if (positionals.length !== 1 || (target !== 'nginx' && target !== 'haproxy' && target !== 'apache')) {
    throw new CliUsageError(`needs exactly one target, nginx, haproxy, apache or systemd (got ${positionals.length ? positionals.join(' ') : 'none'})`);
  }
  process.stdout.write(
    exportConfig(target, {
      ...(v.listen ? { listen: addressFlag('listen', v.listen as string) } : {}),
      ...shared(v),
      ...(v.workers !== undefined ? { workers: intFlag('workers', v.workers, 1, 64)! } : {}),
      health: { path: (v['health-path'] as string | undefined) ?? '/healthz' },
      ...(v.cache ? { cache: true } : {}),
    }),
  );
  return 0;
}

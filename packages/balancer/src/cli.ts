import { parseArgs } from 'node:util';
import { createBalancer } from './balancer.ts';
import { BalancerError } from './errors.ts';
import { exportConfig } from './export.ts';
import { STRATEGIES, type Strategy } from './options.ts';

const BALANCE_HELP = `usage: cluster-session balance --listen PORT --upstream URL [--upstream URL...] [options]

Runs the HTTP/WebSocket load balancer in the foreground (SIGINT/SIGTERM: finish in-flight requests, exit 0).

  --listen PORT|HOST:PORT   address to listen on (host defaults to 127.0.0.1)
  --upstream URL            an instance, e.g. http://127.0.0.1:4001 (repeat; URL#WEIGHT sets a weight)
  --strategy NAME           ${STRATEGIES.join(' | ')} (default round-robin)
  --admin PORT|HOST:PORT    serve the status page (HTML at /, JSON at /status.json)
  --health-path PATH        active health check path (default /healthz)
  --no-health               no active health checks (passive checks stay on)
  --retries N               extra attempts on other instances when safe (default 2)
  --reuse shared|client     instance connections pooled across clients (default) or one per client connection
                            (use client in front of Node clusters: they deal connections, not requests)
  --trust-proxy             trust X-Forwarded-* from the client (only behind your own proxy)
  -h, --help                this help
`;

const EXPORT_HELP = `usage: cluster-session export nginx|haproxy --upstream URL [--upstream URL...] [options]

Prints a complete nginx or HAProxy configuration with the same upstreams and strategy.

  --upstream URL            an instance (repeat; URL#WEIGHT sets a weight)
  --strategy NAME           ${STRATEGIES.join(' | ')} (default round-robin)
  --listen PORT|HOST:PORT   address the server should listen on (default 127.0.0.1:8080)
  --health-path PATH        health check path (default /healthz)
  --reuse shared|client     keepalive pool (default), or no pool / HAProxy http-reuse never
  -h, --help                this help
`;

class UsageError extends Error {}

function reuse(value: string | undefined): 'shared' | 'client' {
  if (value === undefined || value === 'shared' || value === 'client') return value ?? 'shared';
  throw new UsageError(`--reuse ${JSON.stringify(value)} is not shared or client`);
}

function address(flag: string, value: string): number | { host: string; port: number } {
  const m = /^(?:(.+):)?(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new UsageError(`${flag} ${JSON.stringify(value)} is not a port or HOST:PORT`);
  return m[1] ? { host: m[1].replace(/^\[|\]$/g, ''), port } : port;
}

function upstreams(values: string[] | undefined): Array<{ url: string; weight?: number }> {
  if (!values?.length) throw new UsageError('at least one --upstream URL is required');
  return values.map((v) => {
    const [url, weight] = v.split('#', 2) as [string, string | undefined];
    if (weight !== undefined && !/^\d+$/.test(weight)) throw new UsageError(`--upstream ${JSON.stringify(v)}: weight after # must be a whole number`);
    return weight === undefined ? { url } : { url, weight: Number(weight) };
  });
}

function strategy(value: string | undefined): Strategy | undefined {
  if (value !== undefined && !(STRATEGIES as readonly string[]).includes(value)) {
    throw new UsageError(`--strategy ${JSON.stringify(value)} is not one of ${STRATEGIES.join(', ')}`);
  }
  return value as Strategy | undefined;
}

/** Runs `fn`, turning usage and configuration errors into a one-line reason and exit code 2. */
async function guarded(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`cluster-session: ${err.message} (see --help)`);
      return 2;
    }
    if (err instanceof BalancerError) {
      console.error(`cluster-session: ${err.message} [${err.code}]`);
      return 2;
    }
    throw err;
  }
}

/** `cluster-session balance ...`: resolves with the exit code once the balancer has stopped. */
export function balanceMain(argv: string[]): Promise<number> {
  return guarded(async () => {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        listen: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        strategy: { type: 'string' },
        admin: { type: 'string' },
        'health-path': { type: 'string' },
        'no-health': { type: 'boolean' },
        retries: { type: 'string' },
        reuse: { type: 'string' },
        'trust-proxy': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(BALANCE_HELP);
      return 0;
    }
    if (!values.listen) throw new UsageError('--listen PORT is required');
    if (values.retries !== undefined && !/^\d+$/.test(values.retries)) throw new UsageError(`--retries ${JSON.stringify(values.retries)} is not a whole number`);
    const lb = await createBalancer({
      listen: address('--listen', values.listen),
      upstreams: upstreams(values.upstream),
      strategy: strategy(values.strategy),
      health: values['no-health'] ? false : { path: values['health-path'] ?? '/healthz' },
      ...(values.admin ? { admin: address('--admin', values.admin) } : {}),
      ...(values.retries !== undefined ? { retries: Number(values.retries) } : {}),
      reuse: reuse(values.reuse),
      trustProxy: values['trust-proxy'] ?? false,
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
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  });
}

/** `cluster-session export nginx|haproxy ...`: prints the configuration; resolves with the exit code. */
export function exportMain(argv: string[]): Promise<number> {
  return guarded(async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        listen: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        strategy: { type: 'string' },
        'health-path': { type: 'string' },
        reuse: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (values.help) {
      process.stdout.write(EXPORT_HELP);
      return 0;
    }
    const target = positionals[0];
    if (positionals.length !== 1 || (target !== 'nginx' && target !== 'haproxy')) {
      throw new UsageError(`export needs exactly one target, nginx or haproxy (got ${positionals.length ? positionals.join(' ') : 'none'})`);
    }
    process.stdout.write(
      exportConfig(target, {
        ...(values.listen ? { listen: address('--listen', values.listen) } : {}),
        upstreams: upstreams(values.upstream),
        strategy: strategy(values.strategy),
        health: { path: values['health-path'] ?? '/healthz' },
        reuse: reuse(values.reuse),
      }),
    );
    return 0;
  });
}

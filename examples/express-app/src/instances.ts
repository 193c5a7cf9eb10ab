/**
 * The stack's instances: each one `cluster-session start src/server.ts` (a primary and its workers), and the
 * wait until it answers its health check, saying what it waits for.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { StackError, type InstanceSpec } from './stack-config.ts';
import { killTree } from './processes.ts';

/** An instance answering but not healthy (its store is down, say) gets this long before the start fails. */
export const UNHEALTHY_LIMIT_MS = 10_000;
/** An instance not even listening after this long has a primary that hangs (it fails on its own otherwise). */
const LISTEN_LIMIT_MS = 45_000;

export interface Instance {
  readonly spec: InstanceSpec;
  readonly child: ChildProcess;
  /** Resolves with how the primary ended ("exit code 1", "SIGKILL") once it is gone. */
  readonly exited: Promise<string>;
  readonly running: () => boolean;
  /** SIGTERM (the primary drains its workers), SIGKILL for it and its workers after `timeoutMs`. */
  stop(timeoutMs: number, signal?: NodeJS.Signals): Promise<void>;
}

export interface InstanceOptions {
  cli: string;
  entry: string;
  workers: string;
  sticky: boolean;
  env: NodeJS.ProcessEnv;
}

export function startInstance(spec: InstanceSpec, o: InstanceOptions): Instance {
  const args = [o.cli, 'start', o.entry, '-i', o.workers, '--name', spec.cluster, '--metrics', `127.0.0.1:${spec.metricsPort}`];
  // Sticky: the primary pins clients to workers by the address the balancer forwards, trusting only the balancer.
  if (o.sticky) args.push('--sticky', '--trusted-proxy', '127.0.0.1');
  const child = spawn(process.execPath, [...process.execArgv, ...args], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...o.env, PORT: String(spec.port), INSTANCE: spec.id },
  });
  let done = false;
  const exited = once(child, 'exit').then(([code, signal]) => {
    done = true;
    return signal ? String(signal) : `exit code ${code}`;
  });
  return {
    spec,
    child,
    exited,
    running: () => !done,
    async stop(timeoutMs, signal = 'SIGTERM') {
      if (done) return;
      child.kill(signal);
      const timer = setTimeout(() => killTree(child.pid!), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** 'starting': nothing listens yet, or the primary listens but no worker is ready (its own empty 503). */
type Probe = { state: 'starting' } | { state: 'healthy' } | { state: 'unhealthy'; reason: string };

async function probe(url: string, signal: AbortSignal): Promise<Probe> {
  try {
    const res = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(2_000)]) });
    if (res.ok) return { state: 'healthy' };
    const text = await res.text();
    if (res.status === 503 && text === '') return { state: 'starting' };
    let error: unknown;
    try {
      error = (JSON.parse(text) as { error?: unknown }).error;
    } catch {
      error = undefined;
    }
    return { state: 'unhealthy', reason: typeof error === 'string' ? error : `/healthz answered HTTP ${res.status}` };
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const code = (err as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return { state: 'starting' };
    return { state: 'unhealthy', reason: code ? `/healthz failed: ${code}` : '/healthz did not answer within 2 s' };
  }
}

/**
 * Resolves once `GET /healthz` answers 200. While the instance answers but is not healthy, prints why (each new
 * reason once) and fails after UNHEALTHY_LIMIT_MS with `advice` as the fix; fails at once if the primary exits.
 */
export async function waitHealthy(instance: Instance, o: { signal: AbortSignal; advice: string; log: (line: string) => void }): Promise<void> {
  const { spec } = instance;
  const url = `http://127.0.0.1:${spec.port}/healthz`;
  const started = Date.now();
  let unhealthySince: number | undefined;
  let said = '';
  const exited = instance.exited.then((how) => {
    throw new StackError(`instance ${spec.id} (cluster ${spec.cluster}) stopped during start (${how})`, 'see its output above for the cause');
  });
  exited.catch(() => {});
  for (;;) {
    const result = await Promise.race([probe(url, o.signal), exited]);
    if (result.state === 'healthy') return;
    if (result.state === 'unhealthy') {
      unhealthySince ??= Date.now();
      if (result.reason !== said) o.log(`waiting for instance ${spec.id} (:${spec.port}): ${(said = result.reason)}`);
      if (Date.now() - unhealthySince > UNHEALTHY_LIMIT_MS) {
        throw new StackError(`instance ${spec.id} is not healthy after ${UNHEALTHY_LIMIT_MS / 1000} s: ${result.reason}`, o.advice);
      }
    } else if (Date.now() - started > LISTEN_LIMIT_MS) {
      throw new StackError(`instance ${spec.id} does not listen on port ${spec.port} after ${LISTEN_LIMIT_MS / 1000} s`, 'see its output above; WORKERS=1 npm start starts less at once');
    }
    await Promise.race([sleep(250, undefined, { signal: o.signal }), exited]);
  }
}

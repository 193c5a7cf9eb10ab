import { parentPort, workerData } from 'node:worker_threads';
import { balancerConfig, type BalancerOptions, type UpstreamConfig } from './options.ts';
import { startProxy, type Proxy } from './proxy.ts';
import { SharedConnCounts, SharedRateLimiter } from './shared-limits.ts';
import { reportOf } from './thread-report.ts';

/**
 * One worker thread of a balancer with `workers` (workers.ts starts it): a proxy on its own event loop, bound to the
 * balancer's port with SO_REUSEPORT, its per-client limits in memory shared with the other threads. It runs what
 * the main thread asks (health verdicts, add/drain/remove, reconfigure, reports, close) and nothing else: the
 * health checks, the admin server and the redirect listener run once, in the main thread.
 */

/** What the main thread gives a new thread (workerData). */
export interface ThreadInit {
  /** The balancer's options as they stand (the instance list included), less `log`; `listen` is the bound port. */
  options: BalancerOptions;
  index: number;
  threads: number;
  connBuffer: SharedArrayBuffer;
  rateBuffer: SharedArrayBuffer | undefined;
  /** Instances the main thread's checks hold down, and those draining: a restarted thread starts from them. */
  unhealthy: string[];
  draining: string[];
}

/** A request of the main thread; `seq` is echoed in the reply. */
export type ThreadOp =
  | { op: 'health'; id: string; healthy: boolean }
  | { op: 'add'; cfg: UpstreamConfig }
  | { op: 'drain' | 'remove'; id: string }
  | { op: 'reconfigure'; options: BalancerOptions; rateBuffer: SharedArrayBuffer | undefined }
  | { op: 'reopenLogs' | 'reloadTls' | 'report' }
  | { op: 'close'; graceMs: number };

export type ThreadMessage =
  | { type: 'ready'; url: string; port: number }
  | { type: 'failed'; code: string | undefined; message: string }
  | { type: 'log'; message: string }
  | { type: 'reply'; seq: number; value?: unknown; error?: { code: string | undefined; message: string } };

const port = parentPort!;
const init = workerData as ThreadInit;
const send = (m: ThreadMessage) => port.postMessage(m);
const log = (message: string) => send({ type: 'log', message });
let rateBuffer = init.rateBuffer;

async function run(proxy: Proxy, m: ThreadOp): Promise<unknown> {
  switch (m.op) {
    case 'health':
      proxy.upstreams.find((u) => u.id === m.id)?.setHealthy(m.healthy);
      return undefined;
    case 'add':
      return proxy.add(m.cfg);
    case 'drain':
      return proxy.drain(m.id);
    case 'remove':
      return proxy.remove(m.id);
    case 'reconfigure':
      rateBuffer = m.rateBuffer;
      // Validated by the main thread first (it refuses a bad one before any thread sees it); the health checks
      // are the main thread's, so there is none to restart here.
      proxy.reconfigure(balancerConfig({ ...m.options, log }, 'reconfigure'), () => {});
      return undefined;
    case 'reopenLogs':
      return proxy.reopenLogs();
    case 'reloadTls':
      return proxy.reloadTls();
    case 'report':
      return reportOf(proxy, init.index);
    case 'close':
      await proxy.close(m.graceMs);
      return undefined;
  }
}

try {
  const proxy = await startProxy(balancerConfig({ ...init.options, log }), {
    listen: true,
    reusePort: true,
    share: init.threads,
    connCounts: new SharedConnCounts(init.connBuffer, init.index, init.threads),
    newLimiter: (rate) => new SharedRateLimiter(rateBuffer!, rate),
  });
  for (const u of proxy.upstreams) {
    if (init.unhealthy.includes(u.id)) u.setHealthy(false);
    if (init.draining.includes(u.id)) u.setDraining(true);
  }
  port.on('message', (m: ThreadOp & { seq: number }) => {
    run(proxy, m).then(
      (value) => {
        send({ type: 'reply', seq: m.seq, value });
        if (m.op === 'close') port.close();
      },
      (err: Error & { code?: string }) => send({ type: 'reply', seq: m.seq, error: { code: err.code, message: err.message } }),
    );
  });
  send({ type: 'ready', url: proxy.url, port: proxy.port });
} catch (err) {
  const e = err as Error & { code?: string };
  send({ type: 'failed', code: e.code, message: e.message });
  port.close();
}

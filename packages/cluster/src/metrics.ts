import http from 'node:http';
import { sendAnswer } from '@cluster-session/core';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { defaultMetrics } from './default-metrics.ts';
import { ClusterMetricsError, ClusterStartError } from './errors.ts';
import type { SlotState, SlotStatus } from './types.ts';
import type { WorkerProcess } from './worker-process.ts';

/**
 * The primary's `/metrics` and `/status.json` (startCluster's `metrics` option, `--metrics [host:]port`).
 *
 * Why not prom-client's AggregatorRegistry.clusterMetrics(): it asks every node:cluster worker, retiring and
 * starting ones included, fails the whole scrape when one of them does not answer within 5 s, and sums the
 * workers into one series. Here the primary asks the current worker of each slot over its own IPC (protocol.ts),
 * leaves out one that does not answer within a second, and each worker labels its series with its `slot`; only
 * prom-client's merge (AggregatorRegistry.aggregate, no IPC) is used. The primary's own series: slot states,
 * restarts and reloads, and its process metrics under `slot="primary"`.
 */

const STATES: readonly SlotState[] = ['starting', 'ready', 'backoff', 'parked', 'stopping', 'stopped'];
const SCRAPE_TIMEOUT_MS = 1_000;

export interface MetricsServer {
  readonly url: string;
  close(): void;
}

/** What the metrics need from the primary (ClusterPrimary; an interface here, so the two files do not import each other). */
interface Observed {
  readonly name: string;
  readonly reloads: { readonly ok: number; readonly aborted: number };
  slotStates(): Array<{ slot: number; state: SlotState; restarts: number; worker: WorkerProcess | undefined }>;
  status(): Promise<SlotStatus[]>;
}

function primaryRegistry(primary: Observed): Registry {
  const register = new Registry();
  defaultMetrics(register, { slot: 'primary' });
  new Gauge({
    name: 'cluster_session_workers',
    help: 'Worker slots by state (starting, ready, backoff, parked, stopping, stopped).',
    labelNames: ['state'],
    registers: [register],
    collect() {
      const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
      for (const s of primary.slotStates()) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
      for (const [state, n] of counts) this.set({ state }, n);
    },
  });
  new Counter({
    name: 'cluster_session_worker_restarts_total',
    help: 'Workers restarted after a crash, by slot.',
    labelNames: ['slot'],
    registers: [register],
    collect() {
      this.reset();
      for (const s of primary.slotStates()) this.inc({ slot: String(s.slot) }, s.restarts);
    },
  });
  new Counter({
    name: 'cluster_session_reloads_total',
    help: 'Rolling reloads, by result (ok, or aborted when a new worker failed and the old ones kept serving).',
    labelNames: ['result'],
    registers: [register],
    collect() {
      this.reset();
      this.inc({ result: 'ok' }, primary.reloads.ok);
      this.inc({ result: 'aborted' }, primary.reloads.aborted);
    },
  });
  return register;
}

/** Every worker's metrics merged with the primary's, in Prometheus' text format. */
async function scrape(primary: Observed, own: Registry): Promise<string> {
  const workers = primary.slotStates().flatMap((s) => (s.worker && s.state === 'ready' ? [s.worker] : []));
  const answers = await Promise.all(workers.map((wp) => wp.metrics(SCRAPE_TIMEOUT_MS)));
  const parts = [await own.getMetricsAsJSON(), ...answers.filter((a) => a !== undefined)] as object[];
  return AggregatorRegistry.aggregate(parts).metrics();
}

export async function startMetricsServer(primary: Observed, address: { port: number; host: string }): Promise<MetricsServer> {
  const own = primaryRegistry(primary);
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendAnswer(res, { status: 405, code: ClusterMetricsError.code, error: 'method not allowed' });
    }
    const reply = (type: string, body: string) => {
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const failed = (err: Error) => sendAnswer(res, { status: 500, code: ClusterMetricsError.code, error: `metrics failed: ${err.message}` });
    if (path === '/metrics') return void scrape(primary, own).then((text) => reply(own.contentType, text), failed);
    if (path === '/status.json') {
      return void primary.status().then((slots) => reply('application/json; charset=utf-8', JSON.stringify({ name: primary.name, pid: process.pid, slots }, null, 2)), failed);
    }
    sendAnswer(res, { status: 404, code: ClusterMetricsError.code, error: 'not found: try /metrics or /status.json' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ClusterStartError(`metrics cannot listen on ${address.host}:${address.port}: ${err.code ?? err.message}; choose a free port (--metrics / metrics)`, { cause: err })),
    );
    server.listen(address.port, address.host, () => resolve());
  });
  const a = server.address() as { address: string; family: string; port: number };
  return {
    url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`,
    close: () => {
      server.close();
      server.closeAllConnections();
    },
  };
}

import dc from 'node:diagnostics_channel';
import { CHANNELS, type StoreOperation } from '@cluster-session/core';
import { Counter, Histogram, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { defaultMetrics } from './default-metrics.ts';
import { setMetricsHooks } from './worker-stats.ts';

/**
 * A worker's Prometheus figures, loaded by the preload only when the primary serves /metrics. The primary scrapes
 * every worker over its own IPC (protocol.ts: `metrics`) and merges the answers; each series carries this
 * worker's `slot`, so per-worker figures stay apart (prom-client's AggregatorRegistry would sum them away).
 */

/** Request durations: from 1 ms (a cached answer) to 10 s (far past any sensible timeout). */
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Store calls: a local Redis answers in well under a millisecond; storeTimeout is about a second. */
const STORE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

let registry: Registry | undefined;

export function installWorkerMetrics(slot: number): void {
  if (registry) return;
  const register = new Registry();
  register.setDefaultLabels({ slot: String(slot) });
  defaultMetrics(register);
  const requests = new Counter({ name: 'cluster_session_http_requests_total', help: 'HTTP requests answered by the workers, by status code (499: the client went away first).', labelNames: ['code'], registers: [register] });
  const duration = new Histogram({ name: 'cluster_session_http_request_duration_seconds', help: 'Time from a request to the end of its answer, in seconds.', buckets: HTTP_BUCKETS, registers: [register] });
  const storeOps = new Histogram({ name: 'cluster_session_store_operation_duration_seconds', help: 'Session store calls (get, set, touch, destroy) by store, in seconds; failed calls included.', labelNames: ['store', 'operation'], buckets: STORE_BUCKETS, registers: [register] });
  const storeErrors = new Counter({ name: 'cluster_session_store_errors_total', help: 'Session store calls that failed or timed out.', labelNames: ['store'], registers: [register] });
  const unavailable = new Counter({ name: 'cluster_session_store_unavailable_responses_total', help: 'Requests answered 503 because the session store was unavailable.', registers: [register] });

  // Bound children: the label lookup happens once per status code, not once per request.
  const byCode = new Map<number, Counter.Internal>();
  const onRequest = (status: number, seconds: number) => {
    let c = byCode.get(status);
    if (c === undefined) byCode.set(status, (c = requests.labels(String(status))));
    c.inc();
    duration.observe(seconds);
  };
  dc.subscribe(CHANNELS.storeOperation, (message) => {
    const m = message as StoreOperation;
    storeOps.observe({ store: m.store, operation: m.operation }, m.seconds);
    if (!m.ok) storeErrors.inc({ store: m.store });
  });
  dc.subscribe(CHANNELS.storeUnavailable, () => unavailable.inc());
  registry = register;
  setMetricsHooks(onRequest, workerMetrics);
}

/** This worker's metrics as prom-client JSON, for the primary to merge. */
async function workerMetrics(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
  if (!registry) return [];
  const metrics = (await registry.getMetricsAsJSON()) as MetricObjectWithValues<MetricValue<string>>[];
  // Per-slot series are distinct anyway: keep the start time (prom-client omits it when merging workers).
  for (const m of metrics) if (m.aggregator === 'omit') m.aggregator = 'first';
  return metrics;
}

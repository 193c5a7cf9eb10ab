import dc from 'node:diagnostics_channel';
import { Buckets, CHANNELS, histogramMetric, type StoreOperation } from '@cluster-session/core';
import { Counter, Registry, type Metric, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { defaultMetrics } from './default-metrics.ts';
import { setMetricsHooks } from './worker-stats.ts';

/**
 * A worker's Prometheus figures, loaded by the preload only when the primary serves /metrics. The primary scrapes
 * every worker over its own IPC (protocol.ts: `metrics`) and merges the answers; each series carries this
 * worker's `slot`, so per-worker figures stay apart (prom-client's AggregatorRegistry would sum them away).
 *
 * Requests and store calls are recorded into plain numbers (core's Buckets, a count per status code) and handed to
 * prom-client when the primary asks: a prom-client observe() and inc() per request cost a plain app's worker 4% of
 * its CPU (bench/scenarios/metrics.ts).
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
  /** Answers by status code: Node's writeHead takes 100-999. */
  const codes = new Float64Array(1000);
  const duration = new Buckets(HTTP_BUCKETS);
  /** Store call durations by store, then operation: two Map lookups per call, no label object. */
  const storeOps = new Map<string, Map<string, Buckets>>();
  new Counter({
    name: 'cluster_session_http_requests_total',
    help: 'HTTP requests answered by the workers, by status code (499: the client went away first).',
    labelNames: ['code'],
    registers: [register],
    collect() {
      this.reset();
      for (let code = 100; code < 1000; code++) if (codes[code]! > 0) this.inc({ code: String(code) }, codes[code]!);
    },
  });
  register.registerMetric(
    histogramMetric('cluster_session_http_request_duration_seconds', 'Time from a request to the end of its answer, in seconds.', HTTP_BUCKETS, () => [[{}, duration]]) as unknown as Metric,
  );
  register.registerMetric(
    histogramMetric('cluster_session_store_operation_duration_seconds', 'Session store calls (get, set, touch, destroy) by store, in seconds; failed calls included.', STORE_BUCKETS, function* () {
      for (const [store, ops] of storeOps) for (const [operation, b] of ops) yield [{ store, operation }, b] as const;
    }) as unknown as Metric,
  );
  // Errors and 503s are rare: prom-client's own counters.
  const storeErrors = new Counter({ name: 'cluster_session_store_errors_total', help: 'Session store calls that failed or timed out.', labelNames: ['store'], registers: [register] });
  const unavailable = new Counter({ name: 'cluster_session_store_unavailable_responses_total', help: 'Requests answered 503 because the session store was unavailable.', registers: [register] });

  const onRequest = (status: number, seconds: number) => {
    // requestDone() reports the answer's status (499 for a client gone), which Node keeps within 100-999.
    if (status >= 100 && status < 1000) codes[status]!++;
    duration.record(seconds);
  };
  dc.subscribe(CHANNELS.storeOperation, (message) => {
    const m = message as StoreOperation;
    let ops = storeOps.get(m.store);
    if (ops === undefined) storeOps.set(m.store, (ops = new Map()));
    let b = ops.get(m.operation);
    if (b === undefined) ops.set(m.operation, (b = new Buckets(STORE_BUCKETS)));
    b.record(m.seconds);
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

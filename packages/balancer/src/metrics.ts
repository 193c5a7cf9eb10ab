import { Buckets, histogramMetric } from '@cluster-session/core';
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';

/**
 * The balancer's Prometheus metrics, served on its admin port at `/metrics`.
 *
 * The I/O path is hand-written for speed, so it does not call prom-client per request: each answer adds to plain
 * numbers (a `Tally` per instance: a count per status code, histogram buckets, a sum) and prom-client reads them
 * when Prometheus scrapes (its `collect` hook for counters and gauges; core's histogramMetric for the histogram).
 * A prom-client `observe()` hashes its label object on every call; here a request costs one array increment and a
 * short bucket scan (bench/ has the figures, with and without metrics).
 */

/** Request durations at the balancer, from 1 ms to 10 s (its default response timeout is 30 s). */
export const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** One instance's answers (or the balancer's own, when no instance was tried): durations in core's Buckets, plus codes. */
export class Tally extends Buckets {
  /** Answers by status code (100-599). */
  readonly codes = new Float64Array(600);

  constructor() {
    super(BUCKETS);
  }

  answered(status: number, seconds: number): void {
    this.codes[status > 99 && status < 600 ? status : 0]!++;
    this.record(seconds);
  }
}

/** What the metrics read: the balancer's instances and its open client connections. */
interface MetricsSource {
  upstreams(): Iterable<{ id: string; up: boolean; retries: number; tally: Tally }>;
  /** Answers the balancer wrote without trying an instance (no instance available, bad request). */
  readonly own: Tally;
  connections(): number;
}

/** `upstream` label for answers no instance was tried for. */
const NO_UPSTREAM = 'none';

export function balancerRegistry(source: MetricsSource): Registry {
  const registry = new Registry();
  // The balancer process's own CPU, memory and event-loop lag; less the three gauges named `*_total`, which
  // `promtool check metrics` flags (their per-type gauges stay). The cluster's default-metrics.ts does the same.
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  new Counter({
    name: 'cluster_session_balancer_requests_total',
    help: 'Requests answered, by the instance that answered (or last tried; "none" when no instance was) and status code.',
    labelNames: ['upstream', 'code'],
    registers: [registry],
    collect() {
      this.reset();
      const add = (upstream: string, t: Tally) => {
        for (let code = 0; code < 600; code++) if (t.codes[code]! > 0) this.inc({ upstream, code: String(code) }, t.codes[code]!);
      };
      for (const u of source.upstreams()) add(u.id, u.tally);
      add(NO_UPSTREAM, source.own);
    },
  });
  registry.registerMetric(
    histogramMetric('cluster_session_balancer_request_duration_seconds', 'Time from a request head to the end of its answer at the balancer, by instance, in seconds.', BUCKETS, function* () {
      for (const u of source.upstreams()) yield [{ upstream: u.id }, u.tally] as const;
      if (source.own.count > 0) yield [{ upstream: NO_UPSTREAM }, source.own] as const;
    }) as unknown as Metric,
  );
  new Gauge({
    name: 'cluster_session_balancer_upstream_up',
    help: '1 while the instance takes new requests (healthy, not ejected, not draining), else 0.',
    labelNames: ['upstream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of source.upstreams()) this.set({ upstream: u.id }, u.up ? 1 : 0);
    },
  });
  new Counter({
    name: 'cluster_session_balancer_retries_total',
    help: 'Requests sent to this instance again after another attempt failed (another instance, or a fresh connection).',
    labelNames: ['upstream'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of source.upstreams()) this.inc({ upstream: u.id }, u.retries);
    },
  });
  new Gauge({
    name: 'cluster_session_balancer_connections',
    help: 'Client connections open now.',
    registers: [registry],
    collect() {
      this.set(source.connections());
    },
  });
  return registry;
}

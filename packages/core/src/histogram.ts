/**
 * Histogram buckets kept in plain numbers, for series recorded on a hot path (every request, every store call)
 * and read only when Prometheus scrapes. prom-client's `Histogram.observe()` builds a label object, hashes it and
 * finds its bucket by a number turned into a string, on every call: in a worker's CPU profile that was 4% of a
 * plain app's request (bench/scenarios/metrics.ts). Here a record is a short scan and three additions.
 *
 * prom-client's Histogram has no way to set bucket counts, so `histogramMetric` hands prom-client's Registry a
 * metric object of its own, as prom-client's AggregatorRegistry.aggregate() registers the metrics it merges (the
 * registry reads `name`, `help`, `type`, `aggregator` and `get()`). This module does not import prom-client: core
 * stays free of it, and the packages that serve metrics (cluster, balancer) register what this returns.
 */

/** What a histogram series holds: non-cumulative counts per bound, the last one +Inf; a sum; a count. */
export interface BucketData {
  readonly buckets: Float64Array;
  readonly sum: number;
  readonly count: number;
}

export class Buckets implements BucketData {
  readonly bounds: readonly number[];
  readonly buckets: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.buckets = new Float64Array(bounds.length + 1);
  }

  record(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.buckets[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** One sample of prom-client's JSON form (`getMetricsAsJSON()`), which its registry turns into text. */
export interface HistogramSample {
  value: number;
  labels: Record<string, string | number>;
  metricName: string;
}

/** The registerable metric (structurally prom-client's `Metric`; cast it where prom-client's type is wanted). */
export interface HistogramMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: HistogramSample[] }>;
  reset(): void;
}

/**
 * A histogram metric read from `series()` at every scrape: each entry is a label set and its buckets, all on
 * `bounds`. Samples come out as prom-client's own histogram writes them: cumulative `_bucket`s with `le` first,
 * then `_sum` and `_count`.
 */
export function histogramMetric(
  name: string,
  help: string,
  bounds: readonly number[],
  series: () => Iterable<readonly [Readonly<Record<string, string>>, BucketData]>,
): HistogramMetric {
  const get = async () => {
    const values: HistogramSample[] = [];
    for (const [labels, data] of series()) {
      let acc = 0;
      bounds.forEach((le, i) => values.push({ value: (acc += data.buckets[i]!), labels: { le, ...labels }, metricName: `${name}_bucket` }));
      values.push({ value: acc + data.buckets[bounds.length]!, labels: { le: '+Inf', ...labels }, metricName: `${name}_bucket` });
      values.push({ value: data.sum, labels: { ...labels }, metricName: `${name}_sum` });
      values.push({ value: data.count, labels: { ...labels }, metricName: `${name}_count` });
    }
    return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values };
  };
  // reset() is what a registry's resetMetrics() calls; these series are the recorder's, not the registry's.
  return { name, help, type: 'histogram', aggregator: 'sum', get, reset() {} };
}

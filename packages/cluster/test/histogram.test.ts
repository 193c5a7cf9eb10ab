import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { Buckets, histogramMetric } from '@cluster-session/core';
import { AggregatorRegistry, Histogram, Registry, type Metric } from 'prom-client';

// The workers and the balancer record durations into core's Buckets and hand them to prom-client at scrape time
// (histogramMetric). Dashboards and alerts read what prom-client's own Histogram would have printed: the same
// samples, and through the workers' path (getMetricsAsJSON, merged by the primary) the same text.

const BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.1, 1];
// On a bound (an `le` bucket includes it), between bounds, past the last (only +Inf), zero, tiny and large.
const VALUES = [0, 1e-9, 0.001, 0.0010001, 0.0025, 0.003, 0.01, 0.05, 1, 1.5, 42, 0.1, 0.0999];

function both(labelNames: string[], observations: Array<[Record<string, string>, number]>) {
  const theirs = new Registry();
  theirs.setDefaultLabels({ slot: '3' });
  const h = new Histogram({ name: 'x_seconds', help: 'x help', labelNames, buckets: BOUNDS, registers: [theirs] });
  const ours = new Registry();
  ours.setDefaultLabels({ slot: '3' });
  const series = new Map<string, [Record<string, string>, Buckets]>();
  // Unlabelled, the series exists from the start (prom-client prints zeros before the first observation).
  if (!labelNames.length) series.set('{}', [{}, new Buckets(BOUNDS)]);
  for (const [labels, v] of observations) {
    if (labelNames.length) h.observe(labels, v);
    else h.observe(v);
    const key = JSON.stringify(labels);
    if (!series.has(key)) series.set(key, [labels, new Buckets(BOUNDS)]);
    series.get(key)![1].record(v);
  }
  ours.registerMetric(histogramMetric('x_seconds', 'x help', BOUNDS, () => series.values()) as unknown as Metric);
  return { theirs, ours };
}

/** Each sample line with its labels sorted (Prometheus reads a label set, not an order), HELP and TYPE kept. */
const samples = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((line) => line.replace(/\{([^}]*)\}/, (_, inner: string) => `{${inner.split(',').sort().join(',')}}`));

/** The text the cluster's primary serves: every worker's JSON merged by prom-client. */
const merged = async (...registries: Registry[]) => AggregatorRegistry.aggregate(await Promise.all(registries.map((r) => r.getMetricsAsJSON()))).metrics();

describe("core's Buckets + histogramMetric print what prom-client's Histogram prints", () => {
  test('one series, no labels of its own (the workers request durations)', async () => {
    const { theirs, ours } = both([], VALUES.map((v) => [{}, v]));
    assert.equal(await merged(ours), await merged(theirs));
    assert.deepEqual(samples(await ours.metrics()), samples(await theirs.metrics()));
    assert.match(await ours.metrics(), /x_seconds_bucket\{le="0\.001",slot="3"\} 3\n/, 'a value on a bound counts in that bucket');
  });

  test('labelled series (store calls by store and operation)', async () => {
    const obs: Array<[Record<string, string>, number]> = [];
    for (const [i, v] of VALUES.entries()) obs.push([{ store: i % 2 ? 'redis' : 'sqlite', operation: i % 3 ? 'get' : 'set' }, v]);
    const { theirs, ours } = both(['store', 'operation'], obs);
    assert.equal(await merged(ours), await merged(theirs));
    assert.deepEqual(samples(await ours.metrics()), samples(await theirs.metrics()));
  });

  test('merged across workers by the primary as prom-client merges its own', async () => {
    const a = both([], VALUES.map((v) => [{}, v]));
    const b = both([], VALUES.slice(3).map((v) => [{}, v * 2]));
    assert.equal(await merged(a.ours, b.ours), await merged(a.theirs, b.theirs));
  });

  test('nothing recorded yet: zero buckets, as a fresh Histogram prints', async () => {
    const { theirs, ours } = both([], []);
    assert.equal(await merged(ours), await merged(theirs));
    assert.deepEqual(samples(await ours.metrics()), samples(await theirs.metrics()));
  });
});

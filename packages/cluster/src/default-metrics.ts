import { collectDefaultMetrics, type Registry } from 'prom-client';

/**
 * prom-client's process and Node metrics (CPU, memory, heap, event-loop lag, GC), less three gauges whose names
 * end in `_total` (`nodejs_active_handles_total`, ...): Prometheus keeps that suffix for counters, and
 * `promtool check metrics` flags them. Their per-type gauges (`nodejs_active_handles{type}`) stay.
 */
export function defaultMetrics(register: Registry, labels?: Record<string, string>): void {
  collectDefaultMetrics({ register, ...(labels ? { labels } : {}) });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) register.removeSingleMetric(name);
}

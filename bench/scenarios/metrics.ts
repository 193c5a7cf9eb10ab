/**
 * What the Prometheus metrics cost, measured side by side in one run (issue #16: at most 5%):
 *   - the balancer (as a built process) with its admin server and metrics on, scraped every second, against the
 *     same balancer with `metrics: false` (admin server still on), over the same two upstreams;
 *   - a cluster of 2 workers with `--metrics` (prom-client in every worker), scraped every second, against the
 *     same cluster without.
 * A scrape a second is harsher than Prometheus' usual 15-60 s. The machine's load average is in each row's note,
 * since other work on a shared machine moves every figure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, request, startProcess, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { load, type LoadResult } from '../lib/load.ts';
import { FIXTURES, startOurs } from '../lib/managers.ts';
import { cpuMicros, treeCpuMicros } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';

const CONNECTIONS = 64;

/** GET /metrics once a second while `work` runs (what a Prometheus with a 1 s scrape interval does). */
async function scraped<T>(url: string | undefined, work: () => Promise<T>): Promise<T> {
  if (!url) return work();
  let going = true;
  const loop = (async () => {
    while (going) {
      await request(url).catch(() => {});
      await new Promise((r) => setTimeout(r, 1_000));
    }
  })();
  try {
    return await work();
  } finally {
    going = false;
    await loop;
  }
}

const load1 = () => loadavg()[0]!.toFixed(1);
/** The load averages seen over a run, as a range (one per turn would be a long note). */
const spread = (loads: string[]) => `load ${Math.min(...loads.map(Number)).toFixed(1)}-${Math.max(...loads.map(Number)).toFixed(1)}`;

const scenario: Scenario = {
  name: 'metrics',
  title: 'cost of the Prometheus metrics: balancer and cluster with metrics (scraped every second) vs without, same run',
  async run(ctx) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-metrics-'));
    const procs: Proc[] = [];
    const rows: Row[] = [];
    const loads: string[] = [load1()];
    // Each side takes turns with the other: four times as many turns as other scenarios' rounds, each half as
    // long. On a shared VM the machine's speed drifts by ±20% over seconds, more than the few percent measured
    // here; short alternating turns spread that drift over both sides.
    const turns = ctx.rounds * 4;
    const turnSec = Math.max(1, Math.round(ctx.durationSec / 2));
    try {
      // The balancer, twice: metrics on and off, over the same upstreams.
      const ups = await startUpstreams(procs);
      const js = buildJs(dir);
      const balancers: Record<'with' | 'without', { port: number; pid: number; metrics: string | undefined }> = {} as never;
      for (const kind of ['with', 'without'] as const) {
        const [port, admin] = await Promise.all([freePort(), freePort()]);
        const proc = startProcess(process.execPath, [js, String(port), ...ups.map((p) => `http://127.0.0.1:${p}`)], {
          env: { ...process.env, BENCH_ADMIN: String(admin), BENCH_METRICS: kind === 'with' ? '1' : '0' },
        });
        procs.push(proc);
        await proc.waitFor(/ready/);
        balancers[kind] = { port, pid: proc.pid, metrics: kind === 'with' ? `http://127.0.0.1:${admin}/metrics` : undefined };
      }
      for (const b of Object.values(balancers)) await load(`http://127.0.0.1:${b.port}/`, { connections: CONNECTIONS, durationSec: 2 });
      const cpu: Record<string, number[]> = {};
      const lb = await alternate(turns, {
        with: () => measureBalancer('with'),
        without: () => measureBalancer('without'),
      });
      async function measureBalancer(kind: 'with' | 'without'): Promise<LoadResult> {
        const b = balancers[kind];
        const before = cpuMicros(b.pid);
        const r = await scraped(b.metrics, () => load(`http://127.0.0.1:${b.port}/`, { connections: CONNECTIONS, durationSec: turnSec }));
        (cpu[kind] ??= []).push((cpuMicros(b.pid) - before) / Math.max(1, r.requests));
        loads.push(load1());
        ctx.log(`metrics: balancer ${kind} metrics: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms (load ${load1()})`);
        return r;
      }
      const rps = (r: LoadResult[]) => median(r.map((x) => x.rps));
      const p99 = (r: LoadResult[]) => median(r.map((x) => x.p99Ms));
      const failed = (r: LoadResult[]) => r.reduce((n, x) => n + x.errors + x.non2xx, 0);
      const lbRatio = ratio(rps(lb.with), rps(lb.without));
      rows.push(
        { scenario: 'metrics', metric: `balancer req/s, ${CONNECTIONS} connections, /metrics scraped every 1 s (${lb.with.length} turns of ${turnSec} s each)`, unit: 'req/s', ours: rps(lb.with), peer: 'metrics: false', peerValue: rps(lb.without), ratio: lbRatio, target: '>= 0.95x', met: lbRatio >= 0.95, note: `${spread(loads)}${failed([...lb.with, ...lb.without]) ? `, ${failed([...lb.with, ...lb.without])} failed` : ''}` },
        { scenario: 'metrics', metric: 'balancer p99 latency with metrics', unit: 'ms', ours: p99(lb.with), peer: 'metrics: false', peerValue: p99(lb.without), ratio: ratio(p99(lb.with), p99(lb.without)) },
        { scenario: 'metrics', metric: 'balancer CPU per request with metrics', unit: 'µs', ours: median(cpu.with!), peer: 'metrics: false', peerValue: median(cpu.without!), ratio: ratio(median(cpu.with!), median(cpu.without!)), target: '<= 1.05x', met: ratio(median(cpu.with!), median(cpu.without!)) <= 1.05 },
      );

      // The cluster: 2 workers of the plain app, with and without --metrics, both started once, taking turns.
      const clusterLoads: string[] = [load1()];
      const clusterCpu: Record<string, number[]> = {};
      const clusters: Partial<Record<'with' | 'without', { port: number; pid: number; metrics: string | undefined }>> = {};
      const managed: Array<{ stop(): Promise<void> }> = [];
      try {
        for (const kind of ['with', 'without'] as const) {
          const [port, metrics] = await Promise.all([freePort(), freePort()]);
          const cluster = await startOurs(path.join(FIXTURES, 'app.mjs'), 2, port, kind === 'with' ? ['--metrics', String(metrics)] : []);
          managed.push(cluster);
          clusters[kind] = { port, pid: cluster.pid!, metrics: kind === 'with' ? `http://127.0.0.1:${metrics}/metrics` : undefined };
          await load(`http://127.0.0.1:${port}/`, { connections: 16, durationSec: 2 });
        }
        const measureCluster = (kind: 'with' | 'without') => async () => {
          const c = clusters[kind]!;
          const before = treeCpuMicros(c.pid);
          const r = await scraped(c.metrics, () => load(`http://127.0.0.1:${c.port}/`, { connections: 16, durationSec: turnSec }));
          (clusterCpu[kind] ??= []).push((treeCpuMicros(c.pid) - before) / Math.max(1, r.requests));
          clusterLoads.push(load1());
          ctx.log(`metrics: cluster ${kind} --metrics: ${Math.round(r.rps)} req/s (load ${load1()})`);
          return r;
        };
        const cl = await alternate(turns, { with: measureCluster('with'), without: measureCluster('without') });
        const clRatio = ratio(rps(cl.with), rps(cl.without));
        rows.push(
          { scenario: 'metrics', metric: `cluster (2 workers) req/s, /metrics scraped every 1 s (${cl.with.length} turns of ${turnSec} s each)`, unit: 'req/s', ours: rps(cl.with), peer: 'no --metrics', peerValue: rps(cl.without), ratio: clRatio, target: '>= 0.95x', met: clRatio >= 0.95, note: spread(clusterLoads) },
          { scenario: 'metrics', metric: 'cluster CPU per request (primary + workers) with --metrics', unit: 'µs', ours: median(clusterCpu.with!), peer: 'no --metrics', peerValue: median(clusterCpu.without!), ratio: ratio(median(clusterCpu.with!), median(clusterCpu.without!)), target: '<= 1.05x', met: ratio(median(clusterCpu.with!), median(clusterCpu.without!)) <= 1.05 },
        );
      } finally {
        await Promise.all(managed.map((c) => c.stop()));
      }
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './ports.ts';
import { startProcess, type Proc } from './process.ts';
import { request } from './http.ts';
import { until } from './wait.ts';
import { which } from './binaries.ts';

export interface PrometheusOptions {
  /** Scrape jobs: a job name and its `host:port` targets (path `/metrics`). */
  jobs: Array<{ name: string; targets: string[] }>;
  /** Seconds between scrapes and between rule evaluations (default 1). */
  intervalSeconds?: number;
  /** Rule files (absolute paths) to load. */
  ruleFiles?: string[];
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

export interface PromAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: 'pending' | 'firing' | 'inactive';
}

export interface PrometheusServer {
  readonly url: string;
  readonly proc: Proc;
  /** An instant query through the HTTP API (`/api/v1/query`): the vector's samples. */
  query(expr: string): Promise<PromSample[]>;
  /** The scrape targets and their health (`/api/v1/targets`). */
  targets(): Promise<Array<{ job: string; instance: string; health: string; lastError: string }>>;
  /** Alerts pending or firing (`/api/v1/alerts`). */
  alerts(): Promise<PromAlert[]>;
  stop(): Promise<void>;
}

/**
 * A real Prometheus (Debian's `prometheus` package) on a free loopback port, with a generated configuration and
 * its own data directory, removed on stop(). Nothing is scraped but the targets given.
 */
export async function startPrometheus(o: PrometheusOptions): Promise<PrometheusServer> {
  const bin = process.env.PROMETHEUS_PATH ?? which('prometheus') ?? 'prometheus';
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-prometheus-'));
  const port = await freePort();
  const every = `${o.intervalSeconds ?? 1}s`;
  const config = [
    'global:',
    `  scrape_interval: ${every}`,
    `  scrape_timeout: ${every}`,
    `  evaluation_interval: ${every}`,
    ...(o.ruleFiles?.length ? ['rule_files:', ...o.ruleFiles.map((f) => `  - ${JSON.stringify(f)}`)] : []),
    'scrape_configs:',
    ...o.jobs.flatMap((j) => [`  - job_name: ${JSON.stringify(j.name)}`, '    static_configs:', `      - targets: [${j.targets.map((t) => JSON.stringify(t)).join(', ')}]`]),
    '',
  ].join('\n');
  const file = path.join(dir, 'prometheus.yml');
  writeFileSync(file, config);
  const proc = startProcess(bin, [
    `--config.file=${file}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    // No console templates or remote features: only the API is used.
    '--log.level=warn',
  ]);
  const url = `http://127.0.0.1:${port}`;
  const api = async (p: string) => {
    const r = await request(`${url}${p}`);
    if (r.status !== 200) throw new Error(`prometheus ${p} answered ${r.status}: ${r.body}`);
    return (r.json as { data: any }).data;
  };
  try {
    await until('prometheus ready', async () => (await request(`${url}/-/ready`).catch(() => ({ status: 0 }))).status === 200, 30_000);
  } catch (err) {
    await proc.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}; prometheus output:\n${proc.output()}`);
  }
  return {
    url,
    proc,
    async query(expr) {
      const data = await api(`/api/v1/query?query=${encodeURIComponent(expr)}`);
      return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
    },
    async targets() {
      const data = await api('/api/v1/targets');
      return (data.activeTargets as Array<{ labels: Record<string, string>; health: string; lastError: string }>).map((t) => ({
        job: t.labels.job ?? '',
        instance: t.labels.instance ?? '',
        health: t.health,
        lastError: t.lastError,
      }));
    },
    async alerts() {
      return (await api('/api/v1/alerts')).alerts as PromAlert[];
    },
    async stop() {
      await proc.stop('SIGTERM', 5_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

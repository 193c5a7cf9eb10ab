/**
 * The edge features against nginx doing the same, in the same run, alternating: TLS termination (nginx with the
 * same certificate, one worker), gzip/brotli compression of an 8 KiB JSON answer (nginx gzip at the same level),
 * and what the rate limit costs the bundled balancer (limit on vs off). Plus the per-check cost of the in-process
 * token bucket against rate-limiter-flexible's RateLimiterMemory, the library of the field (why the hand-written
 * bucket: see the balancer README's dependency table). The certificate is made at run time by testCA().
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { RateLimiterMemory } from 'rate-limiter-flexible';
import { freePort, startProcess, testCA, waitForPort, which, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { failureSummary, load, type LoadResult } from '../lib/load.ts';
import { cpuMicros } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';
import { RateLimiter } from '../../packages/balancer/src/rate-limit.ts';

const CONNECTIONS = 64;

const nginxConf = (dir: string, port: number, ups: number[], tls: { cert: string; key: string } | undefined, gzip: boolean) => `worker_processes 1;
pid ${dir}/nginx-${port}.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { ${ups.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 256; }
  ${gzip ? 'gzip on; gzip_proxied any; gzip_vary on; gzip_comp_level 4; gzip_types application/json;' : ''}
  server {
    listen 127.0.0.1:${port}${tls ? ' ssl' : ''};
    ${tls ? `ssl_certificate ${tls.cert}; ssl_certificate_key ${tls.key}; ssl_protocols TLSv1.2 TLSv1.3;` : ''}
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_buffering off;
    }
  }
}
`;

interface Contender {
  url: string;
  pid: number;
  label: string;
  headers?: Record<string, string>;
}

/** ns per check: the bundled bucket and rate-limiter-flexible, over the same 1,000 keys, alternating. */
async function bucketCost(rounds: number, checks: number): Promise<{ ours: number; rlf: number }> {
  const keys = Array.from({ length: 1000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
  const ours = new RateLimiter({ perMs: 1e6, burst: 1e9, maxClients: 100_000 });
  const rlf = new RateLimiterMemory({ points: 1e9, duration: 1 });
  const out = await alternate(rounds, {
    ours: async () => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < checks; i++) ours.take(keys[i % 1000]!, Date.now());
      return Number(process.hrtime.bigint() - t) / checks;
    },
    rlf: async () => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < checks; i++) await rlf.consume(keys[i % 1000]!);
      return Number(process.hrtime.bigint() - t) / checks;
    },
  });
  return { ours: median(out.ours), rlf: median(out.rlf) };
}

const scenario: Scenario = {
  name: 'edge',
  title: 'TLS, compression and rate limit: bundled balancer vs nginx (1 worker) doing the same, same run',
  async run(ctx) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-edge-'));
    const procs: Proc[] = [];
    const rows: Row[] = [];
    try {
      const cert = testCA(path.join(dir, 'pki')).issue('bench', ['localhost', '127.0.0.1']);
      const pair = { cert: cert.cert, key: cert.key };
      const ups = await startUpstreams(procs);
      const urls = ups.map((p) => `http://127.0.0.1:${p}`);
      const js = buildJs(dir);
      const ours = async (env: Record<string, string>, label: string, scheme = 'http', pathname = '/', headers?: Record<string, string>): Promise<Contender> => {
        const port = await freePort();
        const proc = startProcess(process.execPath, [js, String(port), ...urls], { env: { ...process.env, ...env } });
        procs.push(proc);
        await proc.waitFor(/ready/);
        return { url: `${scheme}://127.0.0.1:${port}${pathname}`, pid: proc.pid, label, ...(headers ? { headers } : {}) };
      };
      const nginxBin = which('nginx');
      const nginx = async (tls: boolean, gzip: boolean, label: string, pathname = '/', headers?: Record<string, string>): Promise<Contender | undefined> => {
        if (!nginxBin) return undefined;
        const port = await freePort();
        const file = path.join(dir, `nginx-${port}.conf`);
        writeFileSync(file, nginxConf(dir, port, ups, tls ? pair : undefined, gzip));
        const proc = startProcess(nginxBin, ['-c', file, '-p', dir, '-g', 'daemon off;']);
        procs.push(proc);
        await waitForPort(port);
        const worker = Number(execFileSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
        return { url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}${pathname}`, pid: worker, label, ...(headers ? { headers } : {}) };
      };
      const gz = { 'Accept-Encoding': 'gzip' };
      const groups: Array<{ name: string; metric: string; contenders: () => Promise<Record<string, Contender | undefined>> }> = [
        {
          name: 'tls',
          metric: `TLS req/s, ${CONNECTIONS} keep-alive connections`,
          contenders: async () => ({ ours: await ours({ BENCH_TLS_CERT: pair.cert, BENCH_TLS_KEY: pair.key }, 'bundled balancer, TLS', 'https'), peer: await nginx(true, false, 'nginx 1 worker, TLS') }),
        },
        {
          name: 'gzip',
          metric: 'gzip req/s, 8 KiB JSON answers',
          contenders: async () => ({ ours: await ours({ BENCH_COMPRESS: '1' }, 'bundled balancer, --compress', 'http', '/json8k', gz), peer: await nginx(false, true, 'nginx 1 worker, gzip level 4', '/json8k', gz) }),
        },
        {
          name: 'br',
          metric: 'brotli req/s, 8 KiB JSON answers (vs nginx gzip: no brotli in stock nginx)',
          contenders: async () => ({ ours: await ours({ BENCH_COMPRESS: '1' }, 'bundled balancer, --compress', 'http', '/json8k', { 'Accept-Encoding': 'br' }), peer: await nginx(false, true, 'nginx 1 worker, gzip level 4', '/json8k', gz) }),
        },
        {
          name: 'rate',
          metric: 'req/s with --rate-limit on (nothing limited) / off',
          contenders: async () => ({ ours: await ours({ BENCH_RATE: '1000000/s' }, 'bundled balancer, rate limit on'), peer: await ours({}, 'bundled balancer, rate limit off') }),
        },
      ];
      // A smoke pass (npm test) proves the harness with the TLS and gzip pairs only, unwarmed.
      for (const g of ctx.smoke ? groups.filter((x) => x.name === 'tls' || x.name === 'gzip') : groups) {
        const present = Object.fromEntries(Object.entries(await g.contenders()).filter(([, c]) => c !== undefined)) as Record<string, Contender>;
        if (!ctx.smoke) for (const c of Object.values(present)) await load(c.url, { connections: CONNECTIONS, durationSec: 1, ...(c.headers ? { headers: c.headers } : {}) });
        const cpu: Record<string, number[]> = {};
        const results = await alternate(
          ctx.rounds,
          Object.fromEntries(
            Object.entries(present).map(([k, c]) => [
              k,
              async () => {
                const before = cpuMicros(c.pid);
                const r = await load(c.url, { connections: CONNECTIONS, durationSec: ctx.durationSec, ...(c.headers ? { headers: c.headers } : {}) });
                (cpu[k] ??= []).push((cpuMicros(c.pid) - before) / Math.max(1, r.requests));
                ctx.log(`edge/${g.name}: ${c.label}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms, errors ${failureSummary(r)} (${r.tool})`);
                return r;
              },
            ]),
          ) as Record<string, () => Promise<LoadResult>>,
        );
        const rps = (k: string) => median(results[k]!.map((x) => x.rps));
        const failures = Object.values(results).flat().reduce((n, x) => n + x.errors + x.non2xx, 0);
        const note = `under load (shared 2-core machine)${failures ? `; ${failures} failed` : ''}`;
        if (!present.peer) {
          rows.push({ scenario: 'edge', metric: g.metric, unit: 'req/s', ours: rps('ours'), note: 'nginx not installed: no peer' });
          continue;
        }
        rows.push({ scenario: 'edge', metric: g.metric, unit: 'req/s', ours: rps('ours'), peer: present.peer.label, peerValue: rps('peer'), ratio: ratio(rps('ours'), rps('peer')), note });
        const cpuPer = (k: string) => median(cpu[k]!);
        rows.push({ scenario: 'edge', metric: `${g.name}: CPU per request`, unit: 'µs', ours: cpuPer('ours'), peer: present.peer.label, peerValue: cpuPer('peer'), ratio: ratio(cpuPer('ours'), cpuPer('peer')) });
      }
      const cost = await bucketCost(ctx.rounds, ctx.smoke ? 20_000 : 500_000);
      rows.push({ scenario: 'edge', metric: 'rate-limit check, ns per request (1,000 client keys)', unit: 'ns', ours: cost.ours, peer: 'rate-limiter-flexible RateLimiterMemory.consume', peerValue: cost.rlf, ratio: ratio(cost.ours, cost.rlf), note: 'in-process, same run' });
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

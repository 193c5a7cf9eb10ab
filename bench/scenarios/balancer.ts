/**
 * The bundled balancer (one process) against nginx (one worker) and HAProxy (one thread) when they are installed:
 * the same two upstream processes, the same load generator, alternating rounds. Reports req/s, p99, CPU per
 * request and resident memory holding 1,000 idle keep-alive clients. A peer that is not installed is skipped with
 * a note (`apt-get install nginx haproxy wrk`); without wrk the load comes from autocannon. BENCH_NAIVE=1 adds a
 * straightforward node:http proxy as a reference, BENCH_FLOOR=1 a proxy that parses nothing (the runtime's ceiling).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, startProcess, waitForPort, which, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { failureSummary, load, type LoadResult } from '../lib/load.ts';
import { cpuMicros, rssMiB } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const CONNECTIONS = 64;

/**
 * nginx in front of `ups`; `workers` is its worker_processes (1 unless told). Several workers listen with
 * `reuseport`, one socket each, as the bundled balancer's threads do: the like-for-like comparison, and nginx's own
 * advice for load spread over workers.
 */
export const nginxConf = (dir: string, port: number, ups: number[], workers = 1) => `worker_processes ${workers};
worker_rlimit_nofile 65536;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  upstream up { ${ups.map((p) => `server 127.0.0.1:${p};`).join(' ')} keepalive 256; }
  server {
    listen 127.0.0.1:${port}${workers > 1 ? ' reuseport' : ''};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering off;
    }
  }
}
`;

// maxconn 4096: HAProxy needs about twice maxconn in descriptors and refuses to start above the process limit.
const haproxyConf = (port: number, ups: number[]) => `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  option forwardfor
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${ups.map((p, i) => `  server u${i} 127.0.0.1:${p}`).join('\n')}
`;

/** Opens `count` keep-alive client connections, each after one answered request; returns a closer. */
export async function holdClients(port: number, count: number): Promise<() => void> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          sockets.push(s);
          s.on('error', reject);
          s.once('data', () => resolve());
          s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
        }),
      ),
    );
  }
  return () => sockets.forEach((s) => s.destroy());
}

interface Contender {
  url: string;
  port: number;
  pid: number;
  label: string;
}

const scenario: Scenario = {
  name: 'balancer',
  title: 'bundled balancer (1 process) vs nginx (1 worker) and HAProxy (1 thread), same 2 upstreams, same load',
  async run(ctx) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-lb-'));
    const procs: Proc[] = [];
    const notes: string[] = [];
    try {
      const ups = await startUpstreams(procs);
      const urls = ups.map((p) => `http://127.0.0.1:${p}`);
      const contenders: Record<string, Contender> = {};

      const lbPort = await freePort();
      const lb = startProcess(process.execPath, [buildJs(dir), String(lbPort), ...urls]);
      procs.push(lb);
      await lb.waitFor(/ready/);
      contenders.ours = { url: `http://127.0.0.1:${lbPort}/`, port: lbPort, pid: lb.pid, label: 'bundled balancer' };

      const nginx = which('nginx');
      if (nginx) {
        const port = await freePort();
        writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, port, ups));
        const proc = startProcess(nginx, ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;']);
        procs.push(proc);
        await waitForPort(port);
        // Measure the worker, not the master that only supervises.
        const worker = Number(execFileSync('pgrep', ['-P', String(proc.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
        contenders.nginx = { url: `http://127.0.0.1:${port}/`, port, pid: worker, label: 'nginx 1 worker' };
      } else notes.push('nginx not installed: skipped (apt-get install nginx)');

      const haproxy = which('haproxy');
      if (haproxy) {
        const port = await freePort();
        writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConf(port, ups));
        const proc = startProcess(haproxy, ['-db', '-f', path.join(dir, 'haproxy.cfg')]);
        procs.push(proc);
        await waitForPort(port);
        contenders.haproxy = { url: `http://127.0.0.1:${port}/`, port, pid: proc.pid, label: 'HAProxy 1 thread' };
      } else notes.push('haproxy not installed: skipped (apt-get install haproxy)');

      /** A reference proxy from bench/fixtures (not ours), as one more contender. */
      const reference = async (key: string, fixture: string, label: string) => {
        const port = await freePort();
        const proc = startProcess(process.execPath, [path.join(here, '..', 'fixtures', fixture), String(port), ...urls]);
        procs.push(proc);
        await proc.waitFor(/ready/);
        contenders[key] = { url: `http://127.0.0.1:${port}/`, port, pid: proc.pid, label };
      };
      // The reference the design had to beat: node:http server + keep-alive Agent, piped both ways.
      if (process.env.BENCH_NAIVE === '1') await reference('naive', 'naive-proxy.ts', 'naive node:http proxy');
      // The ceiling: Node sockets piped 1:1, nothing parsed.
      if (process.env.BENCH_FLOOR === '1') await reference('floor', 'floor-proxy.ts', 'parse-nothing Node socket pipe');

      for (const note of notes) ctx.log(`balancer: ${note}`);
      // Warm every contender (JIT, keep-alive pools) before measuring.
      for (const c of Object.values(contenders)) await load(c.url, { connections: CONNECTIONS, durationSec: 1 });

      const cpu: Record<string, number[]> = {};
      const results = await alternate(
        ctx.rounds,
        Object.fromEntries(
          Object.entries(contenders).map(([k, c]) => [
            k,
            async () => {
              const before = cpuMicros(c.pid);
              const r = await load(c.url, { connections: CONNECTIONS, durationSec: ctx.durationSec });
              (cpu[k] ??= []).push((cpuMicros(c.pid) - before) / Math.max(1, r.requests));
              ctx.log(`balancer: ${c.label}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms, errors ${failureSummary(r)} (${r.tool})`);
              return r;
            },
          ]),
        ) as Record<string, () => Promise<LoadResult>>,
      );

      const held = ctx.smoke ? 100 : 1000;
      const memory: Record<string, number> = {};
      for (const [k, c] of Object.entries(contenders)) {
        const release = await holdClients(c.port, held);
        await new Promise((r) => setTimeout(r, 300));
        memory[k] = rssMiB(c.pid);
        release();
      }

      const rps = (k: string) => median(results[k]!.map((x) => x.rps));
      const p99 = (k: string) => median(results[k]!.map((x) => x.p99Ms));
      const cpuPer = (k: string) => median(cpu[k]!);
      const failures = Object.values(results).flat().reduce((n, x) => n + x.errors + x.non2xx, 0);
      const rows: Row[] = [];
      for (const peer of ['nginx', 'haproxy'].filter((p) => p in contenders)) {
        const label = contenders[peer]!.label;
        const rr = ratio(rps('ours'), rps(peer));
        const pr = ratio(p99('ours'), p99(peer));
        rows.push(
          { scenario: 'balancer', metric: `req/s, ${CONNECTIONS} keep-alive connections`, unit: 'req/s', ours: rps('ours'), peer: label, peerValue: rps(peer), ratio: rr, ...(peer === 'nginx' ? { target: '>= 1.0x', met: rr >= 1.0 } : {}), ...(failures ? { note: `${failures} failed` } : {}) },
          { scenario: 'balancer', metric: 'p99 latency', unit: 'ms', ours: p99('ours'), peer: label, peerValue: p99(peer), ratio: pr, ...(peer === 'nginx' ? { target: '<= 1.2x', met: pr <= 1.2 } : {}) },
          { scenario: 'balancer', metric: 'CPU per request', unit: 'µs', ours: cpuPer('ours'), peer: label, peerValue: cpuPer(peer), ratio: ratio(cpuPer('ours'), cpuPer(peer)) },
          { scenario: 'balancer', metric: `RSS holding ${held.toLocaleString('en')} keep-alive clients`, unit: 'MiB', ours: memory.ours!, peer: label, peerValue: memory[peer] },
        );
      }
      if (contenders.naive && contenders.nginx) {
        rows.push({ scenario: 'balancer', metric: 'naive node:http proxy req/s (reference, not ours)', unit: 'req/s', ours: rps('naive'), peer: 'nginx 1 worker', peerValue: rps('nginx'), ratio: ratio(rps('naive'), rps('nginx')) });
      }
      if (contenders.floor && contenders.nginx) {
        const metric = 'parse-nothing Node socket pipe (reference, not ours)';
        rows.push(
          { scenario: 'balancer', metric: `${metric} req/s`, unit: 'req/s', ours: rps('floor'), peer: 'nginx 1 worker', peerValue: rps('nginx'), ratio: ratio(rps('floor'), rps('nginx')) },
          { scenario: 'balancer', metric: `${metric} CPU per request`, unit: 'µs', ours: cpuPer('floor'), peer: 'nginx 1 worker', peerValue: cpuPer('nginx'), ratio: ratio(cpuPer('floor'), cpuPer('nginx')) },
        );
      }
      if (rows.length === 0) {
        rows.push({ scenario: 'balancer', metric: `req/s, ${CONNECTIONS} keep-alive connections`, unit: 'req/s', ours: rps('ours'), note: notes.join('; ') });
        rows.push({ scenario: 'balancer', metric: `RSS holding ${held.toLocaleString('en')} keep-alive clients`, unit: 'MiB', ours: memory.ours! });
      }
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

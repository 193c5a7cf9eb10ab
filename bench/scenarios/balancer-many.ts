/**
 * The bundled balancer (1 process) against nginx (1 worker) at 1,000 and 5,000 concurrent keep-alive clients, the
 * same 2 upstreams, alternating rounds: req/s, p99, CPU per request, and resident memory per held client
 * ((RSS holding N idle clients - RSS holding none) / N). The descriptor limit is raised for this process and its
 * children (prlimit, as root) so neither side runs out at 5,000 clients plus their upstream connections.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startProcess, waitForPort, which, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { failureSummary, hasWrk, load, type LoadResult } from '../lib/load.ts';
import { cpuMicros, rssMiB } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';
import { holdClients, nginxConf } from './balancer.ts';

/** Raises the soft descriptor limit to the hard one (or 65536 where allowed); returns the limit in force. */
function raiseFdLimit(): string {
  const current = () => execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=SOFT'], { encoding: 'utf8' }).trim();
  for (const want of ['65536:65536', 'unlimited']) {
    try {
      execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${want === 'unlimited' ? execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--output=HARD'], { encoding: 'utf8' }).trim() : want}`], { stdio: 'ignore' });
      break;
    } catch {
      // not allowed (a container's hard limit): keep what there is
    }
  }
  try {
    return `ulimit -n ${current()}`;
  } catch {
    return 'ulimit -n unknown (no prlimit)';
  }
}

const scenario: Scenario = {
  name: 'balancer-many',
  title: 'bundled balancer vs nginx (1 worker) at 1,000 and 5,000 keep-alive clients; RSS per client connection',
  async run(ctx) {
    const nginx = which('nginx');
    if (!nginx || !hasWrk()) return [{ scenario: 'balancer-many', metric: 'skipped', unit: '', ours: NaN, note: 'needs nginx and wrk (apt-get install nginx wrk)' }];
    const limit = raiseFdLimit();
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-lbm-'));
    const procs: Proc[] = [];
    try {
      const ups = await startUpstreams(procs);
      const lbPort = await freePort();
      const lb = startProcess(process.execPath, [buildJs(dir), String(lbPort), ...ups.map((p) => `http://127.0.0.1:${p}`)]);
      procs.push(lb);
      await lb.waitFor(/ready/);
      const ngPort = await freePort();
      writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, ngPort, ups));
      const ng = startProcess(nginx, ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;']);
      procs.push(ng);
      await waitForPort(ngPort);
      const ngWorker = Number(execFileSync('pgrep', ['-P', String(ng.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
      const contenders = {
        ours: { url: `http://127.0.0.1:${lbPort}/`, port: lbPort, pid: lb.pid },
        nginx: { url: `http://127.0.0.1:${ngPort}/`, port: ngPort, pid: ngWorker },
      };
      // Memory per client, first, on fresh processes: RSS holding N idle keep-alive clients (each made one request)
      // minus RSS holding none, after the same short warm-up. Measured after the loads below, the baseline would
      // already hold the memory 5,000 loaded connections left behind (RSS does not shrink), and the figure says little.
      const held = ctx.smoke ? 200 : 5000;
      const perClient: Record<string, number> = {};
      for (const [k, c] of Object.entries(contenders)) {
        await load(c.url, { connections: 8, durationSec: 1 });
        await new Promise((res) => setTimeout(res, 500));
        const base = rssMiB(c.pid);
        const release = await holdClients(c.port, held);
        await new Promise((res) => setTimeout(res, 500));
        perClient[k] = ((rssMiB(c.pid) - base) * 1024) / held;
        release();
      }
      const memoryRow: Row = { scenario: 'balancer-many', metric: `RSS per held keep-alive client (${held.toLocaleString('en')} held, fresh process)`, unit: 'KiB', ours: perClient.ours!, peer: 'nginx 1 worker', peerValue: perClient.nginx, ratio: ratio(perClient.ours!, perClient.nginx!), target: '<= 15 KiB', met: perClient.ours! <= 15 };
      const rows: Row[] = [];
      for (const connections of ctx.smoke ? [200] : [1000, 5000]) {
        for (const c of Object.values(contenders)) await load(c.url, { connections, durationSec: ctx.smoke ? 1 : 2 });
        const cpu: Record<string, number[]> = {};
        const r = await alternate(
          ctx.rounds,
          Object.fromEntries(
            Object.entries(contenders).map(([k, c]) => [
              k,
              async () => {
                const before = cpuMicros(c.pid);
                const res = await load(c.url, { connections, durationSec: ctx.durationSec });
                (cpu[k] ??= []).push((cpuMicros(c.pid) - before) / Math.max(1, res.requests));
                ctx.log(`balancer-many: ${k} at ${connections}: ${Math.round(res.rps)} req/s, p99 ${res.p99Ms} ms, errors ${failureSummary(res)}`);
                return res;
              },
            ]),
          ) as Record<'ours' | 'nginx', () => Promise<LoadResult>>,
        );
        const rps = (k: 'ours' | 'nginx') => median(r[k].map((x) => x.rps));
        const p99 = (k: 'ours' | 'nginx') => median(r[k].map((x) => x.p99Ms));
        const cpuPer = (k: 'ours' | 'nginx') => median(cpu[k]!);
        const failed = [...r.ours, ...r.nginx].reduce((n, x) => n + x.errors + x.non2xx, 0);
        const note = `${limit}${failed ? `; ${failed} failed` : ''}; under load`;
        rows.push(
          { scenario: 'balancer-many', metric: `req/s, ${connections.toLocaleString('en')} keep-alive connections`, unit: 'req/s', ours: rps('ours'), peer: 'nginx 1 worker', peerValue: rps('nginx'), ratio: ratio(rps('ours'), rps('nginx')), target: '>= 1.0x', met: ratio(rps('ours'), rps('nginx')) >= 1, note },
          { scenario: 'balancer-many', metric: `p99 latency, ${connections.toLocaleString('en')} connections`, unit: 'ms', ours: p99('ours'), peer: 'nginx 1 worker', peerValue: p99('nginx'), ratio: ratio(p99('ours'), p99('nginx')) },
          { scenario: 'balancer-many', metric: `CPU per request, ${connections.toLocaleString('en')} connections`, unit: 'µs', ours: cpuPer('ours'), peer: 'nginx 1 worker', peerValue: cpuPer('nginx'), ratio: ratio(cpuPer('ours'), cpuPer('nginx')) },
        );
      }
      rows.push(memoryRow);
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

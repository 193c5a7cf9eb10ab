/**
 * The bundled balancer with `workers: 2` (two worker threads in one process, each with its own listener on the port
 * via SO_REUSEPORT) against nginx `worker_processes 2`, at 64 and 1,000 keep-alive connections, the same 2 upstream
 * processes and the same load generator, alternating rounds: req/s, p99 and CPU per request (the whole process tree:
 * nginx's master and workers, our one process with all its threads). Our single-thread balancer and nginx with one
 * worker run in the same rounds as references, so each side's 2 workers / 1 worker scaling is reported too. Like the
 * other balancer scenarios nothing is pinned: contenders, upstreams and the load generator share the machine's cores.
 * Needs nginx and wrk (`apt-get install nginx wrk`); without them the scenario is skipped.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startProcess, waitForPort, which, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { failureSummary, hasWrk, load, type LoadResult } from '../lib/load.ts';
import { children, treeCpuMicros } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';
import { nginxConf } from './balancer.ts';

const WORKERS = 2;
type Key = 'ours2' | 'nginx2' | 'ours1' | 'nginx1';

interface Contender {
  url: string;
  /** The process whose tree's CPU is counted: our balancer process, nginx's master. */
  pid: number;
  label: string;
}

/** The open-file limit this process (and so every contender it starts) runs with, for the notes. */
function fdLimit(): string {
  const m = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  return `ulimit -n ${m?.[1] ?? 'unknown'}`;
}

const scenario: Scenario = {
  name: 'balancer-workers',
  title: `bundled balancer with ${WORKERS} worker threads vs nginx (${WORKERS} workers), with 1 worker each as reference; same 2 upstreams, same load`,
  async run(ctx) {
    const nginx = which('nginx');
    if (!nginx || !hasWrk()) return [{ scenario: 'balancer-workers', metric: 'skipped', unit: '', ours: NaN, note: 'needs nginx and wrk (apt-get install nginx wrk)' }];
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-lbw-'));
    const procs: Proc[] = [];
    try {
      const ups = await startUpstreams(procs);
      const js = buildJs(dir);
      const startOurs = async (workers: number): Promise<Contender> => {
        const port = await freePort();
        // One worker is the balancer as it runs without the option: BENCH_WORKERS unset (even if this shell set it),
        // so no `workers` is passed.
        const { BENCH_WORKERS: _inherited, ...base } = process.env;
        const env = { ...base, ...(workers > 1 ? { BENCH_WORKERS: String(workers) } : {}) };
        const proc = startProcess(process.execPath, [js, String(port), ...ups.map((p) => `http://127.0.0.1:${p}`)], { env });
        procs.push(proc);
        await proc.waitFor(/ready/);
        return { url: `http://127.0.0.1:${port}/`, pid: proc.pid, label: workers > 1 ? `ours ${workers} workers` : 'ours 1 worker' };
      };
      const startNginx = async (workers: number): Promise<Contender> => {
        // A prefix of its own per instance: pid file, error log and temp directories must not collide.
        const prefix = path.join(dir, `nginx-${workers}`);
        mkdirSync(prefix);
        const port = await freePort();
        writeFileSync(path.join(prefix, 'nginx.conf'), nginxConf(prefix, port, ups, workers));
        const proc = startProcess(nginx, ['-c', path.join(prefix, 'nginx.conf'), '-p', prefix, '-g', 'daemon off;']);
        procs.push(proc);
        await waitForPort(port);
        for (let i = 0; children(proc.pid).length < workers; i++) {
          if (i > 100) throw new Error(`nginx started ${children(proc.pid).length} of ${workers} workers`);
          await new Promise((r) => setTimeout(r, 50));
        }
        return { url: `http://127.0.0.1:${port}/`, pid: proc.pid, label: `nginx ${workers} worker${workers > 1 ? 's' : ''}` };
      };
      const contenders: Record<Key, Contender> = {
        ours2: await startOurs(WORKERS),
        nginx2: await startNginx(WORKERS),
        ours1: await startOurs(1),
        nginx1: await startNginx(1),
      };

      const cores = availableParallelism();
      const machineNote = `${cores} cores, not pinned: contenders, 2 upstreams and wrk share them; ${fdLimit()}`;
      const rows: Row[] = [];
      for (const connections of ctx.smoke ? [64, 200] : [64, 1000]) {
        const n = connections.toLocaleString('en');
        // Warm every contender (JIT, keep-alive pools to the upstreams) at this connection count before measuring.
        for (const c of Object.values(contenders)) await load(c.url, { connections, durationSec: ctx.smoke ? 1 : 2 });
        const cpu: Partial<Record<Key, number[]>> = {};
        const r = await alternate(
          ctx.rounds,
          Object.fromEntries(
            Object.entries(contenders).map(([k, c]) => [
              k,
              async () => {
                const before = treeCpuMicros(c.pid);
                const res = await load(c.url, { connections, durationSec: ctx.durationSec });
                (cpu[k as Key] ??= []).push((treeCpuMicros(c.pid) - before) / Math.max(1, res.requests));
                ctx.log(`balancer-workers: ${c.label} at ${connections}: ${Math.round(res.rps)} req/s, p99 ${res.p99Ms} ms, errors ${failureSummary(res)} (${res.tool})`);
                return res;
              },
            ]),
          ) as Record<Key, () => Promise<LoadResult>>,
        );
        const rps = (k: Key) => median(r[k].map((x) => x.rps));
        const p99 = (k: Key) => median(r[k].map((x) => x.p99Ms));
        const cpuPer = (k: Key) => median(cpu[k] ?? []);
        const failed = Object.values(r).flat().reduce((total, x) => total + x.errors + x.non2xx, 0);
        const label = (k: Key) => contenders[k].label;
        const rr = ratio(rps('ours2'), rps('nginx2'));
        const ours = ratio(rps('ours2'), rps('ours1'));
        const theirs = ratio(rps('nginx2'), rps('nginx1'));
        const ofIdeal = (x: number) => `${((x / WORKERS) * 100).toFixed(0)}% of ideal`;
        rows.push(
          { scenario: 'balancer-workers', metric: `req/s, ${WORKERS} workers, ${n} keep-alive connections`, unit: 'req/s', ours: rps('ours2'), peer: label('nginx2'), peerValue: rps('nginx2'), ratio: rr, target: '>= 1.0x', met: rr >= 1, note: `${machineNote}${failed ? `; ${failed} failed` : ''}` },
          { scenario: 'balancer-workers', metric: `p99 latency, ${WORKERS} workers, ${n} connections`, unit: 'ms', ours: p99('ours2'), peer: label('nginx2'), peerValue: p99('nginx2'), ratio: ratio(p99('ours2'), p99('nginx2')) },
          { scenario: 'balancer-workers', metric: `CPU per request, ${WORKERS} workers, ${n} connections (process tree)`, unit: 'µs', ours: cpuPer('ours2'), peer: label('nginx2'), peerValue: cpuPer('nginx2'), ratio: ratio(cpuPer('ours2'), cpuPer('nginx2')) },
          { scenario: 'balancer-workers', metric: `req/s, 1 worker each (reference), ${n} connections`, unit: 'req/s', ours: rps('ours1'), peer: label('nginx1'), peerValue: rps('nginx1'), ratio: ratio(rps('ours1'), rps('nginx1')) },
          { scenario: 'balancer-workers', metric: `CPU per request, 1 worker each (reference), ${n} connections`, unit: 'µs', ours: cpuPer('ours1'), peer: label('nginx1'), peerValue: cpuPer('nginx1'), ratio: ratio(cpuPer('ours1'), cpuPer('nginx1')) },
          { scenario: 'balancer-workers', metric: `ours req/s scaling, ${WORKERS} workers / 1 worker, ${n} connections`, unit: 'req/s', ours: rps('ours2'), peer: label('ours1'), peerValue: rps('ours1'), ratio: ours, target: `ideal ${WORKERS}x`, note: ofIdeal(ours) },
          { scenario: 'balancer-workers', metric: `nginx req/s scaling, ${WORKERS} workers / 1 worker, ${n} connections (reference, not ours)`, unit: 'req/s', ours: rps('nginx2'), peer: label('nginx1'), peerValue: rps('nginx1'), ratio: theirs, target: `ideal ${WORKERS}x`, note: ofIdeal(theirs) },
        );
      }
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

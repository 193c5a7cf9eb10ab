/**
 * What the access log and the request id cost, side by side in one run: three balancer processes (as built
 * JavaScript) over the same two upstreams, measured in alternation:
 *   - `off`: the default (request ids on, no access log): the hot path as every user runs it;
 *   - `json`: the same with the access log in JSON to a file (sonic-boom, batched writes);
 *   - `no-id`: requestId: false, no access log: what generating and forwarding X-Request-Id costs.
 * Ratios are of the same run; the machine's load average is in each row's note.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startProcess, type Proc } from '@cluster-session/testkit';
import { buildJs, startUpstreams } from '../lib/balancer-js.ts';
import { load, type LoadResult } from '../lib/load.ts';
import { cpuMicros } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';

const CONNECTIONS = 64;
const load1 = () => loadavg()[0]!.toFixed(1);
type Kind = 'off' | 'json' | 'no-id';

const scenario: Scenario = {
  name: 'access-log',
  title: 'cost of the access log (JSON to a file) and of X-Request-Id: balancer req/s and CPU per request, same run',
  async run(ctx) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-access-'));
    const procs: Proc[] = [];
    const loads: string[] = [load1()];
    const logFile = path.join(dir, 'access.log');
    try {
      const ups = await startUpstreams(procs);
      const js = buildJs(dir);
      const lbs = {} as Record<Kind, { port: number; pid: number }>;
      for (const kind of ['off', 'json', 'no-id'] as const) {
        const port = await freePort();
        const env: Record<string, string> = { ...(process.env as Record<string, string>) };
        if (kind === 'json') env.BENCH_ACCESS_LOG = logFile;
        if (kind === 'no-id') env.BENCH_REQUEST_ID = '0';
        const proc = startProcess(process.execPath, [js, String(port), ...ups.map((p) => `http://127.0.0.1:${p}`)], { env });
        procs.push(proc);
        await proc.waitFor(/ready/);
        lbs[kind] = { port, pid: proc.pid };
      }
      for (const b of Object.values(lbs)) await load(`http://127.0.0.1:${b.port}/`, { connections: CONNECTIONS, durationSec: 1 });
      const cpu: Partial<Record<Kind, number[]>> = {};
      const measure = (kind: Kind) => async (): Promise<LoadResult> => {
        const b = lbs[kind];
        const before = cpuMicros(b.pid);
        const r = await load(`http://127.0.0.1:${b.port}/`, { connections: CONNECTIONS, durationSec: ctx.durationSec });
        (cpu[kind] ??= []).push((cpuMicros(b.pid) - before) / Math.max(1, r.requests));
        loads.push(load1());
        ctx.log(`access-log: ${kind}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms (load ${load1()})`);
        return r;
      };
      const r = await alternate(ctx.rounds, { off: measure('off'), json: measure('json'), 'no-id': measure('no-id') });
      const rps = (x: LoadResult[]) => median(x.map((y) => y.rps));
      const failed = Object.values(r).flat().reduce((n, x) => n + x.errors + x.non2xx, 0);
      const note = `load ${loads.join('/')}${failed ? `, ${failed} failed` : ''}; log ${Math.round(statSync(logFile).size / 1048576)} MiB`;
      const c = (k: Kind) => median(cpu[k]!);
      const rows: Row[] = [
        { scenario: 'access-log', metric: `balancer req/s with the JSON access log to a file, ${CONNECTIONS} connections`, unit: 'req/s', ours: rps(r.json), peer: 'no access log', peerValue: rps(r.off), ratio: ratio(rps(r.json), rps(r.off)), note },
        { scenario: 'access-log', metric: 'balancer CPU per request with the JSON access log', unit: 'µs', ours: c('json'), peer: 'no access log', peerValue: c('off'), ratio: ratio(c('json'), c('off')) },
        { scenario: 'access-log', metric: 'balancer req/s with X-Request-Id (the default)', unit: 'req/s', ours: rps(r.off), peer: 'requestId: false', peerValue: rps(r['no-id']), ratio: ratio(rps(r.off), rps(r['no-id'])) },
        { scenario: 'access-log', metric: 'balancer CPU per request with X-Request-Id', unit: 'µs', ours: c('off'), peer: 'requestId: false', peerValue: c('no-id'), ratio: ratio(c('off'), c('no-id')) },
      ];
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

export default scenario;

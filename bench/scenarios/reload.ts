import http from 'node:http';
import path from 'node:path';
import { freePort, request } from '@cluster-session/testkit';
import { load, type LoadResult } from '../lib/load.ts';
import { FIXTURES, startOurs, startPm2, type Managed } from '../lib/managers.ts';
import { reserveSubjectCore, type SubjectCore } from '../lib/pin.ts';
import { treeCpuMicros } from '../lib/proc.ts';
import { alternate, median } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const APP = path.join(FIXTURES, 'app.mjs');
const RELOADS = 3;

/** Keep-alive load for the whole window while `reloads` rolling reloads run, evenly spaced. */
async function underReloads(core: SubjectCore, start: (port: number) => Promise<Managed>, durationSec: number): Promise<LoadResult> {
  const port = await freePort();
  const managed = await start(port);
  try {
    core.subjectTree(managed.pid!);
    const loading = load(`http://127.0.0.1:${port}/`, { connections: 20, durationSec, tool: 'autocannon' });
    const gap = (durationSec * 1000) / (RELOADS + 1);
    for (let i = 0; i < RELOADS; i++) {
      await new Promise((r) => setTimeout(r, gap));
      await managed.reload();
    }
    return await loading;
  } finally {
    await managed.stop();
  }
}

/**
 * CPU time per request of the manager's whole process tree (primary or daemon, and workers) under the same load,
 * without reloads: what each request costs, which a shared machine's noise moves far less than requests served.
 */
async function cpuPerRequest(core: SubjectCore, start: (port: number) => Promise<Managed>, durationSec: number): Promise<number> {
  const port = await freePort();
  const managed = await start(port);
  try {
    core.subjectTree(managed.pid!);
    const before = treeCpuMicros(managed.pid!);
    const r = await load(`http://127.0.0.1:${port}/`, { connections: 20, durationSec, tool: 'autocannon' });
    return (treeCpuMicros(managed.pid!) - before) / r.requests;
  } finally {
    await managed.stop();
  }
}

const IDLE = 20;

/**
 * One reload while IDLE keep-alive connections sit idle (as a browser or an upstream pool keeps them): how long
 * the manager's reload command takes, and how many of those connections the client can still use afterwards.
 */
async function idleReload(start: (port: number) => Promise<Managed>): Promise<{ ms: number; kept: number }> {
  const port = await freePort();
  const managed = await start(port);
  const agent = new http.Agent({ keepAlive: true, maxSockets: IDLE });
  try {
    const all = () => Promise.all(Array.from({ length: IDLE }, () => request(`http://127.0.0.1:${port}/`, { agent })));
    await all();
    const before = new Set(Object.values(agent.freeSockets).flat());
    const t0 = performance.now();
    await managed.reload();
    const ms = performance.now() - t0;
    await all();
    return { ms, kept: Object.values(agent.freeSockets).flat().filter((socket) => before.has(socket)).length };
  } finally {
    agent.destroy();
    await managed.stop();
  }
}

const scenario: Scenario = {
  name: 'reload',
  title: `failed requests during ${RELOADS} rolling reloads under keep-alive load: ours vs PM2`,
  async run(ctx) {
    const duration = ctx.smoke ? 4 : Math.max(12, ctx.durationSec);
    // Both managers, primary (or daemon) and workers, on one core, the load generator on the other: unpinned, the
    // figures say who won the scheduler's race against autocannon on two cores, which moves from run to run.
    const core = reserveSubjectCore();
    ctx.log(`reload: ${core.note}`);
    let r: { ours: LoadResult[]; pm2: LoadResult[] };
    let cpu: { ours: number[]; pm2: number[] };
    let idle: { ours: Array<{ ms: number; kept: number }>; pm2: Array<{ ms: number; kept: number }> };
    try {
      r = await alternate(ctx.rounds, {
        ours: () => underReloads(core, (port) => startOurs(APP, 2, port), duration),
        pm2: () => underReloads(core, (port) => startPm2(APP, 2, port), duration),
      });
      idle = await alternate(ctx.rounds, {
        ours: () => idleReload((port) => startOurs(APP, 2, port)),
        pm2: () => idleReload((port) => startPm2(APP, 2, port)),
      });
      cpu = await alternate(ctx.rounds, {
        ours: () => cpuPerRequest(core, (port) => startOurs(APP, 2, port), ctx.smoke ? 2 : 8),
        pm2: () => cpuPerRequest(core, (port) => startPm2(APP, 2, port), ctx.smoke ? 2 : 8),
      });
    } finally {
      core.release();
    }
    const failed = (xs: LoadResult[]) => median(xs.map((x) => x.errors + x.non2xx));
    const total = (xs: LoadResult[]) => median(xs.map((x) => x.requests));
    const ours = failed(r.ours);
    return [
      { scenario: 'reload', metric: `failed requests, ${RELOADS} reloads, 2 workers on one core, 20 keep-alive conns, ${duration} s`, unit: '', ours, peer: 'PM2 reload', peerValue: failed(r.pm2), target: 'ours 0', met: ours === 0 },
      { scenario: 'reload', metric: 'requests served in the same window', unit: '', ours: total(r.ours), peer: 'PM2 reload', peerValue: total(r.pm2), ratio: total(r.ours) / total(r.pm2), target: '>= 1.0x', met: total(r.ours) >= total(r.pm2) },
      {
        scenario: 'reload',
        metric: `keep-alive connections still usable after a reload, of ${IDLE} idle ones`,
        unit: '',
        ours: median(idle.ours.map((x) => x.kept)),
        peer: 'PM2 reload',
        peerValue: median(idle.pm2.map((x) => x.kept)),
      },
      {
        scenario: 'reload',
        metric: `reload command, 2 workers holding ${IDLE} idle keep-alive connections (lower is better)`,
        unit: 'ms',
        ours: median(idle.ours.map((x) => x.ms)),
        peer: 'PM2 reload',
        peerValue: median(idle.pm2.map((x) => x.ms)),
        ratio: median(idle.ours.map((x) => x.ms)) / median(idle.pm2.map((x) => x.ms)),
      },
      {
        scenario: 'reload',
        metric: 'CPU per request, primary + 2 workers, no reload (lower is better)',
        unit: 'µs',
        ours: median(cpu.ours),
        peer: 'PM2 (daemon + workers)',
        peerValue: median(cpu.pm2),
        ratio: median(cpu.ours) / median(cpu.pm2),
      },
    ];
  },
};
export default scenario;

import path from 'node:path';
import { freePort } from '@cluster-session/testkit';
import { load, type LoadResult } from '../lib/load.ts';
import { FIXTURES, startOurs, startPm2, type Managed } from '../lib/managers.ts';
import { alternate, median } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const APP = path.join(FIXTURES, 'app.mjs');
const RELOADS = 3;

/** Keep-alive load for the whole window while `reloads` rolling reloads run, evenly spaced. */
async function underReloads(start: (port: number) => Promise<Managed>, durationSec: number): Promise<LoadResult> {
  const port = await freePort();
  const managed = await start(port);
  try {
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

const scenario: Scenario = {
  name: 'reload',
  title: `failed requests during ${RELOADS} rolling reloads under keep-alive load: ours vs PM2`,
  async run(ctx) {
    const duration = ctx.smoke ? 4 : Math.max(12, ctx.durationSec);
    const r = await alternate(ctx.rounds, {
      ours: () => underReloads((port) => startOurs(APP, 2, port), duration),
      pm2: () => underReloads((port) => startPm2(APP, 2, port), duration),
    });
    const failed = (xs: LoadResult[]) => median(xs.map((x) => x.errors + x.non2xx));
    const total = (xs: LoadResult[]) => median(xs.map((x) => x.requests));
    const ours = failed(r.ours);
    return [
      { scenario: 'reload', metric: `failed requests, ${RELOADS} reloads, 2 workers, 20 keep-alive conns, ${duration} s`, unit: '', ours, peer: 'PM2 reload', peerValue: failed(r.pm2), target: 'ours 0', met: ours === 0 },
      { scenario: 'reload', metric: 'requests served in the same window', unit: '', ours: total(r.ours), peer: 'PM2 reload', peerValue: total(r.pm2) },
    ];
  },
};
export default scenario;

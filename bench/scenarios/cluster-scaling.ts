import { availableParallelism } from 'node:os';
import path from 'node:path';
import { freePort } from '@cluster-session/testkit';
import { load } from '../lib/load.ts';
import { FIXTURES, startOurs } from '../lib/managers.ts';
import { alternate, median } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const APP = path.join(FIXTURES, 'app.mjs');

const scenario: Scenario = {
  name: 'cluster-scaling',
  title: 'CPU-bound route (~1 ms of hashing): 1 worker vs N = cores workers, against the ideal N x',
  async run(ctx) {
    const n = availableParallelism();
    const measure = (workers: number) => async () => {
      const port = await freePort();
      const cluster = await startOurs(APP, workers, port);
      try {
        return await load(`http://127.0.0.1:${port}/cpu`, { connections: 16, durationSec: ctx.durationSec });
      } finally {
        await cluster.stop();
      }
    };
    const r = await alternate(ctx.rounds, { one: measure(1), many: measure(n) });
    const one = median(r.one.map((x) => x.rps));
    const many = median(r.many.map((x) => x.rps));
    const speedup = many / one;
    return [
      { scenario: 'cluster-scaling', metric: `/cpu req/s with ${n} workers`, unit: 'req/s', ours: many, peer: '1 worker', peerValue: one, ratio: speedup, target: `ideal ${n}x`, note: `${((speedup / n) * 100).toFixed(0)}% of ideal; the load generator shares these cores` },
    ];
  },
};
export default scenario;

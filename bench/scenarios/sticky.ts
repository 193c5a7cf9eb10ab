import path from 'node:path';
import { freePort } from '@cluster-session/testkit';
import { load } from '../lib/load.ts';
import { FIXTURES, startOurs } from '../lib/managers.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';

const APP = path.join(FIXTURES, 'app.mjs');

const scenario: Scenario = {
  name: 'sticky',
  title: 'sticky routing in the primary (hash of the client address) vs the default round robin, 2 workers',
  // Every connection comes from 127.0.0.1, and sticky routing would rightly pin them all to one worker. The load
  // therefore plays a proxy in front of many clients: --trust-proxy and a different X-Forwarded-For per
  // connection, which also makes the primary read each connection's first request head (its costliest path).
  async run(ctx) {
    const rows: Row[] = [];
    // Keep-alive: the primary only touches each connection once. Connection: close: every request is a new
    // connection, the worst case for a primary that accepts and hands over sockets.
    for (const [label, headers] of [['keep-alive', {}], ['new connection per request', { connection: 'close' }]] as const) {
      const measure = (extra: string[]) => async () => {
        const port = await freePort();
        const cluster = await startOurs(APP, 2, port, extra);
        try {
          return await load(`http://127.0.0.1:${port}/`, { connections: 32, durationSec: ctx.durationSec, headers, varyForwardedFor: true });
        } finally {
          await cluster.stop();
        }
      };
      const r = await alternate(ctx.rounds, { sticky: measure(['--sticky', '--trust-proxy']), rr: measure([]) });
      const sticky = median(r.sticky.map((x) => x.rps));
      const rr = median(r.rr.map((x) => x.rps));
      rows.push({ scenario: 'sticky', metric: `req/s, ${label}`, unit: 'req/s', ours: sticky, peer: 'round robin', peerValue: rr, ratio: ratio(sticky, rr) });
    }
    return rows;
  },
};
export default scenario;

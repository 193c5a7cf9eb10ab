import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request, startNode, type Proc } from '@cluster-session/testkit';
import { load } from '../lib/load.ts';
import { reserveSubjectCore } from '../lib/pin.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'jwt-app.ts');
const CONNECTIONS = 10;

const scenario: Scenario = {
  name: 'jwt',
  title: 'JWT mode: GET /me (verify + re-sign) and /whoami (verify only) vs the same app with no session middleware',
  async run(ctx) {
    const env = { ...process.env, JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123' };
    const procs: Proc[] = [];
    const core = reserveSubjectCore();
    ctx.log(`jwt: ${core.note}`);
    try {
      const start = async (kind: string) => {
        const p = startNode([APP, kind], { env });
        procs.push(p);
        const url = (await p.waitFor(/listening (\S+)/))[1]!;
        core.subject(p.pid);
        return url;
      };
      const [jwtUrl, noneUrl] = [await start('jwt'), await start('none')];
      const login = await request(`${jwtUrl}/login`, { method: 'POST', body: {} });
      const cookie = `session=${login.cookies.session}`;
      const check = await request(`${jwtUrl}/me`, { headers: { cookie } });
      if (check.status !== 200) throw new Error(`login did not work: ${check.status} ${check.body}`);
      const opts = { connections: CONNECTIONS, durationSec: ctx.durationSec };
      // Unmeasured JIT warm-up of both apps and both routes.
      const warm = { ...opts, durationSec: ctx.smoke ? 1 : 2 };
      for (const url of [`${noneUrl}/me`, `${jwtUrl}/me`, `${jwtUrl}/whoami`]) await load(url, { ...warm, headers: { cookie } });
      const r = await alternate(ctx.rounds, {
        none: () => load(`${noneUrl}/me`, opts),
        me: () => load(`${jwtUrl}/me`, { ...opts, headers: { cookie } }),
        whoami: () => load(`${jwtUrl}/whoami`, { ...opts, headers: { cookie } }),
      });
      const rps = (k: keyof typeof r) => median(r[k].map((x) => x.rps));
      return [
        { scenario: 'jwt', metric: '/me req/s, token verified and re-signed', unit: 'req/s', ours: rps('me'), peer: 'no session middleware', peerValue: rps('none'), ratio: ratio(rps('me'), rps('none')) },
        { scenario: 'jwt', metric: '/whoami req/s, token verified only', unit: 'req/s', ours: rps('whoami'), peer: 'no session middleware', peerValue: rps('none'), ratio: ratio(rps('whoami'), rps('none')) },
      ];
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      core.release();
    }
  },
};
export default scenario;

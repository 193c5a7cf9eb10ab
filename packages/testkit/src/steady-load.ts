import http from 'node:http';
import { request } from './http.ts';

export interface SteadyLoad {
  /** Ends the loops after their requests in flight; what they saw. */
  stop(): Promise<{ ok: number; failures: string[] }>;
}

/**
 * `clients` keep-alive clients sending GET `url` one after the other until stopped, for the reload and
 * reconfigure suites: anything but a 200, or a request that got no answer, is a failure (kept with its reason).
 */
export function steadyLoad(url: string, clients: number): SteadyLoad {
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const failures: string[] = [];
  let ok = 0;
  let going = true;
  const loops = Array.from({ length: clients }, async () => {
    while (going) {
      const r = await request(url, { agent }).catch((err: Error) => ({ status: 0, body: err.message }));
      if (r.status === 200) ok++;
      else failures.push(`${r.status} ${r.body.slice(0, 100)}`);
    }
  });
  return {
    async stop() {
      going = false;
      await Promise.all(loops);
      agent.destroy();
      return { ok, failures };
    },
  };
}

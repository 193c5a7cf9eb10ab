/**
 * The balancer host of the partition suite: the bundled balancer, as a process of its own inside the balancer's
 * namespace (the CLI has no flags for the health-check timing the suite needs). Options come as JSON in argv[2].
 * Prints `listening`, then one JSON line `{"t":"state","id","state","at"}` whenever an instance's state changes
 * (so the suite sees ejections and returns as they happen); SIGTERM closes it.
 */
import { createBalancer, type CreateBalancerOptions } from '@cluster-session/balancer';

const options = JSON.parse(process.argv[2]!) as CreateBalancerOptions;
const lb = await createBalancer({ ...options, log: (line) => console.error(`[balancer] ${line}`) });
console.log('listening');

const last = new Map<string, string>();
const watch = setInterval(() => {
  for (const u of lb.status().upstreams) {
    if (last.get(u.id) === u.state) continue;
    last.set(u.id, u.state);
    console.log(JSON.stringify({ t: 'state', id: u.id, state: u.state, at: Date.now() }));
  }
}, 50);

process.once('SIGTERM', () => {
  clearInterval(watch);
  void lb.close(1_000).then(() => process.exit(0));
});

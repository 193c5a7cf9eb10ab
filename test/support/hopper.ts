/**
 * The clients of the partition suite, run inside the client host's namespace: HOPPER_CLIENTS browsers-to-be log in
 * through the balancer at HOPPER_BASE, then each calls GET /me in a loop (a new connection per request, so
 * requests hop between instances and workers), backing off 50 ms after an error as a client honouring
 * Retry-After would. Every answer is one JSON line on stdout:
 *   {"t":"s","c":client,"a":startMs,"b":endMs,"st":status|"hang"|"error","h":hits,"u":user,"in":instance,"code":...}
 * Commands on stdin: `probe NAME URL` calls URL (directly, bypassing the balancer) every 100 ms with the cookie of
 * one more logged-in client that is not in the loops (so probes never race a looping client's writes), its answers
 * tagged "p":NAME; `unprobe NAME`; `stop` ends the loops, prints {"t":"done"} and exits.
 */
import { createInterface } from 'node:readline';
import { cookieHeader, request } from '@cluster-session/testkit';

const base = process.env.HOPPER_BASE!;
const count = Number(process.env.HOPPER_CLIENTS ?? 6);
const HANG_MS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const emit = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);

interface Client {
  jar: Record<string, string>;
}

function sidOf(jar: Record<string, string>): string | undefined {
  const raw = jar.sid ? decodeURIComponent(jar.sid) : undefined;
  return raw?.startsWith('s:') ? raw.slice(2, raw.lastIndexOf('.')) : undefined;
}

async function call(client: Client, url: string, c: number, probe?: string): Promise<number | string> {
  const a = Date.now();
  let st: number | string;
  let extra: Record<string, unknown> = {};
  try {
    const res = await request(url, { headers: { cookie: cookieHeader(client.jar) }, timeoutMs: HANG_MS });
    Object.assign(client.jar, res.cookies);
    st = res.status;
    extra = { h: res.json?.hits, u: res.json?.user, in: res.json?.instance, code: res.json?.code };
  } catch (err) {
    st = /timed out/.test((err as Error).message) ? 'hang' : 'error';
    extra = { err: (err as Error).message.slice(0, 120) };
  }
  emit({ t: 's', c, a, b: Date.now(), st, ...extra, ...(probe ? { p: probe } : {}) });
  return st;
}

const clients: Client[] = [];
for (let c = 0; c <= count; c++) {
  const client: Client = { jar: {} };
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await request(`${base}/login`, { method: 'POST', body: { username: 'alice', password: 'wonderland' }, timeoutMs: HANG_MS });
      if (res.status === 200) {
        Object.assign(client.jar, res.cookies);
        break;
      }
    } catch {
      // the stack may still be settling
    }
    if (attempt > 100) throw new Error(`client ${c} could not log in through ${base}`);
    await sleep(200);
  }
  clients.push(client);
  emit({ t: 'login', c, sid: sidOf(client.jar) });
}

let stopped = false;
const prober = clients.pop()!;
const loops = clients.map(async (client, c) => {
  while (!stopped) {
    const st = await call(client, `${base}/me`, c);
    if (st !== 200) await sleep(50);
  }
});
const probes = new Map<string, { stop: boolean; done: Promise<void> }>();
emit({ t: 'ready' });

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, name, url] = line.trim().split(/\s+/);
  if (command === 'probe' && name && url) {
    const p = { stop: false, done: Promise.resolve() };
    p.done = (async () => {
      while (!p.stop && !stopped) {
        await call(prober, url, count, name);
        await sleep(100);
      }
    })();
    probes.set(name, p);
  } else if (command === 'unprobe' && name) {
    const p = probes.get(name);
    if (p) p.stop = true;
    probes.delete(name);
  } else if (command === 'stop') {
    stopped = true;
    void Promise.all([...loops, ...[...probes.values()].map((p) => p.done)]).then(() => {
      emit({ t: 'done' });
      process.exit(0);
    });
  }
});

/**
 * Bundled balancer vs nginx, same run: `node --conditions=source bench/balancer.ts [--rounds N] [--duration S]
 * [--connections C] [--naive]` (--naive adds a straightforward node:http proxy for reference).
 *
 * Two upstream processes (bench/fixtures/upstream.ts), nginx with one worker and the bundled balancer as one
 * process in front of the same two, driven alternately by the same wrk settings. Reports median req/s and p99
 * per contender with ratios, then each proxy's resident memory holding 1,000 open keep-alive client connections.
 * Also usable as a scenario for bench/run.ts (default export { name, title, run }).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { stripTypeScriptTypes } from 'node:module';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');

/**
 * The balancer as plain JavaScript in `dir` (types stripped once, here), so its process runs as a published build
 * would: running the .ts sources loads Node's TypeScript stripper, about 50 MiB that would blur the memory figure.
 */
function buildJs(dir: string): string {
  const emit = (from: string, to: string, rewrite: (code: string) => string) => {
    mkdirSync(to, { recursive: true });
    for (const f of readdirSync(from).filter((n) => n.endsWith('.ts'))) {
      const code = stripTypeScriptTypes(readFileSync(path.join(from, f), 'utf8'), { mode: 'strip' });
      writeFileSync(path.join(to, f.replace(/\.ts$/, '.js')), rewrite(code.replace(/(from\s+'\.{1,2}\/[^']+)\.ts'/g, "$1.js'")));
    }
  };
  writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
  emit(path.join(root, 'packages/hash/src'), path.join(dir, 'hash'), (c) => c);
  emit(path.join(root, 'packages/balancer/src'), path.join(dir, 'balancer'), (c) => c.replaceAll("'@cluster-session/hash'", "'../hash/index.js'"));
  const fixture = stripTypeScriptTypes(readFileSync(path.join(here, 'fixtures/balancer-process.ts'), 'utf8'), { mode: 'strip' });
  writeFileSync(path.join(dir, 'balancer-process.js'), fixture.replaceAll("'@cluster-session/balancer'", "'./balancer/index.js'"));
  return path.join(dir, 'balancer-process.js');
}

interface Ctx {
  rounds: number;
  durationSec: number;
  smoke?: boolean;
  log(message: string): void;
}

interface Load {
  requests: number;
  rps: number;
  p99Ms: number;
  errors: number;
  non2xx: number;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function start(cmd: string, args: readonly string[], ready: RegExp): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready: ${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d;
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${cmd} exited ${code}: ${out}`)));
  });
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), r(true)));
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

const toMs = (v: string, unit: string) => Number(v) * ({ us: 0.001, ms: 1, s: 1000, m: 60_000 }[unit] ?? 1);

function wrk(url: string, connections: number, durationSec: number): Load {
  const out = execFileSync('wrk', ['-t', '1', '-c', String(connections), '-d', `${durationSec}s`, '--latency', '--timeout', '5s', url], { encoding: 'utf8' });
  const p99 = /^\s*99%\s+([\d.]+)(us|ms|s|m)/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: Number(/(\d+) requests in/.exec(out)?.[1] ?? 0),
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0),
    p99Ms: p99 ? toMs(p99[1]!, p99[2]!) : NaN,
    errors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0),
  };
}

/** Opens `count` keep-alive client connections, each after one answered request, and returns a closer. */
async function holdClients(port: number, count: number): Promise<() => void> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect(port, '127.0.0.1');
          sockets.push(s);
          s.on('error', reject);
          s.once('data', () => resolve());
          s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
        }),
      ),
    );
  }
  return () => sockets.forEach((s) => s.destroy());
}

/** CPU time (user + system) a process has used so far, in microseconds. */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / 100; // utime + stime, in clock ticks (USER_HZ 100)
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

type Who = 'balancer' | 'nginx' | 'naive';

async function run(ctx: Ctx, connections = 64, withNaive = false) {
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-lb-'));
  const children: ChildProcess[] = [];
  try {
    const [u1, u2, lbPort, ngPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const upstreamScript = path.join(here, 'fixtures', 'upstream.ts');
    for (const [p, name] of [[u1, 'a'], [u2, 'b']] as const) children.push(await start(process.execPath, [upstreamScript, String(p), name], /listening/));
    const upstreams = [`http://127.0.0.1:${u1}`, `http://127.0.0.1:${u2}`];
    const lb = await start(process.execPath, [buildJs(dir), String(lbPort), ...upstreams], /ready/);
    children.push(lb);
    writeFileSync(
      path.join(dir, 'nginx.conf'),
      `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:${u1}; server 127.0.0.1:${u2}; keepalive 256; }
  server {
    listen 127.0.0.1:${ngPort};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_buffering off;
    }
  }
}
`,
    );
    const nginx = spawn('nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;'], { stdio: 'ignore' });
    children.push(nginx);
    await waitPort(ngPort);
    const targets: Partial<Record<Who, string>> = { balancer: `http://127.0.0.1:${lbPort}/`, nginx: `http://127.0.0.1:${ngPort}/` };
    const nginxWorker = Number(execFileSync('pgrep', ['-P', String(nginx.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
    const pids: Partial<Record<Who, number>> = { balancer: lb.pid!, nginx: nginxWorker };
    const startRss = { balancer: rssMiB(lb.pid!), nginx: rssMiB(nginxWorker) };
    if (withNaive) {
      const naivePort = await freePort();
      const naive = await start(process.execPath, [path.join(here, 'fixtures', 'naive-proxy.ts'), String(naivePort), ...upstreams], /ready/);
      children.push(naive);
      targets.naive = `http://127.0.0.1:${naivePort}/`;
      pids.naive = naive.pid!;
    }
    const who = Object.keys(targets) as Who[];
    // Warm every contender (JIT, keep-alive pools) before measuring.
    for (const url of Object.values(targets)) wrk(url, connections, 1);
    const results: Record<Who, Load[]> = { balancer: [], nginx: [], naive: [] };
    // CPU per request is the figure least disturbed by other load on a shared machine.
    const cpuPerRequest: Record<Who, number[]> = { balancer: [], nginx: [], naive: [] };
    for (let r = 0; r < ctx.rounds; r++) {
      const order = r % 2 ? [...who].reverse() : who;
      for (const who of order) {
        const cpuBefore = cpuMicros(pids[who]!);
        const res = wrk(targets[who]!, connections, ctx.durationSec);
        const perRequest = (cpuMicros(pids[who]!) - cpuBefore) / Math.max(1, res.requests);
        results[who].push(res);
        cpuPerRequest[who].push(perRequest);
        ctx.log(`round ${r + 1} ${who}: ${Math.round(res.rps)} req/s, p99 ${res.p99Ms} ms, ${perRequest.toFixed(1)} µs CPU/request, errors ${res.errors}, non-2xx ${res.non2xx}`);
      }
    }
    const ours = { rps: median(results.balancer.map((x) => x.rps)), p99: median(results.balancer.map((x) => x.p99Ms)) };
    const peer = { rps: median(results.nginx.map((x) => x.rps)), p99: median(results.nginx.map((x) => x.p99Ms)) };
    const failures = [...results.balancer, ...results.nginx].reduce((n, x) => n + x.errors + x.non2xx, 0);

    // Memory holding 1,000 idle keep-alive clients (after the load above, so pools and JIT are warm).
    const mem: Record<string, { before: number; held: number }> = {};
    const held = ctx.smoke ? 100 : 1000;
    for (const [who, port, pid] of [['balancer', lbPort, pids.balancer!], ['nginx', ngPort, pids.nginx!]] as const) {
      const before = rssMiB(pid);
      const fdsBefore = readdirSync(`/proc/${pid}/fd`).length;
      const release = await holdClients(port, held);
      await new Promise((r) => setTimeout(r, 300));
      mem[who] = { before, held: rssMiB(pid) };
      // Open descriptors prove the connections are really held (client side and any instance side).
      const fds = readdirSync(`/proc/${pid}/fd`).length - fdsBefore;
      release();
      ctx.log(`${who}: RSS ${before} MiB idle, ${mem[who]!.held} MiB with ${held} keep-alive clients (+${fds} open descriptors)`);
    }
    const ratioRps = round2(ours.rps / peer.rps);
    const ratioP99 = round2(ours.p99 / peer.p99);
    const naiveRows = withNaive
      ? [
          { scenario: 'balancer', metric: 'naive node:http proxy: req/s', unit: 'req/s', ours: Math.round(median(results.naive.map((x) => x.rps))), peer: 'nginx 1 worker', peerValue: Math.round(peer.rps), ratio: round2(median(results.naive.map((x) => x.rps)) / peer.rps), note: 'reference, not ours' },
          { scenario: 'balancer', metric: 'naive node:http proxy: CPU per request', unit: 'µs', ours: round2(median(cpuPerRequest.naive)), peer: 'nginx 1 worker', peerValue: round2(median(cpuPerRequest.nginx)), ratio: round2(median(cpuPerRequest.naive) / median(cpuPerRequest.nginx)), note: 'reference, not ours' },
        ]
      : [];
    return [
      { scenario: 'balancer', metric: `req/s, ${connections} keep-alive connections, 2 upstreams`, unit: 'req/s', ours: Math.round(ours.rps), peer: 'nginx 1 worker', peerValue: Math.round(peer.rps), ratio: ratioRps, target: '>= 0.7', met: ratioRps >= 0.7, note: failures ? `${failures} errors/non-2xx` : undefined },
      { scenario: 'balancer', metric: 'p99 latency', unit: 'ms', ours: ours.p99, peer: 'nginx 1 worker', peerValue: peer.p99, ratio: ratioP99, target: '<= 1.5', met: ratioP99 <= 1.5 },
      { scenario: 'balancer', metric: 'CPU per request (user + system)', unit: 'µs', ours: round2(median(cpuPerRequest.balancer)), peer: 'nginx 1 worker', peerValue: round2(median(cpuPerRequest.nginx)), ratio: round2(median(cpuPerRequest.balancer) / median(cpuPerRequest.nginx)) },
      { scenario: 'balancer', metric: `RSS with ${held.toLocaleString('en')} keep-alive clients`, unit: 'MiB', ours: mem.balancer!.held, peer: 'nginx worker', peerValue: mem.nginx!.held, note: `at start ${startRss.balancer} MiB, idle after the load ${mem.balancer!.before} MiB (nginx ${startRss.nginx} / ${mem.nginx!.before} MiB)` },
      ...naiveRows,
    ];
  } finally {
    for (const c of children) c.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

const scenario = {
  name: 'balancer',
  title: 'bundled balancer (1 process) vs nginx (1 worker), same 2 upstreams, same wrk',
  run: (ctx: Ctx) => run(ctx),
};
export default scenario;

if (import.meta.main) {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '3' }, duration: { type: 'string', default: '8' }, connections: { type: 'string', default: '64' }, naive: { type: 'boolean', default: false } },
  });
  const rows = await run({ rounds: Number(values.rounds), durationSec: Number(values.duration), log: (m) => console.error(`[bench] ${m}`) }, Number(values.connections), values.naive);
  console.log(JSON.stringify(rows, null, 2));
}

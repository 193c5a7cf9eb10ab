/**
 * `node --conditions=source bench/jwt-me.ts [--duration S] [--rounds N] [--connections C]`
 *
 * Requests/s of the example contract's `GET /me` with jwtSession (a cookie token verified and, since `hits`
 * changes, re-signed on every request) against the same express app with no session middleware, plus a
 * read-only route (verify only, no re-issue). Each app runs in its own child process; autocannon (in another
 * process) drives one at a time, alternating, over several rounds, and the medians are reported.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import express from 'express';
import { jwtSession, keyRingFromEnv } from '@cluster-session/jwt';
import { request, startNode, type Proc } from '@cluster-session/testkit';
import { load, type LoadResult } from './lib/load.ts';

const { values } = parseArgs({
  options: {
    serve: { type: 'string' },
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '2' },
    connections: { type: 'string', default: '10' },
  },
});

/** Child mode: one app, `jwt` or `none`, on a free port. */
async function serve(kind: string): Promise<void> {
  const app = express();
  app.disable('x-powered-by');
  app.use(express.json());
  if (kind === 'jwt') {
    app.use(jwtSession({ ring: keyRingFromEnv(process.env), ttl: 3600 }) as express.RequestHandler);
    app.post('/login', (req, res, next) => {
      const s = (req as any).session;
      s.regenerate((err: unknown) => {
        if (err) return next(err);
        (req as any).session.user = 'alice';
        (req as any).session.hits = 0;
        res.json({ user: 'alice' });
      });
    });
  }
  app.get('/me', (req, res) => {
    const s = (req as any).session;
    if (kind === 'none') return void res.json({ user: 'alice', hits: 0, worker: process.pid, instance: 'bench' });
    if (!s?.user) return void res.status(401).json({ error: 'not logged in' });
    s.hits += 1;
    res.json({ user: s.user, hits: s.hits, worker: process.pid, instance: 'bench' });
  });
  app.get('/whoami', (req, res) => {
    const s = (req as any).session;
    if (!s?.user) return void res.status(401).json({ error: 'not logged in' });
    res.json({ user: s.user, worker: process.pid });
  });
  const server = http.createServer(app);
  server.listen(0, '127.0.0.1', () => console.log(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function main(): Promise<void> {
  const durationSec = Number(values.duration);
  const rounds = Number(values.rounds);
  const connections = Number(values.connections);
  const env = { ...process.env, JWT_SECRET: 'bench-secret-bench-secret-bench-secret-0123' };
  const self = fileURLToPath(import.meta.url);
  const procs: Proc[] = [];
  try {
    const start = async (kind: string) => {
      const p = startNode([self, '--serve', kind], { env });
      procs.push(p);
      return (await p.waitFor(/listening (\S+)/))[1]!;
    };
    const [jwtUrl, noneUrl] = [await start('jwt'), await start('none')];
    const login = await request(`${jwtUrl}/login`, { method: 'POST', body: {} });
    const cookie = `session=${login.cookies.session}`;
    const check = await request(`${jwtUrl}/me`, { headers: { cookie } });
    if (check.status !== 200) throw new Error(`login did not work: ${check.status} ${check.body}`);

    const variants: Record<string, () => Promise<LoadResult>> = {
      'no session middleware: GET /me': () => load(`${noneUrl}/me`, { connections, durationSec, tool: 'autocannon' }),
      'jwtSession: GET /me (verify + re-sign)': () => load(`${jwtUrl}/me`, { connections, durationSec, tool: 'autocannon', headers: { cookie } }),
      'jwtSession: GET /whoami (verify only)': () => load(`${jwtUrl}/whoami`, { connections, durationSec, tool: 'autocannon', headers: { cookie } }),
    };
    const results: Record<string, LoadResult[]> = {};
    for (let round = 1; round <= rounds; round++) {
      for (const [name, run] of Object.entries(variants)) {
        const r = await run();
        if (r.errors || r.non2xx) throw new Error(`${name}: ${r.errors} errors, ${r.non2xx} non-2xx answers`);
        (results[name] ??= []).push(r);
        console.error(`[jwt-me] round ${round} ${name}: ${r.rps.toFixed(0)} req/s`);
      }
    }
    const base = median(results['no session middleware: GET /me']!.map((r) => r.rps));
    console.log(`\n| ${connections} connections, ${durationSec} s x ${rounds} rounds, autocannon | req/s (median) | p99 ms | vs no session |`);
    console.log('|---|---:|---:|---:|');
    for (const [name, rs] of Object.entries(results)) {
      const rps = median(rs.map((r) => r.rps));
      console.log(`| ${name} | ${rps.toFixed(0)} | ${median(rs.map((r) => r.p99Ms)).toFixed(1)} | ${(rps / base).toFixed(2)} |`);
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}

if (values.serve) await serve(values.serve);
else await main();

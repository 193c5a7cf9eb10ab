import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort, request, startMongo, startNode, startRedis, which, type RedisServer } from '@cluster-session/testkit';
import { hasWrk, load } from '../lib/load.ts';
import { reserveSubjectCore, type SubjectCore } from '../lib/pin.ts';
import { cpuMicros } from '../lib/proc.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { BenchContext, Row, Scenario } from '../lib/types.ts';

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'session-app.ts');
const SECRET = 'bench-secret-bench-secret-bench-secret';

interface Variant {
  label: string;
  env: Record<string, string>;
}

const ROUTES = ['whoami', 'hit'] as const;
type Route = (typeof ROUTES)[number];
const DOES: Record<Route, string> = { whoami: 'reads the login', hit: 'writes the session' };

/**
 * The goals (#18), per route: ours against no session, and ours on Redis against express-session +
 * connect-redis. A row without a goal is reported for context.
 */
const VS_NONE: Partial<Record<string, Record<Route, number>>> = { jwt: { whoami: 0.75, hit: 0.5 }, sqlite: { whoami: 0.5, hit: 0.35 } };
const VS_PEER: Record<Route, number> = { whoami: 1.5, hit: 1.2 };

/** Clients per variant, each with its own login: every request carries one of them, picked at random. */
const LOGINS = 64;

/**
 * Starts one variant, logs LOGINS clients in, and returns closures that load each route, every request with one of
 * those logins (as many users would: one session shared by every connection is not what a site sees, and would
 * serialize every save on one key).
 */
async function serve(v: Variant, ctx: BenchContext, core: SubjectCore) {
  const port = await freePort();
  const proc = startNode([APP], { env: { ...process.env, ...v.env, PORT: String(port), SESSION_SECRET: SECRET, NODE_ENV: 'production' } });
  await proc.waitFor(/listening on/);
  core.subject(proc.pid);
  const base = `http://127.0.0.1:${port}`;
  const cookies: string[] = [];
  for (let i = 0; i < (ctx.smoke ? 8 : LOGINS); i++) {
    const res = await request(`${base}/login`, { method: 'POST', body: {} });
    if (res.status !== 200) throw new Error(`${v.label}: login answered ${res.status} ${res.body}`);
    // "no session" sets no cookie: its requests carry a harmless one, so every variant parses the same header.
    cookies.push(Object.entries(res.cookies).map(([k, val]) => `${k}=${val}`).join('; ') || 'none=1');
  }
  for (const route of ROUTES) {
    const check = await request(`${base}/${route}`, { headers: { cookie: cookies[0]! } });
    if (check.status !== 200) throw new Error(`${v.label}: /${route} answered ${check.status} ${check.body}`);
  }
  const cpu: Record<Route, number[]> = { whoami: [], hit: [] };
  return {
    cpu,
    // Unmeasured load first: a contender's first seconds are JIT warm-up, longer for the one with more code.
    warm: async () => {
      for (const route of ROUTES) await load(`${base}/${route}`, { connections: 32, durationSec: ctx.smoke ? 1 : 3, cookies });
    },
    run: (route: Route) => async () => {
      // CPU per request of the app process: on a shared 2-core machine it moves far less than req/s does.
      const before = cpuMicros(proc.pid);
      const r = await load(`${base}/${route}`, { connections: 32, durationSec: ctx.durationSec, cookies });
      cpu[route].push((cpuMicros(proc.pid) - before) / Math.max(1, r.requests));
      return r;
    },
    close: () => proc.stop(),
  };
}

const scenario: Scenario = {
  name: 'session',
  title: 'GET /whoami (reads the login) and GET /hit (writes the session): every store and JWT mode vs no session and vs express-session + connect-redis / connect-mongo',
  async run(ctx) {
    if (!hasWrk()) return [{ scenario: 'session', metric: 'skipped', unit: '', ours: NaN, note: 'needs wrk (apt-get install wrk): a cookie picked per request' }];
    // Before any store starts, so the stores land beside the load generator, off the subjects' core.
    const core = reserveSubjectCore();
    ctx.log(`session: ${core.note}`);
    try {
      return await measure(ctx, core);
    } finally {
      core.release();
    }
  },
};
export default scenario;

async function measure(ctx: BenchContext, core: SubjectCore): Promise<Row[]> {
  // redis-server comes from apt-get: without it the peer and our Redis store are skipped, with a note.
  const redis: RedisServer | undefined = which('redis-server') ? await startRedis() : undefined;
  if (!redis) ctx.log('session: redis-server not installed: the Redis rows and the express-session + connect-redis peer are skipped (apt-get install redis-server)');
  const mongo = await startMongo();
  const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-'));
  const variants: Record<string, Variant> = {
    none: { label: 'no session', env: { BENCH_VARIANT: 'none' } },
    ...(redis && {
      peer: { label: 'express-session + connect-redis', env: { BENCH_VARIANT: 'peer', REDIS_URL: redis.url } },
      redis: { label: 'ours (redis)', env: { BENCH_VARIANT: 'ours', SESSION_STORE: 'redis', REDIS_URL: redis.url } },
    }),
    'peer-mongo': { label: 'express-session + connect-mongo', env: { BENCH_VARIANT: 'peer-mongo', MONGO_URL: mongo.url } },
    mongo: { label: 'ours (mongo)', env: { BENCH_VARIANT: 'ours', SESSION_STORE: 'mongo', MONGO_URL: mongo.url } },
    sqlite: { label: 'ours (sqlite)', env: { BENCH_VARIANT: 'ours', SESSION_STORE: 'sqlite', SQLITE_PATH: path.join(dir, 's.sqlite') } },
    jwt: { label: 'ours (jwt)', env: { BENCH_VARIANT: 'ours', SESSION_MODE: 'jwt', JWT_SECRET: SECRET } },
  };
  const servers = Object.fromEntries(await Promise.all(Object.entries(variants).map(async ([k, v]) => [k, await serve(v, ctx, core)] as const)));
  try {
    for (const s of Object.values(servers)) await s.warm();
    const rows: Row[] = [];
    let failures = 0;
    for (const route of ROUTES) {
      const results = await alternate(ctx.rounds, Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.run(route)])) as Record<string, () => ReturnType<typeof load>>);
      for (const [k, rs] of Object.entries(results)) ctx.log(`session: /${route} ${k}: req/s per round ${rs.map((r) => Math.round(r.rps)).join(', ')}; µs CPU per request ${servers[k]!.cpu[route].map((c) => c.toFixed(0)).join(', ')}`);
      const rps = (k: string) => median(results[k]!.map((r) => r.rps));
      const cpu = (k: string) => median(servers[k]!.cpu[route]);
      const vs = (k: string, peer: string, goal?: number): Row => {
        const r = ratio(rps(k), rps(peer));
        return { scenario: 'session', metric: `/${route} req/s (${DOES[route]}), ${variants[k]!.label}`, unit: 'req/s', ours: rps(k), peer: variants[peer]!.label, peerValue: rps(peer), ratio: r, ...(goal !== undefined && { target: `>= ${goal}x`, met: r >= goal }) };
      };
      if (redis) {
        rows.push(vs('redis', 'peer', VS_PEER[route]));
        const c = ratio(cpu('redis'), cpu('peer'));
        rows.push({ scenario: 'session', metric: `/${route} CPU per request, ours (redis)`, unit: 'µs', ours: cpu('redis'), peer: variants.peer!.label, peerValue: cpu('peer'), ratio: c });
      }
      rows.push(vs('mongo', 'peer-mongo'));
      for (const k of ['redis', 'mongo', 'sqlite', 'jwt'].filter((v) => v in variants)) rows.push(vs(k, 'none', VS_NONE[k]?.[route]));
      failures += Object.values(results).flat().reduce((a, r) => a + r.errors + r.non2xx, 0);
    }
    if (failures) ctx.log(`session: ${failures} failed requests across variants`);
    return rows;
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
    await redis?.close();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

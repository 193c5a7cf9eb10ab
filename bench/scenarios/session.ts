import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort, request, startMongo, startNode, startRedis, which, type RedisServer } from '@cluster-session/testkit';
import { load } from '../lib/load.ts';
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

/** Starts one variant, logs in once, and returns a closure that loads GET /me with that login's cookie. */
async function serve(v: Variant, ctx: BenchContext, core: SubjectCore) {
  const port = await freePort();
  const proc = startNode([APP], { env: { ...process.env, ...v.env, PORT: String(port), SESSION_SECRET: SECRET, NODE_ENV: 'production' } });
  await proc.waitFor(/listening on/);
  core.subject(proc.pid);
  const base = `http://127.0.0.1:${port}`;
  const res = await request(`${base}/login`, { method: 'POST', body: {} });
  if (res.status !== 200) throw new Error(`${v.label}: login answered ${res.status} ${res.body}`);
  const cookie = Object.entries(res.cookies).map(([k, val]) => `${k}=${val}`).join('; ');
  const check = await request(`${base}/me`, { headers: cookie ? { cookie } : {} });
  if (check.status !== 200) throw new Error(`${v.label}: /me answered ${check.status} ${check.body}`);
  const cpu: number[] = [];
  return {
    cpu,
    // Unmeasured load first: a contender's first seconds are JIT warm-up, longer for the one with more code.
    warm: () => load(`${base}/me`, { connections: 32, durationSec: ctx.smoke ? 1 : 3, headers: cookie ? { cookie } : {} }),
    run: async () => {
      // CPU per request of the app process: on a shared 2-core machine it moves far less than req/s does.
      const before = cpuMicros(proc.pid);
      const r = await load(`${base}/me`, { connections: 32, durationSec: ctx.durationSec, headers: cookie ? { cookie } : {} });
      cpu.push((cpuMicros(proc.pid) - before) / Math.max(1, r.requests));
      return r;
    },
    close: () => proc.stop(),
  };
}

const scenario: Scenario = {
  name: 'session',
  title: 'GET /me (read the login): clusterSession vs hand-assembled express-session + connect-redis vs no session',
  async run(ctx) {
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
    mongo: { label: 'ours (mongo)', env: { BENCH_VARIANT: 'ours', SESSION_STORE: 'mongo', MONGO_URL: mongo.url } },
    sqlite: { label: 'ours (sqlite)', env: { BENCH_VARIANT: 'ours', SESSION_STORE: 'sqlite', SQLITE_PATH: path.join(dir, 's.sqlite') } },
    jwt: { label: 'ours (jwt)', env: { BENCH_VARIANT: 'ours', SESSION_MODE: 'jwt', JWT_SECRET: SECRET } },
  };
  const servers = Object.fromEntries(await Promise.all(Object.entries(variants).map(async ([k, v]) => [k, await serve(v, ctx, core)] as const)));
  try {
    for (const s of Object.values(servers)) await s.warm();
    const results = await alternate(ctx.rounds, Object.fromEntries(Object.entries(servers).map(([k, s]) => [k, s.run])) as Record<string, () => ReturnType<typeof load>>);
    for (const [k, rs] of Object.entries(results)) ctx.log(`session: ${k}: req/s per round ${rs.map((r) => Math.round(r.rps)).join(', ')}; µs CPU per request ${servers[k]!.cpu.map((c) => c.toFixed(0)).join(', ')}`);
    const rps = (k: string) => median(results[k]!.map((r) => r.rps));
    const cpu = (k: string) => median(servers[k]!.cpu);
    const rows: Row[] = [];
    if (redis) {
      const vsPeer = ratio(rps('redis'), rps('peer'));
      rows.push({ scenario: 'session', metric: '/me req/s, redis store', unit: 'req/s', ours: rps('redis'), peer: 'express-session + connect-redis', peerValue: rps('peer'), ratio: vsPeer, target: '>= 1.0x', met: vsPeer >= 1 });
      const cpuVsPeer = ratio(cpu('redis'), cpu('peer'));
      rows.push({ scenario: 'session', metric: '/me CPU per request, redis store', unit: 'µs', ours: cpu('redis'), peer: 'express-session + connect-redis', peerValue: cpu('peer'), ratio: cpuVsPeer, target: '<= 1.0x', met: cpuVsPeer <= 1 });
    }
    for (const k of ['redis', 'mongo', 'sqlite', 'jwt'].filter((v) => v in variants)) {
      rows.push({ scenario: 'session', metric: `/me req/s, ${variants[k]!.label}`, unit: 'req/s', ours: rps(k), peer: 'no session', peerValue: rps('none'), ratio: ratio(rps(k), rps('none')) });
    }
    const failures = Object.values(results).flat().reduce((a, r) => a + r.errors + r.non2xx, 0);
    if (failures) ctx.log(`session: ${failures} failed requests across variants`);
    return rows;
  } finally {
    await Promise.all(Object.values(servers).map((s) => s.close()));
    await redis?.close();
    await mongo.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Many clients at a large store: GET /whoami with a Cookie picked at random from 10,000 logins, against the same
 * app and store holding just those 10,000 sessions and holding 1,000,000 (the 10,000 plus 990,000 others), two
 * apps side by side, alternating rounds. A store whose lookups grow with its size shows here (the goal: within 5%).
 * SQLite (one file per side) and Redis (one server per side). Each app is pinned to core 0 while measured.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { freePort, request, startNode, startRedis, which, type Proc, type RedisServer } from '@cluster-session/testkit';
import { hasWrk, load } from '../lib/load.ts';
import { reserveSubjectCore } from '../lib/pin.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Row, Scenario } from '../lib/types.ts';

const APP = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'session-app.ts');
const SECRET = 'bench-secret-bench-secret-bench-secret';

interface Side {
  url: string;
  cookies: string[];
}

/** Logs `n` clients in, 50 at a time; returns each one's Cookie header. */
async function logins(base: string, n: number): Promise<string[]> {
  const out: string[] = [];
  const one = async () => {
    const res = await request(`${base}/login`, { method: 'POST', body: {} });
    if (res.status !== 200) throw new Error(`login answered ${res.status} ${res.body}`);
    out.push(Object.entries(res.cookies).map(([k, v]) => `${k}=${v}`).join('; '));
  };
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, one));
  return out;
}

/** Copies of one stored session under new ids, up to `total` rows (SQLite: one transaction). */
function fillSqlite(file: string, total: number): void {
  const db = new DatabaseSync(file);
  const { sess, expires } = db.prepare('SELECT sess, expires FROM sessions LIMIT 1').get() as { sess: string; expires: number };
  const have = Number((db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n);
  const insert = db.prepare('INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, ?, ?)');
  db.exec('BEGIN');
  for (let i = have; i < total; i++) insert.run(`filler-${i.toString(36).padStart(8, '0')}-${Math.random().toString(36).slice(2, 12)}`, sess, expires + i, `filler${i % 50_000}`);
  db.exec('COMMIT');
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
  db.close();
}

/** The same for Redis: copies of one session key (value and TTL) under new ids, pipelined. */
async function fillRedis(url: string, total: number): Promise<void> {
  const client = new Redis(url);
  try {
    const [, keys] = await client.scan('0', 'MATCH', 'sess:*', 'COUNT', 1000);
    const key = keys.find((k) => !k.startsWith('sess:~'));
    if (!key) throw new Error('no session key found to copy');
    const [value, ttl] = await Promise.all([client.get(key), client.pttl(key)]);
    const have = await client.dbsize();
    for (let i = have; i < total; i += 10_000) {
      const p = client.pipeline();
      for (let j = i; j < Math.min(total, i + 10_000); j++) p.set(`sess:filler-${j.toString(36)}-${Math.random().toString(36).slice(2, 12)}`, value!, 'PX', ttl);
      await p.exec();
    }
  } finally {
    client.disconnect();
  }
}

const scenario: Scenario = {
  name: 'session-scale',
  title: 'GET /whoami by clients picked at random of 10,000 logins: store holding 10,000 vs 1,000,000 sessions (SQLite, Redis)',
  async run(ctx) {
    if (!hasWrk()) return [{ scenario: 'session-scale', metric: 'skipped', unit: '', ours: NaN, note: 'needs wrk (apt-get install wrk): a cookie per request' }];
    const core = reserveSubjectCore();
    ctx.log(`session-scale: ${core.note}`);
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-scale-'));
    const procs: Proc[] = [];
    const redises: RedisServer[] = [];
    try {
      const users = ctx.smoke ? 500 : 10_000;
      const big = ctx.smoke ? 20_000 : 1_000_000;
      const stores: Array<{ name: string; env: (side: string) => Promise<Record<string, string>>; fill: (env: Record<string, string>) => Promise<void> }> = [
        {
          name: 'sqlite',
          env: async (side) => ({ SESSION_STORE: 'sqlite', SQLITE_PATH: path.join(dir, `${side}.sqlite`) }),
          fill: async (env) => fillSqlite(env.SQLITE_PATH!, big),
        },
      ];
      if (which('redis-server')) {
        stores.push({
          name: 'redis',
          env: async () => {
            const r = await startRedis();
            redises.push(r);
            return { SESSION_STORE: 'redis', REDIS_URL: r.url };
          },
          fill: (env) => fillRedis(env.REDIS_URL!, big),
        });
      } else ctx.log('session-scale: redis-server not installed: the Redis rows are skipped');
      const rows: Row[] = [];
      for (const store of stores) {
        const sides: Record<'small' | 'large', Side> = {} as never;
        for (const side of ['small', 'large'] as const) {
          const env = await store.env(side);
          const port = await freePort();
          const proc = startNode([APP], { env: { ...process.env, ...env, BENCH_VARIANT: 'ours', PORT: String(port), SESSION_SECRET: SECRET, NODE_ENV: 'production' } });
          procs.push(proc);
          await proc.waitFor(/listening on/);
          core.subject(proc.pid);
          const url = `http://127.0.0.1:${port}`;
          const cookies = await logins(url, users);
          if (side === 'large') {
            const t = Date.now();
            await store.fill(env);
            ctx.log(`session-scale: ${store.name}: ${big} sessions stored in ${Date.now() - t} ms`);
          }
          sides[side] = { url, cookies };
        }
        const run = (s: Side, durationSec: number) => load(`${s.url}/whoami`, { connections: 32, durationSec, cookies: s.cookies });
        for (const s of Object.values(sides)) await run(s, ctx.smoke ? 1 : 3); // warm-up, and the pages into the cache
        const r = await alternate(ctx.rounds, { small: () => run(sides.small, ctx.durationSec), large: () => run(sides.large, ctx.durationSec) });
        const rps = (k: 'small' | 'large') => median(r[k].map((x) => x.rps));
        const failed = [...r.small, ...r.large].reduce((n, x) => n + x.errors + x.non2xx, 0);
        ctx.log(`session-scale: ${store.name}: small ${r.small.map((x) => Math.round(x.rps)).join(', ')}; large ${r.large.map((x) => Math.round(x.rps)).join(', ')}; failed ${failed}`);
        const q = ratio(rps('large'), rps('small'));
        rows.push({
          scenario: 'session-scale',
          metric: `/whoami req/s, ${users.toLocaleString('en')} clients at random, ${big.toLocaleString('en')} stored, ${store.name}`,
          unit: 'req/s',
          ours: rps('large'),
          peer: `${users.toLocaleString('en')} stored`,
          peerValue: rps('small'),
          ratio: q,
          target: '>= 0.95x',
          met: q >= 0.95,
          ...(failed ? { note: `${failed} failed` } : {}),
        });
        await Promise.all(procs.splice(0).map((p) => p.stop()));
      }
      return rows;
    } finally {
      await Promise.all(procs.map((p) => p.stop()));
      await Promise.all(redises.map((r) => r.close()));
      core.release();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

/**
 * The SQLite store's sweep and save, in this process, against what they were, on copies of the same database file,
 * alternating in rounds.
 *
 * - sweep: 1M sessions, 10% expired, while this process saves a session every millisecond; the longest event-loop
 *   stall (perf_hooks monitorEventLoopDelay, 1 ms resolution, plus the largest gap between 1 ms timers). Ours: the
 *   lease holder's sweeper thread, which also checkpoints. Before it: batches on the event loop with SQLite's own
 *   checkpoints and a 20 ms busy timeout (still the fallback when no thread can run); before that, one DELETE.
 * - save: CPU µs per save of a session whose data changed but whose expiry and user did not (the common save).
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SessionData } from 'express-session';
// Internal: the store class itself (its sweep and set are what is measured).
import { SqliteStore } from '../../packages/session/src/stores/sqlite.ts';
import { alternate, median, ratio } from '../lib/stats.ts';
import type { Scenario } from '../lib/types.ts';

const silent = { info() {}, warn() {}, error() {} } as never;
const open = (file: string) => new SqliteStore(file, { table: 'sessions', ttl: 3600, userKey: 'user', logger: silent, timeoutMs: 5000 });

/** Runs `work` while watching the event loop and saving a session every millisecond; returns the longest stall in ms. */
async function stallOf(store: SqliteStore, work: () => Promise<unknown>): Promise<number> {
  const expires = new Date(Date.now() + 3_600_000).toISOString();
  let i = 0;
  const save = () => store.set(`live-${i++ % 1000}`, { cookie: { originalMaxAge: 3_600_000, expires }, hits: i } as unknown as SessionData, () => {});
  // The first write of a freshly copied file creates its WAL (one fsync): made before the watch, as in a serving process.
  await new Promise<void>((resolve) => store.set('warm', { cookie: { originalMaxAge: 3_600_000, expires } } as unknown as SessionData, () => resolve()));
  const h = monitorEventLoopDelay({ resolution: 1 });
  let last = performance.now();
  let maxGap = 0;
  const timer = setInterval(() => {
    const t = performance.now();
    maxGap = Math.max(maxGap, t - last);
    last = t;
    save();
  }, 1);
  h.enable();
  await sleep(5);
  await work();
  await sleep(5);
  h.disable();
  clearInterval(timer);
  return Math.max(h.max / 1e6, maxGap);
}

/** The sweep lease to nobody: the store's own timer never starts a sweeper thread beside what is measured. */
const noSweeper = (store: SqliteStore) => store.db.exec(`INSERT OR REPLACE INTO sessions_sweep_lease (id, owner, until) VALUES (1, 'bench', ${Number.MAX_SAFE_INTEGER})`);

/** The settings of the code before the sweeper thread: SQLite's own checkpoints, a 20 ms busy timeout. */
const asBefore = (store: SqliteStore) => {
  store.db.exec('PRAGMA wal_autocheckpoint = 1000; PRAGMA busy_timeout = 20;');
  noSweeper(store);
};

const scenario: Scenario = {
  name: 'sqlite-store',
  title: 'SQLite store: longest event-loop stall of the expiry sweep at 1M sessions (10% expired) with saves going on, CPU per save; vs the previous code',
  async run(ctx) {
    const dir = mkdtempSync(path.join(tmpdir(), 'cs-bench-sqlite-'));
    try {
      const rows = ctx.smoke ? 100_000 : 1_000_000;
      const base = path.join(dir, 'base.sqlite');
      open(base).close(); // the store's own schema
      const db = new DatabaseSync(base);
      const now = Date.now();
      const insert = db.prepare('INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, ?, ?)');
      const body = JSON.stringify({ cookie: { originalMaxAge: 3_600_000, httpOnly: true, path: '/' }, user: 'u', hits: 1 });
      db.exec('BEGIN');
      for (let i = 0; i < rows; i++) insert.run(`sid-${i.toString(36).padStart(8, '0')}`, body, i % 10 === 0 ? now - 1000 - i : now + 3_600_000 + i, `u${i % 5000}`);
      db.exec('COMMIT');
      db.exec('PRAGMA wal_checkpoint(TRUNCATE)');
      db.close();
      ctx.log(`sqlite-store: ${rows} rows built`);
      let copy = 0;
      const fresh = () => {
        const file = path.join(dir, `c${copy++}.sqlite`);
        copyFileSync(base, file);
        return file;
      };
      const sweeps = await alternate(ctx.rounds, {
        thread: async () => {
          const store = open(fresh());
          const wall = await stallOf(store, () => store.sweepIfLeader());
          store.close();
          return { wall, cpu: NaN };
        },
        batched: async () => {
          const store = open(fresh());
          asBefore(store);
          // Internal hook: the CPU time of each batch, i.e. the stall it causes on a machine with a core to spare.
          const q = (store as unknown as { q: { sweepBatch: { run(a: number, b: number): { changes: number | bigint } } } }).q;
          const batch = q.sweepBatch;
          let longestCpu = 0;
          q.sweepBatch = {
            run(a, b) {
              const c = process.cpuUsage();
              const r = batch.run(a, b);
              const u = process.cpuUsage(c);
              longestCpu = Math.max(longestCpu, (u.user + u.system) / 1000);
              return r;
            },
          };
          const wall = await stallOf(store, () => store.sweep());
          store.close();
          return { wall, cpu: longestCpu };
        },
        single: async () => {
          const store = open(fresh());
          asBefore(store);
          // The first sweep: one statement for every expired row.
          const del = store.db.prepare('DELETE FROM sessions WHERE expires <= ?');
          let cpu = 0;
          const wall = await stallOf(store, async () => {
            const c = process.cpuUsage();
            del.run(Date.now());
            const u = process.cpuUsage(c);
            cpu = (u.user + u.system) / 1000;
          });
          store.close();
          return { wall, cpu };
        },
      });

      // Saves: the same session saved again with new data (same expiry, same user).
      const saveFile = fresh();
      const store = open(saveFile);
      // Saves only: a checkpoint holding the write lock would fail the previous set's bare upsert (it has no retry).
      noSweeper(store);
      const upsert = store.db.prepare(
        `INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, ?, ?)
         ON CONFLICT(sid) DO UPDATE SET sess = excluded.sess, expires = excluded.expires, user = excluded.user`,
      );
      const n = ctx.smoke ? 2000 : 20_000;
      const exp = now + 3_600_000;
      const sess = (i: number) => ({ cookie: { originalMaxAge: 3_600_000, expires: new Date(exp).toISOString(), httpOnly: true, path: '/' }, user: 'alice', hits: i }) as unknown as SessionData;
      const cpu = async (fn: (i: number) => Promise<void> | void) => {
        const start = process.cpuUsage();
        for (let i = 0; i < n; i++) await fn(i);
        const used = process.cpuUsage(start);
        return (used.user + used.system) / n;
      };
      const ours = (i: number) => new Promise<void>((resolve, reject) => store.set(`save-${i % 1000}`, sess(i), (err) => (err ? reject(err) : resolve())));
      // The previous set(): the same serialization and bookkeeping, then the upsert.
      const before = (i: number) =>
        new Promise<void>((resolve) => {
          upsert.run(`save-${i % 1000}`, JSON.stringify(sess(i)), exp, 'alice');
          resolve();
        });
      for (let i = 0; i < 1000; i++) await ours(i); // the rows exist: saves update
      const saves = await alternate(ctx.rounds, { ours: () => cpu(ours), before: () => cpu(before) });
      // A rolling cookie: each save moves the expiry by the time since the previous one, as every /hit does.
      const rolling = (i: number) => ({ cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000).toISOString(), httpOnly: true, path: '/' }, user: 'alice', hits: i }) as unknown as SessionData;
      const oursRolling = (i: number) => new Promise<void>((resolve, reject) => store.set(`rolling-${i % 1000}`, rolling(i), (err) => (err ? reject(err) : resolve())));
      const beforeRolling = (i: number) =>
        new Promise<void>((resolve) => {
          const s = rolling(i);
          upsert.run(`previous-${i % 1000}`, JSON.stringify(s), Date.parse(s.cookie.expires as unknown as string), 'alice');
          resolve();
        });
      // Rows of their own for each side, written once first: the rounds measure updates, as above.
      for (let i = 0; i < 1000; i++) await oursRolling(i), await beforeRolling(i);
      const rollingSaves = await alternate(ctx.rounds, { ours: () => cpu(oursRolling), before: () => cpu(beforeRolling) });
      store.close();

      const m = (v: number[]) => median(v);
      return [
        { scenario: 'sqlite-store', metric: `sweep, longest event-loop stall while saves go on (${rows} sessions, 10% expired)`, unit: 'ms', ours: m(sweeps.thread.map((x) => x.wall)), peer: 'batched on the event loop (previous sweep)', peerValue: m(sweeps.batched.map((x) => x.wall)), ratio: ratio(m(sweeps.batched.map((x) => x.wall)), m(sweeps.thread.map((x) => x.wall))), target: '<= 20 ms', met: m(sweeps.thread.map((x) => x.wall)) <= 20, note: `a save every ms meanwhile; one DELETE (the first sweep): ${Math.round(m(sweeps.single.map((x) => x.wall)))} ms; ratio = previous / ours` },
        { scenario: 'sqlite-store', metric: `sweep on the event loop (the fallback), longest synchronous step, CPU time (${rows} sessions)`, unit: 'ms', ours: m(sweeps.batched.map((x) => x.cpu)), peer: 'one DELETE (first sweep)', peerValue: m(sweeps.single.map((x) => x.cpu)), ratio: ratio(m(sweeps.single.map((x) => x.cpu)), m(sweeps.batched.map((x) => x.cpu))), note: 'when no sweeper thread can run; ratio = one DELETE / ours' },
        { scenario: 'sqlite-store', metric: 'save with new data, same expiry and user: CPU per save', unit: 'µs', ours: m(saves.ours), peer: 'upsert of every column (previous set)', peerValue: m(saves.before), ratio: ratio(m(saves.before), m(saves.ours)), note: `${n} saves x ${ctx.rounds} rounds; ratio = previous / ours` },
        { scenario: 'sqlite-store', metric: 'save with new data and a rolling expiry (moved by the time since the last save): CPU per save', unit: 'µs', ours: m(rollingSaves.ours), peer: 'upsert of every column (previous set)', peerValue: m(rollingSaves.before), ratio: ratio(m(rollingSaves.before), m(rollingSaves.ours)), note: `${n} saves x ${ctx.rounds} rounds, one per transaction; ours rounds the indexed expiry up to a step (1% of the cookie's lifetime, at most 1 min); ratio = previous / ours` },
      ];
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
export default scenario;

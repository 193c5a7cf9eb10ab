// The SQLite store's sweep (batched, one sweeper per file by lease, in a thread of the lease holder that also
// checkpoints the WAL) and its data-only save: each keeps what the single-statement versions did: every expired row
// goes, no live row does, and a save leaves the same row.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Worker } from 'node:worker_threads';
import type { SessionData } from 'express-session';
import { SqliteStore } from '../src/stores/sqlite.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-sqlite-sweep-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = { info() {}, warn() {}, error() {} } as never;
let n = 0;
const open = (file = path.join(dir, `s${n++}.sqlite`), logger = silent) => ({ file, store: new SqliteStore(file, { table: 'sessions', ttl: 3600, userKey: 'user', logger, timeoutMs: 2000 }) });

/** The worker threads started while `fn` runs (the 'worker' event of process), each handed to `onStart` first. */
async function threadsOf<T>(fn: () => Promise<T>, onStart: (w: Worker) => void = () => {}): Promise<{ result: T; threads: Worker[] }> {
  const threads: Worker[] = [];
  const seen = (w: Worker) => (threads.push(w), onStart(w));
  process.on('worker', seen);
  try {
    return { result: await fn(), threads };
  } finally {
    process.off('worker', seen);
  }
}

/** Expired rows, written by a connection of the test's that never checkpoints (so it cannot do the store's work). */
function insertExpired(file: string, count: number): DatabaseSync {
  const db = new DatabaseSync(file);
  db.exec('PRAGMA wal_autocheckpoint = 0');
  const insert = db.prepare('INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, 1, NULL)');
  db.exec('BEGIN');
  for (let i = 0; i < count; i++) insert.run(`old${i}`, '{}');
  db.exec('COMMIT');
  return db;
}
const sess = (expires: number, data: Record<string, unknown> = {}) => ({ cookie: { originalMaxAge: 1, expires: new Date(expires).toISOString() }, ...data }) as unknown as SessionData;

describe('SQLite store: sweep and save', () => {
  it('the batched sweep deletes every expired row and no live one, across many batches', async () => {
    const { file, store } = open();
    const db = new DatabaseSync(file);
    const now = Date.now();
    const insert = db.prepare('INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, ?, ?)');
    db.exec('BEGIN');
    for (let i = 0; i < 30_000; i++) insert.run(`s${i}`, '{}', i % 3 === 0 ? now - 1000 - i : now + 60_000 + i, i % 7 ? null : `u${i % 50}`);
    db.exec('COMMIT');
    assert.equal(await store.sweep(), 10_000);
    const left = db.prepare('SELECT count(*) AS n, min(expires) AS m FROM sessions').get() as { n: number; m: number };
    assert.deepEqual([left.n, left.m > now], [20_000, true]);
    assert.equal(await store.sweep(), 0);
    db.close();
    store.close();
  });

  it('the event loop is served between batches (a timer fires during a long sweep)', async () => {
    const { file, store } = open();
    const db = new DatabaseSync(file);
    const insert = db.prepare('INSERT INTO sessions (sid, sess, expires, user) VALUES (?, ?, 1, NULL)');
    db.exec('BEGIN');
    for (let i = 0; i < 50_000; i++) insert.run(`s${i}`, '{}');
    db.exec('COMMIT');
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const deleted = await store.sweep();
    clearInterval(timer);
    assert.equal(deleted, 50_000);
    assert.ok(ticks > 0, 'no timer ran while the sweep was going');
    db.close();
    store.close();
  });

  it('one sweeper per file: the lease goes to one store, is renewed by it, and is taken over once it lapses', async () => {
    const a = open();
    const b = open(a.file);
    assert.equal(typeof (await a.store.sweepIfLeader()), 'number', 'the first store takes the lease');
    assert.equal(await b.store.sweepIfLeader(), undefined, 'the second one does not sweep');
    assert.equal(typeof (await a.store.sweepIfLeader()), 'number', 'the holder renews');
    const db = new DatabaseSync(a.file);
    db.exec('UPDATE sessions_sweep_lease SET until = 0'); // the holder died a while ago
    assert.equal(typeof (await b.store.sweepIfLeader()), 'number', 'a lapsed lease is taken over');
    assert.equal(await a.store.sweepIfLeader(), undefined);
    db.close();
    a.store.close();
    b.store.close();
  });

  it('the lease holder sweeps and checkpoints in a thread: saves never checkpoint on the event loop, the sweep copies the WAL back and starts it over', async () => {
    const { file, store } = open();
    const db = insertExpired(file, 500);
    const set = promisify(store.set.bind(store)) as (sid: string, s: SessionData) => Promise<void>;
    const exp = Date.now() + 60_000;
    for (let i = 0; i < 2000; i++) await set(`s${i}`, sess(exp, { n: i })); // one commit each
    const pageSize = (db.prepare('PRAGMA page_size').get() as { page_size: number }).page_size;
    const walFrames = (statSync(`${file}-wal`).size - 32) / (pageSize + 24);
    // At SQLite's default (1,000 pages) a save's commit would have checkpointed and the WAL started over, smaller.
    assert.ok(walFrames > 1500, `the WAL holds ${walFrames} frames: saves checkpointed on the event loop`);
    const { result, threads } = await threadsOf(() => store.sweepIfLeader());
    assert.equal(result, 500);
    assert.equal(threads.length, 1, 'the sweep ran in one thread');
    assert.equal((db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n, 2000);
    // What the WAL holds now: the thread's one write that started it over (a checkpoint left 2,000+ frames in it).
    const after = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number };
    assert.ok(after.log <= 2, `the WAL holds ${after.log} frames after the sweep: it was not copied back and started over`);
    db.close();
    store.close();
  });

  it('close() stops the sweeper thread and lets go of the lease, so another process sweeps at once', async () => {
    const a = open();
    const b = open(a.file);
    const { threads } = await threadsOf(() => a.store.sweepIfLeader());
    assert.equal(threads.length, 1);
    const exited = once(threads[0]!, 'exit');
    a.store.close();
    await exited;
    assert.equal(typeof (await b.store.sweepIfLeader()), 'number', 'the lease is still held by the closed store');
    b.store.close();
  });

  it('a sweeper thread that stops is replaced; after the third, the store sweeps on the event loop and says so once', async () => {
    const warnings: string[] = [];
    const { file, store } = open(undefined, { info() {}, warn: (m: string) => warnings.push(m), error() {} } as never);
    insertExpired(file, 300).close();
    // Each thread is stopped as it starts, before it can answer.
    const { result, threads } = await threadsOf(() => store.sweepIfLeader(), (w) => void w.terminate());
    assert.equal(result, 300, 'the expired rows went all the same');
    assert.equal(threads.length, 3);
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /sweeper thread .*sweeps on the event loop/);
    const again = await threadsOf(() => store.sweepIfLeader());
    assert.deepEqual([again.result, again.threads.length, warnings.length], [0, 0, 1]);
    store.close();
  });

  it('a lease that moves on during a sweep stops the sweeper thread, and the store starts no other', async () => {
    const { file, store } = open();
    insertExpired(file, 100_000).close(); // long enough to still be going when the lease moves
    const { result, threads } = await threadsOf(async () => {
      const sweeping = store.sweepIfLeader();
      await new Promise((r) => setTimeout(r, 20));
      // The store's renewals stalled and another process took the lease over.
      const db = new DatabaseSync(file, { timeout: 2000 });
      db.prepare('UPDATE sessions_sweep_lease SET owner = ?, until = ?').run('another', Date.now() + 60_000);
      db.close();
      assert.equal(await store.sweepIfLeader(), undefined, 'the store still believes it holds the lease');
      return sweeping;
    });
    assert.equal(result, undefined, 'the stopped sweep reported a count');
    assert.equal(threads.length, 1, 'the store started another thread');
    store.close();
  });

  it('a store that is never closed does not keep its process alive: the sweeper thread goes with the process', async () => {
    const file = path.join(dir, `s${n++}.sqlite`);
    const script = [
      `import { SqliteStore } from ${JSON.stringify(new URL('../src/stores/sqlite.ts', import.meta.url).href)};`,
      `const store = new SqliteStore(${JSON.stringify(file)}, { table: 'sessions', ttl: 3600, userKey: 'user', logger: console, timeoutMs: 2000 });`,
      `console.log(await store.sweepIfLeader());`,
    ].join('\n');
    const args = [...process.execArgv.filter((a) => a.startsWith('--conditions')), '--input-type=module', '-e', script];
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, args, { timeout: 20_000 }, (err, out) => resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: out }));
      child.stdin?.end();
    });
    assert.deepEqual([code, stdout.trim()], [0, '0'], 'the process did not exit by itself with its sweep done');
  });

  it('the expires column moves in steps, and a session still expires at its cookie\'s exact time everywhere', async () => {
    const { file, store } = open();
    const p = <T>(fn: (cb: (err: unknown, v?: T) => void) => void) => new Promise<T>((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
    const db = new DatabaseSync(file);
    const column = (sid: string) => (db.prepare('SELECT expires FROM sessions WHERE sid = ?').get(sid) as { expires: number } | undefined)?.expires;
    // A 60 s lifetime: steps of 600 ms. The cookie says 400 ms from now, as a rolling cookie near its end would.
    const life = (expires: number, data: Record<string, unknown>) => ({ cookie: { originalMaxAge: 60_000, expires: new Date(expires).toISOString() }, ...data }) as unknown as SessionData;
    let exp = Date.now() + 400;
    // Close to a step's start, so that the second save (20 ms on) falls in the same step.
    while (Math.ceil(exp / 600) * 600 - exp < 100 || Math.ceil(exp / 600) * 600 - exp > 500) exp = Date.now() + 400;
    await p<void>((cb) => store.set('a', life(exp, { user: 'alice', n: 1 }), cb));
    const first = column('a')!;
    assert.ok(first > exp && first - exp < 600 && first % 600 === 0, `column ${first} is the cookie's expiry ${exp} rounded up to its step`);
    await p<void>((cb) => store.set('a', life(exp + 20, { user: 'alice', n: 2 }), cb));
    assert.equal(column('a'), first, 'a later save within the step leaves the column (and so the index) as it was');
    assert.equal(JSON.parse((db.prepare('SELECT sess FROM sessions WHERE sid = ?').get('a') as { sess: string }).sess).n, 2);
    await p<void>((cb) => store.set('b', life(Date.now() + 3_600_000, { user: 'alice' }), cb));
    while (Date.now() <= exp + 20) await new Promise((r) => setTimeout(r, 10));
    assert.ok(column('a')! > Date.now(), 'the test reads inside the step: the column alone would still say alive');
    assert.equal(await p((cb) => store.get('a', cb)), null, 'get');
    assert.equal(await p((cb) => store.length(cb)), 1, 'length');
    assert.deepEqual(await p((cb) => store.ids(cb)), ['b'], 'ids');
    assert.deepEqual((await p<SessionData[]>((cb) => store.all(cb))).map((s) => (s as unknown as { id: string }).id), ['b'], 'all');
    assert.deepEqual((await store.listUser('alice')).map((s) => s.sid), ['b'], 'listUser');
    assert.equal(await store.destroyUser('alice'), 1, 'destroyUser counts the live session only');
    // A corrupted row near its column's end is counted by the column, as before, rather than failing the query.
    db.prepare(`INSERT INTO sessions (sid, sess, expires, user) VALUES ('c', 'not json', ?, NULL)`).run(Date.now() + 30_000);
    assert.equal(await p((cb) => store.length(cb)), 1);
    db.close();
    store.close();
  });

  it('a save that changes only the data, and one that changes expiry or user, leave the same row as an upsert', async () => {
    const { file, store } = open();
    const set = promisify(store.set.bind(store)) as (sid: string, s: SessionData) => Promise<void>;
    const destroyUser = (u: string) => store.destroyUser(u);
    const db = new DatabaseSync(file);
    const row = (sid: string) => db.prepare('SELECT sess, expires, user FROM sessions WHERE sid = ?').get(sid) as { sess: string; expires: number; user: string | null };
    const exp = Date.now() + 60_000;
    await set('a', sess(exp, { user: 'alice', n: 1 }));
    await set('a', sess(exp, { user: 'alice', n: 2 })); // data only
    assert.deepEqual({ ...row('a') }, { sess: JSON.stringify(sess(exp, { user: 'alice', n: 2 })), expires: exp, user: 'alice' });
    await set('a', sess(exp + 1000, { user: 'alice', n: 3 })); // expiry moves
    assert.equal(row('a').expires, exp + 1000);
    await set('a', sess(exp + 1000, { user: 'bob', n: 4 })); // user changes: the user index must follow
    assert.equal(row('a').user, 'bob');
    assert.equal(await destroyUser('alice'), 0);
    await set('b', sess(exp, { n: 1 }));
    await set('b', sess(exp, { n: 2 })); // no user (NULL) on both sides
    assert.deepEqual({ ...row('b') }, { sess: JSON.stringify(sess(exp, { n: 2 })), expires: exp, user: null });
    assert.equal(await destroyUser('bob'), 1);
    assert.equal(row('a'), undefined);
    db.close();
    store.close();
  });
});

// The SQLite store's sweep (batched, one sweeper per file by lease) and its data-only save: each keeps what the
// single-statement versions did: every expired row goes, no live row does, and a save leaves the same row.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { SessionData } from 'express-session';
import { SqliteStore } from '../src/stores/sqlite.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-sqlite-sweep-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = { info() {}, warn() {}, error() {} } as never;
let n = 0;
const open = (file = path.join(dir, `s${n++}.sqlite`)) => ({ file, store: new SqliteStore(file, { table: 'sessions', ttl: 3600, userKey: 'user', logger: silent, timeoutMs: 2000 }) });
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

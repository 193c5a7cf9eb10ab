// The SQLite store writes the saves of one turn of the event loop in one transaction (src/stores/sqlite.ts). What
// that must keep: every save lands, each answered once and only after its commit, in order with the statements
// that follow it (a destroy, a get), a save that cannot be written fails alone, and a batch that meets another
// process's write lock waits for it rather than dropping anything.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, test } from 'node:test';
import type { SessionData } from 'express-session';
import { SqliteStore } from '../src/stores/sqlite.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'cs-sqlite-batch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const silent = { info() {}, warn() {}, error() {} } as never;
let n = 0;
function open() {
  const file = path.join(dir, `s${n++}.sqlite`);
  return { file, store: new SqliteStore(file, { table: 'sessions', ttl: 3600, userKey: 'user', logger: silent, timeoutMs: 2000 }) };
}
const sess = (data: Record<string, unknown>) => ({ cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000).toISOString(), path: '/', httpOnly: true }, ...data }) as unknown as SessionData;
const save = (store: SqliteStore, sid: string, s: SessionData) => new Promise<unknown>((resolve) => store.set(sid, s, (err) => resolve(err ?? null)));
const get = (store: SqliteStore, sid: string) => new Promise<SessionData | null | undefined>((resolve, reject) => store.get(sid, (err, s) => (err ? reject(err) : resolve(s))));
/** Commits made by other connections, as a second connection sees them (PRAGMA data_version moves once per commit). */
const version = (db: DatabaseSync) => Number((db.prepare('PRAGMA data_version').get() as { data_version: number }).data_version);

describe('SQLite store: the saves of one tick in one transaction', () => {
  test('50 saves in one tick: all stored, one commit, each callback once and after the commit', async () => {
    const { file, store } = open();
    const watcher = new DatabaseSync(file);
    try {
      const before = version(watcher);
      const calls = new Map<string, number>();
      const saves = Array.from({ length: 50 }, (_, i) =>
        new Promise<void>((resolve, reject) =>
          store.set(`sid-${i}`, sess({ user: `u${i}`, n: i }), (err) => {
            if (err) return reject(err);
            calls.set(`sid-${i}`, (calls.get(`sid-${i}`) ?? 0) + 1);
            // Answered after the commit: another connection sees the row already.
            assert.ok(watcher.prepare('SELECT 1 FROM sessions WHERE sid = ?').get(`sid-${i}`), `sid-${i} is committed when answered`);
            resolve();
          }),
        ),
      );
      await Promise.all(saves);
      assert.equal(version(watcher) - before, 1, 'one commit for the tick');
      assert.equal(Number((watcher.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n), 50);
      assert.deepEqual([...new Set(calls.values())], [1]);
    } finally {
      watcher.close();
      store.close();
    }
  });

  test('in order with what follows in the same tick: the later save of one id wins, a get sees it, a destroy removes it', async () => {
    const { store } = open();
    try {
      const first = save(store, 'a', sess({ v: 1 }));
      const second = save(store, 'a', sess({ v: 2 }));
      const seen = get(store, 'a');
      const doomed = save(store, 'b', sess({ v: 1 }));
      const destroyed = new Promise<void>((resolve, reject) => store.destroy('b', (err) => (err ? reject(err) : resolve())));
      assert.deepEqual(await Promise.all([first, second, doomed]), [null, null, null]);
      assert.equal((await seen as unknown as { v: number }).v, 2);
      await destroyed;
      assert.equal(await get(store, 'b'), null, 'the save before the destroy did not come back after it');
      assert.equal((await get(store, 'a') as unknown as { v: number }).v, 2);
    } finally {
      store.close();
    }
  });

  test('a save that cannot be serialized fails alone; the rest of its batch is stored', async () => {
    const { store } = open();
    try {
      const results = await Promise.all([save(store, 'ok-1', sess({ v: 1 })), save(store, 'bad', sess({ v: 10n })), save(store, 'ok-2', sess({ v: 2 }))]);
      assert.equal(results[0], null);
      assert.match(String(results[1]), /BigInt/);
      assert.equal(results[2], null);
      assert.ok(await get(store, 'ok-1'));
      assert.ok(await get(store, 'ok-2'));
      assert.equal(await get(store, 'bad'), null);
    } finally {
      store.close();
    }
  });

  test("another connection holds the write lock: the batch waits for it, then lands; a destroy after it waits too", async () => {
    const { file, store } = open();
    const locker = new DatabaseSync(file);
    try {
      await save(store, 'gone', sess({ v: 0 }));
      locker.exec('BEGIN IMMEDIATE');
      const saves = [save(store, 'x', sess({ v: 1 })), save(store, 'y', sess({ v: 2 }))];
      const destroyed = new Promise<unknown>((resolve) => store.destroy('gone', (err) => resolve(err ?? null)));
      await new Promise((r) => setTimeout(r, 150));
      locker.exec('COMMIT');
      assert.deepEqual(await Promise.all(saves), [null, null]);
      assert.equal(await destroyed, null);
      assert.ok(await get(store, 'x'));
      assert.ok(await get(store, 'y'));
      assert.equal(await get(store, 'gone'), null);
    } finally {
      locker.close();
      store.close();
    }
  });
});

describe('SQLite store: the gets of one tick in one read transaction', () => {
  test('50 gets in one tick: each answered once with its own session; an expired row reads as none and is deleted', async () => {
    const { file, store } = open();
    const other = new DatabaseSync(file);
    try {
      for (let i = 0; i < 50; i++) await save(store, `g-${i}`, sess({ n: i }));
      // A row past its expiry that the sweep has not reached yet.
      other.prepare('UPDATE sessions SET expires = ? WHERE sid = ?').run(Date.now() - 1000, 'g-7');
      const calls = new Map<string, number>();
      const got = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          new Promise<SessionData | null>((resolve, reject) =>
            store.get(`g-${i}`, (err, s) => {
              calls.set(`g-${i}`, (calls.get(`g-${i}`) ?? 0) + 1);
              return err ? reject(err) : resolve(s);
            }),
          ),
        ),
      );
      assert.deepEqual(got.map((s) => (s as unknown as { n: number } | null)?.n ?? null), Array.from({ length: 50 }, (_, i) => (i === 7 ? null : i)));
      assert.deepEqual([...new Set(calls.values())], [1]);
      assert.equal(other.prepare('SELECT 1 FROM sessions WHERE sid = ?').get('g-7'), undefined, 'the expired row is gone');
    } finally {
      other.close();
      store.close();
    }
  });

  test('in order with the calls on the same id in the same tick: a get before a destroy or a save sees the old value, one after sees the new', async () => {
    const { store } = open();
    try {
      await save(store, 'a', sess({ v: 1 }));
      await save(store, 'b', sess({ v: 1 }));
      const beforeDestroy = get(store, 'a');
      const destroyed = new Promise<void>((resolve, reject) => store.destroy('a', (err) => (err ? reject(err) : resolve())));
      const afterDestroy = get(store, 'a');
      const beforeSave = get(store, 'b');
      const saved = save(store, 'b', sess({ v: 2 }));
      const afterSave = get(store, 'b');
      assert.equal((await beforeDestroy as unknown as { v: number }).v, 1);
      await destroyed;
      assert.equal(await afterDestroy, null);
      assert.equal((await beforeSave as unknown as { v: number }).v, 1);
      assert.equal(await saved, null);
      assert.equal((await afterSave as unknown as { v: number }).v, 2);
    } finally {
      store.close();
    }
  });

  test('a callback that throws keeps the rest of its batch from nothing, and its exception is uncaught', async () => {
    // In a process of its own: the exceptions must reach 'uncaughtException' (not an unhandled rejection), which
    // this test runner would take for a failure of its own.
    const script = [
      `import { SqliteStore } from ${JSON.stringify(new URL('../src/stores/sqlite.ts', import.meta.url).href)};`,
      `const store = new SqliteStore(${JSON.stringify(path.join(dir, `s${n++}.sqlite`))}, { table: 'sessions', ttl: 3600, userKey: 'user', logger: console, timeoutMs: 2000 });`,
      `process.on('uncaughtException', (e) => console.log('uncaught ' + e.message));`,
      `process.on('unhandledRejection', (e) => console.log('unhandled rejection ' + e));`,
      `const s = { cookie: { originalMaxAge: 3600000, expires: new Date(Date.now() + 3600000).toISOString() }, v: 1 };`,
      `store.set('a', s, () => { throw new Error('from a save'); });`,
      `store.set('b', s, (err) => console.log('save b ' + err));`,
      `setTimeout(() => {`,
      `  store.get('a', () => { throw new Error('from a get'); });`,
      `  store.get('b', (err, v) => console.log('get b ' + err + ' ' + v.v));`,
      `}, 50);`,
      `setTimeout(() => store.close(), 200);`,
    ].join('\n');
    const args = [...process.execArgv.filter((a) => a.startsWith('--conditions')), '--input-type=module', '-e', script];
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(process.execPath, args, { timeout: 20_000 }, (err, out) => (err ? reject(err) : resolve(out)));
      child.stdin?.end();
    });
    assert.deepEqual(stdout.trim().split('\n').sort(), ['get b null 1', 'save b null', 'uncaught from a get', 'uncaught from a save']);
  });

  test("another connection's write lock does not hold up reads", async () => {
    const { file, store } = open();
    const locker = new DatabaseSync(file);
    try {
      await save(store, 'r', sess({ v: 1 }));
      locker.exec('BEGIN IMMEDIATE');
      locker.prepare("UPDATE sessions SET sess = json_set(sess, '$.v', 9) WHERE sid = 'r'").run();
      let committed = false;
      const seen = get(store, 'r').then((s) => ({ s, committed }));
      setTimeout(() => {
        committed = true;
        locker.exec('COMMIT');
      }, 300);
      const { s, committed: afterCommit } = await seen;
      assert.equal(afterCommit, false, 'answered while the lock was held');
      assert.equal((s as unknown as { v: number }).v, 1, 'the last committed value');
    } finally {
      await new Promise((r) => setTimeout(r, 350));
      locker.close();
      store.close();
    }
  });
});

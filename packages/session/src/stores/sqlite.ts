import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { Store, type SessionData } from 'express-session';
import type { Logger, ResolvedConfig } from '../config.ts';
import { StoreUnavailableError } from '../errors.ts';
import { parseSession, userOf, expiresAt } from '../serializer.ts';
import { SWEEP_FIRST_BATCH, isBusy, nextBatch, openDatabase, sweepBatchSql, whenUnlocked, whileBusy } from './sqlite-db.ts';
import { SweeperGoneError, SweeperThread } from './sqlite-sweeper.ts';
import type { DenyFeed } from './deny-view.ts';
import { alwaysUp, checkJti, type DenyList, type StoreHandle } from './types.ts';

type Cb = (err?: unknown, data?: any) => void;

const SWEEP_EVERY_MS = 60_000;
/** The first lease attempt after opening: soon, so the WAL is checkpointed off the event loop from the start. */
const FIRST_SWEEP_MS = 5_000;
/** A sweeper thread that stops this many times is given up on: the sweep then runs on the event loop, in batches. */
const SWEEPER_LIVES = 3;
/** The timer's sweep runs in the one process holding this lease (renewed by every sweep it runs). */
const SWEEP_LEASE_MS = 3 * SWEEP_EVERY_MS;

/** The largest step of the `expires` column (expiryColumn()): how late, at most, the sweep deletes a session. */
const MAX_EXPIRY_STEP_MS = 60_000;

/**
 * The `expires` column of a session: its exact expiry rounded up to a step of 1% of its cookie's lifetime (at most
 * a minute), so that the saves of an active session within one step change its data only, and leave both indexes
 * alone: a save that moves the column costs about four times one that does not (one upsert in its own transaction:
 * ~30 µs of CPU against ~7; bench/scenarios/sqlite-store.ts). The column is then an upper bound, for the index and
 * the sweep; the exact expiry is the stored cookie's, and reads check it (liveSql, cookieLive()). A cookie without
 * a lifetime (a browser-session cookie) keeps the exact value.
 */
function expiryColumn(sess: SessionData, ttlSeconds: number): number {
  const exact = expiresAt(sess, ttlSeconds);
  const life = sess.cookie?.originalMaxAge;
  if (!sess.cookie?.expires || typeof life !== 'number' || !(life >= 100)) return exact;
  const step = Math.min(MAX_EXPIRY_STEP_MS, Math.floor(life / 100));
  return Math.ceil(exact / step) * step;
}

/** False for a session whose stored cookie has expired by `now` while its rounded column (`column`) has not. */
function cookieLive(sess: SessionData, column: number, now: number): boolean {
  if (column - now > MAX_EXPIRY_STEP_MS) return true;
  const e = sess.cookie?.expires as unknown;
  if (!e) return true;
  return !(new Date(e as string).getTime() <= now);
}

/**
 * The rows alive at :now, as cookieLive() tells them: the column, then, within the last step, the stored cookie's
 * expiry (JSON.stringify writes it as toISOString() does, so the text compares in time order). CASE evaluates only
 * the branch it needs: rows far from expiry cost no JSON, and a corrupted row near it none that could fail.
 */
const liveSql = `expires > :now AND CASE WHEN expires > :near THEN 1 WHEN json_valid(sess) THEN coalesce(json_extract(sess, '$.cookie.expires') > :iso, 1) ELSE 1 END`;
const liveAt = (now: number) => ({ now, near: now + MAX_EXPIRY_STEP_MS, iso: new Date(now).toISOString() });

/** Runs a synchronous SQLite call, retrying SQLITE_BUSY asynchronously until `timeoutMs`, then StoreUnavailableError. */
async function retry<T>(fn: () => T, timeoutMs: number): Promise<T> {
  try {
    return await whenUnlocked(fn, timeoutMs);
  } catch (err) {
    if (!isBusy(err)) throw err;
    throw new StoreUnavailableError(`sqlite store: database stayed locked for ${timeoutMs} ms`, { cause: err });
  }
}

interface QueuedSave {
  sid: string;
  json: string;
  expires: number;
  user: string | null;
  cb: Cb | undefined;
}

/**
 * `cb`, to run in the async context of the call that gave it (its request's AsyncLocalStorage: the store budget, an
 * app's own request id), whichever turn of the event loop answers it. A batch answers many calls from one place,
 * which is the context of none of them (the first caller's, for a setImmediate); a promise reaction runs in the
 * context it was registered in, so the answer goes through one made here. Each callback runs on its own: one that
 * throws keeps no other from its answer, and its exception is uncaught, as it would be from any callback.
 */
function inCallersContext(cb: Cb): Cb;
function inCallersContext(cb: Cb | undefined): Cb | undefined;
function inCallersContext(cb: Cb | undefined): Cb | undefined {
  if (!cb) return undefined;
  let answer!: (a: readonly [unknown, unknown]) => void;
  void new Promise<readonly [unknown, unknown]>((resolve) => (answer = resolve)).then(([err, value]) => {
    try {
      cb(err, value);
    } catch (thrown) {
      queueMicrotask(() => {
        throw thrown;
      });
    }
  });
  return (err, value) => answer([err, value]);
}

interface QueuedGet {
  sid: string;
  cb: Cb;
}

/** Answers every call of a batch (callbacks made by inCallersContext(), which only schedule theirs). */
function answerEach(batch: readonly { cb: Cb | undefined }[], errorOf: (i: number) => unknown, valueOf: (i: number) => unknown = () => undefined): void {
  batch.forEach((w, i) => {
    const err = errorOf(i);
    if (err) w.cb?.(err);
    else w.cb?.(null, valueOf(i));
  });
}

/**
 * The embedded store on node:sqlite: one file shared by every process of the host. The gets of one turn of the event
 * loop are read in one transaction (readQueued()), and its saves written in one (drain()); every other write is one
 * statement, atomic on its own; last write wins per session, as on Redis. Every call keeps its order with the calls
 * on the same session id (and those over many rows) made before it, as commands on one Redis connection do.
 */
export class SqliteStore extends Store {
  readonly db: DatabaseSync;
  private readonly q: Record<'get' | 'set' | 'setData' | 'touch' | 'touchCookie' | 'destroy' | 'ids' | 'count' | 'all' | 'clear' | 'sweepBatch' | 'lease' | 'release' | 'listUser' | 'deleteUser' | 'deleteExpired1', StatementSync>;
  /** Who this store is in the sweep lease: one sweeper per database file, whichever process got the lease. */
  private readonly owner = `${process.pid}-${randomUUID()}`;
  private readonly timer: NodeJS.Timeout;
  private readonly first: NodeJS.Timeout;
  private readonly file: string;
  /** While this store holds the sweep lease: its sweeper thread (sqlite-sweeper.ts). */
  private sweeper: SweeperThread | undefined;
  private sweeperLives = SWEEPER_LIVES;
  private leader = false;
  private readonly ttl: number;
  private readonly userKey: string;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly table: string;
  /** Saves made in this turn of the event loop, not written yet. */
  private queued: QueuedSave[] | null = null;
  private readonly queuedIds = new Set<string>();
  /** Gets made in this turn of the event loop, not read yet. */
  private reads: QueuedGet[] | null = null;
  private readonly readIds = new Set<string>();
  /** Whether a setImmediate will read and write what is queued (schedule()). */
  private scheduled = false;
  /** The last batch of saves, while it is being written or waits for the write lock. */
  private writing: Promise<void> | null = null;

  constructor(file: string, opts: { table: string; ttl: number; userKey: string; logger: Logger; timeoutMs: number }) {
    super();
    this.ttl = opts.ttl;
    this.userKey = opts.userKey;
    this.logger = opts.logger;
    this.timeoutMs = opts.timeoutMs;
    this.table = opts.table;
    this.file = file;
    this.db = openDatabase(file);
    const t = opts.table;
    whileBusy(() =>
      this.db.exec(
        `CREATE TABLE IF NOT EXISTS ${t} (sid TEXT PRIMARY KEY, sess TEXT NOT NULL, expires INTEGER NOT NULL, user TEXT) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS ${t}_expires ON ${t}(expires);
         CREATE INDEX IF NOT EXISTS ${t}_user ON ${t}(user) WHERE user IS NOT NULL;
         CREATE TABLE IF NOT EXISTS ${t}_sweep_lease (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, until INTEGER NOT NULL);`,
      ),
    );
    this.q = {
      get: this.db.prepare(`SELECT sess, expires FROM ${t} WHERE sid = ?`),
      set: this.db.prepare(
        `INSERT INTO ${t} (sid, sess, expires, user) VALUES (?, ?, ?, ?)
         ON CONFLICT(sid) DO UPDATE SET sess = excluded.sess, expires = excluded.expires, user = excluded.user`,
      ),
      // The common save changes the data only: updating sess alone leaves both indexes untouched (SQLite
      // rewrites an index only when a column it covers is SET). The WHERE makes it a no-op otherwise, and `set`
      // falls back to the full upsert, so the row ends up the same either way.
      setData: this.db.prepare(`UPDATE ${t} SET sess = ? WHERE sid = ? AND expires = ? AND user IS ?`),
      touch: this.db.prepare(`UPDATE ${t} SET expires = ? WHERE sid = ? AND expires > ?`),
      // The stored cookie's expiry moves with the row's, in place (no other field is rewritten, so a newer save
      // is never undone): the next load compares against it to keep touches lazy.
      touchCookie: this.db.prepare(`UPDATE ${t} SET expires = ?, sess = json_set(sess, '$.cookie.expires', ?) WHERE sid = ? AND expires > ?`),
      destroy: this.db.prepare(`DELETE FROM ${t} WHERE sid = ?`),
      ids: this.db.prepare(`SELECT sid FROM ${t} WHERE ${liveSql}`),
      count: this.db.prepare(`SELECT count(*) AS n FROM ${t} WHERE ${liveSql}`),
      all: this.db.prepare(`SELECT sid, sess FROM ${t} WHERE ${liveSql}`),
      clear: this.db.prepare(`DELETE FROM ${t}`),
      sweepBatch: this.db.prepare(sweepBatchSql(t)),
      // Taken when free, expired or already ours; `changes` tells whether we hold it.
      lease: this.db.prepare(
        `INSERT INTO ${t}_sweep_lease (id, owner, until) VALUES (1, ?, ?)
         ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, until = excluded.until WHERE until < ? OR owner = excluded.owner`,
      ),
      release: this.db.prepare(`UPDATE ${t}_sweep_lease SET until = 0 WHERE owner = ?`),
      listUser: this.db.prepare(`SELECT sid, sess FROM ${t} WHERE user = :user AND ${liveSql}`),
      deleteUser: this.db.prepare(`DELETE FROM ${t} WHERE user = :user AND ${liveSql}`),
      deleteExpired1: this.db.prepare(`DELETE FROM ${t} WHERE sid = ? AND expires <= ?`),
    };
    // A sweep that fails is tried again at the next tick; the same failure is logged once, not every minute.
    let lastWarning = '';
    const tick = () =>
      void this.sweepIfLeader().then(
        () => void (lastWarning = ''),
        (err: unknown) => {
          const msg = `cluster-session: ${(err as Error)?.message ?? String(err)}`;
          if (msg !== lastWarning) this.logger.warn((lastWarning = msg));
        },
      );
    this.first = setTimeout(tick, FIRST_SWEEP_MS).unref();
    this.timer = setInterval(tick, SWEEP_EVERY_MS).unref();
  }

  /**
   * Every statement after the gets and saves queued before it that it could see or change: those of its session id,
   * or all of them for a statement over many rows (`sid` undefined). A call on one session does not end the batch of
   * another's, or no batch would ever hold more than one. In order even while a batch waits for the lock.
   */
  private run<T>(cb: Cb | undefined, fn: () => T, sid?: string): Promise<T> {
    if (this.reads !== null && (sid === undefined || this.readIds.has(sid))) this.readQueued();
    if (this.queued !== null && (sid === undefined || this.queuedIds.has(sid))) this.drain();
    const p = this.afterWriting(fn);
    if (cb) p.then((v) => cb(null, v), (e) => cb(e));
    return p;
  }

  /** What this turn of the event loop queued, once it has made all its calls: gets first (see drain()), then saves. */
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  /**
   * Reads the queued gets in one read transaction: one snapshot, and one lock and unlock of the file for all of
   * them instead of one per get (in a loop: ~6 µs of CPU for a get alone, ~2.3 µs each for eight in one
   * transaction). Synchronous unless a batch of saves waits for the lock; answered in each caller's context.
   */
  private readQueued(): void {
    const batch = this.reads;
    if (batch === null) return;
    this.reads = null;
    this.readIds.clear();
    const values: unknown[] = new Array(batch.length);
    const errors: unknown[] = new Array(batch.length);
    this.afterWriting(() => this.readBatch(batch, values, errors)).then(
      () => answerEach(batch, (i) => errors[i], (i) => values[i]),
      (err: unknown) => answerEach(batch, () => err),
    );
  }

  private readBatch(batch: readonly QueuedGet[], values: unknown[], errors: unknown[]): void {
    const now = Date.now();
    const expired: number[] = [];
    const one = batch.length === 1;
    if (!one) this.db.exec('BEGIN');
    try {
      for (let i = 0; i < batch.length; i++) {
        errors[i] = undefined;
        try {
          const row = this.q.get.get(batch[i]!.sid) as { sess: string; expires: number } | undefined;
          values[i] = row === undefined || row.expires <= now ? null : this.live(row, now);
          if (row !== undefined && row.expires <= now) expired.push(i);
        } catch (err) {
          if (isBusy(err)) throw err; // the whole batch again: reads repeat safely
          errors[i] = err;
        }
      }
    } finally {
      if (!one && this.db.isTransaction) this.db.exec('COMMIT');
    }
    for (const i of expired) {
      // After the read transaction, best effort: a get must not wait for (or fail on) the write lock; the sweep
      // deletes the row otherwise.
      try {
        this.q.deleteExpired1.run(batch[i]!.sid, now);
      } catch (err) {
        if (!isBusy(err)) errors[i] = err;
      }
    }
  }

  /** The session a stored row holds, null when it does not parse or its stored cookie has expired. */
  private live(row: { sess: string; expires: number }, now: number): SessionData | null {
    const sess = parseSession(row.sess, this.logger);
    return sess && cookieLive(sess, row.expires, now) ? sess : null;
  }

  /**
   * Writes the queued saves in one transaction: one write lock and one WAL commit for all of them, not one or two
   * per save (a save whose expiry moved tries the data-only UPDATE, then the upsert). Synchronous unless the lock is
   * held by another process: then the batch retries, and later statements wait for it (`writing`).
   */
  private drain(): void {
    // The gets queued before these saves: none of them is of a session saved since (a get after a save of its id
    // drains first), so reading them first keeps every session's order.
    this.readQueued();
    const batch = this.queued;
    if (batch === null) return;
    this.queued = null;
    this.queuedIds.clear();
    const errors: unknown[] = new Array(batch.length);
    const write = () => this.writeBatch(batch, errors);
    const written = this.afterWriting(write);
    const settled = written.then(
      () => answerEach(batch, (i) => errors[i] ?? null),
      (err: unknown) => answerEach(batch, () => err),
    );
    const tracked: Promise<void> = settled.then(() => {
      if (this.writing === tracked) this.writing = null;
    });
    this.writing = tracked;
  }

  /** `fn` with busy retries, once the batch being written (if any) has settled: statements keep their order. */
  private afterWriting<T>(fn: () => T): Promise<T> {
    return this.writing ? this.writing.then(() => retry(fn, this.timeoutMs)) : retry(fn, this.timeoutMs);
  }

  private writeBatch(batch: readonly QueuedSave[], errors: unknown[]): void {
    this.db.exec('BEGIN IMMEDIATE');
    let committed = false;
    try {
      for (let i = 0; i < batch.length; i++) {
        const w = batch[i]!;
        try {
          if (Number(this.q.setData.run(w.json, w.sid, w.expires, w.user).changes) === 0) this.q.set.run(w.sid, w.json, w.expires, w.user);
          errors[i] = undefined;
        } catch (err) {
          if (isBusy(err)) throw err; // the whole batch again, from BEGIN
          errors[i] = err; // this save only: the statement was rolled back, the others stand
        }
      }
      this.db.exec('COMMIT');
      committed = true;
    } finally {
      if (!committed && this.db.isTransaction) this.db.exec('ROLLBACK');
    }
  }

  /** Queued, and read with the other gets of this turn of the event loop in one transaction (readQueued()). */
  override get(sid: string, cb: Cb): void {
    // A save of this id queued before it is written first, so the get sees it.
    if (this.queuedIds.has(sid)) this.drain();
    if (this.reads === null) this.reads = [];
    this.reads.push({ sid, cb: inCallersContext(cb) });
    this.readIds.add(sid);
    this.schedule();
  }

  /** Queued, and written with the other saves of this turn of the event loop in one transaction (drain()). */
  override set(sid: string, sess: SessionData, cb?: Cb): void {
    let save: QueuedSave;
    try {
      save = { sid, json: JSON.stringify(sess), expires: expiryColumn(sess, this.ttl), user: userOf(sess, this.userKey) ?? null, cb: inCallersContext(cb) };
    } catch (err) {
      if (cb) setImmediate(cb, err); // a session JSON cannot hold (a BigInt, a cycle): this save fails, as a store's would
      return;
    }
    if (this.queued === null) this.queued = [];
    this.queued.push(save);
    this.queuedIds.add(sid);
    this.schedule();
  }

  override touch(sid: string, sess: SessionData, cb?: Cb): void {
    void this.run(cb, () => {
      if (sess.cookie?.expires) this.q.touchCookie.run(expiryColumn(sess, this.ttl), new Date(expiresAt(sess, this.ttl)).toISOString(), sid, Date.now());
      else this.q.touch.run(expiresAt(sess, this.ttl), sid, Date.now());
    }, sid).catch(() => {});
  }

  override destroy(sid: string, cb?: Cb): void {
    void this.run(cb, () => {
      this.q.destroy.run(sid);
    }, sid).catch(() => {});
  }

  ids(cb: Cb): void {
    void this.run(cb, () => (this.q.ids.all(liveAt(Date.now())) as { sid: string }[]).map((r) => r.sid)).catch(() => {});
  }

  override length(cb: Cb): void {
    void this.run(cb, () => Number((this.q.count.get(liveAt(Date.now())) as { n: number }).n)).catch(() => {});
  }

  override all(cb: Cb): void {
    void this.run(cb, () => {
      const out: SessionData[] = [];
      for (const row of this.q.all.all(liveAt(Date.now())) as { sid: string; sess: string }[]) {
        const sess = parseSession(row.sess, this.logger);
        if (sess) out.push(Object.assign(sess, { id: row.sid }));
      }
      return out;
    }).catch(() => {});
  }

  override clear(cb?: Cb): void {
    void this.run(cb, () => {
      this.q.clear.run();
    }).catch(() => {});
  }

  /**
   * The event loop's sweep, when no sweeper thread can run: deletes the rows expired by now in batches sized to ~3 ms
   * of CPU each, serving the event loop in between (one DELETE of 100k rows held it for over a second). Resolves
   * with how many rows went.
   */
  async sweep(): Promise<number> {
    const now = Date.now();
    let total = 0;
    for (let batch = SWEEP_FIRST_BATCH; ; ) {
      // Sized by CPU time, not wall time: on a busy host a batch's wall time is mostly waiting for a core.
      const started = process.cpuUsage();
      const n = await retry(() => Number(this.q.sweepBatch.run(now, batch).changes), this.timeoutMs);
      total += n;
      if (n < batch) return total;
      const used = process.cpuUsage(started);
      batch = nextBatch(batch, (used.user + used.system) / 1000);
      await yieldToLoop();
    }
  }

  /**
   * The timer's sweep: only in the process holding the lease, so a host's workers do not all sweep the same file.
   * The holder sweeps and checkpoints in its sweeper thread; resolves with how many rows went, undefined when
   * another process holds the lease.
   */
  async sweepIfLeader(): Promise<number | undefined> {
    const now = Date.now();
    this.leader = await retry(() => Number(this.q.lease.run(this.owner, now + SWEEP_LEASE_MS, now).changes) === 1, this.timeoutMs);
    if (!this.leader) {
      void this.stopSweeper();
      return undefined;
    }
    while (this.sweeperLives > 0) {
      if (!this.sweeper?.alive) this.sweeper = new SweeperThread({ file: this.file, table: this.table, owner: this.owner }, this.logger);
      const thread = this.sweeper;
      try {
        return await thread.sweep(now);
      } catch (err) {
        if (!(err instanceof SweeperGoneError)) throw err;
        // Stopped here, not dead: the store closed, or a later renewal found the lease taken.
        if (this.sweeper !== thread) return undefined;
        if (--this.sweeperLives === 0) {
          this.logger.warn(`cluster-session: ${err.message}; the sqlite store sweeps on the event loop from now on, in batches`);
          // Nobody checkpoints off the event loop now: SQLite's own threshold, so each checkpoint stays small.
          this.db.exec('PRAGMA wal_autocheckpoint = 1000');
        }
      }
    }
    return this.sweep();
  }

  private stopSweeper(): Promise<void> | undefined {
    const s = this.sweeper;
    this.sweeper = undefined;
    return s?.stop();
  }

  listUser(userId: string): Promise<Array<{ sid: string; sess: SessionData }>> {
    return this.run(undefined, () => {
      const rows = this.q.listUser.all({ user: userId, ...liveAt(Date.now()) }) as Array<{ sid: string; sess: string }>;
      return rows.flatMap((r) => {
        const sess = parseSession(r.sess, this.logger);
        return sess ? [{ sid: r.sid, sess }] : [];
      });
    });
  }

  destroyUser(userId: string): Promise<number> {
    return this.run(undefined, () => Number(this.q.deleteUser.run({ user: userId, ...liveAt(Date.now()) }).changes));
  }

  close(): void {
    this.drain(); // the gets and saves of this turn still go in
    clearInterval(this.timer);
    clearTimeout(this.first);
    void this.stopSweeper();
    // Let go of the lease: another process takes it at its next sweep, not 3 minutes on.
    if (this.leader && this.db.isOpen) {
      try {
        this.q.release.run(this.owner);
      } catch (err) {
        if (!isBusy(err)) throw err;
      }
    }
    if (this.db.isOpen) this.db.close();
  }
}

export function createSqliteHandle(config: ResolvedConfig): StoreHandle {
  const s = config.store;
  if (s.type !== 'sqlite') throw new Error('unreachable');
  const store = new SqliteStore(s.path, {
    table: config.collection,
    ttl: config.ttlSeconds,
    userKey: config.userKey,
    logger: config.logger,
    timeoutMs: config.storeTimeout,
  });
  return {
    name: 'sqlite',
    store,
    address: s.path,
    ...alwaysUp,
    // Takes the write lock and lets go at once: readers never block under WAL, so only this tells whether the
    // store can take a login right now.
    async ping() {
      await retry(() => {
        store.db.exec('BEGIN IMMEDIATE');
        store.db.exec('ROLLBACK');
      }, config.storeTimeout);
    },
    listUser: (userId) => store.listUser(userId),
    destroyUser: (userId) => store.destroyUser(userId),
    async close() {
      store.close();
    },
  };
}

/**
 * Revoked JWT ids in the `<collection>_denylist` table of the shared file, swept every minute. Triggers bump a
 * one-row stamp table with every insert or update, so each process can poll one integer (denyListView) instead of
 * looking the table up per request.
 */
export function sqliteDenyList(config: ResolvedConfig & { store: { type: 'sqlite' } }): DenyList & DenyFeed {
  const db = openDatabase(config.store.path);
  const t = `${config.collection}_denylist`;
  // Several processes may create these at once: retry the schema lock like the WAL switch.
  whileBusy(() =>
    db.exec(
      `CREATE TABLE IF NOT EXISTS ${t} (jti TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID;` +
        `CREATE TABLE IF NOT EXISTS ${t}_stamp (id INTEGER PRIMARY KEY CHECK (id = 1), v INTEGER NOT NULL);` +
        `INSERT OR IGNORE INTO ${t}_stamp (id, v) VALUES (1, 0);` +
        `CREATE TRIGGER IF NOT EXISTS ${t}_stamp_insert AFTER INSERT ON ${t} BEGIN UPDATE ${t}_stamp SET v = v + 1 WHERE id = 1; END;` +
        `CREATE TRIGGER IF NOT EXISTS ${t}_stamp_update AFTER UPDATE ON ${t} BEGIN UPDATE ${t}_stamp SET v = v + 1 WHERE id = 1; END;`,
    ),
  );
  const add = db.prepare(`INSERT INTO ${t} (jti, expires) VALUES (?, ?) ON CONFLICT(jti) DO UPDATE SET expires = max(expires, excluded.expires)`);
  const has = db.prepare(`SELECT 1 FROM ${t} WHERE jti = ? AND expires > ?`);
  const sweep = db.prepare(`DELETE FROM ${t} WHERE expires <= ?`);
  const stamp = db.prepare(`SELECT v FROM ${t}_stamp WHERE id = 1`);
  const live = db.prepare(`SELECT jti, expires FROM ${t} WHERE expires > ?`);
  const timer = setInterval(() => void retry(() => sweep.run(Date.now()), config.storeTimeout).catch(() => {}), 60_000);
  timer.unref();
  return {
    async add(jti, expiresAtMs) {
      checkJti(jti);
      if (expiresAtMs > Date.now()) await retry(() => add.run(jti, Math.ceil(expiresAtMs)), config.storeTimeout);
    },
    async has(jti) {
      checkJti(jti);
      return (await retry(() => has.get(jti, Date.now()), config.storeTimeout)) !== undefined;
    },
    stamp: async () => String((await retry(() => stamp.get(), config.storeTimeout))?.v),
    live: async () => (await retry(() => live.all(Date.now()), config.storeTimeout)).map((r) => [String(r.jti), Number(r.expires)] as [string, number]),
    async close() {
      clearInterval(timer);
      if (db.isOpen) db.close();
    },
  };
}

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeSqlite } from './node-sqlite.ts';

// Node builtins and node-sqlite.ts only: the sweeper thread loads this file with no package resolution of ours.

/**
 * How long SQLite itself waits for a lock, synchronously: it blocks the event loop, so only long enough for the
 * common save of another process (well under a millisecond) to finish; a longer hold (the sweeper's batch or
 * checkpoint) is waited for asynchronously (sqlite.ts `retry`). At 20 ms, saves during a sweep stalled their event
 * loop 21 ms again and again (`npm run bench -- sqlite-store`).
 */
const BUSY_TIMEOUT_MS = 2;

/**
 * WAL pages after which a request-path connection checkpoints by itself: a safety net only. The sweep lease's
 * holder checkpoints every second off the event loop (sqlite-sweeper-thread.ts), so the WAL stays well under this;
 * SQLite's own default (1,000 pages) would have the commit that crosses it copy the WAL back and fsync on the event
 * loop, a 20-30 ms stall on this project's CI machines. 10,000 pages is ~40 MiB of WAL at the default page size.
 */
const REQUEST_PATH_CHECKPOINT_PAGES = 10_000;

export const isBusy = (err: unknown) => {
  const e = err as { errcode?: number; message?: string };
  // SQLITE_BUSY (5) and SQLITE_LOCKED (6), including extended codes (low byte).
  return (typeof e.errcode === 'number' && ((e.errcode & 0xff) === 5 || (e.errcode & 0xff) === 6)) || /database is locked/.test(e.message ?? '');
};

/**
 * Opens the shared database file: WAL so readers never wait for a writer, a short busy timeout plus async retries
 * (sqlite.ts `retry`) for writers of other processes on the same host. Creates the directory. `checkpointPages`: see
 * REQUEST_PATH_CHECKPOINT_PAGES (0 turns automatic checkpoints off, for the connection that runs them itself).
 */
export function openDatabase(file: string, checkpointPages = REQUEST_PATH_CHECKPOINT_PAGES): DatabaseSync {
  mkdirSync(path.dirname(file), { recursive: true });
  const db = new (nodeSqlite().DatabaseSync)(file, { timeout: BUSY_TIMEOUT_MS });
  // Several processes may open a fresh file at once; switching to WAL takes a lock, so retry briefly.
  whileBusy(() => db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = ${Math.trunc(checkpointPages)};`));
  return db;
}

/**
 * `fn` again while the database is locked, for up to `ms`: for what runs once at startup and cannot wait
 * asynchronously (opening, creating the schema). Each try waits BUSY_TIMEOUT_MS inside SQLite: not a busy loop.
 */
export function whileBusy<T>(fn: () => T, ms = 2000): T {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() > until) throw err;
    }
  }
}

/** `fn` again while the database is locked, waiting asynchronously (5 ms, doubling to 100 ms) for up to `ms`; then its error. */
export async function whenUnlocked<T>(fn: () => T, ms: number): Promise<T> {
  const until = Date.now() + ms;
  for (let delay = 5; ; delay = Math.min(delay * 2, 100)) {
    try {
      return fn();
    } catch (err) {
      if (!isBusy(err) || Date.now() + delay > until) throw err;
      await sleep(delay);
    }
  }
}

/** The sweep's first batch, in rows; later ones are sized by nextBatch(). */
export const SWEEP_FIRST_BATCH = 50;
/** ~10 µs of CPU per row with both indexes: 1,000 rows stay near 10 ms however a batch's time was misread. */
const SWEEP_MAX_BATCH = 1000;
/** A batch is sized to take about this long (lock time in the sweeper thread, CPU time on the event loop). */
const SWEEP_BATCH_MS = 3;

/** One batch of the sweep, the same in the sweeper thread and on the event loop: (now, limit) -> rows deleted. */
export const sweepBatchSql = (table: string) => `DELETE FROM ${table} WHERE sid IN (SELECT sid FROM ${table} WHERE expires <= ? LIMIT ?)`;

/** The next batch's size: about SWEEP_BATCH_MS at the rate `batch` rows took `tookMs`, growing at most 2x, 1 to 1,000 rows. */
export function nextBatch(batch: number, tookMs: number): number {
  // At most doubling: a clock that ticks coarsely reads 0 for a short batch, which must not mean "free".
  return Math.max(1, Math.min(SWEEP_MAX_BATCH, 2 * batch, Math.round((batch * SWEEP_BATCH_MS) / Math.max(tookMs, 0.1))));
}

/**
 * The body of the sweeper thread (sqlite-sweeper.ts starts it in the process holding the sweep lease): deletes expired
 * sessions in batches and checkpoints the WAL, both off the event loop that serves requests. On the event loop, the
 * first batch of a sweep read cold pages for 80-90 ms and every commit that crossed SQLite's checkpoint threshold
 * waited for an fsync (`npm run bench -- sqlite-store`). Its own connection: no automatic checkpoints, it runs them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { SWEEP_FIRST_BATCH, isBusy, nextBatch, openDatabase, sweepBatchSql, whenUnlocked } from './sqlite-db.ts';

export interface SweeperData {
  file: string;
  table: string;
  /** The store's name in the sweep lease. */
  owner: string;
}
/** Parent to thread: sweep the rows expired at `now`. */
export interface SweepRequest {
  id: number;
  now: number;
}
/** Thread to parent: the answer to request `id`, or a warning worth a log line. */
export type SweeperMessage = { id: number; deleted: number } | { id: number; error: string } | { warning: string };

const CHECKPOINT_EVERY_MS = 1000;
/** During a sweep, which writes the WAL fast (a 1M-row file grew it by ~40k pages a second): a checkpoint this often. */
const SWEEP_CHECKPOINT_MS = 50;
/** How long a batch may wait for the write lock before the sweep gives up (the next one starts over). */
const LOCKED_FOR_MS = 10_000;

const { file, table, owner } = workerData as SweeperData;
const port = parentPort!;
// Two connections, neither with automatic checkpoints: `db` deletes, and holds the write lock while `checkpointer`
// checkpoints, so that no save lands in between: the checkpoint copies the whole WAL and the next write starts it
// over. Otherwise, on a busy file, checkpoints stay partial, the WAL never starts over, and once it passes the
// request path's threshold every save's commit checkpoints, on its event loop.
const db = openDatabase(file, 0);
const checkpointer = openDatabase(file, 0);
const deleteBatch = db.prepare(sweepBatchSql(table));
// PASSIVE: copies what no reader still needs and never waits for a lock; a WAL already copied costs nothing.
const checkpoint = checkpointer.prepare('PRAGMA wal_checkpoint(PASSIVE)');
// The first write after a complete checkpoint starts the WAL over and fsyncs its header: made here, so that fsync is
// not paid by the next save on an event loop. It must change a value (SQLite writes nothing for a row set to what it
// holds): this process's lease, 1 ms longer.
const restartWal = db.prepare(`UPDATE ${table}_sweep_lease SET until = until + 1 WHERE id = 1 AND owner = ?`);
// Moves when another connection commits: an idle file is not checkpointed (nor its WAL restarted) every second.
const dataVersion = db.prepare('PRAGMA data_version');
let seenVersion: unknown;
let lastCheckpoint = 0;

let lastWarning = '';
const warn = (err: unknown) => {
  const error = (err as Error)?.message ?? String(err);
  if (error !== lastWarning) port.postMessage({ warning: `sqlite sweeper: ${(lastWarning = error)}` } satisfies SweeperMessage);
};

const checkpointNow = (force = false) => {
  try {
    const version = (dataVersion.get() as { data_version: number }).data_version;
    if (version === seenVersion && !force) return;
    lastCheckpoint = performance.now();
    db.exec('BEGIN IMMEDIATE'); // busy: a save is being written; the next round tries again
    let complete = false;
    try {
      const r = checkpoint.get() as { busy: number; log: number; checkpointed: number };
      complete = r.busy === 0 && r.log > 0 && r.checkpointed === r.log;
    } finally {
      db.exec('COMMIT');
    }
    if (complete) restartWal.run(owner);
    seenVersion = (dataVersion.get() as { data_version: number }).data_version;
  } catch (err) {
    if (!isBusy(err)) warn(err);
  }
};

/**
 * Sized by wall time, not CPU time: what a batch costs the other writers is how long it holds the lock. After each
 * batch the thread waits as long, so other writers get the lock.
 */
async function sweep(now: number): Promise<number> {
  let total = 0;
  for (let batch = SWEEP_FIRST_BATCH; ; ) {
    const started = performance.now();
    const n = await whenUnlocked(() => Number(deleteBatch.run(now, batch).changes), LOCKED_FOR_MS);
    const took = performance.now() - started;
    total += n;
    if (n < batch) return total;
    batch = nextBatch(batch, took);
    if (performance.now() - lastCheckpoint >= SWEEP_CHECKPOINT_MS) checkpointNow(true);
    await sleep(Math.max(1, Math.ceil(took)));
  }
}

let queue: Promise<void> = Promise.resolve();
port.on('message', ({ id, now }: SweepRequest) => {
  // One sweep at a time, in the order asked.
  queue = queue.then(async () => {
    let answer: SweeperMessage;
    try {
      answer = { id, deleted: await sweep(now) };
    } catch (err) {
      answer = { id, error: (err as Error)?.message ?? String(err) };
    }
    checkpointNow(true); // before the answer: a resolved sweep has been copied back, unless a save held the lock then
    port.postMessage(answer);
  });
});
setInterval(() => checkpointNow(), CHECKPOINT_EVERY_MS);

import { Worker } from 'node:worker_threads';
import type { Logger } from '../config.ts';
import { StoreUnavailableError } from '../errors.ts';
import type { SweeperData, SweeperMessage, SweepRequest } from './sqlite-sweeper-thread.ts';

const entry = new URL(import.meta.url.endsWith('.ts') ? './sqlite-sweeper-thread.ts' : './sqlite-sweeper-thread.js', import.meta.url);

/** The thread stopped (it could not open the file, crashed, or was stopped): the caller may sweep another way. */
export class SweeperGoneError extends Error {
  override readonly name = 'SweeperGoneError';
}

/**
 * The sweeper thread of the process holding the sweep lease, from the event loop's side: sweep() asks it to delete
 * the expired rows and resolves with how many went; meanwhile it checkpoints the WAL every second. Between sweeps it
 * does not keep a process alive, and a process that exits takes it along.
 */
export class SweeperThread {
  private readonly worker: Worker;
  private readonly pending = new Map<number, { resolve(n: number): void; reject(err: Error): void }>();
  private nextId = 0;
  private gone: SweeperGoneError | undefined;

  constructor(data: SweeperData, logger: Logger) {
    // No execArgv of the app's (its --import preloads are not for this thread); the thread needs node builtins only.
    this.worker = new Worker(entry, { workerData: data, execArgv: [], name: 'cluster-session sqlite sweeper' });
    this.worker.on('message', (m: SweeperMessage) => {
      if ('warning' in m) return void logger.warn(`cluster-session: ${m.warning}`);
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) this.worker.unref();
      if ('error' in m) p?.reject(new StoreUnavailableError(`sqlite store: the sweep failed: ${m.error}`));
      else p?.resolve(m.deleted);
    });
    this.worker.on('error', (err) => this.stopped(`failed: ${err.message}`));
    this.worker.on('exit', (code) => this.stopped(`exited with code ${code}`));
    // Idle, it never keeps a process alive. After the listeners: adding a 'message' listener refs the port again.
    this.worker.unref();
  }

  get alive(): boolean {
    return this.gone === undefined;
  }

  sweep(now: number): Promise<number> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise<number>((resolve, reject) => {
      // Held while a sweep is asked for, as a socket with a request outstanding: an await on it is not cut short.
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, now } satisfies SweepRequest);
    });
  }

  async stop(): Promise<void> {
    this.stopped('was stopped');
    await this.worker.terminate();
  }

  private stopped(why: string): void {
    this.gone ??= new SweeperGoneError(`the sqlite sweeper thread ${why}`);
    for (const p of this.pending.values()) p.reject(this.gone);
    this.pending.clear();
  }
}

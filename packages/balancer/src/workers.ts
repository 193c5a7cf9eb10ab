import { deadline } from '@cluster-session/core';
import { Worker } from 'node:worker_threads';
import { BalancerConfigError, ListenError, UnknownUpstreamError } from './errors.ts';
import type { BalancerOptions } from './options.ts';
import { SharedConnCounts, SharedRateLimiter } from './shared-limits.ts';
import type { ThreadReport } from './thread-report.ts';
import type { ThreadInit, ThreadMessage, ThreadOp } from './worker-thread.ts';

/**
 * The worker threads of a balancer with `workers: N` (the main thread's side; worker-thread.ts is the other). Each
 * thread runs the proxy on its own event loop and binds the balancer's port with SO_REUSEPORT, so the kernel
 * spreads new connections across them (nginx's `worker_processes` with `reuseport`). Threads rather than
 * processes: the per-client limits (limits.perClient, rateLimit) live in memory the threads share, as nginx keeps
 * them in a shared zone, so N threads do not give a client N times its limit.
 *
 * A thread that ends (an uncaught error, a native crash of its isolate) is started again with the balancer's
 * current options, after a delay that doubles up to 30 s while it keeps ending. Its connections are lost, as an
 * nginx worker's are when it crashes; its share of the per-client counts is cleared.
 */

const THREAD_URL = new URL(import.meta.url.endsWith('.ts') ? './worker-thread.ts' : './worker-thread.js', import.meta.url);
const RESTART_MS = 1_000;
const RESTART_MAX_MS = 30_000;
/** A thread that ran this long before it ended starts again after the shortest delay. */
const STABLE_MS = 30_000;
/** How long a report may take before the thread's previous one is used. */
const REPORT_MS = 1_000;

/** What the main thread's view of the balancer tells a (re)starting thread. */
interface GroupState {
  /** The options as they stand now: the last reconfigure's, the instance list as add/remove left it. */
  options(): BalancerOptions;
  unhealthy(): string[];
  draining(): string[];
  /** The last report of a thread that ended: its counters stay counted. */
  retire(report: ThreadReport): void;
  log(message: string): void;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  startedAt: number;
  delay: number;
  last: ThreadReport | undefined;
  restart: NodeJS.Timeout | undefined;
  /** Requests sent to the running thread and not answered yet, by sequence number. */
  pending: Map<number, { resolve(v: unknown): void; reject(e: Error): void }>;
}

/** Room for twice `maxClients`: addresses hash to stripes unevenly, and a full stripe evicts before the table is full. */
const rateTable = (maxClients: number | undefined) => (maxClients === undefined ? undefined : SharedRateLimiter.buffer(2 * maxClients));

/** A thread's error as the class of its code; another error (a bug) as `fallback`, with its message. */
const errorFrom = (e: { code?: string | undefined; message: string }, fallback: typeof ListenError | typeof BalancerConfigError): Error => {
  for (const C of [ListenError, BalancerConfigError, UnknownUpstreamError]) if (e.code === C.code) return new C(e.message);
  return new fallback(e.message);
};

export class WorkerGroup {
  readonly threads: number;
  url = '';
  port = 0;
  private readonly slots: Slot[];
  private readonly state: GroupState;
  private readonly connBuffer: SharedArrayBuffer;
  private rateBuffer: SharedArrayBuffer | undefined;
  private seq = 0;
  private closing = false;

  private constructor(threads: number, connections: number, maxClients: number | undefined, state: GroupState) {
    this.threads = threads;
    this.state = state;
    // Twice the connections the process may hold, so a table stripe is never full of open addresses. Sized once:
    // after a reconfigure that raises limits.connections far past it, a full stripe lets a connection in uncounted.
    this.connBuffer = SharedConnCounts.buffer(2 * connections, threads);
    this.rateBuffer = rateTable(maxClients);
    this.slots = Array.from({ length: threads }, (_, index) => ({ index, worker: undefined, startedAt: 0, delay: RESTART_MS, last: undefined, restart: undefined, pending: new Map() }));
  }

  /**
   * Starts the threads: the first binds the configured port (0 takes a free one), the others bind the port it
   * got. Rejects with the first thread's startup error (ListenError, BalancerConfigError), stopping the others.
   */
  static async start(threads: number, connections: number, maxClients: number | undefined, state: GroupState): Promise<WorkerGroup> {
    const group = new WorkerGroup(threads, connections, maxClients, state);
    try {
      const first = await group.spawn(group.slots[0]!);
      group.url = first.url;
      group.port = first.port;
      await Promise.all(group.slots.slice(1).map((s) => group.spawn(s)));
    } catch (err) {
      await group.close(0);
      throw err;
    }
    return group;
  }

  /** The options a thread gets: the current ones, bound to the port the first thread got. */
  private optionsNow(): BalancerOptions {
    const o = this.state.options();
    if (this.port === 0) return o;
    const listen = typeof o.listen === 'number' ? { port: this.port } : { ...o.listen, port: this.port };
    return { ...o, listen };
  }

  private spawn(slot: Slot): Promise<{ url: string; port: number }> {
    const init: ThreadInit = {
      options: this.optionsNow(),
      index: slot.index,
      threads: this.threads,
      connBuffer: this.connBuffer,
      rateBuffer: this.rateBuffer,
      unhealthy: this.state.unhealthy(),
      draining: this.state.draining(),
    };
    const worker = new Worker(THREAD_URL, { workerData: init, name: `balancer-${slot.index}` });
    slot.worker = worker;
    slot.startedAt = Date.now();
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (m: ThreadMessage) => {
        if (m.type === 'ready') {
          ready = true;
          resolve({ url: m.url, port: m.port });
        } else if (m.type === 'failed') reject(errorFrom(m, ListenError));
        else if (m.type === 'log') this.state.log(`worker ${slot.index}: ${m.message}`);
        else if (m.type === 'reply') {
          const p = slot.pending.get(m.seq);
          slot.pending.delete(m.seq);
          if (m.error) p?.reject(errorFrom(m.error, BalancerConfigError));
          else p?.resolve(m.value);
        }
      });
      // An uncaught error in the thread: 'error', then 'exit'. One line, from 'exit'.
      let why = '';
      worker.on('error', (err) => (why = err.message));
      worker.on('exit', (code) => {
        if (slot.worker === worker) slot.worker = undefined;
        // Requests it did not answer: its part is done (its connections went with it).
        for (const p of slot.pending.values()) p.resolve(undefined);
        slot.pending.clear();
        SharedConnCounts.clearThread(this.connBuffer, slot.index, this.threads);
        if (!ready) {
          reject(new ListenError(`balancer worker thread ${slot.index} ended before it listened (${why || `exit code ${code}`})`));
          return;
        }
        if (slot.last) this.state.retire(slot.last);
        slot.last = undefined;
        if (this.closing) return;
        slot.delay = Date.now() - slot.startedAt >= STABLE_MS ? RESTART_MS : slot.delay;
        this.state.log(`worker ${slot.index} ended (${why || `exit code ${code}`}); starting it again in ${slot.delay} ms`);
        this.scheduleRestart(slot);
      });
    });
  }

  private scheduleRestart(slot: Slot): void {
    const delay = slot.delay;
    slot.delay = Math.min(RESTART_MAX_MS, delay * 2);
    slot.restart = setTimeout(() => {
      slot.restart = undefined;
      if (this.closing) return;
      this.spawn(slot).then(
        () => this.state.log(`worker ${slot.index} started again`),
        (err: Error) => {
          this.state.log(`worker ${slot.index} did not start again: ${err.message}; next try in ${slot.delay} ms`);
          if (!this.closing) this.scheduleRestart(slot);
        },
      );
    }, delay);
    slot.restart.unref();
  }

  private ask(slot: Slot, op: ThreadOp): Promise<unknown> {
    const worker = slot.worker;
    if (!worker) return Promise.resolve(undefined);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      slot.pending.set(seq, { resolve, reject });
      worker.postMessage({ ...op, seq });
    });
  }

  /** Runs `op` on every running thread; resolves when all have replied (rejects with the first error). */
  all(op: ThreadOp): Promise<unknown[]> {
    return Promise.all(this.slots.map((s) => this.ask(s, op)));
  }

  /** Tells every running thread, without waiting (a health verdict). */
  tell(op: ThreadOp): void {
    void this.all(op).catch((err: Error) => this.state.log(`worker threads: ${op.op} failed: ${err.message}`));
  }

  /** A new configuration for every thread (already applied to the main thread's view, so valid). */
  reconfigure(rateChanged: boolean, maxClients: number | undefined): Promise<unknown[]> {
    // A new rate starts every client with a full bucket, in a new table (as in one process).
    if (rateChanged) this.rateBuffer = rateTable(maxClients);
    return this.all({ op: 'reconfigure', options: this.optionsNow(), rateBuffer: this.rateBuffer });
  }

  /** Each running thread's report, asked now; a thread that does not answer within 1 s gives its previous one. */
  async reports(): Promise<ThreadReport[]> {
    await Promise.all(
      this.slots.map(async (s) => {
        const r = (await deadline(this.ask(s, { op: 'report' }), REPORT_MS, () => new Error('late')).catch(() => undefined)) as ThreadReport | undefined;
        if (r) s.last = r;
      }),
    );
    return this.slots.filter((s) => s.worker && s.last).map((s) => s.last!);
  }

  /**
   * Stops a thread at once (its connections are cut), as a crash would: unless the group is closing, it is
   * started again like a thread that ended by itself.
   */
  terminate(index: number): void {
    void this.slots[index]?.worker?.terminate();
  }

  /** Every thread finishes its in-flight requests (up to `graceMs`) and ends; none is started again. */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    for (const s of this.slots) clearTimeout(s.restart);
    await Promise.all(
      this.slots.map(async (s) => {
        const w = s.worker;
        if (!w) return;
        const exited = new Promise((resolve) => w.once('exit', resolve));
        await this.ask(s, { op: 'close', graceMs }).catch(() => {});
        // The thread ends once its port closes; one that does not within a second more is stopped.
        const timer = setTimeout(() => this.terminate(s.index), 1_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

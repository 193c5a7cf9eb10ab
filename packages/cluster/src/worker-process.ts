import cluster, { type Worker } from 'node:cluster';
import type net from 'node:net';
import { CONFIG_EXIT_CODE } from './fatal.ts';
import { pipeLines, workerLine, type LogFormat } from './output.ts';
import { isToPrimary, type ToPrimary, type ToWorker } from './protocol.ts';
import type { WorkerFigures } from './worker-stats.ts';

type WorkerPhase = 'starting' | 'ready' | 'retiring' | 'exited';

interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** Human-readable: "exited with code 1", "killed by SIGKILL", "not ready within 1000 ms (readyTimeout)". */
  reason: string;
}

/** How long, after a worker exited, to wait for its IPC channel's end before re-dealing its unacknowledged sockets. */
const EOF_WAIT_MS = 1_000;

/** What the primary does with a worker's connection-related messages and with its channel closing. */
export interface WorkerHooks {
  conn(wp: WorkerProcess, id: number, taken: boolean): void;
  listen(wp: WorkerProcess, msg: Extract<ToPrimary, { cs: 'listen' }>): void;
  /** A retiring worker gives back an idle connection; `handle` is its TCP handle (undefined if it did not arrive). */
  move(wp: WorkerProcess, msg: Extract<ToPrimary, { cs: 'move' }>, handle: unknown): void;
  /** The IPC channel closed: every message the worker sent has been read. */
  disconnected(wp: WorkerProcess): void;
  /** The app threw a configuration error (fatal.ts); the worker exits with CONFIG_EXIT_CODE right after. */
  fatal(wp: WorkerProcess, report: FatalReport): void;
}

export interface FatalReport {
  code: string;
  message: string;
}

interface WorkerStats {
  rss: number;
  requests: number;
  figures: WorkerFigures;
}

/** One worker process as the primary sees it: readiness, retirement, on-demand stats. */
export class WorkerProcess {
  readonly worker: Worker;
  readonly slot: number;
  readonly pid: number;
  readonly startedAt = Date.now();
  phase: WorkerPhase = 'starting';
  readyAt: number | undefined;
  /** Set when the primary gave up on the worker (readyTimeout), so the exit reason says why. */
  failReason: string | undefined;
  /** Set when the app reported a configuration error: restarting this worker would fail the same way. */
  fatal: FatalReport | undefined;
  /** Resolves when the worker is ready; rejects (with the reason) if it exits or times out first. */
  readonly ready: Promise<void>;
  readonly exited: Promise<ExitInfo>;
  /** Questions asked (stats, metrics) awaiting the worker's answer, by id. */
  #asked = new Map<number, (answer: unknown) => void>();
  #nextId = 1;
  #drained = false;

  constructor(slot: number, env: Record<string, string>, readyTimeout: number, waitReady: boolean, hooks: WorkerHooks, logFormat: LogFormat = 'text') {
    this.slot = slot;
    this.worker = cluster.fork(env);
    this.pid = this.worker.process.pid ?? -1;
    const { stdout, stderr } = this.worker.process;
    if (stdout) pipeLines(stdout, process.stdout, workerLine(logFormat, slot, this.pid, 'stdout'));
    if (stderr) pipeLines(stderr, process.stderr, workerLine(logFormat, slot, this.pid, 'stderr'));
    // A send to a worker that just died reports EPIPE/ERR_IPC_CHANNEL_CLOSED here; its exit is handled below.
    this.worker.on('error', () => {});

    let onReady!: () => void;
    let onFail!: (err: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      onReady = resolve;
      onFail = reject;
    });
    this.ready.catch(() => {});

    const timer = setTimeout(() => {
      const hint = waitReady ? '; waitReady is on, so the app must call ready()' : '';
      this.failReason = `not ready within ${readyTimeout} ms (readyTimeout${hint}): FAILED`;
      onFail(new Error(this.failReason));
      this.kill('SIGKILL');
    }, readyTimeout);

    this.worker.on('message', (msg: unknown, handle: unknown) => {
      if (!isToPrimary(msg)) return;
      if (msg.cs === 'ready' && this.phase === 'starting') {
        clearTimeout(timer);
        this.phase = 'ready';
        this.readyAt = Date.now();
        onReady();
      } else if (msg.cs === 'drained' && this.phase === 'retiring' && !this.#drained) {
        // Every connection is closed: let the app's own SIGTERM handler (if any) release the rest.
        this.#drained = true;
        this.kill('SIGTERM');
      } else if (msg.cs === 'stats') {
        this.#asked.get(msg.id)?.({ rss: msg.rss, requests: msg.requests, figures: msg.figures });
      } else if (msg.cs === 'metrics') {
        this.#asked.get(msg.id)?.(msg.metrics);
      } else if (msg.cs === 'conn-ack' || msg.cs === 'conn-nack') {
        hooks.conn(this, msg.id, msg.cs === 'conn-ack');
      } else if (msg.cs === 'listen') {
        hooks.listen(this, msg);
      } else if (msg.cs === 'move') {
        hooks.move(this, msg, handle);
      } else if (msg.cs === 'fatal' && !this.fatal) {
        this.fatal = { code: String(msg.code), message: String(msg.message) };
        hooks.fatal(this, this.fatal);
      }
    });
    // Sockets sent and not acknowledged are re-dealt once the channel is closed and fully read (so no ack is
    // missed). Node emits 'disconnect' for that, except when the worker dies with a handle awaiting Node's own
    // ack: its queue never flushes and 'disconnect' never comes. Then the exit is the signal, once the channel
    // reached EOF (`channel` becomes null after its last bytes were read).
    let gone = false;
    const channelGone = () => {
      if (gone) return;
      gone = true;
      hooks.disconnected(this);
    };
    this.worker.process.once('disconnect', channelGone);
    const afterExit = (waited: number) => {
      if (!this.worker.process.channel || waited >= EOF_WAIT_MS) channelGone();
      else setTimeout(afterExit, 5, waited + 5);
    };
    this.worker.once('exit', () => afterExit(0));

    let channelClosed!: () => void;
    const closed = new Promise<void>((resolve) => (channelClosed = resolve));
    this.worker.process.once('disconnect', () => channelClosed());
    this.exited = new Promise<ExitInfo>((resolve) => {
      this.worker.once('exit', async (code: number | null, signal: string | null) => {
        clearTimeout(timer);
        this.phase = 'exited';
        // The exit can be seen before the `fatal` message that preceded it is read: wait for the channel's end.
        if (code === CONFIG_EXIT_CODE && !this.fatal) await Promise.race([closed, new Promise((r) => setTimeout(r, EOF_WAIT_MS))]);
        const reason =
          this.failReason ?? (this.fatal ? `refused its configuration: ${this.fatal.message}` : signal ? `killed by ${signal}` : `exited with code ${code}`);
        onFail(Object.assign(new Error(reason), this.fatal ? { fatal: this.fatal } : {}));
        for (const done of this.#asked.values()) done(undefined);
        resolve({ code, signal, reason });
      });
    });
  }

  send(msg: ToWorker, onError?: (err: Error) => void): void {
    if (this.phase === 'exited' || !this.worker.isConnected()) {
      onError?.(new Error('worker is gone'));
      return;
    }
    this.worker.send(msg, undefined, (err: Error | null) => {
      if (err) onError?.(err);
    });
  }

  /**
   * Sends a connection, keeping the primary's copy of the socket open (the Handoff closes it on the worker's
   * ack). `onError` runs when it cannot be sent; a send that succeeds says nothing about the worker taking it.
   */
  sendConnection(msg: Extract<ToWorker, { cs: 'conn' }>, socket: net.Socket, onError: () => void): void {
    if (this.phase === 'exited' || !this.worker.isConnected()) return void process.nextTick(onError);
    this.worker.send(msg, socket as never, { keepOpen: true }, (err: Error | null) => {
      if (err) onError();
    });
  }

  kill(signal: NodeJS.Signals): void {
    if (this.phase !== 'exited') this.worker.process.kill(signal);
  }

  /**
   * Graceful retirement: the worker stops accepting and finishes in-flight requests. With `move` (another worker
   * is ready) it gives its keep-alive connections back to the primary as each falls idle, so clients keep them;
   * otherwise it answers with `Connection: close` and closes idle ones. Then it reports `drained` and gets
   * SIGTERM; SIGKILL after `killTimeout`.
   */
  retire(killTimeout: number, move = false): Promise<ExitInfo> {
    if (this.phase !== 'exited' && this.phase !== 'retiring') {
      this.phase = 'retiring';
      this.send({ cs: 'retire', move }, () => this.kill('SIGTERM'));
      const timer = setTimeout(() => {
        if (this.phase !== 'exited') this.failReason = `still running ${killTimeout} ms after retirement (killTimeout): killed`;
        this.kill('SIGKILL');
      }, killTimeout);
      void this.exited.then(() => clearTimeout(timer));
    }
    return this.exited;
  }

  /** Memory, request count and figures, asked on demand (no periodic chatter). Undefined if the worker does not answer. */
  stats(timeoutMs = 1000): Promise<WorkerStats | undefined> {
    return this.#ask((id) => ({ cs: 'stats', id }), timeoutMs) as Promise<WorkerStats | undefined>;
  }

  /** The worker's prom-client metrics as JSON (empty unless metrics are on); undefined if it does not answer. */
  metrics(timeoutMs = 1000): Promise<unknown[] | undefined> {
    return this.#ask((id) => ({ cs: 'metrics', id }), timeoutMs) as Promise<unknown[] | undefined>;
  }

  #ask(question: (id: number) => ToWorker, timeoutMs: number): Promise<unknown> {
    if (this.phase === 'exited') return Promise.resolve(undefined);
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), timeoutMs);
      const done = (answer: unknown) => {
        clearTimeout(timer);
        this.#asked.delete(id);
        resolve(answer);
      };
      this.#asked.set(id, done);
      this.send(question(id), () => done(undefined));
    });
  }
}

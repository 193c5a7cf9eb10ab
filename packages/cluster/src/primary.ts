import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import { clusterEnv, slotEnv } from '@cluster-session/core';
import { rank } from '@cluster-session/hash';
import { startControlServer } from './control.ts';
import { ClusterConfigError, ClusterStartError, ClusterStoppedError } from './errors.ts';
import { backoffDelay, type ResolvedOptions } from './options.ts';
import type { Cluster, ReloadReport, SlotState, SlotStatus } from './types.ts';
import { Handoff } from './handoff.ts';
import { startMetricsServer, type MetricsServer } from './metrics.ts';
import { RoundRobinListeners } from './round-robin.ts';
import { primaryLine } from './output.ts';
import { createStickyRouter } from './sticky.ts';
import { WorkerProcess, type FatalReport, type WorkerHooks } from './worker-process.ts';

interface Slot {
  id: number;
  worker: WorkerProcess | undefined;
  restarts: number;
  consecutive: number;
  timer: NodeJS.Timeout | undefined;
  nextStartAt: number | undefined;
  parked: boolean;
  lastExit: string | undefined;
}

export class ClusterPrimary implements Cluster {
  readonly name: string;
  readonly controlPath: string | undefined;
  readonly #o: ResolvedOptions;
  readonly #slots: Slot[];
  readonly #live = new Set<WorkerProcess>();
  readonly #env: Record<string, string>;
  readonly #line: (message: string) => string;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #ops: Promise<unknown> = Promise.resolve();
  #reloadRunning: Promise<ReloadReport> | undefined;
  #reloadQueued: Promise<ReloadReport> | undefined;
  #router: net.Server | undefined;
  readonly #handoff = new Handoff();
  readonly #rr: RoundRobinListeners | undefined;
  readonly #hooks: WorkerHooks;
  /** Rolling reloads run since start, by outcome (`cluster_session_reloads_total`). */
  readonly reloads = { ok: 0, aborted: 0 };
  #control: net.Server | undefined;
  #metrics: MetricsServer | undefined;
  #memTimer: NodeJS.Timeout | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  /** Until the first workers are up: the first configuration error a worker reports ends the start. */
  #onStartFatal: ((report: FatalReport) => void) | undefined;

  constructor(o: ResolvedOptions) {
    this.#o = o;
    this.name = o.name;
    this.controlPath = o.control || undefined;
    this.#slots = Array.from({ length: o.workers }, (_, id) => ({
      id, worker: undefined, restarts: 0, consecutive: 0, timer: undefined, nextStartAt: undefined, parked: false, lastExit: undefined,
    }));
    // What every worker gets: the app's extra environment, then the contract (core's worker-env.ts).
    const env: Record<string, string> = {
      ...o.env,
      ...clusterEnv({
        workers: o.workers,
        sticky: o.sticky !== undefined,
        metrics: o.metrics !== undefined,
        name: o.name,
        waitReady: o.waitReady,
        // 'rr': the primary deals PORT's connections itself, with acknowledgement (round-robin.ts).
        policy: o.schedulingPolicy,
        host: o.sticky?.host,
        port: o.sticky?.port ?? o.port,
        // Generated once per primary, so every worker (restarted ones too) signs and verifies with the same key.
        secret: o.generateSecret ? randomBytes(32).toString('base64url') : undefined,
      }),
    };
    // The app's logger follows the cluster's format unless the app's own environment chose one.
    if (o.env.LOG_FORMAT === undefined) env.LOG_FORMAT = o.logFormat;
    this.#env = env;
    this.#line = primaryLine(o.logFormat, o.name);
    if (!o.sticky && o.schedulingPolicy === 'rr') this.#rr = new RoundRobinListeners(this.#handoff);
    this.#hooks = {
      conn: (wp, id, taken) => (taken ? this.#handoff.acked(wp, id) : this.#handoff.declined(wp, id)),
      listen: (wp, msg) => {
        if (!this.#rr) return;
        void this.#rr.listen(wp, msg).then((reply) => wp.send(reply));
      },
      disconnected: (wp) => this.#handoff.workerGone(wp),
      fatal: (_wp, report) => this.#onStartFatal?.(report),
    };
  }

  log(line: string): void {
    if (this.#o.log) this.#o.log(line);
    else process.stderr.write(`${this.#line(line)}\n`);
  }

  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      await this.#forceStop();
      throw err;
    }
  }

  async #start(): Promise<void> {
    const o = this.#o;
    // The primary stays up while it supervises, even with every slot parked or backing off.
    this.#keepAlive = setInterval(() => {}, 1 << 30);
    if (o.control) {
      this.#control = await startControlServer(o.control, (command) => this.#onControl(command));
      // However the process ends (process.exit in a signal handler included), the socket goes with it.
      process.once('exit', () => this.#closeControl());
    }
    if (o.sticky) {
      const { port, host, trustProxy } = o.sticky;
      this.#router = createStickyRouter({ port, host, trustProxy, route: (key, socket, head) => this.#route(key, socket, head) });
      await new Promise<void>((resolve, reject) => {
        this.#router!.once('error', (err: NodeJS.ErrnoException) =>
          reject(new ClusterStartError(`sticky mode cannot listen on port ${port}: ${err.code ?? err.message}; choose a free port (--port / sticky.port)`, { cause: err })),
        );
        this.#router!.listen(port, host, () => resolve());
      });
    }
    if (o.metrics) {
      this.#metrics = await startMetricsServer(this, o.metrics);
      this.log(`metrics on ${this.#metrics.url}/metrics, workers' status on ${this.#metrics.url}/status.json`);
    }
    // Stopped while the sockets were being set up (a signal right at start): fork nothing.
    if (this.#stopping) throw new ClusterStoppedError('stopped during start');
    const first = this.#slots.map((slot) => this.#startSlot(slot));
    // Every worker runs the same code with the same environment: one configuration error means all would fail.
    const fatal = new Promise<FatalReport>((resolve) => (this.#onStartFatal = resolve));
    const outcome = await Promise.race([Promise.allSettled(first.map((wp) => wp.ready)), fatal]);
    this.#onStartFatal = undefined;
    if (!Array.isArray(outcome)) {
      // The app's own error (its code says which package refused what) is the cause; the CLI shows its code.
      const cause = Object.assign(new Error(outcome.message), { code: outcome.code });
      throw new ClusterConfigError(`the app's configuration is invalid (every worker would fail the same way, so the cluster did not start): ${outcome.message}`, { cause });
    }
    const results = outcome;
    const readyCount = results.filter((r) => r.status === 'fulfilled').length;
    if (readyCount === 0) {
      const reasons = [...new Set(results.map((r) => (r.status === 'rejected' ? (r.reason as Error).message : '')))].join('; ');
      throw new ClusterStartError(`no worker became ready (${reasons}); check the app's output above`);
    }
    if (o.maxMemory !== undefined) {
      this.#memTimer = setInterval(() => void this.#checkMemory(), o.memoryCheckInterval);
      this.#memTimer.unref();
    }
    this.log(`${readyCount}/${o.workers} workers ready${o.sticky ? ` (sticky on port ${o.sticky.port})` : ''}`);
  }

  #spawn(slot: number): WorkerProcess {
    const wp = new WorkerProcess(slot, { ...this.#env, ...slotEnv(slot) }, this.#o.readyTimeout, this.#o.waitReady, this.#hooks, this.#o.logFormat);
    this.#live.add(wp);
    void wp.exited.then((info) => {
      this.#live.delete(wp);
      const s = this.#slots[wp.slot]!;
      if (s.worker !== wp) return; // a reload candidate or a retired worker: whoever started it handles it
      s.worker = undefined;
      if (!this.#stopping) this.#crashed(s, wp, info.reason);
    });
    return wp;
  }

  #startSlot(slot: Slot): WorkerProcess {
    slot.timer = undefined;
    slot.nextStartAt = undefined;
    const wp = this.#spawn(slot.id);
    slot.worker = wp;
    wp.ready.then(
      () => slot.worker === wp && this.log(`slot ${slot.id} ready (pid ${wp.pid})`),
      () => {},
    );
    return wp;
  }

  #crashed(slot: Slot, wp: WorkerProcess, reason: string): void {
    const uptime = wp.readyAt ? Date.now() - wp.readyAt : 0;
    if (uptime >= this.#o.backoff.stableAfter) slot.consecutive = 0;
    slot.consecutive++;
    slot.restarts++;
    slot.lastExit = reason;
    if (wp.fatal) {
      slot.parked = true;
      this.log(`slot ${slot.id} (pid ${wp.pid}) ${reason}; PARKED: a configuration error repeats on every restart; fix it and reload`);
      return;
    }
    if (slot.consecutive > this.#o.maxRestarts) {
      slot.parked = true;
      this.log(
        `slot ${slot.id} (pid ${wp.pid}) ${reason}; PARKED after ${slot.consecutive} consecutive crashes ` +
          `(maxRestarts ${this.#o.maxRestarts}); the other slots keep serving; fix the app and reload to revive it`,
      );
      return;
    }
    const delay = backoffDelay(slot.consecutive, this.#o.backoff);
    slot.nextStartAt = Date.now() + delay;
    this.log(`slot ${slot.id} (pid ${wp.pid}) ${reason}; restarting in ${delay} ms (crash ${slot.consecutive} in a row)`);
    slot.timer = setTimeout(() => this.#startSlot(slot), delay);
  }

  /** Start a new worker for the slot, wait until ready, then retire the old one. The old one stays on failure. */
  async #replace(slot: Slot): Promise<{ ok: true } | { ok: false; reason: string }> {
    const candidate = this.#spawn(slot.id);
    try {
      await candidate.ready;
    } catch (err) {
      await candidate.exited;
      return { ok: false, reason: (err as Error).message };
    }
    if (this.#stopping) {
      await candidate.retire(this.#o.killTimeout);
      return { ok: false, reason: 'the cluster is stopping' };
    }
    const old = slot.worker;
    clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.nextStartAt = undefined;
    slot.parked = false;
    slot.consecutive = 0;
    slot.worker = candidate;
    this.log(`slot ${slot.id} ready (pid ${candidate.pid})${old ? `, retiring pid ${old.pid}` : ''}`);
    if (old) {
      const info = await old.retire(this.#o.killTimeout);
      this.log(`pid ${old.pid} retired (${info.signal === 'SIGTERM' && !old.failReason ? 'drained' : info.reason})`);
    }
    return { ok: true };
  }

  /** Reloads and memory replacements run one at a time, never interleaved. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#ops.then(fn, fn);
    this.#ops = run.catch(() => {});
    return run;
  }

  reload(): Promise<ReloadReport> {
    if (this.#stopping) return Promise.reject(new ClusterStoppedError('cannot reload: the cluster is stopping'));
    if (this.#reloadRunning) {
      if (!this.#reloadQueued) {
        this.log('reload requested while one is running: queued, it starts when the current one ends');
        this.#reloadQueued = this.#reloadRunning.catch(() => {}).then(() => {
          this.#reloadQueued = undefined;
          if (this.#stopping) throw new ClusterStoppedError('cannot reload: the cluster is stopping');
          return this.#runReload();
        });
      }
      return this.#reloadQueued;
    }
    return this.#runReload();
  }

  #runReload(): Promise<ReloadReport> {
    const p = this.#exclusive(() => this.#doReload());
    this.#reloadRunning = p;
    p.finally(() => {
      if (this.#reloadRunning === p) this.#reloadRunning = undefined;
    }).catch(() => {});
    return p;
  }

  async #doReload(): Promise<ReloadReport> {
    const started = Date.now();
    const replaced: number[] = [];
    this.log(`reload: replacing ${this.#slots.length} workers one at a time`);
    for (const slot of this.#slots) {
      const result = this.#stopping ? { ok: false as const, reason: 'the cluster is stopping' } : await this.#replace(slot);
      if (!result.ok) {
        this.reloads.aborted++;
        this.log(`reload ABORTED at slot ${slot.id}: new worker ${result.reason}; the remaining old workers keep serving`);
        return { ok: false, replaced, failed: { slot: slot.id, reason: result.reason }, durationMs: Date.now() - started };
      }
      replaced.push(slot.id);
    }
    const report = { ok: true, replaced, durationMs: Date.now() - started };
    this.reloads.ok++;
    this.log(`reload complete: ${replaced.length} workers replaced in ${report.durationMs} ms`);
    return report;
  }

  async #checkMemory(): Promise<void> {
    if (this.#stopping || this.#reloadRunning) return;
    for (const slot of this.#slots) {
      const wp = slot.worker;
      if (!wp || wp.phase !== 'ready') continue;
      const stats = await wp.stats();
      if (!stats || stats.rss <= this.#o.maxMemory! || slot.worker !== wp || this.#stopping) continue;
      const mb = (n: number) => `${Math.round(n / 1048576)} MB`;
      this.log(`slot ${slot.id} (pid ${wp.pid}) uses ${mb(stats.rss)} > maxMemory ${mb(this.#o.maxMemory!)}: replacing`);
      await this.#exclusive(async () => {
        if (slot.worker !== wp || this.#stopping) return;
        const result = await this.#replace(slot);
        if (!result.ok) this.log(`slot ${slot.id}: replacement failed (${result.reason}); pid ${wp.pid} keeps serving`);
      });
    }
  }

  #route(key: string, socket: net.Socket, head: Buffer | undefined): boolean {
    const nodes = this.#slots.filter((s) => s.worker?.phase === 'ready').map((s) => ({ id: String(s.id), worker: s.worker! }));
    if (nodes.length === 0) return false;
    // Rendezvous order: the owner first, then who takes its clients while it is down. A worker that dies before
    // taking the socket (or declines it) passes it to the next, so the client is served rather than dropped.
    this.#handoff.deal(socket, head, rank(key, nodes).map((n) => n.worker));
    return true;
  }

  /** Each slot's state, without asking any worker (the metrics' `cluster_session_workers{state}`). */
  slotStates(): Array<{ slot: number; state: SlotState; restarts: number; worker: WorkerProcess | undefined }> {
    return this.#slots.map((slot) => {
      const wp = slot.worker;
      let state: SlotState;
      if (this.#stopping) state = wp ? 'stopping' : 'stopped';
      else if (slot.parked) state = 'parked';
      else if (slot.timer) state = 'backoff';
      else state = wp?.phase === 'ready' ? 'ready' : wp ? 'starting' : 'stopped';
      return { slot: slot.id, state, restarts: slot.restarts, worker: wp };
    });
  }

  async status(): Promise<SlotStatus[]> {
    const now = Date.now();
    return Promise.all(
      this.slotStates().map(async ({ slot: id, state, restarts, worker: wp }): Promise<SlotStatus> => {
        const slot = this.#slots[id]!;
        const stats = wp ? await wp.stats() : undefined;
        return {
          slot: id,
          pid: wp?.pid ?? null,
          state,
          uptime: wp ? now - wp.startedAt : 0,
          restarts,
          memory: stats?.rss ?? null,
          requests: stats?.requests ?? null,
          ...(slot.nextStartAt !== undefined ? { nextRestartIn: Math.max(0, slot.nextStartAt - now) } : {}),
          ...(slot.lastExit !== undefined ? { lastExit: slot.lastExit } : {}),
          ...stats?.figures,
        };
      }),
    );
  }

  #onControl(command: 'status' | 'reload' | 'stop'): Promise<unknown> {
    if (command === 'status') return this.status();
    if (command === 'reload') return this.reload();
    // Answer first, then stop: the caller learns the stop began; it watches the socket disappear for the end.
    setImmediate(() => void this.stop().then(() => this.#afterControlStop?.()));
    return Promise.resolve({ stopping: true });
  }

  /** Set by the signal/CLI layer: what to do once a stop requested over the control socket finished. */
  #afterControlStop: (() => void) | undefined;
  onStoppedByControl(fn: () => void): void {
    this.#afterControlStop = fn;
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#doStop();
    return this.#stopped;
  }

  async #doStop(): Promise<void> {
    this.#stopping = true;
    this.log(`stopping: draining ${this.#live.size} workers (killTimeout ${this.#o.killTimeout} ms)`);
    this.#clearTimers();
    this.#router?.close();
    this.#rr?.close();
    await Promise.all([...this.#live].map((wp) => wp.retire(this.#o.killTimeout)));
    this.#closeControl();
    this.log('stopped');
  }

  /** Stop now: SIGKILL every worker (second Ctrl-C, failed start). */
  async #forceStop(): Promise<void> {
    this.#stopping = true;
    this.#clearTimers();
    this.#router?.close();
    this.#rr?.close();
    for (const wp of this.#live) wp.kill('SIGKILL');
    await Promise.all([...this.#live].map((wp) => wp.exited));
    this.#closeControl();
  }

  forceStop(): Promise<void> {
    this.log('stopping NOW: killing every worker');
    return this.#forceStop();
  }

  #clearTimers(): void {
    this.#metrics?.close();
    clearInterval(this.#memTimer);
    clearInterval(this.#keepAlive);
    for (const slot of this.#slots) clearTimeout(slot.timer);
  }

  #closeControl(): void {
    if (!this.#control) return;
    this.#control.close();
    this.#control = undefined;
    if (this.#o.control) fs.rmSync(this.#o.control, { force: true });
  }
}


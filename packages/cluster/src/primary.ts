import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import { clusterEnv, slotEnv } from '@cluster-session/core';
import { rank } from '@cluster-session/hash';
import { controlPath, startControlServer, type ControlBody, type ControlCommand } from './control.ts';
import { ClusterConfigError, ClusterStartError, ClusterStoppedError } from './errors.ts';
import { backoffDelay, resolveOptions, type ClusterOptions, type ResolvedOptions } from './options.ts';
import { setupWorkers } from './setup.ts';
import type { Cluster, ReloadReport, ReloadUpdate, ScaleReport, SlotState, SlotStatus } from './types.ts';
import { Handoff } from './handoff.ts';
import { startMetricsServer, type MetricsServer } from './metrics.ts';
import { inTurn, RoundRobinListeners } from './round-robin.ts';
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

/** Options bound to the primary's sockets and identity: a reload cannot change them. */
const FIXED = ['name', 'port', 'sticky', 'schedulingPolicy', 'control', 'metrics'] as const;

function newSlot(id: number): Slot {
  return { id, worker: undefined, restarts: 0, consecutive: 0, timer: undefined, nextStartAt: undefined, parked: false, lastExit: undefined };
}

export class ClusterPrimary implements Cluster {
  readonly name: string;
  readonly controlPath: string | undefined;
  /** Replaced by a reload that brought new options (reconfigure); the sockets' options never change. */
  #o: ResolvedOptions;
  readonly #slots: Slot[];
  readonly #live = new Set<WorkerProcess>();
  #env: Record<string, string> = {};
  readonly #line: (message: string) => string;
  /** The development secret generated once (when none was given), kept across reloads: sessions survive them. */
  readonly #secret: string | undefined;
  /** The environment `reload --update-env` sent, waiting for the reload that applies it. */
  #pendingEnv: Record<string, string> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #ops: Promise<unknown> = Promise.resolve();
  #reloadRunning: Promise<ReloadReport> | undefined;
  #reloadQueued: Promise<ReloadReport> | undefined;
  #router: net.Server | undefined;
  readonly #handoff = new Handoff();
  #moveTurn = 0;
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
    this.#slots = Array.from({ length: o.workers }, (_, id) => newSlot(id));
    // Generated once per primary, so every worker (restarted and reloaded ones too) signs and verifies with the same key.
    this.#secret = o.generateSecret ? randomBytes(32).toString('base64url') : undefined;
    this.#buildEnv();
    this.#line = primaryLine(o.logFormat, o.name);
    if (!o.sticky && o.schedulingPolicy === 'rr') this.#rr = new RoundRobinListeners(this.#handoff);
    this.#hooks = {
      conn: (wp, id, taken) => (taken ? this.#handoff.acked(wp, id) : this.#handoff.declined(wp, id)),
      listen: (wp, msg) => {
        if (!this.#rr) return;
        void this.#rr.listen(wp, msg).then((reply) => wp.send(reply));
      },
      move: (wp, msg, handle) => this.#handoff.takeBack(wp, msg, handle, this.#stopping ? [] : this.#takersFor(msg.key)),
      disconnected: (wp) => this.#handoff.workerGone(wp),
      fatal: (_wp, report) => this.#onStartFatal?.(report),
    };
  }

  /** What every worker gets: the app's extra environment, then the contract (core's worker-env.ts). */
  #buildEnv(): void {
    const o = this.#o;
    const env: Record<string, string> = {
      ...o.env,
      ...clusterEnv({
        workers: this.#slots.length,
        sticky: o.sticky !== undefined,
        metrics: o.metrics !== undefined,
        name: o.name,
        waitReady: o.waitReady,
        // 'rr': the primary deals PORT's connections itself, with acknowledgement (round-robin.ts).
        policy: o.schedulingPolicy,
        host: o.sticky?.host,
        port: o.sticky?.port ?? o.port,
        secret: o.generateSecret ? this.#secret : undefined,
      }),
    };
    // The app's logger follows the cluster's format unless the app's own environment chose one.
    if (o.env.LOG_FORMAT === undefined) env.LOG_FORMAT = o.logFormat;
    this.#env = env;
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
      this.#control = await startControlServer(o.control, (command, body) => this.#onControl(command, body));
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
    this.#watchMemory();
    this.log(`${readyCount}/${o.workers} workers ready${o.sticky ? ` (sticky on port ${o.sticky.port})` : ''}`);
  }

  #watchMemory(): void {
    clearInterval(this.#memTimer);
    this.#memTimer = undefined;
    if (this.#o.maxMemory === undefined) return;
    this.#memTimer = setInterval(() => void this.#checkMemory(), this.#o.memoryCheckInterval);
    this.#memTimer.unref();
  }

  #spawn(slot: number): WorkerProcess {
    const wp = new WorkerProcess(slot, { ...this.#env, ...slotEnv(slot) }, this.#o.readyTimeout, this.#o.waitReady, this.#hooks, this.#o.logFormat);
    this.#live.add(wp);
    void wp.exited.then((info) => {
      this.#live.delete(wp);
      const s = this.#slots[wp.slot];
      // A reload candidate, a retired worker or a slot scaled away: whoever started or removed it handles it.
      if (s === undefined || s.worker !== wp) return;
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
      const info = await old.retire(this.#o.killTimeout, true);
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

  reload(update: ReloadUpdate = {}): Promise<ReloadReport> {
    if (this.#stopping) return Promise.reject(new ClusterStoppedError('cannot reload: the cluster is stopping'));
    // Taken by the next reload to start (this one, or the queued one): a later --update-env replaces an earlier one.
    if (update.env) this.#pendingEnv = update.env;
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

  /**
   * The new options and environment, before any worker is replaced: a refused one throws and the running
   * workers stay as they are. The sockets' options (and the name) cannot change under running clients.
   */
  async #prepare(): Promise<number | undefined> {
    const env = this.#pendingEnv;
    this.#pendingEnv = undefined;
    let next = this.#o;
    if (this.#o.reconfigure) {
      let input: object;
      try {
        input = await this.#o.reconfigure();
      } catch (err) {
        throw new ClusterConfigError(`reload refused, the running workers stay: ${(err as Error).message}`);
      }
      // Validated against the environment the new workers get, as at start.
      const base = env ?? process.env;
      try {
        next = resolveOptions({ ...(input as ClusterOptions), reconfigure: this.#o.reconfigure, log: this.#o.log, signals: this.#o.signals }, base, controlPath);
      } catch (err) {
        throw new ClusterConfigError(`reload refused, the running workers stay: ${(err as Error).message.replace(/^startCluster: /, '')}`);
      }
      for (const key of FIXED) {
        const [was, now] = [JSON.stringify(this.#o[key]), JSON.stringify(next[key])];
        if (was !== now) throw new ClusterConfigError(`reload refused, the running workers stay: option ${key} cannot change while the cluster runs (${was} -> ${now}); restart the cluster to change it`);
      }
    }
    if (env) {
      // The caller's environment becomes the primary's: node:cluster forks with process.env under the workers' env.
      for (const key of Object.keys(process.env)) if (!(key in env)) delete process.env[key];
      Object.assign(process.env, env);
      this.log(`reload: environment updated from the caller (${Object.keys(env).length} variables)`);
    }
    // Only a changed `workers` resizes: a count set by scale() stays until the options themselves change it.
    const resize = next.workers !== this.#o.workers ? next.workers : undefined;
    if (next !== this.#o) {
      this.#o = next;
      setupWorkers(next);
      this.#watchMemory();
    }
    this.#buildEnv();
    return resize;
  }

  async #doReload(): Promise<ReloadReport> {
    const started = Date.now();
    const replaced: number[] = [];
    const workers = await this.#prepare();
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
    // A new worker count from the options: the slots beyond it drain, or new ones start.
    if (workers !== undefined && workers !== this.#slots.length) {
      const scaled = await this.#resize(workers);
      if (!scaled.ok) {
        this.reloads.aborted++;
        return { ok: false, replaced, failed: scaled.failed, durationMs: Date.now() - started };
      }
    }
    const report = { ok: true, replaced, durationMs: Date.now() - started };
    this.reloads.ok++;
    this.log(`reload complete: ${replaced.length} workers replaced in ${report.durationMs} ms`);
    return report;
  }

  /** `cluster-session scale N`: through the reload path's queue, so it never interleaves with a reload. */
  scale(workers: number): Promise<ScaleReport> {
    if (this.#stopping) return Promise.reject(new ClusterStoppedError('cannot scale: the cluster is stopping'));
    if (!Number.isInteger(workers) || workers < 1 || workers > 1024) {
      return Promise.reject(new ClusterConfigError(`scale: ${workers} is not a worker count; expected an integer from 1 to 1024`));
    }
    return this.#exclusive(() => this.#resize(workers));
  }

  /**
   * Up: new slots start one at a time, each ready before the next. Down: the highest slots leave the routing at
   * once and drain as a reload's old workers do. The workers' count (CLUSTER_SESSION_WORKERS) follows for the
   * workers started from now on.
   */
  async #resize(workers: number): Promise<ScaleReport> {
    const started = Date.now();
    const from = this.#slots.length;
    const report: ScaleReport = { ok: true, from, to: workers, started: [], retired: [], durationMs: 0 };
    if (workers === from) return { ...report, durationMs: 0 };
    this.log(`scale: ${from} -> ${workers} workers`);
    if (workers > from) {
      for (let id = from; id < workers; id++) {
        const slot = newSlot(id);
        this.#slots.push(slot);
        this.#buildEnv();
        const wp = this.#startSlot(slot);
        try {
          await wp.ready;
          report.started.push(id);
        } catch (err) {
          // The slot stays (restarting with backoff, as any crashed slot): the count asked for is kept.
          this.log(`scale stopped at slot ${id}: new worker ${(err as Error).message}`);
          return { ...report, ok: false, failed: { slot: id, reason: (err as Error).message }, durationMs: Date.now() - started };
        }
      }
    } else {
      const gone = this.#slots.splice(workers);
      this.#buildEnv();
      await Promise.all(
        gone.map(async (slot) => {
          clearTimeout(slot.timer);
          slot.timer = undefined;
          const wp = slot.worker;
          slot.worker = undefined;
          report.retired.push(slot.id);
          if (wp) {
            const info = await wp.retire(this.#o.killTimeout, this.#slots.some((s) => s.worker?.phase === 'ready'));
            this.log(`slot ${slot.id} (pid ${wp.pid}) retired (${info.signal === 'SIGTERM' && !wp.failReason ? 'drained' : info.reason})`);
          }
        }),
      );
      report.retired.sort((a, b) => a - b);
    }
    this.log(`scale complete: ${workers} workers in ${Date.now() - started} ms`);
    return { ...report, durationMs: Date.now() - started };
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

  /** The ready workers as rendezvous nodes: the slot is the node, so a reload keeps every client's mapping. */
  #readyNodes(): Array<{ id: string; worker: WorkerProcess }> {
    return this.#slots.filter((s) => s.worker?.phase === 'ready').map((s) => ({ id: String(s.id), worker: s.worker! }));
  }

  #route(key: string, socket: net.Socket, head: Buffer | undefined): boolean {
    const nodes = this.#readyNodes();
    if (nodes.length === 0) return false;
    // Rendezvous order: the owner first, then who takes its clients while it is down. A worker that dies before
    // taking the socket (or declines it) passes it to the next, so the client is served rather than dropped.
    this.#handoff.deal(socket, head, rank(key, nodes).map((n) => n.worker), { key });
    return true;
  }

  /**
   * Who takes a connection a retiring worker gives back: in sticky mode the key's owner first (the slot's new
   * worker, after a reload), otherwise the ready workers in turn.
   */
  #takersFor(key: string | undefined): WorkerProcess[] {
    // The retiring worker is not among them: it stopped being `ready` when its retirement began.
    const nodes = this.#readyNodes();
    if (this.#o.sticky && key !== undefined) return rank(key, nodes).map((n) => n.worker);
    return inTurn(nodes, this.#moveTurn++).map((n) => n.worker);
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

  #onControl(command: ControlCommand, body: ControlBody): Promise<unknown> {
    if (command === 'status') return this.status();
    if (command === 'reload') return this.reload(body.env ? { env: body.env } : {});
    if (command === 'scale') return this.scale(body.workers ?? NaN);
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


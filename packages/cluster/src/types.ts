import type { WorkerFigures } from './worker-stats.ts';

export type SlotState = 'starting' | 'ready' | 'backoff' | 'parked' | 'stopping' | 'stopped';

/** A slot as `status()` reports it; the figures (CPU, heap, event-loop delay, latency, store) when its worker answered. */
export interface SlotStatus extends Partial<WorkerFigures> {
  slot: number;
  pid: number | null;
  state: SlotState;
  /** Milliseconds since the current worker started (0 when none). */
  uptime: number;
  /** Crashes of this slot since the cluster started. */
  restarts: number;
  /** Resident set size in bytes, null when the worker did not answer. */
  memory: number | null;
  /** Requests served by the current worker, null when it did not answer. */
  requests: number | null;
  /** Milliseconds until the next restart attempt, in state 'backoff'. */
  nextRestartIn?: number;
  /** Why the last worker of this slot went away, if it did. */
  lastExit?: string;
}

/** What a reload may bring besides new workers. */
export interface ReloadUpdate {
  /**
   * The whole environment the new workers start from (`cluster-session reload --update-env` sends the caller's):
   * it replaces the primary's own, so a variable unset by the caller is unset for the new workers too.
   */
  env?: Record<string, string>;
}

export interface ScaleReport {
  ok: boolean;
  /** Worker count before and after. */
  from: number;
  to: number;
  /** Slots started (scaling up) or retired (scaling down). */
  started: number[];
  retired: number[];
  /** When not ok: the slot whose new worker failed, and why (the slots started before it stay). */
  failed?: { slot: number; reason: string };
  durationMs: number;
}

export interface ReloadReport {
  ok: boolean;
  /** Slots whose worker was replaced, in order. */
  replaced: number[];
  /** When not ok: the slot whose new worker failed, and why. Workers not yet replaced keep running. */
  failed?: { slot: number; reason: string };
  durationMs: number;
}

export interface Cluster {
  readonly name: string;
  /** The control socket path, or undefined when disabled. */
  readonly controlPath: string | undefined;
  /**
   * Rolling reload, one slot at a time, with the options `reconfigure` returns (if given) and `update.env`.
   * A reload requested while one runs is queued (one at most).
   */
  reload(update?: ReloadUpdate): Promise<ReloadReport>;
  /** Changes the worker count at runtime, one worker at a time, queued with reloads: new slots start ready, removed ones drain. */
  scale(workers: number): Promise<ScaleReport>;
  /** Graceful stop: drain every worker (killTimeout bounds it). Idempotent. */
  stop(): Promise<void>;
  status(): Promise<SlotStatus[]>;
}

export interface StartedCluster extends Cluster {
  /** Resolves when the cluster has stopped (by stop(), a signal, or `cluster-session stop`). */
  readonly stopped: Promise<void>;
}

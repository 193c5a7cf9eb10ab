import type { WorkerFigures } from './worker-stats.ts';

/** IPC messages between primary and workers. Tagged with `cs` so apps using process.send are not confused. */
export type ToWorker =
  /**
   * Stop accepting and leave. `move`: another worker is ready, so hand idle keep-alive connections back to the
   * primary (`move`) instead of closing them; without it (stop, no worker left) they are closed as before.
   */
  | { cs: 'retire'; move: boolean }
  | { cs: 'stats'; id: number }
  /** The primary's /metrics scrape: answer with this worker's prom-client JSON. */
  | { cs: 'metrics'; id: number }
  /**
   * A connection handed over (the socket travels with the message) with the bytes the primary already read
   * (base64), if any. The worker takes it only until `by` (monotonicMs()) and answers conn-ack or conn-nack.
   */
  | { cs: 'conn'; id: number; by: number; head?: string; key?: string; port?: number }
  /** Answer to a worker's `move`: taken (the worker closes its copy) or not (it keeps the connection). */
  | { cs: 'moved'; id: number; taken: boolean }
  /** Answer to `listen`: the primary accepts on this address and deals the connections. */
  | { cs: 'listening'; id: number; address: string; family: string; port: number }
  | { cs: 'listen-error'; id: number; code: string; message: string };

export type ToPrimary =
  | { cs: 'ready' }
  | { cs: 'drained' }
  | { cs: 'stats'; id: number; rss: number; requests: number; figures: WorkerFigures }
  | { cs: 'metrics'; id: number; metrics: unknown[] }
  | { cs: 'conn-ack'; id: number }
  | { cs: 'conn-nack'; id: number }
  /**
   * A retiring worker gives an idle keep-alive connection back (the socket travels with the message): the
   * primary deals it to a ready worker, unless it arrives after `by` (monotonicMs()). `port` is the address the
   * client connected to (the receiving worker finds its server by it); `key` is the sticky key it was dealt with.
   */
  | { cs: 'move'; id: number; by: number; port: number; key?: string }
  /** The app threw a configuration error at startup (fatal.ts): restarting would fail the same way. */
  | { cs: 'fatal'; code: string; message: string }
  /** Round-robin mode: the app listens on PORT; the primary binds it (once) and deals connections with acks. */
  | { cs: 'listen'; id: number; port: number; host?: string };

/** A process takes a socket handed to it only within this window after it was sent; later it declines. */
export const ACCEPT_WINDOW_MS = 1_000;
/**
 * The sender of a socket acts on a missing answer only after the receiver's window closed plus this margin, so
 * a socket is never owned by two processes (one that took it late, one that gave up waiting).
 */
export const ACK_MARGIN_MS = 500;

export function isToPrimary(msg: unknown): msg is ToPrimary {
  return msg !== null && typeof msg === 'object' && typeof (msg as { cs?: unknown }).cs === 'string';
}

/**
 * Milliseconds on the system's monotonic clock, comparable between processes on one machine (CLOCK_MONOTONIC;
 * wall-clock time could jump and let a worker take a socket the primary already gave to another).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/** IPC messages between primary and workers. Tagged with `cs` so apps using process.send are not confused. */
export type ToWorker =
  | { cs: 'retire' }
  | { cs: 'stats'; id: number }
  /** A sticky connection handed over with the bytes the primary already read (base64), if any. */
  | { cs: 'conn'; head?: string };

export type ToPrimary =
  | { cs: 'ready' }
  | { cs: 'drained' }
  | { cs: 'stats'; id: number; rss: number; requests: number };

export function isToPrimary(msg: unknown): msg is ToPrimary {
  return msg !== null && typeof msg === 'object' && typeof (msg as { cs?: unknown }).cs === 'string';
}

import dc from 'node:diagnostics_channel';

/**
 * The diagnostics channels the suite publishes on (undici's way: a library publishes, whoever owns the metrics
 * subscribes). The session package reports its store calls here without depending on a metrics library; the
 * cluster's worker side (or an app on its own) turns them into figures. Publishing costs a property read while
 * nobody subscribes.
 */
export const CHANNELS = {
  /** One store call of a request's session, finished: a `StoreOperation`. */
  storeOperation: 'cluster-session:store:operation',
  /** A request answered 503 because the session store is unavailable: a `StoreUnavailableAnswer`. */
  storeUnavailable: 'cluster-session:store:unavailable',
} as const;

export interface StoreOperation {
  /** `redis`, `mongo`, `sqlite` or `memory`. */
  store: string;
  /** `get`, `set`, `touch` or `destroy`. */
  operation: string;
  /** Wall time of the call in seconds, from the call to its answer (or to the timeout). */
  seconds: number;
  /** False when the call failed or timed out. */
  ok: boolean;
  /** The failure, when not ok (a store's own message, never session data). */
  error?: string | undefined;
}

export interface StoreUnavailableAnswer {
  /** The error code the client got (`CS_ERR_SESSION_STORE_UNAVAILABLE`). */
  code: string;
  reason: string;
}

export const storeOperationChannel = dc.channel(CHANNELS.storeOperation);
export const storeUnavailableChannel = dc.channel(CHANNELS.storeUnavailable);

import { ClusterSessionError } from '@cluster-session/core';

/** Every code this package throws or answers with (one class each, below). */
export type ClusterErrorCode =
  | 'CS_ERR_CLUSTER_CONFIG'
  | 'CS_ERR_CLUSTER_START'
  | 'CS_ERR_CLUSTER_NAME_IN_USE'
  | 'CS_ERR_CLUSTER_STOPPED'
  | 'CS_ERR_CLUSTER_NOT_RUNNING'
  | 'CS_ERR_CLUSTER_CONTROL'
  | 'CS_ERR_CLUSTER_CONTROL_TIMEOUT'
  | 'CS_ERR_CLUSTER_WORKER'
  | 'CS_ERR_CLUSTER_NO_WORKER'
  | 'CS_ERR_CLUSTER_METRICS';

/** The family of every error this package throws: a stable `code` callers can branch on. */
export class ClusterError extends ClusterSessionError<ClusterErrorCode> {
  static override readonly family = 'CS_ERR_CLUSTER_';
}

/** An option (or its environment variable / CLI flag) has a value that cannot work. */
export class ClusterConfigError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_CONFIG';
}

/** No worker became ready at startup: the cluster would serve nothing, so it refuses to start. */
export class ClusterStartError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_START';
}

/** Another primary already owns this cluster name's control socket. */
export class ClusterNameInUseError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_NAME_IN_USE';
}

/** The cluster is stopping or stopped, so the operation (reload, start) is refused. */
export class ClusterStoppedError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_STOPPED';
}

/** No primary runs under that name (no control socket, or nobody listens on it). */
export class ClusterNotRunningError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_NOT_RUNNING';
}

/** The control socket failed or answered something that is not an answer. */
export class ClusterControlError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_CONTROL';
}

/** The primary did not answer a control command in time. */
export class ClusterControlTimeoutError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_CONTROL_TIMEOUT';
}

/** A worker-side helper (`ready()`, `listen()`) was used in a way that cannot work. */
export class ClusterWorkerError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_WORKER';
}

/** No worker can take a connection the primary accepted (sticky or round-robin): answered with HTTP 503. */
export class ClusterNoWorkerError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_NO_WORKER';
  readonly status = 503;
  readonly publicMessage = 'no worker is ready to take this request';
}

const BY_CODE = new Map<string, new (message: string) => ClusterError>(
  [ClusterConfigError, ClusterStartError, ClusterNameInUseError, ClusterStoppedError, ClusterNotRunningError, ClusterControlTimeoutError, ClusterWorkerError].map(
    (c) => [c.code, c],
  ),
);

/** The error a primary reported over the control socket, as its own class again (unknown codes: ClusterControlError). */
export function errorFromControl(code: string | undefined, message: string): ClusterError {
  const Class = (code !== undefined && BY_CODE.get(code)) || ClusterControlError;
  return new Class(message);
}

/** The metrics server's own answers: a path or method it does not serve (404/405), a scrape that failed (500). */
export class ClusterMetricsError extends ClusterError {
  static override readonly code = 'CS_ERR_CLUSTER_METRICS';
}

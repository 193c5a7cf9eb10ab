/** Base class of every error this package throws: a stable `code` callers can branch on. */
export class ClusterError extends Error {
  readonly code: string;
  constructor(message: string, code: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An option (or its environment variable / CLI flag) has a value that cannot work. */
export class ClusterConfigError extends ClusterError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_CLUSTER_CONFIG', options);
  }
}

/** No worker became ready at startup: the cluster would serve nothing, so it refuses to start. */
export class ClusterStartError extends ClusterError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_CLUSTER_START', options);
  }
}

/** Another primary already owns this cluster name's control socket. */
export class ClusterNameInUseError extends ClusterError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_CLUSTER_NAME_IN_USE', options);
  }
}

/** The cluster is stopping or stopped, so the operation (reload, start) is refused. */
export class ClusterStoppedError extends ClusterError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_CLUSTER_STOPPED', options);
  }
}

/** The control socket could not be reached (no primary running under that name) or answered an error. */
export class ClusterControlError extends ClusterError {
  constructor(message: string, code = 'CS_ERR_CLUSTER_CONTROL', options?: ErrorOptions) {
    super(message, code, options);
  }
}

/** A worker-side helper (`ready()`, `listen()`) was used in a way that cannot work. */
export class ClusterWorkerError extends ClusterError {
  constructor(message: string, options?: ErrorOptions) {
    super(message, 'CS_ERR_CLUSTER_WORKER', options);
  }
}

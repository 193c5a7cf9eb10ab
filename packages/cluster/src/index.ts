export { startCluster } from './start.ts';
export type { Cluster, StartedCluster, ReloadReport, ReloadUpdate, ScaleReport, SlotStatus, SlotState } from './types.ts';
export { ready, listen } from './worker.ts';
export type { WorkerFigures, StoreFigures } from './worker-stats.ts';
export { controlPath, controlRequest, listControlNames, removeStaleControlSocket, runtimeDir, type ControlBody, type ControlCommand } from './control.ts';
export type { ClusterOptions, StickyOptions, BackoffOptions } from './options.ts';
export {
  ClusterError,
  ClusterConfigError,
  ClusterStartError,
  ClusterNameInUseError,
  ClusterStoppedError,
  ClusterNotRunningError,
  ClusterControlError,
  ClusterControlTimeoutError,
  ClusterWorkerError,
  ClusterNoWorkerError,
  ClusterMetricsError,
  type ClusterErrorCode,
} from './errors.ts';

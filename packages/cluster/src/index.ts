export { startCluster, type Cluster, type StartedCluster, type ReloadReport, type SlotStatus, type SlotState } from './primary.ts';
export { ready, listen } from './worker.ts';
export { controlPath, controlRequest, runtimeDir, type ControlCommand } from './control.ts';
export type { ClusterOptions, StickyOptions, BackoffOptions } from './options.ts';
export {
  ClusterError,
  ClusterConfigError,
  ClusterStartError,
  ClusterNameInUseError,
  ClusterStoppedError,
  ClusterControlError,
  ClusterWorkerError,
} from './errors.ts';
